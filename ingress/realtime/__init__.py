"""The OpenAI Realtime API's transcription sessions (`/v1/realtime?intent=transcription`): its
events (`events.py`), the input audio buffer they drive (`stream.py`), the transcripts written as
its events (`transcripts.py`) and the socket (`route.py`). The seed protocol is `ingress/protocol.py`."""

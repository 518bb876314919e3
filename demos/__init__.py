"""Clients that stream audio to a Streaming Whisper server and show what comes back."""

"""A participant's interims and finals as the Realtime API's events (pure: `session.py`'s encoder).

An item is one utterance of the streaming policy. Its first interim (or its final, when speech was
short) says `input_audio_buffer.speech_started`; each interim whose committed words (those no later
transcript changes) grew sends them as a `conversation.item.input_audio_transcription.delta`, so
the deltas only ever append and join into the final text; the final sends what the deltas had not
said, then `speech_stopped`, `committed` and `.completed` with the whole transcript.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingress.realtime.events import RealtimeError, error_event, event, new_id
from streaming.language import Contradiction
from streaming.utterances import Transcript
from streaming.words import join_words


@dataclass
class _Item:
    item_id: str
    said: str = ""
    """What its deltas have said so far."""


class RealtimeTranscripts:
    """One socket's items; `offset_s` places a new stream (after a commit or clear) in the session's audio."""

    def __init__(self) -> None:
        self._items: dict[str, _Item] = {}
        self._previous_item_id: str | None = None
        self.offset_s = 0.0
        self.completed = 0
        """Items completed so far."""

    def transcript(self, participant_id: str, transcript: Transcript, language: str | None) -> list[str]:
        frames: list[str] = []
        item = self._items.get(transcript.utterance_id)
        if item is None:
            item = self._items[transcript.utterance_id] = _Item(new_id("item"))
            frames.append(
                event(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=self._ms(transcript.start_s),
                    item_id=item.item_id,
                )
            )
        if transcript.kind == "interim":
            frames.extend(self._delta(item, join_words(transcript.words[: transcript.committed_words])))
            return frames
        del self._items[transcript.utterance_id]
        frames.extend(self._delta(item, transcript.text))
        frames.append(
            event(
                "input_audio_buffer.speech_stopped",
                audio_end_ms=self._ms(transcript.end_s),
                item_id=item.item_id,
            )
        )
        frames.extend(self._complete(item.item_id, transcript.text, transcript.end_s - transcript.start_s))
        return frames

    def empty_item(self) -> list[str]:
        """A commit that held no speech: an item all the same (a client waits for its result)."""
        return self._complete(new_id("item"), "", 0.0)

    def abandon(self) -> None:
        """The buffer was cleared: the open items get no more events."""
        self._items.clear()

    def language_warning(self, participant_id: str, contradiction: Contradiction) -> str:
        # The API has no warning event; an error event is what its clients log and go on after.
        message = (
            f"the session's language is {contradiction.declared!r} but the speech sounds like "
            f"{contradiction.heard!r} (probability {contradiction.probability:.2f}); it is "
            f"transcribed as {contradiction.declared!r} still: set the transcription language "
            f"to {contradiction.heard!r} (or none) to transcribe it as spoken"
        )
        return error_event(
            RealtimeError(
                message, code="language_mismatch", param="session.audio.input.transcription.language"
            )
        )

    def _delta(self, item: _Item, text: str) -> list[str]:
        if not text.startswith(item.said) or len(text) == len(item.said):
            return []  # nothing new, or a spelling the deltas cannot reach: .completed has it
        delta, item.said = text[len(item.said) :], text
        return [
            event(
                "conversation.item.input_audio_transcription.delta",
                item_id=item.item_id,
                content_index=0,
                delta=delta,
            )
        ]

    def _complete(self, item_id: str, text: str, seconds: float) -> list[str]:
        committed = event(
            "input_audio_buffer.committed", previous_item_id=self._previous_item_id, item_id=item_id
        )
        self._previous_item_id = item_id
        self.completed += 1
        completed = event(
            "conversation.item.input_audio_transcription.completed",
            item_id=item_id,
            content_index=0,
            transcript=text,
            usage={"type": "duration", "seconds": round(max(0.0, seconds), 3)},
        )
        return [committed, completed]

    def _ms(self, stream_s: float) -> int:
        return max(0, round((self.offset_s + stream_s) * 1000))

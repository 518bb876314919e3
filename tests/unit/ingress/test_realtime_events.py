"""The Realtime API's client events as the service reads them, its server events as it writes
them, and a participant's transcripts as items (pure: no socket, no model)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from ingress.realtime.events import (
    AppendAudio,
    ClearAudio,
    CommitAudio,
    RealtimeError,
    SessionConfig,
    SessionUpdate,
    error_event,
    parse_client_event,
    session_event,
)
from ingress.realtime.transcripts import RealtimeTranscripts
from service.languages import AUTO
from streaming.language import Contradiction
from streaming.utterances import Transcript
from streaming.words import Word

pytestmark = pytest.mark.unit


def parse(payload: Any, config: SessionConfig | None = None) -> Any:
    return parse_client_event(json.dumps(payload), config or SessionConfig())


def refused(payload: Any) -> RealtimeError:
    with pytest.raises(RealtimeError) as caught:
        parse_client_event(payload if isinstance(payload, str) else json.dumps(payload), SessionConfig())
    return caught.value


def test_audio_events_carry_their_pcm_and_event_id() -> None:
    pcm = b"\x01\x00\x02\x00"
    assert parse(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode(), "event_id": "a"}
    ) == (AppendAudio(pcm, "a"))
    assert parse({"type": "input_audio_buffer.commit"}) == CommitAudio(None)
    assert parse({"type": "input_audio_buffer.clear", "event_id": "c"}) == ClearAudio("c")


def test_a_session_update_in_the_current_shape_changes_only_what_it_names() -> None:
    update = parse(
        {
            "type": "session.update",
            "session": {
                "type": "transcription",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 16000},
                        "transcription": {
                            "model": "gpt-4o-transcribe",
                            "language": "en-US",
                            "prompt": "names",
                        },
                        "turn_detection": None,
                    }
                },
                "include": ["item.input_audio_transcription.logprobs"],
            },
        }
    )
    assert isinstance(update, SessionUpdate) and not update.beta
    config = update.config
    assert (config.rate, config.language, config.model, config.prompt) == (
        16000,
        "en",
        "gpt-4o-transcribe",
        "names",
    )
    assert config.turn_detection is None
    assert config.include == ("item.input_audio_transcription.logprobs",)
    again = parse({"type": "session.update", "session": {"type": "transcription"}}, config).config
    assert again == config


def test_the_beta_shape_is_read_and_answered_in_its_own() -> None:
    update = parse(
        {
            "type": "transcription_session.update",
            "session": {
                "input_audio_format": "pcm16",
                "input_audio_transcription": {"model": "whisper-1", "language": ""},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 800},
            },
        }
    )
    assert update.beta and update.config.language == AUTO and update.config.rate == 24000
    assert update.config.turn_detection["silence_duration_ms"] == 800
    session = json.loads(session_event("transcription_session.updated", "sess_1", update.config, beta=True))
    assert session["type"] == "transcription_session.updated"
    assert session["session"]["input_audio_format"] == "pcm16"
    assert session["session"]["input_audio_transcription"]["language"] == ""
    current = json.loads(session_event("session.updated", "sess_1", SessionConfig(language="de"), beta=False))
    assert current["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert current["session"]["audio"]["input"]["transcription"]["language"] == "de"
    assert current["event_id"].startswith("event_")


@pytest.mark.parametrize(
    ("payload", "code", "param"),
    [
        ("{not json", "invalid_json", None),
        ([1, 2], "invalid_json", None),
        ({"audio": ""}, "missing_required_parameter", "type"),
        ({"type": "response.create"}, "invalid_value", "type"),
        ({"type": "input_audio_buffer.append"}, "missing_required_parameter", "audio"),
        ({"type": "input_audio_buffer.append", "audio": "@@"}, "invalid_value", "audio"),
        (
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(b"odd").decode()},
            "invalid_value",
            "audio",
        ),
        ({"type": "session.update"}, "missing_required_parameter", "session"),
        ({"type": "session.update", "session": {"type": "realtime"}}, "invalid_value", "session.type"),
        (
            {"type": "session.update", "session": {"audio": {"input": {"format": {"type": "audio/pcma"}}}}},
            "invalid_value",
            "session.audio.input.format.type",
        ),
        (
            {"type": "session.update", "session": {"audio": {"input": {"transcription": {"language": 7}}}}},
            "invalid_value",
            "session.audio.input.transcription.language",
        ),
        (
            {"type": "session.update", "session": {"audio": {"input": {"turn_detection": {"type": "push"}}}}},
            "invalid_value",
            "session.audio.input.turn_detection.type",
        ),
        (
            {"type": "transcription_session.update", "session": {"input_audio_format": "g711_ulaw"}},
            "invalid_value",
            "session.input_audio_format",
        ),
        ({"type": "session.update", "session": {"include": "all"}}, "invalid_value", "session.include"),
    ],
)
def test_bad_events_are_refused_with_the_apis_codes(payload: Any, code: str, param: str | None) -> None:
    error = refused(payload)
    assert (error.code, error.param) == (code, param)
    written = json.loads(error_event(error))
    assert written["type"] == "error"
    assert written["error"]["type"] == "invalid_request_error"
    assert written["error"]["message"] == error.message


def test_a_refused_event_names_its_event_id() -> None:
    assert refused({"type": "response.create", "event_id": "evt_9"}).event_id == "evt_9"


def words(*texts: str) -> tuple[Word, ...]:
    return tuple(Word(text, float(i), float(i) + 0.5, 0.9) for i, text in enumerate(texts))


def transcript(kind: str, texts: tuple[str, ...], committed: int, utterance: str = "u1") -> Transcript:
    spoken = words(*texts)
    return Transcript(
        utterance_id=utterance,
        kind=kind,  # type: ignore[arg-type]
        text="".join(texts).strip(),
        ts_ms=0,
        probability=0.9,
        start_s=spoken[0].start,
        end_s=spoken[-1].end,
        committed_words=committed,
        words=spoken,
    )


def kinds(frames: list[str]) -> list[tuple[str, dict[str, Any]]]:
    return [(payload["type"], payload) for payload in map(json.loads, frames)]


def test_an_utterance_becomes_one_item_whose_deltas_append_up_to_its_transcript() -> None:
    items = RealtimeTranscripts()
    items.offset_s = 10.0
    first = kinds(items.transcript("input", transcript("interim", (" And", " so"), committed=1), None))
    assert [kind for kind, _ in first] == [
        "input_audio_buffer.speech_started",
        "conversation.item.input_audio_transcription.delta",
    ]
    item_id = first[0][1]["item_id"]
    assert first[0][1]["audio_start_ms"] == 10_000
    assert first[1][1]["delta"] == "And"
    # A revised hypothesis of words not yet committed sends nothing.
    assert items.transcript("input", transcript("interim", (" And", " sew"), committed=1), None) == []
    final = kinds(items.transcript("input", transcript("final", (" And", " so", " my"), committed=3), None))
    assert [kind for kind, _ in final] == [
        "conversation.item.input_audio_transcription.delta",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
    ]
    assert final[0][1]["delta"] == " so my"
    assert final[1][1]["audio_end_ms"] == 12_500
    assert final[2][1]["previous_item_id"] is None
    assert final[3][1]["transcript"] == "And so my" and final[3][1]["item_id"] == item_id
    following = kinds(
        items.transcript("input", transcript("final", (" Ask",), committed=1, utterance="u2"), None)
    )
    committed = dict(following)["input_audio_buffer.committed"]
    assert committed["previous_item_id"] == item_id and committed["item_id"] != item_id
    assert items.completed == 2


def test_a_commit_with_no_speech_is_an_empty_item_and_a_warning_is_an_error_event() -> None:
    items = RealtimeTranscripts()
    empty = kinds(items.empty_item())
    assert [kind for kind, _ in empty] == [
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
    ]
    assert empty[1][1]["transcript"] == ""
    warning = json.loads(items.language_warning("input", Contradiction("en", "de", 0.99)))
    assert warning["type"] == "error" and warning["error"]["code"] == "language_mismatch"
    assert "'de'" in warning["error"]["message"]

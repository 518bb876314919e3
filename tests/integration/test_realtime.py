"""The OpenAI Realtime API's transcription sessions (`/v1/realtime?intent=transcription`) with the
official `openai` SDK's client against the real ingress, worker and tiny.en: the transcripts of the
seed route on the same audio, deltas while speaking, the API's event rules; bad events answered
with the API's error events while the session, and a seed meeting beside it, go on."""

from __future__ import annotations

import asyncio
import base64
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bench.scoring import error_rate
from demos.client import MeetingResult
from demos.realtime_client import COMPLETED, DELTA, to_api_rate
from tests.integration.conftest import Service
from tests.integration.realtime_checks import (
    append,
    both_protocols,
    check_events,
    raw_session,
    realtime_url,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", ["jfk_ask_not"])
def test_the_sdk_gets_the_seed_routes_transcript_and_deltas_while_speaking(
    service: Service, speech: Any, reference: Any, name: str
) -> None:
    seed, openai = both_protocols(service, name, speech(name))

    check_events(openai)
    seed_wer = error_rate(reference(name), seed.transcript("reader"))
    openai_wer = error_rate(reference(name), openai.transcript())
    print(
        f"{name}: seed route WER {seed_wer:.3f}, Realtime route WER {openai_wer:.3f}: {openai.transcript()!r}"
    )
    assert openai_wer <= 1.05 * seed_wer + 0.01
    assert [event for event in openai.of_type(DELTA) if event.arrived_at < openai.last_audio_at], (
        "no delta while speaking"
    )


def test_bad_events_get_the_apis_errors_and_the_session_goes_on(
    service: Service, speech: Any, reference: Any
) -> None:
    url = realtime_url(service.stack.base_http_url)
    audio = to_api_rate(speech("jfk_ask_not"))
    piece = 4800
    bad = [
        "not json",
        json.dumps(["a", "list"]),
        json.dumps({"event_id": "e1", "type": "response.create"}),
        json.dumps({"event_id": "e2", "type": "input_audio_buffer.append", "audio": "%%%"}),
        json.dumps(
            {
                "event_id": "e3",
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(b"abc").decode(),
            }
        ),
        json.dumps(
            {
                "event_id": "e4",
                "type": "session.update",
                "session": {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcmu"}}}},
            }
        ),
        json.dumps(
            {
                "event_id": "e5",
                "type": "session.update",
                "session": {
                    "type": "transcription",
                    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 44100}}},
                },
            }
        ),
        json.dumps(
            {
                "event_id": "e6",
                "type": "transcription_session.update",
                "session": {"input_audio_transcription": {"language": "klingon"}},
            }
        ),
        json.dumps({"event_id": "e7", "type": "input_audio_buffer.commit"}),
        b"\x00\x01binary",
    ]
    good = [append(audio[offset : offset + piece]) for offset in range(0, len(audio), piece)]
    marker = json.dumps({"type": "session.update", "session": {"type": "transcription"}})
    frames = [*bad, *good, json.dumps({"type": "input_audio_buffer.commit"}), marker]

    def neighbour() -> MeetingResult:
        return service.stream("realtime-neighbour", [("jfk", speech("jfk_ask_not"))])

    with ThreadPoolExecutor(1) as pool:
        seed = pool.submit(neighbour)
        events, _closed = asyncio.run(raw_session(url, frames, until="session.updated"))
        seed_result = seed.result()

    errors = [event["error"] for event in events if event["type"] == "error"]
    assert [(error["code"], error["param"], error["event_id"]) for error in errors] == [
        ("invalid_json", None, None),
        ("invalid_json", None, None),
        ("invalid_value", "type", "e1"),
        ("invalid_value", "audio", "e2"),
        ("invalid_value", "audio", "e3"),
        ("invalid_value", "session.audio.input.format.type", "e4"),
        ("invalid_value", "session.audio.input.format.rate", "e5"),
        ("invalid_value", "session.input_audio_transcription.language", "e6"),
        ("input_audio_buffer_commit_empty", None, "e7"),
        ("invalid_json", None, None),
    ]
    assert all(error["type"] == "invalid_request_error" and error["message"] for error in errors)
    transcript = " ".join(event["transcript"] for event in events if event["type"] == COMPLETED)
    assert error_rate(reference("jfk_ask_not"), transcript) <= 0.10, transcript
    # The neighbour meeting on the seed route heard nothing of it.
    assert not seed_result.errors()
    assert error_rate(reference("jfk_ask_not"), seed_result.transcript("jfk")) <= 0.10


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("?model=gpt-realtime", "intent=transcription"),
        ("?intent=transcription&session_id=" + "s" * 129, "session_id must be printable, at most 128"),
    ],
    ids=["no intent", "session id too long"],
)
def test_a_connection_is_refused_with_one_error_event_and_1008(
    service: Service, query: str, reason: str
) -> None:
    events, close_code = asyncio.run(raw_session(realtime_url(service.stack.base_http_url, query), []))
    assert close_code == 1008
    assert [event["type"] for event in events] == ["error"]
    assert reason in events[0]["error"]["message"]


def test_clear_drops_what_was_not_transcribed_and_a_silent_commit_is_an_empty_item(
    service: Service, speech: Any, reference: Any
) -> None:
    jfk = speech("jfk_ask_not")  # 16 kHz, as the session's format now says
    piece = 3200
    sixteen = {
        "type": "session.update",
        "session": {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}},
    }
    frames = [
        json.dumps(sixteen),
        *(append(jfk[offset : offset + piece]) for offset in range(0, 3 * 32000, piece)),
        json.dumps({"type": "input_audio_buffer.clear"}),
        append(bytes(16000)),  # half a second of digital silence
        json.dumps({"type": "input_audio_buffer.commit"}),
        *(append(jfk[offset : offset + piece]) for offset in range(0, len(jfk), piece)),
        json.dumps({"type": "input_audio_buffer.commit"}),
        json.dumps({"type": "session.update", "session": {}}),
    ]
    events, _closed = asyncio.run(
        raw_session(realtime_url(service.stack.base_http_url), frames, "session.updated", times=2)
    )

    kinds = [event["type"] for event in events]
    assert kinds.count("session.updated") == 2 and "error" not in kinds
    assert events[1]["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 16000}
    cleared = kinds.index("input_audio_buffer.cleared")
    completed = [event for event in events if event["type"] == COMPLETED]
    # The silence's commit: one empty item, right after the clear.
    assert completed[0]["transcript"] == "" and kinds.index(COMPLETED) > cleared
    transcript = " ".join(event["transcript"] for event in completed[1:])
    assert error_rate(reference("jfk_ask_not"), transcript) <= 0.10, transcript

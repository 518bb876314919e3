"""The live path end to end: websocket → ingress → Celery task → faster-whisper worker → Redis →
back to the websocket, with real processes, the real tiny.en model and the corpus's speech."""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
import wave
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bench.scoring import error_rate
from demos.client import MeetingResult
from models.transcriber import Transcriber
from service.settings import Settings
from tests.integration.conftest import ARTIFACTS, Service
from tests.integration.realtime_checks import both_protocols, check_events

pytestmark = pytest.mark.integration

TRANSCRIPT_FIELDS = ["id", "participant_id", "ts", "text", "audio", "type", "variance"]


def check_schema(result: MeetingResult, participants: set[str]) -> None:
    """No errors; every transcript has exactly the SPEC §3 fields; ids and finals behave as specified."""
    seen_final_ids: set[str] = set()
    last_ts: dict[str, int] = {}
    for message in result.messages:
        payload = message.payload
        assert payload is not None, f"not a JSON object: {message.raw!r}"
        assert payload["type"] != "error", payload
        assert list(payload) == TRANSCRIPT_FIELDS
        assert payload["type"] in ("interim", "final")
        assert payload["participant_id"] in participants
        assert uuid.UUID(payload["id"]).version == 7
        assert payload["id"] not in seen_final_ids, "a message after the final of its utterance"
        assert 0.0 <= payload["variance"] <= 1.0
        assert payload["text"].strip()
        # ts is when the audio was spoken: up to one chunk (1.024 s) before its message arrived.
        started_ms = result.started_at_wall * 1000
        assert started_ms - 1100 <= payload["ts"] <= time.time() * 1000
        if payload["type"] == "final":
            seen_final_ids.add(payload["id"])
            assert payload["ts"] >= last_ts.get(payload["participant_id"], 0), "finals went back in time"
            last_ts[payload["participant_id"]] = payload["ts"]
        else:
            assert payload["audio"] == ""


def save_artifact(name: str, data: dict[str, Any]) -> None:
    """Transcripts of a run, to read when a threshold fails in CI."""
    folder = ARTIFACTS / "transcripts"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(data, indent=2, ensure_ascii=False))


def test_jfk_final_transcript_is_accurate(service: Service, speech: Any, reference: Any) -> None:
    result = service.stream("jfk", [("jfk", speech("jfk_ask_not"))])

    assert result.closed_normally, (result.close_code, result.close_reason)
    check_schema(result, {"jfk"})
    assert result.interims("jfk"), "no interim while speaking"
    wer = error_rate(reference("jfk_ask_not"), result.transcript("jfk"))
    print(f"jfk_ask_not streamed WER {wer:.3f}: {result.transcript('jfk')!r}")
    assert wer <= 0.10


def test_long_form_is_within_1_3x_of_offline(service: Service, speech: Any, reference: Any) -> None:
    name = "longform_lj003_newgate_amateur"
    pcm = speech(name)
    # The Realtime route (issue 20) hears the same audio at the same time.
    result, openai = both_protocols(service, name, pcm)
    # The offline limit: the same model on the whole file at once (after the stream, not during
    # it: on 2 cores the two would compete and stall the client's sends).
    offline_text = "".join(
        word.text for word in Transcriber.from_settings(Settings()).transcribe_recording(pcm, "en").words
    )
    save_artifact(
        name,
        {"streamed": result.transcript("reader"), "offline": offline_text, "realtime": openai.transcript()},
    )

    assert result.closed_normally, (result.close_code, result.close_reason)
    check_schema(result, {"reader"})
    streamed_wer = error_rate(reference(name), result.transcript("reader"))
    offline_wer = error_rate(reference(name), offline_text)
    print(f"{name}: streamed WER {streamed_wer:.3f}, offline WER {offline_wer:.3f}")
    assert streamed_wer <= 1.3 * offline_wer
    check_events(openai)
    # One long-form stream's WER moves by 0.01-0.02 from run to run on either route (window
    # boundaries follow the timing), more than 5% of it: here the Realtime route meets the seed
    # route's own bound; the 1.05x comparison is make bench's (`--protocol seed,openai`).
    openai_wer = error_rate(reference(name), openai.transcript())
    print(f"{name}: Realtime route WER {openai_wer:.3f}")
    assert openai_wer <= 1.3 * offline_wer


def test_three_participants_on_one_socket_get_their_own_transcripts(
    service: Service, speech: Any, reference: Any
) -> None:
    speakers = {f"spk{n}": f"meeting_3spk_dev.spk{n}" for n in (1, 2, 3)}
    result = service.stream("three", [(speaker, speech(name)) for speaker, name in speakers.items()])

    assert result.closed_normally, (result.close_code, result.close_reason)
    check_schema(result, set(speakers))
    for speaker, name in speakers.items():
        own = error_rate(reference(name), result.transcript(speaker))
        others = [
            error_rate(reference(n), result.transcript(speaker)) for s, n in speakers.items() if s != speaker
        ]
        print(f"{speaker}: WER {own:.3f} against its own reference, {others} against the others'")
        assert own <= 0.25
        assert all(own < other for other in others)


def test_two_meetings_at_once_never_see_each_others_results(
    service: Service, speech: Any, reference: Any
) -> None:
    meetings = {
        "room-a": ("alice", "jfk_ask_not"),
        "room-b": ("bob", "meeting_3spk_dev.spk2"),
    }
    with ThreadPoolExecutor(len(meetings)) as pool:
        futures = {
            meeting: pool.submit(service.stream, meeting, [(participant, speech(name))])
            for meeting, (participant, name) in meetings.items()
        }
        results = {meeting: future.result() for meeting, future in futures.items()}

    for meeting, (participant, name) in meetings.items():
        result = results[meeting]
        assert result.closed_normally
        assert {m.participant for m in result.messages} == {participant}
        check_schema(result, {participant})
        assert error_rate(reference(name), result.transcript(participant)) <= 0.25


@pytest.mark.parametrize("name", ["silence_20s", "noise_20s"])
def test_silence_and_noise_give_no_text(service: Service, speech: Any, name: str) -> None:
    result = service.stream(name, [("quiet", speech(name))], speed=None)

    assert result.closed_normally
    assert result.messages == [], [m.raw for m in result.messages]


def test_end_marker_flushes_every_pending_final_before_closing(
    service: Service, speech: Any, reference: Any
) -> None:
    # All audio at once, then the end marker: nearly everything is still pending when it arrives.
    tracks = [("first", speech("jfk_ask_not")), ("second", speech("meeting_3spk_dev.spk3"))]
    result = service.stream("ending", tracks, speed=None)

    assert result.closed_normally, (result.close_code, result.close_reason)
    check_schema(result, {"first", "second"})
    assert result.end_sent_at is not None
    for participant in ("first", "second"):
        assert error_rate(reference("jfk_ask_not"), result.transcript(participant)) <= 0.15
        # Every utterance that had an interim ended in a final.
        final_ids = {final["id"] for final in result.finals(participant)}
        assert {interim["id"] for interim in result.interims(participant)} <= final_ids


def test_bad_message_gets_an_error_and_the_meeting_goes_on(
    service: Service, speech: Any, reference: Any
) -> None:
    good = [("speaker", speech("jfk_ask_not"))]
    result = service.stream("with-garbage", good, prelude=[b"no pipe in this header" + b"\x00" * 60])

    assert result.closed_normally
    errors = result.errors()
    assert len(errors) == 1 and errors[0]["code"] == 1007 and "|" in errors[0]["message"]
    assert error_rate(reference("jfk_ask_not"), result.transcript("speaker")) <= 0.10


def test_finals_carry_their_audio_when_asked(service: Service, speech: Any) -> None:
    from commands.launcher import free_port

    base = service.stack.start_ingress(
        "ingress-with-audio", free_port(), {"WHISPER_RETURN_TRANSCRIBED_AUDIO": "1"}
    )
    try:
        result = service.stream("audio", [("jfk", speech("jfk_ask_not"))], base=base)
    finally:
        service.stack.stop_process("ingress-with-audio")

    finals = result.finals("jfk")
    assert finals
    seconds = 0.0
    for final in finals:
        with wave.open(io.BytesIO(base64.b64decode(final["audio"]))) as audio:
            assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (16_000, 1, 2)
            seconds += audio.getnframes() / 16_000
    assert 6.0 <= seconds <= 11.5  # the speech of the 11 s clip, not its silences twice over


def test_without_bypass_or_keys_connections_are_refused_with_a_reason(service: Service, speech: Any) -> None:
    from commands.launcher import free_port

    base = service.stack.start_ingress("ingress-locked", free_port(), {"BYPASS_AUTHORIZATION": "0"})
    try:
        result = service.stream("locked", [("jfk", speech("jfk_ask_not"))], base=base)
    finally:
        service.stack.stop_process("ingress-locked")

    assert result.close_code == 1008
    assert "ASAP_PUB_KEYS_REPO_URL" in result.close_reason
    assert not result.of_type("final") and not result.of_type("interim")


def test_a_language_the_model_cannot_serve_gets_one_error_and_others_go_on(
    service: Service, speech: Any, reference: Any
) -> None:
    from demos.client import chunk_pcm
    from ingress.protocol import build_header

    german = [build_header("hans", "de-DE") + chunk for chunk in chunk_pcm(speech("de_picovoice_sample"))]
    result = service.stream("mixed", [("anna", speech("jfk_ask_not"))], prelude=german)

    assert result.closed_normally
    errors = result.errors()
    assert len(errors) == 1, errors
    assert errors[0]["participant_id"] == "hans" and errors[0]["code"] == 1007
    assert "English-only" in errors[0]["message"]
    assert not [m for m in result.messages if m.participant == "hans" and m.type != "error"]
    assert error_rate(reference("jfk_ask_not"), result.transcript("anna")) <= 0.10

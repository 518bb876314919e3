"""The demo client: what it sends and when, and how it reads the server back (against a fake server)."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.frames import CloseCode
from websockets.sync.server import ServerConnection, serve

from demos.client import (
    MeetingResult,
    ReceivedMessage,
    chunk_pcm,
    meeting_url,
    send_schedule,
    stream_meeting,
)
from demos.stream_file import ConsolePrinter, format_final, format_offset, main, parse_args
from ingress.protocol import AudioMessage, EndOfMeeting, parse_client_message

pytestmark = pytest.mark.unit


def pcm_of(samples: int, value: int = 0) -> bytes:
    return value.to_bytes(2, "little", signed=True) * samples


# --- meeting_url ---------------------------------------------------------------------------------


def test_meeting_url_adds_path_and_random_id_to_a_bare_server() -> None:
    first = meeting_url("ws://127.0.0.1:8000")
    second = meeting_url("ws://127.0.0.1:8000/")

    assert first.startswith("ws://127.0.0.1:8000/streaming-whisper/ws/demo-")
    assert second.startswith("ws://127.0.0.1:8000/streaming-whisper/ws/demo-")
    assert first != second


def test_meeting_url_keeps_a_url_that_names_a_meeting() -> None:
    url = "wss://example.org/streaming-whisper/ws/standup?auth_token=abc"

    assert meeting_url(url) == url


def test_meeting_url_completes_the_path_and_keeps_the_query() -> None:
    assert (
        meeting_url("ws://h:8000/streaming-whisper/ws/?auth_token=t", "m1")
        == "ws://h:8000/streaming-whisper/ws/m1?auth_token=t"
    )
    assert meeting_url("ws://h/proxy", "m1") == "ws://h/proxy/streaming-whisper/ws/m1"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "127.0.0.1:8000", "ws://"])
def test_meeting_url_refuses_what_is_not_a_websocket_url(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        meeting_url(url)


# --- chunking and schedule -----------------------------------------------------------------------


def test_chunk_pcm_cuts_whole_chunks_and_a_shorter_last_one() -> None:
    chunks = chunk_pcm(pcm_of(2500), chunk_samples=1000)

    assert [len(chunk) for chunk in chunks] == [2000, 2000, 1000]
    assert chunk_pcm(b"", chunk_samples=1000) == []


def test_chunk_pcm_refuses_half_samples_and_empty_chunks() -> None:
    with pytest.raises(ValueError, match="16-bit"):
        chunk_pcm(b"\x00\x00\x00", 1000)
    with pytest.raises(ValueError, match="positive"):
        chunk_pcm(pcm_of(10), 0)


def test_schedule_interleaves_participants_chunk_by_chunk_in_real_time() -> None:
    tracks = [("alice", pcm_of(16_384 * 2 + 100, 1)), ("bob", pcm_of(16_384, 2))]

    schedule = list(send_schedule(tracks, lang="en"))

    assert [(s.chunk_index, s.participant) for s in schedule] == [
        (0, "alice"),
        (0, "bob"),
        (1, "alice"),
        (2, "alice"),
    ]
    assert [s.offset_s for s in schedule] == pytest.approx([0.0, 0.0, 1.024, 2.048])


def test_schedule_messages_parse_back_as_the_server_reads_them() -> None:
    tracks = [("alice", pcm_of(1500, 7))]

    messages = [parse_client_message(s.message) for s in send_schedule(tracks, lang="de", chunk_samples=1000)]

    assert messages == [
        AudioMessage(participant_id="alice", language="de", pcm=pcm_of(1000, 7)),
        AudioMessage(participant_id="alice", language="de", pcm=pcm_of(500, 7)),
    ]
    assert not any(isinstance(message, EndOfMeeting) for message in messages)


def test_schedule_speed_scales_offsets_and_none_sends_at_once() -> None:
    tracks = [("alice", pcm_of(3200))]

    four_times = [s.offset_s for s in send_schedule(tracks, speed=4, chunk_samples=1600)]
    at_once = [s.offset_s for s in send_schedule(tracks, speed=None, chunk_samples=1600)]

    assert four_times == pytest.approx([0.0, 0.025])
    assert at_once == [0.0, 0.0]


@pytest.mark.parametrize(
    ("tracks", "speed", "match"),
    [
        ([], 1.0, "at least one"),
        ([("a", b""), ("a", b"")], 1.0, "unique"),
        ([("a", b"")], 0.0, "speed"),
        ([("a", b"")], float("inf"), "speed"),
    ],
)
def test_schedule_refuses_bad_arguments_before_anything_is_sent(
    tracks: list[tuple[str, bytes]], speed: float, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        send_schedule(tracks, speed=speed)


# --- MeetingResult -------------------------------------------------------------------------------


def received(payload: dict[str, Any]) -> ReceivedMessage:
    return ReceivedMessage(arrived_at=0.0, raw=json.dumps(payload), payload=payload)


def test_result_transcript_joins_a_participants_finals_in_order() -> None:
    result = MeetingResult(url="ws://x/streaming-whisper/ws/m", started_at=0.0, started_at_wall=0.0)
    result.messages = [
        received({"type": "interim", "participant_id": "a", "text": "hello wor"}),
        received({"type": "final", "participant_id": "a", "text": " Hello world."}),
        received({"type": "final", "participant_id": "b", "text": "Hi."}),
        received({"type": "final", "participant_id": "a", "text": "How are you?"}),
        ReceivedMessage(arrived_at=0.0, raw="not json", payload=None),
    ]

    assert result.transcript("a") == "Hello world. How are you?"
    assert [final["text"] for final in result.finals("b")] == ["Hi."]
    assert len(result.interims("a")) == 1
    assert result.transcript("nobody") == ""


# --- CLI pieces ----------------------------------------------------------------------------------


def test_args_default_to_real_time_and_file_stems() -> None:
    args = parse_args(["a.wav", "b.wav"])

    assert args.speed == 1.0
    assert args.participant is None
    assert args.chunk_samples == 16_384


@pytest.mark.parametrize(
    ("argv", "speed"),
    [
        (["--fast", "a.wav"], None),
        (["a.wav", "--fast"], None),
        (["a.wav", "--fast", "4"], 4.0),
        (["a.wav", "--fast=2.5"], 2.5),
    ],
)
def test_fast_takes_an_optional_factor(argv: list[str], speed: float | None) -> None:
    args = parse_args(argv)

    assert args.speed == speed
    assert [str(path) for path in args.files] == ["a.wav"]


@pytest.mark.parametrize(
    "argv",
    [
        ["a.wav", "b.wav", "--participant", "alice"],
        ["a.wav", "--fast", "0"],
        ["a.wav", "--chunk-samples", "0"],
        [],
    ],
)
def test_bad_arguments_exit_with_usage_error(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)

    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "00:00.0"), (-3, "00:00.0"), (59.96, "01:00.0"), (75.3, "01:15.3")]
)
def test_format_offset(seconds: float, text: str) -> None:
    assert format_offset(seconds) == text


def test_format_final_shows_time_since_start_participant_text_and_confidence() -> None:
    final = {
        "type": "final",
        "participant_id": "alice",
        "text": " Hi there.",
        "ts": 1_000_012_500,
        "variance": 0.873,
    }

    assert format_final(final, started_at_wall=1_000_000.0) == "[00:12.5] alice: Hi there.  (conf 0.87)"


def test_printer_off_a_terminal_prints_each_interim_and_errors_to_stderr() -> None:
    out, err = io.StringIO(), io.StringIO()
    printer = ConsolePrinter(out, err, as_json=False, started_at_wall=0.0)

    printer.show(received({"type": "interim", "participant_id": "a", "text": "hel"}))
    printer.show(received({"type": "interim", "participant_id": "a", "text": "hello"}))
    printer.show(received({"type": "error", "code": 1007, "message": "bad header"}))

    assert out.getvalue().splitlines() == ["… a: hel", "… a: hello"]
    assert "1007" in err.getvalue() and "bad header" in err.getvalue()


def test_printer_in_json_mode_prints_raw_messages_only() -> None:
    out, err = io.StringIO(), io.StringIO()
    printer = ConsolePrinter(out, err, as_json=True, started_at_wall=0.0)
    message = received({"type": "final", "participant_id": "a", "text": "Hi.", "ts": 0, "variance": 1})

    printer.show(message)

    assert out.getvalue() == message.raw + "\n"
    assert err.getvalue() == ""


# --- against a fake server -----------------------------------------------------------------------

Handler = Callable[[ServerConnection], None]


@pytest.fixture
def fake_server() -> Iterator[Callable[[Handler], str]]:
    """Start a websocket server running `handler` in a thread; returns its ws:// base URL."""
    servers = []

    def start(handler: Handler) -> str:
        server = serve(handler, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"ws://127.0.0.1:{server.socket.getsockname()[1]}"

    yield start
    for server, thread in servers:
        server.shutdown()
        thread.join(timeout=5)


def finals_on_end(seen: dict[str, Any]) -> Handler:
    """Counts each participant's bytes; at the end of the meeting sends one final each and closes 1000."""

    def handler(connection: ServerConnection) -> None:
        seen["authorization"] = (
            connection.request.headers.get("Authorization") if connection.request else None
        )
        seen["path"] = connection.request.path if connection.request else None
        pcm_bytes: dict[str, int] = {}
        for frame in connection:
            assert isinstance(frame, bytes)
            message = parse_client_message(frame)
            if isinstance(message, EndOfMeeting):
                break
            pcm_bytes[message.participant_id] = pcm_bytes.get(message.participant_id, 0) + len(message.pcm)
            connection.send(
                json.dumps({"type": "interim", "participant_id": message.participant_id, "text": "…"})
            )
        for participant, size in pcm_bytes.items():
            text = f"{participant} said {size} bytes."
            connection.send(
                json.dumps(
                    {"type": "final", "participant_id": participant, "text": text, "ts": 0, "variance": 0.9}
                )
            )
        seen["pcm_bytes"] = pcm_bytes
        connection.close(CloseCode.NORMAL_CLOSURE)

    return handler


def test_stream_meeting_sends_everything_then_reads_until_the_server_closes(
    fake_server: Callable[[Handler], str],
) -> None:
    seen: dict[str, Any] = {}
    base = fake_server(finals_on_end(seen))
    arrived: list[ReceivedMessage] = []
    tracks = [("alice", pcm_of(3000)), ("bob", pcm_of(1000))]

    result = asyncio.run(
        stream_meeting(
            f"{base}/streaming-whisper/ws/m1",
            tracks,
            token="secret",
            speed=None,
            chunk_samples=1600,
            on_message=arrived.append,
        )
    )

    assert seen["pcm_bytes"] == {"alice": 6000, "bob": 2000}
    assert seen["authorization"] == "Bearer secret"
    assert seen["path"] == "/streaming-whisper/ws/m1"
    assert result.closed_normally and result.close_code == 1000
    assert result.transcript("alice") == "alice said 6000 bytes."
    assert [len(times) for times in result.sent_at.values()] == [2, 1]
    assert result.end_sent_at is not None and result.end_sent_at >= max(result.sent_at["alice"])
    assert arrived == result.messages and len(arrived) == 5


def test_stream_meeting_paces_chunks_in_scaled_real_time(fake_server: Callable[[Handler], str]) -> None:
    base = fake_server(finals_on_end({}))

    # 3 chunks of 0.1 s at 2x: the third is due 0.1 s after the start.
    result = asyncio.run(
        stream_meeting(f"{base}/streaming-whisper/ws/m", [("a", pcm_of(4800))], speed=2, chunk_samples=1600)
    )

    offsets = [sent - result.started_at for sent in result.sent_at["a"]]
    assert offsets[0] < 0.05
    assert 0.045 <= offsets[1] - offsets[0] <= 0.2
    assert offsets[2] >= 0.1


def test_stream_meeting_records_an_early_policy_close(fake_server: Callable[[Handler], str]) -> None:
    def refuse(connection: ServerConnection) -> None:
        connection.send(json.dumps({"type": "error", "code": 1008, "message": "token expired"}))
        connection.close(CloseCode.POLICY_VIOLATION, "token expired")

    base = fake_server(refuse)

    result = asyncio.run(stream_meeting(f"{base}/streaming-whisper/ws/m", [("a", pcm_of(16_000 * 5))]))

    assert result.close_code == 1008 and result.close_reason == "token expired"
    assert not result.closed_normally
    assert result.errors() == [{"type": "error", "code": 1008, "message": "token expired"}]
    assert result.end_sent_at is None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_stream_meeting_raises_when_the_connection_is_refused() -> None:
    with pytest.raises(OSError):
        asyncio.run(
            stream_meeting(f"ws://127.0.0.1:{free_port()}/streaming-whisper/ws/m", [("a", pcm_of(10))])
        )


# --- the CLI end to end against the fake server --------------------------------------------------


def write_wav(path: Path, samples: int, rate: int = 16_000, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm_of(samples * channels))
    return path


def test_main_prints_finals_and_transcripts_and_exits_0(
    fake_server: Callable[[Handler], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}
    base = fake_server(finals_on_end(seen))
    alice, bob = write_wav(tmp_path / "alice.wav", 2000), write_wav(tmp_path / "bob.wav", 1000)

    code = main([str(alice), str(bob), "--url", base, "--fast", "--participant", "A", "--participant", "B"])

    out = capsys.readouterr().out
    assert code == 0
    assert seen["path"].startswith("/streaming-whisper/ws/demo-")
    assert "] A: A said 4000 bytes.  (conf 0.90)" in out
    assert out.rstrip().endswith("A: A said 4000 bytes.\nB: B said 2000 bytes.")


def test_main_exits_nonzero_with_the_close_code_and_reason(
    fake_server: Callable[[Handler], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = fake_server(lambda connection: connection.close(CloseCode.TRY_AGAIN_LATER, "at capacity"))

    code = main([str(write_wav(tmp_path / "a.wav", 100)), "--url", base, "--fast"])

    assert code == 1
    assert "code 1013 (at capacity)" in capsys.readouterr().err


def test_main_exits_nonzero_when_nothing_listens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([str(write_wav(tmp_path / "a.wav", 100)), "--url", f"ws://127.0.0.1:{free_port()}"])

    assert code == 1
    assert "cannot connect" in capsys.readouterr().err


def test_main_refuses_two_files_with_the_same_participant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x").mkdir()
    first, second = write_wav(tmp_path / "a.wav", 100), write_wav(tmp_path / "x" / "a.wav", 100)

    code = main([str(first), str(second), "--url", f"ws://127.0.0.1:{free_port()}"])

    assert code == 2
    assert "repeated: a" in capsys.readouterr().err

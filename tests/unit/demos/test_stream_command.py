"""`streaming-whisper stream`: its arguments, the live view's state and drawing, reading audio
files of any format, and its exit codes (against small fake servers)."""

from __future__ import annotations

import argparse
import io
import json
import threading
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from rich.console import Console
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve

from commands import cli
from commands.launcher import free_port
from demos.audio_files import AudioFileError, load_pcm
from demos.client import MeetingResult, ReceivedMessage
from demos.live_view import LiveView, MeetingBoard, confidence_style
from demos.stream_file import (
    ConsolePrinter,
    choose_display,
    describe_close,
    main,
    redact_url,
)
from ingress.protocol import EndOfMeeting, parse_client_message
from service.audio import SAMPLE_RATE
from service.pcm_files import read_pcm, write_pcm

pytestmark = pytest.mark.unit

STARTED = 1_700_000_000.0
"""A meeting's start (epoch seconds) for the board; finals' `ts` count from here."""


def message(payload: dict[str, Any]) -> ReceivedMessage:
    return ReceivedMessage(arrived_at=0.0, raw=json.dumps(payload), payload=payload)


def interim(participant: str, utterance: str, text: str) -> dict[str, Any]:
    return {"type": "interim", "participant_id": participant, "id": utterance, "text": text}


def final(participant: str, utterance: str, text: str, at_s: float, variance: float = 0.9) -> dict[str, Any]:
    return {
        "type": "final",
        "participant_id": participant,
        "id": utterance,
        "text": text,
        "ts": int((STARTED + at_s) * 1000),
        "variance": variance,
    }


def recording_console(width: int = 100, height: int = 40) -> Console:
    """A console that behaves as a terminal and keeps what was drawn."""
    return Console(file=io.StringIO(), record=True, force_terminal=True, width=width, height=height)


def parse_stream(argv: list[str]) -> argparse.Namespace:
    """What `streaming-whisper stream ARGV` parses to (the same steps as `cli.main`)."""
    from demos import stream_file

    args = cli.build_parser().parse_args(["stream", *stream_file.bare_fast_as_unbounded(argv)])
    return stream_file.check_args(args.stream_parser, args)


# --- arguments -----------------------------------------------------------------------------------


def test_stream_command_takes_files_and_every_option() -> None:
    options = ["--url", "ws://h:1", "--lang", "de", "--token", "T", "--json", "--fast", "2"]
    args = parse_stream(["a.mp3", "b.wav", *options, "--participant", "anna", "--participant", "ben"])

    assert [str(path) for path in args.files] == ["a.mp3", "b.wav"]
    assert (args.url, args.lang, args.token, args.json, args.speed) == ("ws://h:1", "de", "T", True, 2.0)
    assert args.participant == ["anna", "ben"]


def test_stream_command_defaults_to_real_time_on_the_local_server() -> None:
    args = parse_stream(["a.flac"])

    assert args.speed == 1.0
    assert (args.url, args.lang, args.json, args.token) == ("ws://127.0.0.1:8000", "en", False, None)


@pytest.mark.parametrize("argv", [["--fast", "a.wav"], ["a.wav", "--fast"], ["a.wav", "--fast", "--json"]])
def test_bare_fast_means_as_fast_as_possible(argv: list[str]) -> None:
    args = parse_stream(argv)

    assert args.speed is None
    assert [str(path) for path in args.files] == ["a.wav"]


@pytest.mark.parametrize(
    "argv", [[], ["a.wav", "--fast", "-1"], ["a.wav", "b.wav", "--participant", "only-one"]]
)
def test_stream_command_usage_errors_exit_2_with_its_own_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["stream", *argv])

    assert exit_info.value.code == 2
    assert "usage: streaming-whisper stream" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "ingress", "worker"])
def test_service_commands_still_parse_as_before(command: str) -> None:
    assert cli.build_parser().parse_args([command]).command == command


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve"])

    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# --- the board: what the live view shows ---------------------------------------------------------


def test_board_keeps_the_latest_interim_per_participant() -> None:
    board = MeetingBoard(["alice", "bob"], STARTED)

    board.apply(interim("alice", "u1", "and so"))
    board.apply(interim("bob", "v1", "hello"))
    board.apply(interim("alice", "u1", "and so my fellow"))

    assert {name: shown.text for name, shown in board.interims.items()} == {
        "alice": "and so my fellow",
        "bob": "hello",
    }


def test_a_final_replaces_its_own_utterances_interim_only() -> None:
    board = MeetingBoard(["alice"], STARTED)
    board.apply(interim("alice", "u1", "ask not"))
    board.apply(final("alice", "u1", "Ask not.", at_s=1.0))
    board.apply(interim("alice", "u2", "what your"))
    board.apply(final("alice", "u1-late", "Never mind.", at_s=2.0))

    assert board.interims["alice"].text == "what your"
    assert [item.text for item in board.finals] == ["Ask not.", "Never mind."]


def test_finals_are_kept_in_speaking_order_whatever_order_they_arrive_in() -> None:
    board = MeetingBoard(["alice", "bob"], STARTED)

    board.apply(final("bob", "b1", "Second.", at_s=5.0))
    board.apply(final("alice", "a1", "First.", at_s=1.0))
    board.apply(final("alice", "a2", "Third.", at_s=9.0))

    assert [item.text for item in board.finals] == ["First.", "Second.", "Third."]


def test_board_ignores_errors_and_adds_participants_it_did_not_know() -> None:
    board = MeetingBoard(["alice"], STARTED)

    board.apply({"type": "error", "code": 1007, "message": "bad header"})
    board.apply(interim("carol", "c1", "hi"))

    assert board.participants == ["alice", "carol"]
    assert board.finals == []


def test_board_renders_interims_and_finals_with_time_participant_and_confidence() -> None:
    board = MeetingBoard(["alice", "bob"], STARTED)
    board.apply(interim("bob", "b1", "my fellow"))
    board.apply(final("alice", "a1", "Ask not what your country can do for you.", at_s=75.3, variance=0.42))
    console = recording_console()

    console.print(board.render())

    text = console.export_text()
    assert "my fellow" in text
    row = next(line for line in text.splitlines() if "Ask not" in line)
    assert "01:15.3" in row and "alice" in row and "0.42" in row


def test_board_shows_only_the_latest_finals_when_asked_and_says_how_many_are_hidden() -> None:
    board = MeetingBoard(["alice"], STARTED)
    for index in range(6):
        board.apply(final("alice", f"u{index}", f"Sentence number {index}.", at_s=index))
    console = recording_console()

    console.print(board.render(max_finals=2))

    text = console.export_text()
    assert "Sentence number 5." in text and "Sentence number 4." in text
    assert "Sentence number 3." not in text
    assert "4 earlier finals" in text


@pytest.mark.parametrize(("confidence", "style"), [(0.95, "green"), (0.6, "yellow"), (0.2, "red")])
def test_confidence_is_coloured_by_level(confidence: float, style: str) -> None:
    assert confidence_style(confidence) == style


def test_live_view_draws_finals_as_they_arrive_and_prints_errors_apart() -> None:
    console, errors = recording_console(), recording_console()
    board = MeetingBoard(["alice"], STARTED)

    with LiveView(board, console, errors) as view:
        view.show(message(interim("alice", "u1", "ask not")))
        view.show(message(final("alice", "u1", "Ask not.", at_s=1.0)))
        view.show(message({"type": "error", "code": 1008, "message": "too fast"}))
        view.show(
            message(
                {
                    "type": "warning",
                    "code": "language_mismatch",
                    "participant_id": "alice",
                    "message": "not 'en'",
                }
            )
        )
        view.print_transcripts([("alice", "Ask not.")])

    drawn = console.export_text()
    assert "ask not" in drawn and "Ask not." in drawn and "alice: Ask not." in drawn
    assert "too fast" not in drawn and "not 'en'" not in drawn
    printed = errors.export_text()
    assert "server error 1008: too fast" in printed
    assert "server warning language_mismatch (alice): not 'en'" in printed


def test_display_is_live_on_a_terminal_and_lines_otherwise() -> None:
    terminal = recording_console()
    piped = Console(file=io.StringIO(), force_terminal=False)

    assert isinstance(choose_display(False, ["a"], terminal, terminal), LiveView)
    assert isinstance(choose_display(False, ["a"], piped, piped), ConsolePrinter)
    assert isinstance(choose_display(True, ["a"], terminal, terminal), ConsolePrinter)


# --- small helpers -------------------------------------------------------------------------------


def test_redact_url_hides_the_token_only() -> None:
    assert redact_url("ws://h/streaming-whisper/ws/m?auth_token=abc.def&x=1") == (
        "ws://h/streaming-whisper/ws/m?auth_token=***&x=1"
    )
    assert redact_url("ws://h/streaming-whisper/ws/m") == "ws://h/streaming-whisper/ws/m"


def test_describe_close_names_the_code_when_the_server_gave_no_reason() -> None:
    with_reason = MeetingResult("ws://h", 0.0, 0.0, close_code=1008, close_reason="token expired")
    without = MeetingResult("ws://h", 0.0, 0.0, close_code=1006)

    assert describe_close(with_reason) == "code 1008 (token expired)"
    assert describe_close(without) == "code 1006 (abnormal closure, no reason given)"


# --- audio files ---------------------------------------------------------------------------------

TONE_HZ = 440.0


def tone_pcm(seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    return (0.3 * 32767 * np.sin(2 * np.pi * TONE_HZ * t)).astype("<i2")


def encode(samples: np.ndarray, path: Path, codec: str, rate: int, layout: str) -> Path:
    """Write 16 kHz mono samples as `codec` at `rate` Hz in `layout`, resampled by PyAV."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.argmax(spectrum) * SAMPLE_RATE / len(samples))


@pytest.mark.parametrize(
    ("name", "codec", "rate", "layout"),
    [
        ("tone.mp3", "mp3", 44_100, "stereo"),
        ("tone.ogg", "libopus", 48_000, "stereo"),
        ("tone.m4a", "aac", 22_050, "mono"),
        ("tone.wav", "pcm_s16le", 8_000, "stereo"),
        ("tone.flac", "flac", 44_100, "stereo"),
    ],
)
def test_other_formats_are_decoded_to_16khz_mono(
    tmp_path: Path, name: str, codec: str, rate: int, layout: str
) -> None:
    original = tone_pcm()
    path = encode(original, tmp_path / name, codec, rate, layout)

    decoded = np.frombuffer(load_pcm(path), dtype="<i2")

    assert abs(len(decoded) - len(original)) / SAMPLE_RATE < 0.15  # codec padding at most
    assert abs(dominant_hz(decoded) - TONE_HZ) < 2.0
    assert np.sqrt(np.mean(decoded.astype(np.float64) ** 2)) > 0.1 * 32767 * 0.3


def test_the_corpus_flac_a_wav_and_another_flac_of_it_give_the_same_samples(
    corpus_audio: Callable[[str], Path], tmp_path: Path
) -> None:
    corpus_pcm = read_pcm(corpus_audio("jfk_ask_not"))
    wav = tmp_path / "jfk.wav"
    write_pcm(wav, corpus_pcm)
    flac = encode(np.frombuffer(corpus_pcm, dtype="<i2"), tmp_path / "jfk.flac", "flac", SAMPLE_RATE, "mono")

    assert load_pcm(corpus_audio("jfk_ask_not")) == corpus_pcm
    assert load_pcm(wav) == corpus_pcm
    assert load_pcm(flac) == corpus_pcm


def test_a_16khz_mono_wav_is_read_as_is(tmp_path: Path) -> None:
    samples = tone_pcm(0.5)
    path = tmp_path / "a.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.tobytes())

    assert load_pcm(path) == samples.tobytes()


def write_video_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda folder: folder / "missing.mp3", "no such file"),
        (lambda folder: folder, "is a folder"),
        (lambda folder: write_text(folder / "notes.mp3", "not audio at all"), "cannot decode it as audio"),
        (lambda folder: write_text(folder / "empty.flac", ""), "holds no audio samples"),
        (lambda folder: write_video_only(folder / "video.mkv"), "holds no audio stream"),
    ],
)
def test_unreadable_files_are_refused_with_the_reason(
    tmp_path: Path, make: Callable[[Path], Path], reason: str
) -> None:
    path = make(tmp_path)

    with pytest.raises(AudioFileError, match=reason) as error:
        load_pcm(path)

    assert str(path) in str(error.value)


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_main_exits_2_naming_a_file_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = write_text(tmp_path / "notes.ogg", "not audio")

    code = main([str(notes), "--url", f"ws://127.0.0.1:{free_port()}"])

    assert code == 2
    assert f"error: {notes}: cannot decode it as audio" in capsys.readouterr().err


# --- against fake servers ------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[Callable[..., str]]:
    """Start a websocket server in a thread: `server(handler, process_request=None)` → ws:// URL."""
    running = []

    def start(
        handler: Callable[[ServerConnection], None],
        process_request: Callable[[ServerConnection, Request], Response | None] | None = None,
    ) -> str:
        instance = serve(handler, "127.0.0.1", 0, process_request=process_request)
        thread = threading.Thread(target=instance.serve_forever, daemon=True)
        thread.start()
        running.append((instance, thread))
        return f"ws://127.0.0.1:{instance.socket.getsockname()[1]}"

    yield start
    for instance, thread in running:
        instance.shutdown()
        thread.join(timeout=5)


def one_final_per_participant(connection: ServerConnection) -> None:
    participants: list[str] = []
    for frame in connection:
        assert isinstance(frame, bytes)
        parsed = parse_client_message(frame)
        if isinstance(parsed, EndOfMeeting):
            break
        if parsed.participant_id not in participants:
            participants.append(parsed.participant_id)
            connection.send(json.dumps(interim(parsed.participant_id, "u1", "hearing you")))
    for participant in participants:
        connection.send(json.dumps({**final(participant, "u1", f"{participant} spoke.", 0.5), "ts": 0}))
    connection.close(CloseCode.NORMAL_CLOSURE)


def test_main_on_a_terminal_draws_the_meeting_live(
    server: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server(one_final_per_participant)
    mp3 = encode(tone_pcm(1.0), tmp_path / "anna.mp3", "mp3", 44_100, "stereo")
    console = recording_console()

    code = main([str(mp3), "--url", url, "--fast"], console=console, err_console=recording_console())

    drawn = console.export_text()
    assert code == 0
    assert "finals" in drawn and "anna spoke." in drawn
    assert "anna: anna spoke." in drawn
    assert capsys.readouterr().out == ""  # everything went through the console


def test_main_reports_an_http_refusal_with_its_status_and_body(
    server: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(403, "token audience not accepted\n")

    url = server(one_final_per_participant, process_request=refuse)
    mp3 = encode(tone_pcm(0.5), tmp_path / "a.mp3", "mp3", 16_000, "mono")

    code = main([str(mp3), "--url", url + "/streaming-whisper/ws/m?auth_token=SECRET", "--fast"])

    err = capsys.readouterr().err
    assert code == 1
    assert "server refused the connection: HTTP 403 Forbidden: token audience not accepted" in err
    assert "SECRET" not in err


def test_main_reports_a_policy_close_with_code_and_reason(
    server: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server(lambda connection: connection.close(CloseCode.POLICY_VIOLATION, "token expired"))
    flac = encode(tone_pcm(0.5), tmp_path / "a.flac", "flac", SAMPLE_RATE, "mono")

    code = main([str(flac), "--url", url, "--fast", "--json"])

    assert code == 1
    assert "error: connection closed with code 1008 (token expired)" in capsys.readouterr().err


def test_main_exits_1_when_the_server_reported_an_error_even_if_it_closed_normally(
    server: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse_language(connection: ServerConnection) -> None:
        for frame in connection:
            assert isinstance(frame, bytes)
            if isinstance(parse_client_message(frame), EndOfMeeting):
                break
            error = {"type": "error", "code": 1007, "message": "cannot serve 'fr'", "participant_id": "a"}
            connection.send(json.dumps(error))
        connection.close(CloseCode.NORMAL_CLOSURE)

    url = server(refuse_language)
    flac = encode(tone_pcm(0.5), tmp_path / "a.flac", "flac", SAMPLE_RATE, "mono")

    code = main([str(flac), "--url", url, "--fast", "--lang", "fr"])

    err = capsys.readouterr().err
    assert code == 1
    assert "server error 1007 (a): cannot serve 'fr'" in err
    assert "error: the server reported 1 error(s); transcripts may be incomplete" in err


def test_main_reports_an_unreachable_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flac = encode(tone_pcm(0.5), tmp_path / "a.flac", "flac", SAMPLE_RATE, "mono")
    url = f"ws://127.0.0.1:{free_port()}"

    code = main([str(flac), "--url", url])

    assert code == 1
    assert f"error: cannot connect to {url}/streaming-whisper/ws/" in capsys.readouterr().err


def test_stream_subcommand_runs_the_same_client(
    server: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server(one_final_per_participant)
    flac = encode(tone_pcm(0.5), tmp_path / "bob.flac", "flac", SAMPLE_RATE, "mono")

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["stream", str(flac), "--url", url, "--fast", "--json"])

    out = capsys.readouterr().out.splitlines()
    assert exit_info.value.code == 0
    assert [json.loads(line)["type"] for line in out] == ["interim", "final"]


@pytest.mark.parametrize(
    ("query", "extras", "asked"),
    [
        ("?auth_token=t", ["--words", "--json"], "?auth_token=t&words=1"),
        ("", ["--keyterms", "Kraków, Zabbix"], "?keyterms=Krak%C3%B3w%2CZabbix"),
    ],
    ids=["words", "keyterms"],
)
def test_an_extra_goes_in_the_query_keeping_the_rest_of_it(
    server: Callable[..., str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    query: str,
    extras: list[str],
    asked: str,
) -> None:
    paths: list[str] = []

    def record(connection: ServerConnection, request: Request) -> Response | None:
        paths.append(request.path)
        return None

    url = server(one_final_per_participant, process_request=record)
    wav = encode(tone_pcm(1.0), tmp_path / "anna.wav", "pcm_s16le", 16_000, "mono")

    code = main([str(wav), "--url", f"{url}/streaming-whisper/ws/m1{query}", "--fast", *extras])

    assert code == 0
    assert paths == [f"/streaming-whisper/ws/m1{asked}"]
    assert "anna spoke." in capsys.readouterr().out


def test_an_empty_keyterm_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "a.wav"), "--keyterms", "Zabbix,,Hetzner"])

    assert exit_info.value.code == 2
    assert "an empty keyterm in 'Zabbix,,Hetzner'" in capsys.readouterr().err

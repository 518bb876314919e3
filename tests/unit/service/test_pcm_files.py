"""service.pcm_files: WAV and FLAC in the service's format, written and read back sample for sample;
anything else refused with the reason."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import pytest

from service.audio import SAMPLE_RATE
from service.pcm_files import read_pcm, write_pcm

pytestmark = pytest.mark.unit


def noise_pcm(seconds: float = 1.3) -> bytes:
    """Full-range random samples: nothing a lossy step could keep by chance."""
    samples = np.random.default_rng(5).integers(-32768, 32767, int(SAMPLE_RATE * seconds), endpoint=True)
    return samples.astype("<i2").tobytes()


@pytest.mark.parametrize("name", ["a.wav", "a.flac", "A.WAV"])
def test_written_audio_reads_back_sample_for_sample(tmp_path: Path, name: str) -> None:
    pcm = noise_pcm()
    write_pcm(tmp_path / name, pcm)

    assert read_pcm(tmp_path / name) == pcm


def test_an_empty_flac_reads_as_no_samples(tmp_path: Path) -> None:
    write_pcm(tmp_path / "empty.flac", b"")

    assert read_pcm(tmp_path / "empty.flac") == b""


def test_a_wav_at_another_rate_is_refused_with_its_shape(tmp_path: Path) -> None:
    path = tmp_path / "phone.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(8_000)
        out.writeframes(b"\0" * 400)

    with pytest.raises(ValueError, match=r"need 16 kHz mono 16-bit audio, got 8000 Hz, 2 channel\(s\)"):
        read_pcm(path)


@pytest.mark.parametrize("content", [b"not audio at all", b"fLaC" + bytes(range(200))])
def test_a_file_ffmpeg_cannot_read_is_refused_with_the_reason(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.flac"
    path.write_bytes(content)

    with pytest.raises(ValueError, match=r"broken\.flac: cannot decode it \(.+\)"):
        read_pcm(path)


def test_a_flac_at_another_rate_is_refused_not_resampled(tmp_path: Path) -> None:
    path = tmp_path / "studio.flac"
    with av.open(str(path), "w", format="flac") as container:
        stream = container.add_stream("flac", rate=44_100)
        stream.layout = "mono"
        stream.format = "s16"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4410), dtype="<i2"), format="s16", layout="mono")
        frame.sample_rate = 44_100
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)

    with pytest.raises(ValueError, match=r"need 16 kHz mono 16-bit audio, got 44100 Hz, 1 channel\(s\)"):
        read_pcm(path)

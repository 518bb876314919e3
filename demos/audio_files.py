"""Audio files as the protocol carries them: PCM s16le, mono, 16 kHz (SPEC §2).

A WAV already in that format is read as is. Anything else FFmpeg reads (mp3, flac, ogg, m4a,
WAVs at other rates or with more channels, the sound of a video) is decoded, mixed down and
resampled by PyAV, through faster-whisper's `decode_audio`.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from service.audio import SAMPLE_RATE
from service.pcm_files import read_pcm

INT16_SCALE = 32768.0
"""`decode_audio` resamples to s16 and divides by 2**15: multiplying back gives the samples exactly."""


class AudioFileError(ValueError):
    """A file that cannot be streamed; the message names the file and says why."""


def load_pcm(path: Path) -> bytes:
    """The file's audio as PCM s16le mono 16 kHz bytes."""
    if not path.exists():
        raise AudioFileError(f"{path}: no such file")
    if path.is_dir():
        raise AudioFileError(f"{path}: is a folder, not an audio file")
    try:
        return read_pcm(path)
    except (wave.Error, EOFError, ValueError):
        pass  # not a WAV, or not 16 kHz mono 16-bit: FFmpeg decodes and resamples it
    return decode_pcm(path)


def decode_pcm(path: Path) -> bytes:
    import av
    from faster_whisper.audio import decode_audio

    try:
        samples = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    except av.error.FFmpegError as error:
        raise AudioFileError(f"{path}: cannot decode it as audio ({error.strerror or error})") from None
    except IndexError:
        raise AudioFileError(f"{path}: holds no audio stream") from None
    if not len(samples):
        raise AudioFileError(f"{path}: holds no audio samples")
    return np.round(samples * INT16_SCALE).astype("<i2").tobytes()

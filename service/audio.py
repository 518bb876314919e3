"""The audio format of the whole service: PCM s16le, mono, 16 kHz (SPEC §2)."""

from __future__ import annotations

import io
import wave

import numpy as np

SAMPLE_RATE = 16_000
SAMPLE_WIDTH_BYTES = 2
BYTES_PER_SECOND = SAMPLE_RATE * SAMPLE_WIDTH_BYTES


def pcm_to_float32(pcm: bytes) -> np.ndarray:
    """PCM s16le bytes to float32 samples in [-1, 1), the form Whisper and Silero expect."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def pcm_to_wav(pcm: bytes) -> bytes:
    """Wrap raw PCM in a WAV header (the `audio` field of a final)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_WIDTH_BYTES)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm)
    return buffer.getvalue()

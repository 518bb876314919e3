"""Audio files in the service's format (16 kHz mono 16-bit), read and written sample for sample:
WAV through the standard library, FLAC (the corpus) through FFmpeg by PyAV, which faster-whisper
brings. Other audio is resampled by `demos.audio_files`, never here."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from service.audio import SAMPLE_RATE, SAMPLE_WIDTH_BYTES, pcm_to_wav

FLAC_FRAME_SAMPLES = 4096


def read_pcm(path: str | Path) -> bytes:
    """PCM bytes of a 16 kHz mono 16-bit WAV or FLAC file, exactly the samples stored; anything else
    is refused with the reason. The corpus is FLAC; `demos.audio_files` resamples any other audio."""
    if is_wav(path):
        return read_wav_pcm(str(path))
    return read_flac_pcm(str(path))


def write_pcm(path: str | Path, pcm: bytes) -> None:
    """PCM s16le mono 16 kHz as a WAV file, or as FLAC (compression level 12) for any other name."""
    if is_wav(path):
        Path(path).write_bytes(pcm_to_wav(pcm))
    else:
        write_flac_pcm(str(path), pcm)


def is_wav(path: str | Path) -> bool:
    return str(path).lower().endswith(".wav")


def read_wav_pcm(path: str) -> bytes:
    """PCM bytes of a 16 kHz mono s16 WAV file; anything else is refused with the reason."""
    with wave.open(path, "rb") as wav:
        _check_shape(path, wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
        return wav.readframes(wav.getnframes())


def read_flac_pcm(path: str) -> bytes:
    """PCM bytes of a 16 kHz mono 16-bit file FFmpeg decodes without resampling (FLAC, say); a
    ValueError says why anything else is refused."""
    import av  # FFmpeg, through PyAV (which faster-whisper brings); only file readers need it

    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise ValueError(f"{path}: holds no audio stream")
            stream = container.streams.audio[0]
            codec = stream.codec_context
            if codec.format is None:  # FFmpeg guessed a stream it cannot decode (text, say)
                raise ValueError(f"{path}: cannot decode it (no sample format)")
            _check_shape(path, codec.sample_rate, codec.layout.nb_channels, codec.format.bytes)
            if codec.format.name not in ("s16", "s16p"):
                raise ValueError(f"{path}: need 16-bit integer samples, got {codec.format.name}")
            chunks = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
    except av.error.FFmpegError as error:
        raise ValueError(f"{path}: cannot decode it ({error.strerror or error})") from None
    if not chunks:
        return b""
    return np.concatenate(chunks).astype("<i2", copy=False).tobytes()


def _check_shape(path: str, rate: int, channels: int, sample_bytes: int) -> None:
    if (rate, channels, sample_bytes) != (SAMPLE_RATE, 1, SAMPLE_WIDTH_BYTES):
        raise ValueError(
            f"{path}: need 16 kHz mono 16-bit audio, got {rate} Hz, {channels} channel(s), "
            f"{8 * sample_bytes}-bit"
        )


def write_flac_pcm(path: str, pcm: bytes) -> None:
    import av

    samples = np.frombuffer(pcm, dtype="<i2")
    with av.open(path, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=SAMPLE_RATE, options={"compression_level": "12"})
        stream.layout = "mono"
        stream.format = "s16"
        for start in range(0, len(samples), FLAC_FRAME_SAMPLES):
            chunk = samples[start : start + FLAC_FRAME_SAMPLES].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)

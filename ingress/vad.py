"""Streaming voice activity detection: Silero VAD (ONNX) run on each new chunk only.

faster-whisper ships the Silero model file; we locate it without importing faster-whisper (the
ingress never loads the speech model's code) and run it with onnxruntime, carrying the LSTM state
and the 64-sample context from one chunk to the next, so each chunk costs a few milliseconds.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

FRAME_SAMPLES = 512
"""32 ms at 16 kHz: the frame Silero scores."""
CONTEXT_SAMPLES = 64
STATE_SHAPE = (1, 1, 128)
MODEL_FILE = "silero_vad_v6.onnx"


def default_model_path() -> Path:
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("faster-whisper is not installed, and it ships the Silero VAD model we use")
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / MODEL_FILE


class SileroVad:
    """The ONNX session, built once per process and shared by every participant's stream."""

    def __init__(self, model_path: Path | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        options.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(model_path or default_model_path()), providers=["CPUExecutionProvider"], sess_options=options
        )

    def new_stream(self) -> VadStream:
        return VadStream(self)

    def score(
        self, frames: np.ndarray, h: np.ndarray, c: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        probs, h, c = self._session.run(None, {"input": frames, "h": h, "c": c})
        return np.asarray(probs, dtype=np.float32).reshape(-1), h, c


class VadStream:
    """One participant's VAD state; feed it samples in order, get one speech probability per frame."""

    def __init__(self, vad: SileroVad) -> None:
        self._vad = vad
        self._h = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Speech probabilities of every whole frame completed by `samples` (float32 in [-1, 1))."""
        audio = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        whole = len(audio) // FRAME_SAMPLES * FRAME_SAMPLES
        self._pending = audio[whole:]
        if whole == 0:
            return np.zeros(0, dtype=np.float32)
        frames = audio[:whole].reshape(-1, FRAME_SAMPLES)
        # Each row is scored with the 64 samples that precede it, the way Silero was trained.
        contexts = np.concatenate([self._context[None, :], frames[:-1, -CONTEXT_SAMPLES:]])
        self._context = frames[-1, -CONTEXT_SAMPLES:].copy()
        probs, self._h, self._c = self._vad.score(
            np.concatenate([contexts, frames], axis=1), self._h, self._c
        )
        return probs

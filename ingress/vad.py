"""Streaming voice activity detection: Silero VAD (ONNX) run on each new chunk only.

faster-whisper ships the Silero model file; we locate it without importing faster-whisper (the
ingress never loads the speech model's code), or take the file VAD_MODEL_PATH names (an ingress
installed without the worker's packages, as its image is), and run it with onnxruntime, carrying
the LSTM state and the 64-sample context from one chunk to the next, so each chunk costs a few
milliseconds.

The model was half of the ingress's CPU (about 2 ms a second of audio). Digital silence, which a
muted or idle client sends, is not run through it once it has lasted half a second; sound after it
is heard from a fresh state. Silero's own state drifts over long stretches of zeros: on the corpus's
meeting tracks, where turns are separated by zeros, it heard the next turn's first seconds as
fragments (speech probabilities 0.3-0.5) that a fresh state hears as one stretch of speech (0.6-0.8).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.audio import pcm_to_float32

FRAME_SAMPLES = 512
"""32 ms at 16 kHz: the frame Silero scores."""
CONTEXT_SAMPLES = 64
STATE_SHAPE = (1, 1, 128)
MODEL_FILE = "silero_vad_v6.onnx"
DIGITAL_SILENCE = 1.5 / 32768
"""A frame whose every sample is within one step of zero (of 16-bit PCM) is digital silence: what a
muted microphone, a paused track or a client's own gate sends, never a microphone's noise floor."""
SILENCE_RESETS_AFTER = 16
"""Frames (0.5 s) of digital silence after which the model is not run on more of it: those frames
score 0 (the model gives such frames at most 0.03) and the next sound starts from a fresh state, as
a new participant's would. Half the frames of the corpus's meeting tracks are digital silence."""


VAD_THREADS = min(4, os.cpu_count() or 1)
"""Threads that run the model for every participant. onnxruntime lets go of the GIL while it runs,
so a thread a core keeps the cores busy; the default executor's cores + 4 threads only took turns
from the event loop (its dispatch-to-result wait a fifth of what it was with them: README,
Capacity)."""


def default_model_path() -> Path:
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"no Silero VAD model: set VAD_MODEL_PATH to a {MODEL_FILE} file, or install the worker's "
            "packages (pip install 'streaming-whisper[worker]': faster-whisper ships the file)"
        )
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
        self.executor = ThreadPoolExecutor(max_workers=VAD_THREADS, thread_name_prefix="vad")

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    def new_stream(self) -> VadStream:
        return VadStream(self)

    def score(
        self, frames: np.ndarray, h: np.ndarray, c: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        probs, h, c = self._session.run(None, {"input": frames, "h": h, "c": c})
        return np.asarray(probs, dtype=np.float32).reshape(-1), h, c


@dataclass(frozen=True)
class VadState:
    """All a `VadStream` holds, to go on with a participant's stream after a reconnect: its
    frames stay aligned with the policy's, and the model hears on as if nothing happened."""

    pending: tuple[float, ...]
    """Samples of a frame not yet whole (fewer than FRAME_SAMPLES)."""
    h: tuple[float, ...]
    c: tuple[float, ...]
    context: tuple[float, ...]
    silent_frames: int


class VadStream:
    """One participant's VAD state; feed it samples in order, get one speech probability per frame."""

    def __init__(self, vad: SileroVad) -> None:
        self._vad = vad
        self._pending = np.zeros(0, dtype=np.float32)
        self._silent_frames = 0
        """Frames of digital silence just before the pending samples (counted up to the reset)."""
        self._reset()

    def _reset(self) -> None:
        self._h = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)

    def state(self) -> VadState:
        return VadState(
            tuple(self._pending.tolist()),
            tuple(self._h.reshape(-1).tolist()),
            tuple(self._c.reshape(-1).tolist()),
            tuple(self._context.tolist()),
            self._silent_frames,
        )

    def restore(self, state: VadState) -> None:
        """Go on from `state`; raises ValueError when it is not a Silero stream's."""
        size = STATE_SHAPE[-1]
        if len(state.h) != size or len(state.c) != size or len(state.context) != CONTEXT_SAMPLES:
            raise ValueError("VAD state of another shape than Silero's")
        if len(state.pending) >= FRAME_SAMPLES or state.silent_frames < 0:
            raise ValueError(f"VAD state holds {len(state.pending)} pending samples (under {FRAME_SAMPLES})")
        self._pending = np.asarray(state.pending, dtype=np.float32)
        self._h = np.asarray(state.h, dtype=np.float32).reshape(STATE_SHAPE)
        self._c = np.asarray(state.c, dtype=np.float32).reshape(STATE_SHAPE)
        self._context = np.asarray(state.context, dtype=np.float32)
        self._silent_frames = state.silent_frames

    async def hear(self, pcm: bytes) -> np.ndarray:
        """`process` of 16-bit PCM on the model's threads, the conversion included: off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._vad.executor, self._process_pcm, pcm)

    def _process_pcm(self, pcm: bytes) -> np.ndarray:
        return self.process(pcm_to_float32(pcm))

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Speech probabilities of every whole frame completed by `samples` (float32 in [-1, 1))."""
        audio = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        whole = len(audio) // FRAME_SAMPLES * FRAME_SAMPLES
        self._pending = audio[whole:]
        frames = audio[:whole].reshape(-1, FRAME_SAMPLES)
        probs = np.zeros(len(frames), dtype=np.float32)
        # Each stretch the model hears: frames up to the point where digital silence has lasted
        # SILENCE_RESETS_AFTER frames; what follows in the silence is skipped (probability 0).
        silent = np.abs(frames).max(axis=1, initial=0.0) <= DIGITAL_SILENCE
        start = 0
        while start < len(frames):
            if self._silent_frames >= SILENCE_RESETS_AFTER and silent[start]:
                start += 1
                continue
            if self._silent_frames >= SILENCE_RESETS_AFTER:
                self._reset()  # sound after a long digital silence: heard afresh
                self._silent_frames = 0
            end = start
            while end < len(frames) and self._silent_frames < SILENCE_RESETS_AFTER:
                self._silent_frames = self._silent_frames + 1 if silent[end] else 0
                end += 1
            probs[start:end] = self._score(frames[start:end])
            start = end
        return probs

    def _score(self, frames: np.ndarray) -> np.ndarray:
        # Each row is scored with the 64 samples that precede it, the way Silero was trained.
        contexts = np.concatenate([self._context[None, :], frames[:-1, -CONTEXT_SAMPLES:]])
        self._context = frames[-1, -CONTEXT_SAMPLES:].copy()
        probs, self._h, self._c = self._vad.score(
            np.concatenate([contexts, frames], axis=1), self._h, self._c
        )
        return probs

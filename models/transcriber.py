"""The faster-whisper wrapper the workers use: load once, transcribe windows into timed words.

`Transcriber` is the face of `models/`: the worker calls `transcribe_batch` (the batch path,
`batch.py`), the benchmarks `transcribe` and `transcribe_recording` (the single path,
`single.py`). The loaded model and its tokenizers are in `engine.py`, the arithmetic of budgets,
padding and prompt groups in `decoding.py`, word times in `word_timings.py`, and which decoded
words are kept in `segments.py`."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from models.batch import transcribe_together
from models.catalogue import resolve_model_folder
from models.decoding import parallel_parts
from models.engine import WhisperEngine
from models.language_detection import detect_languages
from models.single import transcribe_single
from models.window import Window
from service.audio import SAMPLE_RATE, SAMPLE_WIDTH_BYTES
from service.contracts import WordTiming
from service.languages import AUTO, ENGLISH
from service.settings import Device, Settings

logger = logging.getLogger(__name__)


class UnsupportedLanguageError(ValueError):
    pass


@dataclass(frozen=True)
class Transcription:
    words: list[WordTiming]
    compute_s: float
    language: str | None = None
    """What the window's speech was heard as, when its window asked (`Window.needs_detection`)."""
    language_probability: float | None = None
    """None: the model is English-only, and `language` is English whatever was said."""


def pick_device(requested: Device) -> str:
    """`auto` means CUDA when CTranslate2 sees a GPU, else CPU."""
    if requested is not Device.AUTO:
        return requested.value
    import ctranslate2

    return Device.CUDA.value if ctranslate2.get_cuda_device_count() > 0 else Device.CPU.value


class Transcriber:
    def __init__(
        self, engine: WhisperEngine, model_folder: Path, name: str, device: str, parallel_calls: int = 1
    ) -> None:
        self._engine = engine
        self.parallel_calls = parallel_calls
        self._calls = ThreadPoolExecutor(parallel_calls, "model-call") if parallel_calls > 1 else None
        """Threads that submit the parts of a batch to the replicas (CTranslate2 frees the GIL)."""
        self.model_folder = model_folder
        self.name = name
        self.device = device
        self.load_s = engine.load_s

    @classmethod
    def from_settings(cls, settings: Settings, gpu_index: int | None = None) -> Transcriber:
        device = pick_device(settings.whisper_device)
        folder = resolve_model_folder(settings.whisper_model_name, settings.whisper_model_path)
        parallel_calls = settings.parallel_model_calls(device)
        engine = WhisperEngine(
            folder,
            device=device,
            device_index=gpu_index if gpu_index is not None else settings.whisper_gpu_indices,
            compute_type=settings.whisper_compute_type,
            beam_size=settings.beam_size,
            cpu_threads=settings.whisper_cpu_threads,
            parallel_calls=parallel_calls,
            prompt_tokens=settings.whisper_prompt_tokens,
        )
        return cls(engine, folder, settings.whisper_model_name, device, parallel_calls)

    @property
    def decoder_calls(self) -> int:
        """Decoder calls made so far (windows per call: the batch fill a GPU's throughput follows)."""
        return self._engine.decoder_calls

    def warm_up(self) -> float:
        """One model call on two seconds of silence, before the process reports ready: the first
        call pays for set-up that a participant's window would otherwise wait for (on an H200,
        CTranslate2 compiled its kernels for 19.6 s). Returns its seconds."""
        started = time.perf_counter()
        self.transcribe_batch([Window(pcm=bytes(2 * SAMPLE_RATE * SAMPLE_WIDTH_BYTES), language=ENGLISH)])
        seconds = time.perf_counter() - started
        logger.info("model %s warmed up in %.2f s", self.name, seconds)
        return seconds

    @property
    def multilingual(self) -> bool:
        return self._engine.multilingual

    def check_language(self, language: str) -> None:
        if not self.multilingual and language not in (ENGLISH, AUTO):
            raise UnsupportedLanguageError(
                f"the loaded model ({self.name}) is English-only and cannot serve {language!r}"
            )

    def transcribe(self, pcm: bytes, language: str, prompt: str = "") -> Transcription:
        """Words of one streaming window (at most 30 s) with times in seconds from its start, in one
        encoder pass; made-up segments dropped."""
        return self._single(pcm, language, prompt, whole_recording=False)

    def transcribe_recording(self, pcm: bytes, language: str) -> Transcription:
        """Words of a whole recording of any length, as an offline transcription does it (the
        benchmarks' offline limit): every 30 s segment, timestamps deciding where the next begins."""
        return self._single(pcm, language, "", whole_recording=True)

    def _single(self, pcm: bytes, language: str, prompt: str, whole_recording: bool) -> Transcription:
        self.check_language(language)
        started = time.perf_counter()
        words = transcribe_single(self._engine, pcm, language, prompt, whole_recording)
        return Transcription(words=words, compute_s=time.perf_counter() - started)

    def transcribe_batch(self, windows: Sequence[Window]) -> list[Transcription]:
        """What `transcribe` gives for each window, for several windows at once: one encoder pass
        (each window padded to the longest one's `encoder_frames`), one decoder call per group of
        equally long prompts (`prompt_groups`), one alignment pass for the word times; per language
        when windows differ in it. Windows that ask for their language are first detected together
        (`auto` ones are then decoded in what they were heard as). Each window's `compute_s` is an
        equal share of the batch's time.

        Raises UnsupportedLanguageError before any work when a window's language cannot be served."""
        for window in windows:
            self.check_language(window.language)
        started = time.perf_counter()
        detected = self._detect(windows)
        languages = [
            (detected[index][0] if window.language == AUTO else window.language)
            for index, window in enumerate(windows)
        ]
        words: list[list[WordTiming]] = [[] for _ in windows]
        parts = parallel_parts(languages, self.parallel_calls)

        def run(part: list[int]) -> list[list[WordTiming]]:
            return transcribe_together(self._engine, [windows[i] for i in part], languages[part[0]])

        heard_by_part = map(run, parts) if self._calls is None else self._calls.map(run, parts)
        for part, heard_in_part in zip(parts, heard_by_part, strict=True):
            for index, heard in zip(part, heard_in_part, strict=True):
                words[index] = heard
        share = (time.perf_counter() - started) / max(len(windows), 1)
        return [
            Transcription(heard, share, *detected.get(index, (None, None)))
            for index, heard in enumerate(words)
        ]

    def _detect(self, windows: Sequence[Window]) -> dict[int, tuple[str, float | None]]:
        """The language of each window that asks for it, by index. An English-only model knows no
        other: English, with no probability."""
        asking = [index for index, window in enumerate(windows) if window.needs_detection]
        if not asking:
            return {}
        if not self.multilingual:
            return {index: (ENGLISH, None) for index in asking}
        heard = detect_languages(self._engine, [windows[index].pcm for index in asking])
        return dict(zip(asking, heard, strict=True))

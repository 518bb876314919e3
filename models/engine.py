"""The faster-whisper model, loaded once per process, and what both transcription paths build on:
its tokenizers, a window's prompt, one decoder call, and the encoder input cut to the window."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from models.cuda_libraries import load_cuda_libraries
from models.decoding import LAST_TIMESTAMP_INDEX, previous_text
from service.settings import Device

logger = logging.getLogger(__name__)


class WhisperEngine:
    def __init__(
        self,
        model_folder: Path,
        *,
        device: str = "cpu",
        device_index: int | list[int] = 0,
        compute_type: str = "int8",
        beam_size: int = 1,
        cpu_threads: int = 0,
        parallel_calls: int = 1,
        prompt_tokens: int = 0,
    ) -> None:
        from faster_whisper import WhisperModel

        if device == Device.CUDA.value:
            load_cuda_libraries()  # a clear error now, not a crash inside the first window
        started = time.perf_counter()
        self.model = WhisperModel(
            str(model_folder),
            device=device,
            device_index=device_index,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            # CTranslate2 replicas sharing the weights, each running one call at a time.
            num_workers=parallel_calls,
            local_files_only=True,
        )
        self.beam_size = beam_size
        self._prompt_tokens = prompt_tokens
        self.decoder_calls = 0
        """Decoder calls made so far (windows per call: the batch fill a GPU's throughput follows)."""
        self._count_lock = threading.Lock()
        self._tokenizers: dict[str, Any] = {}
        self._encoder_frames: int | None = None
        full_encode = self.model.encode

        def encode(features: Any) -> Any:
            if self._encoder_frames is not None and features.shape[-1] > self._encoder_frames:
                features = features[..., : self._encoder_frames]
            return full_encode(features)

        self.model.encode = encode
        self.load_s = time.perf_counter() - started
        logger.info("loaded model %s on %s (%s) in %.2f s", model_folder, device, compute_type, self.load_s)

    @property
    def multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)

    @contextlib.contextmanager
    def encoder_input(self, frames: int) -> Iterator[None]:
        """Within it, faster-whisper's own encoder calls (which pad every input to 30 s) get only
        the first `frames` mel frames (`decoding.encoder_frames`)."""
        self._encoder_frames = frames
        try:
            yield
        finally:
            self._encoder_frames = None

    def tokenizer(self, language: str) -> Any:
        """One tokenizer per language for the process's life, not one per window."""
        if language not in self._tokenizers:
            from faster_whisper.tokenizer import Tokenizer

            model = self.model
            self._tokenizers[language] = Tokenizer(
                model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language
            )
        return self._tokenizers[language]

    def previous_tokens(self, tokenizer: Any, text: str) -> list[int]:
        """A window's previous text as tokens (encoded as faster-whisper encodes `initial_prompt`),
        cut to `prompt_tokens` (`previous_text`): both paths prompt a window with these."""
        previous = tokenizer.encode(" " + text.strip()) if text.strip() else []
        return previous_text(previous, self._prompt_tokens)

    def prompt(
        self, tokenizer: Any, text: str, without_timestamps: bool = True, keyterms: Sequence[str] = ()
    ) -> list[int]:
        """The decoder prompt of a window, as faster-whisper builds it from `initial_prompt` and
        `hotwords` (the keyterms, comma-separated, before the previous text; at most half of the
        decoder's 448 tokens, as faster-whisper cuts them)."""
        previous = self.previous_tokens(tokenizer, text)
        hotwords = ", ".join(keyterms) or None
        return list(
            self.model.get_prompt(
                tokenizer, previous, without_timestamps=without_timestamps, hotwords=hotwords
            )
        )

    def generate(
        self, features: Any, prompts: list[list[int]], max_length: int, suppress: list[int]
    ) -> list[Any]:
        """One decoder call with the options faster-whisper gives a window at temperature 0."""
        with self._count_lock:  # the parts of a batch may run on several threads
            self.decoder_calls += 1
        return list(
            self.model.model.generate(
                features,
                prompts,
                beam_size=self.beam_size,
                patience=1,
                length_penalty=1,
                repetition_penalty=1,
                no_repeat_ngram_size=0,
                max_length=max_length,
                return_scores=True,
                return_no_speech_prob=True,
                # A continued window's first token is its forced start timestamp, however late.
                max_initial_timestamp_index=LAST_TIMESTAMP_INDEX,
                suppress_blank=True,
                suppress_tokens=suppress,
            )
        )

"""The faster-whisper wrapper the workers use: load once, transcribe windows into timed words."""

from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.catalogue import resolve_model_folder
from models.hallucinations import SegmentStats, is_hallucination, loop_start
from service.audio import SAMPLE_RATE, pcm_to_float32
from service.contracts import WordTiming
from service.languages import ENGLISH
from service.settings import Device, Settings

logger = logging.getLogger(__name__)

TEMPERATURE = 0.0
"""Greedy only. Whisper's fallback to sampling at higher temperatures, meant for offline files,
made up whole sentences at the end of live windows ("This is the first time I've been working
on.") and made results differ run to run; loops are cut by `loop_start` and the token budget."""
MAX_TOKENS_PER_SECOND = 8
"""Fast speech is about 4 words (6 tokens) a second; more than this is a loop."""
MIN_TOKENS = 10


MAX_NEW_TOKENS = 220
"""Whisper decodes at most 448 tokens and keeps up to half of them for the prompt."""
SEGMENT_S = 30.0


def token_budget(seconds: float) -> int:
    """Tokens a 30 s segment of this much audio can honestly need."""
    return min(int(min(seconds, SEGMENT_S) * MAX_TOKENS_PER_SECOND) + MIN_TOKENS, MAX_NEW_TOKENS)


MIN_ENCODER_S = 10.0
"""The encoder hears a window padded to this much, not to Whisper's 30 s (CTranslate2 accepts
shorter inputs): a 5 s window then costs a third of the encoder time. Much shorter padding has been
reported to hurt accuracy; at 10 s the benchmark's long-form and meeting WER held or improved."""
FRAMES_PER_SECOND = 100


def encoder_frames(seconds: float) -> int:
    """Mel frames the encoder gets for a window: its audio plus at least 1 s, within [10 s, 30 s]."""
    padded = min(SEGMENT_S, max(MIN_ENCODER_S, math.ceil(seconds + 1.0)))
    return int(padded * FRAMES_PER_SECOND)


class UnsupportedLanguageError(ValueError):
    pass


@dataclass(frozen=True)
class Transcription:
    words: list[WordTiming]
    compute_s: float


def pick_device(requested: Device) -> str:
    """`auto` means CUDA when CTranslate2 sees a GPU, else CPU."""
    if requested is not Device.AUTO:
        return requested.value
    import ctranslate2

    return Device.CUDA.value if ctranslate2.get_cuda_device_count() > 0 else Device.CPU.value


class Transcriber:
    def __init__(
        self,
        model_folder: Path,
        *,
        device: str = "cpu",
        device_index: int | list[int] = 0,
        compute_type: str = "int8",
        beam_size: int = 1,
        cpu_threads: int = 0,
        name: str | None = None,
    ) -> None:
        from faster_whisper import WhisperModel

        started = time.perf_counter()
        self._model = WhisperModel(
            str(model_folder),
            device=device,
            device_index=device_index,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            local_files_only=True,
        )
        self._beam_size = beam_size
        self._encoder_frames: int | None = None
        """Set while a window is transcribed: faster-whisper pads every input to 30 s, and this
        wrapper around its encoder call cuts the padding back to `encoder_frames()`."""
        full_encode = self._model.encode

        def encode(features: Any) -> Any:
            if self._encoder_frames is not None and features.shape[-1] > self._encoder_frames:
                features = features[..., : self._encoder_frames]
            return full_encode(features)

        self._model.encode = encode
        self.model_folder = model_folder
        self.name = name or model_folder.name
        self.device = device
        self.load_s = time.perf_counter() - started
        logger.info("loaded model %s on %s (%s) in %.2f s", model_folder, device, compute_type, self.load_s)

    @classmethod
    def from_settings(cls, settings: Settings, gpu_index: int | None = None) -> Transcriber:
        device = pick_device(settings.whisper_device)
        return cls(
            resolve_model_folder(settings.whisper_model_name, settings.whisper_model_path),
            device=device,
            device_index=gpu_index if gpu_index is not None else settings.whisper_gpu_indices,
            compute_type=settings.whisper_compute_type,
            beam_size=settings.beam_size,
            cpu_threads=settings.whisper_cpu_threads,
            name=settings.whisper_model_name,
        )

    @property
    def multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    def check_language(self, language: str) -> None:
        if not self.multilingual and language != ENGLISH:
            raise UnsupportedLanguageError(
                f"the loaded model ({self.name}) is English-only and cannot serve {language!r}"
            )

    def transcribe(self, pcm: bytes, language: str, prompt: str = "") -> Transcription:
        """Words of one streaming window (at most 30 s) with times in seconds from its start, in one
        encoder pass; made-up segments dropped."""
        return self._transcribe(pcm, language, prompt, whole_recording=False)

    def transcribe_recording(self, pcm: bytes, language: str) -> Transcription:
        """Words of a whole recording of any length, as an offline transcription does it (the
        benchmarks' offline limit): every 30 s segment, timestamps deciding where the next begins."""
        return self._transcribe(pcm, language, "", whole_recording=True)

    def _transcribe(self, pcm: bytes, language: str, prompt: str, whole_recording: bool) -> Transcription:
        self.check_language(language)
        started = time.perf_counter()
        audio = pcm_to_float32(pcm)
        segments, _info = self._model.transcribe(
            audio,
            language=language,
            beam_size=self._beam_size,
            temperature=TEMPERATURE,
            word_timestamps=True,
            initial_prompt=prompt or None,
            condition_on_previous_text=False,
            # A window is one segment without timestamp tokens. With them, faster-whisper ends its
            # pass at the last complete segment and encodes the window again (padded to 30 s) to
            # decode the tail alone, which doubled the compute and mostly made things up.
            without_timestamps=not whole_recording,
            vad_filter=False,
            # A loop would otherwise run to Whisper's 448-token limit at every fallback temperature.
            max_new_tokens=token_budget(len(audio) / SAMPLE_RATE),
        )
        if not whole_recording:
            # Asked for more, the generator would encode the audio after the last word once more.
            segments = itertools.islice(segments, 1)
            self._encoder_frames = encoder_frames(len(audio) / SAMPLE_RATE)
        words: list[WordTiming] = []
        try:
            decoded = list(segments)
        finally:
            self._encoder_frames = None
        for segment in decoded:
            segment_words = segment.words or []
            stats = SegmentStats(
                text=segment.text,
                no_speech_prob=segment.no_speech_prob,
                avg_logprob=segment.avg_logprob,
                compression_ratio=segment.compression_ratio,
                mean_word_probability=(
                    sum(w.probability for w in segment_words) / len(segment_words) if segment_words else 0.0
                ),
            )
            if is_hallucination(stats):
                logger.debug("dropped a segment that looks made up: %r", segment.text)
                continue
            words += [
                WordTiming(text=w.word, start=w.start, end=w.end, probability=w.probability)
                for w in segment_words
            ]
        loop = loop_start([word.text for word in words])
        if loop is not None:
            logger.debug("cut a decoding loop after %r", "".join(w.text for w in words[:loop]))
            words = words[:loop]
        return Transcription(words=words, compute_s=time.perf_counter() - started)

"""The faster-whisper wrapper the workers use: load once, transcribe windows into timed words."""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.catalogue import resolve_model_folder
from models.cuda_libraries import load_cuda_libraries
from models.hallucinations import (
    LOW_LOGPROB,
    NO_SPEECH_PROB,
    SegmentStats,
    is_hallucination,
    loop_start,
    unheard_run_start,
)
from service.audio import SAMPLE_RATE, SAMPLE_WIDTH_BYTES, pcm_to_float32
from service.contracts import NO_HINTS, DecoderHints, WordTiming, prefix_head
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


MAX_FRAMES = int(SEGMENT_S * FRAMES_PER_SECOND)
ENCODER_STEP_FRAMES = 10
"""Encoder inputs grow in steps of 0.1 s. In whole seconds, a 10.1 s window (most long-form
windows fill their 10.5 s of context) got 2 s of padding where 1 s is enough: 12 s of input
instead of 11.1 s, and the encoder's and the alignment's work grows with the input."""


def encoder_frames(seconds: float) -> int:
    """Mel frames the encoder gets for a window: its audio plus at least 1 s, within [10 s, 30 s]."""
    padded = (
        math.ceil(round((seconds + 1.0) * FRAMES_PER_SECOND / ENCODER_STEP_FRAMES, 6)) * ENCODER_STEP_FRAMES
    )
    return min(MAX_FRAMES, max(int(MIN_ENCODER_S * FRAMES_PER_SECOND), padded))


PREPEND_PUNCTUATION = "\"'“¿([{-"
APPEND_PUNCTUATION = "\"'.。,，!！?？:：”)]}、"
"""Punctuation joined to the next or previous word (faster-whisper's defaults, given to both paths)."""
SENTENCE_END = ".。!！?？"


def batch_frames(seconds: Sequence[float]) -> int:
    """Mel frames every window of a batch is padded to: the most any of them needs on its own."""
    return max(encoder_frames(duration) for duration in seconds)


def prompt_groups(prompts: Sequence[Sequence[int]], sot: int, no_timestamps: int) -> list[list[int]]:
    """Which windows of a batch can share one decoder call (indices, in batch order).

    CTranslate2 decodes a batch only when <|startoftranscript|> is at the same place in every
    prompt and as many task tokens (ids `sot` to `no_timestamps`) follow it, so a call takes the
    windows whose prompts agree on both; what they start the text with may differ."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, prompt in enumerate(prompts):
        start = list(prompt).index(sot)
        end = start + 1
        while end < len(prompt) and sot <= prompt[end] <= no_timestamps:
            end += 1
        groups.setdefault((start, end), []).append(index)
    return list(groups.values())


def previous_text(tokens: Sequence[int], length: int) -> list[int]:
    """A window's previous text at one length for every window: its last `length` tokens, or none
    when it has fewer. CTranslate2 decodes together only prompts whose <|startoftranscript|> sits
    at the same place (OpenNMT/CTranslate2#1118), so with prompts as they are nearly every window
    of a batch decoded alone; at one length they share a call (`prompt_groups`). Padding a short
    text instead (with <|startofprev|> or spaces) made Whisper drop whole sentences. 0: the text
    as it is."""
    if length <= 0:
        return list(tokens)
    return list(tokens[-length:]) if len(tokens) >= length else []


TIMESTAMP_STEP_S = 0.02
LAST_TIMESTAMP_INDEX = 1500
"""Whisper's timestamp tokens run from <|0.00|> to <|30.00|> in steps of 0.02 s."""


def start_timestamp(timestamp_begin: int, seconds: float) -> int:
    """The timestamp token nearest to `seconds` into a window (`timestamp_begin` is <|0.00|>)."""
    return timestamp_begin + min(LAST_TIMESTAMP_INDEX, max(0, round(seconds / TIMESTAMP_STEP_S)))


def parallel_parts(languages: Sequence[str], parts: int) -> list[list[int]]:
    """How a batch splits into at most `parts` model calls that run at once (indices, in batch
    order): one per language at least (a call decodes one language), then the largest split in
    halves while calls are left. A batch through one thread per call ran faster on two CPU cores
    than the same batch through one call on two threads."""
    groups: dict[str, list[int]] = {}
    for index, language in enumerate(languages):
        groups.setdefault(language, []).append(index)
    split = list(groups.values())
    while len(split) < parts:
        largest = max(split, key=len)
        if len(largest) < 2:
            break
        split.remove(largest)
        half = (len(largest) + 1) // 2
        split += [largest[:half], largest[half:]]
    return sorted(split)


def decoded_token_cap(prompt_length: int, max_length: int) -> int:
    """The most tokens CTranslate2 (4.x) generates after a prompt this long for this `max_length`:
    it counts the prompt but the last start token, and never decodes more than half of `max_length`
    (so a window with no previous text gets about half its token budget)."""
    return min(max_length // 2, max_length - prompt_length + 1)


WHISPER_MAX_LENGTH = 448
"""Tokens Whisper's decoder holds, prompt included."""


def decoder_max_length(prompt_length: int, budget: int) -> int:
    """The `max_length` that lets CTranslate2 decode `budget` tokens after a prompt this long (see
    `decoded_token_cap`): prompt + budget alone would halve the budget of a window with no
    previous text, and cut its last words."""
    return min(WHISPER_MAX_LENGTH, max(2 * budget, budget + prompt_length - 1))


class UnsupportedLanguageError(ValueError):
    pass


@dataclass(frozen=True)
class Transcription:
    words: list[WordTiming]
    compute_s: float


@dataclass(frozen=True)
class Window:
    """One streaming window: PCM s16le mono 16 kHz (its first 30 s are heard), its language, and
    what the decoder is told besides (the participant's last finals as prompt, the committed
    text its audio starts with as prefix: `DecoderHints`)."""

    pcm: bytes
    language: str
    hints: DecoderHints = NO_HINTS


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
        parallel_calls: int = 1,
        prompt_tokens: int = 0,
        name: str | None = None,
    ) -> None:
        from faster_whisper import WhisperModel

        if device == Device.CUDA.value:
            load_cuda_libraries()  # a clear error now, not a crash inside the first window
        started = time.perf_counter()
        self._model = WhisperModel(
            str(model_folder),
            device=device,
            device_index=device_index,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            # CTranslate2 replicas sharing the weights, each running one call at a time.
            num_workers=parallel_calls,
            local_files_only=True,
        )
        self.parallel_calls = parallel_calls
        self._calls = ThreadPoolExecutor(parallel_calls, "model-call") if parallel_calls > 1 else None
        """Threads that submit the parts of a batch to the replicas (CTranslate2 frees the GIL)."""
        self._beam_size = beam_size
        self._prompt_tokens = prompt_tokens
        self.decoder_calls = 0
        """Decoder calls made so far (windows per call: the batch fill a GPU's throughput follows)."""
        self._count_lock = threading.Lock()
        self._tokenizers: dict[str, Any] = {}
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
            parallel_calls=settings.parallel_model_calls(device),
            prompt_tokens=settings.whisper_prompt_tokens,
            name=settings.whisper_model_name,
        )

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
            # The previous text as the batch path cuts it, so the two paths hear a window alike.
            initial_prompt=self._previous_tokens(self._tokenizer(language), prompt),
            condition_on_previous_text=False,
            # A window is one segment without timestamp tokens. With them, faster-whisper ends its
            # pass at the last complete segment and encodes the window again (padded to 30 s) to
            # decode the tail alone, which doubled the compute and mostly made things up.
            without_timestamps=not whole_recording,
            vad_filter=False,
            # A loop would otherwise run to Whisper's 448-token limit at every fallback temperature.
            max_new_tokens=self._max_new_tokens(language, prompt, len(audio) / SAMPLE_RATE, whole_recording),
            no_speech_threshold=NO_SPEECH_PROB,
            log_prob_threshold=LOW_LOGPROB,
            prepend_punctuations=PREPEND_PUNCTUATION,
            append_punctuations=APPEND_PUNCTUATION,
        )
        if not whole_recording:
            # Asked for more, the generator would encode the audio after the last word once more.
            segments = itertools.islice(segments, 1)
            self._encoder_frames = encoder_frames(len(audio) / SAMPLE_RATE)
        try:
            decoded = list(segments)
        finally:
            self._encoder_frames = None
        heard = [
            (
                segment.text,
                segment.no_speech_prob,
                segment.avg_logprob,
                segment.compression_ratio,
                [
                    WordTiming(text=w.word, start=w.start, end=w.end, probability=w.probability)
                    for w in segment.words or []
                ],
            )
            for segment in decoded
        ]
        words = _kept_words(heard, whole_recording=whole_recording)
        return Transcription(words=words, compute_s=time.perf_counter() - started)

    def transcribe_batch(self, windows: Sequence[Window]) -> list[Transcription]:
        """What `transcribe` gives for each window, for several windows at once: one encoder pass
        (each window padded to the longest one's `encoder_frames`), one decoder call per group of
        equally long prompts (`prompt_groups`), one alignment pass for the word times; per language
        when windows differ in it. Each window's `compute_s` is an equal share of the batch's time.

        Raises UnsupportedLanguageError before any work when a window's language cannot be served."""
        for window in windows:
            self.check_language(window.language)
        started = time.perf_counter()
        words: list[list[WordTiming]] = [[] for _ in windows]
        parts = parallel_parts([window.language for window in windows], self.parallel_calls)

        def run(part: list[int]) -> list[list[WordTiming]]:
            return self._transcribe_together([windows[i] for i in part], windows[part[0]].language)

        heard_by_part = map(run, parts) if self._calls is None else self._calls.map(run, parts)
        for part, heard_in_part in zip(parts, heard_by_part, strict=True):
            for index, heard in zip(part, heard_in_part, strict=True):
                words[index] = heard
        share = (time.perf_counter() - started) / max(len(windows), 1)
        return [Transcription(words=heard, compute_s=share) for heard in words]

    def _transcribe_together(self, windows: Sequence[Window], language: str) -> list[list[WordTiming]]:
        """The batch path for windows of one language (the alignment pass takes one start sequence)."""
        import ctranslate2
        from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

        model = self._model
        tokenizer = self._tokenizer(language)
        audios = [pcm_to_float32(window.pcm) for window in windows]
        # As faster-whisper cuts a window's first segment: the mel frames of its audio, at most 30 s.
        mels = [model.feature_extractor(audio)[:, :-1][:, :MAX_FRAMES] for audio in audios]
        heard: list[list[WordTiming]] = [[] for _ in windows]
        live = [index for index, mel in enumerate(mels) if mel.shape[-1] > 0]
        if not live:
            return heard
        seconds = [len(audios[index]) / SAMPLE_RATE for index in live]
        frames = [mels[index].shape[-1] for index in live]
        features = np.zeros((len(live), mels[live[0]].shape[0], batch_frames(seconds)), dtype=np.float32)
        for row, index in enumerate(live):
            features[row, :, : frames[row]] = mels[index]
        starts = [self._decoder_start(tokenizer, windows[index]) for index in live]
        prompts = [start.prompt for start in starts]
        budgets = [
            decoder_max_length(len(start.prompt), token_budget(duration - start.decoded_from_s))
            for start, duration in zip(starts, seconds, strict=True)
        ]
        suppress = list(get_suppressed_tokens(tokenizer, [-1]))
        groups = prompt_groups(prompts, tokenizer.sot, tokenizer.no_timestamps)
        encoder_output = model.model.encode(
            ctranslate2.StorageView.from_array(features),
            # Each decoder call takes some rows of the encoder output, sliced in host memory.
            to_cpu=len(groups) > 1 or (model.model.device == "cuda" and len(model.model.device_index) > 1),
        )
        results: list[Any] = [None] * len(live)
        for group in groups:
            rows = encoder_output if len(groups) == 1 else _rows(encoder_output, group)
            group_budget = max(budgets[row] for row in group)
            outputs = self._generate(rows, [prompts[row] for row in group], group_budget, suppress)
            for row, output in zip(group, outputs, strict=True):
                if budgets[row] < group_budget and len(output.sequences_ids[0]) >= decoded_token_cap(
                    len(prompts[row]), budgets[row]
                ):
                    # Alone, this window would have stopped at its own budget (a loop, mostly):
                    # decoded again, score included, it gets what it would have got alone.
                    mel = ctranslate2.StorageView.from_array(np.ascontiguousarray(features[row : row + 1]))
                    output = self._generate(mel, [prompts[row]], budgets[row], suppress)[0]
                results[row] = output
        # The whole prefix is aligned with the new tokens (CTranslate2 returns the forced part
        # with them), so the new words' times fall after the prefix's audio; only the new ones are
        # scored and kept. Timestamp tokens are not text.
        text_tokens = [
            start.read_prefix + [token for token in result.sequences_ids[0] if token < tokenizer.eot]
            for start, result in zip(starts, results, strict=True)
        ]
        alignments = model.find_alignment(tokenizer, text_tokens, encoder_output, frames)
        for row, index in enumerate(live):
            result = results[row]
            prefix_length = starts[row].prefix_length
            text = tokenizer.decode(text_tokens[row][prefix_length:])
            length = len(result.sequences_ids[0])
            avg_logprob = result.scores[0] * length / (length + 1)
            if (result.no_speech_prob > NO_SPEECH_PROB and avg_logprob <= LOW_LOGPROB) or not text.strip():
                continue  # what faster-whisper skips: silence, or nothing said
            segment = (
                text,
                result.no_speech_prob,
                avg_logprob,
                get_compression_ratio(text.strip()),
                timed_words(alignments[row], frames[row] / FRAMES_PER_SECOND, prefix_length),
            )
            heard[index] = _kept_words([segment], whole_recording=False)
        return heard

    def _decoder_start(self, tokenizer: Any, window: Window) -> _DecoderStart:
        """How the decoder starts on a window: its prompt, and where its prefix went."""
        hints = window.hints
        prefix = _prefix_tokens(tokenizer, hints.prefix)
        if not prefix or not hints.prefix_tail.strip():
            return _DecoderStart(self._prompt(tokenizer, hints.prompt) + prefix, [], len(prefix), 0.0)
        head_text = prefix_head(hints.prefix, hints.prefix_tail)
        head = _prefix_tokens(tokenizer, head_text)
        tail = _prefix_tokens(tokenizer, hints.prefix_tail)
        previous = " ".join(text for text in (hints.prompt.strip(), head_text) if text)
        # Started at the tail's timestamp, Whisper transcribes the audio from there on; the tail's
        # words, forced, make it go on after them rather than skip or repeat words at the seam (with
        # the timestamp alone it did both: long-form WER 12% -> 16% in `bench.simulate`).
        prompt = self._prompt(tokenizer, previous, without_timestamps=False)
        prompt += [start_timestamp(tokenizer.timestamp_begin, hints.prefix_tail_s), *tail]
        return _DecoderStart(prompt, head, len(head) + len(tail), hints.prefix_tail_s)

    def _previous_tokens(self, tokenizer: Any, text: str) -> list[int]:
        """A window's previous text as tokens (encoded as faster-whisper encodes `initial_prompt`),
        cut to `prompt_tokens` (`previous_text`): both paths prompt a window with these."""
        previous = tokenizer.encode(" " + text.strip()) if text.strip() else []
        return previous_text(previous, self._prompt_tokens)

    def _prompt(self, tokenizer: Any, text: str, without_timestamps: bool = True) -> list[int]:
        """The decoder prompt of a window, as faster-whisper builds it from `initial_prompt`."""
        previous = self._previous_tokens(tokenizer, text)
        return list(self._model.get_prompt(tokenizer, previous, without_timestamps=without_timestamps))

    def _tokenizer(self, language: str) -> Any:
        """One tokenizer per language for the process's life, not one per window."""
        if language not in self._tokenizers:
            from faster_whisper.tokenizer import Tokenizer

            model = self._model
            self._tokenizers[language] = Tokenizer(
                model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language
            )
        return self._tokenizers[language]

    def _max_new_tokens(self, language: str, prompt: str, seconds: float, whole_recording: bool) -> int:
        """faster-whisper's `max_new_tokens` for the single path: it passes prompt + this as
        `max_length`, and we want the window's whole `token_budget` decodable."""
        tokenizer = self._tokenizer(language)
        prompt_length = len(self._prompt(tokenizer, prompt, without_timestamps=not whole_recording))
        return decoder_max_length(prompt_length, token_budget(seconds)) - prompt_length

    def _generate(
        self, features: Any, prompts: list[list[int]], max_length: int, suppress: list[int]
    ) -> list[Any]:
        """One decoder call with the options faster-whisper gives a window at temperature 0."""
        with self._count_lock:  # the parts of a batch may run on several threads
            self.decoder_calls += 1
        return list(
            self._model.model.generate(
                features,
                prompts,
                beam_size=self._beam_size,
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


@dataclass(frozen=True)
class _DecoderStart:
    prompt: list[int]
    """What the decoder is given: previous text, task tokens, and the text it must start with."""
    read_prefix: list[int]
    """Prefix tokens given as previous text, which CTranslate2 does not return: they go before
    the returned ones in the alignment, which needs the text of all the window's audio."""
    prefix_length: int
    """Tokens of the prefix in the aligned text: words that begin within are not the window's."""
    decoded_from_s: float
    """Where in the window the decoder starts transcribing."""


Heard = tuple[str, float, float, float, list[WordTiming]]
"""One decoded segment: its text, no-speech probability, mean log probability, compression ratio
and timed words."""


def _kept_words(segments: Iterable[Heard], whole_recording: bool) -> list[WordTiming]:
    """The words of the segments that do not look made up, a decoding loop cut off (both paths);
    in a streaming window, also the words from where the alignment found no audio for them."""
    from faster_whisper.transcribe import get_compression_ratio

    words: list[WordTiming] = []
    for text, no_speech_prob, avg_logprob, compression_ratio, segment_words in segments:
        # Judged with its loop, or with text no audio supports, a segment that heard words first
        # looked made up as a whole (its compression ratio), and those words were lost: "you can
        # do for your country. This quality and uncleanness. This quality and...", or "Ask what"
        # heard, then "you ask not what your country can do for you. Ask what you..." squeezed
        # into one instant. Each is cut off before the segment is judged.
        cut = loop_start([word.text for word in segment_words])
        if cut is not None:
            logger.debug("cut a decoding loop after %r", "".join(w.text for w in segment_words[:cut]))
        unheard = None if whole_recording else unheard_run_start([(w.start, w.end) for w in segment_words])
        if unheard is not None and (cut is None or unheard < cut):
            logger.debug(
                "cut words with no audio behind them after %r",
                "".join(w.text for w in segment_words[:unheard]),
            )
            cut = unheard
        if cut is not None:
            segment_words = segment_words[:cut]
            text = "".join(word.text for word in segment_words)
            compression_ratio = get_compression_ratio(text.strip())
        stats = SegmentStats(
            text=text,
            no_speech_prob=no_speech_prob,
            avg_logprob=avg_logprob,
            compression_ratio=compression_ratio,
            mean_word_probability=(
                sum(w.probability for w in segment_words) / len(segment_words) if segment_words else 0.0
            ),
        )
        if is_hallucination(stats):
            logger.debug("dropped a segment that looks made up: %r", text)
            continue
        words += segment_words
    loop = loop_start([word.text for word in words])
    if loop is not None:
        logger.debug("cut a decoding loop after %r", "".join(w.text for w in words[:loop]))
        words = words[:loop]
    # A whole recording's segments are cut by Whisper's own timestamps, and the offline limit
    # stays Whisper's own; a window's text runs on past its audio.
    unheard = None if whole_recording else unheard_run_start([(w.start, w.end) for w in words])
    if unheard is not None:
        logger.debug("cut words with no audio behind them: %r", "".join(w.text for w in words[unheard:]))
        words = words[:unheard]
    return words


def _rows(encoder_output: Any, rows: list[int]) -> Any:
    """Some rows of an encoder output held in host memory, as a StorageView of their own."""
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.asarray(encoder_output)[rows]))


def _prefix_tokens(tokenizer: Any, prefix: str) -> list[int]:
    return list(tokenizer.encode(" " + prefix.strip())) if prefix.strip() else []


def timed_words(
    alignment: list[dict[str, Any]], duration_s: float, prefix_tokens: int = 0
) -> list[WordTiming]:
    """Words with times from a window's alignment, by faster-whisper's rules for a segment that
    starts its window (`WhisperModel.add_word_timestamps`, no speech before it): words at sentence
    ends and a first word after silence held to twice the median word length, punctuation joined
    to its word, the last word kept within half a second past the segment's end. The words that
    begin within the first `prefix_tokens` tokens (the window's prefix) are left out."""
    from faster_whisper.transcribe import merge_punctuations

    first_token = 0
    for word in alignment:
        word["in_prefix"] = first_token < prefix_tokens
        first_token += len(word["tokens"])

    lengths = [word["end"] - word["start"] for word in alignment]
    spoken = [length for length in lengths if length != 0]
    median = min(0.7, float(np.median(spoken))) if spoken else 0.0
    longest = median * 2
    if spoken:
        for index in range(1, len(alignment)):
            word, before = alignment[index], alignment[index - 1]
            if word["end"] - word["start"] > longest:
                if word["word"] in SENTENCE_END:
                    word["end"] = word["start"] + longest
                elif before["word"] in SENTENCE_END:
                    word["start"] = word["end"] - longest
    merge_punctuations(alignment, PREPEND_PUNCTUATION, APPEND_PUNCTUATION)
    times = [
        {
            "word": w["word"],
            "start": round(w["start"], 2),
            "end": round(w["end"], 2),
            "probability": w["probability"],
            "in_prefix": w["in_prefix"],
        }
        for w in alignment
        if w["word"]
    ]
    if times:
        first, last = times[0], times[-1]
        second = times[1] if len(times) > 1 else None
        if first["end"] > median * 4 and (
            first["end"] - first["start"] > longest
            or (second is not None and second["end"] - first["start"] > longest * 2)
        ):
            if second is not None and second["end"] - second["start"] > longest:
                first["end"] = second["start"] = max(second["end"] / 2, second["end"] - longest)
            first["start"] = max(0, first["end"] - longest)
        if duration_s > last["start"] and duration_s + 0.5 < last["end"]:
            last["end"] = max(last["start"] + median, duration_s)
    return [
        WordTiming(text=t["word"], start=t["start"], end=t["end"], probability=t["probability"])
        for t in times
        if not t["in_prefix"]
    ]

"""The arithmetic of decoding a window: token budgets, encoder padding, which windows of a batch
share a decoder call, the previous text's length, start timestamps, how a batch splits into
parallel calls. Pure functions of numbers and token ids (no model)."""

from __future__ import annotations

import math
from collections.abc import Sequence

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

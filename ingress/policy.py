"""The streaming policy: one participant's audio, speech flags and hypotheses in; windows to
transcribe and interims/finals out. Pure code: no I/O, no clock, no model (times are passed in).

How it works:
- Audio accumulates in a window that starts where the last committed words ended. Frames the VAD
  scores as non-speech are trimmed from the front, so silence costs no model call and yields no text.
- While someone speaks, a window is planned about once per `interim_step_s` of new audio
  (never more than one in flight: the caller waits for the result before asking again).
- Each result is a hypothesis for the whole window. Words on which two consecutive hypotheses
  agree (LocalAgreement-2) are stable; the policy commits phrase-sized runs of them (at punctuation
  or a pause, or after enough stable words), or the widest gap once the window passes
  `max_window_s`, and the window then starts after the committed words. Committed words never
  change: the interims show them first, then the rest of the hypothesis.
- Committing is internal (the window stays short, the prompt and context build on it); what the
  client stores is the utterance. Its final goes out at a committed sentence end the speaker paused
  after (`sentence_pause_s`), at any other word (not a function word) the VAD heard end of speech
  after (`end_of_speech_s`, even inside a chunk), at the end of speech, or, for someone who never
  pauses, at its best boundary once it passes `max_utterance_s`. Its `ts` is when its first word
  was spoken.
- The last committed phrases go before a window's new audio again, their text as the decoder's
  prefix (`context_s`): Whisper hears what led up to the new words without transcribing them
  twice. It reads that text in one pass and starts decoding at the last four words of it, where
  their audio starts (`context_tail_words`).
- When the VAD hears `end_of_speech_s` of silence, when no audio arrives for `flush_interval_s`,
  or when the meeting ends, the pending words become final: those of the last hypothesis when it
  heard all of the speech, else those of the whole window transcribed once more (where that
  hearing swaps a single word the last hypothesis was surer of, the earlier word stays). A final
  window that stops well short of the speech the VAD heard is heard again without context and
  prompt: speech is either in a final or transcribed again, never committed over.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, replace
from difflib import SequenceMatcher
from typing import Literal

from service.audio import SAMPLE_RATE, SAMPLE_WIDTH_BYTES
from service.contracts import WordTiming

OVERLAP_TOLERANCE_S = 0.3
COMMITTED_TAIL_WORDS = 8
SIMILAR_WORD = 0.6
"""difflib ratio above which a word re-heard at the cut is taken for the committed one."""
FUZZY_AGREEMENT = 0.75
FUZZY_MIN_LETTERS = 4
SENTENCE_END = (".", "?", "!", "。", "？", "！")
PHRASE_END = (",", ";", ":", "，", "、")
_NOT_WORD = re.compile(r"[^\w']+")
_TRAILING_MARKS = "".join(SENTENCE_END + PHRASE_END)


@dataclass(frozen=True)
class PolicyConfig:
    interim_step_s: float = 1.0
    """New audio between two interim windows while someone speaks."""
    end_of_speech_s: float = 0.6
    """VAD silence after speech that closes an utterance (its words become final at once)."""
    flush_interval_s: float = 2.0
    """No audio at all for this long: pending speech becomes final (WHISPER_FLUSH_BUFFER_INTERVAL)."""
    max_window_s: float = 10.0
    """Past this, a final is cut at the widest gap between stable words."""
    hard_window_s: float = 20.0
    """Past this, a final is cut at the widest gap even without agreement: windows stay bounded."""
    speech_threshold: float = 0.5
    min_speech_s: float = 0.2
    """Speech (by VAD) a window must hold before it is worth a model call."""
    speech_pad_s: float = 0.4
    """Audio kept before the first speech frame: Whisper likes a little lead-in."""
    word_vad_margin_s: float = 0.2
    """A word is kept when the VAD heard speech within this margin of its timestamps."""
    final_tail_s: float = 0.3
    """Silence kept after the last speech in a final window."""
    overlap_s: float = 0.5
    """Audio before a cut that the next window hears again: Whisper skips words when a window starts
    abruptly mid-speech. Words it re-hears there are dropped by time and by text."""
    unheard_speech_s: float = 1.0
    """Speech (by VAD) after a final window's last word, or before a window's first word, that is
    transcribed again (without context and prompt), not committed over."""
    vad_frame_samples: int = 512
    min_probability: float = 0.7
    """Mean word probability a phrase needs before a sentence end may cut it early."""
    max_prompt_finals: int = 2
    """The last finals before a window's context whose text prompts the decoder (its previous
    text, read in one pass). Twenty looked better on the long-form item in `bench.simulate
    --fixed-compute 0.9` (offsets 0/0.15/0.3/0.45 s: 65/56/60/57 word errors against 64/63/62/66,
    offline 61) but not through the service: `make bench` on the dev corpus made 65, 58, 67 and 66
    long-form errors with it, and on the held-out corpus (the same code but this) 7.3% WER
    against 5.9% with two (offline 6.8%), 2026-12-04; a window also cost about 4% more (README,
    where a window's compute goes)."""
    return_audio: bool = False
    phrase_finals: bool = True
    """Commit stable words at phrase boundaries (punctuation or a pause) without waiting for a
    sentence end. Without `context_s` the window keeps their audio until a sentence end or
    `max_window_s` trims it: cutting the audio mid-sentence cost more accuracy than it saved compute."""
    phrase_min_words: int = 3
    """Fewest words in a phrase-sized final (a sentence end may close a shorter one)."""
    phrase_pause_s: float = 0.25
    """A gap between two stable words at least this long is a phrase boundary."""
    phrase_without_boundary: bool = True
    """Stable words after the last boundary are a phrase of their own once there are
    `phrase_min_words` of them: waiting for a boundary among them kept most words one result (a
    chunk) longer. `make bench` against the rule before (the widest gap once five stable words had
    no boundary), 2026-11-25: final-word latency median 2.19 -> 1.13 s, p90 3.25 -> 2.19 s, WER of
    all English items 11.3 % -> 10.8 %.
    False: only punctuation and pauses end a phrase before the end of speech or `max_window_s`."""
    fuzzy_agreement: bool = True
    """Words of four letters or more that Whisper respells between hypotheses ("deadter's side",
    then "deadter site") still agree (difflib ratio >= FUZZY_AGREEMENT): agreement stalled on them
    for the rest of the sentence."""
    context_s: float = 10.5
    """A window's audio is at most this long when earlier finals fill it: before its new audio go
    the last finals whose audio fits (also from before a pause), and their text is the decoder's
    prefix. Whisper then hears the words leading up to the new ones, in their own voice, without
    transcribing them again; a window of a few seconds alone misheard words the whole recording
    got right. The decoder reads the context's text in one pass (see `context_tail_words`); the
    encoder hears the window plus 1 s, 10 s at least. `make bench`, 2026-11-25, against no
    context: long-form WER 13.1 % -> 12.1 % (offline 11.9 %), compute per speech second
    2.9x -> 3.1x offline (the context forced whole then). 10.5 s against 9 s, 2026-12-04,
    `bench.simulate --fixed-compute 0.9` on the long-form item (offline 61 errors), offsets 0,
    0.15, 0.3, 0.45: 65/63/62/67 errors against 66/71/72/67, compute 47.2 s against 40.9 s (a
    12 s encoder input instead of 10 s); `make bench`: 65 errors against 66, compute per second
    of speech 3.43x against 3.27x offline. 12 s: 64/64 at offsets 0/0.3, +24% compute.
    0: no context; committed audio stays in the window only as `overlap_s` and behind phrase
    finals until a sentence end."""
    context_tail_words: int = 4
    """Of the context's text, the last words the decoder is made to start with, at the timestamp
    where their audio starts; the text before them is its previous text, read in one pass. Forced
    whole, the context cost a decoder step per token, as much as a new token. `bench.simulate
    --fixed-compute 0.9` on the long-form item (offline 61 word errors), offsets 0 to 0.6 s in
    steps of 0.15: all forced 63/72/72/67/74 errors, 46.4 s of compute at offset 0; 4 words
    66/71/72/67/62, 37.1 s. With 2 words JFK's "...can do for you." was followed by "Ask not."
    from the previous text instead of what he said; with the timestamp alone (no words) Whisper
    skipped or repeated words at the seam (83 errors at offset 0). 0: the whole context is forced."""
    stalled_words_per_s: float = 1.0
    """A hypothesis with fewer words than this per second of the speech the VAD heard in the
    window's pending audio (at least `stalled_min_speech_s` of it) stopped early: after a sentence
    end Whisper may close the window ("again last week." and not a word of the 10 s that followed,
    window after window, in a held-out voice), most often when a prompt or prefix precedes it;
    then its last words' times stretched over the skipped speech and a cut after them lost it.
    The window of a stalled hypothesis is heard again at once without context and prompt, and
    the next ones too until a final is cut from one that did not stall; a final window that stalled
    with either is transcribed again without them. (Cutting after a stalled hypothesis' last word
    lost speech when that word's time had stretched over part of what Whisper skipped.) 0: no check."""
    stalled_min_speech_s: float = 3.0
    final_keeps_surer_words: bool = True
    """A final window's word that replaces a single word of the last hypothesis keeps the earlier
    one when that was surer and heard whole: one more hearing of the same audio is no better
    than the one before it ("a day and night room" heard, then "a day in night room" committed).
    `bench.simulate --fixed-compute 0.9` on the long-form item, offsets 0/0.15/0.3/0.45 s (offline
    61): 64/63/62/66 word errors against 65/63/62/67 without; with 20 prompt finals, once "heard
    whole" meant "followed by another word" rather than "ended 0.3 s before the window's audio"
    (which kept "a day in night room"), 66/52/62/52 against 65/56/60/57."""
    settled_hypotheses: int = 3
    """Words this many consecutive hypotheses agreed on may be cut early whatever their
    probability: more context did not change them, and waiting for the window to fill delayed them
    by seconds. 0 turns it off (unsure words then wait for end of speech or `max_window_s`)."""
    sentence_pause_s: float = 0.2
    """A committed sentence end followed by at least this much silence (by the VAD, or between the
    word times) ends the utterance: its final goes out. Without a pause the speaker runs on, and
    the utterance with them."""
    max_utterance_s: float = 20.0
    """An utterance longer than this (someone who never pauses) is sent at its best boundary among
    the committed words: a sentence end, else a comma, else the widest gap, never after a function
    word when anything else will do. Read sentences of 35-60 words stay whole under it."""


@dataclass(frozen=True)
class Word:
    """A recognised word with times in seconds on the participant's own stream clock."""

    text: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class WindowPlan:
    """A window to transcribe: samples [start, end) of the participant's stream."""

    start: int
    end: int
    final: bool
    prompt: str
    pcm: bytes
    """The window's audio: `context_samples` of committed audio, then samples [start, end)."""
    prefix: str = ""
    """Text of the committed audio the window starts with."""
    context_samples: int = 0
    prefix_tail: str = ""
    """The prefix's last words (`context_tail_words`), whose audio starts `prefix_tail_samples`
    into the window's."""
    prefix_tail_samples: int = 0
    spans: tuple[tuple[int, int], ...] = ()
    """Samples of the stream `pcm` holds, one stretch after another: each context final's, then
    [start, end)."""


@dataclass(frozen=True)
class Transcript:
    utterance_id: str
    kind: Literal["interim", "final"]
    text: str
    ts_ms: int
    probability: float
    pcm: bytes | None = None
    start_s: float = 0.0
    """Stream time of the first word's start and the last word's end (for measurements)."""
    end_s: float = 0.0
    committed_words: int = 0
    """Leading words that no later interim or final of the utterance changes (all of a final's)."""


@dataclass(frozen=True)
class _Final:
    text: str
    start: int
    end: int
    """Samples of the stream its audio spans."""
    pcm: bytes
    """Its audio, kept when windows take committed audio as context."""
    tail: str = ""
    tail_offset: int = 0
    """Its last `context_tail_words` words, and where the first of them starts in its audio."""


@dataclass
class _Utterance:
    id: str
    ts_ms: int


@dataclass(frozen=True)
class _Committed:
    """Words committed (they will never change) but not yet sent: part of the open utterance."""

    words: list[Word]
    pcm: bytes | None
    """Their audio, for WHISPER_RETURN_TRANSCRIBED_AUDIO."""
    pause_after: float
    """Seconds of silence after the last word, as far as was known when it was committed."""


FUNCTION_WORDS = frozenset(
    """a an the of to in on at for from by with into onto upon about as than and or but nor
    because if that which who whose whom my your his her our their its i we they he she is are
    was were am be been have has had do does did will would shall should can could may might
    must""".split()
)
"""Words a phrase rarely ends on: an utterance sent for its length never ends on one when another
boundary will do."""


def new_uuid7() -> str:
    """A UUIDv7: 48 bits of Unix milliseconds, then random bits; sorts by creation time."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def normalize_word(text: str) -> str:
    return _NOT_WORD.sub("", text.lower())


def agreed_prefix(previous: Sequence[Word], current: Sequence[Word], fuzzy: bool = False) -> int:
    """How many leading words two hypotheses share (compared without case or punctuation; with
    `fuzzy`, words of four letters or more that are spelt alike agree too)."""
    count = 0
    for before, now in zip(previous, current, strict=False):
        if not same_word(normalize_word(before.text), normalize_word(now.text), fuzzy):
            break
        count += 1
    return count


def same_word(before: str, now: str, fuzzy: bool) -> bool:
    """Whisper hesitates between spellings of a word it cannot place ("deadter's side" then
    "deadter site"): agreement stalled on them for the rest of the sentence."""
    if before == now:
        return True
    return (
        fuzzy
        and min(len(before), len(now)) >= FUZZY_MIN_LETTERS
        and SequenceMatcher(None, before, now).ratio() >= FUZZY_AGREEMENT
    )


def keep_surer_earlier_words(earlier: Sequence[Word], later: Sequence[Word]) -> list[Word]:
    """`later` with each word that replaces one word of `earlier` at the same place put back, where
    the earlier word was surer and heard whole: another word followed it (the last word of a
    hypothesis may be cut off at its window's edge, "r..." for "room"). Longer replacements (a
    word split in two, a phrase heard anew) stay."""
    kept = list(later)
    matcher = SequenceMatcher(
        None,
        [normalize_word(w.text) for w in earlier],
        [normalize_word(w.text) for w in later],
        autojunk=False,
    )
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag != "replace" or a1 - a0 != b1 - b0:
            continue
        for position, index in zip(range(a0, a1), range(b0, b1), strict=True):
            before, now = earlier[position], later[index]
            heard_whole = position < len(earlier) - 1
            same_place = before.start < now.end and now.start < before.end
            if heard_whole and same_place and before.probability > now.probability:
                kept[index] = replace(
                    now, text=_with_trailing_marks(before.text, now.text), probability=before.probability
                )
    return kept


def _with_trailing_marks(text: str, marks_from: str) -> str:
    """`text`'s word with the punctuation that ends `marks_from` (a final's sentence end stays)."""
    stripped = marks_from.rstrip()
    marks = stripped[len(stripped.rstrip(_TRAILING_MARKS)) :]
    return text.rstrip().rstrip(_TRAILING_MARKS) + marks


def join_words(words: Sequence[Word]) -> str:
    return "".join(word.text for word in words).strip()


def mean_probability(words: Sequence[Word]) -> float:
    return sum(word.probability for word in words) / len(words) if words else 0.0


def split_sentences(words: Sequence[Word], breaks: Container[int] = ()) -> list[list[Word]]:
    """Phrase-sized pieces: a new piece after every word that ends a sentence, and after the
    words whose indices are in `breaks`."""
    pieces: list[list[Word]] = [[]]
    for index, word in enumerate(words):
        pieces[-1].append(word)
        if word.text.rstrip().endswith(SENTENCE_END) or index in breaks:
            pieces.append([])
    return [piece for piece in pieces if piece]


class ParticipantPolicy:
    def __init__(
        self, config: PolicyConfig, new_id: Callable[[], str] = new_uuid7, sample_rate: int = SAMPLE_RATE
    ) -> None:
        self.config = config
        self._new_id = new_id
        self._rate = sample_rate
        self._audio = bytearray()
        self._window_start = 0
        self._committed_until = 0
        """Words centred before this sample are final already."""
        self._committed_tail: list[str] = []
        """The last few committed words (normalised), to recognise them when re-heard."""
        self._received = 0
        self._arrivals: deque[tuple[int, int]] = deque()  # (chunk end sample, arrival ms)
        self._first_frame = 0
        self._frame_probs: list[float] = []
        self._last_audio_ms: int | None = None
        self._planned_until = 0
        self._in_flight: WindowPlan | None = None
        self._hypothesis: list[Word] = []
        self._heard: list[int] = []
        """Per hypothesis word, how many consecutive hypotheses have agreed on it so far."""
        self._hypothesis_heard_until = 0
        """End sample of the audio the hypothesis was transcribed from."""
        self._utterance: _Utterance | None = None
        self._open: list[_Committed] = []
        """The utterance's committed words, in pieces, until its final goes out."""
        self._last_interim = ""
        self._last_ts_ms = 0
        self._finals: deque[_Final] = deque(maxlen=max(config.max_prompt_finals, 1) + 16)
        """Recent finals and the sample their audio ends at: only those whose audio has left the
        window go into the prompt (Whisper would otherwise skip the words it hears again)."""
        self._ending = False
        self._context_paused = False
        """A window stopped early: the next ones go without context and prompt until a final is
        cut from one that did not."""

    # ---- input -------------------------------------------------------------------------------

    def add_audio(self, pcm: bytes, speech_probs: Iterable[float], arrival_ms: int) -> None:
        """Append a chunk and the VAD probabilities of the frames it completed."""
        self._audio += pcm
        self._received += len(pcm) // SAMPLE_WIDTH_BYTES
        self._arrivals.append((self._received, arrival_ms))
        self._frame_probs.extend(float(p) for p in speech_probs)
        self._last_audio_ms = arrival_ms

    def end(self) -> None:
        """The meeting is over: whatever speech is pending goes out as final, nothing more is planned."""
        self._ending = True

    def discard_pending(self) -> None:
        """Forget the window (its participant's language cannot be served): nothing is planned for it."""
        self._set_hypothesis([], [])
        self._committed_until = self._received
        self._drop_until(self._received)

    def cap_pending(self, max_seconds: float) -> float:
        """Keep at most `max_seconds` of window (workers behind or down): the oldest audio beyond it
        is dropped, with any words of it not yet final. Returns the seconds dropped (0.0 if none)."""
        excess = self._received - self._window_start - self._samples(max_seconds)
        if excess <= 0:
            return 0.0
        cut = self._window_start + excess
        self._committed_until = max(self._committed_until, cut)
        kept = [word for word in self._hypothesis if word.start * self._rate >= cut]
        self._set_hypothesis(kept, self._heard[len(self._hypothesis) - len(kept) :])
        self._drop_until(cut)
        return excess / self._rate

    # ---- decisions ---------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._ending

    @property
    def in_flight(self) -> bool:
        return self._in_flight is not None

    @property
    def oldest_needed(self) -> int:
        """The first sample of the stream a later window may still hear: the audio of the finals
        kept as context, then the window's."""
        return min([*(final.start for final in self._finals if final.pcm), self._window_start])

    @property
    def window_seconds(self) -> float:
        return (self._received - self._window_start) / self._rate

    def has_pending_speech(self) -> bool:
        """Whether anything is still to become final: speech to transcribe, or committed words."""
        return self._speech_to_transcribe() or bool(self._open)

    def _speech_to_transcribe(self) -> bool:
        return self._speech_seconds() >= self.config.min_speech_s or bool(self._hypothesis)

    def seconds_until_flush(self, now_ms: int) -> float | None:
        """When the idle flush would fire, for a caller that sleeps until something happens."""
        if self._last_audio_ms is None or not self.has_pending_speech():
            return None
        return max(0.0, self.config.flush_interval_s - (now_ms - self._last_audio_ms) / 1000.0)

    def next_window(self, now_ms: int) -> WindowPlan | None:
        """The window to transcribe now, or None; at most one is in flight at a time."""
        if self._in_flight is not None:
            return None
        self._trim_leading_silence()
        if not self._speech_to_transcribe():
            return None
        final = self._final_due(now_ms)
        new_audio_s = (self._received - max(self._planned_until, self._window_start)) / self._rate
        if not final and new_audio_s < self.config.interim_step_s:
            return None
        end = self._final_end() if final else self._received
        context = self._context(end - self._window_start)
        context_pcm = b"".join(f.pcm for f in context)
        plan = WindowPlan(
            start=self._window_start,
            end=end,
            final=final,
            prompt=self._prompt(len(context)),
            pcm=context_pcm + self._slice(self._window_start, end),
            prefix=" ".join(f.text for f in context),
            context_samples=len(context_pcm) // SAMPLE_WIDTH_BYTES,
            prefix_tail=context[-1].tail if context else "",
            # The last context final's audio ends the context's.
            prefix_tail_samples=(
                (len(context_pcm) - len(context[-1].pcm)) // SAMPLE_WIDTH_BYTES + context[-1].tail_offset
                if context
                else 0
            ),
            spans=(*((f.start, f.end) for f in context), (self._window_start, end)),
        )
        self._in_flight = plan
        self._planned_until = plan.end
        return plan

    def advance(self, now_ms: int) -> tuple[list[Transcript], WindowPlan | None]:
        """What a caller does now: send the finals that need no model call, then transcribe the
        window (if any; at most one is in flight) and `apply()` its result."""
        settled = self._final_from_last_hypothesis(now_ms)
        return settled, self.next_window(now_ms)

    def _final_from_last_hypothesis(self, now_ms: int) -> list[Transcript]:
        """Finals without a model call, when a final window is due and the last hypothesis already
        heard all of its speech: transcribing the same audio again would cost a call, and the
        finals would wait for it, for the same words (the benchmark's WER did not move).
        `next_window()` then has nothing left to plan for that speech."""
        if self._in_flight is not None or not self.has_pending_speech() or not self._final_due(now_ms):
            return []
        if not self._speech_to_transcribe():
            return self._send_utterance(len(self._open))  # every word is committed already
        end = self._final_end()
        speech_end = self._last_speech_end(end)
        # A last word Whisper was unsure of may have been cut off at the window's edge: the final
        # window hears a little more after it.
        unsure = bool(self._hypothesis) and self._hypothesis[-1].probability < self.config.min_probability
        # A hypothesis that stopped well before the speech did (its last words came back from a
        # window that ended early) has not heard it all, whatever its window's end.
        stopped = self._speech_after(self._hypothesis, end) >= self.config.unheard_speech_s
        if self._hypothesis_heard_until < speech_end or unsure or stopped:
            return []
        speech_end_s = speech_end / self._rate
        # As for a final window's words: none made up in the silence after the speech.
        words = [
            word
            for word in self._hypothesis
            if word.start < speech_end_s and self._vad_heard_speech(word.start, word.end)
        ]
        self._set_hypothesis([], [])
        self._planned_until = end
        self._context_paused = False
        return self._commit(words, until_sample=end, end_of_speech=True)

    def _final_due(self, now_ms: int) -> bool:
        """Whether pending speech is to be finished now: meeting over, idle, or end of speech."""
        idle = self._last_audio_ms is not None and (
            now_ms - self._last_audio_ms >= self.config.flush_interval_s * 1000
        )
        return self._ending or idle or self._trailing_silence_seconds() >= self.config.end_of_speech_s

    def _final_end(self) -> int:
        """Where a final window ends: whisper invents words in trailing silence ("I'm going to
        take a little bit of"), so shortly after the last speech the VAD heard."""
        speech_end = self._last_speech_end(self._received)
        return min(self._received, speech_end + self._samples(self.config.final_tail_s))

    def _prompt(self, context_finals: int) -> str:
        """The last finals before the window and its context (both are heard, not prompted:
        Whisper would otherwise skip the words it hears again)."""
        if not self.config.max_prompt_finals or self._context_paused:
            return ""
        limit = self._window_start + self._samples(self.config.overlap_s)
        earlier = list(self._finals)[: len(self._finals) - context_finals]
        before_window = [f.text for f in earlier if f.end <= limit]
        return " ".join(before_window[-self.config.max_prompt_finals :])

    def _context(self, new_samples: int) -> list[_Final]:
        """The last finals whose audio goes before the window's, `context_s` in all at most."""
        paused = self._context_paused or self._window_start < self._committed_until
        if not self.config.context_s or paused:
            return []
        budget = self._samples(self.config.context_s) - new_samples
        chosen: list[_Final] = []
        for final in reversed(self._finals):
            budget -= final.end - final.start
            if not final.pcm or budget < 0:
                break
            chosen.insert(0, final)
        return chosen

    def abandon(self, plan: WindowPlan) -> None:
        """The window could not be transcribed: keep its audio, a later window covers it again."""
        if self._in_flight == plan:
            self._in_flight = None
            self._planned_until = self._window_start

    def apply(self, plan: WindowPlan, window_words: Sequence[WordTiming]) -> list[Transcript]:
        """Turn the hypothesis for `plan` into finals and an interim, and trim the window."""
        if self._in_flight != plan:
            raise ValueError("apply() takes the result of the window in flight, in order")
        self._in_flight = None
        words = self._to_stream_words(plan, window_words)
        stalled = self._stalled(plan, words)
        if plan.final:
            # A final window that stopped well before the speech did ("Ask" of "Ask what you can
            # do for your country", then nothing at all with "Ask" as context) is heard again at
            # once without context and prompt: never committed over.
            stopped = self._speech_after(words, plan.end) >= self.config.unheard_speech_s
            retry = (stalled or stopped) and bool(plan.context_samples or plan.prompt)
            self._context_paused = retry
            if retry:
                self._planned_until = self._window_start
                return []
            if self.config.final_keeps_surer_words:
                words = keep_surer_earlier_words(self._hypothesis, words)
            self._set_hypothesis([], [])
            until = self._final_cut(words, plan)
            # Speech left after the cut is transcribed by the next final window: the utterance
            # goes on until then.
            return self._commit(words, until_sample=until, end_of_speech=until == plan.end)
        # Heard again at once without context and prompt. A window that skipped the speech before
        # its first word (after "This" as context, Whisper went on with the next sentence) commits
        # nothing, unless it is past `hard_window_s` (windows stay bounded): its words would commit
        # over that speech.
        skipped = self._skipped_start(words)
        retry = (stalled or skipped) and bool(plan.context_samples or plan.prompt)
        self._hypothesis_heard_until = plan.end
        stable = agreed_prefix(self._hypothesis, words, fuzzy=self.config.fuzzy_agreement)
        heard = [self._heard[i] + 1 if i < stable else 1 for i in range(len(words))]
        bounded = (plan.end - plan.start) / self._rate >= self.config.hard_window_s
        cut = None if skipped and not bounded else self._choose_cut(words, stable, heard, plan)
        # Context and prompt come back with the first final cut from a window that did not stall.
        self._context_paused = stalled or skipped or (self._context_paused and cut is None)
        if cut is None and retry:
            self._planned_until = self._window_start
        out: list[Transcript] = []
        if cut is not None:
            index, cut_sample, trim = cut
            out += self._commit(
                words[: index + 1], until_sample=cut_sample, trim=trim, following=words[index + 1]
            )
            words, heard = words[index + 1 :], heard[index + 1 :]
        elif (plan.end - plan.start) / self._rate >= self.config.max_window_s:
            self._trim_committed()
        self._set_hypothesis(words, heard)
        interim = self._interim(words)
        if interim is not None:
            out.append(interim)
        return out

    # ---- helpers -----------------------------------------------------------------------------

    def _stalled(self, plan: WindowPlan, words: Sequence[Word]) -> bool:
        """Whether a window came back with far fewer words than the speech the VAD heard in it."""
        if not self.config.stalled_words_per_s:
            return False
        speech_s = self._speech_seconds_in(self._speech_starts(0, plan.end))
        if speech_s < self.config.stalled_min_speech_s:
            return False
        return len(words) < self.config.stalled_words_per_s * speech_s

    def _final_cut(self, words: list[Word], plan: WindowPlan) -> int:
        """Where a final window's commit ends: at its end, unless the VAD heard a long stretch of
        speech after its last word (Whisper stopped early, or a decoding loop was cut off there):
        that audio stays pending, and the next final window transcribes it."""
        if not words or self._speech_after(words, plan.end) < self.config.unheard_speech_s:
            return plan.end
        return min(plan.end, self._samples(words[-1].end) + self._samples(self.config.final_tail_s))

    def _skipped_start(self, words: Sequence[Word]) -> bool:
        """Whether the VAD heard `unheard_speech_s` of pending speech before the first word."""
        if not words:
            return False
        before = self._speech_starts(self._pending_start(), self._samples(words[0].start))
        return self._speech_seconds_in(before) >= self.config.unheard_speech_s

    def _speech_after(self, words: Sequence[Word], end: int) -> float:
        """Seconds of pending speech (by the VAD) after the last of `words` and before `end`: all
        of it when there are no words."""
        last_end = self._samples(words[-1].end) if words else 0
        return self._speech_seconds_in(self._speech_starts(last_end, end))

    def _to_stream_words(self, plan: WindowPlan, window_words: Sequence[WordTiming]) -> list[Word]:
        """Window-relative words to stream time, without those of the overlap already committed."""
        offset = (plan.start - plan.context_samples) / self._rate
        limit = plan.end / self._rate
        committed_s = self._committed_until / self._rate
        # In a final window nothing real starts after the speech the VAD heard: a word there is
        # Whisper continuing into the silence ("... analogous duties. Thanks.").
        speech_end_s = self._last_speech_end(plan.end) / self._rate if plan.final else limit
        words = []
        for word in window_words:
            if not normalize_word(word.text):
                continue  # a lone "." or "...": nothing a reader needs, and it made ". ." finals
            start = min(offset + max(word.start, 0.0), limit)
            end = min(max(offset + word.end, start), limit)
            if start < speech_end_s and self._vad_heard_speech(start, end):
                words.append(Word(word.text, start, end, word.probability))
        return self._without_overlap(words, committed_s)

    def _last_speech_end(self, before: int) -> int:
        """End sample of the last speech frame that starts before `before` (or `before` if none)."""
        frame = self.config.vad_frame_samples
        speech = [index for index in self._speech_frames() if index * frame < before]
        return (speech[-1] + 1) * frame if speech else before

    def _vad_heard_speech(self, start_s: float, end_s: float) -> bool:
        """Whether any frame near the word is speech. Whisper makes up words in trailing silence
        ("which is a very important solution."); the VAD heard nothing there."""
        frame = self.config.vad_frame_samples
        margin = self.config.word_vad_margin_s
        first = max(self._samples(start_s - margin) // frame, self._first_frame)
        last = min(self._samples(end_s + margin) // frame, self._first_frame + len(self._frame_probs) - 1)
        if last < first:
            return True  # not scored yet (the last few samples): give the word the benefit of the doubt
        probs = self._frame_probs[first - self._first_frame : last - self._first_frame + 1]
        return max(probs) >= self.config.speech_threshold

    def _without_overlap(self, words: list[Word], committed_s: float) -> list[Word]:
        """Drop the committed words the window hears again (its overlap, and the context a phrase
        final leaves in the window).

        Word times drift by a few tenths of a second between calls, so time alone cannot say
        whether a word at the cut was committed: the last run of the hypothesis, at or before the
        cut, that repeats the end of the committed text marks where new words begin; and a word
        centred before the cut is never new."""
        tail = self._committed_tail
        heard = [normalize_word(word.text) for word in words]
        aligned = False
        for count in range(min(len(tail), len(words)), 0, -1):
            ends = [
                end
                for end in range(count, len(words) + 1)
                if words[end - 1].start < committed_s + OVERLAP_TOLERANCE_S
                and heard[end - count : end] == tail[-count:]
            ]
            if ends:
                words, aligned = words[ends[-1] :], True
                break

        while words and words[0].end <= committed_s:
            words = words[1:]
        if (
            not aligned
            and words
            and tail
            and words[0].end < committed_s + OVERLAP_TOLERANCE_S / 2
            and SequenceMatcher(None, normalize_word(words[0].text), tail[-1]).ratio() >= SIMILAR_WORD
        ):
            words = words[1:]  # the last committed word heard differently ("renew", then "review")
        return words

    def _set_hypothesis(self, words: list[Word], heard: list[int]) -> None:
        self._hypothesis, self._heard = words, heard

    def _choose_cut(
        self, words: list[Word], stable: int, heard: list[int], plan: WindowPlan
    ) -> tuple[int, int, bool] | None:
        """Where to end a final inside the hypothesis: (index of its last word, cut sample, whether
        the window's audio is trimmed there). `heard[i]`: consecutive hypotheses holding word i."""
        config = self.config
        window_s = (plan.end - plan.start) / self._rate

        def gap_after(i: int) -> float:
            return words[i + 1].start - words[i].end

        # Only cut before a word we have already heard the start of: the next word bounds the cut.
        candidates = range(min(stable, len(words) - 1))
        # Early cuts only where the words up to the cut are confident enough (else: end of speech).
        settled = config.settled_hypotheses
        confident = [
            i
            for i in candidates
            if mean_probability(words[: i + 1]) >= config.min_probability or (settled and heard[i] >= settled)
        ]
        sentence_ends = [i for i in confident if words[i].text.rstrip().endswith(SENTENCE_END)]
        phrase_ends: list[int] = []
        if config.phrase_finals:
            long_enough = [i for i in confident if i + 1 >= config.phrase_min_words]
            phrase_ends = [
                i
                for i in long_enough
                if words[i].text.rstrip().endswith(PHRASE_END) or gap_after(i) >= config.phrase_pause_s
            ]
            if config.phrase_without_boundary:
                last_boundary = max([-1, *phrase_ends, *sentence_ends])
                end = self._phrase_end_without_boundary(words, long_enough, last_boundary)
                if end is not None:
                    phrase_ends.append(end)
        index: int | None = None
        trim = True
        if sentence_ends and (not phrase_ends or sentence_ends[-1] >= phrase_ends[-1]):
            index = sentence_ends[-1]
        elif phrase_ends:
            # With context, the phrase's audio comes back as such: the window need not keep it.
            index = phrase_ends[-1]
            trim = bool(config.context_s) or window_s >= self.config.max_window_s
        if index is None and window_s >= self.config.max_window_s and len(candidates):
            index = max(candidates, key=gap_after)
        if index is None and window_s >= self.config.hard_window_s and len(words) > 1:
            index = max(range(len(words) - 1), key=gap_after)
        if index is None:
            if window_s >= self.config.hard_window_s and not words:
                self._committed_until = max(
                    self._committed_until, plan.end - self._samples(self.config.speech_pad_s)
                )
                self._drop_until(self._committed_until)
            return None
        return index, self._cut_between(words[index], words[index + 1]), trim

    def _cut_between(self, last: Word, following: Word) -> int:
        """The cut after `last`: the middle of the gap before `following`, unless the VAD heard
        `unheard_speech_s` of speech in that gap. Whisper skipped that speech (a hypothesis of a
        window whose result came late jumped from "left a" to "She told him", 12 s on), so the cut
        goes in the silence right after `last` and the skipped speech stays pending."""
        last_end = self._samples(last.end)
        following_start = max(self._samples(following.start), last_end)
        skipped = self._speech_starts(last_end, following_start)
        if self._speech_seconds_in(skipped) < self.config.unheard_speech_s:
            return (last_end + following_start) // 2
        return (last_end + skipped[0]) // 2

    def _speech_starts(self, start: int, end: int) -> list[int]:
        """First samples of the pending speech frames that start in [start, end)."""
        frame = self.config.vad_frame_samples
        return [index * frame for index in self._speech_frames() if start <= index * frame < end]

    def _speech_seconds_in(self, speech_frames: Sequence[int]) -> float:
        """Seconds of speech in these VAD frames (one entry per frame: index or first sample)."""
        return len(speech_frames) * self.config.vad_frame_samples / self._rate

    def _phrase_end_without_boundary(
        self, words: list[Word], long_enough: list[int], last_boundary: int
    ) -> int | None:
        """The last stable word that ends a phrase of `phrase_min_words` after the last boundary,
        unless the words heard after it (not stable yet) reach a punctuation mark too soon: "And so
        my fellow" then "Americans." read worse than waiting one result for "And so my fellow
        Americans."."""
        size = self.config.phrase_min_words
        marks = [j for j, word in enumerate(words) if word.text.rstrip().endswith(SENTENCE_END + PHRASE_END)]
        for i in reversed(long_enough):
            if i - last_boundary < size:
                return None
            if not any(i < j < i + size for j in marks):
                return i
        return None

    def _trim_committed(self) -> None:
        """Let go of committed audio the window still holds as context (it has grown too long)."""
        if self._committed_until > self._window_start:
            overlap = 0 if self.config.context_s else self._samples(self.config.overlap_s)
            self._drop_until(self._committed_until - overlap)

    def _commit(
        self,
        words: list[Word],
        until_sample: int,
        trim: bool = True,
        following: Word | None = None,
        end_of_speech: bool = False,
    ) -> list[Transcript]:
        """Make `words` final for good (the prompt, the context and overlap removal build on them)
        and add them to the open utterance; returns the finals this sends: the utterance up to a
        sentence end the speaker paused after, all of it at the end of speech, or a part of it
        once it is too long. `following`: the first word heard after the cut, if any."""
        followers = [*words[1:], following][: len(words)]
        pauses = [self._pause_between(word, after) for word, after in zip(words, followers, strict=True)]
        # A piece ends wherever an utterance may: the utterance ends there if the speaker paused.
        stops = {n for n, word in enumerate(words) if self._ends_utterance(word, pauses[n])}
        pieces = split_sentences(words, breaks=stops)
        last_word = -1
        # Audio of consecutive pieces is back to back: each starts where the previous one ended
        # (or at the window's lead-in after a pause) and the last ends at the cut.
        bounds = [max(self._committed_until, self._window_start)]
        bounds += [self._samples(piece[0].start) for piece in pieces[1:]] + [until_sample]
        for n, piece in enumerate(pieces):
            text = join_words(piece)
            context_pcm = self._slice(bounds[n], bounds[n + 1]) if self.config.context_s else b""
            last = piece[-self.config.context_tail_words :] if self.config.context_tail_words else []
            # Within the piece's audio, however its word times came out.
            offset = self._samples(last[0].start) - bounds[n] if last else 0
            offset = min(max(offset, 0), bounds[n + 1] - bounds[n])
            self._finals.append(_Final(text, bounds[n], bounds[n + 1], context_pcm, join_words(last), offset))
            last_word += len(piece)
            pcm = self._slice(bounds[n], bounds[n + 1]) if self.config.return_audio else None
            self._current_utterance(piece[0])  # its ts: when its first word was spoken
            self._open.append(_Committed(piece, pcm, pauses[last_word]))
        self._forget_old_context()
        if words:
            tail = self._committed_tail + [normalize_word(word.text) for word in words]
            self._committed_tail = tail[-COMMITTED_TAIL_WORDS:]
        self._committed_until = max(self._committed_until, until_sample)
        out = self._send_ended_utterances()
        if end_of_speech:
            out += self._send_utterance(len(self._open))
        while self._open_seconds() > self.config.max_utterance_s:
            out += self._send_utterance(self._best_boundary())
        if trim:
            self._trim_committed()
        return out

    def _pause_between(self, last: Word, following: Word | None) -> float:
        """Silence between two words: the gap between their times, or the longest run of frames
        the VAD scored as non-speech between their middles (Whisper often stretches a word over
        the pause after it). No word heard after `last` yet (a final window's last word): 0, as
        the end of speech sends the utterance anyway."""
        if following is None:
            return 0.0
        gap = max(0.0, following.start - last.end)
        frame = self.config.vad_frame_samples
        first = max(self._samples((last.start + last.end) / 2) // frame, self._first_frame)
        scored_until = self._first_frame + len(self._frame_probs)
        stop = min(self._samples((following.start + following.end) / 2) // frame + 1, scored_until)
        run = longest = 0
        for index in range(first, stop):
            quiet = self._frame_probs[index - self._first_frame] < self.config.speech_threshold
            run = run + 1 if quiet else 0
            longest = max(longest, run)
        return max(gap, longest * frame / self._rate)

    def _ends_utterance(self, last: Word, pause_after: float) -> bool:
        """Whether an utterance ends at `last`: a sentence end the speaker paused after, or any word
        but a function word followed by the VAD's end of speech (Whisper writes no full stop for
        some voices at all)."""
        text = last.text.rstrip()
        if text.endswith(SENTENCE_END) and pause_after >= self.config.sentence_pause_s:
            return True
        return pause_after >= self.config.end_of_speech_s and normalize_word(text) not in FUNCTION_WORDS

    def _send_ended_utterances(self) -> list[Transcript]:
        """The finals of every utterance the open pieces end (a piece ends where an utterance may)."""
        out: list[Transcript] = []
        sent = 0
        for count, piece in enumerate(list(self._open), start=1):
            if self._ends_utterance(piece.words[-1], piece.pause_after):
                out += self._send_utterance(count - sent)
                sent = count
        return out

    def _open_seconds(self) -> float:
        if not self._open:
            return 0.0
        return self._open[-1].words[-1].end - self._open[0].words[0].start

    def _best_boundary(self) -> int:
        """How many open pieces a too-long utterance sends: up to its last sentence end, else its
        last comma, else its last pause of `sentence_pause_s`, not after a function word where
        anything else will do. The latest boundary wins, whatever the short pauses after earlier
        ones: an early cut leaves its last word waiting up to the whole utterance for its final
        (a held-out voice that Whisper wrote no full stops for got finals seconds late)."""

        def score(count: int) -> tuple[bool, int, bool, int]:
            last = self._open[count - 1]
            text = last.words[-1].text.rstrip()
            mark = 2 if text.endswith(SENTENCE_END) else 1 if text.endswith(PHRASE_END) else 0
            paused = mark == 0 and last.pause_after >= self.config.sentence_pause_s
            return normalize_word(text) not in FUNCTION_WORDS, mark, paused, count

        return max(range(1, len(self._open) + 1), key=score)

    def _send_utterance(self, count: int) -> list[Transcript]:
        """The final of the open utterance's first `count` pieces; the rest starts the next one."""
        if count <= 0 or not self._open:
            return []
        pieces, self._open = self._open[:count], self._open[count:]
        words = [word for piece in pieces for word in piece.words]
        utterance = self._current_utterance(words[0])
        pcm = b"".join(piece.pcm or b"" for piece in pieces) if self.config.return_audio else None
        self._utterance = None
        self._last_interim = ""
        if self._open:
            self._current_utterance(self._open[0].words[0])
        return [
            Transcript(
                utterance.id,
                "final",
                join_words(words),
                utterance.ts_ms,
                mean_probability(words),
                pcm,
                words[0].start,
                words[-1].end,
                committed_words=len(words),
            )
        ]

    def _forget_old_context(self) -> None:
        """Let go of the audio of finals that no longer fit in a window's context."""
        budget = self._samples(self.config.context_s)
        for index in range(len(self._finals) - 1, -1, -1):
            final = self._finals[index]
            budget -= final.end - final.start
            if budget < 0 and final.pcm:
                self._finals[index] = replace(final, pcm=b"")

    def _samples(self, seconds: float) -> int:
        return int(seconds * self._rate)

    def _interim(self, pending: list[Word]) -> Transcript | None:
        """The open utterance so far: its committed words, then the hypothesis after them."""
        committed = [word for piece in self._open for word in piece.words]
        words = committed + pending
        text = join_words(words)
        if not text or text == self._last_interim:
            return None
        self._last_interim = text
        utterance = self._current_utterance(words[0])
        return Transcript(
            utterance.id,
            "interim",
            text,
            utterance.ts_ms,
            mean_probability(words),
            start_s=words[0].start,
            end_s=words[-1].end,
            committed_words=len(committed),
        )

    def _current_utterance(self, first_word: Word) -> _Utterance:
        if self._utterance is None:
            ts = max(self._wall_ms(int(first_word.start * self._rate)), self._last_ts_ms)
            self._last_ts_ms = ts
            self._utterance = _Utterance(self._new_id(), ts)
        return self._utterance

    def _wall_ms(self, sample: int) -> int:
        """When a sample was spoken, by the server clock: its chunk's arrival minus what followed it."""
        for chunk_end, arrival_ms in self._arrivals:
            if chunk_end > sample:
                return arrival_ms - round((chunk_end - sample) * 1000 / self._rate)
        return self._last_audio_ms or 0

    def _slice(self, start: int, end: int) -> bytes:
        lo = max(0, start - self._window_start) * SAMPLE_WIDTH_BYTES
        hi = max(0, end - self._window_start) * SAMPLE_WIDTH_BYTES
        return bytes(self._audio[lo:hi])

    def _drop_until(self, sample: int) -> None:
        sample = min(max(sample, self._window_start), self._received)
        del self._audio[: (sample - self._window_start) * SAMPLE_WIDTH_BYTES]
        self._window_start = sample
        while self._arrivals and self._arrivals[0][0] <= sample:
            self._arrivals.popleft()
        # Frames just before the window still tell whether its first word was heard as speech.
        margin = self._samples(self.config.word_vad_margin_s)
        first_kept = max(0, sample - margin) // self.config.vad_frame_samples
        if first_kept > self._first_frame:
            del self._frame_probs[: first_kept - self._first_frame]
            self._first_frame = first_kept

    def _speech_frames(self) -> list[int]:
        """Absolute indices of the window's frames the VAD scored as speech."""
        threshold = self.config.speech_threshold
        start_frame = -(-self._pending_start() // self.config.vad_frame_samples)  # ceil
        return [
            self._first_frame + i
            for i, p in enumerate(self._frame_probs)
            if p >= threshold and self._first_frame + i >= start_frame
        ]

    def _pending_start(self) -> int:
        """Where audio not yet committed begins (the window may hold some overlap before it)."""
        return max(self._window_start, self._committed_until)

    def _speech_seconds(self) -> float:
        return self._speech_seconds_in(self._speech_frames())

    def _trailing_silence_seconds(self) -> float:
        frames = self._speech_frames()
        scored_until = self._first_frame + len(self._frame_probs)
        # No speech frame left (a cut can land past the VAD's end of speech while words are still
        # pending): the whole window is silence, else those words would never become final.
        silence_from = frames[-1] + 1 if frames else self._pending_start() // self.config.vad_frame_samples
        return max(0, scored_until - silence_from) * self.config.vad_frame_samples / self._rate

    def _trim_leading_silence(self) -> None:
        """Drop audio before the speech (keeping a short lead-in); nothing pending is ever dropped.

        A blip too short to count as speech is forgotten once it is followed by a pause, so a long
        silence never accumulates in the window."""
        if self._hypothesis:
            return
        pad = int(self.config.speech_pad_s * self._rate)
        frames = self._speech_frames()
        blip_over = (
            self._speech_seconds() < self.config.min_speech_s
            and self._trailing_silence_seconds() >= self.config.end_of_speech_s
        )
        if frames and not blip_over:
            keep_from = frames[0] * self.config.vad_frame_samples - pad
        else:
            keep_from = self._received - pad
        if keep_from > self._window_start:
            self._drop_until(keep_from)

"""The batch path against the single one, with the real tiny.en on corpus audio (no Redis): a batch
of one hears exactly what `transcribe` hears; windows batched together hear the same words as
alone when the batch pads none of them further than alone (times alike, probabilities within
batching's rounding)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from models.decoding import encoder_frames
from models.transcriber import Transcriber, Window
from service.audio import BYTES_PER_SECOND
from service.contracts import DecoderHints, WordTiming
from service.settings import Settings

pytestmark = pytest.mark.integration

CUTS = [
    ("jfk_ask_not", 0.0, 5.3),
    ("synth_en_us", 3.1, 7.9),
    ("meeting_3spk_dev.spk1", 8.0, 6.4),
    ("synth_en_gb", 2.0, 8.6),
]
PROMPTS = [
    "",
    "And so, my fellow Americans.",
    "",
    "The meeting is about the budget, and the plan for next year: what we spend on the new office,"
    " who we hire for the support team, and when the first release ships to our customers.",
]
"""Two windows with no previous text, two with prompts of different lengths. As they are: three
decoder calls. At WHISPER_PROMPT_TOKENS=32 the short one is dropped and the long one cut to its
last 32 tokens: two calls, and the single path must prompt with the same tokens."""


@pytest.fixture(
    scope="module",
    params=[(1, 0), (2, Settings().whisper_prompt_tokens)],
    ids=["one call at a time, whole prompts", "two calls at once, prompts at one length"],
)
def transcriber(request: pytest.FixtureRequest) -> Transcriber:
    """With two parallel calls a batch is split in two parts that run at once on two replicas."""
    parallel_calls, prompt_tokens = request.param
    transcriber = Transcriber.from_settings(
        Settings(whisper_parallel_calls=parallel_calls, whisper_prompt_tokens=prompt_tokens)
    )
    assert transcriber.parallel_calls == parallel_calls
    return transcriber


@pytest.fixture(scope="module")
def windows(speech: Callable[[str], bytes]) -> list[Window]:
    cut = [
        speech(name)[int(start * BYTES_PER_SECOND) // 2 * 2 :][: int(length * BYTES_PER_SECOND) // 2 * 2]
        for name, start, length in CUTS
    ]
    return [
        Window(pcm=pcm, language="en", hints=DecoderHints(prompt=prompt))
        for pcm, prompt in zip(cut, PROMPTS, strict=True)
    ]


@pytest.fixture(scope="module")
def alone(transcriber: Transcriber, windows: list[Window]) -> list[list[WordTiming]]:
    return [transcriber.transcribe(w.pcm, w.language, w.hints.prompt).words for w in windows]


def test_a_batch_of_one_hears_exactly_what_transcribe_hears(
    transcriber: Transcriber, windows: list[Window], alone: list[list[WordTiming]]
) -> None:
    for window, words in zip(windows, alone, strict=True):
        assert len(words) >= 5
        assert transcriber.transcribe_batch([window])[0].words == words


def test_windows_batched_together_hear_what_they_hear_alone(
    transcriber: Transcriber, windows: list[Window], alone: list[list[WordTiming]]
) -> None:
    assert len({encoder_frames(len(w.pcm) / BYTES_PER_SECOND) for w in windows}) == 1  # nobody padded further
    together = transcriber.transcribe_batch(windows)
    for transcription, words in zip(together, alone, strict=True):
        assert [w.text for w in transcription.words] == [w.text for w in words]
        assert [(w.start, w.end) for w in transcription.words] == [(w.start, w.end) for w in words]
        assert [w.probability for w in transcription.words] == pytest.approx(
            [w.probability for w in words], abs=0.02
        )
    shares = {t.compute_s for t in together}
    assert len(shares) == 1 and shares.pop() > 0  # one batch, its time shared


def test_silence_in_a_batch_is_heard_as_nothing(
    transcriber: Transcriber, windows: list[Window], speech: Callable[[str], bytes]
) -> None:
    silence = Window(pcm=speech("silence_20s")[: 6 * BYTES_PER_SECOND], language="en")
    empty = Window(pcm=b"", language="en")
    out = transcriber.transcribe_batch([windows[0], silence, empty])
    assert out[0].words and out[1].words == [] and out[2].words == []


def test_a_window_with_a_prefix_hears_only_the_words_after_it_at_their_own_times(
    transcriber: Transcriber, speech: Callable[[str], bytes]
) -> None:
    pcm = speech("jfk_ask_not")
    whole = transcriber.transcribe_batch([Window(pcm=pcm, language="en")])[0].words
    texts = [w.text.strip(" ,.").lower() for w in whole]
    first_new = texts.index("ask")
    prefix = "".join(w.text for w in whole[:first_new])
    after = transcriber.transcribe_batch([Window(pcm=pcm, language="en", hints=DecoderHints(prefix=prefix))])[
        0
    ].words
    assert [w.text.strip(" ,.").lower() for w in after] == texts[first_new:]
    # Aligned after the prefix's audio, as in the window without one.
    assert [w.start for w in after] == pytest.approx([w.start for w in whole[first_new:]], abs=0.3)


def jfk_with_prefix(
    transcriber: Transcriber, speech: Callable[[str], bytes]
) -> tuple[bytes, list[WordTiming], int]:
    """JFK's phrase, its words heard whole, and the index of the first word after "Americans"."""
    pcm = speech("jfk_ask_not")
    whole = transcriber.transcribe_batch([Window(pcm=pcm, language="en")])[0].words
    texts = [w.text.strip(" ,.").lower() for w in whole]
    return pcm, whole, texts.index("ask")


def test_a_window_continued_after_its_prefix_tail_hears_only_the_words_after_it_at_their_own_times(
    transcriber: Transcriber, speech: Callable[[str], bytes]
) -> None:
    pcm, whole, first_new = jfk_with_prefix(transcriber, speech)
    window = Window(
        pcm=pcm,
        language="en",
        hints=DecoderHints(
            prefix="".join(w.text for w in whole[:first_new]),
            prefix_tail="".join(w.text for w in whole[first_new - 2 : first_new]),
            prefix_tail_s=whole[first_new - 2].start,
        ),
    )
    after = transcriber.transcribe_batch([window])[0].words
    assert [w.text.strip(" ,.").lower() for w in after] == [
        w.text.strip(" ,.").lower() for w in whole[first_new:]
    ]
    assert [w.start for w in after] == pytest.approx([w.start for w in whole[first_new:]], abs=0.3)


def test_windows_with_forced_and_continued_prefixes_batched_together_hear_what_they_hear_alone(
    transcriber: Transcriber, speech: Callable[[str], bytes]
) -> None:
    pcm, whole, first_new = jfk_with_prefix(transcriber, speech)
    prefix = "".join(w.text for w in whole[:first_new])
    tail = "".join(w.text for w in whole[first_new - 2 : first_new])
    continued = Window(
        pcm, "en", DecoderHints(prefix=prefix, prefix_tail=tail, prefix_tail_s=whole[first_new - 2].start)
    )
    windows = [
        Window(pcm, "en"),
        Window(
            pcm, "en", DecoderHints(prefix=prefix)
        ),  # forced after the same task tokens: one call with the first
        continued,
        Window(
            pcm,
            "en",
            DecoderHints(prefix=prefix, prefix_tail=tail, prefix_tail_s=whole[first_new - 2].start + 0.1),
        ),
        Window(
            pcm,
            "en",
            DecoderHints(prompt="My fellow citizens.", prefix=prefix, prefix_tail=tail, prefix_tail_s=1.0),
        ),
    ]
    alone = [transcriber.transcribe_batch([window])[0].words for window in windows]
    together = transcriber.transcribe_batch(windows)
    assert [[w.text for w in t.words] for t in together] == [[w.text for w in words] for words in alone]
    assert all(words for words in alone)


def test_an_english_only_model_hears_auto_as_english_and_detects_nothing_else(
    transcriber: Transcriber, windows: list[Window]
) -> None:
    asking = [
        Window(windows[0].pcm, "auto", windows[0].hints),
        Window(windows[1].pcm, "en", windows[1].hints, detect_language=True),
        windows[2],
    ]

    heard = transcriber.transcribe_batch(asking)

    assert [(h.language, h.language_probability) for h in heard] == [("en", None), ("en", None), (None, None)]
    assert [h.words for h in heard] == [h.words for h in transcriber.transcribe_batch(windows[:3])]

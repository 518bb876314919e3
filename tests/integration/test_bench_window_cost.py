"""bench.window_cost with the real tiny.en: the prefix's words are decoded but not returned."""

from __future__ import annotations

from typing import Any

import pytest

from bench.window_cost import measure
from demos.client import DEFAULT_CHUNK_SAMPLES
from models.transcriber import Transcriber
from service.audio import SAMPLE_WIDTH_BYTES
from service.settings import Settings

pytestmark = pytest.mark.integration


def test_a_window_with_its_first_seconds_as_prefix_returns_only_the_words_after_them(
    speech: Any,
) -> None:
    jfk = speech("jfk_ask_not")
    window = jfk[: 10 * DEFAULT_CHUNK_SAMPLES * SAMPLE_WIDTH_BYTES]

    cost = measure(Transcriber.from_settings(Settings()), window, context_s=4.0, repeats=1)

    assert cost.prefix_words > 0
    assert 0 < cost.words_after_prefix < cost.words_alone
    assert 0 < cost.words_continued < cost.words_alone
    assert min(cost.seconds_alone, cost.seconds_with_prefix, cost.seconds_continued, cost.seconds_silence) > 0

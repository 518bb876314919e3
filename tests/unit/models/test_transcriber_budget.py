"""How much encoder input and how many tokens a window gets (pure arithmetic, no model)."""

from __future__ import annotations

import pytest

from models.decoding import (
    MIN_ENCODER_S,
    WHISPER_MAX_LENGTH,
    decoded_token_cap,
    decoder_max_length,
    encoder_frames,
    token_budget,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("seconds", "frames"),
    [
        (0.5, 1000),
        (5.0, 1000),
        (9.0, 1000),
        (9.2, 1020),
        (10.1, 1110),
        (12.0, 1300),
        (28.5, 2950),
        (29.2, 3000),
        (45.0, 3000),
    ],
)
def test_the_encoder_hears_the_window_plus_a_second_in_tenths_within_10_to_30_s(
    seconds: float, frames: int
) -> None:
    assert encoder_frames(seconds) == frames
    assert encoder_frames(seconds) >= MIN_ENCODER_S * 100


def test_the_token_budget_grows_with_the_window_and_stops_at_whispers_limit() -> None:
    assert token_budget(1.0) < token_budget(10.0) < token_budget(30.0)
    assert token_budget(300.0) == token_budget(30.0) <= 220


@pytest.mark.parametrize("prompt_length", [3, 4, 20, 60, 120, 227])
@pytest.mark.parametrize("seconds", [0.5, 3.0, 8.0, 15.0, 20.0])
def test_the_decoder_may_spend_the_whole_budget_whatever_the_prompt(
    prompt_length: int, seconds: float
) -> None:
    budget = token_budget(seconds)
    max_length = decoder_max_length(prompt_length, budget)

    assert max_length <= WHISPER_MAX_LENGTH
    assert decoded_token_cap(prompt_length, max_length) >= min(budget, WHISPER_MAX_LENGTH - prompt_length)
    # Without the correction a window with no previous text could decode only about half of it.
    if prompt_length <= 4 and seconds >= 3:
        assert decoded_token_cap(prompt_length, prompt_length + budget) < budget

"""How much encoder input and how many tokens a window gets (pure arithmetic, no model)."""

from __future__ import annotations

import pytest

from models.transcriber import MIN_ENCODER_S, encoder_frames, token_budget

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("seconds", "frames"),
    [(0.5, 1000), (5.0, 1000), (9.0, 1000), (9.2, 1100), (12.0, 1300), (28.5, 3000), (45.0, 3000)],
)
def test_the_encoder_hears_the_window_plus_a_second_within_10_to_30_s(seconds: float, frames: int) -> None:
    assert encoder_frames(seconds) == frames
    assert encoder_frames(seconds) >= MIN_ENCODER_S * 100


def test_the_token_budget_grows_with_the_window_and_stops_at_whispers_limit() -> None:
    assert token_budget(1.0) < token_budget(10.0) < token_budget(30.0)
    assert token_budget(300.0) == token_budget(30.0) <= 220

"""Each stretch of a participant's audio is stored once, whatever windows hear it again."""

from __future__ import annotations

import pytest

from ingress.audio_ledger import AudioLedger, AudioPlan
from service.contracts import AudioPiece
from service.names import AUDIO_TTL_S

pytestmark = pytest.mark.unit


def stream(samples: int) -> bytes:
    """PCM whose every sample is distinct, so a misplaced byte shows."""
    return b"".join((n % 30000).to_bytes(2, "little") for n in range(samples))


AUDIO = stream(1000)


def pcm_of(spans: list[tuple[int, int]]) -> bytes:
    return b"".join(AUDIO[2 * start : 2 * end] for start, end in spans)


def joined(plan: AudioPlan, redis: dict[str, bytes]) -> bytes:
    """What the worker makes of the plan's pieces (`tasks.transcribe.window_audio`)."""
    return b"".join(redis[piece.key][piece.start : piece.end] for piece in plan.pieces)


class FakeRedis(dict[str, bytes]):
    def apply(self, plan: AudioPlan) -> None:
        for key in plan.forgotten:
            del self[key]
        self.update(plan.uploads)


def test_overlapping_windows_store_each_sample_once_and_hear_exactly_their_audio() -> None:
    ledger, redis = AudioLedger("p"), FakeRedis()
    windows = [
        [(0, 300)],
        [(0, 600)],  # the same window, grown
        [(100, 400), (400, 800)],  # a committed final as context, then the new window
        [(100, 400), (450, 900)],  # leading silence trimmed between context and window
    ]
    uploaded = 0
    for spans in windows:
        plan = ledger.place(spans, pcm_of(spans), oldest_needed=spans[0][0], now_s=0.0)
        redis.apply(plan)
        assert joined(plan, redis) == pcm_of(spans)
        uploaded += sum(len(pcm) for _, pcm in plan.uploads)
    assert uploaded == 2 * 900  # samples 0-900, once each
    assert plan.renewed == []  # nothing stored has lost half its time to live yet


def test_a_stretch_has_its_time_to_live_renewed_once_half_of_it_has_passed() -> None:
    ledger = AudioLedger("p")
    first = ledger.place([(0, 300)], pcm_of([(0, 300)]), oldest_needed=0, now_s=0.0)
    [key] = first.keys
    soon = ledger.place([(0, 400)], pcm_of([(0, 400)]), oldest_needed=0, now_s=AUDIO_TTL_S / 2 - 1)
    assert soon.renewed == []
    late = ledger.place([(0, 500)], pcm_of([(0, 500)]), oldest_needed=0, now_s=AUDIO_TTL_S / 2 + 1)
    assert late.renewed == [key]  # the stretch uploaded by the second window is not due yet
    again = ledger.place([(0, 500)], pcm_of([(0, 500)]), oldest_needed=0, now_s=AUDIO_TTL_S / 2 + 2)
    assert again.renewed == []  # renewed at AUDIO_TTL_S / 2 + 1: a whole TTL from there
    assert set(again.keys) == set(late.keys) and not again.uploads


def test_stretches_before_the_oldest_needed_sample_are_forgotten() -> None:
    ledger, redis = AudioLedger("p"), FakeRedis()
    redis.apply(ledger.place([(0, 200)], pcm_of([(0, 200)]), oldest_needed=0, now_s=0.0))
    redis.apply(ledger.place([(0, 400)], pcm_of([(0, 400)]), oldest_needed=0, now_s=0.0))
    plan = ledger.place([(300, 500)], pcm_of([(300, 500)]), oldest_needed=300, now_s=0.0)
    assert len(plan.forgotten) == 1 and plan.forgotten[0] not in plan.keys  # samples 0-200
    redis.apply(plan)
    assert joined(plan, redis) == pcm_of([(300, 500)])
    assert sorted(redis) == sorted(ledger.stored_keys)


def test_after_forget_all_the_next_window_uploads_all_its_audio_under_new_keys() -> None:
    ledger = AudioLedger("p")
    first = ledger.place([(0, 300)], pcm_of([(0, 300)]), oldest_needed=0, now_s=0.0)
    assert ledger.forget_all() == first.keys
    again = ledger.place([(0, 300)], pcm_of([(0, 300)]), oldest_needed=0, now_s=0.0)
    assert again.uploads and set(again.keys).isdisjoint(first.keys)
    assert again.pieces == [AudioPiece(key=again.keys[0], start=0, end=600)]


def test_spans_that_do_not_match_the_audio_are_refused() -> None:
    with pytest.raises(ValueError, match="do not add up"):
        AudioLedger("p").place([(0, 10)], bytes(18), oldest_needed=0, now_s=0.0)


def test_spans_that_follow_one_another_are_named_as_one_piece_of_each_stored_stretch() -> None:
    ledger, redis = AudioLedger("p"), FakeRedis()
    first = ledger.place([(0, 400)], pcm_of([(0, 400)]), oldest_needed=0, now_s=0.0)
    redis.apply(first)
    # Two context finals and the window's own audio, end to end: the stored stretch and the new one.
    spans = [(100, 250), (250, 400), (400, 600)]
    plan = ledger.place(spans, pcm_of(spans), oldest_needed=100, now_s=1.0)
    redis.apply(plan)
    assert joined(plan, redis) == pcm_of(spans)
    assert plan.pieces == [
        AudioPiece(key=first.uploads[0][0], start=200, end=800),
        AudioPiece(key=plan.uploads[0][0], start=0, end=400),
    ]
    # A gap between spans keeps them apart.
    apart = [(100, 200), (300, 600)]
    plan = ledger.place(apart, pcm_of(apart), oldest_needed=100, now_s=2.0)
    redis.apply(plan)
    assert joined(plan, redis) == pcm_of(apart)
    assert len(plan.pieces) == 3

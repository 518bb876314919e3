"""The capacity benchmark's pure parts: laying out tracks, aggregating a step, judging the steps."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from bench.batching import parse_args as batching_args
from bench.capacity import parse_args
from bench.capacity_report import (
    TALKERS,
    TURNS,
    Step,
    aggregate,
    fails_badly,
    holds,
    largest_holding,
    meets_target,
    scenario_markdown,
)
from bench.capacity_tracks import (
    Clip,
    LaidTrack,
    corpus_clips,
    cut,
    interleave,
    one_at_a_time_meetings,
    pick,
    rotate,
    talker_tracks,
)
from bench.corpus import load_corpus
from bench.measures import ParticipantRun, StreamCompute
from bench.metrics import FINAL, Message, TimedWord
from bench.run import positive_counts
from service.audio import SAMPLE_RATE
from service.pcm_files import read_pcm

pytestmark = pytest.mark.unit

RATE = SAMPLE_RATE


def clip(name: str, seconds: float, reference: str | None = None) -> Clip:
    """A clip of noise with no zero sample, so "non-silent" means "not zero" sample by sample."""
    count = round(seconds * RATE)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    noise = rng.integers(1, 3000, count) * rng.choice([-1, 1], count)
    return Clip(name, noise.astype("<i2").tobytes(), reference or f"words of {name}")


CLIPS = [
    clip("a", 2.0),
    clip("b", 1.5),
    clip("c", 3.0),
    clip("d", 0.5),
    clip("e", 1.0),
    clip("f", 2.5),
    clip("g", 1.0),
]


def samples(track: LaidTrack) -> np.ndarray:
    return np.frombuffer(track.pcm(), dtype="<i2")


# --- one talks at a time -----------------------------------------------------------------------


def test_exactly_one_participant_of_a_meeting_is_non_silent_at_any_moment_of_a_turn() -> None:
    for meeting in one_at_a_time_meetings(CLIPS, meetings=3, size=5, gap_s=0.25):
        audio = np.stack([samples(track) for track in meeting])
        speaking = (audio != 0).sum(axis=0)
        assert speaking.max() == 1
        turns = sum(clip.samples for clip in CLIPS)
        gaps = round(0.25 * RATE) * (len(CLIPS) - 1)
        assert speaking.sum() == turns  # every sample of every turn is heard, by exactly one track
        assert audio.shape[1] == turns + gaps


def test_each_track_is_its_turns_at_their_places_and_digital_silence_elsewhere() -> None:
    meeting = one_at_a_time_meetings(CLIPS, meetings=1, size=5)[0]
    for track in meeting:
        audio = samples(track)
        heard = np.zeros(len(audio), dtype=bool)
        for placement in track.placements:
            span = slice(placement.start_sample, placement.end_sample)
            assert audio[span].tobytes() == placement.clip.pcm
            heard[span] = True
        assert not audio[~heard].any()


def test_turns_rotate_among_the_participants_and_meetings_start_on_different_clips() -> None:
    first, second = one_at_a_time_meetings(CLIPS, meetings=2, size=5)
    assert [p.clip.name for p in first[0].placements] == ["a", "f"]  # turns 0 and 5 of 7
    assert [p.clip.name for p in first[1].placements] == ["b", "g"]
    assert [p.clip.name for p in first[4].placements] == ["e"]
    assert [p.clip.name for p in second[0].placements] == ["b", "g"]
    assert [track.participant for track in second] == ["m2p1", "m2p2", "m2p3", "m2p4", "m2p5"]
    # Every meeting says every clip once: the same words, so the same WER to expect.
    for meeting in (first, second):
        said = sorted(p.clip.name for track in meeting for p in track.placements)
        assert said == sorted(c.name for c in CLIPS)


def test_a_participant_without_turns_is_silent_throughout() -> None:
    meeting = one_at_a_time_meetings(CLIPS[:3], meetings=1, size=5)[0]
    assert meeting[3].placements == () and meeting[3].reference == ""
    assert not samples(meeting[3]).any()
    assert len(samples(meeting[3])) == meeting[0].samples


def test_a_tracks_reference_and_offline_words_follow_its_clips() -> None:
    track = one_at_a_time_meetings(CLIPS, meetings=1, size=5, gap_s=0.5)[0][0]  # clips a and f
    assert track.reference == "words of a words of f"
    offline = {"a": [TimedWord(" one", 0.1, 0.4)], "f": [TimedWord(" two", 0.2, 0.6)]}
    start_f = track.placements[1].start_s
    assert start_f == pytest.approx((2.0 + 1.5 + 3.0 + 0.5 + 1.0) + 5 * 0.5)
    assert track.offline_words(offline) == [
        TimedWord(" one", 0.1, 0.4),
        TimedWord(" two", start_f + 0.2, start_f + 0.6),
    ]


# --- every participant talking -----------------------------------------------------------------


def test_talkers_say_every_clip_back_to_back_each_starting_elsewhere() -> None:
    tracks = talker_tracks(CLIPS[:3], count=4, gap_s=0.0)
    assert [[p.clip.name for p in track.placements] for track in tracks] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]
    audio = samples(tracks[1])
    assert audio.tobytes() == CLIPS[1].pcm + CLIPS[2].pcm + CLIPS[0].pcm
    assert audio.all()  # speech from start to end
    assert {track.samples for track in tracks} == {round(6.5 * RATE)}


# --- clips -------------------------------------------------------------------------------------


def test_pick_takes_clips_until_enough_seconds_and_refuses_a_corpus_too_short() -> None:
    assert [c.name for c in pick(CLIPS, 3.0)] == ["a", "b"]
    assert [c.name for c in pick(CLIPS, 3.6)] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="fewer than"):
        pick(CLIPS, 100.0)


def test_rotate_interleave_and_cut() -> None:
    assert rotate("abc", 1) == ["b", "c", "a"]
    assert rotate("abc", 4) == ["b", "c", "a"]
    assert interleave([[1, 2, 3], [10], [20, 21]]) == [1, 10, 20, 2, 21, 3]
    pcm = np.arange(RATE, dtype="<i2").tobytes()
    assert cut(pcm, 0.25, 0.5) == np.arange(RATE // 4, RATE // 2, dtype="<i2").tobytes()


def test_corpus_clips_are_the_manifest_segments_cut_from_their_speakers_tracks(corpus_dir: Path) -> None:
    items = load_corpus(corpus_dir)
    clips = corpus_clips(items, "en", max_clip_s=15.0)
    by_reference = {c.reference: c for c in clips}
    assert all(c.duration_s <= 15.0 for c in clips)
    assert len(by_reference) == len(clips)
    # The JFK sentence is an item and a segment of the meeting: one clip.
    assert sum("ask not what your country" in c.reference for c in clips) == 1
    meeting = next(item for item in items if item.name == "meeting_3spk_dev")
    segment = next(s for s in meeting.segments if s.participant == "spk2")
    track = next(t for t in meeting.tracks if t.participant == "spk2")
    source = read_pcm(track.audio)
    assert by_reference[segment.text].pcm == cut(source, segment.start, segment.end)
    # The first clips come from different items, so a short selection still mixes voices.
    assert len({c.name.split("#")[0] for c in clips[:3]}) == 3


# --- a step's measures -------------------------------------------------------------------------


def run(
    name: str, reference: str, finals: list[tuple[float, str]], offline_heard: list[str] | None = None
) -> ParticipantRun:
    """One-second chunks sent at 100, 101, ...; offline words one per second (the reference's,
    unless `offline_heard` says what the offline pass heard)."""
    words = offline_heard or reference.split()
    return ParticipantRun(
        participant=name,
        reference=reference,
        offline_words=[TimedWord(f" {w}", i + 0.1, i + 0.5) for i, w in enumerate(words)],
        offline_compute_s=0.1,
        messages=[Message(at, FINAL, f"{name}-{i}", text) for i, (at, text) in enumerate(finals)],
        sent_at=[100.0 + i for i in range(len(words) + 1)],
    )


def test_a_step_pools_every_participants_latencies_and_scores_all_their_words_together() -> None:
    quick = run("p1", "one two three four", [(101.5, "one two"), (103.5, "three four")])
    slow = run("p2", "five six", [(105.0, "five sex")])
    measures = aggregate("N=2", [(quick, 10.0), (slow, 30.0)], StreamCompute(2.0, 7))
    assert sorted(measures.final_latencies) == pytest.approx([0.5, 0.5, 1.5, 1.5, 5.0])
    assert measures.lost_words == 1  # "six", never final
    assert measures.final_p90 == pytest.approx(3.6)
    assert measures.finals.errors == 1 and measures.finals.reference_words == 6
    assert measures.finals.rate == pytest.approx(1 / 6)  # not the mean of 0 and 1/2
    assert measures.audio_s == 40.0
    assert measures.stream_compute_per_s == pytest.approx(2.0 / 40.0)


# --- verdicts ----------------------------------------------------------------------------------


def step(
    n: int,
    latency_s: float,
    errors: int,
    refused: int = 0,
    timed_out: int = 0,
    meetings: int = 1,
    offline_errors: int = 10,
) -> Step:
    """10 participants of 10 words each, every word a final `latency_s` after its chunk was sent, the
    first `errors` words of all misheard (and the first `offline_errors` by the offline pass)."""
    runs = []
    for p in range(10):
        heard = ["wrong" if 10 * p + i < errors else "word" for i in range(10)]
        offline = ["wrong" if 10 * p + i < offline_errors else "word" for i in range(10)]
        finals = [(100.0 + i + latency_s, word) for i, word in enumerate(heard)]
        runs.append(run(f"p{p}", " ".join(["word"] * 10), finals, offline))
    measures = aggregate(f"N={n}", [(r, 10.0) for r in runs], compute=None)
    return Step(n, meetings, measures, [], refused, timed_out, [], 0.0)


def test_step_helper_measures_what_it_says() -> None:
    measured = step(4, 3.0, 10, offline_errors=5).measures
    assert measured.end_p90 == pytest.approx(3.0)
    assert measured.finals.rate == pytest.approx(0.10)
    assert measured.offline.rate == pytest.approx(0.05)


def test_the_largest_n_that_holds_stops_at_the_first_step_that_fails() -> None:
    steps = [step(1, 2.0, 10), step(2, 3.0, 11), step(4, 4.0, 12), step(6, 8.0, 10), step(8, 4.0, 10)]
    assert [holds(s) for s in steps] == [True, True, True, False, True]
    assert largest_holding(steps) == 4  # N=8 holding again after N=6 failed does not count
    assert meets_target(steps, 6) is False
    assert meets_target(steps, 4) is True


def test_wer_beyond_the_factor_of_the_same_tracks_offline_or_an_unserved_meeting_fails_a_step() -> None:
    assert not holds(step(2, 2.0, 13))  # 0.13 > 1.2 x 0.10 offline
    assert holds(step(2, 2.0, 20, offline_errors=20))  # harder audio: judged on its own offline WER
    assert not holds(step(2, 2.0, 10, refused=1, meetings=2))
    assert not holds(step(2, 2.0, 10, timed_out=1, meetings=2))
    assert largest_holding([step(1, 2.0, 10), step(2, 2.0, 20)]) == 1
    assert largest_holding([step(1, 6.0, 10)]) is None


def test_a_target_beyond_every_step_that_held_is_not_reached_rather_than_failed() -> None:
    steps = [step(1, 2.0, 10), step(2, 2.0, 10)]
    assert meets_target(steps, 6) is None


def test_a_step_fails_badly_past_twice_the_bound_or_with_every_meeting_refused() -> None:
    assert not fails_badly(step(4, 8.0, 10))
    assert fails_badly(step(4, 12.0, 10))
    assert fails_badly(step(2, 2.0, 10, refused=2, meetings=2))


def test_the_scenario_table_has_a_row_per_step_and_says_the_largest_n() -> None:
    markdown = "\n".join(scenario_markdown(TALKERS, [step(1, 2.0, 10), step(2, 3.0, 11), step(4, 8.0, 10)]))
    assert markdown.count("\n| ") == 4  # header and three rows
    assert "| 1 | 1 |" in markdown and "| 4 | 1 |" in markdown
    assert "**2** talkers; target ≥ 6: **FAIL**" in markdown


def test_the_single_stream_always_runs_and_participants_come_in_whole_meetings() -> None:
    args = parse_args(["--talkers", "4,2", "--participants", "15,30"])
    assert args.talkers == [1, 2, 4]
    assert args.participants == [TURNS.unit, 15, 30]
    with pytest.raises(SystemExit):
        parse_args(["--participants", "12"])


@pytest.mark.parametrize("value", ["0", "2,-1", "x", "", " , "])
def test_counts_on_the_command_line_are_positive_integers(value: str) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--talkers", value])
    with pytest.raises(SystemExit):
        batching_args(["--sizes", value])
    assert positive_counts(" 2, 8 ,") == [2, 8]

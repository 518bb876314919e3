"""The capacity benchmark's rotations that lost a phrase, streamed through the real service.

`python -m bench.capacity --talkers 1,3,6 --talk-s 30` over a corpus of `jfk_ask_not` and
`meeting_3spk_dev` lays three clips end to end per talker, rotated: the talker whose rotation
ended with JFK got "... can do for you. Ask" and never "what you can do for your country",
which the offline pass of the same track hears. Three talkers at once, each with one rotation.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.capacity import run_step, transcribe_clips
from bench.capacity_report import LANGUAGE
from bench.capacity_tracks import corpus_clips, pick, talker_tracks
from bench.corpus import load_corpus
from bench.run import Endpoint
from tests.integration.conftest import Service

pytestmark = pytest.mark.integration

ITEMS = ("jfk_ask_not", "meeting_3spk_dev")
TALK_S = 30.0


def test_every_rotation_of_the_jfk_clips_keeps_every_phrase(service: Service, corpus_dir: Path) -> None:
    items = [item for item in load_corpus(corpus_dir) if item.name in ITEMS]
    talk = pick(corpus_clips(items, LANGUAGE), TALK_S)
    assert [clip.name for clip in talk] == ["meeting_3spk_dev#0", "jfk_ask_not", "meeting_3spk_dev#1"]
    tracks = talker_tracks(talk, len(talk))
    assert [track.placements[-1].clip.name for track in tracks][2] == "jfk_ask_not"
    settings = service.stack.settings
    endpoint = Endpoint(f"ws://{settings.host}:{settings.port}", service.stack.redis_url)

    step = run_step(len(tracks), [[track] for track in tracks], endpoint, transcribe_clips(talk, settings))

    assert step.served and not step.errors, step.problems + step.errors
    assert step.measures.dropped_phrases == []
    for participant, texts in step.measures.transcripts.items():
        assert "what you can do for your country" in texts["finals"].lower().replace(",", ""), participant

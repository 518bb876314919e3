"""Which language a window's speech is in: Whisper's own detection (one encoder pass and one
decoder step over the language tokens), for windows of several participants at once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.decoding import MAX_FRAMES, batch_frames
from models.engine import WhisperEngine
from service.audio import SAMPLE_RATE, pcm_to_float32


def detect_languages(engine: WhisperEngine, pcms: Sequence[bytes]) -> list[tuple[str, float]]:
    """(language code, probability) for each window, the encoder input cut to the longest window
    as the batch path cuts it (a multilingual model only)."""
    import ctranslate2

    model = engine.model
    audios = [pcm_to_float32(pcm) for pcm in pcms]
    mels = [model.feature_extractor(audio)[:, :-1][:, :MAX_FRAMES] for audio in audios]
    seconds = [max(len(audio), 1) / SAMPLE_RATE for audio in audios]
    features = np.zeros((len(mels), mels[0].shape[0], batch_frames(seconds)), dtype=np.float32)
    for row, mel in enumerate(mels):
        features[row, :, : mel.shape[-1]] = mel
    encoder_output = model.model.encode(ctranslate2.StorageView.from_array(features))
    # Each row: (token, probability) pairs, most probable first; tokens read "<|de|>".
    return [
        (ranked[0][0][2:-2], float(ranked[0][1])) for ranked in model.model.detect_language(encoder_output)
    ]

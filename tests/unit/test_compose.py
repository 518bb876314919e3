"""docker-compose.yml, read as data (no Docker engine needed): the services, their profiles, and
that every variable it sets is one the service reads (a typo would be silently ignored)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.settings import Settings

pytestmark = pytest.mark.unit

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
FOREIGN_VARIABLES = {"CELERY_BROKER_URL", "FLOWER_PORT"}
"""Read by Flower's image, not by this service."""


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return dict(compose["services"])


def test_default_services_and_profiles(services: dict[str, Any]) -> None:
    default = {name for name, spec in services.items() if "profiles" not in spec}
    assert default == {"redis", "ingress", "worker"}
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    assert services["flower"]["profiles"] == ["monitoring"]


def test_commands_are_the_cli_roles(services: dict[str, Any]) -> None:
    assert services["ingress"]["command"] == ["streaming-whisper", "ingress"]
    for worker in ("worker", "worker-gpu"):
        assert services[worker]["command"] == ["streaming-whisper", "worker"]


def test_ports(services: dict[str, Any]) -> None:
    assert services["ingress"]["ports"] == ["8000:8000"]
    assert services["flower"]["ports"] == ["5555:5555"]


def test_ingress_health_is_its_readiness(services: dict[str, Any]) -> None:
    assert "/readyz" in " ".join(services["ingress"]["healthcheck"]["test"])


def test_gpu_worker_reserves_an_nvidia_gpu_and_uses_float16(services: dict[str, Any]) -> None:
    gpu = services["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(device["driver"] == "nvidia" and "gpu" in device["capabilities"] for device in devices)
    assert gpu["environment"]["WHISPER_DEVICE"] == "cuda"
    assert gpu["environment"]["WHISPER_COMPUTE_TYPE"] == "float16"
    assert services["worker"]["environment"]["WHISPER_DEVICE"] == "cpu"


def test_models_folder_is_mounted_and_the_path_set_only_when_given(services: dict[str, Any]) -> None:
    for worker in ("worker", "worker-gpu"):
        assert any(volume.startswith("./models-data:/models") for volume in services[worker]["volumes"])
        # No value: passed through from the host only when set there; an empty value would be a path.
        assert services[worker]["environment"]["WHISPER_MODEL_PATH"] is None


def test_flower_watches_the_same_broker(services: dict[str, Any]) -> None:
    broker = services["worker"]["environment"]["REDIS_URL"]
    assert services["flower"]["environment"]["CELERY_BROKER_URL"] == broker
    assert f"--broker={broker}" in services["flower"]["command"]


def test_every_variable_is_a_setting(services: dict[str, Any]) -> None:
    known = set(Settings.model_fields)
    # environment is a mapping here; the list form ("NAME=value") would work the same.
    used = {entry.split("=")[0] for spec in services.values() for entry in spec.get("environment", {})}
    unknown = {name for name in used if name.lower() not in known and name not in FOREIGN_VARIABLES}
    assert not unknown, f"not fields of service.settings.Settings: {sorted(unknown)}"
    assert "REDIS_URL" in used  # the check above looked at something


DOCKERFILE = COMPOSE_FILE.parent / "Dockerfile"


def dockerfile_stages() -> dict[str, str]:
    """Stage name → its base image, from the `FROM image AS name` lines."""
    stages = {}
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0].upper() == "FROM" and parts[2].upper() == "AS":
            stages[parts[3]] = parts[1]
    return stages


def test_each_role_builds_its_own_image_stage(services: dict[str, Any]) -> None:
    stages = dockerfile_stages()
    for name, target in (("ingress", "ingress"), ("worker", "worker"), ("worker-gpu", "worker-gpu")):
        assert services[name]["build"]["target"] == target
        assert target in stages, f"no stage {target} in the Dockerfile"


def test_the_ingress_and_cpu_images_are_slim_and_only_the_gpu_worker_carries_cuda() -> None:
    stages = dockerfile_stages()

    def resolve(stage: str) -> str:
        """The image a stage is finally built on (a stage may start from another stage)."""
        while stages[stage] in stages:
            stage = stages[stage]
        return stages[stage]

    assert resolve("ingress").startswith("python:") and resolve("ingress").endswith("-slim")
    assert resolve("worker").startswith("python:")
    assert resolve("worker-gpu").startswith("nvidia/cuda:") and "cudnn" in resolve("worker-gpu")
    text = DOCKERFILE.read_text(encoding="utf-8")

    def stage_text(name: str) -> str:
        return text.split(f"AS {name}\n", 1)[1].split("\nFROM ", 1)[0]

    # No faster-whisper, CTranslate2 or model weights in the ingress: its extra only, and the VAD
    # model file it needs named by VAD_MODEL_PATH (tests/unit/ingress/test_ingress_alone.py runs that).
    ingress_stage = stage_text("ingress")
    assert 'pip install --no-cache-dir ".[ingress]"' in ingress_stage and "[worker]" not in ingress_stage
    assert "VAD_MODEL_PATH=/app/silero_vad_v6.onnx" in ingress_stage
    pyproject = tomllib.loads((COMPOSE_FILE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    (pin,) = [
        d for d in pyproject["project"]["optional-dependencies"]["worker"] if d.startswith("faster-whisper")
    ]
    assert f'"{pin}"' in ingress_stage  # the VAD file comes from the release the workers run
    assert 'pip install --no-cache-dir ".[worker]"' in stage_text("worker")
    assert 'pip install --no-cache-dir ".[worker]"' in stage_text("worker-gpu")

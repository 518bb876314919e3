"""The docs a clone carries: every setting is in the protocol's configuration table, every link
between them resolves inside the repository, and nothing points at a folder beside the clone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bench.corpus import REPO_ROOT
from service.settings import Settings

pytestmark = pytest.mark.unit

PROTOCOL = REPO_ROOT / "docs" / "protocol.md"
DOCS = [
    REPO_ROOT / "README.md",
    PROTOCOL,
    REPO_ROOT / "docs" / "capacity-log.md",
    REPO_ROOT / "corpus" / "README.md",
]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def configuration_table() -> str:
    text = PROTOCOL.read_text(encoding="utf-8")
    return text[text.index("## Configuration") :]


@pytest.mark.parametrize("name", [field.upper() for field in Settings.model_fields])
def test_every_setting_is_in_the_configuration_table(name: str) -> None:
    assert f"`{name}`" in configuration_table()


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_every_local_link_resolves_inside_the_repository(doc: Path) -> None:
    targets = [t for t in LINK.findall(doc.read_text(encoding="utf-8")) if "://" not in t]
    for target in targets:
        path = (doc.parent / target).resolve()
        assert path.is_relative_to(REPO_ROOT), f"{doc.name} links outside the clone: {target}"
        assert path.exists(), f"{doc.name} links to a missing file: {target}"


def test_no_tracked_file_points_at_a_folder_beside_the_clone() -> None:
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True)
    beside = "../" + "shared"  # spelled apart so this file does not match itself
    mentions = [
        name
        for name in tracked.stdout.decode().split("\0")
        if name and beside in (REPO_ROOT / name).read_bytes().decode("utf-8", errors="ignore")
    ]
    assert mentions == []

"""Which package may import which: the shared ground floor (`service/`) imports nothing of ours
above it, the streaming policy only the ground floor, the ingress never the model code or the
worker's tasks (only the Celery app they share), the model code neither edge; the commands
(`commands/`) may import everything. Read from the source (imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
OURS = {"commands", "service", "streaming", "ingress", "tasks", "models", "demos", "bench"}
ALLOWED: dict[str, set[str]] = {
    "service": {"service"},
    "streaming": {"service", "streaming"},
    "ingress": {"service", "streaming", "ingress", "tasks.celery_app"},
    "models": {"service", "models"},
    "tasks": {"service", "models", "tasks"},
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] in OURS}


def allowed(name: str, packages: set[str]) -> bool:
    return any(name == package or name.startswith(f"{package}.") for package in packages)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_floors_below_it(package: str) -> None:
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in modules
        for name in imported_modules(path)
        # `from tasks import celery_app` names the package and the module: the module decides.
        if not allowed(name, ALLOWED[package])
        and not any(
            allowed(other, ALLOWED[package]) and other.startswith(f"{name}.")
            for other in imported_modules(path)
        )
    }
    assert not wrong, sorted(wrong)

"""Import direction inside the library (docs/architecture.md): training and evaluation never import
each other; the ranking core and the run reader sit outside both; the library never imports the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ur4rec_cli"

# package (or module) -> the ur4rec_cli packages it must never import, at any depth of a function.
FORBIDDEN = {
    "training": {"evaluation", "serving", "cli", "api"},
    "evaluation": {"training", "cli", "api"},
    "serving": {"training", "evaluation", "cli", "api"},
    "ranking.py": {"training", "evaluation", "serving", "cli", "api"},
    "runs.py": {"training", "evaluation", "serving", "cli", "api"},
    "features": {"training", "evaluation", "serving", "cli", "api"},
    "models": {"training", "evaluation", "serving", "cli", "api"},
}


def _imported_packages(path: Path) -> set[str]:
    """The first component under ``ur4rec_cli`` of every import in the file (function bodies too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "ur4rec_cli" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("where", sorted(FORBIDDEN))
def test_import_direction(where: str) -> None:
    target = SRC / where
    files = [target] if target.is_file() else sorted(target.rglob("*.py"))
    assert files, where
    bad = {f.relative_to(SRC).as_posix(): sorted(_imported_packages(f) & FORBIDDEN[where]) for f in files}
    assert {k: v for k, v in bad.items() if v} == {}


def test_ranking_core_is_shared() -> None:
    """Validation and `evaluate` rank through the same module."""
    assert "ranking" in _imported_packages(SRC / "training" / "trainer.py")
    assert "ranking" in _imported_packages(SRC / "evaluation" / "run.py")
    assert not (SRC / "evaluation" / "ranking.py").exists() and not (SRC / "evaluation" / "metrics.py").exists()

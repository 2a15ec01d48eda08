"""The house stays tidy: no import circles, no private name imported across modules, no file over
400 lines, and docs/architecture.md maps every module of the package exactly once.

Every import counts, wherever it stands: at the top, inside a function, under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "ur4rec_cli"
MAX_LINES = 400


def _modules(src: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` of the package (``pkg.sub`` for ``pkg/sub/__init__.py``)."""
    found = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(module imported, name taken from it or None) for every import of the package in the file."""
    is_package = path.name == "__init__.py"
    out: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names if a.name in modules]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                here = name.split(".") if is_package else name.split(".")[:-1]
                here = here[: len(here) - node.level + 1]
                base = ".".join(here + ([node.module] if node.module else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    out.append((f"{base}.{alias.name}", None))
                elif base in modules:
                    out.append((base, alias.name))
    # A package's own submodules are not an edge back to it (``pkg/__init__`` may import ``pkg.sub``).
    return [(m, sym) for m, sym in out if m != name and not (is_package and m.startswith(name + "."))]


def import_graph(src: Path, package: str) -> tuple[dict[str, set[str]], list[str]]:
    """Module -> modules it imports, and every ``from x import _private`` across modules."""
    modules = _modules(src, package)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    private = []
    for name, path in modules.items():
        for target, symbol in _imports(name, path, modules):
            edges[name].add(target)
            if symbol and symbol.startswith("_") and not symbol.startswith("__"):
                private.append(f"{name} imports {target}.{symbol}")
    return edges, private


def import_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return cycles


def long_files(src: Path, package: str, limit: int = MAX_LINES) -> dict[str, int]:
    lengths = {p.relative_to(src).as_posix(): len(p.read_text("utf-8").splitlines()) for p in (src / package).rglob("*.py")}
    return {p: n for p, n in lengths.items() if n > limit}


def test_no_import_cycle() -> None:
    edges, _ = import_graph(SRC, PACKAGE)
    assert sum(len(e) for e in edges.values()) > 100  # the walk found the package's imports
    assert import_cycles(edges) == []


def test_no_private_import_across_modules() -> None:
    assert import_graph(SRC, PACKAGE)[1] == []


def test_no_file_over_the_limit() -> None:
    assert long_files(SRC, PACKAGE) == {}


def test_the_checks_catch_what_they_look_for(tmp_path: Path) -> None:
    """A planted circle (through a function and a TYPE_CHECKING import), a private import and a long file."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg.sub.b import g\n    return g\n")
    (pkg / "sub" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..c import _hidden\n")
    (pkg / "c.py").write_text("from pkg import a\n" + "x = 1\n" * MAX_LINES)
    edges, private = import_graph(tmp_path, "pkg")
    assert import_cycles(edges) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    assert private == ["pkg.sub.b imports pkg.c._hidden"]
    assert long_files(tmp_path, "pkg") == {"pkg/c.py": MAX_LINES + 1}


def test_architecture_maps_every_module_once() -> None:
    """Each row of the module tables names its files by path under src/ur4rec_cli/; each file once."""
    page = (ROOT / "docs" / "architecture.md").read_text("utf-8")
    section = page.split("## What lives where", 1)[1].split("\n## ", 1)[0]
    named: list[str] = []
    for line in section.splitlines():
        if line.startswith("| `"):
            named += re.findall(r"`([\w/]+\.py)`", line.split(" | ")[0])
    on_disk = sorted(p.relative_to(SRC / PACKAGE).as_posix() for p in (SRC / PACKAGE).rglob("*.py"))
    assert sorted(n for n in set(named) if named.count(n) > 1) == []
    assert sorted(set(named)) == on_disk

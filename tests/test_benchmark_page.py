"""docs/benchmarks.md is exactly what the benchmark script renders from its saved figures."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import render_page

ROOT = Path(__file__).resolve().parents[1]


def _render(figures: Path, out: Path) -> str:
    return render_page("ml100k.py", figures, out)


def test_benchmark_page_is_rendered_from_saved_figures(tmp_path: Path) -> None:
    page = (ROOT / "docs" / "benchmarks.md").read_text("utf-8")
    assert _render(ROOT / "docs" / "benchmarks.json", tmp_path / "page.md") == page  # no hand-edited figure


def test_targets_table_follows_the_figures(tmp_path: Path) -> None:
    saved = json.loads((ROOT / "docs" / "benchmarks.json").read_text("utf-8"))
    final = saved["results"]["UR4Rec V2 (final)"]["full"]
    final["NDCG@10"] = [0.2, 0.2, 0.2]  # above the 0.125 bar
    final["HR@10"] = [0.1, 0.1, 0.1]  # below the 0.23 bar
    saved["boot"] = [0.01, -0.001, 0.02]  # CI touching zero
    src = tmp_path / "figures.json"
    src.write_text(json.dumps(saved), "utf-8")
    page = _render(src, tmp_path / "page.md")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in page.splitlines() if "≥" in line or "CI above 0" in line}
    assert rows["UR4Rec V2 (final) NDCG@10 ≥ 0.125"].endswith("| yes |")
    assert rows["UR4Rec V2 (final) HR@10 ≥ 0.23"].endswith("| **no** |")
    assert rows["final − SASRec NDCG@10: paired 95% CI above 0"].endswith("| **no** |")

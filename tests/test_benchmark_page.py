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
    final["NDCG@10"] = [0.2, 0.2, 0.2]  # above the 0.118 and 0.125 bars
    final["HR@10"] = [0.1, 0.1, 0.1]  # below the 0.22 and 0.23 bars
    saved["boot"] = [0.01, -0.001, 0.02]  # CI touching zero
    saved["boot_ref"] = [0.01, 0.001, 0.02]  # CI above zero
    saved["results"]["reference SASRec (same data)"]["full"]["NDCG@10"] = [0.5, 0.5, 0.5]  # above our stage 1
    saved["default_run"]["test"]["NDCG@10"] = 0.1  # below 0.11
    for seed_row in saved["select_rows"]:  # end_to_end ends below its start in every seed, the others above
        for r in seed_row[1]:
            if r["start"] is not None:
                r["end"] = r["start"] + (-0.001 if r["stage"] == "end_to_end" else 0.001)
    src = tmp_path / "figures.json"
    src.write_text(json.dumps(saved), "utf-8")
    page = _render(src, tmp_path / "page.md")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in page.splitlines() if "≥" in line or "CI above 0" in line or "improves" in line}
    assert rows["UR4Rec V2 (final) NDCG@10 ≥ 0.118"].endswith("| yes |")
    assert rows["UR4Rec V2 (final) NDCG@10 ≥ 0.125 (moonshot)"].endswith("| yes |")
    assert rows["UR4Rec V2 (final) HR@10 ≥ 0.22"].endswith("| **no** |")
    assert rows["final − SASRec NDCG@10: paired 95% CI above 0"].endswith("| **no** |")
    assert rows["final − reference SASRec (same data) NDCG@10: paired 95% CI above 0"].endswith("| yes |")
    assert rows["SASRec (stage 1) NDCG@10 ≥ reference SASRec (same data)"].endswith("| **no** |")
    assert rows["default single run (`train --stage all`, seed 42) final NDCG@10 ≥ 0.11"].endswith("| **no** |")
    assert "| not: end_to_end | **no** |" in rows["every stage improves validation in at least one seed"]

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


def _scale_page():
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import scale_page

    return scale_page


def test_scale_picture_is_drawn_from_the_saved_figures(tmp_path: Path) -> None:
    saved = json.loads((ROOT / "docs" / "benchmarks-scale.json").read_text("utf-8"))
    _scale_page().write_picture(saved, tmp_path / "scale.svg")
    assert (tmp_path / "scale.svg").read_text("utf-8") == (ROOT / "docs" / "scale.svg").read_text("utf-8")


def test_scale_targets_follow_the_figures() -> None:
    def row(size: str, epoch_s: float, rss: float, e8: float = 2.0, e1: float = 1.0) -> dict:
        ok = {"rc": 0}
        return {"size": size, "train": {**ok, "epoch_s": epoch_s, "rss_mib": rss}, "evaluate_8": {**ok, "seconds": e8}, "evaluate_1": {**ok, "seconds": e1}}

    saved = {
        "cpu": {"rows": [row("100k", 10, 1000), row("1m@2k", 120, 1100, e8=1.5), row("1m", 300, 3500, e8=9.0)]},
        "ml100k": {"after": {"wall": 290.0}, "before": {"wall": 421.0, "date": "2026-12-02"}},
    }
    lines = {line.split(" | ")[0].lstrip("| "): line for line in _scale_page().targets(saved)}
    assert lines["ML-100K `train --stage all` ≤ 300 s alone (CPU)"].endswith("| yes |")
    assert lines["1M interactions / 20k items: train peak RSS ≤ 3 GB"].endswith("| **no** |")  # 3.42 GB
    assert lines["epoch time at most linear in interactions at a fixed catalogue (10× interactions: ≤ 10×)"].endswith("| **no** |")  # x 12
    assert lines["peak memory flat in catalogue size (10× items at 1M interactions: ≤ 1.2×)"].endswith("| **no** |")  # x 3.18
    assert lines["8-order evaluate ≤ 2× one order (CPU, 100k)"].endswith("| yes |")
    assert lines["8-order evaluate ≤ 2× one order (CPU, 1m@2k)"].endswith("| yes |")
    assert lines["8-order evaluate ≤ 2× one order (CPU, 1m)"].endswith("| **no** |")

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


def test_ml100k_cost_target_from_a_code_ab_needs_both_time_and_quality() -> None:
    """From a 3-seed code A/B (scale.py --from-ab) the ≤ 300 s row is met only when the new code is
    fast enough on average and its test NDCG@10 did not drop (the CI of new − old reaches zero)."""
    def saved(walls: list[float], ci: list[float]) -> dict:
        arm = lambda w: {"wall": sum(w) / len(w), "walls": w, "ndcg10": 0.12, "stages": [{"stage": "pretrain_sasrec", "wall_s": 1.0}]}  # noqa: E731
        ml = {"date": "d", "machine": "m", "command": "c", "seeds": [0, 1, 2], "before": arm([400.0] * 3), "after": arm(walls),
              "quality": {"mean": sum(ci) / 2, "ci95": ci}}  # fmt: skip
        return {"ml100k": ml}

    def row(s: dict) -> str:
        return next(line for line in _scale_page().targets(s) if "ML-100K" in line)

    assert row(saved([290.0, 300.0, 305.0], [-0.004, 0.006])).endswith("| yes |")  # mean 298 s
    assert row(saved([290.0, 300.0, 305.0], [-0.009, -0.001])).endswith("| **no** |")  # quality dropped
    assert row(saved([290.0, 310.0, 320.0], [-0.004, 0.006])).endswith("| **no** |")  # mean 307 s
    assert "(290, 300, 305 s; before: 400 s in the same run)" in row(saved([290.0, 300.0, 305.0], [-0.004, 0.006]))


def test_attribution_targets_follow_the_figures() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import attribution_page as A

    def figures(tail_lo: float, head_hi: float, all_lo: float, final: float) -> dict:
        cases = {"all": 943, "tail (1-50)": 229, "torso (51-200)": 446, "head (>200)": 265}
        ci = {"all": [all_lo, 0.02], "tail (1-50)": [tail_lo, 0.04], "torso (51-200)": [-0.01, 0.02], "head (>200)": [-0.05, head_hi]}
        pairs = [{"a": A.FINAL, "b": A.S1, "slice": s, "mean": (lo + hi) / 2, "ci95": [lo, hi]} for s, (lo, hi) in ci.items()]
        table = {m: {s: {"mean": final, "per_seed": [final] * 3} for s in cases} for m in (A.S1, A.FINAL)}
        return {"command": "c", "date": "d", "machine": "m", "note": "n", "seeds": [0, 1, 2], "cuts": [50, 200], "cases": cases,
                "models": [A.S1, A.FINAL], "table": table, "pairs": pairs, "train_wall_s": {}, "total_s": 60.0}  # fmt: skip

    met = [t["met"] for t in A.targets(figures(0.01, 0.0, 0.001, 0.1196), 0.1196)]
    assert met == [True, True, True, True]
    met = [t["met"] for t in A.targets(figures(-0.01, -0.001, -0.001, 0.1195), 0.1196)]
    assert met == [False, False, False, False]
    page = "\n".join(A.render_section(figures(0.01, 0.0, 0.001, 0.1196)))
    assert "| UR4Rec V2 (final) − SASRec (stage 1) = stages 2-4 off | " in page and "229" in page

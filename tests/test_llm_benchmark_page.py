"""docs/benchmarks-llm.md is what benchmarks/llm_page.py renders from its saved figures."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import render_page

ROOT = Path(__file__).resolve().parents[1]


def _render(figures: Path, out: Path) -> str:
    return render_page("llm_page.py", figures, out)


def test_llm_page_is_rendered_from_saved_figures(tmp_path: Path) -> None:
    page = (ROOT / "docs" / "benchmarks-llm.md").read_text("utf-8")
    assert _render(ROOT / "docs" / "benchmarks-llm.json", tmp_path / "page.md") == page  # no hand-edited figure
    assert "[benchmarks-llm.md](benchmarks-llm.md)" in (ROOT / "docs" / "benchmarks.md").read_text("utf-8")


def test_a_complete_run_shows_fallbacks_and_the_paired_ci(tmp_path: Path) -> None:
    saved = json.loads((ROOT / "docs" / "benchmarks-llm.json").read_text("utf-8"))
    g = saved["generation"]
    g["requests_to_send"], g["complete"] = 0, True
    g["run"] = {"sources": {"items": {"llm": 1600, "llm-retry": 50, "template": 32, "pending": 0, "rejected": 82}}}
    saved["comparison"] = {
        "seeds": [0, 1],
        "arms": {arm: {m: [0.1, 0.2] for m in ("HR@10", "NDCG@10", "MRR")} for arm in ("template", "local")},
        "ndcg10_diff_local_minus_template": {"mean": -0.0021, "ci95": [-0.009, 0.0047], "users": 943, "seeds": 2},
    }
    src = tmp_path / "figures.json"
    src.write_text(json.dumps(saved), "utf-8")
    page = _render(src, tmp_path / "page.md")
    assert "Partial run" not in page and "Not measured yet" not in page
    assert "| items: first answer kept / second try kept / template fallback | 1,600 / 50 / 32 (rejected first answers: 82) |" in page
    assert "local − template NDCG@10: -0.0021, paired bootstrap 95% CI [-0.0090, +0.0047] (943 users" in page
    assert "| local | 0.1500 ± 0.0707 |" in page

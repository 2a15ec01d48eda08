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


def test_the_side_by_side_and_the_popularity_slices_render(tmp_path: Path) -> None:
    saved = json.loads((ROOT / "docs" / "benchmarks-llm.json").read_text("utf-8"))
    row = {"load_seconds": 0.3, "generation_seconds": 38.4, "output_tokens": 3600, "seconds_per_answer": 0.6, "output_tokens_per_s": 93.75, "whole_dataset_seconds": 1575.3}
    fast = {**row, "engine": "transformers, cpu, bfloat16, batch 128 (auto)", "load_seconds_from_gguf": 17.0, "load_seconds": 2.8,
            "seconds_per_answer": 0.1, "output_tokens_per_s": 562.5, "whole_dataset_seconds": 279.5}  # fmt: skip
    saved["speed"] = {"date": "2026-12-02", "machine": "x86_64, 2 CPU cores, 2 threads", "model": "m.gguf@sha256:0", "prompts": 64, "dataset_prompts": 2625,
                      "settings": {"temperature": 0.3, "local_max_tokens": 64},
                      "rows": {"llama.cpp, one prompt at a time": row, "batched (ur4rec llm --backend local)": fast},
                      "ratio_tokens_per_s": 6.0, "ratio_whole_dataset": 5.636}  # fmt: skip
    saved["comparison"] = {
        "seeds": [0],
        "arms": {arm: {m: [0.1] for m in ("HR@10", "NDCG@10", "MRR")} for arm in ("template", "local")},
        "ndcg10_diff_local_minus_template": {"mean": 0.001, "ci95": [-0.002, 0.004], "users": 943, "seeds": 1},
        "slices": [{"slice": "tail (1-50)", "users": 229, "template": 0.07, "local": 0.08, "diff": 0.01, "ci95": [-0.001, 0.021]}],
    }
    src = tmp_path / "figures.json"
    src.write_text(json.dumps(saved), "utf-8")
    page = _render(src, tmp_path / "page.md")
    assert "Batched / one at a time: **6.00×** the output tokens/s; **5.64×** over a whole-data-set first run, load included." in page
    assert "| llama.cpp, one prompt at a time | 0.3 s | 0.600 | 93.8 | 26.3 min for 2,625 prompts |" in page
    assert "17.0 s first run (dequantize + cache), then 2.8 s" in page
    assert "| tail (1-50) | 229 | 0.0700 | 0.0800 | +0.0100 [-0.0010, +0.0210] |" in page

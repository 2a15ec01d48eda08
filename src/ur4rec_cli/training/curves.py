"""Training curves and stage bar charts: PNG with matplotlib (extra ``plot``), else a sparkline."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    """A one-line terminal sparkline (NaN/None shown as a space)."""
    clean = [v for v in values if v is not None and not math.isnan(v)]
    if not clean:
        return ""
    lo, hi = min(clean), max(clean)
    span = hi - lo or 1.0
    out = []
    for v in values:
        if v is None or math.isnan(v):
            out.append(" ")
        else:
            out.append(_BARS[min(len(_BARS) - 1, int((v - lo) / span * (len(_BARS) - 1) + 0.5))])
    return "".join(out)


def read_history(path: Path) -> list[dict[str, Any]]:
    """Rows of a history.jsonl; a torn last line (killed writer) is ignored."""
    rows: list[dict[str, Any]] = []
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except OSError:
        return rows
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def stage_curve(hist_path: Path, png: Path, title: str) -> str:
    """A stage's curve.png (loss and val NDCG@10 per epoch, when matplotlib is installed) from its
    history.jsonl; returns the val NDCG@10 sparkline."""
    rows = read_history(hist_path)
    write_curve(rows, png, title)
    return sparkline([r.get("val_ndcg10") for r in rows])


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def write_curve(rows: Sequence[dict[str, Any]], path: Path, title: str) -> bool:
    """Loss and validation NDCG@10 per epoch as a PNG; False (nothing written) without matplotlib."""
    plt = _pyplot()
    if plt is None or not rows:
        return False
    epochs = [r.get("epoch") for r in rows]
    fig, ax1 = plt.subplots(figsize=(7, 4), dpi=110)
    ax1.plot(epochs, [r.get("loss") for r in rows], color="tab:blue", marker=".", label="train loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss", color="tab:blue")
    if not any(r.get("val_ndcg10") is not None for r in rows):  # train.learn_validation: nothing validated
        ax1.set_title(f"{title} (fixed schedule, validation items trained on)")
        _save_png(plt, fig, path)
        return True
    ax2 = ax1.twinx()
    ax2.plot(epochs, [r.get("val_ndcg10") for r in rows], color="tab:orange", marker=".", label="val NDCG@10")
    ax2.set_ylabel("validation NDCG@10", color="tab:orange")
    best = max(rows, key=lambda r: r.get("val_ndcg10") or -1)
    ax2.axvline(best.get("epoch"), color="grey", linestyle=":", linewidth=1)
    ax1.set_title(f"{title} (best epoch {best.get('epoch')}, val NDCG@10 {best.get('val_ndcg10') or 0:.4f})")
    _save_png(plt, fig, path)
    return True


def _save_png(plt, fig, path: Path) -> None:
    """Render in memory, then write atomically: a crash never leaves half a PNG."""
    import io

    from ur4rec_cli.store import atomic_write_bytes

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())


def write_bar_chart(table: dict[str, dict[str, float]], metrics: Sequence[str], path: Path, title: str) -> bool:
    """Grouped bars: one group per metric, one bar per model/stage; False without matplotlib."""
    plt = _pyplot()
    if plt is None or not table:
        return False
    names = list(table)
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(metrics) + 2), 4), dpi=110)
    for i, name in enumerate(names):
        xs = [m + i * width for m in range(len(metrics))]
        ax.bar(xs, [table[name].get(m, 0.0) for m in metrics], width=width, label=name)
    ax.set_xticks([m + width * (len(names) - 1) / 2 for m in range(len(metrics))])
    ax.set_xticklabels(list(metrics))
    ax.set_title(title)
    ax.legend(fontsize=8)
    _save_png(plt, fig, path)
    return True

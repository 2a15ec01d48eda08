"""`ur4rec evaluate`: metrics of a trained stage (or a baseline: popularity, content-KNN, the late
fusion of a trained model with content-KNN: ``late_fusion.py``) under one
protocol, overall and per slice (target-item popularity, history length: ``slices.py``); on a
cold-item variant also over its cold test cases (``cold_cases.py``), ranked among every item and on
the new-items shelf (among the cold items only) from one pass of user vectors.

Evaluation never trains and never selects anything: it reads the checkpoint validation chose and
ranks the held-out item of every evaluable user once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

import numpy as np

from ur4rec_cli.errors import ConfigError
from ur4rec_cli.evaluation.ranked import Ranked
from ur4rec_cli.ranking import per_user_ndcg
from ur4rec_cli.settings import STAGES
from ur4rec_cli.store import atomic_write_text

if TYPE_CHECKING:
    from ur4rec_cli.data.dataset import Dataset
    from ur4rec_cli.ranking import Scorer
    from ur4rec_cli.settings import Settings

POPULARITY = "popularity"
CONTENT_KNN = "content_knn"
LATE_FUSION = "late_fusion"  # the run's stage-1 SASRec (or eval.fusion_base) + eval.fusion_weight x content-KNN (late_fusion.py)
BASELINES = (POPULARITY, CONTENT_KNN, LATE_FUSION)
ORDERLESS = (POPULARITY, CONTENT_KNN)  # baselines scored in one tie order (no sequence model reads the order)


def rank_scorer(
    scorer: "Scorer",
    dataset: "Dataset",
    *,
    split: Literal["valid", "test"],
    protocol: Literal["full", "sampled"],
    max_len: int,
    negatives: int = 100,
    seed: int = 0,
    batch_size: int = 64,
    device: Any = "cpu",
) -> Ranked:
    """Rank every evaluable user's held-out item under ``protocol`` (one matrix product per batch)."""
    from ur4rec_cli.evaluation.protocols import full_candidates, sampled_ranks
    from ur4rec_cli.ranking import full_ranking_ranks

    started = time.perf_counter()
    if protocol == "full":
        from ur4rec_cli.console import make_progress

        with make_progress() as progress:  # off a terminal: a line every 30 s on a long ranking
            task = progress.add_task(f"ranking {split} users", total=len(dataset.eval_users()))
            users, targets, ranks = full_ranking_ranks(
                scorer, dataset, split, max_len=max_len, batch_size=batch_size, device=device, on_batch=lambda n: progress.advance(task, n)
            )
        seconds = time.perf_counter() - started
        candidates = full_candidates(dataset, users, split)
    elif protocol == "sampled":
        users, targets, ranks, candidates = sampled_ranks(
            scorer, dataset, split, negatives=negatives, seed=seed, max_len=max_len, batch_size=batch_size, device=device
        )
        seconds = time.perf_counter() - started
    else:
        raise ConfigError(f"unknown protocol {protocol!r} (choose full or sampled)")
    return Ranked(users, targets, ranks, candidates, seconds)


def describe_protocol(protocol: str, split: str, candidates: np.ndarray, negatives: int, seed: int, tie_orders: int = 1) -> str:
    """The one line printed beside every result, so a number never travels without its protocol."""
    held = "last item" if split == "test" else "second-to-last item"
    fed = "train + valid" if split == "test" else "train"
    if protocol == "full":
        cand = f"all items not in the fed history (~{int(np.median(candidates)):,} per user)"
    else:
        cand = f"target + {negatives} negatives drawn uniformly from never-interacted items (seed {seed})"
    orders = f"; user vector = mean over {tie_orders} orders of same-second history items" if tie_orders > 1 else ""
    return (
        f"leave-one-out, {split} = {held}, history fed = {fed}; candidates: {cand}; "
        f"rank = #candidates scoring >= the target (pessimistic ties){orders}"
    )


def evaluate(
    settings: "Settings",
    *,
    stage: str | None = None,
    split: str | None = None,
    protocol: str | None = None,
    k: list[int] | None = None,
    negatives: int | None = None,
    output: Path | None = None,
    compare: bool = False,
) -> dict[str, Any]:
    """Metrics of ``stage`` (default: the final stage; ``popularity`` for the baseline) on ``split``.

    ``output`` gets one JSON line per user (user, target, 0-based rank, candidates). ``compare``
    adds the popularity baseline and every trained stage, same protocol, same users.
    """
    from ur4rec_cli.data.prepare import load_dataset
    from ur4rec_cli.devices import resolve_device

    cfg = settings.eval
    split = split or cfg.split
    protocol = protocol or cfg.protocol
    ks = sorted(set(k or cfg.k))
    negatives = negatives if negatives is not None else cfg.negatives
    if split not in ("valid", "test"):
        raise ConfigError(f"--split must be test or valid, got {split!r}")
    if any(int(x) < 1 for x in ks):
        raise ConfigError(f"--k: every cutoff must be a positive integer, got {ks}")
    if negatives < 1:
        raise ConfigError(f"--negatives must be a positive integer, got {negatives}")
    if stage is not None and stage not in BASELINES and stage not in STAGES:
        raise ConfigError(f"--stage: unknown stage {stage!r} (choose {', '.join(STAGES)}, {POPULARITY}, {CONTENT_KNN} or {LATE_FUSION})")

    dataset, dman = load_dataset(settings)
    device = resolve_device(settings.train.device)
    texts: list[np.ndarray | None] = []  # the item-text embeddings, read once when first needed

    def item_text() -> np.ndarray | None:
        if not texts:
            texts.append(_item_text(settings, dman))
        return texts[0]

    def run(name: str | None) -> tuple[dict[str, Any], Ranked]:
        scorer, info = _load_scorer(settings, dataset, name, split, device, item_text)
        ranked = rank_scorer(
            scorer, dataset, split=split, protocol=protocol, max_len=info["max_len"],  # type: ignore[arg-type]
            negatives=negatives, seed=cfg.seed, batch_size=cfg.batch_size, device=device,
        )  # fmt: skip
        row = {"stage": info["stage"], "checkpoint": info["checkpoint"], "metrics": ranked.metrics(ks),
               "seconds": ranked.seconds}  # fmt: skip
        if dataset.cold is not None and split == "test" and protocol == "full":
            from ur4rec_cli.evaluation.cold_cases import cold_block, rank_cold_cases

            orders = 1 if info["stage"] in ORDERLESS else settings.model.tie_orders
            # Among every item, and the same cases on the new-items shelf (candidates = the cold items alone, `recommend --new`).
            cold, shelf = rank_cold_cases(info["raw"], dataset, tie_orders=orders, max_len=info["max_len"], batch_size=cfg.batch_size, device=device)
            row["cold"] = cold_block(dataset, cold, ks, orders)
            ranked.cold = cold
            row["cold"]["shelf"] = cold_block(dataset, shelf, ks, orders, shelf=True)
            ranked.shelf = shelf
        return row, ranked

    main_row, main_ranked = run(stage)
    result: dict[str, Any] = {
        "protocol": protocol,
        "split": split,
        "users": int(len(main_ranked.users)),
        "metrics": main_row["metrics"],
        "stage": main_row["stage"],
        "checkpoint": main_row["checkpoint"],
        "candidates": _candidates_summary(main_ranked.candidates),
        "description": describe_protocol(
            protocol, split, main_ranked.candidates, negatives, cfg.seed, 1 if stage in ORDERLESS else settings.model.tie_orders
        ),
        "k": ks,
        "negatives": negatives if protocol == "sampled" else None,
        "seed": cfg.seed if protocol == "sampled" else None,
        "seconds": main_row["seconds"],
    }
    if "cold" in main_row:
        result["cold"] = main_row["cold"]
    from ur4rec_cli.evaluation.slices import slice_metrics

    result["slices"] = slice_metrics(
        dataset, main_ranked.users, main_ranked.targets, main_ranked.ranks, split, ks, tuple(cfg.popularity_cuts), cfg.short_history
    )  # type: ignore[arg-type]
    if output is not None:
        write_ranks(Path(output), dataset, main_ranked)
        result["output"] = str(output)
        if main_ranked.cold is not None:  # the cold cases' ranks beside it: <name>.cold<suffix>
            cold_path = Path(output).with_name(f"{Path(output).stem}.cold{Path(output).suffix}")
            write_ranks(cold_path, dataset, main_ranked.cold, owners=dataset.cold.users)
            result["cold"]["output"] = str(cold_path)
            if main_ranked.shelf is not None:  # and the shelf's: <name>.shelf<suffix>
                shelf_path = Path(output).with_name(f"{Path(output).stem}.shelf{Path(output).suffix}")
                write_ranks(shelf_path, dataset, main_ranked.shelf, owners=dataset.cold.users)
                result["cold"]["shelf"]["output"] = str(shelf_path)
    if compare:
        result["compare"] = _compare(settings, run, main_row, main_ranked, ks, with_knn=item_text() is not None)
    return result


def _candidates_summary(candidates: np.ndarray) -> dict[str, int]:
    return {"min": int(candidates.min()), "median": int(np.median(candidates)), "max": int(candidates.max())}


def _compare(settings: "Settings", run: Any, main_row: dict[str, Any], main_ranked: Ranked, ks: list[int], *, with_knn: bool) -> list[dict[str, Any]]:
    """Popularity, content-KNN (when item-text embeddings exist) and every trained stage, in training
    order, with paired bootstraps vs popularity and (from the second trained stage on) vs the stage before."""
    from ur4rec_cli.evaluation.bootstrap import paired_bootstrap
    from ur4rec_cli.runs import trained_stages

    names = [POPULARITY, *([CONTENT_KNN] if with_knn else []), *trained_stages(settings)]
    rows: list[dict[str, Any]] = []
    ranked_by: dict[str, Ranked] = {}
    for name in names:
        row, ranked = (main_row, main_ranked) if name == main_row["stage"] else run(name)
        rows.append({"name": name, **row})
        ranked_by[name] = ranked
    cut = 10 if 10 in ks else ks[0]
    base = per_user_ndcg(ranked_by[POPULARITY].ranks, cut)
    for i, row in enumerate(rows[1:], start=1):
        # Same users in the same order (eval_users), so the per-user metrics pair up.
        mine = per_user_ndcg(ranked_by[row["name"]].ranks, cut)
        ci = paired_bootstrap(mine, base, seed=settings.eval.seed)
        row["vs_popularity"] = {"metric": f"NDCG@{cut}", **ci}
        if row["name"] in STAGES and rows[i - 1]["name"] in STAGES:  # a later stage against the one before it
            prev = rows[i - 1]["name"]
            step = paired_bootstrap(mine, per_user_ndcg(ranked_by[prev].ranks, cut), seed=settings.eval.seed)
            row["vs_previous"] = {"metric": f"NDCG@{cut}", "previous": prev, **step}
    return rows


def _load_scorer(
    settings: "Settings", dataset: "Dataset", stage: str | None, split: str, device: Any,
    item_text: Callable[[], np.ndarray | None] | None = None,
) -> tuple["Scorer", dict[str, Any]]:
    if stage == POPULARITY:
        from ur4rec_cli.evaluation.popularity import PopularityScorer

        pop = PopularityScorer(dataset, split)
        return pop, {"stage": POPULARITY, "checkpoint": None, "max_len": 1, "raw": pop}  # type: ignore[return-value]
    if stage == CONTENT_KNN:
        from ur4rec_cli.evaluation.content_knn import ContentKNNScorer

        vectors = item_text() if item_text is not None else None
        if vectors is None:
            from ur4rec_cli.errors import ArtifactMissingError

            raise ArtifactMissingError(f"{CONTENT_KNN} needs the item-text embeddings: run `ur4rec llm` first")
        scorer = ContentKNNScorer(vectors)
        return scorer, {"stage": CONTENT_KNN, "checkpoint": None, "max_len": scorer.max_len, "raw": scorer}  # type: ignore[return-value]
    from ur4rec_cli.runs import learned_validation, load_stage_model

    fusion = stage == LATE_FUSION
    base = settings.eval.fusion_base
    # Late fusion: the base model's own content-KNN block off, so the fusion adds the cosine once.
    loaded = load_stage_model(settings, (None if base == "final" else base) if fusion else stage, device=str(device), knn_weight=0.0 if fusion else None)
    if split == "valid" and learned_validation(loaded.info):
        raise ConfigError(
            f"{loaded.stage} of run {settings.train.run} was trained on the validation items (train.learn_validation): "
            "its validation figures would be leaked; evaluate --split test, or train a run without learn_validation"
        )
    from ur4rec_cli.ranking import with_tie_orders

    raw = loaded.model
    if fusion:
        from ur4rec_cli.evaluation.late_fusion import LateFusionScorer

        knn, _ = _load_scorer(settings, dataset, CONTENT_KNN, split, device, item_text)
        raw = LateFusionScorer(loaded.model, knn, settings.eval.fusion_weight)  # type: ignore[arg-type]
    scorer = with_tie_orders(raw, dataset, split, settings.model.tie_orders)
    name = LATE_FUSION if fusion else loaded.stage
    return scorer, {"stage": name, "checkpoint": str(loaded.path), "max_len": int(loaded.model.max_len), "raw": raw}


def _item_text(settings: "Settings", dman: Any) -> np.ndarray | None:
    """The data set's item-text embeddings when `ur4rec llm` wrote valid ones, else None."""
    from ur4rec_cli.features.llm.texts import load_text_embeddings

    loaded = load_text_embeddings(settings, dman)
    return None if loaded is None else loaded[0]


def write_ranks(path: Path, dataset: "Dataset", ranked: Ranked, owners: np.ndarray | None = None) -> None:
    """One JSON line per user: user (raw id), target (raw item id), 0-based rank, candidates; atomic.
    With ``owners`` (cold cases): one line per case, ``case`` (1-based) and its user."""
    from ur4rec_cli.serving.index import display_id

    user_ids = np.array([display_id(u) for u in dataset.user_ids], dtype=object)
    item_ids = np.array([display_id(i) for i in dataset.item_ids], dtype=object)
    users = ranked.users if owners is None else owners[ranked.users - 1]
    lines = [
        json.dumps({**({"case": int(k)} if owners is not None else {}), "user": u, "target": t, "rank": r, "candidates": c})
        for k, u, t, r, c in zip(
            ranked.users.tolist(),
            user_ids[users - 1].tolist(),
            item_ids[ranked.targets - 1].tolist(),
            ranked.ranks.tolist(),
            ranked.candidates.tolist(),
        )
    ]
    atomic_write_text(path, "\n".join(lines) + "\n")

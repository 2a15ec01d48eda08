#!/usr/bin/env python
"""A second real benchmark: any prepared catalogue (Amazon Industrial & Scientific by default), the
same machinery as ML-100K, the data read from a path.

    python benchmarks/scientific.py PATH [--seeds 0 1 2] [--share 0.2] [--jobs 1] [--note TEXT]
    python benchmarks/scientific.py --render          # the page section from docs/benchmarks-scientific.json

One home, every step the installed CLI in its own process (benchmarks/ml100k.py's ``cli``):
1. the default job, alone, timed from a prepared data set: `ur4rec llm --backend template` (texts and
   MiniLM embeddings) then `ur4rec train --stage all` (seed 42; peak RSS of each process), and its
   test figures;
2. per seed: `train --stage all --seed S` with stage 1 on item IDs alone at hidden 64 (``model.content_stage1 =
   false``, ``model.hidden = 64``: the defaults before issue 34's levers 42 and 46; on a data set other than
   ML-100K the epoch counts are chosen on validation: training/epoch_rule.py), evaluated as SASRec (stage 1)
   and UR4Rec V2 (final); one ablation per modality (the same stage-1 SASRec, stages 2-4 with that
   modality off); the late-fusion baseline (stage-1 SASRec + w x content-KNN cosine, w chosen on
   the validation split of the seed's selection run, never on test); the reference SASRec
   (benchmarks/reference_sasrec.py, its epoch chosen on validation every 5 epochs);
3. with ``content``: per seed the product's default job (``DEFAULTS``: off ML-100K stage 1 trains SASRec on
   content-aware item tokens, models/content_sasrec.py, at hidden 128, and the final model scores with the
   content-KNN block, ``model.knn_weight`` auto = 8), evaluated as its stage 1 and final;
4. the cold-item protocol: `data --cold-items SHARE` (cold seed 0), per seed the default job on the
   cold variant (the defaults, as 3), evaluated as the product scores (content neighbours for unknown
   items and the content-KNN block), without the KNN block (``knn_weight=0``) and with the cold
   machinery off (``cold_neighbours=0``, ``knn_weight=0``), every
   evaluation ranking the warm test, the cold cases among every item, and the same cold cases on the
   new-items shelf (candidates = the cold items only, as `recommend --new` serves them).
Popularity and content-KNN learn nothing and are evaluated once per data set. Per case, NDCG@10 is
averaged over seeds and differences get a paired bootstrap 95% CI (benchmarks/ml100k.py); slices by
the target's training interactions and by history length use the library's own cuts
(evaluation/slices.py) with the cuts ``CUTS`` and ``SHORT`` of this sparser catalogue.
Each finished job (texts, the default job, baselines, one seed's main runs, reference or cold runs)
is saved under HOME/bench-jobs/: a rerun with the same ``--home`` reads it back instead of
measuring it again, and ``--only-done [PART ...]`` summarises what finished, running no new job
but those of the parts named (the page then names the seeds whose main runs finished). The figures go to docs/benchmarks-scientific.json and its section of docs/benchmarks.md
(benchmarks/scientific_page.py, re-rendered by benchmarks/ml100k.py --render).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "benchmarks-scientific.json"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cold import ranks_of, render_page, save_figures  # noqa: E402
from ml100k import cli, read_ranks  # noqa: E402
from scale import machine  # noqa: E402

from scientific_page import CONTENT, CONTENT_S1, FINAL, FUSION, KNN, NO_KNN, OURS, PLAIN, POP, REFERENCE, SASREC, summarise  # noqa: E402

FUSION_GRID = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)  # w = 0 is the stage-1 SASRec itself
CUTS, SHORT = (5, 20), 5  # target training interactions: tail 1-5, torso 6-20, head > 20; history short <= 5
PARTS = ("default", "main", "fusion", "ablations", "reference", "cold", "content")
# The product's defaults (content in stage 1, hidden 128 and the content-KNN block off ML-100K): the content and cold rows.
DEFAULTS = {"UR4REC_MODEL__CONTENT_STAGE1": "auto", "UR4REC_MODEL__HIDDEN": "auto", "UR4REC_MODEL__KNN_WEIGHT": "auto"}
REFERENCE_MAX_LEN, REFERENCE_EPOCHS = 50, 60  # Kang & McAuley's n for their sparse Amazon sets; a cap, chosen every 5 epochs on validation


def measured(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[dict, float, float]:
    """``ur4rec ARGS --json`` in its own process: (result, wall seconds, the process's peak RSS in GB)."""
    cmd = [sys.executable, "-m", "ur4rec_cli", "--home", str(home), *args, "--json"]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0), err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"`ur4rec {' '.join(args)}` failed: {err.read().strip()[-800:]}")
        lines = out.read().strip().splitlines()
    return json.loads(lines[-1]), wall, usage.ru_maxrss * 1024 / 1e9


def cpu_line() -> str:
    """The CPU model and the matrix units the precision path depends on (docs: bf16 needs AVX512-BF16 or AMX)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "unknown CPU")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    units = [name for flag, name in (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX")) if flag in flags]
    return f"{model} ({os.cpu_count()} cores; {', '.join(units) or 'no AVX2'}{'' if 'amx_bf16' in flags else ', no AMX'})"


def run_all(args: argparse.Namespace) -> dict:
    home = args.home or Path(tempfile.mkdtemp(prefix="ur4rec-sci-"))
    work = home / "ranks"
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    data, t_data = cli(home, "data", "--source", str(args.path))
    name = data["name"]
    print(f"data: {data['users']} users, {data['items']} items, {data['interactions']} interactions ({t_data:.0f} s)", flush=True)
    ds_args = ("--dataset", name)
    lock, counter = threading.Lock(), itertools.count()
    models: dict[str, list[dict]] = {}
    walls: dict[str, list[float]] = {}
    extra: dict[str, list] = {"fusion_w": [], "reference_epoch": [], "epoch_rule": []}
    threads = "1" if args.jobs > 1 else str(os.cpu_count() or 1)
    # The main rows train stage 1 on item IDs alone at hidden 64 (model.content_stage1 = false, model.hidden = 64:
    # the defaults before issue 34's levers 42 and 46; with stage 1 on IDs the content-KNN block's auto is off);
    # the content and cold rows run the product's defaults (``DEFAULTS``).
    env = {"UR4REC_TRAIN__NUM_THREADS": threads, "UR4REC_EVAL__POPULARITY_CUTS": json.dumps(list(CUTS)), "UR4REC_EVAL__SHORT_HISTORY": str(SHORT),
           "UR4REC_MODEL__CONTENT_STAGE1": "false", "UR4REC_MODEL__HIDDEN": "64"}  # fmt: skip

    done_dir = home / "bench-jobs"  # one file per finished job: a rerun with the same --home skips it
    done_dir.mkdir(exist_ok=True)
    record = threading.local()  # the running job's own rows, saved when the job ends

    def keep(label: str, row: dict, wall: float | None = None, cost: str | None = None) -> None:
        getattr(record, "events", []).append(["keep", label, row, wall, cost])
        with lock:
            models.setdefault(label, []).append(row)
            if wall is not None:
                walls.setdefault(cost or label, []).append(round(wall, 1))

    def note(key: str, value, wall_key: str | None = None) -> None:
        """An ``extra[key]`` entry (or, with ``wall_key``, a wall time) kept with the running job."""
        getattr(record, "events", []).append(["note", key, value, wall_key])
        with lock:
            (walls if wall_key else extra).setdefault(wall_key or key, []).append(value)

    def replay(events: list) -> None:
        for kind, *rest in events:
            keep(*rest) if kind == "keep" else note(*rest)

    def job(key: str, fn, *a) -> None:
        """Run ``fn(*a)`` once per home: a finished job's rows are read back instead of measured again."""
        path = done_dir / f"{key}.json"
        if path.is_file():
            replay(json.loads(path.read_text("utf-8")))
            print(f"{key}: read back from {path}", flush=True)
            return
        part = key.rsplit("-s", 1)[0] if key[-1].isdigit() else key.split("-")[0]  # main-s0 -> main, cold-texts -> cold
        if args.only_done is not None and part not in args.only_done:
            return
        record.events = []
        fn(*a)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record.events), "utf-8")
        os.replace(tmp, path)

    def evaluate(label: str, dataset: str, *a: str, extra_env: dict | None = None) -> dict:
        out = work / f"eval-{next(counter)}.jsonl"
        ev, wall = cli(home, "evaluate", "--dataset", dataset, "--output", str(out), *a, env={**env, **(extra_env or {})})
        row = {"metrics": ev["metrics"], "ranks": read_ranks(out), "eval_s": round(ev["seconds"], 1)}
        if "cold" in ev:
            row |= {"cold": ranks_of(Path(ev["cold"]["output"])).tolist(), "shelf": ranks_of(Path(ev["cold"]["shelf"]["output"])).tolist(),
                    "cold_metrics": ev["cold"]["metrics"], "shelf_metrics": ev["cold"]["shelf"]["metrics"],
                    "cold_description": ev["cold"]["description"], "shelf_description": ev["cold"]["shelf"]["description"]}  # fmt: skip
        print(f"  {label} ({dataset}): NDCG@10 {ev['metrics']['NDCG@10']:.4f} ({wall:.0f} s)", flush=True)
        return row

    def copy_stage1(dataset: str, src: str, dst: str) -> None:
        runs = home / "runs" / dataset
        for suffix in ("", "-select"):
            shutil.rmtree(runs / (dst + suffix), ignore_errors=True)
            shutil.copytree(runs / (src + suffix) / "pretrain_sasrec", runs / (dst + suffix) / "pretrain_sasrec")

    def main_seed(seed: int) -> None:
        run = f"s{seed}"
        res, wall = cli(home, "train", "--stage", "all", "--device", "cpu", "--seed", str(seed), "--run", run, *ds_args, env=env)
        note("default job", round(wall, 1), "default job")
        note("epoch_rule", {"seed": seed, **(res.get("epoch_rule") or {"rule": "fixed"})})
        print(f"seed {seed}: train {wall:.0f} s", flush=True)
        note("train", {"seed": seed, "stages": res["stages"], "loss": res.get("loss")})
        keep(SASREC, evaluate(SASREC, name, "--run", run, "--stage", "pretrain_sasrec"))
        keep(FINAL, evaluate(FINAL, name, "--run", run))
        if "fusion" in args.parts:
            fusion(seed, run)
        if "ablations" in args.parts:
            ablations(seed, run, res.get("modalities") or [])

    def fusion(seed: int, run: str) -> None:
        # Late fusion: w chosen on validation with the selection run's stage 1 (validation items held out).
        val = {w: cli(home, "evaluate", "--run", run + "-select", "--stage", "late_fusion", "--split", "valid", *ds_args,
                      env={**env, "UR4REC_EVAL__FUSION_WEIGHT": str(w)})[0]["metrics"]["NDCG@10"] for w in FUSION_GRID}  # fmt: skip
        best_w = max(FUSION_GRID, key=lambda w: (val[w], -w))
        note("fusion_w", {"seed": seed, "w": best_w, "validation": val})
        keep(FUSION, evaluate(FUSION, name, "--run", run, "--stage", "late_fusion", extra_env={"UR4REC_EVAL__FUSION_WEIGHT": str(best_w)}))

    def ablations(seed: int, run: str, modalities: list[str]) -> None:
        for off in [m for m in modalities if len(modalities) > 1]:
            arun = f"{run}-no-{off}"
            copy_stage1(name, run, arun)
            keep_mods = ",".join(m for m in modalities if m != off)
            _, awall = cli(home, "train", "--stage", "all", "--resume", "--device", "cpu", "--seed", str(seed), "--run", arun, "--modalities", keep_mods, *ds_args, env=env)
            keep(f"without {off}", evaluate(f"without {off}", name, "--run", arun), awall, f"without {off} (stages 2-4)")

    def content_seed(seed: int) -> None:
        """The default job with ``model.content_stage1`` (stage 1 on content-aware item tokens), same seed."""
        run, cenv = f"cs{seed}", {**env, **DEFAULTS}
        if not (home / "runs" / name / run / "final.json").is_file():  # a run trained in this home before is evaluated, not retrained
            _, wall = cli(home, "train", "--stage", "all", "--device", "cpu", "--seed", str(seed), "--run", run, *ds_args, env=cenv)
            note("content_stage1: default job", round(wall, 1), "content_stage1: default job")
        keep(CONTENT_S1, evaluate(CONTENT_S1, name, "--run", run, "--stage", "pretrain_sasrec", extra_env=cenv))
        keep(CONTENT, evaluate(CONTENT, name, "--run", run, extra_env=cenv))

    def reference_seed(seed: int) -> None:
        out = work / f"reference-{seed}.json"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reference_sasrec.py"), "--home", str(home), "--dataset", name, "--seed", str(seed),
                        "--max-len", str(REFERENCE_MAX_LEN), "--epochs", str(REFERENCE_EPOCHS), "--threads", threads, "--json", str(out)],
                       check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
        ref = json.loads(out.read_text("utf-8"))
        keep(REFERENCE, {"metrics": ref["test"], "ranks": ref["ranks"]}, time.perf_counter() - t0)
        note("reference_epoch", {"seed": seed, "epoch": ref["epoch"]})
        print(f"seed {seed}: reference SASRec (epoch {ref['epoch']}) NDCG@10 {ref['test']['NDCG@10']:.4f}", flush=True)

    def cold_seed(seed: int, cold_name: str) -> None:
        # The product's default job on the cold variant: content in stage 1 (model.content_stage1 auto is
        # on off ML-100K), so an unknown item's stage-1 token is its content offset, not a blank ID.
        run, cenv = f"c{seed}", DEFAULTS
        # --resume: a run already trained in this home (stopped, or trained by the same command outside
        # the benchmark) keeps its finished stages; its wall is counted only when a stage trained here.
        res, wall = cli(home, "train", "--stage", "all", "--device", "cpu", "--seed", str(seed), "--run", run, "--dataset", cold_name, "--resume",
                        env={**env, **cenv})  # fmt: skip
        if not all(st.get("skipped") for st in res.get("stages", [])):
            note("cold: default job", round(wall, 1), "cold: default job")
        note("cold_stage1", {"seed": seed, "content_stage1": True, "hidden": _model_args(home, cold_name, run).get("hidden")})
        keep(f"cold/{SASREC}", evaluate(SASREC, cold_name, "--run", run, "--stage", "pretrain_sasrec", extra_env=cenv))
        keep(f"cold/{OURS}", evaluate(OURS, cold_name, "--run", run, extra_env=cenv))
        keep(f"cold/{NO_KNN}", evaluate(NO_KNN, cold_name, "--run", run, extra_env={**cenv, "UR4REC_MODEL__KNN_WEIGHT": "0"}))
        keep(f"cold/{PLAIN}", evaluate(PLAIN, cold_name, "--run", run, extra_env={**cenv, "UR4REC_MODEL__COLD_NEIGHBOURS": "0", "UR4REC_MODEL__KNN_WEIGHT": "0"}))

    def texts_job() -> None:  # the first `ur4rec llm` in this home: texts and embeddings from nothing, timed alone
        llm, t_llm, rss_llm = measured(home, "llm", "--backend", "template", *ds_args)
        note("llm", {"wall_s": round(t_llm, 1), "rss_gb": round(rss_llm, 2), "status": (llm.get("embeddings") or {}).get("status")})
        print(f"texts + embeddings: {t_llm:.0f} s, peak RSS {rss_llm:.2f} GB", flush=True)

    def default_job() -> None:  # the default job (seed 42), alone: train --stage all, timed, then its test figures
        train, t_train, rss_train = measured(home, "train", "--stage", "all", "--device", "cpu", "--run", "default", *ds_args)
        ev, _ = cli(home, "evaluate", "--run", "default", *ds_args)
        llm = extra["llm"][0]
        note("default", {"llm_s": llm["wall_s"], "train_s": round(t_train, 1), "llm_rss_gb": llm["rss_gb"], "train_rss_gb": round(rss_train, 2),
                         "llm_status": llm["status"], "stages": train["stages"], "epoch_rule": train.get("epoch_rule"),
                         "content_stage1": os.environ.get("UR4REC_MODEL__CONTENT_STAGE1", "auto"),
                         "loss": train.get("loss"), "test": ev["metrics"]})  # fmt: skip
        print(f"default job: train {t_train:.0f} s ({rss_train:.2f} GB), test NDCG@10 {ev['metrics']['NDCG@10']:.4f}", flush=True)

    def baselines(dataset: str, prefix: str = "") -> None:
        keep(prefix + POP, evaluate(POP, dataset, "--stage", "popularity"))
        keep(prefix + KNN, evaluate(KNN, dataset, "--stage", "content_knn"))

    def cold_texts(cold_name: str) -> None:
        _, t_cold_llm = cli(home, "llm", "--backend", "template", "--dataset", cold_name)
        note("t_cold_llm", round(t_cold_llm, 1))

    job("texts", texts_job)
    if "default" in args.parts:
        job("default", default_job)
    job("baselines", baselines, name)
    cold_data, jobs = None, []
    if "cold" in args.parts:
        cold_data, _ = cli(home, "data", "--source", str(args.path), "--cold-items", str(args.share))
        cold_name = cold_data["name"]
        job("cold-texts", cold_texts, cold_name)
        job("cold-baselines", baselines, cold_name, "cold/")
    for s in args.seeds:  # seed by seed, so that an interrupted run leaves whole seeds behind
        jobs += [(f"main-s{s}", main_seed, (s,))] if "main" in args.parts else []
        jobs += [(f"reference-s{s}", reference_seed, (s,))] if "reference" in args.parts else []
        jobs += [(f"cold-s{s}", cold_seed, (s, cold_name))] if "cold" in args.parts else []
        jobs += [(f"content-s{s}", content_seed, (s,))] if "content" in args.parts else []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for future in [pool.submit(job, key, fn, *a) for key, fn, a in jobs]:
            future.result()
    ds = _dataset(home, name)
    return {"data": data, "cold_data": cold_data, "default": (extra.get("default") or [None])[0], "models": models, "walls": walls, "extra": extra,
            "slices": _slice_cases(ds, models), "t_data": round(t_data, 1), "t_cold_llm": (extra.get("t_cold_llm") or [None])[0],
            "llm": (extra.get("llm") or [None])[0], "seeds": [s for s in args.seeds if (done_dir / f"main-s{s}.json").is_file()], "total_s": None if args.only_done is not None else round(time.perf_counter() - t_start)}  # fmt: skip


def _model_args(home: Path, dataset: str, run: str) -> dict:
    """The ModelArgs a run's final model was built with (what the defaults resolved to)."""
    from ur4rec_cli.runs import read_checkpoint

    root = home / "runs" / dataset / run
    stage = json.loads((root / "final.json").read_text("utf-8"))["stage"]
    return read_checkpoint(root / stage / "best.pt").get("model_args", {})


def _dataset(home: Path, name: str):
    from ur4rec_cli.data.dataset import Dataset

    return Dataset.load(home / "datasets" / name)


def _slice_cases(ds, models: dict) -> dict:
    """Per test user (raw id, in the ranks files' order): which slice of each cut the case falls in."""
    from ur4rec_cli.evaluation.slices import history_slices, popularity_slices

    if SASREC not in models:  # no main rows (e.g. --parts cold): nothing to slice
        return {"users": [], "target_popularity": [], "history_length": []}
    users = list(models[SASREC][0]["ranks"])
    internal = np.array([ds.find_user(u) for u in users], dtype=np.int64)
    counts = ds.item_popularity("train")[ds.targets(internal, "test")]
    lengths = ds.offsets[internal] - ds.offsets[internal - 1] - 1
    out = {"users": users}
    for cut, slices in (("target_popularity", popularity_slices(counts, CUTS)), ("history_length", history_slices(lengths, SHORT))):
        out[cut] = [(label, np.nonzero(mask)[0].tolist()) for label, mask in slices]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", type=Path, default=Path("../shared/data/amazon-scientific"), help="the catalogue (RecBole atomic files or any `ur4rec data --source` path)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--share", type=float, default=0.2, help="share of interacted items made cold (data --cold-items)")
    ap.add_argument("--jobs", type=int, default=1, help="jobs side by side, one torch thread each (default 1: one at a time, all threads)")
    ap.add_argument("--note", default="", help="what else ran on the machine meanwhile (printed on the page)")
    ap.add_argument("--home", type=Path, default=None, help="artifact home to work in (default: a fresh temporary one); texts already embedded there are reused")
    ap.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS, help="what to measure (default: everything)")
    ap.add_argument("--only-done", nargs="*", default=None, metavar="PART",
                    help="with --home: summarise the jobs that finished there and run no new job (but those of the PARTs named)")
    ap.add_argument("--render", action="store_true", help="only re-render docs/benchmarks.md from docs/benchmarks-scientific.json")
    args = ap.parse_args()
    if not args.render:
        raw = run_all(args)
        args.seeds = raw["seeds"] or args.seeds  # --only-done: the seeds whose runs finished
        save_figures(FIGURES, summarise(raw, args, machine("cpu"), cpu_line()))
    render_page()


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Cost at scale: synthetic data sets of 100k, 1M and 10M interactions through the real CLI.

    python benchmarks/scale.py [--sizes 100k 1m 10m] [--device cpu] [--home DIR]
    python benchmarks/scale.py --render          # redraw docs/scale.svg and the page from saved figures
    python benchmarks/scale.py --from-ab AB.json  # the ML-100K before/after rows from a 3-seed code A/B (benchmarks/ab.py)
    python benchmarks/scale.py --startup HOME RUN  # `recommend --history` / `--user` start-up again, on a trained ML-100K run

Per size (catalogues 2k, 20k, 200k items; users = interactions / 100; benchmarks/synthetic.py,
seed 0) each step is one `ur4rec` process, timed from outside, its peak RSS read from the kernel
(``os.wait4``), the CPU ones under an address-space cap (``--mem-cap-gb``):

1. ``ur4rec data --source`` (parse, check, split);
2. ``ur4rec llm --backend template`` (template texts + MiniLM embeddings of every item and user),
   on the sizes named by ``--embed``; for the others the table extrapolates the texts/s of the
   largest embedded size, and says so;
3. ``ur4rec train --stage pretrain_sasrec --epochs 1`` (stage 1, where the epochs go; MoE
   modalities off, which stage 1 does not read); with ``--max-steps N`` for a size, the epoch is
   cut after N steps and seconds per epoch are extrapolated by steps (marked in the table);
   the export of the serving index runs at the end of the same command and is timed by it;
4. ``ur4rec evaluate`` (test split, full ranking) with the default 8 tie orders and with 1.

Figures go to docs/benchmarks-scale.json (one entry per device kind, so a CUDA run from
benchmarks/gpu.py adds its rows beside the CPU ones), the picture to docs/scale.svg, and
docs/benchmarks.md is re-rendered (benchmarks/ml100k.py --render) with the scale section.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import generate  # noqa: E402

# name: (interactions, items). 1m@2k holds the catalogue of 100k (time per epoch against interactions
# alone) and the interactions of 1m (memory against catalogue size alone).
SIZES = {"100k": (100_000, 2_000), "1m@2k": (1_000_000, 2_000), "1m": (1_000_000, 20_000), "10m": (10_000_000, 200_000)}
FIGURES = ROOT / "docs" / "benchmarks-scale.json"
PICTURE = ROOT / "docs" / "scale.svg"


def run_step(home: Path, args: list[str], env: dict[str, str], cap_gb: float | None) -> dict:
    """One ur4rec process: its --json result, wall seconds and peak RSS (MiB) from wait4."""
    cmd = [sys.executable, "-m", "ur4rec_cli", "--home", str(home), *args, "--json"]

    def limit() -> None:
        if cap_gb:
            cap = int(cap_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, "HF_HUB_OFFLINE": "1", **env}, preexec_fn=limit)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    row = {"wall_s": round(wall, 2), "rss_mib": round(usage.ru_maxrss / 1024, 1), "rc": proc.returncode}
    if proc.returncode != 0:
        row["error"] = stderr.strip().splitlines()[-1][:300] if stderr.strip() else f"exit {proc.returncode}"
        print(f"  {' '.join(args[:2])}: exit {proc.returncode}: {row['error']}", flush=True)
        return row
    lines = stdout.strip().splitlines()
    row["result"] = json.loads(lines[-1]) if lines else {}
    return row


def _kept(step: dict) -> dict:
    """What the figures keep of one step: its wall, peak RSS, exit code and error line."""
    return {k: step[k] for k in ("wall_s", "rss_mib", "rc", "error") if k in step}


def measure_size(size: str, device: str, home: Path, work: Path, embed: bool, max_steps: int | None, cap_gb: float | None, batch: int | None, embedding_model: str | None = None, save=lambda row: None) -> dict:
    n_inter, n_items = SIZES[size]
    folder = work / f"syn-{size.replace('@', '-')}"
    t0 = time.perf_counter()
    meta = generate(folder, n_inter, n_items, seed=0)
    row = {"size": size, "interactions": meta["interactions"], "items": n_items, "users": meta["users"], "generate_s": round(time.perf_counter() - t0, 1)}
    name = folder.name
    env = {"UR4REC_TRAIN__BATCH_SIZE": str(batch)} if batch else {}
    print(f"{size}: {row['interactions']:,} interactions, {n_items:,} items, {row['users']:,} users", flush=True)
    save(row)
    data = run_step(home, ["data", "--source", str(folder), "--name", name], env, cap_gb)
    row["data"] = _kept(data)
    save(row)
    if data["rc"] != 0:
        return row
    if embed:
        model = ["--embedding-model", embedding_model] if embedding_model else []
        emb = run_step(home, ["llm", "--backend", "template", "--dataset", name, *model], {**env, "UR4REC_LLM__DEVICE": device}, cap_gb)
        row["embed"] = _kept(emb)
        row["embed"]["texts"] = n_items + row["users"]
        save(row)
    train_args = ["train", "--stage", "pretrain_sasrec", "--epochs", "1", "--modalities", "", "--device", device, "--dataset", name]
    if max_steps:
        train_args += ["--max-steps", str(max_steps)]
    tr = run_step(home, train_args, env, cap_gb)
    row["train"] = _kept(tr)
    if tr["rc"] == 0:
        stage = tr["result"]["stages"][0]
        steps, run_steps = stage["steps_per_epoch"], stage["steps_run_per_epoch"]
        row["train"].update(
            epoch_s=round(stage["wall_s"] * steps / run_steps, 1),
            steps_per_epoch=steps,
            steps_run=run_steps,
            extrapolated=run_steps < steps,
            export_s=tr["result"].get("export_s"),
            loss=tr["result"].get("loss"),
            peak_gpu_mib=stage.get("peak_gpu_mb"),
        )
        save(row)
        for orders in (8, 1):
            ev = run_step(home, ["evaluate", "--dataset", name, "--device", device], {**env, "UR4REC_MODEL__TIE_ORDERS": str(orders)}, cap_gb)
            key = f"evaluate_{orders}"
            row[key] = _kept(ev)
            if ev["rc"] == 0:
                row[key]["seconds"] = round(float(ev["result"].get("seconds", float("nan"))), 2)
                row[key]["ndcg10"] = ev["result"].get("metrics", {}).get("NDCG@10")
            save(row)
    print(f"  {json.dumps(row)}", flush=True)
    return row


def run_scale(sizes: list[str], device: str, figures: Path, *, home: Path | None = None, note: str = "", batch: int | None = None,
              embedding_model: str | None = None, embed: list[str] = (), max_steps: dict[str, int] | None = None, cap_gb: float | None = None) -> None:
    """Measure each size and save the figures under the device kind after every size (a cut-off run keeps what it measured)."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    work = Path(tempfile.mkdtemp(prefix="ur4rec-scale-"))
    home = home or work / "home"
    started = time.perf_counter()
    rows: list[dict] = []

    def save(row: dict | None = None) -> None:
        saved = json.loads(figures.read_text("utf-8")) if figures.is_file() else {}
        saved[kind] = {
            "date": dt.date.today().isoformat(),
            "machine": machine(device),
            "command": command_line(),
            "batch_size": batch or 128,
            "note": note,
            "total_s": round(time.perf_counter() - started, 1),
            "rows": rows + ([row] if row is not None and row not in rows else []),
        }
        tmp = figures.with_name(f".{figures.name}.tmp")
        tmp.write_text(json.dumps(saved, indent=1) + "\n", "utf-8")
        os.replace(tmp, figures)

    try:
        for size in sizes:
            rows.append(measure_size(size, device, home, work, size in embed, (max_steps or {}).get(size), cap_gb, batch, embedding_model, save))
            save()
            print(f"wrote {figures}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure_startup(home: Path, run: str) -> dict[str, float]:
    """A new user's list from a cold process (the encoder, so torch is imported) and a known user's
    (numpy only), against torch's import alone; median walls of 5 runs each."""
    from ml100k import median_wall

    cli = [sys.executable, "-m", "ur4rec_cli", "--home", str(home)]
    return {
        "recommend_history_s": median_wall([*cli, "recommend", "--run", run, "--history", "50,172,181,1,100"]),
        "recommend_user_s": median_wall([*cli, "recommend", "--run", run, "--user", "42"]),
        "import_torch_s": median_wall([sys.executable, "-c", "import torch"]),
    }


def startup_from(figures: Path, home: Path, run: str) -> None:
    """Only the start-up figures, measured again on a trained ML-100K run (``--startup HOME RUN``)."""
    saved = json.loads(figures.read_text("utf-8"))
    saved.setdefault("ml100k", {}).update(startup=measure_startup(home, run), startup_date=dt.date.today().isoformat())
    figures.write_text(json.dumps(saved, indent=1) + "\n", "utf-8")


def measure_ml100k(figures: Path, note: str = "", before_src: Path | None = None) -> None:
    """ML-100K's default job alone (`train --stage all --device cpu`, seed 42), the code before this
    round (``before_src``: its ``src`` folder) and now, one after the other in one run."""
    work = Path(tempfile.mkdtemp(prefix="ur4rec-ml100k-"))
    home = work / "home"
    try:
        for name, args in (("data", ["data"]), ("llm", ["llm", "--backend", "template"])):
            if (r := run_step(home, args, {}, None))["rc"] != 0:
                raise SystemExit(f"ML-100K {name} failed: {r.get('error')}")
        arms = {}
        for arm, env in (("before", {"PYTHONPATH": str(before_src)} if before_src else None), ("after", {})):
            if env is None:
                continue
            run = ["--run", arm]
            train = run_step(home, ["train", "--stage", "all", "--device", "cpu", *run], env, None)
            ev = run_step(home, ["evaluate", *run], env, None)
            if train["rc"] != 0 or ev["rc"] != 0:
                raise SystemExit(f"ML-100K {arm} failed: {train.get('error') or ev.get('error')}")
            t, e = train["result"], ev["result"]
            arms[arm] = {"wall": train["wall_s"], "stages": t["stages"], "export_s": t.get("export_s"), "ndcg10": e["metrics"]["NDCG@10"], "evaluate_s": e.get("seconds")}
            print(f"ML-100K {arm}: train --stage all {train['wall_s']:.1f} s, test NDCG@10 {e['metrics']['NDCG@10']:.4f}", flush=True)
        # A new user's list from a cold process (the encoder, so torch is imported) against torch's import alone.
        startup = measure_startup(home, "after")
        if "before" not in arms:  # no old code given: the run recorded in docs/benchmarks.json, another day
            old = json.loads((ROOT / "docs" / "benchmarks.json").read_text("utf-8"))
            arms["before"] = {"date": old["date"], "wall": old["default_run"]["wall"], "stages": old["default_run"]["stages"], "ndcg10": old["default_run"]["test"]["NDCG@10"]}
        saved = json.loads(figures.read_text("utf-8")) if figures.is_file() else {}
        saved["ml100k"] = {
            "date": dt.date.today().isoformat(),
            "machine": machine("cpu"),
            "command": command_line(),
            "note": note,
            **arms,
            "startup": startup,
        }
        figures.write_text(json.dumps(saved, indent=1) + "\n", "utf-8")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ml100k_from_ab(figures: Path, ab_file: Path, note: str = "") -> None:
    """The ML-100K before/after figures from a code A/B (benchmarks/ab.py --a-src OLD --b-src NEW):
    the default job per seed under each code, alone, one after the other, with the paired CI of the
    test NDCG@10. The `recommend` start-up figures of an earlier ``--ml100k`` run are kept, with their date."""
    ab = json.loads(ab_file.read_text("utf-8"))
    saved = json.loads(figures.read_text("utf-8")) if figures.is_file() else {}
    old = saved.get("ml100k") or {}

    def arm(key: str) -> dict:
        stages = ab["stage_wall_s"][key]
        return {
            "wall": float(np.mean(ab["wall_s"][key])), "walls": ab["wall_s"][key], "ndcg10": float(np.mean(ab["ndcg10"][key])),
            "stages": [{"stage": st, "wall_s": float(np.mean([s[st] for s in stages]))} for st in stages[0]],
            **({"peak_rss_mb": max(ab["peak_rss_mb"][key])} if ab.get("peak_rss_mb") else {}),
        }  # fmt: skip

    startup = old.get("startup")
    saved["ml100k"] = {
        "date": ab.get("date") or dt.date.fromtimestamp(ab_file.stat().st_mtime).isoformat(),
        "machine": ab.get("machine") or machine("cpu"),
        "command": ab.get("command") or f"python benchmarks/ab.py --a-src {ab['a_src']} --b-src {ab['b_src']} --seeds {' '.join(map(str, ab['seeds']))}",
        "note": note,
        "seeds": ab["seeds"],
        "before": arm("A"),
        "after": arm("B"),
        "quality": ab["b_minus_a"],
        **({"startup": startup, "startup_date": old.get("startup_date") or old.get("date")} if startup else {}),
    }
    figures.write_text(json.dumps(saved, indent=1) + "\n", "utf-8")


def command_line() -> str:
    """This script's command as run, without --note's text (the page prints the note on its own)."""
    args, out = sys.argv[1:], []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a == "--note":
            skip = True
        elif not a.startswith("--note="):
            out.append(a)
    return "python benchmarks/" + " ".join([Path(sys.argv[0]).name, *out])


def machine(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{torch.cuda.get_device_name(0)}, {os.cpu_count()} CPU cores, torch {torch.__version__}"
    return f"{platform.machine()} CPU ({os.cpu_count()} cores), Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--home", type=Path, default=None, help="ur4rec home for the synthetic data sets (default: a temporary folder)")
    ap.add_argument("--embed", nargs="*", default=None, help="sizes whose texts are embedded (default: 100k and 1m on CPU, all on CUDA)")
    ap.add_argument("--max-steps", nargs="*", default=["10m=20"], metavar="SIZE=N", help="cut these sizes' epoch after N steps and extrapolate")
    ap.add_argument("--batch-size", type=int, default=None, help="train.batch_size (default: the setting's 128)")
    ap.add_argument("--mem-cap-gb", type=float, default=20.0, help="address-space cap per CPU step (ignored on CUDA)")
    ap.add_argument("--embedding-model", default=None, help="sentence-transformers model name or path for `ur4rec llm` (default: the setting's)")
    ap.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    ap.add_argument("--figures", type=Path, default=FIGURES)
    ap.add_argument("--render", action="store_true", help="only redraw the picture and the page from --figures")
    ap.add_argument("--ml100k", action="store_true", help="only ML-100K's default `train --stage all` alone, before and after")
    ap.add_argument("--before-src", type=Path, default=None, help="--ml100k: the src folder of the code to compare with (e.g. `git archive REF src`)")
    ap.add_argument("--from-ab", type=Path, default=None, help="the ML-100K before/after rows from a code A/B's figures (benchmarks/ab.py --a-src --b-src --out FILE)")
    ap.add_argument("--startup", nargs=2, default=None, metavar=("HOME", "RUN"), help="only the start-up figures again, on a trained ML-100K run")
    args = ap.parse_args()
    if args.startup:
        startup_from(args.figures, Path(args.startup[0]), args.startup[1])
    elif args.from_ab:
        ml100k_from_ab(args.figures, args.from_ab, args.note)
    elif args.ml100k:
        measure_ml100k(args.figures, args.note, args.before_src)
    elif not args.render:
        cuda = args.device.startswith("cuda")
        run_scale(
            args.sizes, args.device, args.figures, home=args.home, note=args.note, batch=args.batch_size, embedding_model=args.embedding_model,
            embed=args.embed if args.embed is not None else (list(SIZES) if cuda else ["100k", "1m"]),
            max_steps={k: int(v) for k, v in (kv.split("=") for kv in args.max_steps)},
            cap_gb=None if cuda else args.mem_cap_gb,
        )
    from scale_page import write_picture

    write_picture(json.loads(args.figures.read_text("utf-8")), PICTURE)
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ml100k.py"), "--render", str(ROOT / "docs" / "benchmarks.json")], check=True)
    print(f"wrote {PICTURE} and docs/benchmarks.md")


if __name__ == "__main__":
    main()

"""Sweep throughput on one GPU: N shard processes against runs interleaved in one process.

`scripts/device_run.sh` shares a GPU between JOBS sweep processes (`gradattn sweep --shard k/JOBS`). Their
kernels never overlap (the GPU time-slices between processes), while kernels that one process issues on
several CUDA streams can (`gradattn sweep --interleave K`, gradattn.interleave). This script trains the
same set of runs under several layouts, one after the other, and times each from the first process's start
to the last one's end (start-up, data loading, training, test and gradient-flow analysis included):

    python benchmarks/interleave_speed.py --device cuda                         # layouts 6x1,1x6,2x3
    python benchmarks/interleave_speed.py --layouts 6x1,1x6 --epochs 3 --models resnet18,gradattn_lpe
    python benchmarks/interleave_speed.py --device cpu --sample --epochs 1 --max-train-samples 64 --layouts 2x1,1x2
    python benchmarks/interleave_speed.py --best outputs/bench/interleave_speed.csv   # prints "P K" of the fastest

A layout PxK starts P processes, each `--shard k/P --interleave K`; every layout runs the same P*K runs
(models x seeds 0, 1, ... up to P*K; fresh output folders, so nothing is skipped). Each line gives the wall
time, the runs finished, the training images per second over all runs (images x epochs run / wall) and
the ratio against the first layout. Written to outputs/bench/interleave_speed.csv (atomically) with the
date, device, torch version and the sweep options. On a CPU the layouts only compete for the same cores:
there it checks the script, not the idea.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # run from a checkout without installing

from gradattn.fileio import atomic_write_csv   # noqa: E402

COLUMNS = ("date", "device", "torch", "layout", "processes", "interleave", "runs", "finished", "wall_s",
           "train_images", "images_per_s", "ratio_vs_first", "dataset", "protocol", "models", "seeds",
           "sweep_options")


def parse_layout(text: str) -> tuple[int, int]:
    processes, sep, width = text.lower().partition("x")
    try:
        p, k = int(processes), int(width)
    except ValueError:
        p = k = 0
    if not sep or p < 1 or k < 1:
        raise argparse.ArgumentTypeError(f"a layout is PxK with P processes of K interleaved runs, e.g. 6x1; got {text!r}")
    return p, k


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layouts", default="6x1,1x6,2x3",
                        help="comma list of PxK (default 6x1,1x6,2x3; the first is the baseline)")
    parser.add_argument("--dataset", default="fashionmnist")
    parser.add_argument("--protocol", default="corrected")
    parser.add_argument("--models", default="resnet18,gradattn_lpe,gradattn_rope",
                        help="comma list; runs are models x seeds 0, 1, ... until P*K")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (early stopping cannot end "
                                                               "a run this short: patience 7)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sample", action="store_true", help="the embedded Fashion-MNIST sample (smoke test)")
    parser.add_argument("--max-train-samples", type=int)
    parser.add_argument("--gradflow-batches", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "outputs" / "bench"), help="folder of the CSV")
    parser.add_argument("--best", metavar="CSV", help="only print 'P K' of the fastest layout in CSV whose runs "
                                                      "all finished (exit 1 if none did); scripts/device_run.sh "
                                                      "reads it for INTERLEAVE=auto")
    parser.add_argument("--keep", help="keep the runs' output folders under this folder (default: a temp folder, removed)")
    args = parser.parse_args(argv)
    try:
        args.layouts = [parse_layout(item) for item in args.layouts.split(",") if item.strip()]
    except argparse.ArgumentTypeError as err:
        parser.error(str(err))
    sizes = {p * k for p, k in args.layouts}
    if len(sizes) != 1:
        parser.error(f"every layout must run the same number of runs (P*K); got {sorted(sizes)}")
    args.models = [m for m in args.models.split(",") if m]
    if not args.models:
        parser.error("--models is empty")
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    return args


def seeds_for(models: list[str], runs: int) -> list[int]:
    """Seeds 0, 1, ... enough for models x seeds to cover `runs` runs."""
    return list(range(-(-runs // len(models))))


def sweep_options(args, models, seeds) -> list[str]:
    """The `gradattn sweep` options every layout shares (not --out, --shard, --interleave)."""
    options = ["--datasets", args.dataset, "--protocols", args.protocol, "--models", ",".join(models),
               "--seeds", ",".join(map(str, seeds)), "--epochs", str(args.epochs),
               "--gradflow-batches", str(args.gradflow_batches), "--device", args.device, "--no-progress"]
    if args.sample:
        options.append("--sample")
    if args.max_train_samples:
        options += ["--max-train-samples", str(args.max_train_samples)]
    return options


def sweep_command(args, models, seeds, out: Path, shard: tuple[int, int], width: int) -> list[str]:
    return [sys.executable, "-m", "gradattn", "sweep", *sweep_options(args, models, seeds), "--out", str(out),
            "--shard", f"{shard[0]}/{shard[1]}", "--interleave", str(width)]


def run_layout(args, layout, models, seeds, folder: Path) -> dict:
    """Train models x seeds under `layout` in `folder`; time it and count the work."""
    runs = len(models) * len(seeds)
    processes, width = layout
    out = folder / f"{processes}x{width}"
    commands = [sweep_command(args, models, seeds, out, (k, processes), width) for k in range(processes)]
    logs = [out / f"shard{k}.log" for k in range(processes)]
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    children = []
    for command, log in zip(commands, logs):
        handle = open(log, "w")
        children.append((subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT), handle))
    codes = []
    for child, handle in children:
        codes.append(child.wait())
        handle.close()
    wall = time.perf_counter() - started
    rows = [json.loads(path.read_text()) for path in sorted(out.glob("runs/**/metrics.json"))]
    images = sum(row["num_train"] * row["epochs_run"] for row in rows)
    failed = [str(log) for code, log in zip(codes, logs) if code != 0]
    return {"layout": f"{processes}x{width}", "processes": processes, "interleave": width, "runs": runs,
            "finished": len(rows), "wall_s": round(wall, 2), "train_images": images,
            "images_per_s": float(f"{images / wall:.4g}") if wall > 0 else None, "failed_logs": failed,
            "device": rows[0]["device"] if rows else None}


def best_layout(path: Path) -> tuple[int, int] | None:
    """(P, K) of the layout with the most training images per second among those whose runs all finished."""
    with open(path) as handle:
        rows = [row for row in csv.DictReader(handle)
                if row["finished"] == row["runs"] and row["images_per_s"] not in ("", None)]
    if not rows:
        return None
    fastest = max(rows, key=lambda row: float(row["images_per_s"]))
    return int(fastest["processes"]), int(fastest["interleave"])


def write_csv(path: Path, rows: list[dict]) -> None:
    atomic_write_csv(path, rows, COLUMNS, ignore_extra=True)


def main(argv=None) -> int:
    import torch

    args = parse_args(argv)
    if args.best:
        layout = best_layout(Path(args.best)) if Path(args.best).exists() else None
        if layout is None:
            print(f"no layout in {args.best} finished all its runs", file=sys.stderr)
            return 1
        print(*layout)
        return 0
    runs = args.layouts[0][0] * args.layouts[0][1]
    models = args.models
    seeds = seeds_for(models, runs)
    if len(models) * len(seeds) != runs:
        print(f"note: each layout runs models x seeds = {len(models) * len(seeds)} runs, not P*K = {runs}",
              file=sys.stderr)
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    results = []
    with tempfile.TemporaryDirectory(prefix="interleave-bench-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        for layout in args.layouts:
            result = run_layout(args, layout, models, seeds, folder)
            base = results[0]["images_per_s"] if results else result["images_per_s"]
            result["ratio_vs_first"] = round(result["images_per_s"] / base, 3) if base and result["images_per_s"] else None
            result.update(date=date, torch=torch.__version__, dataset=args.dataset, protocol=args.protocol,
                          models=",".join(models), seeds=",".join(map(str, seeds)),
                          sweep_options=" ".join(sweep_options(args, models, seeds)))
            results.append(result)
            print(f"{result['layout']:>5}: {result['finished']}/{result['runs']} runs in {result['wall_s']:.1f} s, "
                  f"{result['images_per_s']} train images/s, x{result['ratio_vs_first']} vs {results[0]['layout']}"
                  + (f"  FAILED: {', '.join(result['failed_logs'])}" if result["failed_logs"] else ""), flush=True)
    write_csv(Path(args.out) / "interleave_speed.csv", results)
    print(f"device {results[0]['device']}; written {Path(args.out) / 'interleave_speed.csv'}")
    return 1 if any(r["failed_logs"] or r["finished"] < r["runs"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

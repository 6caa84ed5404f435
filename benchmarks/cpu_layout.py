"""CPU sweeps: one run on all cores, or one single-threaded run per core?

A CPU-only session trains its runs on a few cores. This times the same training step (the model's
forward, backward and Adam update on a random batch of the dataset's shape) in two layouts, in one run on
one machine:
  (a) one process with torch using every core as threads (what `gradattn sweep` does by default);
  (b) one process per core, each with OMP_NUM_THREADS=1 behaviour (torch.set_num_threads(1)), all at once
      (what `OMP_NUM_THREADS=1 gradattn sweep ... &` twice does);
and prints the images per second of each and the ratio b/a. It measures throughput, not accuracy.

    python benchmarks/cpu_layout.py                          # resnet18, 28x28x1, batch 128
    python benchmarks/cpu_layout.py --model gradattn_nope --steps 20

Adds a row to outputs/bench/cpu_layout.csv (rewritten atomically; earlier rows are kept, so one CSV holds
every model and machine timed), with the CPU's model name, as a CPU session's machine is not always the same.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # run from a checkout without installing

from gradattn.fileio import atomic_write_csv  # noqa: E402
from gradattn.models import build_model  # noqa: E402
from gradattn.train import build_optimizer  # noqa: E402


def time_steps(model_name: str, shape: tuple[int, int, int], batch_size: int, steps: int, threads: int,
               start=None) -> float:
    """Seconds for `steps` training steps after 2 untimed ones; `start` (an Event) lines processes up."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    chans, height, width = shape
    model = build_model(model_name, num_classes=10, in_chans=chans)
    optimizer = build_optimizer(model, "cpu")      # the sweep's Adam (fused since 2026-12-06)
    images, labels = torch.randn(batch_size, chans, height, width), torch.randint(0, 10, (batch_size,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    for _ in range(2):
        step()
    if start is not None:
        start.wait()
    began = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - began


def _worker(args, start, results):
    results.put(time_steps(*args, threads=1, start=start))


def parallel_seconds(model_name, shape, batch_size, steps, processes: int) -> list[float]:
    """Each process's seconds for its steps, all `processes` running at once with one thread each."""
    ctx = mp.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=_worker, args=((model_name, shape, batch_size, steps), start, results))
               for _ in range(processes)]
    for w in workers:
        w.start()
    start.set()
    seconds = [results.get(timeout=3600) for _ in workers]
    for w in workers:
        w.join()
    return seconds


COLUMNS = ["date", "model", "shape", "batch_size", "steps", "cores", "cpu", "one_process_images_per_s",
           "per_core_processes_images_per_s", "ratio", "torch"]


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def append_row(path: Path, row: dict, columns=COLUMNS) -> None:
    """Rewrite `path` atomically with its earlier rows (columns they lack left empty) and `row`."""
    rows = []
    if path.exists():
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    atomic_write_csv(path, [*rows, row], columns, ignore_extra=True)


def parse_shape(text: str) -> tuple[int, int, int]:
    try:
        height, width, chans = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shape is HxWxC, e.g. 28x28x1; got {text!r}") from None
    return chans, height, width


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--shape", type=parse_shape, default=(1, 28, 28), help="HxWxC (default 28x28x1)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per process")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="threads of (a), processes of (b)")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "bench"), help="folder of the CSV")
    args = parser.parse_args(argv)
    if args.cores < 1 or args.steps < 1 or args.batch_size < 1:
        parser.error("--cores, --steps and --batch-size must be at least 1")

    common = (args.model, args.shape, args.batch_size, args.steps)
    chans, height, width = args.shape
    shape = f"{height}x{width}x{chans}"
    one = time_steps(*common, threads=args.cores)
    many = parallel_seconds(*common, processes=args.cores)
    images = args.batch_size * args.steps
    rate_a = images / one
    rate_b = images * args.cores / max(many)      # the layout is done when its slowest process is
    print(f"{args.model} {shape} batch {args.batch_size}, {args.steps} steps, "
          f"{args.cores} cores ({cpu_model()}, torch {torch.__version__})")
    print(f"(a) 1 process x {args.cores} threads: {rate_a:.1f} images/s ({one / args.steps * 1000:.0f} ms/step)")
    print(f"(b) {args.cores} processes x 1 thread: {rate_b:.1f} images/s "
          f"({max(many) / args.steps * 1000:.0f} ms/step in each)")
    ratio = f"{rate_b / rate_a:.3f}"      # printed from the CSV's value, so the two never round apart
    print(f"b/a = {float(ratio):.2f}")
    row = dict(date=datetime.date.today().isoformat(), model=args.model, shape=shape,
               batch_size=args.batch_size, steps=args.steps, cores=args.cores, cpu=cpu_model(),
               one_process_images_per_s=f"{rate_a:.1f}", per_core_processes_images_per_s=f"{rate_b:.1f}",
               ratio=ratio, torch=torch.__version__)
    append_row(Path(args.out) / "cpu_layout.csv", row)
    return 0


if __name__ == "__main__":
    sys.exit(main())

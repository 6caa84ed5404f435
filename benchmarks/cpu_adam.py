"""CPU training steps: torch's default Adam against the fused Adam that gradattn.train builds.

On the CPU torch's Adam defaults to a Python loop over the parameter tensors (its multi-tensor and fused
kernels are picked by default on CUDA only), and the models here have 53 (plain18) to 102 (gradattn_rope) of
them. This times the same training step (gradattn.trainstep.TrainStep: forward, cross-entropy, backward,
Adam update on a fixed random batch of the dataset's shape; throughput, not accuracy) with
  (a) torch.optim.Adam(lr 1e-3, weight decay 1e-4), torch's CPU default (what gradattn.train used before);
  (b) gradattn.train.build_optimizer, the same Adam with fused=True;
in one process, alternating blocks of `--steps` steps between the two for `--repeats` rounds so that a load
change on a shared machine hits both, and prints the median milliseconds a step of each and the ratio a/b.
It also runs one step of each from the same weights and prints the largest parameter difference: the two
compute the same update, so it is float rounding.

    python benchmarks/cpu_adam.py                            # gradattn_lpe, 32x32x3, batch 128
    python benchmarks/cpu_adam.py --model resnet18 --shape 28x28x1

Adds a row to outputs/bench/cpu_adam.csv (rewritten atomically with its earlier rows).
"""
from __future__ import annotations

import argparse
import copy
import datetime
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # run from a checkout without installing

from benchmarks.cpu_layout import append_row, cpu_model, parse_shape  # noqa: E402
from gradattn.models import build_model  # noqa: E402
from gradattn.train import TrainConfig, build_optimizer  # noqa: E402
from gradattn.trainstep import TrainStep  # noqa: E402

LR, WEIGHT_DECAY = TrainConfig.lr, TrainConfig.weight_decay     # the training runs' Adam settings
COLUMNS = ["date", "model", "shape", "batch_size", "steps", "repeats", "threads", "cpu", "default_ms_per_step",
           "fused_ms_per_step", "ratio", "one_step_max_abs_diff", "torch"]


def make_steps(model_name: str, shape, batch_size: int) -> tuple[dict, tuple]:
    """{"default": TrainStep, "fused": TrainStep} over two copies of one model, and a fixed batch."""
    torch.manual_seed(0)
    chans, height, width = shape
    model = build_model(model_name, num_classes=10, in_chans=chans)
    twin = copy.deepcopy(model)
    default = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    fused = build_optimizer(twin, "cpu", LR, WEIGHT_DECAY)
    if not fused.defaults.get("fused"):
        raise SystemExit("gradattn.train.build_optimizer did not build a fused Adam on the CPU; nothing to compare")
    batch = torch.randn(batch_size, chans, height, width), torch.randint(0, 10, (batch_size,))
    return {"default": TrainStep(model, default, "cpu"), "fused": TrainStep(twin, fused, "cpu")}, batch


def one_step_difference(steps: dict, batch) -> float:
    """Largest absolute parameter difference after one step of each from the same weights and dropout draws."""
    for step in steps.values():
        torch.manual_seed(1)
        step(*batch)
    pairs = zip(steps["default"].model.parameters(), steps["fused"].model.parameters())
    return max((a - b).abs().max().item() for a, b in pairs)


def time_block(step: TrainStep, batch, count: int) -> float:
    began = time.perf_counter()
    for _ in range(count):
        step(*batch)
    return (time.perf_counter() - began) / count


def median_ms_alternating(steps: dict, batch, steps_per_block: int, repeats: int) -> dict:
    """{name: median milliseconds a step} of each callable in `steps` on `batch`, after one untimed step of
    each, timed in `repeats` rounds of one block of `steps_per_block` steps per callable, so a load change on
    a shared machine hits every one of them."""
    for step in steps.values():
        time_block(step, batch, 1)     # warm-up, untimed (optimizer state, oneDNN primitives)
    seconds = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            seconds[name].append(time_block(step, batch, steps_per_block))
    return {name: statistics.median(values) * 1000 for name, values in seconds.items()}


def step_parser(description: str, model: str, compared: str) -> argparse.ArgumentParser:
    """The options the CPU step benchmarks share (`compared`: what the blocks alternate between)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default=model)
    parser.add_argument("--shape", type=parse_shape, default=(3, 32, 32), help="HxWxC (default 32x32x3)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per block")
    parser.add_argument("--repeats", type=int, default=4, help=f"blocks per {compared}, alternating")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "bench"), help="folder of the CSV")
    return parser


def parse_step_args(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if min(args.steps, args.repeats, args.batch_size) < 1:
        parser.error("--steps, --repeats and --batch-size must be at least 1")
    return args


def main(argv=None) -> int:
    parser = step_parser(__doc__.split("\n\n")[0], "gradattn_lpe", "optimizer")
    args = parse_step_args(parser, argv)
    steps, batch = make_steps(args.model, args.shape, args.batch_size)
    difference = one_step_difference(steps, batch)
    ms = median_ms_alternating(steps, batch, args.steps, args.repeats)
    default_ms, fused_ms = ms["default"], ms["fused"]

    chans, height, width = args.shape
    shape = f"{height}x{width}x{chans}"
    ratio = f"{default_ms / fused_ms:.3f}"      # printed from the CSV's value, so the two never round apart
    print(f"{args.model} {shape} batch {args.batch_size}, {args.repeats} x {args.steps} steps each, "
          f"threads: {torch.get_num_threads()} ({cpu_model()}, torch {torch.__version__})")
    print(f"(a) torch's default Adam: {default_ms:.1f} ms/step")
    print(f"(b) fused Adam (gradattn.train): {fused_ms:.1f} ms/step")
    print(f"a/b = {float(ratio):.2f}; one step from the same weights differs by at most {difference:.3g}")
    row = dict(date=datetime.date.today().isoformat(), model=args.model, shape=shape, batch_size=args.batch_size,
               steps=args.steps, repeats=args.repeats, threads=torch.get_num_threads(), cpu=cpu_model(),
               default_ms_per_step=f"{default_ms:.1f}", fused_ms_per_step=f"{fused_ms:.1f}", ratio=ratio,
               one_step_max_abs_diff=f"{difference:.3g}", torch=torch.__version__)
    append_row(Path(args.out) / "cpu_adam.csv", row, COLUMNS)
    return 0


if __name__ == "__main__":
    sys.exit(main())

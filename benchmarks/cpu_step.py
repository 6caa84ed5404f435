"""CPU training steps: precision and memory layout.

On the CPU gradattn.train trains in fp32 in the contiguous (NCHW) layout by default; with `--precision bf16`
under bf16 autocast (the arithmetic the GPU runs use) in the channels_last layout (oneDNN's bf16 kernels).
This times the same training step (gradattn.trainstep.TrainStep with gradattn.train's fused Adam: forward,
cross-entropy, backward, update on a fixed random batch of the dataset's shape; throughput, not accuracy) as
  (a) fp32, NCHW: the CPU default (`--precision auto`);
  (b) fp32, channels_last: the layout alone;
  (c) bf16 autocast, NCHW: the precision alone;
  (d) bf16 autocast, channels_last: `--precision bf16`;
in one process, alternating blocks of `--steps` steps between them for `--repeats` rounds so that a load
change on a shared machine hits all four, and prints the median milliseconds a step of each and the ratios
a/b, a/c and a/d. Whether the CPU has native bf16 kernels (AVX512-BF16 or AMX) is printed with them:
without, torch emulates bf16 and (c), (d) are slow.

    python benchmarks/cpu_step.py                            # gradattn_rope, 32x32x3, batch 128
    python benchmarks/cpu_step.py --model resnet18 --shape 28x28x1

Adds a row to outputs/bench/cpu_step.csv (rewritten atomically with its earlier rows).
"""
from __future__ import annotations

import copy
import datetime
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # run from a checkout without installing

from benchmarks.cpu_adam import median_ms_alternating, parse_step_args, step_parser  # noqa: E402
from benchmarks.cpu_layout import append_row, cpu_model  # noqa: E402
from gradattn.fastdata import cpu_has_native_bf16  # noqa: E402
from gradattn.models import build_model  # noqa: E402
from gradattn.train import build_optimizer  # noqa: E402
from gradattn.trainstep import TrainStep  # noqa: E402

SETTINGS = {"fp32_nchw": ("fp32", False), "fp32_channels_last": ("fp32", True),
            "bf16_nchw": ("bf16", False), "bf16_channels_last": ("bf16", True)}
LABELS = {"fp32_nchw": "(a) fp32, NCHW (the CPU default)", "fp32_channels_last": "(b) fp32, channels_last",
          "bf16_nchw": "(c) bf16 autocast, NCHW", "bf16_channels_last": "(d) bf16 autocast, channels_last "
          "(--precision bf16)"}
RATIOS = {"ratio_layout": "fp32_channels_last", "ratio_bf16": "bf16_nchw", "ratio_bf16_channels_last":
          "bf16_channels_last"}
COLUMNS = ["date", "model", "shape", "batch_size", "steps", "repeats", "threads", "cpu", "native_bf16",
           *(f"{name}_ms_per_step" for name in SETTINGS), *RATIOS, "torch"]


class LayoutStep:
    """A TrainStep whose batches are first put in the model's memory layout, as gradattn.train's loaders do."""

    def __init__(self, step: TrainStep, channels_last: bool):
        self.step, self.channels_last = step, channels_last

    def __call__(self, x, y):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.step(x, y)


def make_steps(model_name: str, shape, batch_size: int) -> tuple[dict, tuple]:
    """{setting: LayoutStep} over copies of one model (SETTINGS), and a fixed batch."""
    torch.manual_seed(0)
    chans, height, width = shape
    model = build_model(model_name, num_classes=10, in_chans=chans)
    steps = {}
    for name, (precision, channels_last) in SETTINGS.items():
        copy_ = copy.deepcopy(model)
        if channels_last:
            copy_ = copy_.to(memory_format=torch.channels_last)
        step = TrainStep(copy_, build_optimizer(copy_, "cpu"), "cpu", precision=precision)
        steps[name] = LayoutStep(step, channels_last)
    batch = torch.randn(batch_size, chans, height, width), torch.randint(0, 10, (batch_size,))
    return steps, batch


def main(argv=None) -> int:
    args = parse_step_args(step_parser(__doc__.split("\n\n")[0], "gradattn_rope", "setting"), argv)
    steps, batch = make_steps(args.model, args.shape, args.batch_size)
    ms = median_ms_alternating(steps, batch, args.steps, args.repeats)

    chans, height, width = args.shape
    shape = f"{height}x{width}x{chans}"
    native = cpu_has_native_bf16()
    ratios = {column: f"{ms['fp32_nchw'] / ms[name]:.3f}" for column, name in RATIOS.items()}   # the CSV's values
    print(f"{args.model} {shape} batch {args.batch_size}, {args.repeats} x {args.steps} steps each, "
          f"threads: {torch.get_num_threads()} ({cpu_model()}, native bf16: {'yes' if native else 'no'}, "
          f"torch {torch.__version__})")
    for name, label in LABELS.items():
        print(f"{label}: {ms[name]:.1f} ms/step")
    print("; ".join(f"a/{letter} = {float(ratios[column]):.2f}" for letter, column in zip("bcd", RATIOS)))
    row = dict(date=datetime.date.today().isoformat(), model=args.model, shape=shape, batch_size=args.batch_size,
               steps=args.steps, repeats=args.repeats, threads=torch.get_num_threads(), cpu=cpu_model(),
               native_bf16=native, torch=torch.__version__, **ratios,
               **{f"{name}_ms_per_step": f"{value:.1f}" for name, value in ms.items()})
    append_row(Path(args.out) / "cpu_step.csv", row, COLUMNS)
    return 0


if __name__ == "__main__":
    sys.exit(main())

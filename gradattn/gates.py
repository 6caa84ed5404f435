"""Whether the gates of SE- and CBAM-ResNet-18 still depend on their input after training.

The gradient-flow analysis flags SE's fully connected layers and CBAM's channel MLP in some blocks as
vanishing or as getting exactly zero gradient (docs/findings.md). Such a gate is a product of two weight
matrices (Linear or 1x1 conv, ReLU, Linear or 1x1 conv, no bias), so each matrix's gradient scales with the
other's weights: once both are small, weight decay can outpull the gradient and shrink both towards zero
together; and once its hidden ReLUs stop firing on every image, neither gets any gradient. Either way the
gate settles at sigmoid(0) = 0.5 for every image and channel, a fixed scale rather than attention. A flag
in the gradient-flow report cannot tell that apart from a working gate whose gradient is merely small;
`gate_report` can, from the gate's weights and the spread of its output over real images. A gate fresh
from PyTorch's default init is nearly flat too (output range under CONSTANT_SPREAD on random images, with
largest weights 0.03 to 0.04), so the largest weight tells a gate that training shrank from one that never moved.
Each weight matrix's own largest weight (`factor_absmax`) shows whether both factors shrank or one alone: one
factor near zero is enough to silence the gate while the other keeps weights of 1e-2.

    python -m gradattn gates outputs/cpu/runs/fashionmnist/se_resnet18/corrected/seed0
    python -m gradattn gates --out outputs/cpu      # gates.json for finished SE/CBAM runs that lack one

Every SE/CBAM run keeps its report over the test split as `gates.json` (`gates_record`), which
`gradattn export` copies to results/gates/ and `findings gates` tabulates.
"""
from __future__ import annotations

import torch
from torch import nn

from gradattn.gradflow import take_batches
from gradattn.models.blocks import ChannelAttention, SEModule, SpatialAttention

CONSTANT_SPREAD = 1e-3      # a gate whose outputs over every image and channel lie within this is constant
GATE_BATCHES = 4            # test batches a run's gates.json measures on


def gate_modules(model: nn.Module) -> list[tuple[str, str, nn.Module]]:
    """(name, kind, module) of every gate: "se" (the Linear-ReLU-Linear-sigmoid stack), "cbam_channel",
    "cbam_spatial". The SE entry is the `fc` stack, whose output is the gate itself."""
    gates = []
    for name, module in model.named_modules():
        if isinstance(module, SEModule):
            gates.append((f"{name}.fc", "se", module.fc))
        elif isinstance(module, ChannelAttention):
            gates.append((name, "cbam_channel", module))
        elif isinstance(module, SpatialAttention):
            gates.append((name, "cbam_spatial", module))
    return gates


def has_gates(model: nn.Module) -> bool:
    """Whether `model` has SE or CBAM gates (se_resnet18, cbam_resnet18)."""
    return bool(gate_modules(model))


def _factor_absmax(module: nn.Module) -> list[float]:
    """Largest absolute weight of each of the gate's weight tensors, input side first."""
    return [float(p.detach().abs().max()) for p in module.parameters()]


@torch.no_grad()
def gate_report(model: nn.Module, loader, num_batches: int = GATE_BATCHES, device="cpu") -> list[dict]:
    """Per gate: its largest absolute weight (overall, and per weight tensor: `factor_absmax`), the range of
    its output over `num_batches` batches of `loader` (every image, channel and position), and `constant`:
    that range is under CONSTANT_SPREAD."""
    gates = gate_modules(model)
    if not gates:
        raise ValueError(f"{type(model).__name__} has no SE or CBAM gates; gate_report is for se_resnet18 and "
                         "cbam_resnet18 runs")
    ranges = {name: [float("inf"), float("-inf")] for name, _, _ in gates}

    def record(name):
        def hook(module, inputs, output):
            low, high = ranges[name]
            ranges[name] = [min(low, float(output.min())), max(high, float(output.max()))]
        return hook

    handles = [module.register_forward_hook(record(name)) for name, _, module in gates]
    was_training = model.training
    model.eval()
    try:
        for inputs, _ in take_batches(loader, num_batches, device):
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    rows = []
    for name, kind, module in gates:
        low, high = ranges[name]
        factors = _factor_absmax(module)
        rows.append({"name": name, "kind": kind, "stage": name.split(".")[0], "weight_absmax": max(factors),
                     "factor_absmax": factors, "out_min": low, "out_max": high, "out_spread": high - low,
                     "constant": high - low < CONSTANT_SPREAD})
    return rows


def format_gate_report(rows: list[dict]) -> str:
    """One line per gate, then how many are constant."""
    lines = [f"{'gate':<28} {'kind':<13} {'max |w|':>9} {'per factor':>19} {'out min':>8} {'out max':>8}  constant"]
    for row in rows:
        factors = " / ".join(f"{w:.1e}" for w in row["factor_absmax"])
        lines.append(f"{row['name']:<28} {row['kind']:<13} {row['weight_absmax']:>9.2e} {factors:>19} "
                     f"{row['out_min']:>8.4f} {row['out_max']:>8.4f}  {'yes' if row['constant'] else 'no'}")
    lines.append(f"{sum(row['constant'] for row in rows)} of {len(rows)} gates constant "
                 f"(output range under {CONSTANT_SPREAD:g})")
    return "\n".join(lines)


def gates_record(model: nn.Module, loader, info=None, device="cpu", num_batches: int = GATE_BATCHES) -> dict:
    """What a run keeps as gates.json: `gate_report` with the batch count and threshold it used. (`info`,
    the dataset's, is unused: the signature is gradattn.report.backfill_run_files'.)"""
    return {"num_batches": num_batches, "constant_spread": CONSTANT_SPREAD,
            "gates": gate_report(model, loader, num_batches=num_batches, device=device)}


def backfill(out_dir, device: str = "cpu", force: bool = False, num_batches: int = GATE_BATCHES,
             log=print) -> list:
    """Write gates.json for every finished SE/CBAM run under `out_dir`/runs that lacks one (all of them with
    `force`), from the weights the run was tested with and its own test split. Returns the paths."""
    from gradattn.report import backfill_run_files

    def summarize(model, loader, info, device, precision):      # gates are measured in fp32, as run_experiment does
        return gates_record(model, loader, info, device, num_batches=num_batches)

    return backfill_run_files(out_dir, "gates.json", has_gates, summarize, device=device, force=force, log=log)


def run_gate_report(run_dir, num_batches: int = GATE_BATCHES, device: str = "cpu") -> list[dict]:
    """gate_report of a finished run, with the weights it was tested with, on its own test split."""
    from gradattn.report import load_trained_model, test_split_loader
    from gradattn.train import resolve_device

    device = resolve_device(device)
    model, cfg = load_trained_model(run_dir, device=str(device))
    _, loader = test_split_loader(cfg, device)
    return gate_report(model, loader, num_batches=num_batches, device=device)

"""Where GradAttn's encoder attends among its five tap tokens (stem, layer1 .. layer4).

The weights are the encoder's softmax per layer and head, before attention dropout (eval mode), as the
model's details pass returns them (B, layers, heads, 5, 5; rows are queries, columns keys). A finished run
keeps a small summary over its test split in `attention.json`, so maps of real-data runs can be committed
and compared without their checkpoints:

- `by_layer` (layers, 5, 5): the map averaged over heads and every test image;
- `by_class` (classes, 5, 5): averaged over layers and heads, per true class;
- `received` (layers, 5): the share of attention each tap receives, the mean of a key's column over the
  five queries. A tap that no query reads contributes to the pooled token only through its own row, which
  is the question behind the paper's "controlled instabilities": does attention route around a stage?
"""
from __future__ import annotations

import numpy as np
import torch

from gradattn.metrics import eval_batches
from gradattn.models.blocks import TAP_NAMES


def has_attention(model: torch.nn.Module) -> bool:
    """True for models whose details pass returns attention weights (the GradAttn transformer variants)."""
    from gradattn.models import GradAttn
    return isinstance(model, GradAttn)


def attention_by_class(model: torch.nn.Module, loader, num_classes: int, device=None, precision: str = "auto"):
    """Mean attention (classes, layers, heads, 5, 5) over the images of each class of `loader`, and the
    per-class image counts. Eval mode for the pass (the model's mode is restored afterwards); `precision` as
    in gradattn.fastdata.resolve_precision (run_experiment passes the run's)."""
    if not has_attention(model):
        raise ValueError(f"{type(model).__name__} has no attention to summarise (only the GradAttn "
                         "transformer variants do: gradattn_nope, gradattn_nope_d32, gradattn_lpe, gradattn_rope)")
    sums, counts = None, np.zeros(num_classes, dtype=np.int64)
    for details, labels in eval_batches(model, loader, device, precision=precision, return_details=True):
        attention = details["attention"].double().cpu().numpy()
        labels = labels.numpy()
        if sums is None:
            sums = np.zeros((num_classes, *attention.shape[1:]))
        np.add.at(sums, labels, attention)
        counts += np.bincount(labels, minlength=num_classes)
    if sums is None:
        raise ValueError("the loader yielded no batches; check the split is not empty")
    return sums / np.maximum(counts, 1)[:, None, None, None, None], counts


def summarize_attention(maps, counts, class_names=None) -> dict:
    """The JSON-ready summary of `attention_by_class` output (see the module docstring)."""
    maps, counts = np.asarray(maps, dtype=float), np.asarray(counts)
    if maps.ndim != 5 or maps.shape[-2:] != (len(TAP_NAMES), len(TAP_NAMES)) or len(counts) != len(maps):
        raise ValueError(f"maps must be (classes, layers, heads, 5, 5) with one count per class, got "
                         f"{maps.shape} and {len(counts)} counts")
    if counts.sum() <= 0:
        raise ValueError("no images were counted; the summary would be empty")
    by_layer = np.einsum("c,clhqk->lqk", counts / counts.sum(), maps) / maps.shape[2]
    return {
        "taps": list(TAP_NAMES),
        "layers": int(maps.shape[1]), "heads": int(maps.shape[2]),
        "images": int(counts.sum()),
        "counts": counts.astype(int).tolist(),
        "class_names": list(class_names) if class_names is not None else [str(i) for i in range(len(maps))],
        "by_layer": np.round(by_layer, 6).tolist(),
        "by_class": np.round(maps.mean(axis=(1, 2)), 6).tolist(),
        "received": np.round(by_layer.mean(axis=1), 6).tolist(),
    }


def run_attention(model, loader, info, device=None, precision: str = "auto") -> dict:
    """`summarize_attention` of one model over one split (what run_experiment writes as attention.json)."""
    maps, counts = attention_by_class(model, loader, info.num_classes, device, precision)
    return summarize_attention(maps, counts, info.class_names)


def received_table(records):
    """Tidy DataFrame (one row per run, encoder layer and tap) of the share of attention each tap receives,
    from (run metadata dict, attention summary) pairs: what 05_results averages over seeds."""
    import pandas as pd

    rows = []
    for meta, summary in records:
        for layer, shares in enumerate(summary["received"]):
            for tap, share in zip(summary["taps"], shares):
                rows.append({**meta, "layer": layer, "tap": tap, "received": share})
    return pd.DataFrame(rows)


def backfill(out_dir, device: str = "cpu", force: bool = False, log=print) -> list:
    """Write attention.json for every finished GradAttn run under `out_dir`/runs that lacks one (all of them
    with `force`), from the weights the run was tested with and its own test loader. Returns the paths."""
    from gradattn.report import backfill_run_files

    return backfill_run_files(out_dir, "attention.json", has_attention, run_attention, device=device, force=force,
                              log=log)

"""Figures for the notebooks. Each function returns a `matplotlib.figure.Figure` built without
pyplot (no global state, no double display in Jupyter) and never saves or shows it. Every function
takes a `title`, so callers can stamp e.g. "quick profile: not the paper's numbers".

matplotlib (and pandas, where tables are accepted) is imported inside the functions so that
`gradattn` imports with torch and numpy alone.
"""
from __future__ import annotations

import numpy as np

from gradattn.models.blocks import TAP_NAMES


def _figure(width: float, height: float, title: str | None):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), layout="constrained")
    if title:
        fig.suptitle(title)
    return fig


def _rows(table) -> list[dict]:
    """List of dicts from a pandas DataFrame or any iterable of mappings."""
    if hasattr(table, "to_dict"):
        return table.to_dict("records")
    return [dict(row) for row in table]


def _as_array(values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=float)


# ---------------------------------------------------------------------------------------------
# gradient flow


def _gradflow_layers(report) -> tuple[list, dict]:
    """(measured layer dicts, thresholds) from a GradFlowReport or its `to_dict()` (gradflow.json)."""
    data = report.to_dict() if hasattr(report, "to_dict") else report
    if "layers" not in data or "thresholds" not in data:
        raise ValueError("expected a GradFlowReport or its to_dict(); got an object without "
                         "'layers'/'thresholds'")
    layers = [layer for layer in data["layers"] if layer["fired"]]
    if not layers:
        raise ValueError("the report has no measured layers to plot")
    return layers, data["thresholds"]


def plot_gradient_flow(report, title: str | None = None, heatmap_layers: int = 10,
                       heatmap_batches: int = 20):
    """The authors' 2x2 gradient-flow panel (SPEC 5), measured layers only.

    1. mean norm per layer with std error bars (log y); 2. heatmap of per-batch norms for the
    first `heatmap_layers` layers x `heatmap_batches` batches; 3. histogram of
    log10(norm + 1e-10) over all layers and batches with the vanishing/exploding thresholds;
    4. mean norm against layer index with a +-std band (log y).
    """
    layers, thresholds = _gradflow_layers(report)
    names = [layer["name"] for layer in layers]
    means = np.array([layer["mean_norm"] for layer in layers], dtype=float)
    stds = np.array([layer["std_norm"] for layer in layers], dtype=float)
    width = max(len(layer["norms"]) for layer in layers)
    matrix = np.full((len(layers), width), np.nan)
    for i, layer in enumerate(layers):
        matrix[i, :len(layer["norms"])] = layer["norms"]
    index = np.arange(len(layers))

    fig = _figure(16, 11, title)
    bars, heat, hist, line = fig.subplots(2, 2).ravel()

    bars.bar(index, means, yerr=stds, capsize=2, color="tab:blue", alpha=0.8)
    bars.set_yscale("log")
    bars.set_xticks(index, names, rotation=90, fontsize=5)
    bars.set_ylabel("mean gradient norm")
    bars.set_title("gradient norm per layer")

    shown = matrix[:heatmap_layers, :heatmap_batches]
    image = heat.imshow(shown, aspect="auto", cmap="viridis", interpolation="nearest")
    heat.set_yticks(np.arange(shown.shape[0]), names[:heatmap_layers], fontsize=6)
    heat.set_xlabel("batch")
    heat.set_title(f"per-batch norms (first {shown.shape[0]} layers)")
    fig.colorbar(image, ax=heat, label="gradient norm")

    log_norms = np.log10(matrix[np.isfinite(matrix)] + 1e-10)
    hist.hist(log_norms, bins=50, color="tab:gray")
    hist.axvline(np.log10(thresholds["vanishing"]), color="tab:red", linestyle="--",
                 label=f"vanishing ({thresholds['vanishing']:g})")
    hist.axvline(np.log10(thresholds["exploding"]), color="tab:orange", linestyle="--",
                 label=f"exploding ({thresholds['exploding']:g})")
    hist.set_xlabel("log10(norm + 1e-10)")
    hist.set_ylabel("count")
    hist.set_title("distribution of gradient norms")
    hist.legend(fontsize=8)

    line.plot(index, means, marker="o", markersize=3)
    line.fill_between(index, np.clip(means - stds, 1e-12, None), means + stds, alpha=0.3)
    line.set_yscale("log")
    line.set_xlabel("layer index (forward order)")
    line.set_ylabel("mean gradient norm")
    line.set_title("gradient flow through depth")
    return fig


def plot_grad_norm_over_training(monitor_records, value: str = "grad_norm", layers=None,
                                 x: str = "step", title: str | None = None):
    """One line per layer of `value` ("grad_norm" or "grad_rms") against `x`, coloured by depth.

    `monitor_records` is `GradientMonitor.records` or its DataFrame; `layers` optionally selects
    layer names. A legend is drawn only for 12 layers or fewer.
    """
    from matplotlib import colormaps
    rows = _rows(monitor_records)
    if not rows:
        raise ValueError("no gradient-monitor records to plot; call monitor.after_backward(step) "
                         "during training first")
    for column in (value, x, "layer"):
        if column not in rows[0]:
            raise ValueError(f"records lack column {column!r}; have {sorted(rows[0])}")
    order = list(dict.fromkeys(row["layer"] for row in rows))
    if layers is not None:
        order = [name for name in order if name in set(layers)]
    fig = _figure(10, 5, title)
    ax = fig.subplots()
    cmap = colormaps["viridis"]
    for i, name in enumerate(order):
        series = [(row[x], row[value]) for row in rows if row["layer"] == name]
        xs, ys = zip(*series)
        ax.plot(xs, ys, color=cmap(i / max(len(order) - 1, 1)), label=name, linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(value.replace("_", " "))
    ax.set_title("parameter-gradient norms during training (colour: depth)")
    if len(order) <= 12:
        ax.legend(fontsize=7)
    return fig


# ---------------------------------------------------------------------------------------------
# training and evaluation

_CURVES = {
    "loss": (("train_loss",), ("val_loss",)),
    "accuracy": (("train_acc", "train_accuracy"), ("val_acc", "val_accuracy")),
}


def plot_learning_curves(history, title: str | None = None):
    """Loss and accuracy per epoch, train and validation, from history rows or a DataFrame.

    Recognised columns: epoch (else row order), train_loss, val_loss, train_acc|train_accuracy,
    val_acc|val_accuracy. Two axes: loss, accuracy.
    """
    rows = _rows(history)
    if not rows:
        raise ValueError("the history is empty; nothing to plot")
    columns = set(rows[0])
    epochs = [row["epoch"] for row in rows] if "epoch" in columns else list(range(1, len(rows) + 1))
    found = False
    fig = _figure(11, 4, title)
    for ax, (quantity, splits) in zip(fig.subplots(1, 2), _CURVES.items()):
        for split, candidates in zip(("train", "val"), splits):
            column = next((c for c in candidates if c in columns), None)
            if column is not None:
                ax.plot(epochs, [row[column] for row in rows], marker=".", label=split)
                found = True
        ax.set_xlabel("epoch")
        ax.set_ylabel(quantity)
        if ax.lines:
            ax.legend()
    if not found:
        raise ValueError(f"history has none of the columns train_loss, val_loss, train_acc, val_acc; "
                         f"it has {sorted(columns)}")
    return fig


def plot_confusion_matrix(cm, class_names=None, normalize: bool = True, title: str | None = None):
    """Confusion matrix (rows true, columns predicted), row-normalised by default, values annotated
    when there are 20 classes or fewer. Classes absent from the labels stay at 0."""
    counts = _as_array(cm)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"the confusion matrix must be square; got shape {counts.shape}")
    num_classes = counts.shape[0]
    class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for a {num_classes}-class matrix")
    values = counts
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    side = max(4.0, 0.5 * num_classes + 2)
    fig = _figure(side + 1, side, title)
    ax = fig.subplots()
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, label="fraction of true class" if normalize else "count")
    ticks = np.arange(num_classes)
    ax.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(ticks, class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if num_classes <= 20:
        threshold = values.max() / 2
        for i in range(num_classes):
            for j in range(num_classes):
                text = f"{values[i, j]:.2f}" if normalize else f"{int(values[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if values[i, j] > threshold else "black")
    return fig


def plot_attention_maps(attn, tap_names=TAP_NAMES, title: str | None = None, fmt: str = ".2f"):
    """Token-to-token attention heatmaps with values annotated.

    `attn` is (5, 5), (layers, heads, 5, 5), or (batch, layers, heads, 5, 5) as returned in
    `forward(x, return_details=True)["attention"]`, which is averaged over the batch. One axis per
    (layer, head), rows = layers; rows of a map are queries, columns keys.
    """
    maps = _as_array(attn)
    if maps.ndim == 5:
        maps = maps.mean(axis=0)
    if maps.ndim == 2:
        maps = maps[None, None]
    if maps.ndim != 4 or maps.shape[-1] != maps.shape[-2]:
        raise ValueError("attention must be (T, T), (layers, heads, T, T) or (batch, layers, heads, T, T); "
                         f"got shape {_as_array(attn).shape}")
    num_layers, num_heads, tokens, _ = maps.shape
    if len(tap_names) != tokens:
        raise ValueError(f"{len(tap_names)} tap names for {tokens} tokens; pass tap_names=")
    fig = _figure(2.2 * num_heads + 0.5, 2.2 * num_layers + 0.5, title)
    axes = np.atleast_2d(fig.subplots(num_layers, num_heads, squeeze=False))
    ticks = np.arange(tokens)
    for layer in range(num_layers):
        for head in range(num_heads):
            ax, values = axes[layer, head], maps[layer, head]
            ax.imshow(values, cmap="magma", vmin=0, vmax=max(values.max(), 1e-12))
            for i in range(tokens):
                for j in range(tokens):
                    ax.text(j, i, format(values[i, j], fmt), ha="center", va="center", fontsize=6,
                            color="white" if values[i, j] < 0.5 * values.max() else "black")
            ax.set_xticks(ticks, tap_names if layer == num_layers - 1 else [], rotation=90, fontsize=6)
            ax.set_yticks(ticks, tap_names if head == 0 else [], fontsize=6)
            if num_layers * num_heads > 1:
                ax.set_title(f"layer {layer} head {head}", fontsize=7)
    return fig


def plot_accuracy_ci(df, value: str = "mean", low: str = "ci_low", high: str = "ci_high",
                     paper: str | None = "paper", label: str = "model",
                     xlabel: str = "test accuracy (%)", title: str | None = None):
    """One dot per model with its 95 % CI as a horizontal error bar; the paper's number, when the
    `paper` column is present and not missing, as a red cross."""
    rows = _rows(df)
    if not rows:
        raise ValueError("no rows to plot")
    for column in (label, value, low, high):
        if column not in rows[0]:
            raise ValueError(f"the table lacks column {column!r}; it has {sorted(rows[0])}")
    means = np.array([row[value] for row in rows], dtype=float)
    lows = np.array([row[low] for row in rows], dtype=float)
    highs = np.array([row[high] for row in rows], dtype=float)
    if np.any(lows > means) or np.any(highs < means):
        raise ValueError(f"each row needs {low} <= {value} <= {high}")
    positions = np.arange(len(rows))
    fig = _figure(8, 0.45 * len(rows) + 1.5, title)
    ax = fig.subplots()
    ax.errorbar(means, positions, xerr=[means - lows, highs - means], fmt="o", capsize=3,
                label="mean, 95 % CI")
    if paper and paper in rows[0]:
        paper_values = np.array([np.nan if row[paper] is None else row[paper] for row in rows], dtype=float)
        known = np.isfinite(paper_values)
        if known.any():
            ax.plot(paper_values[known], positions[known], "x", color="tab:red", markersize=8,
                    label="paper")
    ax.set_yticks(positions, [str(row[label]) for row in rows])
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    return fig

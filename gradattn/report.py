"""What the notebooks call to show things: labelled tables and figures, the architecture's tables, training or
reading a notebook's runs, per-class attention, and the gradient-flow tables.

Every table and figure made from runs carries its profile's label (:func:`titled`), so quick-profile numbers
are never mistaken for the paper's. The numbers behind 05_results (our runs beside the paper's, verdicts)
come from :mod:`gradattn.findings`; executing and rendering the notebooks is :mod:`gradattn.notebooks`.
The project's folders (:func:`project_root`, :func:`outputs_dir`, :func:`resolve_data_root`) come from
:mod:`gradattn.paths` and are importable from here, since every notebook needs them.

matplotlib, pandas and IPython are imported lazily so ``import gradattn`` needs only torch and numpy.
"""
from __future__ import annotations

import html as _html
import json
import os
import time
from functools import partial
from pathlib import Path

from gradattn.paths import outputs_dir, project_root, resolve_data_root  # noqa: F401 (notebooks use them)

FALLBACK_LABELS = {
    "quick": "quick profile: not the paper's numbers",
    "paper": "paper profile: the paper's protocol on the full datasets",
}
_log = partial(print, flush=True)


def resolve_device(device: str | None = "auto") -> str:
    """"auto" -> "cuda" when a GPU is visible (Colab with a GPU runtime), else "cpu" (gradattn.fastdata)."""
    from gradattn.fastdata import resolve_device as resolve
    return str(resolve(device))


def device_label(device: str) -> str:
    """What a run's `device` column will say: the GPU's name, or the CPU with its thread count. CPU runs
    are bit-for-bit repeatable only at the same thread count (the sums are split differently), so the
    notebooks print it beside their results."""
    import torch
    from gradattn.train import device_name
    return device_name(torch.device(device))


def setup(profile: str, device: str | None = "auto", data_root=None) -> tuple[str, str]:
    """A notebook's opening: its `device` and `data_root` parameters resolved ("auto" -> cuda when a GPU is
    visible; None -> $GRADATTN_DATA or <project>/data) and the header line printed, the profile's label and the
    device with its CPU thread count (CPU numbers repeat bit for bit only at one count, docs/notebooks.md)."""
    device, data_root = resolve_device(device), resolve_data_root(data_root)
    print(f"{profile_label(profile)} | device: {device_label(device)}")
    return device, data_root


def profile_label(profile: str) -> str:
    """The label every table and figure title of a profile carries (from gradattn.profiles)."""
    try:
        from gradattn.profiles import PROFILES
    except ImportError:
        PROFILES = None
    if PROFILES is not None:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
        return PROFILES[profile].label
    if profile not in FALLBACK_LABELS:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(FALLBACK_LABELS)}")
    return FALLBACK_LABELS[profile]


PROFILE_INDEPENDENT = "computed from the code; the same in every profile"
PUBLISHED = "the paper's published numbers, from gradattn.paper"
COMMITTED = "committed full-data runs in results/; model tags say how each departs from the paper's settings"


def titled(title: str, profile: str | None, note: str | None = None) -> str:
    """``"<title> (<profile label>)"``: the title every table and figure made from runs gets. Content that
    does not depend on the profile says so instead (``note``, e.g. PROFILE_INDEPENDENT or PUBLISHED), so the
    paper's own numbers are never labelled "not the paper's numbers"."""
    return f"{title} ({note or profile_label(profile)})"


def label_figure(fig, title: str, profile: str | None, note: str | None = None):
    """Put the labelled title (see :func:`titled`) on a Figure (suptitle) and return it."""
    fig.suptitle(titled(title, profile, note))
    return fig


def show_figure(fig, dpi: int = 90):
    """Display a Figure as a PNG (works for pyplot-free Figures from gradattn.plots, in any backend)."""
    import io
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    try:
        from IPython.display import Image, display
    except ImportError:
        return buffer.getvalue()
    display(Image(data=buffer.getvalue(), format="png"))
    return None


def show_figures_side_by_side(figs, dpi: int = 60):
    """Display several Figures in one row (HTML with inline PNGs; wraps on narrow screens)."""
    import base64
    import io
    images = []
    for fig in figs:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        images.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
    try:
        from IPython.display import HTML, display
    except ImportError:
        return images
    display(HTML('<div style="display:flex;flex-wrap:wrap;gap:8px">' + "".join(
        f'<img style="max-width:49%" src="data:image/png;base64,{b}"/>' for b in images) + "</div>"))
    return None


def show_table(df, title: str, profile: str | None, index: bool = False, floatfmt: str | None = None,
               note: str | None = None):
    """Display a DataFrame under a bold, profile-labelled title (HTML in Jupyter, text elsewhere).

    Deterministic output (no random ids), so cells that call it can be checked by nbval."""
    caption = titled(title, profile, note)
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:  # plain Python
        print(caption)
        print(df.to_string(index=index))
        return
    if get_ipython() is None:
        print(caption)
        print(df.to_string(index=index))
        return
    kwargs = {"index": index, "border": 0}
    if floatfmt is not None:
        kwargs["float_format"] = (lambda v: format(v, floatfmt))
    body = df.to_html(**kwargs)
    display(HTML(f"<p><b>{_html.escape(caption)}</b></p>{body}"))


# --------------------------------------------------------------------------------------------------
# architecture tables and diagram (01_architecture)
# --------------------------------------------------------------------------------------------------

# (num_classes, in_chans) configurations the paper printed parameter counts for (SPEC 1.6).
PARAM_CONFIGS = (((10, 3), "10 cls, 3 ch (CIFAR/SVHN)"), ((10, 1), "10 cls, 1 ch (FMNIST)"),
                 ((200, 3), "200 cls (Tiny)"), ((8, 3), "8 cls (Blood/Tissue)"), ((2, 3), "2 cls (PCam)"),
                 ((6, 3), "6 cls (PAD)"))


def parameter_table():
    """Our parameter count of every registered model for each configuration the paper printed, with
    a check mark where it equals the paper's printed count (gradattn.paper.PARAM_COUNTS), the
    published count where it differs, and a column relative to ResNet-18 (10 classes, 3 channels).

    Counts are computed (models are built on the meta device), never copied from the paper."""
    import pandas as pd

    from gradattn import paper
    from gradattn.models import model_summary_rows
    ours = {cfg: {r["name"]: r["parameters"] for r in model_summary_rows(*cfg)} for cfg, _ in PARAM_CONFIGS}
    base = ours[(10, 3)]["resnet18"]
    rows = []
    for name in ours[(10, 3)]:
        row = {"model": name}
        for cfg, title in PARAM_CONFIGS:
            count = ours[cfg][name]
            published = paper.PARAM_COUNTS.get((name, *cfg))
            mark = "" if published is None else (" ✓" if published == count else f" (paper {published:,})")
            row[title] = f"{count:,}{mark}"
        row["vs ResNet-18"] = f"{100.0 * (ours[(10, 3)][name] - base) / base:+.1f} %"
        rows.append(row)
    return pd.DataFrame(rows)


def parameter_agreement() -> tuple[int, int]:
    """(how many of the paper's printed parameter counts we reproduce exactly, how many it printed)."""
    from gradattn import paper
    from gradattn.models import list_models, model_summary_rows
    known = set(list_models())
    cache = {}
    hits = total = 0
    for (name, k, c), published in paper.PARAM_COUNTS.items():
        if name not in known:
            continue
        if (k, c) not in cache:
            cache[(k, c)] = {r["name"]: r["parameters"] for r in model_summary_rows(k, c)}
        total += 1
        hits += cache[(k, c)][name] == published
    return hits, total


def tap_shape_table(sizes=None, stems=("imagenet", "cifar")):
    """(C, H, W) of GradAttn's five taps for each input size the paper uses, per stem, computed by
    running `tap_features` on the meta device (no memory, no compute)."""
    import pandas as pd
    import torch

    from gradattn.data.registry import DATASETS
    from gradattn.models import build_model
    by_size: dict[int, list[str]] = {}
    for info in DATASETS.values():
        by_size.setdefault(info.input_size, []).append(info.name)
    sizes = sorted(by_size) if sizes is None else list(sizes)
    taps = ("after stem", "layer1", "layer2", "layer3", "layer4")
    rows = []
    for stem in stems:
        for size in sizes:
            with torch.device("meta"):
                model = build_model("gradattn_nope_d32", 10, 3, stem=stem).eval()
                feats = model.tap_features(torch.empty(1, 3, size, size))
            row = {"stem": stem, "input": f"{size}×{size}", "datasets": ", ".join(by_size.get(size, []))}
            for tap, f in zip(taps, feats):
                row[tap] = "×".join(str(v) for v in f.shape[1:])
            rows.append(row)
    return pd.DataFrame(rows)


def gradattn_diagram(d_model: int = 256, num_layers: int = 3):
    """Figure: GradAttn's non-residual backbone, its five taps, the per-tap GAP+Linear projections, the
    transformer encoder over the 5 tokens, the token mean and the classifier."""
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from gradattn.models.blocks import TAP_CHANNELS

    fig = Figure(figsize=(11, 5.4))
    ax = fig.subplots()
    ax.set_xlim(0, 11.7)
    ax.set_ylim(0, 6.2)
    ax.axis("off")

    def box(x, y, w, h, text, color):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.04",
                                    fc=color, ec="#333", lw=1))
        ax.text(x, y, text, ha="center", va="center", fontsize=8.5)

    def arrow(x0, y0, x1, y1, color="#333", style="-|>"):
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle=style, mutation_scale=10,
                                     color=color, lw=1))

    stages = ["stem\n7×7/2 conv\n+ max-pool", "layer1\n2 blocks", "layer2\n2 blocks, /2",
              "layer3\n2 blocks, /2", "layer4\n2 blocks, /2"]
    xs = [2.0 + 1.8 * i for i in range(5)]
    box(0.55, 5.2, 0.8, 0.8, "image", "#eeeeee")
    arrow(0.95, 5.2, xs[0] - 0.65, 5.2)
    for i, (x, name, ch) in enumerate(zip(xs, stages, TAP_CHANNELS)):
        box(x, 5.2, 1.3, 0.95, name, "#cfe2f3")
        if i < 4:
            arrow(x + 0.65, 5.2, xs[i + 1] - 0.65, 5.2)
        arrow(x, 4.72, x, 3.95, color="#b45f06")
        ax.text(x + 0.08, 4.33, f"tap {i + 1}\n{ch} ch", fontsize=7.5, color="#b45f06", va="center")
        box(x, 3.55, 1.4, 0.7, f"GAP → Linear\n({ch} → {d_model})", "#fce5cd")
        arrow(x, 3.2, x, 2.65)
        box(x, 2.4, 0.7, 0.45, f"token {i + 1}", "#fff2cc")
    ax.text(xs[2], 5.95, "non-residual 18-layer CNN: no identity shortcuts, no downsample branches",
            ha="center", fontsize=9, style="italic")
    box(xs[2], 1.45, 1.8 * 4 + 1.0, 0.7,
        f"Transformer encoder over the 5 tokens: {num_layers} post-norm layers "
        f"(+ learnable PE or RoPE over depth index 0–4, or none)", "#d9ead3")
    for x in xs:
        arrow(x, 2.17, x, 1.8)
    box(xs[2], 0.45, 4.2, 0.55, "mean over tokens → Linear(d, K) → logits", "#ead1dc")
    arrow(xs[2], 1.1, xs[2], 0.73)
    ax.text(11.05, 3.55, "gradient reaches\nstage k only via\nits own token\nand deeper stages",
            fontsize=7.5, ha="center", va="center", color="#555")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# runs: train-or-read (02-04), tables and per-class attention
# --------------------------------------------------------------------------------------------------

RUN_TABLE_COLUMNS = ("model", "protocol", "seed", "epochs", "best_epoch", "best_val", "top1", "macro_f1",
                     "ece", "health_score_faithful", "health_score_corrected", "num_dead_layers",
                     "train_time_s", "is_sample")


def profile_config(profile: str, dataset: str | None = None, device: str = "auto",
                   data_root: str | None = None, epochs: int | None = None, out: Path | None = None,
                   **overrides):
    """The TrainConfig a notebook trains with: the profile's settings, the notebook's parameters, runs
    written under :func:`outputs_dir`, no per-batch progress bars (one line per run is printed)."""
    from gradattn.profiles import get_profile
    prof = get_profile(profile)
    settings = dict(device=resolve_device(device), data_root=data_root, out_dir=str(out or outputs_dir()),
                    progress=False)
    if dataset is not None:
        settings["dataset"] = dataset
    if epochs is not None:
        settings["epochs"] = int(epochs)
    settings.update(overrides)
    return prof.train_config(**settings)


def ensure_runs(profile: str, dataset: str, models=None, protocols=None, seeds=None, device: str = "auto",
                data_root: str | None = None, epochs: int | None = None, log=None, **overrides) -> list[dict]:
    """Train every run of (models x protocols x seeds) for one dataset that is not finished yet under
    outputs/runs, and read the finished ones (gradattn.train.sweep skips them). One line per run.

    ``None`` for models/protocols/seeds means the profile's grid. Returns run_experiment's dicts."""
    from gradattn.profiles import get_profile
    from gradattn.train import sweep
    log = log or _log
    prof = get_profile(profile)
    models, protocols = list(models or prof.models), list(protocols or prof.protocols)
    seeds = [int(s) for s in (seeds if seeds is not None else prof.seeds)]
    total = len(models) * len(protocols) * len(prof.stems) * len(seeds)
    clock = {"done": 0, "start": time.perf_counter()}

    def log_run(result):
        clock["done"] += 1
        seconds, clock["start"] = time.perf_counter() - clock["start"], time.perf_counter()
        how = "finished earlier, read from its run folder" if result.get("skipped") else f"trained in {seconds:.1f} s"
        log(f"[{clock['done']}/{total}] {result['run_key']}: test top-1 {100 * result['test']['accuracy']:.2f} % "
            f"({how})")

    base = profile_config(profile, dataset, device, data_root, epochs, **overrides)
    return sweep(base, models=models, protocols=protocols, seeds=seeds, stems=list(prof.stems), on_result=log_run)


def run_table(results: list[dict]):
    """The metrics table of a list of run results (rows as in outputs/results.csv, key columns)."""
    import pandas as pd

    from gradattn.results import metrics_to_row
    rows = [metrics_to_row(r) for r in results]
    df = pd.DataFrame(rows)
    return df[[c for c in RUN_TABLE_COLUMNS if c in df.columns]].round(2)


def read_history(result: dict):
    """history.csv of a run as a DataFrame."""
    import pandas as pd
    return pd.read_csv(Path(result["run_dir"]) / "history.csv")


def read_gradflow(result: dict) -> dict | None:
    """gradflow.json of a run (None when the run skipped the analysis)."""
    path = Path(result["run_dir"]) / "gradflow.json"
    return json.loads(path.read_text()) if path.exists() else None


def load_trained_model(run_dir: str | os.PathLike, device: str = "cpu"):
    """(model, TrainConfig) of a finished run, with the weights it was tested with (under the paper's
    defect the last epoch's, otherwise the best-validation epoch's): a slim checkpoint holds exactly those;
    from a full one the early-stopping state is restored as run_experiment did."""
    from gradattn.models import build_model
    from gradattn.train import EarlyStopping, TrainConfig, load_checkpoint, read_json
    run_dir = Path(run_dir)
    if not (run_dir / "checkpoint.pt").exists():
        raise FileNotFoundError(f"{run_dir} has no checkpoint.pt; run 02_train.ipynb (or `python -m gradattn "
                                "train`) for this configuration first")
    config = read_json(run_dir / "config.json")
    cfg = TrainConfig.from_dict({**config, "paper_defects": config.get("paper_defects")})
    info = cfg.info
    model = build_model(cfg.model, num_classes=info.num_classes, in_chans=info.in_chans, stem=cfg.stem,
                        **cfg.model_options)
    state = load_checkpoint(run_dir / "checkpoint.pt", device)
    model.load_state_dict(state["model"])
    if "early_stopping" in state:      # a full checkpoint: restore as run_experiment did
        stopper = EarlyStopping(cfg.early_stopping_patience, shallow_copy=cfg.defects)
        stopper.load_state_dict(state["early_stopping"], model)
        stopper.restore(model)
    # else: a slim checkpoint (gradattn.train.slim_checkpoint) already holds the restored weights
    return model.to(device).eval(), cfg


def test_split_loader(cfg, device):
    """(dataset info, loader) of a finished run's own test split, built as run_experiment built it: what the
    analyses of a trained run (attention.json, gates.json) measure on."""
    from gradattn.train import build_loaders, run_splits
    splits = run_splits(cfg)
    return splits.info, build_loaders(cfg, splits, device, names=("test",))["test"]


def tested_precision(run_dir: str | os.PathLike) -> str:
    """The precision a finished run was tested under, so that an analysis of it later (attention.json
    rebuilt, 02_train's maps) sees the numbers its test did: its last epoch's (run_experiment tests in the
    process that trained the last epoch); for a run from before epochs recorded theirs, the one policy there
    was for its device (gradattn.results.policy_precision); "auto" when neither is known."""
    import pandas as pd

    from gradattn.results import policy_precision
    from gradattn.train import read_json
    run_dir = Path(run_dir)
    history = pd.read_csv(run_dir / "history.csv") if (run_dir / "history.csv").exists() else pd.DataFrame()
    last = history["precision"].iloc[-1] if "precision" in history and len(history) else None
    if isinstance(last, str) and last:
        return last
    metrics = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").exists() else {}
    return policy_precision(metrics.get("device")) or "auto"


def backfill_run_files(out_dir, file_name: str, applies, summarize, device: str = "cpu", force: bool = False,
                       log=print) -> list:
    """Write `file_name` into every finished run under `out_dir`/runs that lacks one (all of them with
    `force`) and whose trained model `applies(model)` is true: `summarize(model, test_loader, dataset info,
    device, precision)` on the weights the run was tested with, in the precision and layout it was tested
    under (`tested_precision`), so a rebuilt file matches the one the run wrote. How attention.json and
    gates.json reach runs trained before their analysis existed. Returns the paths written."""
    from gradattn.fastdata import prepare_model, uses_channels_last
    from gradattn.train import read_json, resolve_device, write_json

    device = resolve_device(device)
    written = []
    runs = Path(out_dir) / "runs"
    for metrics_path in sorted(runs.glob("**/metrics.json")) if runs.exists() else []:
        run_dir = metrics_path.parent
        target = run_dir / file_name
        if (target.exists() and not force) or not (run_dir / "checkpoint.pt").exists():
            continue
        model, cfg = load_trained_model(run_dir, device=str(device))
        if not applies(model):
            continue
        info, loader = test_split_loader(cfg, device)
        precision = tested_precision(run_dir)
        model = prepare_model(model, device, channels_last=uses_channels_last(device, precision))   # its test's layout
        written.append(write_json(target, summarize(model, loader, info, device, precision)))
        log(f"{read_json(metrics_path)['run_key']}: wrote {target}")
    return written


def attention_by_class(model, cfg, split: str = "test", device: str = "cpu", batch_size: int = 256,
                       precision: str | None = None):
    """Mean attention (classes, layers, heads, 5, 5) of a GradAttn model over the images of each class
    of a split of the run's data (gradattn.attention), plus the per-class image counts. `precision`: the
    run's setting (`cfg.precision`) unless given; `tested_precision(run_dir)` is what its test used."""
    from gradattn import attention
    from gradattn.fastdata import DeviceLoader
    from gradattn.train import run_splits
    splits = run_splits(cfg)
    loader = DeviceLoader(getattr(splits, split), splits.info, batch_size, train=False, device=device)
    return attention.attention_by_class(model, loader, splits.info.num_classes, device,
                                        cfg.precision if precision is None else precision)


def class_attention_figure(maps, class_names, counts=None, title: str | None = None,
                           tap_names=("stem", "layer1", "layer2", "layer3", "layer4")):
    """One 5x5 heatmap per class (attention averaged over layers and heads; rows are queries)."""
    import numpy as np
    from matplotlib.figure import Figure
    maps = np.asarray(maps, dtype=float)
    if maps.ndim == 5:
        maps = maps.mean(axis=(1, 2))
    k = maps.shape[0]
    cols = min(k, 5)
    rows = (k + cols - 1) // cols
    fig = Figure(figsize=(2.3 * cols, 2.4 * rows + 0.6), layout="constrained")
    if title:
        fig.suptitle(title)
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    ticks = np.arange(len(tap_names))
    for i, ax in enumerate(axes.flat):
        if i >= k:
            ax.axis("off")
            continue
        ax.imshow(maps[i], cmap="magma", vmin=0, vmax=max(float(maps.max()), 1e-12))
        for r in range(maps.shape[1]):
            for c in range(maps.shape[2]):
                ax.text(c, r, f"{maps[i, r, c]:.2f}", ha="center", va="center", fontsize=5.5,
                        color="white" if maps[i, r, c] < 0.5 * maps.max() else "black")
        name = class_names[i] if i < len(class_names) else str(i)
        ax.set_title(f"{name}" + (f" (n={counts[i]})" if counts is not None else ""), fontsize=7)
        ax.set_xticks(ticks, tap_names if i // cols == rows - 1 else [], rotation=90, fontsize=6)
        ax.set_yticks(ticks, tap_names if i % cols == 0 else [], fontsize=6)
    return fig


def read_grad_norms(results: list[dict], models=None):
    """Parameter-gradient norms recorded during training (``TrainConfig.grad_sample_every``, the run's
    gradnorms.csv) of the given runs, as one DataFrame with model, protocol and seed columns.

    A run trained without sampling has no gradnorms.csv; it is listed in the frame's ``attrs["missing"]``
    (delete its run directory and train again with the profile's settings to get one)."""
    import pandas as pd
    frames, missing = [], []
    for r in results:
        if models is not None and r["model"] not in models:
            continue
        path = Path(r["run_dir"]) / "gradnorms.csv"
        if not path.exists():
            missing.append(r["run_key"])
            continue
        df = pd.read_csv(path)
        df.insert(0, "model", r["model"])
        df.insert(1, "protocol", r["protocol"])
        df.insert(2, "seed", r["seed"])
        frames.append(df)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["model", "protocol", "seed", "step", "epoch", "layer", "index", "grad_norm", "grad_rms"])
    out.attrs["missing"] = missing
    return out


# --------------------------------------------------------------------------------------------------
# gradient flow (03)
# --------------------------------------------------------------------------------------------------

def health_table(results: list[dict]):
    """Per run: the authors' health score with their denominator (hooks registered) and with the
    corrected one (layers actually measured), the corrected analysis's score, silent hooks, exact-zero
    layers and dead stages, all read from gradflow.json."""
    import pandas as pd
    rows = []
    for r in results:
        flow = read_gradflow(r)
        if flow is None:
            continue
        faithful, corrected = flow["faithful"], flow["corrected"]
        healthy = round(faithful["health_score"] * faithful["num_registered"])
        zeros = sum(1 for v in faithful["vanishing"] if v["mean_norm"] == 0.0)
        rows.append({
            "model": r["model"], "protocol": r["protocol"], "seed": r["seed"],
            "faithful: healthy / registered": f"{healthy}/{faithful['num_registered']} = "
                                              f"{100 * faithful['health_score']:.2f} %",
            "faithful: healthy / measured": f"{healthy}/{faithful['num_measured']} = "
                                            f"{100 * healthy / max(faithful['num_measured'], 1):.2f} %",
            "hooks that never fired": len(faithful["never_fired"]),
            "exact-zero layers": zeros,
            "corrected score": f"{100 * corrected['health_score']:.2f} % "
                               f"({corrected['num_measured']}/{corrected['num_registered']} measured)",
            "dead stages": ", ".join(flow.get("dead_layer_names") or []) or "none",
        })
    return pd.DataFrame(rows)


def dead_stage_table(results: list[dict]):
    """Per run: blocks whose ReLU output is identically zero and tokens that are constant (SPEC 7.5)."""
    import pandas as pd
    rows = []
    for r in results:
        flow = read_gradflow(r)
        if flow is None or "dead_layers" not in flow:
            continue
        dead = flow["dead_layers"]
        rows.append({"model": r["model"], "protocol": r["protocol"], "seed": r["seed"],
                     "dead blocks": ", ".join(dead["dead_layers"]) or "none",
                     "constant tokens": ", ".join(map(str, dead["constant_tokens"])) or "none",
                     "samples": dead["num_samples"], "BN mode": dead["bn_mode"]})
    return pd.DataFrame(rows)



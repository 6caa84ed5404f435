"""Execute the companion's notebooks, render them to HTML, and write the site's index (`make paper`).

The notebooks in ``notebooks/`` are thin: they call the library and show results. This module is the
glue around them:

- :func:`run_paper` executes every notebook with papermill for one profile (``02_train`` once per
  dataset, into ``outputs/notebooks/02_train_<dataset>.ipynb``), stops at the first failing notebook
  with its name and the failing cell's error (:class:`NotebookFailed`), then renders the HTML site.
- :func:`render_site` converts executed notebooks to ``outputs/html/*.html`` with nbconvert and writes
  ``outputs/html/index.html`` linking them (``make html``).
- :func:`refresh_committed` re-executes the committed notebooks in place with their default (quick)
  parameters so that GitHub readers and nbval see real outputs; volatile metadata is stripped.
- A few presentation helpers used by the notebooks themselves (:func:`project_root`,
  :func:`outputs_dir`, :func:`resolve_device`, :func:`profile_label`, :func:`titled`, :func:`show_table`).

Every file is written atomically (temporary file in the same folder, then ``os.replace``).
papermill, nbformat, nbconvert and IPython are imported lazily so ``import gradattn`` needs only
torch and numpy.

Command line: ``python -m gradattn.report {paper,html,refresh} [--profile quick|paper] ...``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import html as _html
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from gradattn.fileio import atomic_write_text

# Order of the site. 02_train is parameterised and executed once per dataset.
NOTEBOOKS = ("00_overview", "01_architecture", "02_train", "03_gradient_flow", "04_pe_study",
             "05_results")
TRAIN_NOTEBOOK = "02_train"
ENV_OUTPUTS = "GRADATTN_OUTPUTS"          # overrides <project>/outputs (used by `make test` for nbval)
ENV_ROOT = "GRADATTN_PROJECT_ROOT"        # overrides the project-root search
FALLBACK_LABELS = {
    "quick": "quick profile: not the paper's numbers",
    "paper": "paper profile: the paper's protocol on the full datasets",
}


class NotebookFailed(RuntimeError):
    """A notebook raised while executing; names the notebook, the cell and the error."""

    def __init__(self, notebook: str, cell: int | None, ename: str, evalue: str, kept: Path | None):
        self.notebook, self.cell, self.ename, self.evalue, self.kept = notebook, cell, ename, evalue, kept
        where = f"cell {cell}" if cell is not None else "an unknown cell"
        msg = f"notebook {notebook} failed in {where}: {ename}: {evalue}"
        if kept is not None:
            msg += f"\n  the executed notebook (with the traceback) is kept at {kept}"
        super().__init__(msg)


# --------------------------------------------------------------------------------------------------
# paths and small helpers shared by the notebooks
# --------------------------------------------------------------------------------------------------

def _looks_like_root(path: Path) -> bool:
    return (path / "gradattn" / "__init__.py").is_file() and (path / "notebooks").is_dir()


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The repository root: $GRADATTN_PROJECT_ROOT, else the first folder at or above ``start`` (default:
    the working directory, which is ``notebooks/`` under Jupyter, nbval and papermill) holding
    ``gradattn/`` and ``notebooks/``, else the working directory itself (an installed package on
    Colab/Binder without a checkout)."""
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser().resolve()
    here = Path(start or os.getcwd()).resolve()
    for candidate in (here, *here.parents):
        if _looks_like_root(candidate):
            return candidate
    return here


def outputs_dir(root: str | os.PathLike | None = None) -> Path:
    """Where runs, results.csv, executed notebooks and the HTML site live: $GRADATTN_OUTPUTS, else
    ``<project root>/outputs``."""
    env = os.environ.get(ENV_OUTPUTS)
    if env:
        return Path(env).expanduser().resolve()
    return (Path(root) if root else project_root()) / "outputs"


def resolve_data_root(data_root: str | os.PathLike | None = None) -> str:
    """The data root as an absolute path: the argument, else $GRADATTN_DATA, else <project root>/data.

    (gradattn.data's own default is ./data relative to the working directory, which is notebooks/ under
    Jupyter, so notebooks resolve it here.)"""
    if data_root not in (None, ""):
        return str(Path(data_root).expanduser().resolve())
    env = os.environ.get("GRADATTN_DATA")
    return str(Path(env).expanduser().resolve()) if env else str(project_root() / "data")


def resolve_device(device: str | None = "auto") -> str:
    """"auto" -> "cuda" when a GPU is visible (Colab with a GPU runtime), else "cpu" (gradattn.fastdata)."""
    from gradattn.fastdata import resolve_device as resolve
    return str(resolve(device))


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


def _log(message: str) -> None:
    print(message, flush=True)


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
# runs: train-or-read (02-05), tables and per-class attention
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
        how = "read (finished earlier)" if result.get("skipped") else f"trained in {seconds:.1f} s"
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


def attention_by_class(model, cfg, split: str = "test", device: str = "cpu", batch_size: int = 256):
    """Mean attention (classes, layers, heads, 5, 5) of a GradAttn model over the images of each class
    of a split of the run's data (gradattn.attention), plus the per-class image counts."""
    from gradattn import attention
    from gradattn.fastdata import DeviceLoader
    from gradattn.train import run_splits
    splits = run_splits(cfg)
    loader = DeviceLoader(getattr(splits, split), splits.info, batch_size, train=False, device=device)
    return attention.attention_by_class(model, loader, splits.info.num_classes, device)


def attention_records(df, root: Path | None = None) -> list[tuple[dict, dict]]:
    """(run metadata, attention summary) for the runs of `df` (as from collect_results) that have one:
    this machine's outputs/runs/<run>/attention.json first, else the committed results/attention/ copy."""
    from gradattn.results import attention_file_name
    root = Path(root) if root else project_root()
    records = []
    for r in df.to_dict("records") if len(df) else []:
        for path in (outputs_dir(root) / "runs" / r["run_key"] / "attention.json",
                     root / "results" / "attention" / attention_file_name(r["run_key"])):
            if path.exists():
                meta = {k: (r.get(k) if isinstance(r.get(k), (str, int)) else "") for k in (
                    "run_key", "dataset", "data", "model", "setting", "protocol", "seed")}
                records.append((meta, json.loads(path.read_text())))
                break
    return records


ATTENTION_GROUP = ["dataset", "model", "setting", "protocol"]


def attention_received_table(records):
    """Share of attention each tap receives (gradattn.attention), mean over seeds, per dataset, model,
    setting, protocol and encoder layer; one column per tap, plus the number of seeds."""
    import pandas as pd

    from gradattn.attention import received_table
    from gradattn.models.blocks import TAP_NAMES
    table = received_table(records)
    if table.empty:
        return pd.DataFrame()
    table = _label_subsets(table)
    key = [*ATTENTION_GROUP, "layer"]
    shares = table.pivot_table(index=key, columns="tap", values="received", aggfunc="mean")[list(TAP_NAMES)]
    return shares.join(table.groupby(key)["seed"].nunique().rename("seeds")).reset_index()


def attention_maps_by_group(records) -> dict:
    """{dataset: (labels, maps (groups, 5, 5), seeds)}: each model/setting/protocol's attention map,
    averaged over encoder layers, heads, test images and seeds, for class_attention_figure."""
    import numpy as np
    import pandas as pd

    if not records:
        return {}
    rows = [{**meta, "map": np.asarray(summary["by_layer"]).mean(axis=0)} for meta, summary in records]
    table = _label_subsets(pd.DataFrame(rows))
    out = {}
    for dataset, group in table.groupby("dataset", sort=True):
        labels, maps, seeds = [], [], []
        for (model, setting, protocol), runs in group.groupby(ATTENTION_GROUP[1:], sort=True):
            labels.append(f"{model}{'-' + setting if setting else ''} · {protocol}")
            maps.append(np.mean(np.stack(runs["map"].tolist()), axis=0))
            seeds.append(runs["seed"].nunique())
        out[dataset] = (labels, np.stack(maps), seeds)
    return out


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
# gradient flow (03) and results (05) tables
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


def collect_results(profile: str, root: Path | None = None):
    """Our runs for a profile: outputs/results.csv (this machine) combined with the committed
    results/results.csv, each row labelled with its provenance; a run present in both is taken from
    outputs/. The quick profile keeps the embedded-sample rows, the paper profile the full-data ones."""
    import pandas as pd

    from gradattn.results import load_results, sample_mask
    root = Path(root) if root else project_root()
    frames = []
    for path, provenance in ((outputs_dir(root) / "results.csv", "this machine (outputs/results.csv)"),
                             (root / "results" / "results.csv", "committed (results/results.csv)")):
        if path.exists():
            df = load_results(path)
            df["provenance"] = provenance
            frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["run_key", "dataset", "model", "protocol", "seed", "top1", "provenance"])
    df = pd.concat(frames, ignore_index=True).drop_duplicates("run_key", keep="first")
    sample = sample_mask(df)
    return df[sample if profile == "quick" else ~sample].reset_index(drop=True)


RUN_GROUP = ("dataset", "data", "model", "setting", "protocol")
PAIR_GROUP = ("dataset", "data", "protocol", "setting")


def _label_subsets(table):
    """Show `data` (the dataset, marked "(train subset)" where the files were one) as the dataset."""
    if "data" in table:
        table = table.assign(dataset=table["data"].where(table["data"].notna(), table["dataset"]))
        table = table.drop(columns="data")
    return table


def results_beside_paper(df):
    """Per dataset x model x setting x protocol: our mean ± 95 % CI over seeds (n) and the seeds' std
    beside the paper's single run. `setting` (gradattn.results.run_setting) keeps e.g. 8-epoch and small-stem runs apart."""
    import pandas as pd

    from gradattn import stats
    if df.empty:
        return pd.DataFrame()
    by = [c for c in RUN_GROUP if c in df.columns]
    summary = stats.summarize(df, by=by, value="top1")
    if "setting" not in summary:
        summary["setting"] = ""
    summary["run"] = [m + (f"-{st}" if st else "") for m, st in zip(summary["model"], summary["setting"])]
    variant = df.groupby(by)["variant"].first() if "variant" in df else {}   # one per setting
    summary["paper top-1"] = [paper_reference(d, m, variant.get(tuple(row))) for d, m, row in zip(
        summary["dataset"], summary["model"], summary[by].itertuples(index=False))]
    if "provenance" in df:
        source = df.groupby(by)["provenance"].agg(lambda p: " + ".join(sorted({v.split(" (")[0] for v in p})))
        summary["runs from"] = [source.get(tuple(row), "") for row in summary[by].itertuples(index=False)]
    else:
        summary["runs from"] = ""
    summary["ours: mean ± 95 % CI"] = [
        f"{m:.2f}" + ("" if n < 2 else f" ± {h:.2f}") + f" (n={n})"
        for m, h, n in zip(summary["mean"], summary["half_width"], summary["n"])]
    summary["paper recovered"] = [recovered(*row) for row in zip(
        summary["protocol"], summary["paper top-1"], summary["ci_low"], summary["ci_high"], summary["n"])]
    summary = _label_subsets(summary)
    summary["std"] = summary["std"].round(2)
    return summary[["dataset", "model", "setting", "protocol", "ours: mean ± 95 % CI", "std", "paper top-1",
                    "paper recovered", "runs from", "run", "mean", "half_width", "ci_low", "ci_high", "n"]]


def paper_reference(dataset: str, model: str, variant=None) -> float | None:
    """The paper's top-1 to set beside a run, or None: a run on a dataset variant (a non-empty string)
    trains on other data than the paper's, so its number is no reference."""
    from gradattn import paper
    return None if isinstance(variant, str) and variant else paper.paper_top1(dataset, model)


def recovered(protocol: str, published, ci_low, ci_high, n) -> str:
    """Whether the paper's number lies within our 95 % CI over seeds: the test of "the published numbers
    are recovered within seed noise". Only the paper protocol is expected to recover them."""
    import pandas as pd
    if protocol != "paper" or published is None or pd.isna(published):
        return ""
    if n < 2:
        return "one seed"
    return "yes" if ci_low <= published <= ci_high else ("no: ours higher" if ci_low > published else
                                                          "no: ours lower")


def paired_table(df, baseline: str = "resnet18", beside_paper: bool = False):
    """Paired difference (model − baseline, points) per dataset, protocol and setting, matched on seed.

    With `beside_paper`, paper-protocol rows also get the paper's own difference for the same pair ("paper
    gain", one run each, SPEC 4.2) and whether our paired 95 % CI holds it ("paper gain in our CI"): the
    per-dataset test of the wins behind "5 of 8" (Tiny ImageNet's +5.07, Fashion-MNIST's +11.07)."""
    from gradattn import stats
    if not len(df):
        return df.iloc[0:0]
    by = [c for c in PAIR_GROUP if c in df.columns]
    pairs = stats.paired_vs_baseline(df, baseline=baseline, by=by)
    if beside_paper and len(pairs):
        variant = df.groupby(by, dropna=False)["variant"].first() if "variant" in df else {}
        keys = list(pairs[by].itertuples(index=False, name=None))
        pairs["paper gain"] = [
            paper_gain(d, m, baseline) if p == "paper" and paper_reference(d, baseline, variant.get(k)) is not None
            else None for d, m, p, k in zip(pairs["dataset"], pairs["model"], pairs["protocol"], keys)]
        pairs["paper gain in our CI"] = [recovered(*row) for row in zip(
            pairs["protocol"], pairs["paper gain"], pairs["ci_low"], pairs["ci_high"], pairs["n"])]
    return _label_subsets(pairs)


def paper_gain(dataset: str, model: str, baseline: str = "resnet18") -> float | None:
    """The paper's top-1 of `model` minus its `baseline`'s on `dataset` (points), or None if either is missing."""
    from gradattn import paper
    ours, base = paper.paper_top1(dataset, model), paper.paper_top1(dataset, baseline)
    return None if ours is None or base is None else round(ours - base, 2)


PE_MODELS = ("gradattn_nope", "gradattn_lpe", "gradattn_rope")      # the three encodings at d=256
PE_PAIRS = (("gradattn_lpe", "gradattn_nope"), ("gradattn_rope", "gradattn_nope"), ("gradattn_rope", "gradattn_lpe"))


def pe_pairs(df):
    """Paired differences (points, matched seeds) between the three positional encodings at equal capacity
    (d=256), each pair, per dataset, protocol and setting. The paper compared one seed each, with a 100x smaller
    No-PE (SPEC 6); this is the check of whether a ranking of encodings exceeds seed noise."""
    import pandas as pd

    from gradattn import stats
    pe = df[df["model"].isin(PE_MODELS)] if len(df) else df
    if not len(pe):
        return pd.DataFrame()
    by = [c for c in PAIR_GROUP if c in pe.columns]
    tables = [stats.paired_vs_baseline(pe[pe["model"].isin(pair)], baseline=pair[1], by=by) for pair in PE_PAIRS]
    tables = [t for t in tables if len(t)]
    if not tables:
        return pd.DataFrame()
    pairs = pd.concat(tables, ignore_index=True).sort_values(by, kind="stable", ignore_index=True)
    return _label_subsets(pairs)


def coverage_table(df, datasets=None, seeds_needed: int = 3):
    """How much of the reproduction grid (gradattn.profiles.reproduction_grid) the runs in `df` cover.

    One row per cell (dataset, protocol, stem, model): the seeds finished in each setting (e.g. "e8: 3",
    8-epoch runs) and `missing`, the seeds the best-covered setting still lacks to reach `seeds_needed`.
    Runs on a dataset variant (CIFAR-10's 4,000-image subsets) train on other data and do not count."""
    import pandas as pd

    from gradattn.profiles import OFFLINE_DATASETS, reproduction_grid
    from gradattn.results import run_setting
    runs = df[df["variant"].isna() | df["variant"].astype(str).eq("")] if "variant" in df else df
    seeds: dict[tuple, dict[str, set]] = {}
    for r in runs.to_dict("records"):
        stem = r.get("stem") if isinstance(r.get("stem"), str) else "imagenet"   # older rows: the paper's
        cell = (r["dataset"], r["protocol"], stem, r["model"])
        setting = r["setting"] if "setting" in r else run_setting(r["model"], r["model_tag"])
        seeds.setdefault(cell, {}).setdefault(setting, set()).add(int(r["seed"]))
    rows = []
    for cell in reproduction_grid(datasets or OFFLINE_DATASETS):
        done = seeds.get(tuple(cell.values()), {})
        best = max((len(s) for s in done.values()), default=0)
        rows.append({**cell, "seeds": best, "missing": max(0, seeds_needed - best),
                     "runs (setting: seeds)": "; ".join(f"{st or 'paper settings'}: {len(s)}"
                                                        for st, s in sorted(done.items()))})
    return pd.DataFrame(rows)


def coverage_matrix(coverage, seeds_needed: int = 3):
    """coverage_table as (dataset · protocol · stem) x models: "k/3" seeds per cell, blank outside the grid."""
    rows = coverage["dataset"] + " · " + coverage["protocol"] + " · " + coverage["stem"] + " stem"
    cells = coverage.assign(cell_row=rows, cell=[f"{k}/{seeds_needed}" for k in coverage["seeds"]])
    matrix = cells.pivot(index="cell_row", columns="model", values="cell")
    matrix = matrix.reindex(index=list(dict.fromkeys(rows)), columns=list(dict.fromkeys(coverage["model"])))
    matrix.index.name, matrix.columns.name = "dataset · protocol · stem", None
    return matrix.fillna("")


def jpeg_cost_table(df):
    """What the JPEG copy of CIFAR-10 costs: the same 4,000 training images, lossless vs JPEG re-encoded
    (variants of gradattn.data), per model and setting, and the paired difference lossless − JPEG."""
    import pandas as pd

    from gradattn import stats
    from gradattn.data.sources import CIFAR_4000_VARIANTS as CIFAR_4000
    from gradattn.results import run_setting
    if df.empty or "variant" not in df:
        return pd.DataFrame()
    runs = df[df["variant"].isin(CIFAR_4000)].copy()
    if runs.empty:
        return pd.DataFrame()
    runs["common"] = [run_setting(m, t).replace(v, "").strip("-") for m, t, v in
                      zip(runs["model"], runs["model_tag"], runs["variant"])]
    rows = []
    for (model, common, protocol), group in runs.groupby(["model", "common", "protocol"], sort=True):
        side = {v: group[group["variant"] == v] for v in CIFAR_4000}
        row = {"model": model, "setting": common, "protocol": protocol}
        for v in CIFAR_4000:
            if len(side[v]):
                ci = stats.mean_ci(side[v]["top1"].tolist())
                row[f"{v} top-1"] = f"{ci['mean']:.2f}" + ("" if ci["n"] < 2 else f" ± {ci['half_width']:.2f}") \
                    + f" (n={ci['n']})"
            else:
                row[f"{v} top-1"] = "not run"
        try:
            diff = stats.paired_difference(side["lossless4000"]["top1"].tolist(), side["jpeg4000"]["top1"].tolist(),
                                           side["lossless4000"]["seed"].tolist(), side["jpeg4000"]["seed"].tolist())
            row.update({"lossless − JPEG (points)": round(diff["mean"], 2), "ci_low": round(diff["ci_low"], 2),
                        "ci_high": round(diff["ci_high"], 2), "pairs": diff["n"],
                        "excludes_zero": diff["excludes_zero"]})
        except ValueError:
            row.update({"lossless − JPEG (points)": None, "pairs": 0})
        rows.append(row)
    return pd.DataFrame(rows)


def claim_verdicts(df, profile: str):
    """One row per claim of gradattn.paper.CLAIMS: reproduced / not reproduced / inconclusive / not tested here, with
    the evidence from our runs (df as from collect_results) and the reason."""
    import pandas as pd

    from gradattn import paper, stats
    full = df if profile != "quick" else df.iloc[0:0]
    why_quick = ("quick profile: a 2,000-image sample for a few epochs cannot test an accuracy claim; "
                 "run `make paper PROFILE=paper`")
    rows = []

    # 5 of 8 wins
    if full.empty:
        rows.append(("wins_5_of_8", "not tested here", "", why_quick))
    else:
        pairs = paired_table(full[full["protocol"] == "paper"])
        datasets = sorted(full[full["protocol"] == "paper"]["dataset"].unique())
        wins = sorted({d for d, m, lo in zip(pairs.get("dataset", []), pairs.get("model", []),
                                               pairs.get("ci_low", [])) if m in paper.GRADATTN_MODELS and lo > 0})
        evidence = f"significant GradAttn wins (paper protocol, paired 95 % CI > 0): {len(wins)} of " \
                   f"{len(datasets)} datasets run under it ({', '.join(wins) or 'none'})"
        if len(datasets) < 8:
            rows.append(("wins_5_of_8", "not tested here", evidence,
                         f"only {len(datasets)} of the 8 datasets are present here"))
        else:
            rows.append(("wins_5_of_8", "reproduced" if len(wins) >= 5 else "not reproduced", evidence, ""))

    # +11.07 on FashionMNIST
    fm = full[(full["dataset"] == "fashionmnist")] if not full.empty else full
    if fm.empty:
        rows.append(("fmnist_plus_11_07", "not tested here", "",
                     why_quick if profile == "quick" else "no full Fashion-MNIST runs present"))
    else:
        pairs = paired_table(fm)
        pairs = pairs[pairs["model"].isin(paper.GRADATTN_MODELS)] if not pairs.empty else pairs
        if pairs.empty:
            rows.append(("fmnist_plus_11_07", "not tested here", "", "no paired ResNet-18 / GradAttn seeds"))
        else:
            if "setting" not in pairs:
                pairs = pairs.assign(setting="")
            seeded = pairs.assign(enough=pairs["n"] >= 2)
            best = (seeded.sort_values(["enough", "mean"], ascending=False).groupby("protocol").head(1))
            evidence = "; ".join(f"{p}{f' ({st})' if st else ''}: {m} {mu:+.2f} [{lo:+.2f}, {hi:+.2f}], n={n}"
                                 for p, st, m, mu, lo, hi, n in
                                 zip(best["protocol"], best["setting"], best["model"], best["mean"], best["ci_low"],
                                     best["ci_high"], best["n"]))
            on_paper = best[(best["protocol"] == "paper") & best["enough"]]
            if on_paper.empty:
                rows.append(("fmnist_plus_11_07", "not tested here", evidence,
                             "the claim is about the paper's protocol: needs paper-protocol runs of ResNet-18 "
                             "and GradAttn with at least 2 matched seeds"))
            else:
                low, high = float(on_paper["ci_low"].iloc[0]), float(on_paper["ci_high"].iloc[0])
                contains_claim, contains_zero = low <= 11.07 <= high, low <= 0 <= high
                verdict = ("not reproduced" if not contains_claim else
                           "inconclusive" if contains_zero else "reproduced")
                setting = on_paper["setting"].iloc[0]
                rows.append(("fmnist_plus_11_07", verdict, evidence,
                             "best GradAttn − ResNet-18, paired over seeds; reproduced when the paper-protocol "
                             "interval contains +11.07 and excludes 0, inconclusive when it holds both (too few "
                             "seeds or too much seed noise), not reproduced when it excludes +11.07"
                             + (f"; these runs depart from the paper's settings ({setting})" if setting else "")))

    # controlled instabilities: the faithful score gap vs the corrected one (data-independent artefact)
    if df.empty or "health_score_faithful" not in df:
        rows.append(("controlled_instabilities", "not tested here", "", "no runs with gradient-flow analysis"))
    else:
        h = df.dropna(subset=["health_score_faithful", "health_score_corrected"])
        ga = h[h["model"].isin(paper.GRADATTN_MODELS)]
        rn = h[h["model"] == "resnet18"]
        if ga.empty or rn.empty:
            rows.append(("controlled_instabilities", "not tested here", "", "need ResNet-18 and GradAttn runs"))
        else:
            f_gap = 100 * (rn["health_score_faithful"].mean() - ga["health_score_faithful"].mean())
            c_gap = 100 * (rn["health_score_corrected"].mean() - ga["health_score_corrected"].mean())
            dead = int(pd.to_numeric(ga.get("num_dead_layers"), errors="coerce").fillna(0).sum())
            evidence = (f"ResNet-18 minus GradAttn health score: faithful {f_gap:+.1f} pts, corrected "
                        f"(measured layers only) {c_gap:+.1f} pts; dead GradAttn layers: {dead}"
                        + "".join(f"; {line}" for line in _health_by_dataset(ga, rn)))
            verdict = "not reproduced" if c_gap < f_gap - 1 else "reproduced"
            rows.append(("controlled_instabilities", verdict, evidence,
                         "the faithful gap comes from hooks that never fire (SPEC 7.4) and exact-zero dead "
                         "stages (7.5); 'not reproduced' when correcting the denominator removes most of it"
                         + ("; quick profile: sample data" if profile == "quick" else "")))

    # PE dataset-dependence
    pe = full[full["model"].isin(PE_MODELS)] if not full.empty else full
    winners = {}                                  # (protocol, setting) -> {dataset: best PE model by mean}
    if not pe.empty:
        by = [c for c in ("protocol", "setting", "data" if "data" in pe.columns else "dataset") if c in pe.columns]
        summary = stats.summarize(pe, by=(*by, "model"), value="top1")
        for key, group in summary.groupby(by, sort=True):
            key = key if isinstance(key, tuple) else (key,)
            if set(group["model"]) == set(PE_MODELS):          # all three, same protocol and setting
                best = group.sort_values("mean", ascending=False).iloc[0]
                protocol_setting = (key[0], key[1] if len(by) == 3 else "")
                winners.setdefault(protocol_setting, {})[key[-1]] = best["model"]
    compared = {k: w for k, w in winners.items() if len(w) >= 2}
    reversals = _pe_reversals(pe_pairs(pe))
    if not compared and not reversals:
        rows.append(("pe_dataset_dependent", "not tested here", "",
                     why_quick if profile == "quick" else
                     "needs all three PE variants, same protocol and setting, on at least two datasets, or two of "
                     "them whose order reverses between datasets beyond seed noise"))
    else:
        verdict = ("reproduced" if reversals else
                   "inconclusive" if any(len(set(w.values())) > 1 for w in compared.values()) else "not reproduced")
        evidence = "; ".join([" ".join(v for v in k if v) + ": best by mean " +
                              ", ".join(f"{d} {m}" for d, m in sorted(w.items())) for k, w in sorted(compared.items())]
                             + (reversals or ["no pair of encodings reverses order with both paired 95 % CIs "
                                              "excluding 0"]))
        rows.append(("pe_dataset_dependent", verdict, evidence,
                     "equal capacity (d=256), within one protocol and setting; reproduced when some pair of "
                     "encodings is significantly better on one dataset and significantly worse on another (paired "
                     "95 % CIs), inconclusive when only the best-by-mean variant changes, not reproduced when "
                     "the same variant is best everywhere; table in 05_results and 04_pe_study"))
    table = pd.DataFrame(rows, columns=["claim", "verdict", "evidence", "why"])
    table.insert(1, "statement", [paper.CLAIMS[c] for c in table["claim"]])
    return table


def _pe_reversals(pairs) -> list[str]:
    """Pairs of encodings whose paired difference is significantly positive on one dataset and significantly
    negative on another, within one protocol and setting: "dataset dependent" beyond seed noise (paired 95 % CIs).

    A pair counts wherever both of its encodings ran, even on a dataset that lacks the third one.
    """
    out = []
    if pairs.empty:
        return out
    setting = pairs["setting"] if "setting" in pairs else ""
    significant = pairs.assign(setting=setting)[pairs["excludes_zero"].astype(bool)]
    for (protocol, st), sub in significant.groupby(["protocol", "setting"], sort=True):
        for (model, baseline), g in sub.groupby(["model", "baseline"], sort=True):
            up, down = sorted(g[g["mean"] > 0]["dataset"]), sorted(g[g["mean"] < 0]["dataset"])
            if up and down:
                out.append(f"{protocol}{f' ({st})' if st else ''}: {model} − {baseline} > 0 on {', '.join(up)}, "
                           f"< 0 on {', '.join(down)}")
    return out


def _health_by_dataset(gradattn_runs, resnet_runs) -> list[str]:
    """Per dataset and protocol where GradAttn's corrected health score is below ResNet-18's: the gap and
    the top-1 difference beside it, so a reader sees whether a lower score went with better accuracy."""
    key = ["data" if "data" in gradattn_runs else "dataset", "protocol"] + (["setting"] if "setting" in
                                                                           gradattn_runs else [])
    columns = ["health_score_corrected", "top1"]
    both = gradattn_runs.groupby(key, sort=True)[columns].mean().merge(
        resnet_runs.groupby(key)[columns].mean(), left_index=True, right_index=True, suffixes=("", "_resnet"))
    lines = []
    for group, r in both.iterrows():
        group = group if isinstance(group, tuple) else (group,)
        gap = 100 * (r["health_score_corrected_resnet"] - r["health_score_corrected"])
        if gap > 0.05:
            lines.append(f"{' '.join(str(v) for v in group if v)}: corrected gap {gap:+.1f} pts with GradAttn top-1 "
                         f"{r['top1'] - r['top1_resnet']:+.2f} vs ResNet-18 (means over runs)")
    return lines


# --------------------------------------------------------------------------------------------------
# execution
# --------------------------------------------------------------------------------------------------

@dataclass
class NotebookJob:
    """One papermill execution: which notebook, with which parameters, into which file."""

    name: str                     # notebook stem in notebooks/, e.g. "02_train"
    output: Path                  # executed notebook
    parameters: dict = field(default_factory=dict)
    label: str = ""               # shown in progress lines, e.g. "02_train [fashionmnist]"


def _error_cell(nb) -> tuple[int | None, str, str]:
    """Index (1-based, code cells counted as shown in Jupyter's In [n]) and error of the first error."""
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return cell.get("execution_count") or index, out.get("ename", "?"), out.get("evalue", "")
    return None, "", ""


def count_error_cells(nb) -> int:
    """How many cells of an executed notebook hold an error output."""
    return sum(any(o.get("output_type") == "error" for o in c.get("outputs", [])) for c in nb.cells)


def execute_notebook(source: str | os.PathLike, output: str | os.PathLike, parameters: dict | None = None,
                     cwd: str | os.PathLike | None = None, progress: bool = True,
                     kernel_name: str | None = None, env: dict | None = None, log_output: bool = False):
    """Execute ``source`` with papermill into ``output`` (atomically) and return the executed notebook.

    On an error the executed notebook is kept next to ``output`` as ``<stem>.failed.ipynb`` and
    :class:`NotebookFailed` names the notebook, the cell (Jupyter's ``In [n]``) and the error."""
    try:
        import papermill as pm
        from papermill.exceptions import PapermillExecutionError
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("executing notebooks needs papermill: pip install -e '.[notebooks]'") from exc
    source, output = Path(source), Path(output)
    if not source.is_file():
        raise FileNotFoundError(f"notebook {source} does not exist; run from the repository root "
                                f"(which holds notebooks/) or set {ENV_ROOT}")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.partial.ipynb")
    failed = output.with_name(f"{output.stem}.failed.ipynb")
    saved_env = {}
    for key, value in (env or {}).items():      # the kernel inherits os.environ
        saved_env[key] = os.environ.get(key)
        os.environ[key] = value
    try:
        nb = pm.execute_notebook(str(source), str(tmp), parameters=parameters or {},
                                 cwd=str(cwd or source.parent), progress_bar=progress,
                                 kernel_name=kernel_name, log_output=log_output)
    except PapermillExecutionError as exc:
        os.replace(tmp, failed)
        raise NotebookFailed(source.name, exc.exec_count, exc.ename, exc.evalue, failed) from None
    except BaseException:
        if tmp.exists():
            os.replace(tmp, failed)
        raise
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    os.replace(tmp, output)
    if failed.exists():
        failed.unlink()
    return nb


def train_datasets(profile: str, data_root: str | None = None) -> tuple[list[str], list[dict]]:
    """Datasets 02_train runs for a profile, and the rows of datasets that are absent (skipped).

    quick: the profile's datasets (embedded sample data, always present). paper: every dataset the
    profile lists that is present under the data root; absent ones are returned as skipped rows so the
    site reports them as absent (never silently replaced)."""
    from gradattn.profiles import PROFILES
    prof = PROFILES[profile]
    wanted = list(getattr(prof, "datasets", ()) or ())
    if getattr(prof, "sample", False) or profile == "quick":
        return wanted, []
    from gradattn.data import data_status
    rows = data_status(data_root)
    present, skipped = [], []
    by_name = {str(r.get("dataset", r.get("name"))): r for r in rows}
    for name in wanted or list(by_name):
        row = by_name.get(name, {})
        if row.get("present", row.get("status") == "present"):
            present.append(name)
        else:
            skipped.append({"dataset": name, **row})
    return present, skipped


def plan(profile: str = "quick", data_root: str | None = None, device: str = "auto",
         datasets: list[str] | None = None, out: Path | None = None) -> tuple[list[NotebookJob], list[dict]]:
    """The list of notebook executions for ``make paper`` (and the datasets skipped as absent)."""
    out = Path(out) if out else outputs_dir()
    nb_out = out / "notebooks"
    common = {"profile": profile, "data_root": data_root, "device": device}
    if datasets is None:
        datasets, skipped = train_datasets(profile, data_root)
    else:
        skipped = []
    jobs = []
    for name in NOTEBOOKS:
        if name == TRAIN_NOTEBOOK:
            for ds in datasets:
                jobs.append(NotebookJob(name, nb_out / f"{name}_{ds}.ipynb",
                                        {**common, "dataset": ds}, f"{name} [{ds}]"))
        else:
            jobs.append(NotebookJob(name, nb_out / f"{name}.ipynb", dict(common), name))
    return jobs, skipped


def run_paper(profile: str = "quick", data_root: str | None = None, device: str = "auto",
              datasets: list[str] | None = None, root: Path | None = None, out: Path | None = None,
              html: bool = True, progress: bool = True, log=None) -> dict:
    """Execute every notebook for ``profile`` (stopping at the first failure), then render the site.

    Returns ``{"executed": [(label, path, seconds)], "skipped": [...], "index": path}``."""
    log = log or _log
    root = Path(root) if root else project_root()
    out = Path(out) if out else outputs_dir(root)
    data_root = resolve_data_root(data_root) if data_root else None   # notebooks run in notebooks/
    jobs, skipped = plan(profile, data_root, device, datasets, out)
    for row in skipped:
        log(f"absent: {row['dataset']} is not under the data root and is reported as absent "
            f"(see 00_overview for how to get it)")
    executed = []
    env = {ENV_OUTPUTS: str(out)}
    if progress:   # stream what the notebooks print (one line per training run) while they run
        import logging
        pm_log = logging.getLogger("papermill")
        if not pm_log.handlers:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("    %(message)s"))
            noise = ("Executing Cell", "Ending Cell", "Executing notebook", "Input Notebook", "Output Notebook",
                     "Working directory", "<IPython.core.display", "<Figure")
            handler.addFilter(lambda record: not str(record.getMessage()).lstrip().startswith(noise)
                              and str(record.getMessage()).strip() != "")
            pm_log.addHandler(handler)
            pm_log.setLevel(logging.INFO)
            pm_log.propagate = False
    t_all = time.perf_counter()
    for i, job in enumerate(jobs, 1):
        log(f"[{i}/{len(jobs)}] executing {job.label} ...")
        t0 = time.perf_counter()
        execute_notebook(root / "notebooks" / f"{job.name}.ipynb", job.output, job.parameters,
                         cwd=root / "notebooks", progress=False, env=env, log_output=progress)
        seconds = time.perf_counter() - t0
        executed.append((job.label, job.output, seconds))
        log(f"[{i}/{len(jobs)}] {job.label} done in {seconds:.1f} s -> {job.output}")
    log(f"all {len(jobs)} notebooks executed in {time.perf_counter() - t_all:.1f} s")
    index = render_site(out, profile=profile, log=log) if html else None
    return {"executed": executed, "skipped": skipped, "index": index}


# --------------------------------------------------------------------------------------------------
# HTML site
# --------------------------------------------------------------------------------------------------

def _nb_title(nb, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _sort_key(path: Path) -> tuple:
    stem = path.stem
    for i, name in enumerate(NOTEBOOKS):
        if stem == name or stem.startswith(name + "_"):
            return (i, stem)
    return (len(NOTEBOOKS), stem)


def render_html(notebook: str | os.PathLike, html_path: str | os.PathLike) -> Path:
    """Render one notebook to a standalone HTML page (nbconvert's lab template), atomically."""
    import nbformat
    from nbconvert import HTMLExporter
    nb = nbformat.read(str(notebook), as_version=4)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    return atomic_write_text(html_path, body)


def render_site(out: Path | None = None, profile: str | None = None, source: Path | None = None,
                log=None) -> Path:
    """Render every executed notebook under ``<out>/notebooks`` (or, when none exist, the committed
    notebooks in ``notebooks/``, labelled so) into ``<out>/html`` and write ``index.html``."""
    import nbformat
    log = log or _log
    out = Path(out) if out else outputs_dir()
    src = Path(source) if source else out / "notebooks"
    notebooks = sorted((p for p in src.glob("*.ipynb") if not p.name.endswith(".failed.ipynb")
                        and not p.name.startswith(".")), key=_sort_key) if src.is_dir() else []
    provenance = f"executed notebooks in {src}"
    if not notebooks and source is None:
        src = project_root() / "notebooks"
        notebooks = sorted(src.glob("[0-9]*.ipynb"), key=_sort_key)
        provenance = ("the committed notebooks in notebooks/ with their committed quick-profile outputs "
                      "(run `make paper` to execute them here)")
    if not notebooks:
        raise FileNotFoundError(f"no notebooks to render in {src}; run `make paper` first")
    html_dir = out / "html"
    entries = []
    for i, path in enumerate(notebooks, 1):
        nb = nbformat.read(str(path), as_version=4)
        page = html_dir / f"{path.stem}.html"
        render_html(path, page)
        meta = nb.metadata.get("papermill", {})
        entries.append({
            "page": page.name, "title": _nb_title(nb, path.stem), "stem": path.stem,
            "errors": count_error_cells(nb), "seconds": meta.get("duration"),
            "parameters": meta.get("parameters", {}),
        })
        log(f"[html {i}/{len(notebooks)}] {path.name} -> {page}")
    index = write_index(html_dir, entries, profile=profile, provenance=provenance)
    log(f"site index: {index}")
    return index


def write_index(html_dir: Path, entries: list[dict], profile: str | None = None,
                provenance: str = "") -> Path:
    """Write ``index.html`` linking every rendered page, with its status and execution time."""
    if profile is None:
        profiles = {e["parameters"].get("profile") for e in entries if e["parameters"].get("profile")}
        profile = profiles.pop() if len(profiles) == 1 else None
    label = profile_label(profile) if profile else "committed outputs (quick profile)"
    rows = []
    for e in entries:
        status = "ok" if e["errors"] == 0 else f"{e['errors']} error cell(s)"
        seconds = f"{e['seconds']:.1f} s" if isinstance(e["seconds"], (int, float)) else "–"
        params = ", ".join(f"{k}={v}" for k, v in e["parameters"].items()
                           if k in ("dataset", "profile", "device") and v is not None)
        rows.append(
            f"<tr><td><a href=\"{_html.escape(e['page'])}\">{_html.escape(e['stem'])}</a></td>"
            f"<td>{_html.escape(e['title'])}</td><td>{_html.escape(params)}</td>"
            f"<td class=\"{'ok' if e['errors'] == 0 else 'err'}\">{status}</td><td>{seconds}</td></tr>")
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>GradAttn companion: notebooks</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }} th, td {{ text-align: left; padding: .4rem .6rem;
border-bottom: 1px solid #ddd; }} .ok {{ color: #1a7f37; }} .err {{ color: #b00020; font-weight: bold; }}
.label {{ background: #fff4ce; padding: .5rem .8rem; border-left: 4px solid #e0a800; }}
</style></head><body>
<h1>GradAttn companion: rendered notebooks</h1>
<p>Reproduction of <i>GradAttn: Replacing Fixed Residual Connections with Task-Modulated Attention
Pathways</i> (arXiv 2603.26756): the paper's protocol (defects included) and a corrected protocol, side by side.</p>
<p class="label"><b>{_html.escape(label)}</b></p>
<table><thead><tr><th>notebook</th><th>title</th><th>parameters</th><th>status</th><th>execution time</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<p>Source: {_html.escape(provenance)}. Rendered {stamp} by <code>python -m gradattn.report</code>.</p>
</body></html>
"""
    return atomic_write_text(Path(html_dir) / "index.html", page)


# --------------------------------------------------------------------------------------------------
# committed notebooks
# --------------------------------------------------------------------------------------------------

def strip_volatile_metadata(nb):
    """Remove papermill's absolute paths, timestamps and durations (committed notebooks stay diff-clean)."""
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    return nb


def refresh_committed(names: list[str] | None = None, root: Path | None = None,
                      progress: bool = True, log=None) -> list[Path]:
    """Re-execute the committed notebooks in place with their default (quick) parameters."""
    import nbformat
    log = log or _log
    root = Path(root) if root else project_root()
    written = []
    for name in names or NOTEBOOKS:
        path = root / "notebooks" / f"{name}.ipynb"
        log(f"refreshing {path} ...")
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            nb = execute_notebook(path, Path(tmp) / path.name, cwd=path.parent, progress=progress)
        strip_volatile_metadata(nb)
        atomic_write_text(path, nbformat.writes(nb) + "\n")
        log(f"  done in {time.perf_counter() - t0:.1f} s")
        written.append(path)
    return written


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradattn.report",
                                     description="Execute and render the companion's notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("paper", help="execute every notebook for a profile, then render the HTML site")
    p.add_argument("--profile", default="quick", help="quick (default, CPU, sample data) or paper")
    p.add_argument("--data-root", default=None, help="data root (default: the library's default)")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    p.add_argument("--datasets", default=None,
                   help="comma-separated datasets for 02_train (default: the profile's)")
    p.add_argument("--no-html", action="store_true", help="execute only")
    h = sub.add_parser("html", help="render executed notebooks (outputs/notebooks) to outputs/html")
    h.add_argument("--profile", default=None, help="label for the index (default: from the notebooks)")
    r = sub.add_parser("refresh", help="re-execute the committed notebooks in place (quick defaults)")
    r.add_argument("names", nargs="*", help="notebook stems (default: all)")
    args = parser.parse_args(argv)
    try:
        if args.command == "paper":
            profile_label(args.profile)  # validates the name early
            datasets = args.datasets.split(",") if args.datasets else None
            run_paper(args.profile, args.data_root or None, args.device, datasets, html=not args.no_html)
        elif args.command == "html":
            render_site(profile=args.profile)
        else:
            refresh_committed(args.names or None)
    except NotebookFailed as exc:
        print(f"\nERROR: {exc}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as exc:
        print(f"\nERROR: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training: the authors' fit loop (SPEC 3), checkpoints that resume exactly, and run directories.

The loop is plain PyTorch: Adam (lr 1e-3, coupled L2 weight decay 1e-4), cross-entropy, a Keras-style
ReduceLROnPlateau and EarlyStopping on validation accuracy, as in every notebook. Two things are
switchable and recorded in every run's config.json:

- ``paper_defects``: one switch for the authors' bugs. With it on, early stopping keeps a *shallow*
  ``state_dict().copy()``, whose tensors alias the live weights, so the "restored best" model is really
  the last epoch's (SPEC 7.2); and ``gradattn.data.load_splits`` applies the double-normalisation wrap of
  the training images (SPEC 7.1). Default None means: on for protocol "paper", off for "corrected".
- ``pipeline``: "fast" (``gradattn.fastdata.DeviceLoader``, device-resident tensors, the default) or
  "torch" (the authors' PIL transforms + ``DataLoader(num_workers=2)``).

A run lives in ``<out_dir>/runs/<dataset>/<model-tag>/<protocol>/seed<k>/``. The model tag is the model
name plus a suffix for everything that makes the run differ from the paper's setting for that model
(``-cifarstem``, model options such as ``-dmodel32``, ``-torchpipe``, ``-defects``/``-nodefects`` when
the switch departs from the protocol's default, non-default training settings such as ``-e4``, a train
subset ``-n500``, and ``-sample`` for the embedded sample), so two different configurations never share
a directory. A checkpoint is written atomically after every epoch; a killed run resumes from it with
the same result, and a finished run (metrics.json present, same config) is never redone.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import io
import json
import math
import os
import random
import subprocess
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gradattn.attention import has_attention, run_attention
from gradattn.data.sources import check_variant
from gradattn.fastdata import (PRECISIONS, autocast_context, model_device, prepare_model, resolve_precision,
                               uses_channels_last)
from gradattn.fileio import atomic_write_bytes, atomic_write_csv, atomic_write_text
from gradattn.gates import gates_record, has_gates
from gradattn.gradflow import GradientMonitor, analyze_gradient_flow, find_dead_layers
from gradattn.interleave import run_interleaved, run_steps
from gradattn.metrics import evaluate
from gradattn.models import logits_of
from gradattn.trainstep import TrainStep

PROTOCOLS = ("paper", "corrected")
PIPELINES = ("fast", "torch")
STEMS = ("imagenet", "cifar")
PAPER_STEM = "imagenet"
HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_time_s",
                   "images_per_s", "precision")
TIMING_COLUMNS = ("epoch_time_s", "images_per_s")
CHECKPOINT_FORMAT = 1
EVAL_BATCH_SIZE = 1024    # fast pipeline: validation/test batches (eval-mode results do not depend on it)


class ConfigError(ValueError):
    """A setting is unknown or out of range; the message names the setting and the valid choices."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf; the run stops and keeps its last good checkpoint."""

    def __init__(self, epoch: int, step: int, steps: int, value: float, checkpoint: str | None = None):
        self.epoch, self.step, self.steps, self.value = epoch, step, steps, value
        kept = (f"; the last good checkpoint is kept at {checkpoint}" if checkpoint
                else "; nothing was saved for this epoch")
        super().__init__(f"non-finite training loss ({value}) at epoch {epoch}, step {step} of {steps}"
                         f"{kept}. Lower the learning rate or check the inputs.")


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------

# Settings that change where output goes or how it is shown, never the result; and the device and its
# arithmetic: a run finished on the CPU is the same experiment on a GPU (floating-point rounding aside), so
# neither redoes it. Each epoch's precision is in the run's history, the run's in its results row.
NOT_PART_OF_RUN_IDENTITY = ("progress", "out_dir", "data_root", "num_workers", "download", "grad_sample_every",
                            "cuda_graphs", "device", "precision")

# Training settings that get a model-tag suffix when they differ from the paper's value.
_TAGGED_SETTINGS = {"epochs": "e", "lr": "lr", "weight_decay": "wd", "lr_factor": "lrf",
                    "lr_patience": "lrp", "min_lr": "minlr", "early_stopping_patience": "esp"}


@dataclass
class TrainConfig:
    """Everything that defines one training run; the defaults are the authors' protocol (SPEC 3)."""

    dataset: str = "fashionmnist"
    model: str = "resnet18"
    protocol: str = "corrected"          # "paper": authors' splits; "corrected": fixed splits
    variant: str | None = None           # a dataset variant (gradattn.data.VARIANTS), e.g. cifar10 "jpeg4000"
    seed: int = 0                        # init, shuffling, augmentation, dropout
    stem: str = PAPER_STEM               # "imagenet" (paper, every dataset) or "cifar"
    model_options: dict = field(default_factory=dict)   # passed to build_model, e.g. {"d_model": 32}
    paper_defects: bool | None = None    # None: on for protocol "paper", off for "corrected"
    pipeline: str = "fast"               # "fast" (DeviceLoader) or "torch" (authors' DataLoader)
    sample: bool = False                 # the embedded sample instead of the full dataset
    max_train_samples: int | None = None  # keep only the first N training images (quick runs, tests)
    epochs: int = 100
    batch_size: int | None = None        # None: the dataset's paper batch size (128; PAD-UFES-20 64)
    lr: float = 1e-3
    weight_decay: float = 1e-4           # coupled L2 (torch.optim.Adam), as the authors
    lr_factor: float = 0.2
    lr_patience: int = 3
    min_lr: float = 1e-7
    early_stopping_patience: int | None = 7   # None: never stop early
    gradflow_batches: int = 20           # test batches for the gradient-flow analysis; 0 skips it
    grad_sample_every: int = 0           # record parameter-gradient norms every N steps (gradnorms.csv); 0: off
    split_seed: int = 42                 # the authors' split seed
    device: str = "auto"                 # "auto", "cpu", "cuda", "cuda:1", ...
    precision: str = "auto"              # "auto" (bf16 autocast on CUDA, fp32 on CPU), "bf16" (CPU too), "fp32"
    deterministic: bool = False
    cuda_graphs: bool = True             # CUDA only: replay each training step from a CUDA graph (trainstep)
    num_workers: int = 2                 # pipeline "torch" only
    data_root: str | None = None
    download: bool = False               # let gradattn.data fetch an absent dataset (needs network)
    out_dir: str = "outputs"
    progress: bool = True

    def __post_init__(self):
        from gradattn.data.registry import get_info

        try:
            self.dataset = get_info(self.dataset).name
        except ValueError as err:
            raise ConfigError(str(err)) from None
        for name, value, choices in (("protocol", self.protocol, PROTOCOLS),
                                     ("pipeline", self.pipeline, PIPELINES),
                                     ("stem", self.stem, STEMS),
                                     ("precision", self.precision, PRECISIONS)):
            if value not in choices:
                raise ConfigError(f"unknown {name} {value!r}; valid: {', '.join(choices)}")
        for name in ("epochs", "lr_patience"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("batch_size", "max_train_samples", "early_stopping_patience"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ConfigError(f"{name} must be >= 1 or None, got {value}")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 < self.lr_factor < 1 or self.min_lr < 0:
            raise ConfigError("need lr > 0, weight_decay >= 0, 0 < lr_factor < 1 and min_lr >= 0")
        if self.grad_sample_every < 0:
            raise ConfigError(f"grad_sample_every must be >= 0, got {self.grad_sample_every}")
        if self.gradflow_batches < 0:
            raise ConfigError(f"gradflow_batches must be >= 0, got {self.gradflow_batches}")
        try:
            check_variant(self.dataset, self.variant, self.protocol, self.sample)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if self.paper_defects is not None and not isinstance(self.paper_defects, bool):
            raise ConfigError(f"paper_defects must be True, False or None, got {self.paper_defects!r}")
        if not isinstance(self.model_options, dict):
            raise ConfigError("model_options must be a dict of build_model keyword arguments")

    @property
    def defects(self) -> bool:
        """The resolved paper_defects switch."""
        return self.protocol == "paper" if self.paper_defects is None else self.paper_defects

    @property
    def info(self):
        from gradattn.data.registry import get_info
        return get_info(self.dataset)

    @property
    def resolved_batch_size(self) -> int:
        return self.batch_size or self.info.paper_batch_size

    @property
    def model_tag(self) -> str:
        parts = [self.model]
        if self.variant is not None:
            parts.append(self.variant)
        if self.stem != PAPER_STEM:
            parts.append(f"{self.stem}stem")
        for key, value in sorted(self.model_options.items()):
            parts.append(f"{key.replace('_', '')}{value}")
        if self.paper_defects is not None and self.paper_defects != (self.protocol == "paper"):
            parts.append("defects" if self.paper_defects else "nodefects")
        if self.pipeline != "fast":
            parts.append(f"{self.pipeline}pipe")
        defaults = TrainConfig.__dataclass_fields__
        for name, short in _TAGGED_SETTINGS.items():
            value = getattr(self, name)
            if value != defaults[name].default:
                parts.append(f"{short}{value}")
        if self.batch_size is not None and self.batch_size != self.info.paper_batch_size:
            parts.append(f"bs{self.batch_size}")
        if self.max_train_samples:
            parts.append(f"n{self.max_train_samples}")
        if self.sample:
            parts.append("sample")
        return "-".join(parts)

    @property
    def run_key(self) -> str:
        return f"{self.dataset}/{self.model_tag}/{self.protocol}/seed{self.seed}"

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / "runs" / self.run_key

    def to_dict(self) -> dict:
        """All fields, with paper_defects and batch_size resolved (what config.json records)."""
        config = dataclasses.asdict(self)
        config.update(paper_defects=self.defects, batch_size=self.resolved_batch_size)
        return config

    def identity(self) -> dict:
        """The settings that define the result; two runs with equal identity are the same run."""
        return {k: v for k, v in self.to_dict().items() if k not in NOT_PART_OF_RUN_IDENTITY}

    @classmethod
    def from_dict(cls, config: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(f"unknown TrainConfig fields {unknown}; valid: {sorted(known)}")
        return cls(**config)


def check_model_name(name: str, options: dict | None = None) -> None:
    """ConfigError for a model name (or build_model option) the registry does not know."""
    from gradattn.models import list_models, model_options
    if name not in list_models():
        raise ConfigError(f"unknown model {name!r}; valid: {', '.join(list_models())}")
    unknown = sorted(set(options or {}) - set(model_options(name)))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for model {name!r}; valid: {model_options(name)}")


# --------------------------------------------------------------------------------------------------
# Small utilities: atomic files, seeds, device
# --------------------------------------------------------------------------------------------------

def write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _json_default(obj):
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def write_history_csv(path: str | os.PathLike, history: list[dict]) -> Path:
    return atomic_write_csv(path, history, HISTORY_COLUMNS)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def configure_determinism(deterministic: bool) -> None:
    """Deterministic kernels on request (slower); otherwise let cuDNN pick the fastest ones."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def resolve_device(device: str = "auto") -> torch.device:
    """gradattn.fastdata.resolve_device, with its errors as ConfigError (the CLI prints them, exit 2)."""
    from gradattn.fastdata import resolve_device as resolve
    try:
        return resolve(device)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def run_precision(history: list[dict]) -> str | None:
    """A run's precision for its results row, from its epochs' records: "bf16" or "fp32"; "bf16+fp32" when a
    resumed run changed it; "+unrecorded" appended when some epochs predate the record (a checkpoint written
    before the setting existed); None when none has it."""
    values = [record.get("precision") or None for record in history]
    known = sorted({value for value in values if value})
    if not known:
        return None
    return "+".join(known) + ("+unrecorded" if None in values else "")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def _rng_states() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_states(states: dict) -> None:
    """Restore what _rng_states saved. A checkpoint loaded with map_location="cuda" holds the generator
    states as CUDA tensors; torch only accepts CPU ByteTensors for them."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"].cpu())
    if states.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state.cpu() for state in states["cuda"]])


# --------------------------------------------------------------------------------------------------
# The authors' callbacks, as small state-dict-able classes
# --------------------------------------------------------------------------------------------------

class ReduceLROnPlateau:
    """Keras-style, like the authors' callback: the first epoch sets the baseline; after `patience`
    epochs in a row without a strictly higher value the lr is multiplied by `factor` (never below
    `min_lr`) and the count restarts. torch's own scheduler would wait patience + 1 epochs."""

    def __init__(self, optimizer, factor: float = 0.2, patience: int = 3, min_lr: float = 1e-7):
        self.optimizer, self.factor, self.patience, self.min_lr = optimizer, factor, patience, min_lr
        self.best = -math.inf
        self.wait = 0

    def step(self, value: float) -> bool:
        """Record one epoch's monitored value; True when the lr was reduced."""
        if value > self.best:
            self.best, self.wait = value, 0
            return False
        self.wait += 1
        if self.wait < self.patience:
            return False
        self.wait = 0
        reduced = False
        for group in self.optimizer.param_groups:
            if group["lr"] > self.min_lr * (1 + 1e-9):
                group["lr"] = max(group["lr"] * self.factor, self.min_lr)
                reduced = True
        return reduced

    def state_dict(self) -> dict:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.wait = state["best"], state["wait"]


class EarlyStopping:
    """Stop `patience` epochs after the best validation accuracy and keep that epoch's weights.

    `shallow_copy=True` reproduces the authors' defect (SPEC 7.2): `state_dict().copy()` copies the
    dict but not the tensors, which keep sharing storage with the live parameters and BN buffers, so
    the kept "best" weights follow training and the restore reloads the last epoch. Otherwise the
    snapshot is a real copy of every tensor.
    """

    def __init__(self, patience: int | None = 7, shallow_copy: bool = False):
        self.patience, self.shallow_copy = patience, shallow_copy
        self.best_acc = -math.inf
        self.best_epoch = 0
        self.wait = 0
        self.best_weights: dict | None = None

    def snapshot(self, model) -> dict:
        if self.shallow_copy:
            return model.state_dict().copy()
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    def step(self, value: float, epoch: int, model) -> bool:
        """Record one epoch; True when training should stop."""
        if value > self.best_acc:
            self.best_acc, self.best_epoch, self.wait = value, epoch, 0
            self.best_weights = self.snapshot(model)
        else:
            self.wait += 1
        return self.patience is not None and self.wait >= self.patience

    def restore(self, model) -> None:
        if self.best_weights is not None:
            model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        # The aliased dict of the defect is the live weights: rebuilt on load, not stored twice.
        return {"best_acc": self.best_acc, "best_epoch": self.best_epoch, "wait": self.wait,
                "best_weights": None if self.shallow_copy else self.best_weights}

    def load_state_dict(self, state: dict, model) -> None:
        self.best_acc, self.best_epoch, self.wait = state["best_acc"], state["best_epoch"], state["wait"]
        if self.shallow_copy:
            self.best_weights = model.state_dict().copy() if self.best_epoch else None
        else:
            self.best_weights = state["best_weights"]


# --------------------------------------------------------------------------------------------------
# The fit loop
# --------------------------------------------------------------------------------------------------

@dataclass
class FitResult:
    history: list
    best_epoch: int
    best_val_acc: float
    epochs_run: int
    stopped_early: bool
    finished: bool           # False when the call stopped before the run was over (resume later)
    train_time_s: float      # wall clock of all epochs, validation included, summed over resumes


def _progress_bar(iterable, enabled: bool, **kwargs):
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, **kwargs)


def _to_device(x, y, device, channels_last: bool):
    x = x.to(device, non_blocking=True)
    y = y.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


def train_one_epoch(model, loader, optimizer, device, epoch: int, channels_last: bool = False,
                    progress: bool = False, checkpoint: str | None = None, monitor=None,
                    train_step: TrainStep | None = None) -> dict:
    """One pass over `loader`; raises NonFiniteLossError naming the first bad step.

    Per-step losses stay on the device and are checked once at the end of the epoch, so the GPU never
    waits for the host; the weights of a diverged epoch are never saved. `train_step` (a
    gradattn.trainstep.TrainStep, e.g. CUDA-graphed) runs each step; by default an eager one.
    """
    return run_steps(train_epoch_steps(model, loader, optimizer, device, epoch, channels_last, progress,
                                       checkpoint, monitor, train_step))


def train_epoch_steps(model, loader, optimizer, device, epoch: int, channels_last: bool = False,
                      progress: bool = False, checkpoint: str | None = None, monitor=None,
                      train_step: TrainStep | None = None):
    """`train_one_epoch` as a generator that yields after each step and returns the epoch's record."""
    if train_step is None:
        train_step = TrainStep(model, optimizer, device)
    model.train()
    num_batches = len(loader)
    step_losses = torch.full((num_batches,), float("nan"), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = steps = 0
    bar = _progress_bar(loader, progress, total=num_batches, desc=f"epoch {epoch}", leave=False)
    for step, (x, y) in enumerate(bar):
        x, y = _to_device(x, y, device, channels_last)
        global_step = (epoch - 1) * num_batches + step
        sample = None
        if monitor is not None and monitor.samples(global_step):
            sample = functools.partial(monitor.after_backward, global_step, epoch)
        loss, logits = train_step(x, y, after_backward=sample)
        step_losses[step] = loss
        correct += (logits.argmax(1) == y).sum()
        seen += y.shape[0]
        steps = step + 1
        yield
    losses = step_losses[:steps]
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0])
        raise NonFiniteLossError(epoch, first + 1, steps, float(losses[first]), checkpoint)
    if seen == 0:
        raise ValueError("the training loader yielded no batches; check the training split is not empty")
    return {"train_loss": float(losses.mean()), "train_acc": float(correct) / seen, "seen": seen}


def evaluate_loss_acc(model, loader, device, channels_last: bool = False,
                      precision: str = "auto") -> tuple[float, float]:
    """Mean cross-entropy and accuracy over `loader` in eval mode (the per-epoch validation)."""
    return run_steps(evaluate_steps(model, loader, device, channels_last, precision))


@torch.no_grad()
def evaluate_steps(model, loader, device, channels_last: bool = False, precision: str = "auto"):
    """`evaluate_loss_acc` as a generator that yields after each batch (no_grad holds only while it runs)."""
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    for x, y in loader:
        x, y = _to_device(x, y, device, channels_last)
        with autocast_context(device, precision):
            logits = logits_of(model(x)).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        seen += y.shape[0]
        yield
    if seen == 0:
        raise ValueError("the validation loader yielded no batches; check the validation split")
    return float(loss_sum) / seen, float(correct) / seen


def save_checkpoint(path, model, optimizer, plateau, stopper, history, epoch, finished,
                    train_time_s, config: dict | None = None) -> Path:
    state = {
        "format": CHECKPOINT_FORMAT, "epoch": epoch, "finished": finished, "train_time_s": train_time_s,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": plateau.state_dict(), "early_stopping": stopper.state_dict(),
        "history": history, "rng": _rng_states(), "config": config,
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def slim_checkpoint(path, model, result: "FitResult") -> Path:
    """Replace a finished run's checkpoint by the restored weights alone (about 4x smaller: no optimiser
    state, no second copy of the best weights). `fit` still accepts it: it reloads the weights and returns."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    slim = {"format": CHECKPOINT_FORMAT, "epoch": state["epoch"], "finished": True, "slim": True,
            "train_time_s": state["train_time_s"], "history": state["history"], "rng": state["rng"],
            "config": state["config"], "best_epoch": result.best_epoch, "best_val_acc": result.best_val_acc,
            "model": model.state_dict()}
    buffer = io.BytesIO()
    torch.save(slim, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path, device) -> dict:
    # weights_only=False: the file holds RNG states (numpy arrays, tuples) that we wrote ourselves.
    state = torch.load(path, map_location=device, weights_only=False)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a gradattn checkpoint of format {CHECKPOINT_FORMAT}; delete it "
                         "to start the run afresh")
    return state


def fit(model, train_loader, val_loader, cfg: TrainConfig, device=None, checkpoint_path=None,
        history_path=None, max_epochs_this_call: int | None = None, on_epoch_end=None,
        monitor=None) -> FitResult:
    """Train `model` with the authors' protocol, resuming from `checkpoint_path` when it exists.

    Loaders yield (x, y) batches; a loader with `set_epoch(epoch)` is told the epoch first, so its
    shuffle and augmentation depend only on (seed, epoch) and a resumed run sees the same batches.
    `max_epochs_this_call` stops after that many new epochs (the run stays resumable);
    `on_epoch_end(epoch, model, record)` is called after each epoch's checkpoint is on disk.
    `monitor` (a gradattn.gradflow.GradientMonitor) samples gradient norms after each backward.
    When the run is over, the early-stopping weights are restored into `model`.
    """
    return run_steps(fit_steps(model, train_loader, val_loader, cfg, device, checkpoint_path, history_path,
                               max_epochs_this_call, on_epoch_end, monitor))


FUSED_ADAM_DEVICES = ("cuda", "cpu")


def build_optimizer(model: torch.nn.Module, device, lr: float = TrainConfig.lr,
                    weight_decay: float = TrainConfig.weight_decay, capturable: bool = False):
    """The authors' Adam (lr, coupled L2 weight decay), as one fused kernel per step on CUDA and on the CPU.

    On the CPU torch's default Adam loops over the parameter tensors in Python; with the fused kernel a whole
    training step on 2 cores ran 1.11-1.19x as fast (benchmarks/cpu_adam.py, benchmarks/README.md), and
    CPU-only sessions train full runs. The arithmetic is the same: one step of either agrees to float rounding
    (tests/test_train.py); later steps drift apart as any two runs whose sums are ordered differently do (CPU
    thread counts, GPUs). An optimizer state saved by one loads into the other, so a run resumes across the
    change.
    """
    device = torch.device(device)
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay,
                            fused=device.type in FUSED_ADAM_DEVICES, capturable=capturable)


def align_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Give every per-parameter state tensor (Adam's moments) its parameter's memory layout, in place.

    A fused Adam reads a parameter and its moments as flat memory, and `load_state_dict` keeps the strides
    the state was saved with: a run saved from a model in one layout (NCHW on the CPU in fp32, channels_last
    on CUDA and under CPU bf16) and resumed into the other would update the wrong elements."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                    aligned = torch.empty_like(param, dtype=value.dtype)
                    aligned.copy_(value)
                    state[key] = aligned


def fit_steps(model, train_loader, val_loader, cfg: TrainConfig, device=None, checkpoint_path=None,
              history_path=None, max_epochs_this_call: int | None = None, on_epoch_end=None,
              monitor=None):
    """`fit` as a generator that yields after each training step and validation batch."""
    device = model_device(model, device)
    precision = resolve_precision(cfg.precision, device)
    channels_last = uses_channels_last(device, precision)
    cuda_graph = cfg.cuda_graphs and device.type == "cuda"
    optimizer = build_optimizer(model, device, cfg.lr, cfg.weight_decay, capturable=cuda_graph)
    train_step = TrainStep(model, optimizer, device, precision=precision, cuda_graph=cuda_graph)
    plateau = ReduceLROnPlateau(optimizer, cfg.lr_factor, cfg.lr_patience, cfg.min_lr)
    stopper = EarlyStopping(cfg.early_stopping_patience, shallow_copy=cfg.defects)
    history, start_epoch, finished, stopped_early, train_time_s = [], 1, False, False, 0.0

    if checkpoint_path is not None and Path(checkpoint_path).exists():
        state = load_checkpoint(checkpoint_path, device)
        if state["config"] is not None and TrainConfig.from_dict(state["config"]).identity() != cfg.identity():
            raise ValueError(f"{checkpoint_path} was written by a run with a different config; delete it "
                             "(or its run directory) to start afresh, or resume with the same config")
        model.load_state_dict(state["model"])
        if "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
            align_optimizer_state(optimizer)
            plateau.load_state_dict(state["scheduler"])
            stopper.load_state_dict(state["early_stopping"], model)
        else:  # a finished run's slim checkpoint: the weights are already the restored ones
            stopper.best_epoch, stopper.best_acc = state["best_epoch"], state["best_val_acc"]
        history, finished = list(state["history"]), state["finished"]
        start_epoch, train_time_s = state["epoch"] + 1, state["train_time_s"]
        stopped_early = finished and state["epoch"] < cfg.epochs
        _set_rng_states(state["rng"])
    else:
        seed_everything(cfg.seed)

    epochs = range(start_epoch, cfg.epochs + 1) if not finished else range(0)
    if max_epochs_this_call is not None:
        epochs = epochs[:max_epochs_this_call]
    bar = _progress_bar(epochs, cfg.progress, desc=f"{cfg.model} {cfg.dataset}", unit="epoch")
    for epoch in bar:
        for loader in (train_loader, val_loader):
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(epoch)
        start = time.perf_counter()
        train = yield from train_epoch_steps(model, train_loader, optimizer, device, epoch, channels_last,
                                             cfg.progress, str(checkpoint_path) if checkpoint_path else None,
                                             monitor, train_step)
        train_seconds = time.perf_counter() - start
        val_loss, val_acc = yield from evaluate_steps(model, val_loader, device, channels_last, precision)
        epoch_time = time.perf_counter() - start
        record = {"epoch": epoch, "train_loss": train["train_loss"], "train_acc": train["train_acc"],
                  "val_loss": val_loss, "val_acc": val_acc, "lr": optimizer.param_groups[0]["lr"],
                  "epoch_time_s": epoch_time, "images_per_s": train["seen"] / max(train_seconds, 1e-9),
                  "precision": precision}
        history.append(record)
        train_time_s += epoch_time
        stopped_early = stopper.step(val_acc, epoch, model)
        plateau.step(val_acc)
        finished = stopped_early or epoch == cfg.epochs
        if checkpoint_path is not None:
            save_checkpoint(checkpoint_path, model, optimizer, plateau, stopper, history, epoch, finished,
                            train_time_s, cfg.to_dict())
        if history_path is not None:
            write_history_csv(history_path, history)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{record['train_loss']:.3f}", val_acc=f"{val_acc:.4f}",
                            lr=f"{record['lr']:.1e}")
        if on_epoch_end is not None:
            on_epoch_end(epoch, model, record)
        if finished:
            break
    if hasattr(bar, "close"):
        bar.close()

    if finished:
        stopper.restore(model)
    return FitResult(history=history, best_epoch=stopper.best_epoch, best_val_acc=stopper.best_acc,
                     epochs_run=len(history), stopped_early=stopped_early, finished=finished,
                     train_time_s=train_time_s)


# --------------------------------------------------------------------------------------------------
# Data loaders for the two pipelines
# --------------------------------------------------------------------------------------------------

class EpochSeededLoader:
    """The authors' DataLoader, but with the shuffle (and worker seeds) a pure function of
    (seed, epoch), so a resumed run draws the same batches as an uninterrupted one."""

    def __init__(self, dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int = 2,
                 pin_memory: bool = False):
        from torch.utils.data import DataLoader

        self.seed = seed
        self.generator = torch.Generator()
        self.generator.manual_seed(seed)
        self.loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=self.generator,
                                 num_workers=num_workers, pin_memory=pin_memory,
                                 persistent_workers=False)

    def set_epoch(self, epoch: int) -> None:
        self.generator.manual_seed(self.seed * 1_000_003 + epoch)

    def __iter__(self):
        return iter(self.loader)

    def __len__(self) -> int:
        return len(self.loader)


LOADER_NAMES = ("train", "val", "test", "gradflow")


def build_loaders(cfg: TrainConfig, splits, device: torch.device, names: tuple = LOADER_NAMES) -> dict:
    """The `names` loaders ("train", "val", "test", "gradflow": test split in training-size batches, as the
    authors analysed it) of the configured pipeline. An analysis of a finished run asks for "test" alone, so
    it never stages the training split."""
    unknown = set(names) - set(LOADER_NAMES)
    if unknown:
        raise ValueError(f"unknown loader name(s) {sorted(unknown)}: choose from {', '.join(LOADER_NAMES)}")
    batch_size = cfg.resolved_batch_size
    split_names = [name for name in ("train", "val", "test") if name in names]
    if cfg.pipeline == "fast":
        from gradattn.fastdata import DeviceLoader

        channels_last = uses_channels_last(device, cfg.precision)
        loaders = {name: DeviceLoader(getattr(splits, name), splits.info,
                                      batch_size if name == "train" else max(batch_size, EVAL_BATCH_SIZE),
                                      train=name == "train", device=device, seed=cfg.seed,
                                      channels_last=channels_last)
                   for name in split_names}
        if "gradflow" in names:
            # Whole-batch gradient norms scale with the batch: analyse with the authors' batch size.
            loaders["gradflow"] = DeviceLoader(splits.test, splits.info, batch_size, train=False, device=device,
                                               seed=cfg.seed, channels_last=channels_last)
        return {name: loaders[name] for name in names}
    from gradattn.data import build_torch_datasets

    datasets = build_torch_datasets(splits)
    pin = device.type == "cuda"
    if "gradflow" in names and "test" not in split_names:
        split_names.append("test")
    loaders = {name: EpochSeededLoader(datasets[name], batch_size, shuffle=name == "train", seed=cfg.seed,
                                       num_workers=cfg.num_workers, pin_memory=pin)
               for name in split_names}
    if "gradflow" in names:
        loaders["gradflow"] = loaders["test"]
    return {name: loaders[name] for name in names}


def limit_train_split(splits, max_train_samples: int | None):
    """Keep the first `max_train_samples` training images (the split is already shuffled)."""
    if not max_train_samples or len(splits.train.labels) <= max_train_samples:
        return splits
    return dataclasses.replace(splits, train=splits.train.subset(np.arange(max_train_samples)))


def run_splits(cfg: TrainConfig):
    """The splits a run config trains, validates and tests on: its dataset, protocol, split seed and
    defects, with the training split cut to `max_train_samples`. Reloading a finished run's data goes
    through here too, so analyses see the very images the run saw."""
    from gradattn.data import load_splits
    splits = load_splits(cfg.dataset, protocol=cfg.protocol, root=cfg.data_root, seed=cfg.split_seed,
                         sample=cfg.sample, download=cfg.download, paper_defects=cfg.defects,
                         variant=cfg.variant)
    return limit_train_split(splits, cfg.max_train_samples)


# --------------------------------------------------------------------------------------------------
# A whole run: data, model, fit, test, gradient flow, run directory, results table
# --------------------------------------------------------------------------------------------------

def _gradient_flow(model, loader, cfg: TrainConfig, device) -> dict | None:
    """Faithful and corrected gradient-flow reports plus dead layers, on test batches like the authors.

    The analyses take no optimiser step and leave the model as they found it (gradattn.gradflow)."""
    if cfg.gradflow_batches == 0:
        return None
    reports = {}
    for mode in ("faithful", "corrected"):
        report = analyze_gradient_flow(model, loader, mode=mode, num_batches=cfg.gradflow_batches,
                                       device=device)
        reports[mode] = report.to_dict()
        reports[f"{mode}_health_score"] = float(report.health_score)
    dead = find_dead_layers(model, loader, device=device)
    reports["dead_layers"] = dead.to_dict()
    reports["dead_layer_names"] = list(dead.dead_layers)
    return reports


GRAD_NORM_COLUMNS = ("step", "epoch", "layer", "index", "grad_norm", "grad_rms")


def _flush_grad_norms(monitor, path: Path) -> None:
    """Append the monitor's new records to gradnorms.csv (atomically), so a resumed run keeps earlier epochs."""
    if not monitor.records:
        return
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=GRAD_NORM_COLUMNS, lineterminator="\n")
    if not old:
        writer.writeheader()
    writer.writerows(monitor.records)
    atomic_write_text(path, old + buffer.getvalue())
    monitor.records.clear()


def _same_settings(config: dict, cfg: TrainConfig) -> bool:
    """True when a recorded config.json content describes the same run as cfg (False if it is malformed)."""
    try:
        return TrainConfig.from_dict(config).identity() == cfg.identity()
    except (ValueError, TypeError):
        return False


def _same_run(run_dir: Path, cfg: TrainConfig) -> bool:
    config_path = run_dir / "config.json"
    if not config_path.exists():
        return False
    try:
        config = read_json(config_path)
    except json.JSONDecodeError:
        return False
    return _same_settings(config, cfg)


def is_finished(cfg: TrainConfig) -> bool:
    """True when cfg's run dir holds a finished run of this exact configuration."""
    return _same_run(cfg.run_dir, cfg) and (cfg.run_dir / "metrics.json").exists()


def _clear_run_dir(run_dir: Path) -> None:
    for name in ("checkpoint.pt", "metrics.json", "gradflow.json", "history.csv", "config.json", "gradnorms.csv"):
        with contextlib.suppress(FileNotFoundError):
            (run_dir / name).unlink()


def run_experiment(cfg: TrainConfig, max_epochs_this_call: int | None = None) -> dict:
    """Train, restore, test and analyse one configuration; write its run dir and results row.

    Returns the metrics (as in metrics.json) plus "run_dir" and "skipped" (True when the run had
    already finished with the same config). With `max_epochs_this_call` the call may stop early with
    "finished": False; calling again resumes from the checkpoint.
    """
    return run_steps(experiment_steps(cfg, max_epochs_this_call))


def experiment_steps(cfg: TrainConfig, max_epochs_this_call: int | None = None):
    """`run_experiment` as a generator that yields after each training step and validation batch
    (`gradattn.interleave` runs several in one process); it returns what `run_experiment` returns."""
    from gradattn.models import build_model, count_parameters
    from gradattn.results import append_result, metrics_to_row

    check_model_name(cfg.model, cfg.model_options)
    run_dir = cfg.run_dir
    results_path = Path(cfg.out_dir) / "results.csv"
    same_run = _same_run(run_dir, cfg)
    if same_run and (run_dir / "metrics.json").exists():        # is_finished(cfg), config read once
        metrics = read_json(run_dir / "metrics.json")
        append_result(metrics_to_row(metrics), results_path)
        return {**metrics, "run_dir": str(run_dir), "skipped": True}
    if run_dir.exists() and not same_run:
        if (run_dir / "config.json").exists():
            warnings.warn(f"{run_dir} holds a run with a different config; starting it afresh", stacklevel=2)
        _clear_run_dir(run_dir)

    commit = git_commit()   # the code this call runs: a commit made while it trains is not credited with it
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    configure_determinism(cfg.deterministic)
    splits = run_splits(cfg)
    info = splits.info

    seed_everything(cfg.seed)
    model = build_model(cfg.model, num_classes=info.num_classes, in_chans=info.in_chans, stem=cfg.stem,
                        **cfg.model_options)
    params = count_parameters(model)
    model = prepare_model(model, device, channels_last=uses_channels_last(device, precision))
    loaders = build_loaders(cfg, splits, device)

    write_json(run_dir / "config.json", cfg.to_dict())
    monitor = on_epoch_end = None
    if cfg.grad_sample_every:
        monitor = GradientMonitor(model, every=cfg.grad_sample_every)
        on_epoch_end = lambda epoch, model, record: _flush_grad_norms(monitor, run_dir / "gradnorms.csv")  # noqa: E731
    result = yield from fit_steps(model, loaders["train"], loaders["val"], cfg, device,
                                  checkpoint_path=run_dir / "checkpoint.pt", history_path=run_dir / "history.csv",
                                  max_epochs_this_call=max_epochs_this_call, on_epoch_end=on_epoch_end,
                                  monitor=monitor)
    if not result.finished:
        return {"run_key": cfg.run_key, "run_dir": str(run_dir), "finished": False,
                "epochs_run": result.epochs_run, "skipped": False}

    test = evaluate(model, loaders["test"], device, info.num_classes, precision=precision)
    if has_attention(model):
        write_json(run_dir / "attention.json", run_attention(model, loaders["test"], info, device, precision))
    if has_gates(model):
        write_json(run_dir / "gates.json", gates_record(model, loaders["test"], info, device))
    gradflow = _gradient_flow(model, loaders["gradflow"], cfg, device)
    if gradflow is not None:
        write_json(run_dir / "gradflow.json", gradflow)

    history = result.history
    metrics = {
        "run_key": cfg.run_key, "dataset": cfg.dataset, "model": cfg.model, "model_tag": cfg.model_tag,
        "protocol": cfg.protocol, "seed": cfg.seed, "stem": cfg.stem, "variant": cfg.variant,
        "model_options": cfg.model_options,
        "paper_defects": cfg.defects, "pipeline": cfg.pipeline, "is_sample": bool(splits.is_sample),
        "data_source": str(splits.source), "num_train": int(len(splits.train.labels)),
        "num_val": int(len(splits.val.labels)), "num_test": int(len(splits.test.labels)),
        "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
        "best_val_acc": result.best_val_acc, "last_val_acc": history[-1]["val_acc"],
        "stopped_early": result.stopped_early, "train_time_s": result.train_time_s,
        "params": params, "device": device_name(device), "precision": run_precision(history),
        "torch_version": torch.__version__,
        "git_commit": commit, "finished": True,
        "health_score_faithful": gradflow["faithful_health_score"] if gradflow else None,
        "health_score_corrected": gradflow["corrected_health_score"] if gradflow else None,
        "dead_layers": gradflow["dead_layer_names"] if gradflow else None,
        "test": test,
    }
    write_json(run_dir / "metrics.json", metrics)
    slim_checkpoint(run_dir / "checkpoint.pt", model, result)
    append_result(metrics_to_row(metrics), results_path)
    return {**metrics, "run_dir": str(run_dir), "skipped": False}


def recorded_result(cfg: TrainConfig, recorded: dict, source: str) -> dict | None:
    """What `sweep` reports for a run that `recorded` (gradattn.results.recorded_runs) already holds, or None
    when it holds no run of this key, or one whose committed config has other settings (then it is trained)."""
    entry = recorded.get(cfg.run_key)
    if entry is None:
        return None
    if entry["config"] is not None and not _same_settings(entry["config"], cfg):
        warnings.warn(f"{cfg.run_key}: {source} holds this run with other settings; training it", stacklevel=2)
        return None
    return {**entry["row"], "run_key": cfg.run_key, "skipped": True, "recorded": source}


def sweep_plan(base_cfg: TrainConfig, datasets=None, models=None, protocols=None, seeds=None, stems=None,
               recorded: str | os.PathLike | None = None) -> list[dict]:
    """What `sweep` would do with each run of its grid, in its order, without training or reading data:
    {"cfg", "status", "result", "epochs_done", "seed_epochs"} with status "recorded" (in `recorded`'s
    results.csv; result: its row), "finished" (under cfg.out_dir), "resumes" (a checkpoint of the same
    settings there; epochs_done: the epochs its history holds) or "trains". seed_epochs: the epochs the
    recorded runs of the same key but another seed took (early stopping decides a run's length), so a session
    can judge which runs can end within it.
    `gradattn sweep --plan` prints it, so a GPU call's runs (their tags above all) can be read before the
    call spends device time on them."""
    grid = [dataclasses.replace(base_cfg, dataset=d, model=m, protocol=p, stem=st, seed=s)
            for s in (seeds if seeds is not None else [base_cfg.seed])
            for d in (datasets or [base_cfg.dataset]) for m in (models or [base_cfg.model])
            for p in (protocols or [base_cfg.protocol]) for st in (stems or [base_cfg.stem])]
    for cfg in grid:
        check_model_name(cfg.model, cfg.model_options)
    committed, source = {}, None
    if recorded is not None:
        from gradattn.results import recorded_runs
        try:
            committed, source = recorded_runs(recorded), str(Path(recorded) / "results.csv")
        except FileNotFoundError as err:
            raise ConfigError(str(err)) from None
    plan = []
    for cfg in grid:
        item = {"cfg": cfg, "status": "trains", "result": None, "epochs_done": 0, "seed_epochs": []}
        plan.append(item)
        if is_finished(cfg):
            item["status"] = "finished"
            continue
        item["result"] = recorded_result(cfg, committed, source)
        if item["result"] is not None:
            item["status"] = "recorded"
            continue
        if _same_run(cfg.run_dir, cfg) and (cfg.run_dir / "checkpoint.pt").exists():
            history = cfg.run_dir / "history.csv"
            item["status"] = "resumes"
            item["epochs_done"] = max(len(history.read_text().splitlines()) - 1, 0) if history.exists() else 0
        other_seeds = cfg.run_key.rsplit("/", 1)[0] + "/seed"      # the same key up to its seed
        item["seed_epochs"] = sorted(int(float(entry["row"]["epochs"])) for key, entry in committed.items()
                                     if key.startswith(other_seeds) and key[len(other_seeds):].isdigit()
                                     and str(entry["row"].get("epochs", "")).strip())
    return plan


def sweep(base_cfg: TrainConfig, datasets=None, models=None, protocols=None, seeds=None, stems=None,
          skip_missing: bool = False, on_result=None, shard: tuple[int, int] = (0, 1),
          keep_going: bool = False, interleave: int = 1, recorded: str | os.PathLike | None = None) -> list[dict]:
    """Run the grid seeds x datasets x models x protocols x stems (None: base_cfg's value).

    Finished runs are skipped, interrupted ones resume. `recorded` (a committed results folder, e.g.
    "results") also skips the runs it holds (`recorded_result`): same run key, and the same settings where
    it kept the run's config; they are reported with "recorded" and their committed row, not trained and
    not added to this sweep's results.csv. With `skip_missing`, a dataset that is not on
    disk is reported ({"dataset", "skipped_missing": message}) instead of stopping the sweep.
    `on_result(result)` is called as each run ends (the CLI prints a line). With `keep_going`, a run that
    raises is reported ({"run_key", "failed": "Type: message"}) and the sweep goes on to the next one, so
    one broken run does not cost a budgeted GPU call every run queued behind it.
    Seeds are the outer loop, so a sweep cut short (a GPU call's budget) leaves whole seeds of every
    model rather than every seed of the first models.
    `shard=(k, n)` runs only every n-th configuration starting at k: n processes with k = 0..n-1 share
    one GPU (small models leave most of an H100 idle) and together run the grid exactly once. Finished
    and unfinished runs are dealt out separately, so a repeated sweep spreads the remaining work evenly
    over the shards; start all shards together, from the same output folder.
    `interleave=K` keeps K runs going in this process, a step of each in turn, each on its own CUDA
    stream (`gradattn.interleave`: kernels of one process overlap, those of shards do not); results
    come in the order the runs end."""
    from gradattn.data.errors import DatasetNotFoundError

    index, count = shard
    if not (isinstance(count, int) and isinstance(index, int) and count >= 1 and 0 <= index < count):
        raise ConfigError(f"shard must be (k, n) with 0 <= k < n, got {shard!r}")
    plan = sweep_plan(base_cfg, datasets, models, protocols, seeds, stems, recorded)
    skips = {item["cfg"].run_key: item["result"] for item in plan if item["status"] == "recorded"}
    finished = [item["cfg"] for item in plan if item["status"] in ("finished", "recorded")]
    pending = [item["cfg"] for item in plan if item["status"] not in ("finished", "recorded")]
    grid = finished[index::count] + pending[index::count]
    if len({(cfg.device, cfg.deterministic) for cfg in grid}) > 1:
        raise ConfigError("a sweep's runs share one device and one determinism setting")
    results, missing = [], {}

    def on_done(cfg, result, error):
        if error is not None:
            if isinstance(error, DatasetNotFoundError):
                if not skip_missing:
                    raise error
                if cfg.dataset in missing:           # a run of that dataset already reported it
                    return
                missing[cfg.dataset] = str(error)
                result = {"dataset": cfg.dataset, "skipped_missing": str(error)}
            elif not keep_going:
                raise error
            else:
                traceback.print_exception(error)
                result = {"run_key": cfg.run_key, "failed": f"{type(error).__name__}: {error}"}
        results.append(result)
        if on_result is not None:
            on_result(result)

    for cfg in grid:
        if cfg.run_key in skips:
            on_done(cfg, skips[cfg.run_key], None)
    runnable = (cfg for cfg in grid if cfg.dataset not in missing and cfg.run_key not in skips)
    device = resolve_device(grid[0].device) if grid else "cpu"
    run_interleaved(runnable, experiment_steps, interleave, device, on_done)
    return results

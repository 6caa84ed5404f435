"""Gradient-flow analysis: the authors' `GradientFlowAnalyzer` reproduced, a corrected version, a
training-time gradient monitor and a dead-stage detector (SPEC 5, 7.4, 7.5).

Faithful mode ("faithful") does what the notebooks did: a legacy `register_backward_hook` on every
nn.Conv2d, nn.Linear and nn.TransformerEncoderLayer in `named_modules()` order, statistics of
`grad_output[0]` (the gradient of the module's *output*, over the whole batch tensor), N forward /
backward passes in train mode with no optimiser step, and a health score whose denominator is the
number of hooks *registered*. Legacy hooks silently never fire on `nn.MultiheadAttention.out_proj`
(used functionally) and on the RoPE layer's `linear1` (its 3-D output is a view that the in-place
ReLU rebases), so a healthy GradAttn scores at most 32/35 = 91.43 % (No-PE/LPE) or 38/41 = 92.68 %
(RoPE) while ResNet-18 scores 21/21. Those are instrumentation artefacts, not instabilities.

Corrected mode ("corrected") measures every module that owns parameters directly through its
*parameter* gradients (norm, and per-element RMS so layers of different size compare) and, where
it can, the gradient of its output through tensor hooks that do fire; the health score counts only
layers that were measured, with configurable thresholds, and BN can be in train or eval mode.

Both modes leave the model as they found it: train/eval flags, BN running statistics, `.grad` and
the RNG state are restored. The authors' run did not restore them (their BN running stats were
updated by 20 test batches after the test evaluation); pass `restore_state=False` to mimic that.
"""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from gradattn.fastdata import model_device
from gradattn.models import logits_of
from gradattn.models.blocks import TAP_NAMES

MODES = ("faithful", "corrected")
BN_MODES = ("train", "eval")
AUTHOR_HOOKED_TYPES = (nn.Conv2d, nn.Linear, nn.TransformerEncoderLayer)
_LEGACY_HOOK_WARNING = r"Using (a )?non-full backward hook"


@dataclass(frozen=True)
class Thresholds:
    """Per-layer gradient magnitude limits; the defaults are the authors' absolute values."""

    vanishing: float = 1e-6
    vanishing_high: float = 1e-8     # "high" severity below this
    exploding: float = 10.0
    exploding_high: float = 100.0    # "high" severity above this

    def __post_init__(self):
        if not 0 <= self.vanishing_high <= self.vanishing < self.exploding <= self.exploding_high:
            raise ValueError("thresholds must satisfy 0 <= vanishing_high <= vanishing < exploding "
                             f"<= exploding_high; got {self}")


AUTHOR_THRESHOLDS = Thresholds()


@dataclass
class LayerGradFlow:
    """One measured (or registered but silent) layer.

    `norms` is the per-batch series the score is computed on: the L2 norm of grad_output over the
    batch tensor (faithful) or the per-element RMS of the parameter gradient (corrected).
    `std_gradient` is the std of the per-batch stds, as the authors computed and labelled it;
    `mean_batch_std` is the mean of the per-batch stds.
    """

    name: str
    module_path: str
    module_type: str
    fired: bool
    norms: list = field(default_factory=list)
    mean_norm: float | None = None
    std_norm: float | None = None
    min_norm: float | None = None
    max_norm: float | None = None
    norm_ratio: float | None = None          # max_norm / min_norm; None when min_norm is 0
    mean_gradient: float | None = None       # mean over batches of mean |g|
    std_gradient: float | None = None        # std over batches of std(g) (the authors' label)
    mean_batch_std: float | None = None      # mean over batches of std(g)
    max_gradient: float | None = None        # mean over batches of max |g|
    num_params: int | None = None            # corrected: parameters owned directly
    param_grad_norm: float | None = None     # corrected: mean over batches of ||grad||
    activation_grad_norm: float | None = None  # corrected: mean ||d loss / d output||, if hooked
    activation_grad_rms: float | None = None


@dataclass
class GradFlowReport:
    mode: str
    metric: str                 # what LayerGradFlow.norms holds
    bn_mode: str
    num_batches: int
    thresholds: dict
    layers: list                # LayerGradFlow, registration (named_modules) order
    num_registered: int
    num_measured: int
    never_fired: list           # registered layers that produced no measurement
    health_score: float
    health_label: str
    health_score_authors_thresholds: float
    vanishing: list             # dicts: name, mean_norm, severity
    exploding: list
    decay_rate: float | None
    bottlenecks: list           # dicts: name, mean_norm
    activation_unmeasured: list = field(default_factory=list)  # corrected: output hook never fired

    @property
    def measured_layers(self) -> list:
        return [layer for layer in self.layers if layer.fired]

    @property
    def layer_names(self) -> list:
        return [layer.name for layer in self.measured_layers]

    @property
    def mean_norms(self) -> np.ndarray:
        return np.array([layer.mean_norm for layer in self.measured_layers], dtype=float)

    @property
    def std_norms(self) -> np.ndarray:
        return np.array([layer.std_norm for layer in self.measured_layers], dtype=float)

    def norm_matrix(self) -> np.ndarray:
        """(measured layers, batches) array of per-batch norms, NaN-padded if lengths differ."""
        rows = [layer.norms for layer in self.measured_layers]
        width = max((len(r) for r in rows), default=0)
        matrix = np.full((len(rows), width), np.nan)
        for i, row in enumerate(rows):
            matrix[i, :len(row)] = row
        return matrix

    def to_dict(self) -> dict:
        return _json_safe(asdict(self))

    def summary(self) -> str:
        lines = [
            f"gradient flow ({self.mode}, {self.metric}, BN {self.bn_mode}, {self.num_batches} batches)",
            f"health {self.health_score:.2%} ({self.health_label}): "
            f"{self.num_measured}/{self.num_registered} layers measured",
        ]
        if self.mode == "corrected":
            lines.append(f"health with the authors' thresholds: {self.health_score_authors_thresholds:.2%}")
        if self.never_fired:
            lines.append(f"never fired ({len(self.never_fired)}): {', '.join(self.never_fired)}")
        for kind in ("vanishing", "exploding"):
            entries = getattr(self, kind)
            if entries:
                zeros = sum(1 for e in entries if e["mean_norm"] == 0.0)
                lines.append(f"{kind} ({len(entries)}, {zeros} exactly zero): "
                             + ", ".join(e["name"] for e in entries))
        if self.decay_rate is not None:
            warn = " (warning: outside [0.1, 10])" if not 0.1 <= self.decay_rate <= 10 else ""
            lines.append(f"decay rate {self.decay_rate:.3g}{warn}")
        if self.bottlenecks:
            lines.append("bottlenecks: " + ", ".join(b["name"] for b in self.bottlenecks))
        return "\n".join(lines)


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def health_label(score: float) -> str:
    if score > 0.8:
        return "Excellent"
    if score > 0.6:
        return "Good"
    if score > 0.4:
        return "Moderate"
    return "Poor"


def stage_of(layer_name: str) -> str:
    """The stage a measured layer belongs to: its first name ('layer4' for 'layer4.0.conv1', 'stem',
    'encoder', ...), so runs whose layers are named alike can be counted per stage."""
    return str(layer_name).split(".", 1)[0]


def gradflow_summary(record: dict) -> dict:
    """The part of a run's gradflow.json (train.run_experiment) the findings need, small enough to commit
    beside the results (results/gradflow/): both health scores, the dead stages, and the layers whose
    parameter gradients vanish or explode in the corrected analysis, with their mean norm (0.0: no
    gradient at all). The full record keeps every layer's norms per batch; this keeps a few hundred bytes."""
    corrected = record.get("corrected") or {}

    def flagged(key):
        return [{"name": entry["name"], "stage": stage_of(entry["name"]), "severity": entry.get("severity"),
                 "mean_norm": entry.get("mean_norm")} for entry in corrected.get(key) or []]
    return {"faithful_health_score": record.get("faithful_health_score"),
            "corrected_health_score": record.get("corrected_health_score"),
            "dead_layer_names": list(record.get("dead_layer_names") or []),
            "vanishing": flagged("vanishing"), "exploding": flagged("exploding"),
            "never_fired": list(corrected.get("never_fired") or []),
            "num_measured": corrected.get("num_measured"), "num_registered": corrected.get("num_registered")}


# ---------------------------------------------------------------------------------------------
# shared plumbing


def take_batches(loader, num_batches: int, device: torch.device):
    """The first `num_batches` (inputs, int64 labels) batches of `loader` on `device`; refuses an empty loader."""
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1, got {num_batches}")
    count = 0
    for batch in loader:
        if count >= num_batches:
            break
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError("the loader must yield (inputs, labels) batches")
        yield batch[0].to(device, non_blocking=True), torch.as_tensor(batch[1]).to(device).long()
        count += 1
    if count == 0:
        raise ValueError("the loader yielded no batches; check the split is not empty")


def _check_device(model: nn.Module, device) -> torch.device:
    if next(model.parameters(), None) is None:
        raise ValueError("the model has no parameters, so there is no gradient flow to analyse")
    on = model_device(model)
    if device is None:
        return on
    device = torch.device(device)
    if device.type != on.type or (device.index is not None and device != on):
        raise ValueError(f"the model is on {on} but device={device}; move the model with "
                         f"model.to({str(device)!r}) or leave device=None")
    return on


@contextmanager
def preserved_state(model: nn.Module, restore: bool = True):
    """Undo everything an analysis pass does to a model: modes, buffers, .grad, RNG state."""
    modes = [(module, module.training) for module in model.modules()]
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()} if restore else {}
    params = list(model.parameters())
    grads = [p.grad for p in params]
    for p in params:
        p.grad = None
    device = model_device(model)
    rng_devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=rng_devices):
            yield
    finally:
        for p, g in zip(params, grads):
            p.grad = g
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
        for module, training in modes:
            module.training = training


def _forward_backward(model, inputs, labels, loss_fn):
    model.zero_grad(set_to_none=True)
    loss = loss_fn(logits_of(model(inputs)), labels)
    loss.backward()


def _series_stats(norms, means, stds, maxes) -> dict:
    norms = np.asarray(norms, dtype=float)
    min_norm, max_norm = float(norms.min()), float(norms.max())
    return dict(
        norms=norms.tolist(),
        mean_norm=float(norms.mean()),
        std_norm=float(norms.std()),
        min_norm=min_norm,
        max_norm=max_norm,
        norm_ratio=max_norm / min_norm if min_norm > 0 else None,
        mean_gradient=float(np.mean(means)),
        std_gradient=float(np.std(stds)),
        mean_batch_std=float(np.mean(stds)),
        max_gradient=float(np.mean(maxes)),
    )


def _tensor_stats(grad: torch.Tensor) -> torch.Tensor:
    grad = grad.detach().float()
    return torch.stack([grad.norm(), grad.abs().mean(), grad.std(), grad.abs().max()])


def _decay_rate(mean_norms) -> float | None:
    """Mean of norm[i] / norm[i+1] over consecutive measured layers; zero denominators skipped
    (inferred: the authors' exact-zero layer3/layer4 runs still printed finite rates)."""
    ratios = [a / b for a, b in zip(mean_norms[:-1], mean_norms[1:]) if b > 0]
    return float(np.mean(ratios)) if ratios else None


def _summarise(mode, metric, bn_mode, num_batches, thresholds, layers, num_registered,
               activation_unmeasured=()) -> GradFlowReport:
    measured = [layer for layer in layers if layer.fired]
    norms = np.array([layer.mean_norm for layer in measured], dtype=float)

    def healthy_fraction(t: Thresholds, denominator: int) -> float:
        healthy = int(((norms > t.vanishing) & (norms < t.exploding)).sum())
        return healthy / denominator if denominator else 0.0

    denominator = num_registered if mode == "faithful" else len(measured)
    score = healthy_fraction(thresholds, denominator)
    vanishing = [dict(name=layer.name, mean_norm=layer.mean_norm,
                      severity="high" if layer.mean_norm < thresholds.vanishing_high else "medium")
                 for layer in measured if layer.mean_norm < thresholds.vanishing]
    exploding = [dict(name=layer.name, mean_norm=layer.mean_norm,
                      severity="high" if layer.mean_norm > thresholds.exploding_high else "medium")
                 for layer in measured if layer.mean_norm > thresholds.exploding]
    bottlenecks = []
    if len(norms) > 1:
        cutoff = norms.mean() - 2 * norms.std()
        bottlenecks = [dict(name=layer.name, mean_norm=layer.mean_norm)
                       for layer in measured if layer.mean_norm < cutoff]
    return GradFlowReport(
        mode=mode, metric=metric, bn_mode=bn_mode, num_batches=num_batches,
        thresholds=asdict(thresholds), layers=layers, num_registered=num_registered,
        num_measured=len(measured), never_fired=[layer.name for layer in layers if not layer.fired],
        health_score=score, health_label=health_label(score),
        health_score_authors_thresholds=healthy_fraction(AUTHOR_THRESHOLDS, denominator),
        vanishing=vanishing, exploding=exploding, decay_rate=_decay_rate(norms.tolist()),
        bottlenecks=bottlenecks, activation_unmeasured=list(activation_unmeasured),
    )


# ---------------------------------------------------------------------------------------------
# faithful: the authors' GradientFlowAnalyzer


def _faithful(model, batches, loss_fn, thresholds) -> GradFlowReport:
    hooked = [(path, module) for path, module in model.named_modules()
              if isinstance(module, AUTHOR_HOOKED_TYPES)]
    names = [f"{path}_{type(module).__name__}_{i}" for i, (path, module) in enumerate(hooked)]
    per_call = {name: [] for name in names}

    def make_hook(name):
        def hook(module, grad_input, grad_output):
            if grad_output and grad_output[0] is not None:
                per_call[name].append(_tensor_stats(grad_output[0]))
        return hook

    handles = []
    num_batches = 0
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_LEGACY_HOOK_WARNING)
            for name, (_, module) in zip(names, hooked):
                handles.append(module.register_backward_hook(make_hook(name)))
            for inputs, labels in batches:
                _forward_backward(model, inputs, labels, loss_fn)
                num_batches += 1
    finally:
        for handle in handles:
            handle.remove()

    layers = []
    for name, (path, module) in zip(names, hooked):
        record = LayerGradFlow(name=name, module_path=path, module_type=type(module).__name__,
                               fired=bool(per_call[name]))
        if record.fired:
            stats = torch.stack(per_call[name]).cpu().double().numpy()
            for key, value in _series_stats(*stats.T).items():
                setattr(record, key, value)
        layers.append(record)
    return _summarise("faithful", "grad_output_norm", "train", num_batches, thresholds, layers,
                      num_registered=len(hooked))


# ---------------------------------------------------------------------------------------------
# corrected: parameter gradients of every module that owns parameters, plus output gradients


def _direct_params(module: nn.Module) -> list:
    return [(n, p) for n, p in module.named_parameters(recurse=False) if p.requires_grad]


def _first_tensor(output):
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return next((o for o in output if isinstance(o, torch.Tensor)), None)
    return None


def _corrected(model, batches, loss_fn, thresholds, bn_mode) -> GradFlowReport:
    owners = [(path, module, _direct_params(module)) for path, module in model.named_modules()]
    owners = [(path or ",".join(n for n, _ in params), path, module, params)
              for path, module, params in owners if params]
    param_stats = {name: [] for name, *_ in owners}
    act_stats = {name: [] for name, *_ in owners}

    def make_forward_hook(name):
        def forward_hook(module, inputs, output):
            out = _first_tensor(output)
            if out is None or not out.requires_grad:
                return
            # A view modified in place later (RoPE's linear1 -> ReLU(inplace)) loses hooks bound to
            # its own grad_fn; its base's grad_fn stays in the graph and sees the same gradient.
            base = out._base
            target = base if base is not None and base.numel() == out.numel() else out
            target.register_hook(lambda grad: act_stats[name].append(
                torch.stack([grad.detach().float().norm(), grad.new_tensor(float(grad.numel()))])))
        return forward_hook

    handles = [module.register_forward_hook(make_forward_hook(name)) for name, _, module, _ in owners]
    num_batches = 0
    try:
        for inputs, labels in batches:
            _forward_backward(model, inputs, labels, loss_fn)
            num_batches += 1
            with torch.no_grad():
                for name, _, _, params in owners:
                    grads = [p.grad.detach().float().reshape(-1) for _, p in params if p.grad is not None]
                    if grads:
                        flat = torch.cat(grads)
                        stats = _tensor_stats(flat)
                        param_stats[name].append(torch.cat([stats, stats[:1] / math.sqrt(flat.numel())]))
    finally:
        for handle in handles:
            handle.remove()

    layers, activation_unmeasured = [], []
    for name, path, module, params in owners:
        record = LayerGradFlow(name=name, module_path=path, module_type=type(module).__name__,
                               fired=bool(param_stats[name]),
                               num_params=sum(p.numel() for _, p in params))
        if record.fired:
            norm, mean_abs, std, max_abs, rms = torch.stack(param_stats[name]).cpu().double().numpy().T
            for key, value in _series_stats(rms, mean_abs, std, max_abs).items():
                setattr(record, key, value)
            record.param_grad_norm = float(norm.mean())
        if act_stats[name]:
            act_norm, act_numel = torch.stack(act_stats[name]).cpu().double().numpy().T
            record.activation_grad_norm = float(act_norm.mean())
            record.activation_grad_rms = float((act_norm / np.sqrt(act_numel)).mean())
        else:
            activation_unmeasured.append(name)
        layers.append(record)
    return _summarise("corrected", "param_grad_rms", bn_mode, num_batches, thresholds, layers,
                      num_registered=len(owners), activation_unmeasured=activation_unmeasured)


def analyze_gradient_flow(model: nn.Module, loader, mode: str = "faithful", num_batches: int = 20,
                          device=None, bn_mode: str = "train", loss_fn=None,
                          thresholds: Thresholds | None = None,
                          restore_state: bool = True) -> GradFlowReport:
    """Run `num_batches` forward/backward passes on `loader` and summarise the gradient flow.

    mode "faithful" is the authors' analysis (train mode, legacy hooks, registered-hook
    denominator); "corrected" measures parameter gradients of every parameter-owning module with
    `bn_mode` "train" (batch statistics, dropout on) or "eval" (running statistics, dropout off).
    `device` defaults to the model's device (the model is not moved).
    No optimiser step is taken and, with `restore_state`, the model is left exactly as it was.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {list(MODES)}")
    if bn_mode not in BN_MODES:
        raise ValueError(f"unknown bn_mode {bn_mode!r}; use one of {list(BN_MODES)}")
    if mode == "faithful" and bn_mode != "train":
        raise ValueError("the faithful analysis runs in train mode as the authors did; "
                         "use mode='corrected' for bn_mode='eval'")
    thresholds = thresholds or AUTHOR_THRESHOLDS
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = _check_device(model, device)
    with preserved_state(model, restore=restore_state):
        model.train(bn_mode == "train")
        batches = take_batches(loader, num_batches, device)
        if mode == "faithful":
            return _faithful(model, batches, loss_fn, thresholds)
        return _corrected(model, batches, loss_fn, thresholds, bn_mode)


def compare_modes(model: nn.Module, loader, num_batches: int = 20, device=None,
                  bn_mode: str = "train", loss_fn=None, thresholds: Thresholds | None = None) -> dict:
    """{"faithful": report, "corrected": report} for side-by-side views. The faithful report always
    uses the authors' thresholds and train mode; `bn_mode` and `thresholds` apply to the corrected one.

    The loader is iterated once per mode, so a shuffling loader gives each mode different batches.
    """
    common = dict(num_batches=num_batches, device=device, loss_fn=loss_fn)
    return {
        "faithful": analyze_gradient_flow(model, loader, "faithful", **common),
        "corrected": analyze_gradient_flow(model, loader, "corrected", bn_mode=bn_mode,
                                           thresholds=thresholds, **common),
    }


# ---------------------------------------------------------------------------------------------
# during training


class GradientMonitor:
    """Parameter-gradient norms per parameter-owning module, sampled every `every` steps.

    Call `after_backward(step)` after `loss.backward()`; on sampled steps it appends one record per
    module ({step, epoch, layer, index, grad_norm, grad_rms}) to `records`, ready for
    `pandas.DataFrame(monitor.records)`. Off-sample steps cost one modulo.
    """

    def __init__(self, model: nn.Module, every: int = 50):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = every
        self.records: list[dict] = []
        self.layers = []
        for path, module in model.named_modules():
            params = [p for _, p in _direct_params(module)]
            if params:
                name = path or ",".join(n for n, _ in _direct_params(module))
                self.layers.append((name, params, sum(p.numel() for p in params)))

    def samples(self, step: int) -> bool:
        """Whether `after_backward(step)` records (a CUDA-graphed loop runs that step eagerly)."""
        return step % self.every == 0

    @torch.no_grad()
    def after_backward(self, step: int, epoch: int | None = None) -> bool:
        if not self.samples(step):
            return False
        names, norms, sizes = [], [], []
        for name, params, numel in self.layers:
            grads = [p.grad for p in params if p.grad is not None]
            if grads:
                names.append(name)
                sizes.append(numel)
                norms.append(torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])))
        values = torch.stack(norms).cpu().tolist() if norms else []
        for index, (name, value, numel) in enumerate(zip(names, values, sizes)):
            self.records.append(dict(step=step, epoch=epoch, layer=name, index=index,
                                     grad_norm=value, grad_rms=value / math.sqrt(numel)))
        return True

    def to_dataframe(self):
        import pandas as pd
        return pd.DataFrame(self.records, columns=["step", "epoch", "layer", "index", "grad_norm", "grad_rms"])


# ---------------------------------------------------------------------------------------------
# dead stages (SPEC 7.5)


@dataclass
class DeadLayerReport:
    blocks: list          # dicts: name, max_abs, zero_fraction, dead
    taps: list            # dicts: token (1-based), name, dead, constant, max_deviation
    dead_layers: list     # names of blocks (and the stem) whose output is identically zero
    constant_tokens: list  # GradAttn: 1-based token numbers that are the projection bias only
    num_samples: int
    bn_mode: str

    def to_dict(self) -> dict:
        return _json_safe(asdict(self))

    def summary(self) -> str:
        if not self.dead_layers and not self.constant_tokens:
            return f"no dead layers over {self.num_samples} samples"
        lines = [f"dead layers over {self.num_samples} samples: {', '.join(self.dead_layers) or 'none'}"]
        if self.constant_tokens:
            names = [tap["name"] for tap in self.taps if tap["token"] in self.constant_tokens]
            lines.append(f"constant tokens {self.constant_tokens} ({', '.join(names)}): each is just "
                         "its projection's bias, so the model classifies from the other tokens")
        return "\n".join(lines)


@torch.no_grad()
def find_dead_layers(model: nn.Module, loader, num_batches: int = 5, device=None,
                     bn_mode: str = "eval", atol: float = 0.0) -> DeadLayerReport:
    """Flag the stem and residual/non-residual blocks whose ReLU output is identically zero.

    Also checks each of the five taps (stem, layer1..4 outputs): a tap whose globally pooled
    features are the same for every analysed sample (all zero, or constant because a shallower
    stage is dead) gives a GradAttn token that is a constant, the projection bias when zero.
    "The same" means within `atol`, exact by default: dead stages give exact zeros, while an
    untrained plain network in eval mode shrinks but does not erase the differences.
    """
    if bn_mode not in BN_MODES:
        raise ValueError(f"unknown bn_mode {bn_mode!r}; use one of {list(BN_MODES)}")
    missing = [name for name in TAP_NAMES if not hasattr(model, name)]
    if missing:
        raise ValueError(f"model lacks {missing}; find_dead_layers needs the registry's "
                         ".stem/.layer1..4 layout (gradattn.models.build_model)")
    device = _check_device(model, device)
    blocks = [("stem", model.stem)] + [(f"{stage}.{i}", block) for stage in TAP_NAMES[1:]
                                       for i, block in enumerate(getattr(model, stage).children())]
    block_stats = {name: {"max_abs": 0.0, "zeros": 0, "numel": 0} for name, _ in blocks}
    tap_stats = {name: {"reference": None, "max_deviation": 0.0, "max_abs": 0.0} for name in TAP_NAMES}

    def block_hook(name):
        def hook(module, inputs, output):
            stats = block_stats[name]
            stats["max_abs"] = max(stats["max_abs"], output.detach().abs().max().item())
            stats["zeros"] += int((output == 0).sum().item())
            stats["numel"] += output.numel()
        return hook

    def tap_hook(name):
        def hook(module, inputs, output):
            pooled = output.detach().float().mean(dim=(2, 3))
            stats = tap_stats[name]
            if stats["reference"] is None:
                stats["reference"] = pooled[0]
            stats["max_deviation"] = max(stats["max_deviation"],
                                         (pooled - stats["reference"]).abs().max().item())
            stats["max_abs"] = max(stats["max_abs"], pooled.abs().max().item())
        return hook

    handles = [module.register_forward_hook(block_hook(name)) for name, module in blocks]
    handles += [getattr(model, name).register_forward_hook(tap_hook(name)) for name in TAP_NAMES]
    num_samples = 0
    try:
        with preserved_state(model):
            model.train(bn_mode == "train")
            for inputs, _ in take_batches(loader, num_batches, device):
                model(inputs)
                num_samples += inputs.shape[0]
    finally:
        for handle in handles:
            handle.remove()
    if num_samples < 2:
        raise ValueError("find_dead_layers needs at least 2 samples to tell constant taps apart; "
                         "raise num_batches or the batch size")

    block_rows = [dict(name=name, max_abs=s["max_abs"], zero_fraction=s["zeros"] / s["numel"],
                       dead=s["max_abs"] == 0.0) for name, s in block_stats.items()]
    tap_rows = []
    for token, name in enumerate(TAP_NAMES, start=1):
        s = tap_stats[name]
        tap_rows.append(dict(token=token, name=name, dead=s["max_abs"] == 0.0,
                             constant=s["max_deviation"] <= atol,
                             max_deviation=s["max_deviation"]))
    is_gradattn = hasattr(model, "projections")
    return DeadLayerReport(
        blocks=block_rows, taps=tap_rows,
        dead_layers=[row["name"] for row in block_rows if row["dead"]],
        constant_tokens=[row["token"] for row in tap_rows if row["constant"]] if is_gradattn else [],
        num_samples=num_samples, bn_mode=bn_mode,
    )

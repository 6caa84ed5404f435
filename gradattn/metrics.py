"""Test-set metrics, exactly the ones the authors' `comprehensive_evaluation` printed (SPEC 3).

Everything is computed in numpy from the full logit matrix, so it does not depend on batching and
needs no scikit-learn at run time (tests check it against scikit-learn). All rates are fractions in
[0, 1]; multiply by 100 to compare with the paper's percentages.

- top-k accuracy for k in (1, 3, 5), skipping every k >= num_classes (top-k is then trivially 1;
  for PCam's 2 classes only top-1 exists). The authors averaged top-k per batch weighted by batch
  size, which equals the pooled value computed here.
- macro and weighted precision / recall / F1 with scikit-learn's `zero_division=0` semantics: a
  class never predicted has precision 0, a class absent from the labels has recall 0; macro
  averages over all `num_classes` classes, weighted averages by true-class support.
- confusion matrix (rows = true class, columns = predicted class), as a list of lists.
- mean and (population) std of the max-softmax confidence, mean predictive entropy (natural log).
- expected calibration error with 10 equal-width bins over (lo, hi].
- loss: mean cross-entropy (NLL of the softmax), unless the caller passes its own.
"""
from __future__ import annotations

import numpy as np
import torch

from gradattn.fastdata import autocast_context, model_device
from gradattn.models import logits_of

TOP_K = (1, 3, 5)
ECE_BINS = 10


def _as_numpy(array, dtype) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().float().cpu().numpy()
    return np.asarray(array, dtype=dtype)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of samples whose true class is among the k largest logits."""
    top_k = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float((top_k == labels[:, None]).any(axis=1).mean())


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def precision_recall_f1(cm: np.ndarray) -> dict:
    """Macro and support-weighted precision/recall/F1 from a confusion matrix, zero_division=0."""
    true_positive = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive), where=predicted > 0)
    recall = np.divide(true_positive, support, out=np.zeros_like(true_positive), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(true_positive),
                   where=denominator > 0)
    weights = support / support.sum()
    return {
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "precision_weighted": float((precision * weights).sum()),
        "recall_weighted": float((recall * weights).sum()),
        "f1_weighted": float((f1 * weights).sum()),
    }


def expected_calibration_error(confidences: np.ndarray, correct: np.ndarray, num_bins: int = ECE_BINS) -> float:
    """Sum over equal-width bins (lo, hi] of |accuracy - mean confidence| times the bin's share."""
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (confidences > lo) & (confidences <= hi)
        if in_bin.any():
            gap = abs(correct[in_bin].mean() - confidences[in_bin].mean())
            ece += gap * in_bin.mean()
    return float(ece)


def classification_metrics(logits, labels, num_classes: int, loss: float | None = None) -> dict:
    """All of the authors' test metrics from logits (N, C) and integer labels (N,)."""
    logits = _as_numpy(logits, np.float64)
    labels = _as_numpy(labels, np.int64).reshape(-1)
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"logits must be (N, C) and labels (N,) with the same N; got logits "
                         f"{logits.shape} and labels {labels.shape}")
    if logits.shape[0] == 0:
        raise ValueError("no samples: the loader yielded nothing to evaluate")
    if num_classes < 2 or logits.shape[1] != num_classes:
        raise ValueError(f"logits have {logits.shape[1]} columns but num_classes={num_classes}; "
                         "pass the dataset's class count (>= 2) matching the model head")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}); got range "
                         f"[{labels.min()}, {labels.max()}]")
    if not np.isfinite(logits).all():
        raise ValueError("logits contain NaN or inf; the model diverged or the inputs are broken")

    probabilities = softmax(logits)
    predictions = probabilities.argmax(axis=1)
    confidences = probabilities.max(axis=1)
    correct = (predictions == labels).astype(np.float64)
    log_probabilities = logits - logits.max(axis=1, keepdims=True)
    log_probabilities -= np.log(np.exp(log_probabilities).sum(axis=1, keepdims=True))
    entropy = -(probabilities * log_probabilities).sum(axis=1)
    nll = float(-log_probabilities[np.arange(len(labels)), labels].mean())
    cm = confusion_matrix(labels, predictions, num_classes)

    metrics = {"accuracy": float(correct.mean())}
    for k in TOP_K:
        if k < num_classes:
            metrics[f"top{k}_accuracy"] = float(correct.mean()) if k == 1 else top_k_accuracy(logits, labels, k)
    metrics.update(precision_recall_f1(cm))
    metrics.update({
        "mean_confidence": float(confidences.mean()),
        "std_confidence": float(confidences.std()),
        "mean_entropy": float(entropy.mean()),
        "ece": expected_calibration_error(confidences, correct),
        "loss": float(loss) if loss is not None else nll,
        "confusion_matrix": cm.tolist(),
    })
    return metrics


@torch.no_grad()
def eval_batches(model: torch.nn.Module, loader, device=None, precision: str = "auto", **forward_kwargs):
    """Yield (model output, int64 CPU labels) for each (inputs, labels) batch of `loader`: no grad, eval
    mode (the model's mode is restored when the generator ends), the autocast of `precision`
    (`fastdata.resolve_precision`; "auto": bf16 on GPUs that support it, fp32 on the CPU). The one
    evaluation pass that predictions and attention summaries share."""
    device = model_device(model, device)
    was_training = model.training
    model.eval()
    try:
        for batch in loader:
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise ValueError("the loader must yield (inputs, labels) batches")
            inputs, labels = batch[0].to(device, non_blocking=True), batch[1]
            with autocast_context(device, precision):
                output = model(inputs, **forward_kwargs)
            yield output, torch.as_tensor(labels).reshape(-1).long().cpu()
    finally:
        model.train(was_training)


def predict(model: torch.nn.Module, loader, device=None, precision: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 CPU logits and labels for every batch of `loader`, in eval mode (restored after)."""
    all_logits, all_labels = [], []
    for output, labels in eval_batches(model, loader, device, precision):
        all_logits.append(logits_of(output).float().cpu())
        all_labels.append(labels)
    if not all_logits:
        raise ValueError("the loader yielded no batches; check the split is not empty")
    return torch.cat(all_logits), torch.cat(all_labels)


def evaluate(model: torch.nn.Module, loader, device=None, num_classes: int | None = None,
             precision: str = "auto") -> dict:
    """The authors' test evaluation: eval mode, no grad, metrics over every batch of `loader`.

    `loader` is any iterable of (x, y) tensor batches (a DataLoader or `fastdata.DeviceLoader`).
    `device` defaults to the device of the model's parameters. The forward runs under the autocast of
    `precision` ("auto": bf16 on a GPU with bf16, fp32 on the CPU; run_experiment passes the run's);
    logits are cast to float32 before the softmax.
    """
    logits, labels = predict(model, loader, device, precision)
    metrics = classification_metrics(logits, labels, num_classes or logits.shape[1])
    metrics["num_samples"] = int(labels.numel())
    return metrics

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from gradattn.metrics import classification_metrics, eval_batches, evaluate, expected_calibration_error

# 8 samples, 4 classes; class 3 is present in the labels but never predicted, no logit ties.
LOGITS = np.array([
    [2.0, 0.1, -1.0, 0.3],
    [0.2, 1.5, 0.0, -0.4],
    [0.1, 0.4, 2.2, 0.0],
    [1.1, 0.9, -0.3, 1.0],
    [0.0, 3.0, 0.2, 0.5],
    [-0.5, 0.2, 0.9, 0.6],
    [1.7, -0.2, 0.3, 0.8],
    [0.3, 0.1, 1.2, -1.0],
])
LABELS = np.array([0, 1, 2, 3, 1, 3, 2, 2])


def _probs(logits):
    exp = np.exp(logits - logits.max(1, keepdims=True))
    return exp / exp.sum(1, keepdims=True)


def test_matches_sklearn_including_never_predicted_class():
    m = classification_metrics(LOGITS, LABELS, num_classes=4)
    predictions = LOGITS.argmax(1)
    assert 3 not in predictions and 3 in LABELS
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(LABELS, predictions))
    assert m["top1_accuracy"] == m["accuracy"]
    assert m["top3_accuracy"] == pytest.approx(skm.top_k_accuracy_score(LABELS, LOGITS, k=3, labels=range(4)))
    assert "top5_accuracy" not in m
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(LABELS, predictions, labels=range(4),
                                                         average=average, zero_division=0)
        assert m[f"precision_{average}"] == pytest.approx(p)
        assert m[f"recall_{average}"] == pytest.approx(r)
        assert m[f"f1_{average}"] == pytest.approx(f)
    assert m["confusion_matrix"] == skm.confusion_matrix(LABELS, predictions, labels=range(4)).tolist()
    assert m["loss"] == pytest.approx(skm.log_loss(LABELS, _probs(LOGITS), labels=range(4)))


def test_confidence_entropy_and_ece_by_hand():
    m = classification_metrics(torch.tensor(LOGITS), torch.tensor(LABELS), num_classes=4)
    probs = _probs(LOGITS)
    confidence = probs.max(1)
    assert m["mean_confidence"] == pytest.approx(confidence.mean())
    assert m["std_confidence"] == pytest.approx(np.sqrt(((confidence - confidence.mean()) ** 2).mean()))
    entropy = [-sum(p * np.log(p) for p in row) for row in probs]
    assert m["mean_entropy"] == pytest.approx(np.mean(entropy))
    correct = (probs.argmax(1) == LABELS).astype(float)
    ece = 0.0
    for b in range(10):
        lo, hi = b / 10, (b + 1) / 10
        members = [i for i in range(8) if lo < confidence[i] <= hi]
        if members:
            ece += len(members) / 8 * abs(correct[members].mean() - confidence[members].mean())
    assert m["ece"] == pytest.approx(ece)


def test_ece_bins_are_closed_on_the_right():
    # confidence exactly 0.5 falls into (0.4, 0.5], together with 0.45; one right, one wrong
    assert expected_calibration_error(np.array([0.5, 0.45]), np.array([1.0, 0.0])) == pytest.approx(0.025)
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.0


def test_top_k_skips_k_at_or_above_class_count_and_caller_loss_wins():
    logits = np.array([[0.2, 0.9, -0.1], [1.0, 0.1, 0.3], [0.0, 0.5, 0.7], [0.4, 0.3, 0.8]])
    labels = np.array([1, 2, 0, 2])
    m = classification_metrics(logits, labels, num_classes=3, loss=1.25)
    assert "top3_accuracy" not in m and "top5_accuracy" not in m
    assert m["loss"] == 1.25
    m5 = classification_metrics(np.c_[logits, logits[:, :2] - 1, logits[:, :1] - 2], labels, num_classes=6)
    assert m5["top5_accuracy"] == pytest.approx(skm.top_k_accuracy_score(
        labels, np.c_[logits, logits[:, :2] - 1, logits[:, :1] - 2], k=5, labels=range(6)))


@pytest.mark.parametrize("logits, labels, num_classes, message", [
    (np.zeros((3, 4)), np.array([0, 1]), 4, "same N"),
    (np.zeros((2, 4)), np.array([0, 1]), 5, "num_classes"),
    (np.zeros((2, 4)), np.array([0, 4]), 4, "labels must lie"),
    (np.array([[np.nan, 0.0], [0.0, 1.0]]), np.array([0, 1]), 2, "NaN"),
])
def test_bad_input_names_the_problem(logits, labels, num_classes, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(logits, labels, num_classes)


class _Recorder(torch.nn.Module):
    """Linear classifier that remembers whether it was in training mode when called."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)
        self.dropout = torch.nn.Dropout(0.9)
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        return self.linear(self.dropout(x))


def test_evaluate_runs_in_eval_mode_over_any_batch_iterable_and_restores_mode():
    torch.manual_seed(0)
    model = _Recorder().train()
    x, y = torch.randn(10, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    batches = [(x[:4], y[:4]), (x[4:7], y[4:7]), (x[7:], y[7:])]
    m = evaluate(model, batches)
    assert model.modes == [False, False, False] and model.training
    assert m["num_samples"] == 10
    with torch.no_grad():
        expected = classification_metrics(model.linear(x), y, 3)
    assert m["accuracy"] == pytest.approx(expected["accuracy"])
    assert m["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=3)
    assert evaluate(model, loader, device="cpu")["confusion_matrix"] == m["confusion_matrix"]


def test_eval_batches_leaves_grad_and_training_mode_to_the_caller():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.5)).train()
    loader = [(torch.ones(4, 3), torch.zeros(4)), (torch.ones(2, 3), torch.ones(2))]
    seen = []
    for output, labels in eval_batches(model, loader):
        seen.append((output.requires_grad, model.training, torch.is_grad_enabled(), labels.dtype))
    assert seen == [(False, False, True, torch.int64)] * 2
    assert model.training

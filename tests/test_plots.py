import json

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from gradattn import plots  # noqa: E402
from gradattn.gradflow import GradientMonitor, analyze_gradient_flow  # noqa: E402


def _render(fig):
    assert isinstance(fig, Figure)
    FigureCanvasAgg(fig).draw()
    return fig


@pytest.fixture(scope="module")
def report():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 8), nn.ReLU(),
                          nn.Linear(8, 3))
    batches = [(torch.randn(2, 1, 6, 6), torch.tensor([0, 2])) for _ in range(3)]
    return analyze_gradient_flow(model, batches, num_batches=3)


def test_gradient_flow_panel_shows_the_reports_numbers(report):
    fig = _render(plots.plot_gradient_flow(report, title="quick profile: not the paper's numbers"))
    bars, heat, hist, line, colorbar = fig.axes
    assert len(fig.axes) == 5 and fig._suptitle.get_text().startswith("quick profile")
    assert [p.get_height() for p in bars.patches] == pytest.approx(report.mean_norms.tolist())
    assert bars.get_yscale() == "log" and line.get_yscale() == "log"
    np.testing.assert_allclose(heat.images[0].get_array(), report.norm_matrix()[:10, :20])
    assert sum(p.get_height() for p in hist.patches) == report.norm_matrix().size
    thresholds = [l.get_xdata()[0] for l in hist.lines]
    assert thresholds == pytest.approx([-6.0, 1.0])
    np.testing.assert_allclose(line.lines[0].get_ydata(), report.mean_norms)
    from_json = plots.plot_gradient_flow(json.loads(json.dumps(report.to_dict())))
    assert [p.get_height() for p in from_json.axes[0].patches] == pytest.approx(report.mean_norms.tolist())


def test_grad_norm_over_training_draws_one_line_per_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    monitor = GradientMonitor(model, every=1)
    for step in range(3):
        model.zero_grad()
        nn.functional.cross_entropy(model(torch.randn(5, 3)), torch.arange(5) % 2).backward()
        monitor.after_backward(step)
    ax = _render(plots.plot_grad_norm_over_training(monitor.records, title="t")).axes[0]
    assert [l.get_label() for l in ax.lines] == ["0", "2"]
    expected = [r["grad_norm"] for r in monitor.records if r["layer"] == "2"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), expected)
    only = plots.plot_grad_norm_over_training(monitor.to_dataframe(), value="grad_rms", layers=["0"])
    assert len(only.axes[0].lines) == 1
    with pytest.raises(ValueError, match="after_backward"):
        plots.plot_grad_norm_over_training([])


def test_learning_curves_plot_train_and_val():
    history = [dict(epoch=e, train_loss=2 / e, val_loss=2.5 / e, train_acc=0.2 * e, val_acc=0.15 * e)
               for e in (1, 2, 3)]
    loss, acc = _render(plots.plot_learning_curves(history, title="t")).axes
    np.testing.assert_allclose(loss.lines[1].get_ydata(), [2.5, 1.25, 2.5 / 3])
    np.testing.assert_allclose(acc.lines[0].get_xdata(), [1, 2, 3])
    assert [l.get_label() for l in acc.lines] == ["train", "val"]
    with pytest.raises(ValueError, match="train_loss"):
        plots.plot_learning_curves([dict(epoch=1, lr=0.1)])


def test_confusion_matrix_is_row_normalised_and_annotated():
    cm = [[3, 1, 0], [0, 0, 0], [2, 2, 4]]   # class 1 never occurs: its row stays zero
    fig = _render(plots.plot_confusion_matrix(cm, ["a", "b", "c"], title="t"))
    ax = fig.axes[0]
    assert len(fig.axes) == 2
    np.testing.assert_allclose(ax.images[0].get_array(), [[0.75, 0.25, 0], [0, 0, 0], [0.25, 0.25, 0.5]])
    assert len(ax.texts) == 9 and ax.texts[0].get_text() == "0.75"
    raw = plots.plot_confusion_matrix(np.array(cm), normalize=False).axes[0]
    np.testing.assert_array_equal(raw.images[0].get_array(), cm)
    with pytest.raises(ValueError, match="class names"):
        plots.plot_confusion_matrix(cm, ["a", "b"])


def test_attention_maps_one_axis_per_layer_and_head():
    attn = torch.softmax(torch.randn(3, 2, 5, 5, generator=torch.Generator().manual_seed(0)), dim=-1)
    fig = _render(plots.plot_attention_maps(attn, title="t"))
    assert len(fig.axes) == 6
    np.testing.assert_allclose(fig.axes[3].images[0].get_array(), attn[1, 1].numpy(), rtol=1e-6)
    assert len(fig.axes[0].texts) == 25
    assert [t.get_text() for t in fig.axes[4].get_xticklabels()] == list(plots.TAP_NAMES)
    batched = plots.plot_attention_maps(attn.unsqueeze(0).repeat(2, 1, 1, 1, 1))
    np.testing.assert_allclose(batched.axes[0].images[0].get_array(), attn[0, 0].numpy(), rtol=1e-6)
    single = plots.plot_attention_maps(attn[0, 0].numpy())
    assert len(single.axes) == 1
    with pytest.raises(ValueError, match="tap names"):
        plots.plot_attention_maps(np.eye(4))


def test_accuracy_ci_dots_bars_and_paper_marks():
    rows = [dict(model="resnet18", mean=95.9, ci_low=95.5, ci_high=96.3, paper=95.97),
            dict(model="gradattn_lpe", mean=95.2, ci_low=94.6, ci_high=95.8, paper=None)]
    ax = _render(plots.plot_accuracy_ci(rows, title="t")).axes[0]
    dots = ax.containers[0].lines[0]
    paper, = [line for line in ax.lines if line.get_label() == "paper"]
    np.testing.assert_allclose(dots.get_xdata(), [95.9, 95.2])
    np.testing.assert_allclose(paper.get_xdata(), [95.97])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["resnet18", "gradattn_lpe"]
    with pytest.raises(ValueError, match="ci_low <= mean"):
        plots.plot_accuracy_ci([dict(model="x", mean=1.0, ci_low=2.0, ci_high=3.0)])

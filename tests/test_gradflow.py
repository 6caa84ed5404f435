import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from gradattn.gradflow import (GradientMonitor, Thresholds, analyze_gradient_flow, compare_modes,
                               find_dead_layers, gradflow_summary, health_label, stage_of)

# Only exact zeros vanish and nothing explodes: the health score is then the fraction of hooks that
# produced a non-zero measurement, i.e. the ceiling the instrumentation allows.
NO_LIMITS = Thresholds(vanishing=1e-30, vanishing_high=1e-30, exploding=1e30, exploding_high=1e30)


def _batches(n=2, batch=4, chans=3, side=32, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, chans, side, side, generator=g), torch.randint(0, classes, (batch,), generator=g))
            for _ in range(n)]


class TinyTransformerNet(nn.Module):
    """Conv + BN stem, a TransformerEncoderLayer (its MHA.out_proj is used functionally), a Linear
    on a 3-D input followed by an in-place ReLU (RoPE's linear1 pattern) and a Linear head."""

    def __init__(self, d=8, classes=3):
        super().__init__()
        self.conv = nn.Conv2d(1, d, 3, padding=1)
        self.bn = nn.BatchNorm2d(d)
        self.encoder = nn.TransformerEncoderLayer(d, 2, 16, dropout=0.0, batch_first=True)
        self.linear1 = nn.Linear(d, d)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        tokens = self.bn(self.conv(x)).flatten(2).transpose(1, 2)
        hidden = torch.relu_(self.linear1(self.encoder(tokens)))
        return self.head(hidden.mean(1))


def _tiny_batches(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(3, 1, 4, 4, generator=g), torch.randint(0, 3, (3,), generator=g)) for _ in range(n)]


def test_faithful_names_hooks_like_the_authors_and_counts_silent_hooks():
    torch.manual_seed(0)
    model = TinyTransformerNet()
    report = analyze_gradient_flow(model, _tiny_batches(), num_batches=2, thresholds=NO_LIMITS)
    names = [layer.name for layer in report.layers]
    assert names[0] == "conv_Conv2d_0" and names[1] == "encoder_TransformerEncoderLayer_1"
    assert names[-1] == "head_Linear_6"
    assert report.num_registered == 7          # conv, TEL, out_proj, linear1, linear2 (TEL), linear1, head
    assert report.never_fired == ["encoder.self_attn.out_proj_NonDynamicallyQuantizableLinear_2",
                                  "linear1_Linear_5"]
    assert report.num_measured == 5
    assert report.health_score == pytest.approx(5 / 7)   # the denominator counts silent hooks


def test_faithful_statistics_are_those_of_grad_output():
    torch.manual_seed(0)
    model = TinyTransformerNet()
    batches = _tiny_batches()
    report = analyze_gradient_flow(model, batches, num_batches=2)
    head = report.layers[-1]
    # grad_output of the head is d(mean CE)/d(logits) = (softmax - onehot) / B, computed by hand
    norms, maxes, stds = [], [], []
    model.train()
    for x, y in batches:
        with torch.no_grad(), torch.random.fork_rng():
            logits = model(x)
        grad = (logits.softmax(1) - nn.functional.one_hot(y, 3)) / len(y)
        norms.append(grad.norm().item()), maxes.append(grad.abs().max().item()), stds.append(grad.std().item())
    assert head.norms == pytest.approx(norms, rel=1e-5)
    assert head.mean_norm == pytest.approx(np.mean(norms), rel=1e-5)
    assert head.std_norm == pytest.approx(np.std(norms), rel=1e-4, abs=1e-9)
    assert head.max_gradient == pytest.approx(np.mean(maxes), rel=1e-5)
    assert head.std_gradient == pytest.approx(np.std(stds), rel=1e-3, abs=1e-9)   # the authors' label
    assert head.mean_batch_std == pytest.approx(np.mean(stds), rel=1e-5)
    measured = report.mean_norms
    expected_decay = np.mean([a / b for a, b in zip(measured[:-1], measured[1:])])
    assert report.decay_rate == pytest.approx(expected_decay)


def test_analysis_leaves_model_state_untouched_unless_asked():
    torch.manual_seed(0)
    model = TinyTransformerNet().eval()
    model.head.weight.grad = torch.ones_like(model.head.weight)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    analyze_gradient_flow(model, _tiny_batches(), num_batches=2)
    analyze_gradient_flow(model, _tiny_batches(), mode="corrected", num_batches=2)
    assert not any(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(model.head.weight.grad, torch.ones_like(model.head.weight))
    assert model.conv.weight.grad is None
    assert torch.equal(torch.get_rng_state(), rng)
    analyze_gradient_flow(model, _tiny_batches(), num_batches=2, restore_state=False)  # the authors' way
    assert not torch.equal(before["bn.running_mean"], model.bn.running_mean)


def test_corrected_measures_parameter_gradients_and_in_place_views():
    torch.manual_seed(0)
    model = TinyTransformerNet()
    (x, y), = _tiny_batches(1)
    report = analyze_gradient_flow(model, [(x, y)], mode="corrected", num_batches=1)
    by_name = {layer.name: layer for layer in report.layers}
    assert report.never_fired == [] and report.num_measured == report.num_registered == len(by_name)
    assert {"conv", "bn", "encoder.self_attn", "encoder.self_attn.out_proj", "encoder.norm1",
            "linear1", "head"} <= set(by_name)
    assert report.activation_unmeasured == ["encoder.self_attn.out_proj"]   # used functionally

    # reference gradients: same forward (train mode, no dropout), linear1's pre-ReLU output kept
    model.train()
    model.zero_grad()
    tokens = model.bn(model.conv(x)).flatten(2).transpose(1, 2)
    pre_relu = model.linear1(model.encoder(tokens))
    pre_relu.retain_grad()
    nn.functional.cross_entropy(model.head(torch.relu(pre_relu).mean(1)), y).backward()
    linear1 = by_name["linear1"]
    assert linear1.activation_grad_norm == pytest.approx(pre_relu.grad.norm().item(), rel=1e-5)
    grad = torch.cat([model.linear1.weight.grad.flatten(), model.linear1.bias.grad])
    assert linear1.param_grad_norm == pytest.approx(grad.norm().item(), rel=1e-5)
    assert linear1.mean_norm == pytest.approx(grad.norm().item() / math.sqrt(grad.numel()), rel=1e-5)
    assert linear1.num_params == grad.numel()


def test_corrected_eval_mode_and_custom_thresholds():
    torch.manual_seed(0)
    model = TinyTransformerNet()
    strict = Thresholds(vanishing=1.0, vanishing_high=1e-3, exploding=2.0, exploding_high=3.0)
    report = analyze_gradient_flow(model, _tiny_batches(), mode="corrected", bn_mode="eval",
                                   num_batches=2, thresholds=strict)
    assert report.bn_mode == "eval" and report.health_score == 0.0 and report.health_label == "Poor"
    assert len(report.vanishing) == report.num_measured
    assert report.health_score_authors_thresholds == 1.0
    payload = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert payload["thresholds"]["vanishing"] == 1.0 and len(payload["layers"]) == report.num_registered
    assert "authors' thresholds" in report.summary()


@pytest.mark.parametrize("score, label", [(0.81, "Excellent"), (0.8, "Good"), (0.61, "Good"),
                                          (0.5, "Moderate"), (0.4, "Poor")])
def test_health_labels(score, label):
    assert health_label(score) == label


@pytest.fixture(scope="module")
def build_model():
    models = pytest.importorskip("gradattn.models")
    return models.build_model


@pytest.mark.parametrize("name, registered, ceiling, silent", [
    ("resnet18", 21, 1.0, []),
    ("gradattn_nope", 35, 32 / 35, ["encoder.0.self_attn.out_proj", "encoder.1.self_attn.out_proj",
                                    "encoder.2.self_attn.out_proj"]),
    ("gradattn_lpe", 35, 32 / 35, ["encoder.0.self_attn.out_proj", "encoder.1.self_attn.out_proj",
                                   "encoder.2.self_attn.out_proj"]),
    ("gradattn_rope", 41, 38 / 41, ["encoder.0.linear1", "encoder.1.linear1", "encoder.2.linear1"]),
])
def test_spec_7_4_hooks_that_never_fire_on_registry_models(build_model, name, registered, ceiling, silent):
    torch.manual_seed(0)
    model = build_model(name, 10)
    batches = _batches()
    faithful = analyze_gradient_flow(model, batches, num_batches=2, thresholds=NO_LIMITS)
    assert faithful.num_registered == registered
    assert [n.rsplit("_", 2)[0] for n in faithful.never_fired] == silent
    assert faithful.health_score == pytest.approx(ceiling)   # 91.43 % / 92.68 % / 100 %
    assert analyze_gradient_flow(model, batches, num_batches=2).health_score <= ceiling
    corrected = analyze_gradient_flow(model, batches, mode="corrected", num_batches=2, thresholds=NO_LIMITS)
    assert corrected.never_fired == [] and corrected.health_score == 1.0
    measured = {layer.name: layer for layer in corrected.layers}
    for path in silent:   # measured in corrected mode through parameter gradients
        assert measured[path].fired and measured[path].param_grad_norm > 0
    if name == "gradattn_rope":
        assert not set(silent) & set(corrected.activation_unmeasured)


def _kill_layer4(model):
    with torch.no_grad():
        model.layer4[1].bn2.weight.zero_()
        model.layer4[1].bn2.bias.fill_(-1.0)   # BN output -1 everywhere, so the final ReLU gives 0


def test_dead_layer4_is_found_and_explains_the_papers_80_percent(build_model):
    torch.manual_seed(0)
    model = build_model("gradattn_nope", 10)
    batches = _batches()
    for bn_mode in ("eval", "train"):
        intact = find_dead_layers(model, batches, bn_mode=bn_mode)
        assert intact.dead_layers == [] and intact.constant_tokens == [] and intact.num_samples == 8
    _kill_layer4(model)
    dead = find_dead_layers(model, batches)
    assert dead.dead_layers == ["layer4.1"]
    assert dead.constant_tokens == [5]
    assert [tap["dead"] for tap in dead.taps] == [False, False, False, False, True]
    assert "layer4" in dead.summary()
    reports = compare_modes(model, batches, num_batches=2, thresholds=NO_LIMITS)
    faithful, corrected = reports["faithful"], reports["corrected"]
    assert [v["name"].rsplit("_", 2)[0] for v in faithful.vanishing] == [
        "layer4.0.conv1", "layer4.0.conv2", "layer4.1.conv1", "layer4.1.conv2"]
    assert all(v["mean_norm"] == 0.0 and v["severity"] == "high" for v in faithful.vanishing)
    assert faithful.health_score == pytest.approx(28 / 35)   # SPEC 5: "80.00 (layer4 zero)"
    zero = [v["name"] for v in corrected.vanishing]
    assert zero == [f"layer4.{b}.{m}{i}" for b in (0, 1) for i in (1, 2) for m in ("conv", "bn")]
    assert corrected.health_score == pytest.approx(1 - 8 / corrected.num_measured)


def test_summary_of_a_runs_record_keeps_the_dead_stage_and_its_zero_gradients(build_model):
    from gradattn.train import TrainConfig, _gradient_flow
    torch.manual_seed(0)
    model = build_model("gradattn_nope", 10)
    _kill_layer4(model)
    record = _gradient_flow(model, _batches(), TrainConfig(gradflow_batches=2), torch.device("cpu"))
    summary = gradflow_summary(json.loads(json.dumps(record)))        # as read back from gradflow.json
    assert summary["dead_layer_names"] == ["layer4.1"]
    assert summary["corrected_health_score"] == record["corrected_health_score"] < 1.0
    assert {v["stage"] for v in summary["vanishing"]} == {"layer4"}
    assert all(v["mean_norm"] == 0.0 for v in summary["vanishing"])
    assert summary["never_fired"] == [] and summary["num_measured"] == record["corrected"]["num_measured"]
    assert len(json.dumps(summary)) < len(json.dumps(record)) / 10
    assert [stage_of(n) for n in ("layer4.0.conv1", "stem.0", "encoder.layers.1.linear1")] == [
        "layer4", "stem", "encoder"]


def test_gradient_monitor_samples_every_n_steps():
    torch.manual_seed(0)
    model = TinyTransformerNet()
    monitor = GradientMonitor(model, every=2)
    for step, (x, y) in enumerate(_tiny_batches(3)):
        model.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        assert monitor.after_backward(step, epoch=0) == (step % 2 == 0)
    assert sorted({r["step"] for r in monitor.records}) == [0, 2]
    last = {r["layer"]: r for r in monitor.records if r["step"] == 2}
    head_grad = torch.cat([model.head.weight.grad.flatten(), model.head.bias.grad])
    assert last["head"]["grad_norm"] == pytest.approx(head_grad.norm().item(), rel=1e-5)
    assert last["head"]["grad_rms"] == pytest.approx(head_grad.norm().item() / math.sqrt(head_grad.numel()), rel=1e-5)
    assert set(last) == {layer.name for layer in analyze_gradient_flow(
        model, _tiny_batches(1), mode="corrected", num_batches=1).layers}
    assert list(monitor.to_dataframe().columns) == ["step", "epoch", "layer", "index", "grad_norm", "grad_rms"]


def test_bad_arguments_are_explained():
    model = TinyTransformerNet()
    with pytest.raises(ValueError, match="unknown mode"):
        analyze_gradient_flow(model, _tiny_batches(), mode="fixed")
    with pytest.raises(ValueError, match="mode='corrected'"):
        analyze_gradient_flow(model, _tiny_batches(), bn_mode="eval")
    with pytest.raises(ValueError, match="no batches"):
        analyze_gradient_flow(model, [])
    with pytest.raises(ValueError, match="model.to"):
        analyze_gradient_flow(model, _tiny_batches(), device="meta")
    with pytest.raises(ValueError, match="no parameters, so there is no gradient flow"):
        analyze_gradient_flow(torch.nn.ReLU(), _tiny_batches(), device="cpu")
    with pytest.raises(ValueError, match="vanishing_high"):
        Thresholds(vanishing=1.0, exploding=0.5)
    with pytest.raises(ValueError, match=r"\.stem"):
        find_dead_layers(model, _tiny_batches())
    with pytest.raises(ValueError, match="every"):
        GradientMonitor(model, every=0)

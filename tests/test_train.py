"""The fit loop on tiny stand-ins: learning, LR plateau, early stopping, the SPEC 7.2 restore defect,
exact resume after a kill, and the NaN stop. One small end-to-end run on the embedded sample."""
import copy
import csv
import dataclasses
import json

import pytest
import torch
from torch import nn

from gradattn.train import (EarlyStopping, NonFiniteLossError, ReduceLROnPlateau, TIMING_COLUMNS,
                            ConfigError, TrainConfig, build_optimizer, fit, load_checkpoint)


class TensorBatches:
    """(x, y) batches of fixed tensors, reshuffled per epoch from (seed, epoch) like DeviceLoader."""

    def __init__(self, x, y, batch_size=16, shuffle=False, seed=0):
        self.x, self.y, self.batch_size, self.shuffle, self.seed, self.epoch = x, y, batch_size, shuffle, seed, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return -(-len(self.y) // self.batch_size)

    def __iter__(self):
        order = (torch.randperm(len(self.y), generator=torch.Generator().manual_seed(self.seed * 1000 + self.epoch))
                 if self.shuffle else torch.arange(len(self.y)))
        for start in range(0, len(self.y), self.batch_size):
            index = order[start:start + self.batch_size]
            yield self.x[index], self.y[index]


class DriftingValidation(TensorBatches):
    """A validation set whose labels flip after `good_passes` passes: val accuracy peaks early, then
    collapses while the weights keep changing, so the best epoch is never the last."""

    def __init__(self, x, y, good_passes=2):
        super().__init__(x, y, batch_size=32)
        self.passes, self.good_passes = 0, good_passes

    def __iter__(self):
        self.passes += 1
        flip = self.passes > self.good_passes
        for x, y in super().__iter__():
            yield x, (1 - y) if flip else y


def tiny_problem(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return x, y


def tiny_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))


def tiny_cfg(**overrides):
    return TrainConfig(**{"epochs": 4, "progress": False, "lr": 1e-2, "early_stopping_patience": 100,
                          **overrides})


def loaders(seed=0):
    x, y = tiny_problem(64, seed=1)
    xv, yv = tiny_problem(32, seed=2)
    return TensorBatches(x, y, shuffle=True, seed=seed), TensorBatches(xv, yv, batch_size=32)


def test_fit_learns():
    train, val = loaders()
    result = fit(tiny_net(), train, val, tiny_cfg(epochs=8))
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < 0.6 * losses[0]
    assert result.best_val_acc >= 0.85
    assert result.finished and result.epochs_run == 8
    assert all(r["images_per_s"] > 0 and r["epoch_time_s"] > 0 for r in result.history)


def adam_steps(model, optimizer, count, seed=0):
    x, y = tiny_problem(32, seed=3)
    for step in range(count):
        torch.manual_seed(seed + step)    # the same dropout draws for every optimizer compared
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


def test_cpu_training_uses_fused_adam_and_its_step_is_the_default_adams_to_rounding():
    model, twin = tiny_net(), tiny_net()
    fused = build_optimizer(twin, "cpu", lr=1e-2, weight_decay=1e-4)
    assert fused.defaults["fused"] and fused.defaults["lr"] == 1e-2 and fused.defaults["weight_decay"] == 1e-4
    default = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    expected, got = adam_steps(model, default, 1), adam_steps(twin, fused, 1)
    moved = max((a - b).abs().max().item() for a, b in zip(expected, [p.detach() for p in tiny_net().parameters()]))
    assert moved > 1e-3          # the step did change the weights
    for a, b in zip(expected, got):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)


def test_an_optimizer_state_of_the_default_adam_resumes_in_the_fused_one():
    model, twin = tiny_net(), tiny_net()
    default = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    adam_steps(model, default, 3)
    twin.load_state_dict(model.state_dict())
    fused = build_optimizer(twin, "cpu", lr=1e-2, weight_decay=1e-4)
    fused.load_state_dict(copy.deepcopy(default.state_dict()))   # as from a checkpoint: no shared tensors
    expected, got = adam_steps(model, default, 1, seed=10), adam_steps(twin, fused, 1, seed=10)
    assert int(fused.state[next(iter(twin.parameters()))]["step"]) == 4   # bias correction continued
    for a, b in zip(expected, got):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)


def test_plateau_reduces_lr_after_patience_and_respects_min_lr():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    plateau = ReduceLROnPlateau(optimizer, factor=0.2, patience=3, min_lr=0.03)
    reduced = [plateau.step(v) for v in [0.5, 0.6, 0.6, 0.6, 0.6, 0.7, 0.1, 0.1, 0.1]]
    assert reduced == [False, False, False, False, True, False, False, False, True]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.04)
    assert [plateau.step(0.0) for _ in range(3)] == [False, False, True]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.03)   # clamped, not 0.008
    assert [plateau.step(0.0) for _ in range(3)] == [False, False, False]   # already at min_lr


class ConstantOutput(nn.Module):
    """Weights that train (weight decay moves them) but logits that never change: val acc is flat."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(2, 8))

    def forward(self, x):
        return x.new_zeros(x.shape[0], 2) + 0.0 * self.weight.sum()


def test_plateau_and_early_stopping_in_the_loop():
    train, val = loaders()
    cfg = tiny_cfg(epochs=50, early_stopping_patience=7, lr_patience=3)
    result = fit(ConstantOutput(), train, val, cfg)
    assert result.best_epoch == 1 and result.stopped_early
    assert result.epochs_run == 1 + 7                         # fires patience epochs after the best
    lrs = [r["lr"] for r in result.history]
    assert lrs == pytest.approx([1e-2] * 4 + [2e-3] * 3 + [4e-4])


def snapshots_per_epoch():
    saved = {}

    def on_epoch_end(epoch, model, record):
        saved[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return saved, on_epoch_end


def same_weights(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("paper_defects", [True, False])
def test_restore_defect_vs_corrected(paper_defects):
    x, y = tiny_problem(64, seed=1)
    train = TensorBatches(x, y, shuffle=True)
    val = DriftingValidation(*tiny_problem(32, seed=2), good_passes=2)
    saved, on_epoch_end = snapshots_per_epoch()
    model = tiny_net()
    cfg = tiny_cfg(epochs=20, early_stopping_patience=3, paper_defects=paper_defects)
    result = fit(model, train, val, cfg, on_epoch_end=on_epoch_end)
    last = result.epochs_run
    assert result.stopped_early and last == result.best_epoch + 3
    assert not same_weights(saved[result.best_epoch], saved[last])
    restored = model.state_dict()
    if paper_defects:   # SPEC 7.2: the "best" dict aliases the live tensors -> last epoch's weights
        assert same_weights(restored, saved[last])
    else:
        assert same_weights(restored, saved[result.best_epoch])


def test_shallow_state_dict_copy_aliases_live_weights():
    model = tiny_net()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    shallow = EarlyStopping(shallow_copy=True).snapshot(model)
    deep = EarlyStopping(shallow_copy=False).snapshot(model)
    before = {k: v.clone() for k, v in deep.items()}
    x, y = tiny_problem(16)
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    live = model.state_dict()
    for key in ("0.weight", "1.running_mean", "4.bias"):
        assert not torch.equal(shallow[key], before[key])     # the "saved" tensor moved with training
        assert torch.equal(shallow[key], live[key])
        assert torch.equal(deep[key], before[key])            # a real copy did not


class Killed(Exception):
    pass


def without_timing(history):
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in history]


@pytest.mark.parametrize("how", ["raise_in_callback", "max_epochs_this_call"])
def test_resume_after_kill_matches_uninterrupted(tmp_path, how):
    cfg = tiny_cfg(epochs=4)
    train, val = loaders()
    reference_model = tiny_net()
    reference = fit(reference_model, train, val, cfg, checkpoint_path=tmp_path / "a.pt")

    checkpoint = tmp_path / "b.pt"
    train, val = loaders()
    if how == "raise_in_callback":
        def kill_after_epoch_2(epoch, model, record):
            if epoch == 2:
                raise Killed
        with pytest.raises(Killed):
            fit(tiny_net(), train, val, cfg, checkpoint_path=checkpoint, on_epoch_end=kill_after_epoch_2)
    else:
        partial = fit(tiny_net(), train, val, cfg, checkpoint_path=checkpoint, max_epochs_this_call=2)
        assert not partial.finished and partial.epochs_run == 2
    assert load_checkpoint(checkpoint, "cpu")["epoch"] == 2

    torch.manual_seed(12345)                  # a different process state: everything must come from disk
    train, val = loaders()
    resumed_model = tiny_net(seed=99)
    resumed = fit(resumed_model, train, val, cfg, checkpoint_path=checkpoint)
    assert resumed.finished and resumed.epochs_run == 4
    assert without_timing(resumed.history) == without_timing(reference.history)
    assert same_weights(resumed_model.state_dict(), reference_model.state_dict())


class PoisonedNet(nn.Module):
    """tiny_net whose training forward returns NaN logits from its `poison_at`-th call on."""

    def __init__(self, poison_at):
        super().__init__()
        self.net, self.poison_at, self.calls = tiny_net(), poison_at, 0

    def forward(self, x):
        logits = self.net(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.poison_at:
                return logits * float("nan")
        return logits


def test_nan_loss_stops_with_epoch_and_step_and_keeps_checkpoint(tmp_path):
    train, val = loaders()                      # 64 samples / 16 = 4 steps per epoch
    checkpoint, history = tmp_path / "checkpoint.pt", tmp_path / "history.csv"
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 3 of 4") as err:
        fit(PoisonedNet(poison_at=4 + 3), train, val, tiny_cfg(), checkpoint_path=checkpoint,
            history_path=history)
    assert (err.value.epoch, err.value.step) == (2, 3)
    state = load_checkpoint(checkpoint, "cpu")
    assert state["epoch"] == 1 and not state["finished"]
    assert all(torch.isfinite(v.float()).all() for v in state["model"].values())
    with open(history) as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1"]


def test_config_resolves_defects_and_tags_runs_apart():
    assert TrainConfig(protocol="paper").defects is True
    assert TrainConfig(protocol="corrected").defects is False
    assert TrainConfig(protocol="corrected", paper_defects=True).to_dict()["paper_defects"] is True
    tags = {TrainConfig(model="gradattn_lpe", **kw).model_tag for kw in [
        {}, {"stem": "cifar"}, {"sample": True}, {"epochs": 4}, {"pipeline": "torch"},
        {"model_options": {"d_model": 32}}, {"protocol": "corrected", "paper_defects": True},
        {"max_train_samples": 100}]}
    assert len(tags) == 8
    assert TrainConfig(model="resnet18").model_tag == "resnet18"
    assert TrainConfig(model="resnet18", stem="cifar", sample=True).model_tag == "resnet18-cifarstem-sample"
    assert TrainConfig(dataset="Fashion-MNIST").dataset == "fashionmnist"
    assert TrainConfig(seed=3).run_key == "fashionmnist/resnet18/corrected/seed3"
    jpeg = TrainConfig(dataset="cifar10", variant="jpeg4000", epochs=20)
    assert jpeg.model_tag == "resnet18-jpeg4000-e20"
    assert jpeg.identity() != TrainConfig(dataset="cifar10", variant="lossless4000", epochs=20).identity()
    # configs written before `variant` existed still resume as the same run
    old = {k: v for k, v in TrainConfig(dataset="cifar10").to_dict().items() if k != "variant"}
    assert TrainConfig.from_dict(old).identity() == TrainConfig(dataset="cifar10").identity()


@pytest.mark.parametrize("bad, named", [
    ({"dataset": "cifar10", "variant": "png4000"}, "png4000"),
    ({"dataset": "fashionmnist", "variant": "jpeg4000"}, "valid: none"),
    ({"dataset": "cifar10", "variant": "jpeg4000", "protocol": "paper"}, "corrected protocol only"),
    ({"dataset": "fashionmnist", "variant": "64", "sample": True}, "variant"),
])
def test_config_rejects_a_variant_the_dataset_lacks(bad, named):
    with pytest.raises(ConfigError, match=named):
        TrainConfig(**bad)


def test_run_experiment_reads_the_configured_variant(tmp_path, monkeypatch):
    import gradattn.data as data
    from gradattn.train import run_experiment

    asked = []

    def fake_load_splits(name, **kwargs):
        asked.append((name, kwargs["variant"]))
        return real_load_splits("fashionmnist", protocol="corrected", sample=True)

    real_load_splits = data.load_splits
    monkeypatch.setattr(data, "load_splits", fake_load_splits)
    cfg = TrainConfig(dataset="cifar10", model="plain18", variant="lossless4000", epochs=1, max_train_samples=32,
                      gradflow_batches=0, out_dir=str(tmp_path), progress=False, device="cpu")
    run_experiment(cfg)
    assert asked == [("cifar10", "lossless4000")]
    assert json.loads((cfg.run_dir / "metrics.json").read_text())["variant"] == "lossless4000"
    assert "resnet18" not in cfg.run_key and "plain18-lossless4000" in cfg.run_key


@pytest.mark.parametrize("bad", [{"dataset": "mnist"}, {"protocol": "faithful"}, {"pipeline": "dali"},
                                 {"stem": "big"}, {"epochs": 0}])
def test_config_rejects_bad_values_naming_them(bad):
    key, value = next(iter(bad.items()))
    with pytest.raises(ConfigError, match=str(value)):
        TrainConfig(**bad)


def test_run_experiment_writes_run_dir_and_results_row_then_skips(tmp_path):
    from gradattn.results import read_results
    from gradattn.train import run_experiment

    cfg = TrainConfig(dataset="fashionmnist", model="gradattn_lpe", protocol="paper", sample=True,
                      epochs=1, max_train_samples=256, gradflow_batches=1, out_dir=str(tmp_path),
                      progress=False, device="cpu")
    first = run_experiment(cfg)
    run_dir = tmp_path / "runs" / "fashionmnist" / "gradattn_lpe-e1-n256-sample" / "paper" / "seed0"
    assert first["run_dir"] == str(run_dir) and not first["skipped"]
    for name in ("config.json", "history.csv", "metrics.json", "gradflow.json", "attention.json", "checkpoint.pt"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    attention = json.loads((run_dir / "attention.json").read_text())
    assert attention["images"] == sum(attention["counts"]) == metrics["num_test"]
    assert torch.tensor(attention["by_layer"]).shape == (3, 5, 5)
    assert torch.tensor(attention["by_layer"]).sum(-1).sub(1).abs().max() < 1e-4   # softmax rows
    assert metrics["paper_defects"] is True and metrics["is_sample"] is True
    assert metrics["epochs_run"] == 1 and metrics["num_train"] == 256
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert json.loads((run_dir / "config.json").read_text())["paper_defects"] is True
    gradflow = json.loads((run_dir / "gradflow.json").read_text())
    assert {"faithful", "corrected", "dead_layers"} <= set(gradflow)
    rows = read_results(tmp_path / "results.csv")
    assert [r["run_key"] for r in rows] == [cfg.run_key]
    assert float(rows[0]["top1"]) == pytest.approx(100 * metrics["test"]["accuracy"])

    mtime = (run_dir / "metrics.json").stat().st_mtime_ns
    again = run_experiment(cfg)
    assert again["skipped"] and (run_dir / "metrics.json").stat().st_mtime_ns == mtime
    assert len(read_results(tmp_path / "results.csv")) == 1


def test_a_run_records_the_commit_its_code_was_loaded_from_not_one_made_while_it_trained(tmp_path, monkeypatch):
    from gradattn import train

    commits = iter(["commit-at-start", "commit-made-while-training"])
    monkeypatch.setattr(train, "git_commit", lambda: next(commits))
    cfg = TrainConfig(dataset="fashionmnist", model="plain18", protocol="corrected", sample=True, epochs=1,
                      max_train_samples=64, gradflow_batches=1, out_dir=str(tmp_path), progress=False,
                      device="cpu")
    assert train.run_experiment(cfg)["git_commit"] == "commit-at-start"


def test_run_experiment_resumes_an_interrupted_run(tmp_path):
    from gradattn.train import run_experiment

    cfg = TrainConfig(dataset="fashionmnist", model="plain18", protocol="corrected", sample=True, epochs=2,
                      max_train_samples=128, gradflow_batches=0, out_dir=str(tmp_path), progress=False,
                      device="cpu")
    partial = run_experiment(cfg, max_epochs_this_call=1)
    assert partial["finished"] is False and partial["epochs_run"] == 1
    run_dir = cfg.run_dir
    assert not (run_dir / "metrics.json").exists() and not (tmp_path / "results.csv").exists()
    first_epoch = (run_dir / "history.csv").read_text().splitlines()[1]

    done = run_experiment(cfg)
    assert done["epochs_run"] == 2 and not done["skipped"]
    lines = (run_dir / "history.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[1] == first_epoch          # epoch 1 kept, not retrained
    assert not (run_dir / "gradflow.json").exists() and done["health_score_faithful"] is None


def test_a_run_resumed_in_another_precision_says_so(tmp_path):
    """Precision is not part of a run's identity (like the device): a CPU run started in fp32 resumes in bf16,
    each epoch's history row keeps its own precision and the results row names both."""
    from gradattn.train import run_experiment

    cfg = TrainConfig(dataset="fashionmnist", model="plain18", protocol="corrected", sample=True, epochs=2,
                      max_train_samples=64, gradflow_batches=0, out_dir=str(tmp_path), progress=False,
                      device="cpu", precision="fp32")
    run_experiment(cfg, max_epochs_this_call=1)
    done = run_experiment(dataclasses.replace(cfg, precision="bf16"))
    assert done["epochs_run"] == 2 and not done["skipped"] and done["precision"] == "bf16+fp32"
    with open(cfg.run_dir / "history.csv") as handle:
        assert [r["precision"] for r in csv.DictReader(handle)] == ["fp32", "bf16"]
    assert cfg.identity() == dataclasses.replace(cfg, precision="bf16").identity()


def test_an_optimizer_state_saved_in_one_memory_layout_resumes_right_in_the_other():
    """A fused Adam reads parameters and moments as flat memory: a state saved from an NCHW model and loaded
    into a channels_last one (a CPU fp32 run resumed under bf16, or on a GPU) must be aligned first."""
    from gradattn.train import align_optimizer_state

    torch.manual_seed(0)
    conv = nn.Conv2d(4, 8, 3)
    grads = [torch.randn_like(conv.weight) for _ in range(2)]

    def stepped(model, optimizer, grad):
        model.weight.grad = grad.contiguous(memory_format=torch.channels_last) \
            if model.weight.is_contiguous(memory_format=torch.channels_last) else grad.clone()
        model.bias.grad = torch.ones_like(model.bias)
        optimizer.step()

    saved = copy.deepcopy(conv)
    saved_optimizer = build_optimizer(saved, "cpu")
    stepped(saved, saved_optimizer, grads[0])
    reference = copy.deepcopy(saved)
    reference_optimizer = build_optimizer(reference, "cpu")
    reference_optimizer.load_state_dict(copy.deepcopy(saved_optimizer.state_dict()))  # as from a checkpoint
    stepped(reference, reference_optimizer, grads[1])

    resumed = copy.deepcopy(saved).to(memory_format=torch.channels_last)
    optimizer = build_optimizer(resumed, "cpu")
    optimizer.load_state_dict(copy.deepcopy(saved_optimizer.state_dict()))
    unaligned = copy.deepcopy(resumed)
    unaligned_optimizer = build_optimizer(unaligned, "cpu")
    unaligned_optimizer.load_state_dict(copy.deepcopy(saved_optimizer.state_dict()))
    stepped(unaligned, unaligned_optimizer, grads[1])
    assert not torch.allclose(unaligned.weight, reference.weight, atol=1e-6)     # what the alignment prevents
    align_optimizer_state(optimizer)
    assert optimizer.state[resumed.weight]["exp_avg"].stride() == resumed.weight.stride()
    stepped(resumed, optimizer, grads[1])
    assert torch.allclose(resumed.weight, reference.weight, atol=1e-6)


def test_run_precision_names_every_precision_its_epochs_used():
    from gradattn.train import run_precision

    assert run_precision([{"precision": "fp32"}, {"precision": "fp32"}]) == "fp32"
    assert run_precision([{"precision": "fp32"}, {"precision": "bf16"}]) == "bf16+fp32"
    assert run_precision([{"epoch": 1}, {"precision": "bf16"}]) == "bf16+unrecorded"
    assert run_precision([{"epoch": 1}, {"precision": ""}]) is None
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(dataset="fashionmnist", model="resnet18", precision="fp16")


def test_checkpoint_of_another_config_is_not_resumed(tmp_path):
    train, val = loaders()
    fit(tiny_net(), train, val, tiny_cfg(epochs=2), checkpoint_path=tmp_path / "c.pt")
    with pytest.raises(ValueError, match="different config"):
        fit(tiny_net(), train, val, tiny_cfg(epochs=2, lr=0.5), checkpoint_path=tmp_path / "c.pt")


def test_torch_pipeline_loader_shuffle_depends_only_on_seed_and_epoch():
    from torch.utils.data import TensorDataset
    from gradattn.train import EpochSeededLoader

    dataset = TensorDataset(torch.arange(40).float()[:, None], torch.arange(40))

    def labels_of_epoch(loader, epoch):
        loader.set_epoch(epoch)
        return torch.cat([y for _, y in loader]).tolist()
    a = EpochSeededLoader(dataset, 8, shuffle=True, seed=1, num_workers=0)
    b = EpochSeededLoader(dataset, 8, shuffle=True, seed=1, num_workers=0)
    assert labels_of_epoch(a, 3) == labels_of_epoch(b, 3) == labels_of_epoch(a, 3)
    assert labels_of_epoch(a, 3) != labels_of_epoch(a, 4)
    assert sorted(labels_of_epoch(a, 5)) == list(range(40)) and len(a) == 5


@pytest.mark.parametrize("pipeline", ["fast", "torch"])
def test_build_loaders_builds_only_the_loaders_asked_for(pipeline):
    from gradattn.train import build_loaders, run_splits

    cfg = TrainConfig(dataset="fashionmnist", model="resnet18", protocol="corrected", sample=True,
                      pipeline=pipeline, device="cpu", num_workers=0)
    splits = run_splits(cfg)
    device = torch.device("cpu")
    every = build_loaders(cfg, splits, device)
    assert list(every) == ["train", "val", "test", "gradflow"]
    only_test = build_loaders(cfg, splits, device, names=("test",))
    assert list(only_test) == ["test"]
    for (x, y), (x_all, y_all) in zip(only_test["test"], every["test"]):
        assert torch.equal(x, x_all) and torch.equal(y, y_all)
    assert list(build_loaders(cfg, splits, device, names=("gradflow",))) == ["gradflow"]
    with pytest.raises(ValueError, match="unknown loader name.*'tset'.*choose from"):
        build_loaders(cfg, splits, device, names=("tset",))


def test_profiles_name_real_models_and_datasets():
    from gradattn.data import list_datasets
    from gradattn.models import list_models
    from gradattn.profiles import PROFILES, get_profile

    quick, paper = PROFILES["quick"], PROFILES["paper"]
    assert "not the paper's numbers" in quick.label and quick.sample and quick.epochs <= 4
    assert set(paper.models) == set(list_models()) and set(paper.datasets) == set(list_datasets())
    assert paper.epochs == 100 and len(paper.seeds) == 3 and set(paper.protocols) == {"paper", "corrected"}
    configs = quick.configs(out_dir="elsewhere")
    assert len(configs) == len(quick.models) * len(quick.protocols) * len(quick.seeds)
    assert len({c.run_key for c in configs}) == len(configs)
    assert all(c.sample and c.out_dir == "elsewhere" and c.epochs == quick.epochs for c in configs)
    with pytest.raises(ConfigError, match="huge"):
        get_profile("huge")


def test_finished_run_keeps_a_slim_checkpoint_that_fit_still_accepts(tmp_path):
    from gradattn.train import run_experiment

    cfg = TrainConfig(dataset="fashionmnist", model="plain18", protocol="corrected", sample=True, epochs=1,
                      max_train_samples=64, gradflow_batches=0, out_dir=str(tmp_path), progress=False,
                      device="cpu", grad_sample_every=1)
    run_experiment(cfg)
    state = load_checkpoint(cfg.run_dir / "checkpoint.pt", "cpu")
    assert state["finished"] and state["slim"] and "optimizer" not in state

    from gradattn.models import build_model
    model = build_model("plain18", num_classes=10, in_chans=1)
    result = fit(model, [], [], cfg, device="cpu", checkpoint_path=cfg.run_dir / "checkpoint.pt")
    assert result.finished and result.epochs_run == 1 and result.best_epoch == 1
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state["model"][name]), name


def test_gradient_norms_are_sampled_during_training_into_gradnorms_csv(tmp_path):
    from gradattn.train import run_experiment

    cfg = TrainConfig(dataset="fashionmnist", model="plain18", protocol="corrected", sample=True, epochs=2,
                      max_train_samples=64, batch_size=16, gradflow_batches=0, out_dir=str(tmp_path),
                      progress=False, device="cpu", grad_sample_every=2)
    run_experiment(cfg)
    with open(cfg.run_dir / "gradnorms.csv") as handle:
        rows = list(csv.DictReader(handle))
    steps = sorted({int(r["step"]) for r in rows})
    assert steps == [0, 2, 4, 6]                                  # 4 steps an epoch, 2 epochs, every 2nd
    assert {int(r["epoch"]) for r in rows} == {1, 2}
    first_conv = [r for r in rows if r["layer"] == "stem.0"]
    assert len(first_conv) == 4 and all(float(r["grad_norm"]) > 0 for r in first_conv)
    # grad_sample_every only observes: it is not part of the run's identity
    assert cfg.identity() == TrainConfig(**{**cfg.to_dict(), "grad_sample_every": 0}).identity()


def test_run_experiment_under_bf16_autocast_end_to_end(tmp_path):
    """precision="bf16" autocasts on the CPU as CUDA runs do by default, so a dtype slip anywhere on that path
    (loss, evaluation logits, metrics, gradient norms, gradient flow) fails on CI, not on a GPU; the run
    records its precision per epoch and in its results row."""
    from gradattn.train import run_experiment
    from gradattn.trainstep import TrainStep

    cfg = TrainConfig(dataset="fashionmnist", model="gradattn_rope", protocol="corrected", sample=True,
                      epochs=2, max_train_samples=64, batch_size=16, gradflow_batches=1, grad_sample_every=2,
                      out_dir=str(tmp_path), progress=False, device="cpu", precision="bf16")
    seen = []
    original_init = TrainStep.__init__

    def spy(self, model, *args, **kwargs):
        original_init(self, model, *args, **kwargs)
        model.classifier.register_forward_hook(lambda module, args, output: seen.append(output.dtype))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TrainStep, "__init__", spy)
        row = run_experiment(cfg)
    # 8 training steps, 2 validation batches, the test pass and the attention pass under autocast (one batch
    # each); the gradient-flow analysis stays fp32
    assert seen.count(torch.bfloat16) == 12 and set(seen) == {torch.bfloat16, torch.float32}
    metrics = json.loads((cfg.run_dir / "metrics.json").read_text())
    assert metrics["precision"] == "bf16" and row["precision"] == "bf16"
    with open(cfg.run_dir / "history.csv") as handle:
        assert [r["precision"] for r in csv.DictReader(handle)] == ["bf16", "bf16"]
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert all(torch.isfinite(torch.tensor(float(v))) for k, v in metrics["test"].items()
               if isinstance(v, (int, float)))
    assert row["health_score_corrected"] is not None
    with open(cfg.run_dir / "gradnorms.csv") as handle:
        norms = [float(r["grad_norm"]) for r in csv.DictReader(handle)]
    assert norms and all(n == n and n >= 0 for n in norms)


def stepwise(run):
    """A stand-in for train.experiment_steps: a step generator that does `run(cfg)` in one step."""
    def steps(cfg, max_epochs_this_call=None):
        return run(cfg)
        yield  # noqa: unreachable - makes this a generator, as experiment_steps is
    return steps


def test_shards_of_a_sweep_run_the_grid_exactly_once(monkeypatch):
    import gradattn.train as train

    ran = []
    monkeypatch.setattr(train, "experiment_steps",
                        stepwise(lambda cfg: ran.append(cfg.run_key) or {"run_key": cfg.run_key}))
    grid = dict(models=["resnet18", "gradattn_lpe", "gradattn_rope"], protocols=["paper", "corrected"],
                seeds=[0, 1, 2])
    train.sweep(TrainConfig(), **grid)
    whole, ran[:] = list(ran), []
    shards = []
    for k in range(4):
        train.sweep(TrainConfig(), shard=(k, 4), **grid)
        shards.append(list(ran))
        ran.clear()
    assert len(whole) == 18 and sorted(sum(shards, [])) == sorted(whole)
    assert [len(s) for s in shards] == [5, 5, 4, 4]
    for bad in ((4, 4), (-1, 2), (0, 0)):
        with pytest.raises(ConfigError, match="shard"):
            train.sweep(TrainConfig(), shard=bad, **grid)


def test_a_sweep_runs_seed_by_seed_and_shares_only_the_unfinished_runs_between_shards(monkeypatch):
    import gradattn.train as train

    ran = []
    monkeypatch.setattr(train, "experiment_steps", stepwise(lambda cfg: ran.append((cfg.seed, cfg.model)) or {}))
    grid = dict(models=["resnet18", "gradattn_lpe", "gradattn_rope"], seeds=[0, 1, 2])
    train.sweep(TrainConfig(), **grid)
    assert ran == [(s, m) for s in (0, 1, 2) for m in grid["models"]]

    finished = {(0, "resnet18"), (0, "gradattn_lpe"), (0, "gradattn_rope"), (1, "resnet18")}
    monkeypatch.setattr(train, "is_finished", lambda cfg: (cfg.seed, cfg.model) in finished)
    per_shard = []
    for k in range(3):
        ran.clear()
        train.sweep(TrainConfig(), shard=(k, 3), **grid)
        per_shard.append([run for run in ran if run not in finished])
    assert [len(runs) for runs in per_shard] == [2, 2, 1]
    assert sorted(sum(per_shard, [])) == sorted(set((s, m) for s in (0, 1, 2) for m in grid["models"]) - finished)


def test_is_finished_needs_the_same_config_and_its_metrics(tmp_path):
    from gradattn.train import is_finished, write_json

    cfg = TrainConfig(out_dir=str(tmp_path))
    assert not is_finished(cfg)
    write_json(cfg.run_dir / "config.json", cfg.to_dict())
    assert not is_finished(cfg)
    write_json(cfg.run_dir / "metrics.json", {"test": {"accuracy": 0.5}})
    assert is_finished(cfg)
    write_json(cfg.run_dir / "config.json", {**cfg.to_dict(), "lr": cfg.lr * 2})
    assert not is_finished(cfg)
    write_json(cfg.run_dir / "config.json", {**cfg.to_dict(), "device": "cpu"})   # a CPU run, the same on the GPU
    assert is_finished(dataclasses.replace(cfg, device="cuda"))


def test_a_sweep_skips_the_runs_a_committed_results_folder_holds(tmp_path, monkeypatch):
    """results/ travels with a fresh checkout and to the GPU machine, outputs/ does not: `recorded` keeps
    those from training a committed run again, unless its committed config has other settings."""
    import gradattn.train as train
    from gradattn.results import append_result, summary_file_name
    from gradattn.train import write_json

    ran = []
    monkeypatch.setattr(train, "experiment_steps", stepwise(lambda cfg: ran.append(cfg.run_key) or {}))
    base = TrainConfig(out_dir=str(tmp_path / "outputs"))
    committed = tmp_path / "results"
    lpe, rope = (dataclasses.replace(base, model=m) for m in ("gradattn_lpe", "gradattn_rope"))
    for cfg in (base, lpe, rope):
        append_result({"run_key": cfg.run_key, "top1": 88.15}, committed / "results.csv")
    write_json(committed / "configs" / summary_file_name(lpe.run_key), {**lpe.to_dict(), "device": "cpu"})
    write_json(committed / "configs" / summary_file_name(rope.run_key), {**rope.to_dict(), "split_seed": 7})

    grid = dict(models=["resnet18", "gradattn_lpe", "gradattn_rope"], seeds=[0, 1])
    with pytest.warns(UserWarning, match="gradattn_rope/corrected/seed0: .* holds this run with other settings"):
        results = train.sweep(base, recorded=committed, **grid)
    assert ran == ["fashionmnist/gradattn_rope/corrected/seed0"] + [
        f"fashionmnist/{m}/corrected/seed1" for m in grid["models"]]
    skipped = [r for r in results if r.get("recorded")]
    assert [r["run_key"] for r in skipped] == [base.run_key, lpe.run_key]
    assert all(r["skipped"] and r["recorded"] == str(committed / "results.csv") and r["top1"] == "88.15"
               for r in skipped)
    assert not (tmp_path / "outputs").exists()                 # the stand-in trains nothing; no row is copied

    ran.clear()
    train.sweep(base, **grid)                                  # without `recorded`: only outputs/ counts
    assert len(ran) == 6
    with pytest.raises(ConfigError, match="no_results/results.csv not found: --recorded takes"):
        train.sweep(base, recorded=tmp_path / "no_results", **grid)



def test_a_sweep_plan_says_what_the_sweep_would_do_with_each_run_and_trains_nothing(tmp_path, capsys):
    """`gradattn sweep --plan` (device_run.sh PLAN=1) reads a GPU call's runs before the call: which train,
    which resume, which are recorded or finished, in the sweep's order, with their tags."""
    from gradattn.cli import main
    from gradattn.results import append_result
    from gradattn.train import sweep_plan, write_json

    base = TrainConfig(out_dir=str(tmp_path / "outputs"), epochs=8)
    committed = tmp_path / "results"
    lpe, rope, nope = (dataclasses.replace(base, model=m) for m in ("gradattn_lpe", "gradattn_rope", "gradattn_nope"))
    append_result({"run_key": base.run_key, "top1": 88.15}, committed / "results.csv")
    for key, epochs in (("gradattn_nope-e8/corrected/seed2", 6), ("gradattn_nope-e8/corrected/seed1", 8),
                        ("gradattn_nope_d32-e8/corrected/seed1", 5)):     # another tag: not the No-PE's
        append_result({"run_key": f"fashionmnist/{key}", "top1": 88.0, "epochs": epochs}, committed / "results.csv")
    for cfg, files in ((lpe, ("metrics.json",)), (rope, ("checkpoint.pt",))):
        write_json(cfg.run_dir / "config.json", cfg.to_dict())
        for name in files:
            (cfg.run_dir / name).write_text("{}")
    (rope.run_dir / "history.csv").write_text("epoch,val_acc\n1,0.8\n2,0.85\n3,0.86\n")
    write_json(nope.run_dir / "config.json", {**nope.to_dict(), "split_seed": 7})   # other settings:
    (nope.run_dir / "checkpoint.pt").write_text("{}")                               # starts afresh

    models = ["resnet18", "gradattn_lpe", "gradattn_rope", "gradattn_nope"]
    plan = sweep_plan(base, models=models, recorded=committed)
    assert [(item["cfg"].run_key, item["status"]) for item in plan] == [
        ("fashionmnist/resnet18-e8/corrected/seed0", "recorded"), ("fashionmnist/gradattn_lpe-e8/corrected/seed0", "finished"),
        ("fashionmnist/gradattn_rope-e8/corrected/seed0", "resumes"), ("fashionmnist/gradattn_nope-e8/corrected/seed0", "trains")]
    assert plan[0]["result"]["top1"] == "88.15"
    assert [(item["epochs_done"], item["seed_epochs"]) for item in plan] == [(0, []), (0, []), (3, []), (0, [6, 8])]

    code = main(["sweep", "--models", ",".join(models), "--epochs", "8", "--out", str(tmp_path / "outputs"),
                 "--recorded", str(committed), "--device", "cuda", "--plan"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines == [
        f"fashionmnist/resnet18-e8/corrected/seed0: test top-1 88.15 %, recorded in {committed}/results.csv (skipped)",
        f"fashionmnist/gradattn_lpe-e8/corrected/seed0: finished under {tmp_path}/outputs",
        f"fashionmnist/gradattn_rope-e8/corrected/seed0: resumes from its checkpoint under {tmp_path}/outputs at epoch 3",
        "fashionmnist/gradattn_nope-e8/corrected/seed0: trains (recorded seeds of this tag ran 6, 8 epochs)",
        f"plan: 1 to train, 1 to resume, 1 recorded, 1 finished under {tmp_path}/outputs"]
    assert (nope.run_dir / "checkpoint.pt").exists()          # a plan changes nothing on disk

def test_keep_going_reports_a_failed_run_and_runs_the_rest(monkeypatch, capsys):
    import gradattn.train as train
    from gradattn.cli import main

    ran = []

    def run_experiment(cfg):
        if cfg.model == "gradattn_lpe" and cfg.seed == 0:
            raise TypeError("RNG state must be a torch.ByteTensor")
        ran.append((cfg.seed, cfg.model))
        return {"run_key": cfg.run_key, "skipped_missing": None, "finished": False, "epochs_run": 1}

    monkeypatch.setattr(train, "experiment_steps", stepwise(run_experiment))
    grid = dict(models=["resnet18", "gradattn_lpe"], seeds=[0, 1])
    with pytest.raises(TypeError, match="ByteTensor"):
        train.sweep(TrainConfig(), **grid)
    ran.clear()
    results = train.sweep(TrainConfig(), keep_going=True, **grid)
    assert ran == [(0, "resnet18"), (1, "resnet18"), (1, "gradattn_lpe")]
    assert [r["failed"] for r in results if r.get("failed")] == ["TypeError: RNG state must be a torch.ByteTensor"]

    ran.clear()
    code = main(["sweep", "--models", "resnet18,gradattn_lpe", "--seeds", "0,1", "--keep-going", "--sample"])
    out, err = capsys.readouterr()
    assert code == 1 and len(ran) == 3
    assert "gradattn_lpe" in err and "1 run(s) failed" in err and "FAILED (TypeError" in out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: a checkpoint loaded onto the GPU")
def test_run_experiment_resumes_an_interrupted_run_on_cuda(tmp_path):
    from gradattn.train import run_experiment

    cfg = TrainConfig(dataset="fashionmnist", model="gradattn_lpe", protocol="corrected", sample=True, epochs=2,
                      max_train_samples=256, gradflow_batches=0, out_dir=str(tmp_path), progress=False,
                      device="cuda")
    partial = run_experiment(cfg, max_epochs_this_call=1)
    assert partial["finished"] is False
    done = run_experiment(cfg)
    assert done["epochs_run"] == 2 and not done["skipped"]


def test_cli_shard_option_is_parsed_and_checked(capsys):
    from gradattn.cli import build_parser

    args = build_parser().parse_args(["sweep", "--sample", "--shard", "2/3"])
    assert args.shard == (2, 3)
    assert build_parser().parse_args(["sweep"]).shard == (0, 1)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sweep", "--shard", "3/3"])
    assert "0 <= K < N" in capsys.readouterr().err


def test_cli_precision_option_reaches_the_config(capsys):
    from gradattn.cli import _overrides, build_parser

    args = build_parser().parse_args(["sweep", "--precision", "bf16"])
    assert _overrides(args)["precision"] == "bf16"
    assert "precision" not in _overrides(build_parser().parse_args(["sweep"]))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--precision", "fp16"])
    assert "invalid choice: 'fp16'" in capsys.readouterr().err


def test_cuda_graphs_is_a_speed_setting_not_part_of_a_runs_identity():
    from gradattn.cli import _overrides, build_parser
    from gradattn.train import TrainConfig

    on = TrainConfig(dataset="fashionmnist", model="resnet18")
    off = TrainConfig(dataset="fashionmnist", model="resnet18", cuda_graphs=False)
    assert on.cuda_graphs and on.identity() == off.identity()
    args = build_parser().parse_args(["train", "--dataset", "fashionmnist", "--model", "resnet18",
                                      "--no-cuda-graphs"])
    assert _overrides(args)["cuda_graphs"] is False

"""Several runs in one process (gradattn.interleave): each draws the random numbers it draws alone, so an
interleaved sweep ends bit-identical to a sequential one on the CPU; failures stay with their run."""
import contextlib
import csv
import dataclasses
import json
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradattn.interleave import run_interleaved
from gradattn.train import TIMING_COLUMNS, TrainConfig, sweep


def draws(seed, steps=5):
    """A job that seeds the global generators once, then draws from all three, a step at a time."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    out = []
    for _ in range(steps):
        out.append((random.random(), float(np.random.rand()), float(torch.rand(()))))
        yield
    return out


def collect(jobs, width, start=draws):
    done = {}
    run_interleaved(jobs, start, width, "cpu", lambda job, value, error: done.__setitem__(job, value or error))
    return done


def test_interleaved_jobs_draw_the_numbers_they_draw_alone_and_the_outside_state_is_kept():
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    outside = (random.random(), float(np.random.rand()), float(torch.rand(())))
    random.seed(7), np.random.seed(7), torch.manual_seed(7)

    together = collect([1, 2, 3, 4], width=3)
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == outside
    alone = collect([1, 2, 3, 4], width=1)          # plain code: one job after the other
    assert together == alone and len(alone) == 4

    naive = {}                   # the same round robin without swapping the generators: the draws mix
    jobs = {seed: draws(seed) for seed in (1, 2)}
    while jobs:
        for seed, steps in list(jobs.items()):
            try:
                next(steps)
            except StopIteration as stop:
                naive[seed] = stop.value
                del jobs[seed]
    assert naive[1] != alone[1]


def test_jobs_are_drawn_lazily_and_end_in_the_order_they_finish():
    def steps(n):
        for _ in range(n):
            yield
        return n

    ended, skip = [], set()

    def jobs():
        for n in (3, 1, 2, 5):
            if n not in skip:
                yield n

    def on_done(job, value, error):
        ended.append(value)
        skip.add(5)                       # decided after a run ended: 5 is never started

    run_interleaved(jobs(), steps, 2, "cpu", on_done)
    assert ended == [1, 3, 2]


def test_a_failing_job_is_handed_over_and_the_others_go_on():
    def steps(job):
        yield
        if job == "bad":
            raise RuntimeError("diverged")
        yield
        return job

    done = collect(["a", "bad", "b"], width=3, start=steps)
    assert done["a"] == "a" and done["b"] == "b"
    assert isinstance(done["bad"], RuntimeError) and str(done["bad"]) == "diverged"


def test_when_on_done_raises_the_other_runs_are_closed_and_the_state_restored():
    closed = []

    def steps(job):
        try:
            for _ in range(job):
                yield
        finally:
            closed.append(job)
        return job

    def on_done(job, value, error):
        raise KeyError(f"stop after {job}")

    state = torch.get_rng_state()
    with pytest.raises(KeyError, match="stop after 1"):
        run_interleaved([1, 4, 6], steps, 3, "cpu", on_done)
    assert sorted(closed) == [1, 4, 6]
    assert torch.equal(torch.get_rng_state(), state)


class FakeCudaState:
    """Stands for torch's CUDAGeneratorState: a seed and a Philox offset that draws advance."""

    def __init__(self, seed=0, offset=0):
        self.seed, self.offset = seed, offset


class FakeCudaGenerator:
    """The graph-safe API of a CUDA default generator, as torch implements it: a pointer to a state
    object that graphsafe_set_state repoints, clone_state copies and manual_seed resets in place."""

    def __init__(self, state):
        self.state = state

    def clone_state(self):
        return FakeCudaGenerator(FakeCudaState(self.state.seed, self.state.offset))

    def graphsafe_get_state(self):
        return FakeCudaGenerator(self.state)

    def graphsafe_set_state(self, other):
        self.state = other.state

    def manual_seed(self, seed):
        self.state.seed, self.state.offset = seed, 0

    def draw(self):
        self.state.offset += 4
        return self.state.seed, self.state.offset


class FakeStream:
    synchronized = 0

    def __init__(self, device=None):
        pass

    def synchronize(self):
        FakeStream.synchronized += 1


def test_each_interleaved_job_gets_its_own_cuda_generator_state(monkeypatch):
    """The CUDA bookkeeping without a GPU: a fake default generator with torch's graph-safe API."""
    import gradattn.interleave as interleave

    generator = FakeCudaGenerator(FakeCudaState(seed=99))
    process_state = generator.state
    monkeypatch.setattr(interleave, "_cuda_generator", lambda device: generator)
    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    monkeypatch.setattr(FakeStream, "synchronized", 0)

    def cuda_draws(seed):
        generator.manual_seed(seed)
        out = []
        for _ in range(4):
            out.append(generator.draw())
            yield
        return out

    def collect_cuda(width):
        done = {}
        run_interleaved([1, 2, 3], cuda_draws, width, "cuda", lambda job, value, error: done.__setitem__(job, value))
        return done

    together = collect_cuda(3)
    assert generator.state is process_state and (process_state.seed, process_state.offset) == (99, 0)
    assert FakeStream.synchronized == 3
    alone = collect_cuda(1)
    assert together == alone == {seed: [(seed, 4 * k) for k in range(1, 5)] for seed in (1, 2, 3)}


@pytest.mark.parametrize("width", [0, -1, 1.5, True])
def test_width_must_be_a_positive_int(width):
    with pytest.raises(ValueError, match="width must be a positive int"):
        run_interleaved([], lambda job: iter(()), width, "cpu", lambda *a: None)


def _run_record(cfg):
    run_dir = cfg.run_dir
    metrics = json.loads((run_dir / "metrics.json").read_text())
    with open(run_dir / "history.csv") as handle:
        history = [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(handle)]
    weights = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]
    return {
        "test": metrics["test"], "best_epoch": metrics["best_epoch"], "best_val_acc": metrics["best_val_acc"],
        "history": history, "gradnorms": (run_dir / "gradnorms.csv").read_text(),
        "attention": (run_dir / "attention.json").read_text() if (run_dir / "attention.json").exists() else None,
    }, weights


def test_an_interleaved_sweep_ends_bit_identical_to_a_sequential_one(tmp_path):
    grid = dict(models=["gradattn_lpe", "plain18", "gradattn_rope"], seeds=[0])   # dropout draws every step
    records = {}
    for name, width in (("sequential", 1), ("interleaved", 2)):      # 2 of 3: the third starts as one ends
        base = TrainConfig(dataset="fashionmnist", protocol="corrected", sample=True, epochs=2,
                           max_train_samples=48, batch_size=16, gradflow_batches=0, grad_sample_every=2,
                           out_dir=str(tmp_path / name), progress=False, device="cpu")
        results = sweep(base, interleave=width, **grid)
        assert len(results) == 3 and all(r["finished"] for r in results)
        records[name] = {(m, s): _run_record(dataclasses.replace(base, model=m, seed=s))
                         for m in grid["models"] for s in grid["seeds"]}
    for key, (record, weights) in records["sequential"].items():
        other, other_weights = records["interleaved"][key]
        assert other == record, key
        assert weights.keys() == other_weights.keys()
        assert all(torch.equal(weights[k], other_weights[k]) for k in weights), key
    histories = [record["history"] for record, _ in records["sequential"].values()]
    assert all(a != b for i, a in enumerate(histories) for b in histories[i + 1:])   # not vacuous


def test_an_interleaved_sweep_keeps_going_past_a_failed_run(monkeypatch):
    import gradattn.train as train

    def steps(cfg, max_epochs_this_call=None):
        for _ in range(1 + cfg.seed):
            yield
        if cfg.model == "gradattn_lpe" and cfg.seed == 0:
            raise TypeError("boom")
        return {"run_key": cfg.run_key}

    monkeypatch.setattr(train, "experiment_steps", steps)
    grid = dict(models=["resnet18", "gradattn_lpe"], seeds=[0, 1])
    with pytest.raises(TypeError, match="boom"):
        train.sweep(TrainConfig(device="cpu"), interleave=2, **grid)
    results = train.sweep(TrainConfig(device="cpu"), interleave=2, keep_going=True, **grid)
    assert [r.get("failed") for r in results] == [None, "TypeError: boom", None, None]
    assert sum("run_key" in r for r in results) == 4


def test_cli_interleave_option_is_checked(capsys):
    from gradattn.cli import build_parser

    assert build_parser().parse_args(["sweep", "--interleave", "4"]).interleave == 4
    assert build_parser().parse_args(["sweep"]).interleave == 1
    for bad in ("0", "two"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["sweep", "--interleave", bad])
        assert "positive number of runs" in capsys.readouterr().err


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: streams and graph-safe RNG")


def graphed_dropout(seed, replays=4):
    """Dropout masks from a CUDA graph captured in the job, then one eager mask: the job's own CUDA state."""
    torch.cuda.manual_seed(seed)
    x = torch.ones(1 << 14, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        F.dropout(x, 0.5)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = F.dropout(x, 0.5)
    masks = []
    for _ in range(replays):
        graph.replay()
        masks.append(out.clone())
        yield
    masks.append(F.dropout(x, 0.5))
    return torch.stack(masks).cpu()


@needs_cuda
def test_cuda_graphs_of_interleaved_jobs_draw_from_their_own_generator_state():
    alone, together = {}, {}
    run_interleaved([0, 1], graphed_dropout, 1, "cuda", lambda job, value, error: alone.__setitem__(job, value))
    run_interleaved([0, 1], graphed_dropout, 2, "cuda", lambda job, value, error: together.__setitem__(job, value))
    for seed in (0, 1):
        assert isinstance(alone[seed], torch.Tensor), alone[seed]
        assert torch.equal(alone[seed], together[seed]), seed
    assert not torch.equal(alone[0], alone[1])
    assert len({tuple(mask.nonzero().flatten()[:64].tolist()) for mask in alone[0]}) == 5   # no mask repeats


@needs_cuda
def test_an_interleaved_sweep_runs_on_cuda(tmp_path):
    base = TrainConfig(dataset="fashionmnist", protocol="corrected", sample=True, epochs=2, max_train_samples=512,
                       gradflow_batches=1, out_dir=str(tmp_path), progress=False, device="cuda")
    results = sweep(base, interleave=3, models=["gradattn_lpe", "resnet18", "gradattn_rope"], seeds=[0])
    assert len(results) == 3 and all(r["finished"] and 0.0 <= r["test"]["accuracy"] <= 1.0 for r in results)

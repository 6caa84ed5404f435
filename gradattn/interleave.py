"""Several training runs in one process, a step of each in turn, each on its own CUDA stream.

Why: at the paper's batch size a GradAttn or ResNet-18 step on 28-64 px images is about 2 ms of small
kernels that leave most of an H100's multiprocessors idle. Sweeps share one GPU between processes
(`gradattn sweep --shard k/N`), but kernels of different processes never run at the same time (the GPU
time-slices between them), so those shards only fill the gaps each one leaves. Kernels that one process
issues on different streams can run side by side. `run_interleaved` takes the step generators of
`gradattn.train` (`experiment_steps`: a whole run that yields after each training step and validation
batch) and advances them in turn, each inside its own stream; `gradattn sweep --interleave K` keeps K runs
going this way. How much faster that is on a given GPU is a measurement (`benchmarks/interleave_speed.py`),
not a promise.

Each run keeps its own random-number generators: Python's, NumPy's, torch's CPU generator and the CUDA
generator's graph-safe state (`torch.Generator.graphsafe_set_state`, so a CUDA graph captured by one run
draws its dropout offsets from that run's state alone). They are swapped in before each of the run's
steps and out after it, so a run draws the numbers it would draw alone: on the CPU, interleaved runs end
bit-identical to the same runs one after the other (`tests/test_interleave.py`).

Timing columns (`train_time_s`, `epoch_time_s`) are wall time, so they include the other runs' steps,
as they do for shards sharing a GPU.
"""
from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch


def _cuda_generator(device: torch.device):
    if device.type != "cuda":
        return None
    torch.cuda.init()                  # default_generators is empty until CUDA is initialised
    index = device.index if device.index is not None else torch.cuda.current_device()
    return torch.cuda.default_generators[index]


@dataclass
class RandomState:
    """The global random-number generators one run draws from, as saved between its steps."""
    python: Any
    numpy: Any
    torch_cpu: torch.Tensor
    cuda: Any = None          # a torch.Generator pointing to the run's own graph-safe CUDA state

    @classmethod
    def current(cls, cuda_generator=None, fresh_cuda: bool = False) -> "RandomState":
        """The generators as they are now; with `fresh_cuda`, a private copy of the CUDA state.
        `cuda_generator`: the device's default CUDA generator (`_cuda_generator`), None on a CPU."""
        cuda = None
        if cuda_generator is not None:
            cuda = cuda_generator.clone_state() if fresh_cuda else cuda_generator.graphsafe_get_state()
        return cls(random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda)

    def install(self, cuda_generator=None) -> None:
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch_cpu)
        if self.cuda is not None:
            cuda_generator.graphsafe_set_state(self.cuda)


def run_steps(steps):
    """Run a step generator (`gradattn.train`'s `train_epoch_steps`, `fit_steps`, `experiment_steps`) to its
    end and return what it returns. They yield after each batch so that `run_interleaved` can run several
    in one process; alone, a run is just drained."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


@dataclass
class RunSlot:
    """One run in progress: its step generator, its stream, and its random state while another runs."""
    job: Any
    steps: Iterator
    rng: RandomState
    stream: Any = None

    def advance(self) -> tuple[bool, Any, BaseException | None]:
        """Run the job to its next yield inside its stream (its random state must be installed).

        Returns (done, value, error): done with the generator's return value, or done with the
        Exception it raised (KeyboardInterrupt and the like propagate)."""
        stream = torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()
        try:
            with stream:
                next(self.steps)
        except StopIteration as stop:
            return True, stop.value, None
        except Exception as err:       # noqa: BLE001 - handed to the caller, who decides
            return True, None, err
        return False, None, None


def run_interleaved(jobs: Iterable, start: Callable[[Any], Iterator], width: int, device,
                    on_done: Callable[[Any, Any, BaseException | None], None]) -> None:
    """Keep up to `width` jobs running at once, advancing each by one step in turn.

    `jobs` is read lazily (a job is drawn only when a slot is free, so the caller may filter it as
    results come in); `start(job)` returns its step generator (e.g. `experiment_steps(cfg)`);
    `on_done(job, value, error)` is called as each ends, with its return value or the exception it
    raised. If `on_done` raises, the remaining runs stop where they are (their last checkpoints stay)
    and the exception propagates. The global random state and the CUDA generator's state are restored
    afterwards. `width=1` runs the jobs one after the other as plain code: no stream of their own, no
    swapping of generators.
    """
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError(f"width must be a positive int, got {width!r}")
    if width == 1:
        for job in jobs:
            try:
                value, error = run_steps(start(job)), None
            except Exception as err:   # noqa: BLE001 - handed to on_done, as in the interleaved case
                value, error = None, err
            on_done(job, value, error)
        return
    device = torch.device(device)
    cuda_generator = _cuda_generator(device)
    outside = RandomState.current(cuda_generator)
    pending, end = iter(jobs), object()
    active: list[RunSlot] = []
    installed: RunSlot | None = None          # the slot whose random state the generators hold now
    try:
        while True:
            while len(active) < width:
                job = next(pending, end)
                if job is end:
                    break
                stream = torch.cuda.Stream(device) if device.type == "cuda" else None
                active.append(RunSlot(job, start(job), RandomState.current(cuda_generator, fresh_cuda=True),
                                      stream))
            if not active:
                return
            for slot in list(active):
                if slot is not installed:
                    if installed is not None:
                        installed.rng = RandomState.current(cuda_generator)
                    slot.rng.install(cuda_generator)
                    installed = slot
                done, value, error = slot.advance()
                if done:
                    active.remove(slot)
                    installed = None             # a finished run's state is not kept
                    if slot.stream is not None:
                        slot.stream.synchronize()
                    on_done(slot.job, value, error)
    finally:
        for slot in active:
            slot.steps.close()
        outside.install(cuda_generator)

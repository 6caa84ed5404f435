"""One optimisation step (forward, cross-entropy, backward, optimizer step), eager or CUDA-graphed.

At the paper's batch size (128) a ResNet-18 step on 28-32 px inputs is about 2 ms of GPU work but
12 ms of Python and kernel launches on an H200 (benchmarks/README.md, profile: kernels busy ~20 % of
the step), so the GPU idles most of the time. With `cuda_graph=True` the whole step is captured once
into a CUDA graph and then replayed with a single launch (PyTorch's "whole-network capture" recipe):

- the first `warmup` steps run eagerly on a side stream (cudnn autotuning, optimizer state, lazy init);
- the next full-size batch is copied into static input tensors, the step is captured and replayed;
- a batch of another size (an epoch's last), a step that asks for `after_backward` (gradient-flow
  sampling reads `.grad` between backward and step), and the CPU always run eagerly;
- a changed learning rate (ReduceLROnPlateau) triggers a new capture, since a graph holds the lr it saw.

The optimizer must be built with `capturable=True` (fused Adam is, on CUDA, with that flag). Dropout in
a graph draws from the same CUDA generator through offsets, so the stream of random numbers differs
from an eager run's (as between any two GPU runs), not its distribution.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gradattn.fastdata import autocast_context, resolve_precision
from gradattn.models import logits_of


class TrainStep:
    """`step(x, y) -> (loss, logits)`: one training step on a batch already on the device.

    The returned tensors of a graphed step are the graph's static outputs: read (or copy) them before
    the next call, which overwrites them.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device, precision: str = "auto",
                 cuda_graph: bool = False, warmup: int = 3):
        self.model, self.optimizer = model, optimizer
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.cuda_graph = cuda_graph and self.device.type == "cuda"
        if self.cuda_graph and not all(group.get("capturable", False) for group in optimizer.param_groups):
            raise ValueError("cuda_graph=True needs an optimizer built with capturable=True, e.g. "
                             "torch.optim.Adam(params, fused=True, capturable=True)")
        self.warmup = warmup
        self.eager_steps = self.graph_replays = self.captures = 0
        self.graph = None
        self._static = None
        self._lrs = None
        self._side_stream = torch.cuda.Stream(self.device) if self.cuda_graph else None

    def _forward_backward(self, x, y):
        # Autocast's weight cache must be off inside a graph capture; off everywhere, so both paths match.
        with autocast_context(self.device, self.precision, cache_enabled=False):
            logits = logits_of(self.model(x))
        loss = F.cross_entropy(logits.float(), y)
        loss.backward()
        return loss, logits

    def _eager(self, x, y, after_backward=None):
        self.optimizer.zero_grad(set_to_none=True)
        loss, logits = self._forward_backward(x, y)
        if after_backward is not None:
            after_backward()
        self.optimizer.step()
        self.eager_steps += 1
        return loss.detach(), logits.detach()

    def _current_lrs(self) -> tuple:
        return tuple(float(group["lr"]) for group in self.optimizer.param_groups)

    def _capture(self, x, y) -> None:
        static_x, static_y = x.clone(), y.clone()
        self.graph = self._static = None  # release the old graph's memory before capturing anew
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            loss, logits = self._forward_backward(static_x, static_y)
            self.optimizer.step()
        self.graph = graph
        self._static = (static_x, static_y, loss.detach(), logits.detach())
        self._lrs = self._current_lrs()
        self.captures += 1

    def __call__(self, x: torch.Tensor, y: torch.Tensor, after_backward=None):
        if not self.cuda_graph or after_backward is not None:
            return self._eager(x, y, after_backward)
        if self.eager_steps + self.graph_replays < self.warmup and self.graph is None:
            stream = self._side_stream
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                result = self._eager(x, y)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            return result
        if self.graph is not None and (x.shape != self._static[0].shape or y.shape != self._static[1].shape
                                       or x.stride() != self._static[0].stride()):
            return self._eager(x, y)
        if self.graph is None or self._current_lrs() != self._lrs:
            self._capture(x, y)
        static_x, static_y, loss, logits = self._static
        static_x.copy_(x)
        static_y.copy_(y)
        self.graph.replay()
        self.graph_replays += 1
        return loss, logits

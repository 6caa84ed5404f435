"""gradattn.trainstep: the eager step is the plain PyTorch step; the CUDA-graphed one matches it.

The CUDA tests run only where a GPU is present (the device machine: `python3 -m pytest
tests/test_trainstep.py`); on a CPU they are skipped and the CPU fallback is tested instead.
"""
import pytest
import torch
import torch.nn.functional as F

from gradattn.models import build_model
from gradattn.trainstep import TrainStep

cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _batches(n, batch, shape=(1, 28, 28), device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, *shape, generator=g).to(device), torch.randint(0, 10, (batch,), generator=g).to(device))
            for _ in range(n)]


def _tiny_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10))


def test_eager_step_is_the_plain_pytorch_step():
    plain, stepped = _tiny_net(), _tiny_net()
    opt_plain = torch.optim.Adam(plain.parameters(), lr=1e-2, weight_decay=1e-4)
    step = TrainStep(stepped, torch.optim.Adam(stepped.parameters(), lr=1e-2, weight_decay=1e-4), "cpu")
    for x, y in _batches(4, 8):
        opt_plain.zero_grad(set_to_none=True)
        loss = F.cross_entropy(plain(x), y)
        loss.backward()
        opt_plain.step()
        got, logits = step(x, y)
        assert torch.equal(got, loss.detach()) and logits.shape == (8, 10) and not logits.requires_grad
    for a, b in zip(plain.state_dict().values(), stepped.state_dict().values()):
        assert torch.equal(a, b)
    assert step.eager_steps == 4 and step.graph_replays == 0


def test_after_backward_sees_this_steps_gradients_before_the_update():
    net = _tiny_net()
    step = TrainStep(net, torch.optim.SGD(net.parameters(), lr=0.1), "cpu")
    weight = net[-1].weight
    seen = {}

    def record():
        seen["grad"] = weight.grad.clone()
        seen["weight"] = weight.detach().clone()

    x, y = _batches(1, 8)[0]
    step(x, y, after_backward=record)
    assert seen["grad"].abs().sum() > 0
    assert torch.allclose(weight.detach(), seen["weight"] - 0.1 * seen["grad"])


def test_cuda_graph_request_falls_back_to_eager_on_cpu():
    net = _tiny_net()
    step = TrainStep(net, torch.optim.Adam(net.parameters()), "cpu", cuda_graph=True)
    for x, y in _batches(5, 8):
        step(x, y)
    assert not step.cuda_graph and step.eager_steps == 5 and step.graph_replays == 0 and step.graph is None


@cuda_only
def test_cuda_graph_needs_a_capturable_optimizer():
    net = _tiny_net().cuda()
    with pytest.raises(ValueError, match="capturable=True"):
        TrainStep(net, torch.optim.Adam(net.parameters(), fused=True), "cuda", cuda_graph=True)


def _resnet_pair():
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(build_model("resnet18", 10, 1).cuda().to(memory_format=torch.channels_last))
    return models


@cuda_only
def test_graphed_steps_follow_the_eager_trajectory():
    torch.backends.cudnn.benchmark = False
    eager_net, graph_net = _resnet_pair()
    steps = {}
    for name, net, graphed in (("eager", eager_net, False), ("graph", graph_net, True)):
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4, fused=True, capturable=graphed)
        steps[name] = TrainStep(net, opt, "cuda", cuda_graph=graphed, warmup=3)
    batches = [(x.contiguous(memory_format=torch.channels_last), y)
               for x, y in _batches(12, 32, device="cuda")]
    losses = {"eager": [], "graph": []}
    for x, y in batches:
        for name in losses:
            losses[name].append(float(steps[name](x, y)[0]))
    assert steps["graph"].captures == 1 and steps["graph"].graph_replays == 12 - 3
    eager, graph = torch.tensor(losses["eager"]), torch.tensor(losses["graph"])
    assert torch.allclose(eager, graph, rtol=0.05, atol=0.05), (eager, graph)
    drift = max((a - b).abs().max().item() for a, b in zip(eager_net.parameters(), graph_net.parameters()))
    assert drift < 0.05


@cuda_only
def test_lr_change_recaptures_and_odd_batches_run_eagerly():
    net = build_model("resnet18", 10, 1).cuda()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True, capturable=True)
    step = TrainStep(net, opt, "cuda", cuda_graph=True, warmup=1)
    full = _batches(4, 16, device="cuda")
    for x, y in full[:3]:
        step(x, y)
    assert step.captures == 1 and step.graph_replays == 2
    x, y = _batches(1, 5, device="cuda", seed=1)[0]
    step(x, y)                                        # an epoch's short last batch
    assert step.eager_steps == 2 and step.graph_replays == 2
    opt.param_groups[0]["lr"] = 2e-4                  # what ReduceLROnPlateau does
    loss, _ = step(*full[3])
    assert step.captures == 2 and torch.isfinite(loss)


@cuda_only
@pytest.mark.parametrize("name", __import__("gradattn.models", fromlist=["list_models"]).list_models())
def test_every_model_trains_from_a_graph(name):
    torch.manual_seed(0)
    net = build_model(name, 10, 3).cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True, capturable=True)
    step = TrainStep(net, opt, "cuda", cuda_graph=True, warmup=2)
    losses = [step(x.contiguous(memory_format=torch.channels_last), y)[0].clone()
              for x, y in _batches(6, 16, shape=(3, 32, 32), device="cuda")]
    assert step.captures == 1 and step.graph_replays == 4
    assert torch.isfinite(torch.stack(losses)).all()

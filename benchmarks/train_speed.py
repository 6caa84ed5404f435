"""Training and evaluation speed: the authors' data pipeline against gradattn.fastdata (issue 6).

For every input shape and model, on one machine in one run, this times
  (a) the authors' pipeline: torchvision-style dataset + PIL transforms + DataLoader(num_workers=2),
      fp32 eager, cudnn deterministic (gradattn.data.paper_transforms, as in the notebooks), and
  (b) ours: the split held on the device as uint8, augmented there (gradattn.fastdata.DeviceLoader),
      bf16 autocast + channels_last + fused Adam on CUDA, each step replayed from a CUDA graph as
      gradattn.train does (gradattn.trainstep; --no-cuda-graphs: eager), optional torch.compile,
      evaluation in large batches; on CPU it falls back to fp32 eager (gradattn.train's default there), so
      there the data path and the fused Adam differ,
and reports training images/s, epoch time, the fraction of the epoch spent waiting for data, evaluation
images/s and the speed-up b/a. Inputs are random uint8 images of each dataset's stored shape pushed
through that dataset's full train-time augmentation (it measures speed, not accuracy). Both pipelines are
set up and warmed up first (cudnn autotuning, compilation: never timed), then timed over --repeats
interleaved epochs, so a slow spell on a shared machine hits both; the median epoch is reported.

    python benchmarks/train_speed.py --quick                    # tiny CPU run (CI-class machines)
    python benchmarks/train_speed.py --device cuda               # the real thing on a GPU (CUDA graphs)
    python benchmarks/train_speed.py --device cuda --no-cuda-graphs [--compile]   # eager / compiled
    python benchmarks/train_speed.py --time-to-accuracy          # + time to 93 % on real Fashion-MNIST

Writes outputs/bench/train_speed.csv (and time_to_accuracy.csv), atomically. Needs only torch,
torchvision (with pillow) and numpy.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing

from gradattn import fastdata   # noqa: E402
from gradattn.fileio import atomic_write_csv, atomic_write_text   # noqa: E402
from gradattn.data.registry import get_info   # noqa: E402
from gradattn.models import logits_of   # noqa: E402
from gradattn.train import TrainConfig, build_optimizer   # noqa: E402
from gradattn.trainstep import TrainStep   # noqa: E402

# Each benchmark shape is the network input of the dataset whose pipeline it runs.
SHAPES = {"28x28x1": "fashionmnist", "32x32x3": "cifar10", "64x64x3": "bloodmnist",
          "96x96x3": "pcam", "224x224x3": "padufes20"}
DEFAULT_SHAPES = ("28x28x1", "32x32x3", "64x64x3")
DEFAULT_MODELS = ("resnet18", "gradattn_lpe")
DATA_LABEL = "random uint8"

COLUMNS = ("date", "device", "device_name", "torch", "cpu_threads", "shape", "pipeline_of", "model",
           "data", "images", "batch_size", "eval_batch_size", "warmup_steps", "repeats", "compile", "cuda_graphs", "amp",
           "channels_last", "workers",
           "authors_train_img_s", "ours_train_img_s", "train_speedup",
           "authors_epoch_s", "ours_epoch_s", "authors_data_wait", "ours_data_wait",
           "authors_eval_img_s", "ours_eval_img_s", "eval_speedup")
TTA_COLUMNS = ("date", "device", "device_name", "torch", "model", "dataset", "protocol", "pipeline",
               "cuda_graphs", "target", "status", "reached", "epochs", "seconds", "test_acc_by_epoch",
               "seconds_by_epoch")


@dataclass
class BenchConfig:
    device: str = "auto"
    shapes: tuple = DEFAULT_SHAPES
    models: tuple = DEFAULT_MODELS
    images: int = 10240          # images per measured epoch
    steps: int = 20              # warm-up training steps, excluded from timing
    repeats: int = 3             # timed epochs per pipeline, interleaved; the median is reported
    batch_size: int | None = None   # None: the dataset's paper batch size (128)
    eval_batch_size: int = 1024  # ours; the authors evaluated with their training batch size
    compile: bool = False
    cuda_graphs: bool = True     # ours, on CUDA: each step replayed from a CUDA graph, as gradattn.train does
    workers: int = 2             # the authors' DataLoader workers
    seed: int = 0
    out: str = "outputs/bench"
    time_to_accuracy: bool = False
    tta_target: float = 0.93
    tta_epochs: int = 30
    tta_pipeline: str = "fast"
    data_root: str | None = None
    profile_steps: int = 0       # >0: torch.profiler over this many of our training steps per row


QUICK = dict(device="cpu", images=384, steps=2, batch_size=32, eval_batch_size=256)


# ---------------------------------------------------------------------------------------------------
# Inputs and the two pipelines

def random_split(info, n: int, seed: int):
    """n random uint8 images of the dataset's stored shape, with random labels (an ArraySplit)."""
    from gradattn.data import ArraySplit
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, info.native_size, info.native_size, info.image_chans), dtype=np.uint8)
    return ArraySplit(images, rng.integers(0, info.num_classes, n, dtype=np.int64))


def authors_loader(split, info, batch_size: int, train: bool, workers: int):
    """What the notebooks ran: a torchvision-style dataset with PIL transforms in a DataLoader."""
    from gradattn.data.transforms import ArrayImageDataset, paper_transforms
    dataset = ArrayImageDataset(split, paper_transforms(info, train=train))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=train, num_workers=workers)


@dataclass
class Pipeline:
    """One way of feeding and running the model: its loaders, precision and layout."""
    name: str
    train_loader: object
    eval_loader: object
    precision: str          # gradattn.fastdata.resolve_precision's setting
    channels_last: bool
    cudnn_benchmark: bool


def authors_pipeline(cfg: BenchConfig, info, split, batch_size: int) -> Pipeline:
    return Pipeline("authors", authors_loader(split, info, batch_size, True, cfg.workers),
                    authors_loader(split, info, batch_size, False, cfg.workers),
                    precision="fp32", channels_last=False, cudnn_benchmark=False)


def our_pipeline(cfg: BenchConfig, info, split, device, batch_size: int) -> Pipeline:
    cuda, channels_last = device.type == "cuda", fastdata.uses_channels_last(device)
    return Pipeline("ours",
                    fastdata.DeviceLoader(split, info, batch_size, train=True, device=device, seed=cfg.seed,
                                          drop_last=True, channels_last=channels_last),
                    fastdata.DeviceLoader(split, info, cfg.eval_batch_size, train=False, device=device,
                                          channels_last=channels_last),
                    precision=TrainConfig.precision, channels_last=channels_last, cudnn_benchmark=cuda)


def build_pipelines(cfg: BenchConfig, info, split, device, batch_size: int) -> list[Pipeline]:
    return [authors_pipeline(cfg, info, split, batch_size), our_pipeline(cfg, info, split, device, batch_size)]


# ---------------------------------------------------------------------------------------------------
# Timing

class DataWaitClock:
    """Time the model's device spends waiting for each batch.

    On CUDA, events around the fetch measure the gap on the GPU's own timeline: augmentation kernels,
    copies, and any idle time while the host was blocked in the DataLoader. On CPU everything is
    synchronous, so wall time around the fetch is the wait.
    """

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        self.pairs, self.seconds = [], 0.0

    def fetch(self, iterator, device):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        else:
            start = time.perf_counter()
        x, y = next(iterator)
        x, y = x.to(device), y.to(device)
        if self.cuda:
            end.record()
            self.pairs.append((start, end))
        else:
            self.seconds += time.perf_counter() - start
        return x, y

    def total(self) -> float:
        """Seconds waited; call after synchronising."""
        return self.seconds + sum(s.elapsed_time(e) for s, e in self.pairs) / 1000


def make_train_step(cfg: BenchConfig, model, pipeline: Pipeline, device) -> TrainStep:
    """The authors: torch's default Adam, fp32. Ours: what gradattn.train runs (fused Adam, bf16 on CUDA,
    and with --cuda-graphs the step replayed from a CUDA graph)."""
    cuda = device.type == "cuda"
    ours = pipeline.name == "ours"
    graphs = ours and cfg.cuda_graphs and cuda
    optimizer = (build_optimizer(model, device, capturable=graphs)
                 if ours else torch.optim.Adam(model.parameters(), lr=TrainConfig.lr,
                                               weight_decay=TrainConfig.weight_decay))
    return TrainStep(model, optimizer, device, precision=pipeline.precision, cuda_graph=graphs)


def train_step(step: TrainStep, x, y, pipeline: Pipeline):
    if pipeline.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return step(x, y)[0]


def warm_up(model, step: TrainStep, pipeline: Pipeline, device, steps: int) -> None:
    """Untimed training steps: cudnn autotuning, compilation, graph capture, allocator and worker start-up."""
    model.train()
    done = 0
    while done < steps:
        for x, y in pipeline.train_loader:
            train_step(step, x.to(device), y.to(device), pipeline)
            done += 1
            if done >= steps:
                break


def time_epoch(model, step: TrainStep, pipeline: Pipeline, device, epoch: int) -> dict:
    """Time one training epoch from a fresh iterator, as the notebooks ran it (workers start per epoch)."""
    model.train()
    loader = pipeline.train_loader
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    fastdata.synchronize(device)
    clock = DataWaitClock(device)
    images = 0
    start = time.perf_counter()
    iterator = iter(loader)
    for _ in range(len(loader)):
        x, y = clock.fetch(iterator, device)
        train_step(step, x, y, pipeline)
        images += y.shape[0]
    fastdata.synchronize(device)
    seconds = time.perf_counter() - start
    return {"img_s": images / seconds, "epoch_s": seconds, "data_wait": clock.total() / seconds}


@torch.inference_mode()
def time_evaluation(model, pipeline: Pipeline, device) -> float:
    """Images/s of one pass over the eval loader."""
    model.eval()
    fastdata.synchronize(device)
    start = time.perf_counter()
    seen = 0
    for x, y in pipeline.eval_loader:
        x = x.to(device)
        if pipeline.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with fastdata.autocast_context(device, pipeline.precision):
            logits_of(model(x)).argmax(1)
        seen += y.shape[0]
    fastdata.synchronize(device)
    return seen / (time.perf_counter() - start)


def median_run(runs: list[dict]) -> dict:
    """The repeat with the median training speed (robust to other jobs on a shared machine)."""
    return sorted(runs, key=lambda run: run["img_s"])[len(runs) // 2]


@contextlib.contextmanager
def cudnn_flags(benchmark: bool):
    """cudnn.benchmark on for ours; the authors set deterministic=True, benchmark=False."""
    saved = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = benchmark, not benchmark
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved


def measure(cfg: BenchConfig, shape: str, model_name: str, device) -> dict:
    from gradattn.models import build_model
    info = get_info(SHAPES[shape])
    batch_size = cfg.batch_size or info.paper_batch_size
    batches = cfg.images // batch_size
    split = random_split(info, batches * batch_size, cfg.seed)
    pipelines = build_pipelines(cfg, info, split, device, batch_size)
    models, steps = {}, {}
    for pipeline in pipelines:                       # both set up and warmed up before any timing
        torch.manual_seed(cfg.seed)
        model = build_model(model_name, info.num_classes, info.in_chans)
        compile_it = pipeline.name == "ours" and cfg.compile and device.type == "cuda"
        if compile_it:
            torch._dynamo.reset()   # a fresh compile per row: recompiling for a new shape crashed (torch 2.11)
        models[pipeline.name] = fastdata.prepare_model(model, device, pipeline.channels_last, compile_it)
        steps[pipeline.name] = make_train_step(cfg, model, pipeline, device)
        with cudnn_flags(pipeline.cudnn_benchmark):
            warm_up(models[pipeline.name], steps[pipeline.name], pipeline, device, cfg.steps)
            time_evaluation(models[pipeline.name], pipeline, device)   # compiles the eval shapes
    train_runs = {p.name: [] for p in pipelines}
    eval_runs = {p.name: [] for p in pipelines}
    for repeat in range(cfg.repeats):                # interleaved, so slow spells hit both alike
        for pipeline in pipelines:
            with cudnn_flags(pipeline.cudnn_benchmark):
                train_runs[pipeline.name].append(time_epoch(models[pipeline.name], steps[pipeline.name],
                                                            pipeline, device, epoch=repeat + 1))
                eval_runs[pipeline.name].append(time_evaluation(models[pipeline.name], pipeline, device))
    result = {name: dict(median_run(train_runs[name]), eval_img_s=float(np.median(eval_runs[name])))
              for name in train_runs}
    graphed = steps["ours"].graph_replays
    del models, steps
    if device.type == "cuda":
        torch.cuda.empty_cache()
    a, b = result["authors"], result["ours"]
    cuda = device.type == "cuda"
    return {
        "shape": shape, "pipeline_of": info.name, "model": model_name, "data": DATA_LABEL,
        "images": batches * batch_size, "batch_size": batch_size, "eval_batch_size": cfg.eval_batch_size,
        "warmup_steps": cfg.steps, "repeats": cfg.repeats, "compile": bool(cfg.compile and cuda),
        "cuda_graphs": bool(graphed),
        "amp": fastdata.resolve_precision(TrainConfig.precision, device),
        "channels_last": fastdata.uses_channels_last(device), "workers": cfg.workers,
        "authors_train_img_s": a["img_s"], "ours_train_img_s": b["img_s"],
        "train_speedup": b["img_s"] / a["img_s"],
        "authors_epoch_s": a["epoch_s"], "ours_epoch_s": b["epoch_s"],
        "authors_data_wait": a["data_wait"], "ours_data_wait": b["data_wait"],
        "authors_eval_img_s": a["eval_img_s"], "ours_eval_img_s": b["eval_img_s"],
        "eval_speedup": b["eval_img_s"] / a["eval_img_s"],
    }


def profile_ours(cfg: BenchConfig, shape: str, model_name: str, device) -> dict:
    """torch.profiler over `cfg.profile_steps` training steps of our pipeline (after warm-up): the top
    operators, and how busy the GPU's kernels kept it. A low kernel fraction means launch overhead or
    host work bounds the step, a high one means the kernels themselves do."""
    from torch.profiler import ProfilerActivity, profile

    from gradattn.models import build_model
    info = get_info(SHAPES[shape])
    batch_size = cfg.batch_size or info.paper_batch_size
    split = random_split(info, max(cfg.profile_steps + 1, 2) * batch_size, cfg.seed)
    pipeline = our_pipeline(cfg, info, split, device, batch_size)
    torch.manual_seed(cfg.seed)
    cuda = device.type == "cuda"
    if cfg.compile and cuda:
        torch._dynamo.reset()
    model = fastdata.prepare_model(build_model(model_name, info.num_classes, info.in_chans), device,
                                   pipeline.channels_last, cfg.compile and cuda)
    step = make_train_step(cfg, model, pipeline, device)
    with cudnn_flags(pipeline.cudnn_benchmark):
        warm_up(model, step, pipeline, device, max(cfg.steps, 5))
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        fastdata.synchronize(device)
        with profile(activities=activities) as prof:
            start = time.perf_counter()
            done = 0
            while done < cfg.profile_steps:
                for x, y in pipeline.train_loader:
                    train_step(step, x, y, pipeline)
                    done += 1
                    if done >= cfg.profile_steps:
                        break
            fastdata.synchronize(device)
            wall = time.perf_counter() - start
    averages = prof.key_averages()
    sort_by = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    table = averages.table(sort_by=sort_by, row_limit=15)
    kernels = [e for e in averages if str(getattr(e, "device_type", "")).endswith("CUDA")]   # the kernels themselves
    kernel_us = sum(getattr(e, "self_device_time_total", 0.0) for e in kernels)
    return {"shape": shape, "model": model_name, "steps": cfg.profile_steps, "wall_s": wall,
            "step_ms": 1000 * wall / cfg.profile_steps,
            "kernel_busy": (kernel_us / 1e6) / wall if cuda else float("nan"), "table": table}


# ---------------------------------------------------------------------------------------------------
# Time to accuracy on real Fashion-MNIST (corrected protocol, resnet18)

class _TargetReached(Exception):
    pass


def time_to_accuracy(cfg: BenchConfig, device) -> dict:
    """Wall time of gradattn.train's fit until test accuracy first reaches the target.

    The test set is scored after every epoch to find that moment; scoring time is not counted, the
    per-epoch validation is (as in the authors' "training time").
    """
    row = {"model": "resnet18", "dataset": "fashionmnist", "protocol": "corrected",
           "pipeline": cfg.tta_pipeline, "cuda_graphs": cfg.cuda_graphs and device.type == "cuda",
           "target": cfg.tta_target, "reached": "", "epochs": "", "seconds": "", "test_acc_by_epoch": "",
           "seconds_by_epoch": ""}
    try:
        from gradattn import train as gtrain
        from gradattn.data import DatasetNotFoundError, load_splits
    except ImportError as err:
        return dict(row, status=f"not available: gradattn.train could not be imported ({err})")
    try:
        splits = load_splits("fashionmnist", protocol="corrected", root=cfg.data_root)
    except DatasetNotFoundError as err:
        return dict(row, status=f"not available: real Fashion-MNIST not found ({str(err).splitlines()[0]})")
    from gradattn.models import build_model
    tcfg = gtrain.TrainConfig(dataset="fashionmnist", model="resnet18", protocol="corrected",
                              pipeline=cfg.tta_pipeline, epochs=cfg.tta_epochs, early_stopping_patience=None,
                              device=str(device), seed=cfg.seed, progress=False, data_root=cfg.data_root,
                              cuda_graphs=cfg.cuda_graphs)
    loaders = gtrain.build_loaders(tcfg, splits, device)
    torch.manual_seed(cfg.seed)
    model = fastdata.prepare_model(build_model("resnet18", 10, splits.info.in_chans), device,
                                   channels_last=fastdata.uses_channels_last(device),
                                   compile=cfg.compile and device.type == "cuda")
    accuracies, elapsed, scoring = [], [], [0.0]

    def score_test(epoch, model, record):
        start = time.perf_counter()
        elapsed.append(start - fit_start - scoring[0])
        _, acc = gtrain.evaluate_loss_acc(model, loaders["test"], device, fastdata.uses_channels_last(device))
        accuracies.append(acc)
        scoring[0] += time.perf_counter() - start
        if acc >= cfg.tta_target:
            raise _TargetReached

    fit_start = time.perf_counter()
    try:
        gtrain.fit(model, loaders["train"], loaders["val"], tcfg, device=device, on_epoch_end=score_test)
    except _TargetReached:
        pass
    seconds = time.perf_counter() - fit_start - scoring[0]
    reached = bool(accuracies) and accuracies[-1] >= cfg.tta_target
    return dict(row, status="ok" if reached else f"target not reached in {len(accuracies)} epochs",
                reached=reached, epochs=len(accuracies), seconds=round(seconds, 2),
                test_acc_by_epoch=" ".join(f"{a:.4f}" for a in accuracies),
                seconds_by_epoch=" ".join(f"{t:.1f}" for t in elapsed))


# ---------------------------------------------------------------------------------------------------
# Machine facts, output

def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_facts(device) -> dict:
    return {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "device": str(device), "device_name": device_name(device), "torch": torch.__version__,
            "cpu_threads": torch.get_num_threads()}


def write_csv_atomic(path: Path, rows: list[dict], columns) -> Path:
    return atomic_write_csv(path, ({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()}
                                   for row in rows), columns)


def format_table(rows: list[dict]) -> str:
    header = ("shape", "model", "authors img/s", "ours img/s", "b/a", "authors epoch s", "ours epoch s",
              "authors wait", "ours wait", "authors eval img/s", "ours eval img/s")
    lines = [header]
    for r in rows:
        lines.append((r["shape"], r["model"], f"{r['authors_train_img_s']:.1f}", f"{r['ours_train_img_s']:.1f}",
                      f"{r['train_speedup']:.2f}x", f"{r['authors_epoch_s']:.2f}", f"{r['ours_epoch_s']:.2f}",
                      f"{r['authors_data_wait']:.0%}", f"{r['ours_data_wait']:.0%}",
                      f"{r['authors_eval_img_s']:.1f}", f"{r['ours_eval_img_s']:.1f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.rjust(w) if i > 1 else cell.ljust(w)
                      for i, (cell, w) in enumerate(zip(line, widths))) for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


# ---------------------------------------------------------------------------------------------------
# Command line

def parse_args(argv=None) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:1, ...")
    parser.add_argument("--sizes", default=None,
                        help=f"comma-separated input shapes HxWxC, from {', '.join(SHAPES)} "
                             f"(default {','.join(DEFAULT_SHAPES)})")
    parser.add_argument("--models", default=None, help=f"comma-separated model names "
                                                       f"(default {','.join(DEFAULT_MODELS)})")
    parser.add_argument("--images", type=int, default=None, help="images per measured epoch (default 10240)")
    parser.add_argument("--steps", type=int, default=None,
                        help="warm-up training steps before timing, excluded from it (default 20)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed epochs per pipeline, interleaved; the median is reported (default 3)")
    parser.add_argument("--batch-size", type=int, default=None, help="training batch (default: the paper's)")
    parser.add_argument("--eval-batch-size", type=int, default=None, help="our evaluation batch (default 1024)")
    parser.add_argument("--workers", type=int, default=None, help="authors' DataLoader workers (default 2)")
    parser.add_argument("--compile", action="store_true", help="torch.compile our model (CUDA only)")
    parser.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=True,
                        help="replay our training step from a CUDA graph, as gradattn.train does (default; "
                             "CUDA only); --no-cuda-graphs times our eager step")
    parser.add_argument("--quick", action="store_true",
                        help="tiny CPU settings: --device cpu --images 384 --steps 2 --batch-size 32 "
                             "--eval-batch-size 256 (explicit options still win)")
    parser.add_argument("--time-to-accuracy", action="store_true",
                        help="also time resnet18 to 93%% test accuracy on real Fashion-MNIST "
                             "(corrected protocol; needs the data under the data root)")
    parser.add_argument("--tta-target", type=float, default=None, help="accuracy target (default 0.93)")
    parser.add_argument("--tta-epochs", type=int, default=None, help="give up after this many epochs (30)")
    parser.add_argument("--tta-pipeline", choices=("fast", "torch"), default=None,
                        help="gradattn.train pipeline for --time-to-accuracy (default fast)")
    parser.add_argument("--data-root", default=None, help="data root (default: gradattn.data's)")
    parser.add_argument("--profile-steps", type=int, default=None,
                        help="also run torch.profiler over this many of our training steps for every row and "
                             "write the top operators and the GPU kernel-busy fraction (default 0: off)")
    parser.add_argument("--out", default=None, help="output folder (default outputs/bench)")
    args = parser.parse_args(argv)

    settings = dict(QUICK) if args.quick else {}
    for key in ("device", "images", "steps", "repeats", "batch_size", "eval_batch_size", "workers", "tta_target",
                "tta_epochs", "tta_pipeline", "data_root", "out", "profile_steps"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.sizes:
        settings["shapes"] = tuple(s.strip() for s in args.sizes.split(",") if s.strip())
    if args.models:
        settings["models"] = tuple(m.strip() for m in args.models.split(",") if m.strip())
    cfg = BenchConfig(compile=args.compile, cuda_graphs=args.cuda_graphs, time_to_accuracy=args.time_to_accuracy,
                      **settings)

    unknown = [s for s in cfg.shapes if s not in SHAPES]
    if unknown:
        parser.error(f"unknown size(s) {unknown}; choose from {', '.join(SHAPES)}")
    from gradattn.models import list_models
    bad_models = [m for m in cfg.models if m not in list_models()]
    if bad_models:
        parser.error(f"unknown model(s) {bad_models}; choose from {', '.join(list_models())}")
    for name in ("images", "steps", "repeats", "eval_batch_size"):
        if getattr(cfg, name) < (0 if name == "steps" else 1):
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if cfg.workers < 0 or (cfg.batch_size is not None and cfg.batch_size < 1):
        parser.error("--workers must be >= 0 and --batch-size >= 1")
    too_few = [s for s in cfg.shapes if cfg.images < (cfg.batch_size or get_info(SHAPES[s]).paper_batch_size)]
    if too_few:
        parser.error(f"--images {cfg.images} is less than one batch for {too_few}; raise --images or "
                     f"lower --batch-size")
    return cfg


def main(argv=None) -> dict:
    cfg = parse_args(argv)
    device = fastdata.resolve_device(cfg.device)
    facts = machine_facts(device)
    print(f"{facts['date']}  device {device} ({facts['device_name']})  torch {facts['torch']}  "
          f"cpu threads {facts['cpu_threads']}  data: {DATA_LABEL}  compile: {cfg.compile and device.type == 'cuda'}  "
          f"cuda graphs: {cfg.cuda_graphs and device.type == 'cuda'}")
    rows = []
    for shape in cfg.shapes:
        for model_name in cfg.models:
            row = dict(facts, **measure(cfg, shape, model_name, device))
            rows.append(row)
            print(f"  {shape} {model_name}: authors {row['authors_train_img_s']:.1f} img/s, "
                  f"ours {row['ours_train_img_s']:.1f} img/s ({row['train_speedup']:.2f}x)", flush=True)
    print()
    print(format_table(rows))
    out = Path(cfg.out)
    path = write_csv_atomic(out / "train_speed.csv", rows, COLUMNS)
    print(f"\nwrote {path}")
    result = {"rows": rows, "csv": path}
    if cfg.profile_steps > 0:
        profiles = []
        for shape in cfg.shapes:
            for model_name in cfg.models:
                prof = profile_ours(cfg, shape, model_name, device)
                profiles.append(prof)
                busy = "" if device.type != "cuda" else f", GPU kernels busy {prof['kernel_busy']:.0%} of it"
                print(f"\nprofile, ours, {shape} {model_name}: {prof['step_ms']:.2f} ms a step over "
                      f"{prof['steps']} steps{busy}\n{prof['table']}")
        text = "\n\n".join(f"{p['shape']} {p['model']}: {p['step_ms']:.3f} ms/step, kernel busy "
                            f"{p['kernel_busy']:.3f}\n{p['table']}" for p in profiles)
        result["profile"] = atomic_write_text(out / "profile.txt", text + "\n")
        print(f"wrote {result['profile']}")
    if cfg.time_to_accuracy:
        tta = dict(facts, **time_to_accuracy(cfg, device))
        tta = {k: tta[k] for k in TTA_COLUMNS}
        print(f"time to {cfg.tta_target:.0%} test accuracy (resnet18, Fashion-MNIST, corrected, "
              f"{cfg.tta_pipeline} pipeline): {tta['status']}"
              + (f", {tta['seconds']} s in {tta['epochs']} epochs" if tta["reached"] else ""))
        result["tta"] = tta
        result["tta_csv"] = write_csv_atomic(out / "time_to_accuracy.csv", [tta], TTA_COLUMNS)
        print(f"wrote {result['tta_csv']}")
    return result


if __name__ == "__main__":
    main()

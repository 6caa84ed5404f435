"""Command line: ``python -m gradattn {models,data,train,sweep,export,attention,gates,findings,check-prose}``
(also ``gradattn``).

    python -m gradattn models --num-classes 10 --in-chans 1
    python -m gradattn models --in-chans 1 --image-size 28   # plus forward GFLOPs per image, both stems
    python -m gradattn data status --data-root data
    python -m gradattn train --dataset fashionmnist --model gradattn_lpe --protocol corrected --seed 0
    python -m gradattn train --dataset fashionmnist --model resnet18 --sample --epochs 3
    python -m gradattn sweep --profile quick
    python -m gradattn sweep --datasets svhn,pcam --models resnet18,gradattn_lpe --seeds 42,43,44
    python -m gradattn sweep --profile paper --shard 0/4 &  ...  --shard 3/4 &   # 4 processes, one GPU
    python -m gradattn export
    python -m gradattn attention --out outputs     # attention.json for finished runs that lack one
    python -m gradattn gates outputs/runs/fashionmnist/se_resnet18/corrected/seed0   # constant SE/CBAM gates
    python -m gradattn gates --out outputs        # gates.json for finished SE/CBAM runs that lack one
    python -m gradattn findings                    # verdicts, ours beside the paper, paired differences
    python -m gradattn findings pe ablation --datasets cifar10 --csv
    python -m gradattn check-prose                 # numbers in README/docs prose that no table backs

A wrong name (dataset, model, protocol, ...) or an absent dataset prints one line on stderr and exits
with code 2; a diverged run (NaN loss) exits with code 1 and keeps its last checkpoint.
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

from gradattn.fastdata import PRECISIONS
from gradattn.gates import GATE_BATCHES
from gradattn.train import PIPELINES, PROTOCOLS, STEMS, ConfigError, NonFiniteLossError, TrainConfig

USAGE_ERROR = 2


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _int_list(text: str) -> list[int]:
    try:
        return [int(item) for item in _comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _shard(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    try:
        k, n = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N, e.g. 0/4, got {text!r}") from None
    if not sep or n < 1 or not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"expected K/N with 0 <= K < N, got {text!r}")
    return k, n


def _interleave(text: str) -> int:
    try:
        width = int(text)
    except ValueError:
        width = 0
    if width < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of runs, got {text!r}")
    return width


def _model_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r} (e.g. d_model=32)")
    for convert in (int, float):
        try:
            return key, convert(value)
        except ValueError:
            pass
    return key, value


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `train` and `sweep`; None means "the default" (TrainConfig or the profile)."""
    defaults = TrainConfig()
    group = parser.add_argument_group("training settings (defaults: the authors' protocol, SPEC 3)")
    group.add_argument("--epochs", type=int, help=f"maximum epochs (default {defaults.epochs})")
    group.add_argument("--batch-size", type=int, help="batch size (default: the dataset's paper value, 128 "
                       "or 64 for PAD-UFES-20)")
    group.add_argument("--lr", type=float, help=f"Adam learning rate (default {defaults.lr})")
    group.add_argument("--weight-decay", type=float, help=f"coupled L2 (default {defaults.weight_decay})")
    group.add_argument("--lr-factor", type=float, help=f"plateau lr factor (default {defaults.lr_factor})")
    group.add_argument("--lr-patience", type=int, help=f"plateau patience in epochs (default "
                       f"{defaults.lr_patience})")
    group.add_argument("--min-lr", type=float, help=f"lr floor (default {defaults.min_lr})")
    group.add_argument("--patience", type=int, dest="early_stopping_patience",
                       help=f"early-stopping patience in epochs on val accuracy (default "
                            f"{defaults.early_stopping_patience})")
    group.add_argument("--paper-defects", action=argparse.BooleanOptionalAction, default=None,
                       help="reproduce the authors' defects (shallow-copy best-weight restore, SPEC 7.2; "
                            "double-normalised training images, SPEC 7.1). Default: on for protocol "
                            "paper, off for corrected")
    group.add_argument("--pipeline", help=f"data pipeline: {' or '.join(PIPELINES)} (default "
                       f"{defaults.pipeline}: device-resident tensors; torch: the authors' DataLoader)")
    group.add_argument("--sample", action="store_true", default=None,
                       help="use the small embedded sample instead of the full dataset")
    group.add_argument("--variant", help="dataset variant, e.g. cifar10 lossless4000 or jpeg4000 (the same "
                       "4,000 training images, lossless or JPEG; corrected protocol); see gradattn.data.VARIANTS")
    group.add_argument("--max-train-samples", type=int, help="train on the first N training images only")
    group.add_argument("--model-option", action="append", type=_model_option, metavar="KEY=VALUE",
                       help="extra build_model option, repeatable (e.g. d_model=32)")
    group.add_argument("--gradflow-batches", type=int, help=f"test batches for the gradient-flow "
                       f"analysis, 0 skips it (default {defaults.gradflow_batches})")
    group.add_argument("--grad-sample-every", type=int, help="record parameter-gradient norms every N "
                       "training steps into the run's gradnorms.csv (default 0: off)")
    group.add_argument("--split-seed", type=int, help=f"data split seed (default {defaults.split_seed})")
    group.add_argument("--device", help="auto (default), cpu, cuda or cuda:<index>")
    group.add_argument("--precision", choices=PRECISIONS,
                       help="auto (default): bf16 autocast on CUDA, fp32 on the CPU; bf16: autocast on the CPU "
                            "too (1.07-1.33x as fast a step on a 2-core CPU with native bf16, benchmarks/cpu_step.py); "
                            "fp32: never. Not part of a run's identity, like --device: each epoch's is in its "
                            "history, the run's in its results row")
    group.add_argument("--deterministic", action="store_true", default=None,
                       help="deterministic kernels (slower)")
    group.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=None,
                       help="replay each training step from a CUDA graph (gradattn.trainstep; default on, "
                            "CUDA only): 7-13x the authors' pipeline's throughput at batch 128 on an H200 "
                            "(benchmarks/README.md)")
    group.add_argument("--num-workers", type=int, help=f"DataLoader workers for --pipeline torch "
                       f"(default {defaults.num_workers})")
    group.add_argument("--data-root", help="folder holding the datasets (default: see `data status`)")
    group.add_argument("--download", action="store_true", default=None,
                       help="download an absent dataset (needs network access)")
    group.add_argument("--out", dest="out_dir", help=f"output folder for runs/ and results.csv "
                       f"(default {defaults.out_dir})")
    group.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                       help="no progress bars")


_TRAINING_FIELDS = ("epochs", "batch_size", "lr", "weight_decay", "lr_factor", "lr_patience", "min_lr",
                    "early_stopping_patience", "paper_defects", "pipeline", "sample", "variant", "max_train_samples",
                    "gradflow_batches", "grad_sample_every", "split_seed", "device", "precision", "deterministic", "cuda_graphs",
                    "num_workers", "data_root",
                    "download", "out_dir", "progress")


def _overrides(args) -> dict:
    settings = {name: getattr(args, name) for name in _TRAINING_FIELDS if getattr(args, name) is not None}
    if args.model_option:
        settings["model_options"] = dict(args.model_option)
    return settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gradattn", description="GradAttn companion: models, data, training, sweeps.",
        epilog="Run `python -m gradattn <command> --help` for a command's options.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    models = commands.add_parser("models", help="table of every registered model and its parameters")
    models.add_argument("--num-classes", type=int, default=10, help="classes of the head (default 10)")
    models.add_argument("--in-chans", type=int, default=3, help="input channels (default 3)")
    models.add_argument("--image-size", type=int, help="also forward GFLOPs per image of this size, with the "
                                                       "paper's stem and the small-image stem (e.g. 28, 32, 64)")

    data = commands.add_parser("data", help="dataset status and preparation")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="action")
    status = data_commands.add_parser("status", help="which datasets are present, and where to put the rest")
    status.add_argument("--data-root", help="folder holding the datasets")
    prepare = data_commands.add_parser("prepare", help="convert/download datasets into the canonical format")
    prepare.add_argument("--data-root", help="folder holding the datasets")
    prepare.add_argument("--shared", metavar="PATH",
                         help="folder holding the shared data files (fashion_mnist/, cifar10/, tiny_imagenet/; "
                              "see ../shared/data/README.md); default: ../shared/data beside the repository")

    train = commands.add_parser(
        "train", help="train, test and analyse one configuration",
        description="Train one model on one dataset, restore the early-stopping weights, evaluate on "
                    "the test split, analyse gradient flow, and write outputs/runs/<dataset>/<model-tag>/"
                    "<protocol>/seed<k>/ plus a row of outputs/results.csv. A finished run is skipped; an "
                    "interrupted one resumes from its checkpoint.")
    train.add_argument("--dataset", default="fashionmnist", help="dataset name (see `data status`)")
    train.add_argument("--model", default="gradattn_lpe", help="model name (see `models`)")
    train.add_argument("--protocol", default="corrected",
                       help=f"{' or '.join(PROTOCOLS)}: the authors' splits and defects, or the fixed ones")
    train.add_argument("--seed", type=int, default=0, help="seed for init, shuffling, augmentation")
    train.add_argument("--stem", default="imagenet", help=f"{' or '.join(STEMS)} (paper: imagenet)")
    _add_training_options(train)

    sweep = commands.add_parser(
        "sweep", help="train a grid of configurations (finished runs are skipped)",
        description="Train datasets x models x protocols x stems x seeds. --profile sets the grid and "
                    "the shared settings; the other options override it.")
    sweep.add_argument("--profile", help="quick or paper (see gradattn.profiles)")
    sweep.add_argument("--datasets", type=_comma_list, help="comma list, e.g. svhn,pcam")
    sweep.add_argument("--models", type=_comma_list, help="comma list, e.g. resnet18,gradattn_lpe")
    sweep.add_argument("--protocols", type=_comma_list, help="comma list of paper,corrected")
    sweep.add_argument("--seeds", type=_int_list, help="comma list, e.g. 42,43,44")
    sweep.add_argument("--stems", type=_comma_list, help="comma list of imagenet,cifar")
    sweep.add_argument("--skip-missing", action="store_true",
                       help="report datasets that are not on disk instead of stopping")
    sweep.add_argument("--keep-going", action="store_true",
                       help="when a run fails, print its traceback and go on with the next; exit 1 at the end")
    sweep.add_argument("--shard", type=_shard, default=(0, 1), metavar="K/N",
                       help="run only configurations K, K+N, K+2N, ... of the grid (0 <= K < N): start N "
                            "processes with K = 0..N-1 to share one GPU (default 0/1: all)")
    sweep.add_argument("--interleave", type=_interleave, default=1, metavar="K",
                       help="keep K runs going in this process, a step of each in turn, each on its own "
                            "CUDA stream (gradattn.interleave; default 1: one after the other)")
    sweep.add_argument("--plan", action="store_true",
                       help="print what the sweep would do with each run (trains, resumes, recorded, finished) "
                            "and stop: no data is read, nothing is trained")
    sweep.add_argument("--recorded", metavar="DIR",
                       help="also skip the runs this committed results folder holds (normally results: "
                            "same run key, and same settings where results/configs kept the run's config), "
                            "so a checkout without outputs/ never retrains a committed run")
    _add_training_options(sweep)

    export = commands.add_parser("export", help="copy results.csv and every run's history into results/")
    export.add_argument("--out", default="outputs", help="output folder to read (default outputs)")
    export.add_argument("--dest", default="results", help="committed folder to write (default results)")

    attention = commands.add_parser(
        "attention", help="write attention.json (where GradAttn's tokens attend, per layer and class, on the "
                          "test split) for finished runs that lack one")
    attention.add_argument("--out", default="outputs", help="output folder whose runs/ to read (default outputs)")
    attention.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    attention.add_argument("--force", action="store_true", help="recompute runs that already have one")

    gates = commands.add_parser(
        "gates", help="which SE/CBAM gates of finished runs still depend on their input (weights and output "
                      "range on the test split): print them for RUN_DIRs, or write gates.json with --out")
    gates.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="a finished se_resnet18 or cbam_resnet18 "
                       "run's folder (with checkpoint.pt), e.g. outputs/runs/fashionmnist/se_resnet18/corrected/seed0")
    gates.add_argument("--out", help="instead, write gates.json for every finished SE/CBAM run under OUT/runs "
                       "that lacks one (what runs trained before the analysis existed need for `export`)")
    gates.add_argument("--force", action="store_true", help="with --out: recompute runs that already have one")
    gates.add_argument("--batches", type=int, default=GATE_BATCHES,
                       help=f"test batches to measure on (default {GATE_BATCHES})")
    gates.add_argument("--device", default="cpu", help="auto, cpu or cuda (default cpu)")

    from gradattn.findings_text import DEFAULT_TABLES, TABLES
    findings = commands.add_parser(
        "findings", help="print the findings tables (verdicts, ours beside the paper, paired differences, ...)",
        description="Print the tables of the README's Findings and 05_results from outputs/results.csv and "
                    "the committed results/results.csv. Tables: "
                    + "; ".join(f"{name}: {what}" for name, what in TABLES.items()) + ".")
    findings.add_argument("tables", nargs="*", metavar="TABLE",
                          help=f"tables to print (default: {' '.join(DEFAULT_TABLES)})")
    findings.add_argument("--profile", default="paper", choices=("paper", "quick"),
                          help="paper: full-data runs (default); quick: the embedded-sample runs")
    findings.add_argument("--datasets", type=_comma_list, help="only these datasets' runs, e.g. cifar10")
    findings.add_argument("--csv", action="store_true", help="CSV blocks (full precision) instead of text")

    prose = commands.add_parser(
        "check-prose", help="list decimal numbers in the findings prose that no table, run or paper number backs",
        description="Check the hand-written findings prose (README.md's findings-prose block, docs/findings.md) "
                    "against the findings tables, the runs and the paper's published numbers; exit 1 if a "
                    "number is not backed (stale or mistyped).")
    prose.add_argument("files", nargs="*", metavar="FILE",
                       help="files to check (default: README.md docs/findings.md of the checkout)")
    return parser


def _describe(result: dict) -> str:
    if result.get("skipped_missing"):
        return f"{result['dataset']}: absent, skipped"
    if result.get("recorded"):
        top1 = float(result.get("top1") or "nan")
        return f"{result['run_key']}: test top-1 {top1:.2f} %, recorded in {result['recorded']} (skipped)"
    if result.get("failed"):
        return f"{result['run_key']}: FAILED ({result['failed']}); the sweep went on"
    if not result.get("finished", True):
        return f"{result['run_key']}: stopped after {result['epochs_run']} epochs (resumable)"
    test = result.get("test", {})
    state = "already finished" if result.get("skipped") else f"{result['train_time_s']:.0f} s"
    return (f"{result['run_key']}: test top-1 {100 * test.get('accuracy', float('nan')):.2f} %, best val "
            f"{100 * result['best_val_acc']:.2f} % at epoch {result['best_epoch']}/{result['epochs_run']} "
            f"({state}) -> {result['run_dir']}")


def _run_train(args) -> int:
    from gradattn.train import check_model_name, run_experiment

    cfg = TrainConfig(dataset=args.dataset, model=args.model, protocol=args.protocol, seed=args.seed,
                      stem=args.stem, **_overrides(args))
    check_model_name(cfg.model, cfg.model_options)
    print(_describe(run_experiment(cfg)))
    return 0


def _run_sweep(args) -> int:
    from gradattn.profiles import get_profile
    from gradattn.train import sweep, sweep_plan

    overrides = _overrides(args)
    for name, field in (("datasets", "dataset"), ("protocols", "protocol")):   # the base must be valid too,
        if getattr(args, name):                                                # e.g. --variant needs its dataset
            overrides.setdefault(field, getattr(args, name)[0])
    if args.profile:
        profile = get_profile(args.profile)
        print(profile.label, file=sys.stderr)
        base = profile.train_config(**overrides)
        grid = dict(datasets=profile.datasets, models=profile.models, protocols=profile.protocols,
                    seeds=profile.seeds, stems=profile.stems)
    else:
        base = TrainConfig(**overrides)
        grid = {}
    for name in ("datasets", "models", "protocols", "seeds", "stems"):
        if getattr(args, name):
            grid[name] = getattr(args, name)
    grid = {name: list(values) for name, values in grid.items()}
    if args.plan:
        return _print_plan(sweep_plan(base, recorded=args.recorded, **grid), base.out_dir)
    results = sweep(base, skip_missing=args.skip_missing, shard=args.shard, keep_going=args.keep_going,
                    interleave=args.interleave, recorded=args.recorded, on_result=lambda result: print(_describe(result), flush=True), **grid)
    failed = [r["run_key"] for r in results if r.get("failed")]
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _print_plan(plan: list[dict], out_dir: str) -> int:
    """One line per run of the grid, as the sweep would meet it, then the counts."""
    where = {"finished": f"finished under {out_dir}", "resumes": f"resumes from its checkpoint under {out_dir}",
             "trains": "trains"}
    for item in plan:
        key, status = item["cfg"].run_key, item["status"]
        if status == "recorded":
            print(_describe(item["result"]))
            continue
        done = f" at epoch {item['epochs_done']}" if status == "resumes" else ""
        seeds = item["seed_epochs"]
        other = f" (recorded seeds of this tag ran {', '.join(map(str, seeds))} epochs)" if seeds else ""
        print(f"{key}: {where[status]}{done}{other}")
    count = collections.Counter(item["status"] for item in plan)
    print(f"plan: {count['trains']} to train, {count['resumes']} to resume, {count['recorded']} recorded, "
          f"{count['finished']} finished under {out_dir}")
    return 0


def _run_findings(args) -> int:
    from gradattn import findings
    from gradattn.findings_text import DEFAULT_TABLES, TABLES, render
    from gradattn.paths import outputs_dir, project_root

    names = args.tables or list(DEFAULT_TABLES)
    unknown = [name for name in names if name not in TABLES]
    if unknown:
        raise ConfigError(f"unknown findings table {', '.join(map(repr, unknown))}; choose from {', '.join(TABLES)}")
    df = findings.collect_results(args.profile)
    root = project_root()
    searched = f"{outputs_dir(root) / 'results.csv'} or {root / 'results' / 'results.csv'}"
    if df.empty and not args.datasets:
        print(f"note: no {args.profile}-profile runs in {searched}; run this in the checkout (or set "
              f"GRADATTN_PROJECT_ROOT to it)", file=sys.stderr)
    if args.datasets:
        absent = sorted(set(args.datasets) - set(df["dataset"]))
        if absent:
            having = ", ".join(sorted(set(df["dataset"]))) or "none (run this in the checkout)"
            raise ConfigError(f"no {args.profile}-profile runs of {', '.join(absent)} in {searched}; "
                              f"datasets with runs: {having}")
        df = df[df["dataset"].isin(args.datasets)].reset_index(drop=True)
    print(render(df, names, profile=args.profile, fmt="csv" if args.csv else "text"))
    return 0


def _run_check_prose(args) -> int:
    from gradattn import findings
    from gradattn.paths import project_root
    from gradattn.prose_check import check_prose

    paths = args.files or [project_root() / "README.md", project_root() / "docs" / "findings.md"]
    absent = [str(path) for path in paths if not Path(path).is_file()]
    if absent:
        raise ConfigError(f"no such file: {', '.join(absent)}" +
                          ("" if args.files else "; run this in the checkout (or set GRADATTN_PROJECT_ROOT to it)"))
    report = check_prose(paths, findings.collect_results("paper"))
    for path, found in report.items():
        for number, context in found:
            print(f"{path}: {number} is in no findings table, run or paper number: ...{context}...")
    if not report:
        print(f"every decimal number in {', '.join(map(str, paths))} is backed")
    return 1 if report else 0


def _require_out_folder(command: str, out) -> None:
    """Commands that read a sweep's output folder refuse one that does not exist, rather than finding no runs."""
    if not Path(out).is_dir():
        raise ConfigError(f"{command} --out {out}: no such folder; name the folder a sweep or train wrote (its "
                          f"--out, e.g. outputs or outputs/gpu)")


def _run_gates(args) -> int:
    from gradattn import gates
    if bool(args.run_dirs) == bool(args.out):
        raise ConfigError("gates: name finished runs' folders to print their gates, or --out OUT to write "
                          "gates.json for the runs under OUT/runs, not both or neither")
    if args.force and not args.out:
        raise ConfigError("gates --force: only --out writes gates.json, so only it can recompute; printing "
                          "RUN_DIRs always measures afresh (drop --force, or use --out OUT --force)")
    if args.batches < 1:
        raise ConfigError(f"gates --batches {args.batches}: measure on at least 1 test batch (default "
                          f"{gates.GATE_BATCHES})")
    if args.out:
        _require_out_folder("gates", args.out)
        written = gates.backfill(args.out, device=args.device, force=args.force, num_batches=args.batches)
        print(f"{len(written)} gate reports written under {args.out}/runs")
        return 0
    for run_dir in args.run_dirs:
        try:
            rows = gates.run_gate_report(run_dir, num_batches=args.batches, device=args.device)
        except (FileNotFoundError, ValueError) as err:
            raise ConfigError(f"gates {run_dir}: {err}") from err
        print(f"== {run_dir} ==")
        print(gates.format_gate_report(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from gradattn.data.errors import DataFormatError, DatasetNotFoundError

    try:
        if args.command == "models":
            from gradattn.models import format_model_table
            if args.image_size is not None and args.image_size < 1:
                raise ConfigError(f"--image-size {args.image_size}: give the image side in pixels, e.g. 28 "
                                  f"(Fashion-MNIST), 32 (CIFAR-10) or 64 (Tiny ImageNet)")
            try:
                table = format_model_table(num_classes=args.num_classes, in_chans=args.in_chans,
                                           image_size=args.image_size)
            except ValueError as err:      # --num-classes 0, --in-chans 0: the model's own check says which
                raise ConfigError(f"models: {err}") from None
            print(table)
            return 0
        if args.command == "data":
            from gradattn.data import cli_prepare, cli_status
            if args.data_command == "status":
                return cli_status(args.data_root)
            return cli_prepare(args.data_root, args.shared)
        if args.command == "train":
            return _run_train(args)
        if args.command == "sweep":
            return _run_sweep(args)
        if args.command == "export":
            from gradattn.results import export_results
            _require_out_folder("export", args.out)
            exported = export_results(args.out, args.dest)
            table = exported["table"] or "no results.csv yet"
            print(f"exported {table}, {len(exported['histories'])} histories, {len(exported['gradflow'])} "
                  f"gradient-flow, {len(exported['attention'])} attention and {len(exported['gates'])} gate "
                  f"summaries and {len(exported['configs'])} run configs to {args.dest}/")
            return 0
        if args.command == "attention":
            from gradattn.attention import backfill
            _require_out_folder("attention", args.out)
            written = backfill(args.out, device=args.device, force=args.force)
            print(f"{len(written)} attention summaries written under {args.out}/runs")
            return 0
        if args.command == "gates":
            return _run_gates(args)
        if args.command == "findings":
            return _run_findings(args)
        if args.command == "check-prose":
            return _run_check_prose(args)
    except (ConfigError, DatasetNotFoundError, DataFormatError) as err:
        print(f"gradattn: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except NonFiniteLossError as err:
        print(f"gradattn: error: {err}", file=sys.stderr)
        return 1
    raise AssertionError(f"unhandled command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())

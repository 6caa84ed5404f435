"""The tidy results table: one row per run in ``outputs/results.csv``, and its export to ``results/``.

Column names follow ``gradattn.paper`` so our runs and the published numbers line up: accuracies are
percent (``top1``, ``top3``, ``top5``, ``best_val``, ``last_val``), the other scores fractions. A row is
identified by ``run_key`` (``<dataset>/<model-tag>/<protocol>/seed<k>``, the run directory below
``outputs/runs``); writing a row with a key already present replaces it. Every write is a locked
read-modify-write that ends in ``os.replace``, so concurrent runs and killed processes never leave a
half-written table. Only the ``csv`` module is needed; ``load_results`` returns a pandas DataFrame.
"""
from __future__ import annotations

import contextlib
import csv
import os
import re
import shutil
from pathlib import Path

from gradattn.fileio import atomic_write_csv
from gradattn.train import read_json, write_json

RESULT_COLUMNS = (
    "run_key", "dataset", "model", "model_tag", "protocol", "seed", "stem", "variant", "paper_defects",
    "pipeline", "is_sample", "data_source", "epochs", "best_epoch", "best_val", "last_val", "top1", "top3", "top5",
    "macro_precision", "macro_recall", "macro_f1", "weighted_precision", "weighted_recall", "weighted_f1",
    "mean_confidence", "std_confidence", "entropy", "ece", "loss", "num_test", "train_time_s", "params",
    "health_score_faithful", "health_score_corrected", "num_dead_layers", "device", "precision", "torch_version",
    "git_commit",
)

# metrics.evaluate key -> results column (fractions kept as fractions, accuracies to percent below)
_TEST_COLUMNS = {
    "precision_macro": "macro_precision", "recall_macro": "macro_recall", "f1_macro": "macro_f1",
    "precision_weighted": "weighted_precision", "recall_weighted": "weighted_recall",
    "f1_weighted": "weighted_f1", "mean_confidence": "mean_confidence", "std_confidence": "std_confidence",
    "mean_entropy": "entropy", "ece": "ece", "loss": "loss",
}


def _percent(value):
    return None if value is None else 100.0 * float(value)


def metrics_to_row(metrics: dict) -> dict:
    """One results-table row from a run's metrics.json content."""
    test = metrics.get("test", {})
    row = {key: metrics.get(key) for key in ("run_key", "dataset", "model", "model_tag", "protocol", "seed",
                                             "stem", "variant", "paper_defects", "pipeline", "is_sample", "data_source",
                                             "best_epoch", "num_test", "train_time_s", "params",
                                             "health_score_faithful", "health_score_corrected", "device",
                                             "torch_version", "git_commit")}
    row["precision"] = metrics.get("precision") or policy_precision(metrics.get("device"))
    dead = metrics.get("dead_layers")
    row.update(epochs=metrics.get("epochs_run"), best_val=_percent(metrics.get("best_val_acc")),
               last_val=_percent(metrics.get("last_val_acc")),
               top1=_percent(test.get("top1_accuracy", test.get("accuracy"))),
               top3=_percent(test.get("top3_accuracy")), top5=_percent(test.get("top5_accuracy")),
               num_dead_layers=None if dead is None else len(dead))
    row.update({column: test.get(key) for key, column in _TEST_COLUMNS.items()})
    return row


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock beside `path` for the read-modify-write (POSIX; a no-op elsewhere)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path.with_name(f".{path.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_results(path: str | os.PathLike = "outputs/results.csv") -> list[dict]:
    """The table's rows as dicts of strings ([] when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_results(rows: list[dict], path: str | os.PathLike) -> Path:
    """Write the table atomically; a row from before runs recorded their precision gets `policy_precision`."""
    rows = [row if row.get("precision") else {**row, "precision": policy_precision(row.get("device"))}
            for row in rows]
    columns = list(RESULT_COLUMNS)
    for row in rows:
        columns += [c for c in row if c not in columns]
    return atomic_write_csv(path, ({c: _format(row.get(c)) for c in columns} for row in rows), columns)


def append_result(row: dict, path: str | os.PathLike = "outputs/results.csv") -> Path:
    """Add `row` to the table, replacing the row of the same run_key if there is one."""
    if not row.get("run_key"):
        raise ValueError("a results row needs a run_key (see TrainConfig.run_key)")
    path = Path(path)
    with _locked(path):
        rows = [r for r in read_results(path) if r.get("run_key") != row["run_key"]]
        rows.append({k: _format(v) for k, v in row.items()})
        return write_results(rows, path)


def load_results(path: str | os.PathLike = "outputs/results.csv"):
    """The table as a pandas DataFrame (empty, with the standard columns, when there is no file yet).

    Columns a file written by an older version lacks are added empty, and `setting` (run_setting) is
    added, so every reader groups runs the same way."""
    import pandas as pd

    path = Path(path)
    df = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=list(RESULT_COLUMNS))
    for column in RESULT_COLUMNS:
        if column not in df:
            df[column] = None
    df["precision"] = [precision if isinstance(precision, str) and precision else policy_precision(device)
                       for precision, device in zip(df["precision"], df["device"])]
    tags = df["model_tag"].where(df["model_tag"].notna(), df["model"])
    df["setting"] = [run_setting(m, t) for m, t in zip(df["model"], tags)]
    df["data"] = [dataset_label(d, s) for d, s in zip(df["dataset"], df["data_source"])]
    return df


def policy_precision(device) -> str | None:
    """The precision of a run recorded before runs kept theirs: the one policy there was, bf16 autocast on
    CUDA GPUs (every GPU these runs used, H100 and H200, has bf16) and fp32 on the CPU."""
    if device is None or device != device or not str(device):
        return None
    return "fp32" if str(device).startswith("cpu") else "bf16"


def dataset_label(dataset: str, data_source) -> str:
    """The dataset's name, marked when the run's files were a declared subset (gradattn.data.sources.
    subset_note), e.g. "tinyimagenet (train subset)": such runs are averaged apart from full-data ones and
    no table shows them as the full dataset."""
    found = re.search(r"a SUBSET(?: of ([a-z, ]+))?:", str(data_source))
    if not found:
        return str(dataset)
    return f"{dataset} ({found.group(1) + ' ' if found.group(1) else ''}subset)"


def sample_mask(df):
    """Boolean Series: rows trained on the embedded sample (not the full dataset)."""
    return df["is_sample"].astype(str).str.lower().isin(("true", "1"))


def run_setting(model: str, model_tag: str) -> str:
    """What a run changed besides the model: its tag without the model name ("" for the paper's settings),
    e.g. "cifarstem-e8" or "jpeg4000-e20". Runs are only averaged or paired within one setting."""
    model, model_tag = str(model), str(model_tag)
    if model_tag == model:
        return ""
    return model_tag[len(model) + 1:] if model_tag.startswith(model + "-") else model_tag


def history_file_name(run_key: str) -> str:
    """results/histories/ file name of a run: the run key with '/' turned into '__'."""
    return run_key.replace("/", "__") + ".csv"


def export_results(out_dir: str | os.PathLike = "outputs", dest: str | os.PathLike = "results") -> dict:
    """Merge the tidy table and copy every finished run's history, its gradient-flow summary
    (gradattn.gradflow.gradflow_summary), for GradAttn runs its attention summary (gradattn.attention) and
    for SE/CBAM runs its gate report (gradattn.gates) into the committed `dest` folder.

    Rows are merged by run_key: a run exported again replaces its row, rows exported earlier from other
    output folders (another machine, another session) stay. Each run's config.json goes to
    `dest/configs/`, so `recorded_runs` (`gradattn sweep --recorded results`) can tell a committed run from
    one with other settings in a checkout that has no outputs/. Checkpoints are never copied.
    Returns {"table": path or None, "histories": [paths], "gradflow": [paths], "attention": [paths],
    "gates": [paths], "configs": [paths]}."""
    from gradattn.gradflow import gradflow_summary

    out_dir, dest = Path(out_dir), Path(dest)
    table = out_dir / "results.csv"
    exported = {"table": None, "histories": [], "gradflow": [], "attention": [], "gates": [], "configs": []}
    if table.exists():
        rows = read_results(table)
        keys = {r["run_key"] for r in rows}
        with _locked(dest / "results.csv"):
            kept = [r for r in read_results(dest / "results.csv") if r.get("run_key") not in keys]
            exported["table"] = write_results(kept + rows, dest / "results.csv")
    runs = out_dir / "runs"
    for metrics_path in sorted(runs.glob("**/metrics.json")) if runs.exists() else []:
        history = metrics_path.parent / "history.csv"
        if not history.exists():
            continue
        run_key = read_json(metrics_path).get("run_key") or metrics_path.parent.relative_to(runs).as_posix()
        exported["histories"].append(_copy_atomic(history, dest / "histories" / history_file_name(run_key)))
        gradflow = metrics_path.parent / "gradflow.json"
        if gradflow.exists():
            summary = gradflow_summary(read_json(gradflow))
            exported["gradflow"].append(write_json(dest / "gradflow" / summary_file_name(run_key), summary))
        for kind in ("attention", "gates"):
            record = metrics_path.parent / f"{kind}.json"
            if record.exists():
                exported[kind].append(_copy_atomic(record, dest / kind / summary_file_name(run_key)))
        config = metrics_path.parent / "config.json"
        if config.exists():
            exported["configs"].append(_copy_atomic(config, dest / "configs" / summary_file_name(run_key)))
    return exported


def recorded_runs(dest: str | os.PathLike = "results") -> dict[str, dict]:
    """The runs a committed results folder holds, by run key: {"row": its results.csv row, "config": its
    config.json as `export_results` kept it in `dest/configs/` (None for runs exported before configs were)}.

    `gradattn sweep --recorded results` skips these runs. results/ travels with every checkout and with the
    tracked tree to the GPU machine, whereas outputs/ (the run folders `is_finished` reads) stays on the
    machine that trained them, so this is what keeps a fresh checkout from training a committed run again."""
    dest = Path(dest)
    table = dest / "results.csv"
    if not table.exists():
        raise FileNotFoundError(f"{table} not found: --recorded takes the committed results folder that holds "
                                f"results.csv (normally results), or leave it out to skip only the runs "
                                f"finished under --out")
    runs = {}
    for row in read_results(table):
        config = dest / "configs" / summary_file_name(row["run_key"])
        runs[row["run_key"]] = {"row": row, "config": read_json(config) if config.exists() else None}
    return runs


def summary_file_name(run_key: str) -> str:
    """results/attention/, results/gates/ and results/gradflow/ file name of a run's summary: the history's name, as .json."""
    return history_file_name(run_key).removesuffix(".csv") + ".json"


def _copy_atomic(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return target

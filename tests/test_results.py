"""The tidy results table: row mapping, replace-by-run-key, safe concurrent appends, export."""
import json
import threading

import pytest

from gradattn.fileio import atomic_write_csv
from gradattn.results import (RESULT_COLUMNS, append_result, export_results, history_file_name,
                              load_results, metrics_to_row, read_results, recorded_runs)


def fake_metrics(run_key="fashionmnist/resnet18/paper/seed0", accuracy=0.5, seed=0):
    """A metrics.json-shaped dict (what run_experiment writes) with chosen values."""
    dataset, tag, protocol, seed_part = run_key.split("/")
    return {"run_key": run_key, "dataset": dataset, "model": tag.split("-")[0], "model_tag": tag,
            "protocol": protocol, "seed": seed, "paper_defects": protocol == "paper", "is_sample": False,
            "epochs_run": 12, "best_epoch": 5, "best_val_acc": 0.7118, "last_val_acc": 0.6418,
            "dead_layers": ["layer4.0", "layer4.1"], "params": 11175370,
            "test": {"accuracy": accuracy, "top1_accuracy": accuracy, "top3_accuracy": 0.9, "f1_macro": 0.4,
                     "mean_entropy": 1.1, "ece": 0.2, "loss": 1.5, "confusion_matrix": [[1, 0], [0, 1]]}}


def test_metrics_to_row_uses_paper_field_names_and_percent():
    row = metrics_to_row(fake_metrics(accuracy=0.6411))
    assert row["top1"] == pytest.approx(64.11) and row["top3"] == pytest.approx(90.0)
    assert row["top5"] is None                                       # not measured, not invented
    assert row["best_val"] == pytest.approx(71.18) and row["last_val"] == pytest.approx(64.18)
    assert (row["epochs"], row["best_epoch"], row["num_dead_layers"]) == (12, 5, 2)
    assert (row["macro_f1"], row["entropy"], row["ece"], row["loss"]) == (0.4, 1.1, 0.2, 1.5)
    assert set(row) <= set(RESULT_COLUMNS)


def test_append_replaces_same_run_key_and_keeps_others(tmp_path):
    table = tmp_path / "results.csv"
    append_result(metrics_to_row(fake_metrics("fashionmnist/resnet18/paper/seed0", 0.5)), table)
    append_result(metrics_to_row(fake_metrics("fashionmnist/gradattn_lpe/paper/seed0", 0.6)), table)
    append_result(metrics_to_row(fake_metrics("fashionmnist/resnet18/paper/seed0", 0.7)), table)
    rows = read_results(table)
    assert [r["run_key"] for r in rows] == ["fashionmnist/gradattn_lpe/paper/seed0",
                                           "fashionmnist/resnet18/paper/seed0"]
    assert float(rows[1]["top1"]) == pytest.approx(70.0)
    frame = load_results(table)
    assert list(frame.columns[:len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert frame["top1"].tolist() == pytest.approx([60.0, 70.0])
    assert frame["seed"].dtype.kind == "i"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".results.csv.lock", "results.csv"]


def test_rows_from_before_the_precision_column_get_the_policy_of_their_device(tmp_path):
    table = tmp_path / "results.csv"
    gpu, cpu = (dict(metrics_to_row(fake_metrics(f"fashionmnist/resnet18/paper/seed{k}", 0.5)), device=device)
                for k, device in ((0, "NVIDIA H200"), (1, "cpu (x86_64, 2 threads)")))
    old_columns = [c for c in RESULT_COLUMNS if c != "precision"]
    atomic_write_csv(table, [{c: r.get(c) for c in old_columns} for r in (gpu, cpu)], old_columns)
    assert load_results(table)["precision"].tolist() == ["bf16", "fp32"]
    append_result({**metrics_to_row(fake_metrics("fashionmnist/resnet18/paper/seed2", 0.5)),
                   "device": "cpu (x86_64, 2 threads)", "precision": "bf16"}, table)
    assert [r["precision"] for r in read_results(table)] == ["bf16", "fp32", "bf16"]   # the file keeps them
    assert metrics_to_row({**fake_metrics(), "device": "NVIDIA H100 80GB HBM3"})["precision"] == "bf16"
    assert metrics_to_row({**fake_metrics(), "device": "cpu", "precision": "bf16"})["precision"] == "bf16"


def test_append_needs_run_key(tmp_path):
    with pytest.raises(ValueError, match="run_key"):
        append_result({"top1": 1.0}, tmp_path / "results.csv")


def test_concurrent_appends_lose_no_row(tmp_path):
    table = tmp_path / "results.csv"

    def worker(k):
        for seed in range(5):
            append_result(metrics_to_row(fake_metrics(f"svhn/model{k}/corrected/seed{seed}", 0.1 * k, seed)),
                          table)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r["run_key"] for r in read_results(table)}) == 30


def test_load_results_without_file_is_empty_with_columns(tmp_path):
    frame = load_results(tmp_path / "nothing.csv")
    assert frame.empty and list(frame.columns) == list(RESULT_COLUMNS) + ["setting", "data"]


def test_load_results_fills_columns_an_older_file_lacks_and_adds_the_setting(tmp_path):
    table = tmp_path / "results.csv"
    table.write_text("run_key,dataset,model,model_tag,protocol,seed,is_sample,top1\n"
                     "fashionmnist/resnet18-e8/paper/seed0,fashionmnist,resnet18,resnet18-e8,paper,0,False,67.5\n"
                     "fashionmnist/gradattn_lpe/paper/seed0,fashionmnist,gradattn_lpe,,paper,0,False,75.2\n")
    frame = load_results(table)
    assert set(RESULT_COLUMNS) <= set(frame.columns)
    assert frame["variant"].isna().all()
    assert frame["setting"].tolist() == ["e8", ""]               # a missing tag means the paper's settings


def test_sample_mask_reads_booleans_written_either_way(tmp_path):
    import pandas as pd
    from gradattn.results import sample_mask
    frame = pd.DataFrame({"is_sample": [True, "True", "true", 1, False, "False", None]})
    assert sample_mask(frame).tolist() == [True, True, True, True, False, False, False]


def test_export_copies_table_and_histories_never_checkpoints(tmp_path):
    out, dest = tmp_path / "outputs", tmp_path / "results"
    run_key = "fashionmnist/resnet18-sample/paper/seed0"
    run_dir = out / "runs" / run_key
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(fake_metrics(run_key)))
    (run_dir / "history.csv").write_text("epoch,val_acc\n1,0.5\n")
    (run_dir / "checkpoint.pt").write_bytes(b"weights")
    unfinished = out / "runs" / "svhn/resnet18/paper/seed0"
    unfinished.mkdir(parents=True)
    (unfinished / "history.csv").write_text("epoch,val_acc\n1,0.9\n")
    append_result(metrics_to_row(fake_metrics(run_key)), out / "results.csv")

    exported = export_results(out, dest)
    assert history_file_name(run_key) == "fashionmnist__resnet18-sample__paper__seed0.csv"
    assert exported["histories"] == [dest / "histories" / history_file_name(run_key)]
    assert (dest / "histories" / history_file_name(run_key)).read_text() == "epoch,val_acc\n1,0.5\n"
    assert read_results(dest / "results.csv") == read_results(out / "results.csv")
    assert not list(dest.rglob("*.pt"))
    assert exported["gradflow"] == []                             # this run has no gradflow.json
    assert exported["configs"] == []                              # nor a config.json
    assert recorded_runs(dest) == {run_key: {"row": read_results(dest / "results.csv")[0], "config": None}}


def test_export_keeps_each_runs_config_so_a_checkout_without_outputs_knows_its_settings(tmp_path):
    out, dest = tmp_path / "outputs", tmp_path / "results"
    run_key = "cifar10/resnet18-cifarstem-e8/corrected/seed0"
    run_dir = out / "runs" / run_key
    run_dir.mkdir(parents=True)
    config = {"dataset": "cifar10", "model": "resnet18", "stem": "cifar", "epochs": 8, "device": "cpu"}
    for name, content in (("metrics.json", fake_metrics(run_key)), ("config.json", config)):
        (run_dir / name).write_text(json.dumps(content))
    (run_dir / "history.csv").write_text("epoch,val_acc\n1,0.5\n")
    append_result(metrics_to_row(fake_metrics(run_key)), out / "results.csv")
    exported = export_results(out, dest)
    assert exported["configs"] == [dest / "configs" / "cifar10__resnet18-cifarstem-e8__corrected__seed0.json"]
    assert recorded_runs(dest)[run_key]["config"] == config
    with pytest.raises(FileNotFoundError, match="elsewhere/results.csv not found: --recorded"):
        recorded_runs(tmp_path / "elsewhere")


def test_export_commits_a_small_gradient_flow_summary_beside_the_history(tmp_path):
    out, dest = tmp_path / "outputs", tmp_path / "results"
    run_key = "cifar10/gradattn_rope/corrected/seed0"
    run_dir = out / "runs" / run_key
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(fake_metrics(run_key)))
    (run_dir / "history.csv").write_text("epoch,val_acc\n1,0.5\n")
    layer = {"name": "layer4.0.conv1", "mean_norm": 0.0, "severity": "high"}
    (run_dir / "gradflow.json").write_text(json.dumps({
        "faithful_health_score": 0.83, "corrected_health_score": 0.875, "dead_layer_names": ["layer4.1"],
        "corrected": {"vanishing": [layer], "exploding": [], "never_fired": [], "num_measured": 64,
                      "num_registered": 64, "layers": [{"name": "stem.0", "norms": [0.1] * 20}]}}))
    exported = export_results(out, dest)
    summary = json.loads((dest / "gradflow" / "cifar10__gradattn_rope__corrected__seed0.json").read_text())
    assert exported["gradflow"] == [dest / "gradflow" / "cifar10__gradattn_rope__corrected__seed0.json"]
    assert summary["dead_layer_names"] == ["layer4.1"] and summary["corrected_health_score"] == 0.875
    assert summary["vanishing"] == [{**layer, "stage": "layer4"}] and "layers" not in summary


def test_export_merges_with_rows_exported_earlier_from_elsewhere(tmp_path):
    dest = tmp_path / "results"
    gpu, cpu = tmp_path / "gpu", tmp_path / "cpu"
    append_result(metrics_to_row(fake_metrics("cifar10/resnet18/paper/seed0", accuracy=0.14)), gpu / "results.csv")
    append_result(metrics_to_row(fake_metrics("fashionmnist/resnet18/paper/seed0", accuracy=0.60)), cpu / "results.csv")
    export_results(gpu, dest)
    export_results(cpu, dest)
    append_result(metrics_to_row(fake_metrics("fashionmnist/resnet18/paper/seed0", accuracy=0.64)), cpu / "results.csv")
    export_results(cpu, dest)
    rows = {r["run_key"]: float(r["top1"]) for r in read_results(dest / "results.csv")}
    assert rows == {"cifar10/resnet18/paper/seed0": pytest.approx(14.0),
                    "fashionmnist/resnet18/paper/seed0": pytest.approx(64.0)}

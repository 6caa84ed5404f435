"""`python -m gradattn`: help, one-line errors with exit code 2, and one end-to-end run on the sample."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from gradattn.cli import USAGE_ERROR, main


def run_cli(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "gradattn", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_help_documents_every_command(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("models", "data", "train", "sweep", "export", "attention", "gates", "findings", "check-prose"):
        assert command in result.stdout


@pytest.mark.parametrize("command", [["train"], ["sweep"], ["data", "status"], ["export"], ["models"],
                                     ["attention"], ["gates"], ["findings"], ["check-prose"]])
def test_each_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_wrong_model_name_is_one_line_exit_2(tmp_path):
    result = run_cli("train", "--dataset", "fashionmnist", "--model", "resnet19", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "resnet19" in result.stderr and "resnet18" in result.stderr   # names the problem and the fix
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("argv, named", [
    (["train", "--dataset", "mnist"], "mnist"),
    (["train", "--protocol", "faithful"], "faithful"),
    (["train", "--pipeline", "dali"], "dali"),
    (["sweep", "--models", "resnet18,gradattn_xl", "--sample"], "gradattn_xl"),
    (["sweep", "--profile", "huge"], "huge"),
    (["train", "--model", "resnet18", "--model-option", "d_model=32"], "d_model"),
    (["train", "--dataset", "cifar10", "--variant", "png4000"], "png4000"),
    (["train", "--dataset", "cifar10", "--protocol", "paper", "--variant", "jpeg4000"], "corrected protocol"),
])
def test_wrong_names_exit_2_with_one_line(argv, named, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err
    assert not (tmp_path / "runs").exists()


def test_absent_dataset_gives_the_not_found_message_and_exit_2(tmp_path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    result = run_cli("train", "--dataset", "svhn", "--model", "resnet18", "--data-root", str(empty),
                     cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "SVHN not found" in result.stderr and str(empty) in result.stderr


def test_models_prints_every_registered_model(capsys):
    from gradattn.models import list_models
    assert main(["models", "--num-classes", "10", "--in-chans", "1"]) == 0
    table = capsys.readouterr().out
    assert all(f"`{name}`" in table for name in list_models())
    assert "11,175,370" in table          # ResNet-18, 10 classes, 1 channel (SPEC 1.6)
    assert main(["models", "--in-chans", "1", "--image-size", "28"]) == 0
    assert "GFLOPs/image at 28 px" in capsys.readouterr().out
    assert main(["models", "--image-size", "0"]) == USAGE_ERROR
    assert "--image-size 0: give the image side in pixels" in capsys.readouterr().err
    assert main(["models", "--num-classes", "0"]) == USAGE_ERROR        # the model's own check, no traceback
    assert "models: num_classes must be an int >= 2, got 0" in capsys.readouterr().err


def test_train_end_to_end_on_embedded_sample_then_export(tmp_path, capsys):
    result = run_cli("train", "--dataset", "fashionmnist", "--model", "gradattn_rope", "--protocol",
                     "corrected", "--sample", "--epochs", "1", "--max-train-samples", "256",
                     "--gradflow-batches", "1", "--device", "cpu", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "outputs/runs/fashionmnist/gradattn_rope-e1-n256-sample/corrected/seed0"
    assert str(run_dir.relative_to(tmp_path)) in result.stdout and "test top-1" in result.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["is_sample"] and not metrics["paper_defects"] and metrics["pipeline"] == "fast"
    assert metrics["test"]["num_samples"] == metrics["num_test"] > 0
    gradflow = json.loads((run_dir / "gradflow.json").read_text())
    assert 0.0 <= gradflow["faithful_health_score"] <= 1.0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["epochs"] == 1 and config["max_train_samples"] == 256 and config["batch_size"] == 128

    assert main(["export", "--out", str(tmp_path / "outputs"), "--dest", str(tmp_path / "results")]) == 0
    assert (tmp_path / "results/results.csv").is_file()
    assert (tmp_path / "results/histories/fashionmnist__gradattn_rope-e1-n256-sample__corrected__seed0.csv").is_file()
    exported = tmp_path / "results/attention/fashionmnist__gradattn_rope-e1-n256-sample__corrected__seed0.json"
    assert json.loads(exported.read_text()) == json.loads((run_dir / "attention.json").read_text())
    committed_config = tmp_path / "results/configs/fashionmnist__gradattn_rope-e1-n256-sample__corrected__seed0.json"
    assert json.loads(committed_config.read_text()) == config

    # a fresh checkout (no outputs/, results/ committed): the same sweep skips the committed run
    capsys.readouterr()
    assert main(["sweep", "--datasets", "fashionmnist", "--models", "gradattn_rope", "--protocols", "corrected",
                 "--sample", "--epochs", "1", "--max-train-samples", "256", "--gradflow-batches", "1",
                 "--device", "cpu", "--no-progress", "--out", str(tmp_path / "fresh"),
                 "--recorded", str(tmp_path / "results")]) == 0
    printed = capsys.readouterr().out
    assert "fashionmnist/gradattn_rope-e1-n256-sample/corrected/seed0: test top-1" in printed
    assert f"recorded in {tmp_path / 'results' / 'results.csv'} (skipped)" in printed
    assert not (tmp_path / "fresh").exists()

    # a run from before attention summaries existed: `attention` rebuilds it from the tested weights
    (run_dir / "attention.json").unlink()
    assert main(["attention", "--out", str(tmp_path / "outputs"), "--device", "cpu"]) == 0
    rebuilt = json.loads((run_dir / "attention.json").read_text())
    original = json.loads(exported.read_text())
    assert rebuilt["counts"] == original["counts"]
    np.testing.assert_allclose(rebuilt["by_layer"], original["by_layer"], atol=1e-5)
    assert main(["attention", "--out", str(tmp_path / "outputs"), "--device", "cpu"]) == 0   # nothing left to do

    # `gates` loads the run's tested weights and test split, and says a GradAttn model has no SE/CBAM gates
    capsys.readouterr()
    assert main(["gates", str(run_dir)]) == USAGE_ERROR
    assert "has no SE or CBAM gates" in capsys.readouterr().err
    assert main(["gates", "--out", str(tmp_path / "outputs")]) == 0     # and writes no gates.json for it
    assert "0 gate reports written" in capsys.readouterr().out and not (run_dir / "gates.json").exists()


def test_sweep_base_config_takes_the_grid_dataset_so_variants_validate(monkeypatch):
    """`sweep --datasets cifar10 --variant jpeg4000`: the base config must not be built for the default
    dataset (Fashion-MNIST has no such variant) before the grid replaces it."""
    import gradattn.train as train

    seen = []
    monkeypatch.setattr(train, "sweep", lambda base, **kw: seen.append((base, kw)) or [])
    assert main(["sweep", "--datasets", "cifar10", "--models", "resnet18", "--protocols", "corrected",
                 "--variant", "jpeg4000", "--seeds", "0,1"]) == 0
    base, grid = seen[0]
    assert (base.dataset, base.variant) == ("cifar10", "jpeg4000") and grid["datasets"] == ["cifar10"]


def test_commands_run_outside_the_checkout_say_where_they_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("GRADATTN_OUTPUTS", raising=False)
    monkeypatch.delenv("GRADATTN_PROJECT_ROOT", raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    findings = run_cli("findings", "paired", "--datasets", "fashionmnist", cwd=elsewhere)
    assert findings.returncode == 2 and "Traceback" not in findings.stderr
    assert str(elsewhere / "results" / "results.csv") in findings.stderr and "in the checkout" in findings.stderr
    tables = run_cli("findings", "paired", cwd=elsewhere)
    assert tables.returncode == 0 and "(no runs for this table yet)" in tables.stdout
    assert "note: no paper-profile runs in" in tables.stderr and "in the checkout" in tables.stderr
    prose = run_cli("check-prose", cwd=elsewhere)
    assert prose.returncode == 2 and str(elsewhere / "README.md") in prose.stderr and "checkout" in prose.stderr


def test_export_from_a_folder_that_does_not_exist_is_refused(tmp_path):
    result = run_cli("export", "--out", str(tmp_path / "outputs" / "gpu"), "--dest", str(tmp_path / "results"),
                     cwd=tmp_path)
    assert result.returncode == 2 and "no such folder" in result.stderr and "--out" in result.stderr
    assert not (tmp_path / "results").exists()


def test_attention_on_a_folder_that_does_not_exist_is_refused(tmp_path, capsys):
    assert main(["attention", "--out", str(tmp_path / "outputs" / "gpu"), "--device", "cpu"]) == USAGE_ERROR
    err = capsys.readouterr().err
    assert "attention --out" in err and "no such folder" in err and len(err.strip().splitlines()) == 1

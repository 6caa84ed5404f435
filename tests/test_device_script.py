"""scripts/device_run.sh, the script a GPU call runs: checked here on the CPU, since a mistake in it costs
device minutes that a session may not have again."""
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "device_run.sh"


def run_script(args, cwd, **env):
    full_env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(ROOT), **env}
    full_env.pop("GRADATTN_DATA", None)
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=600)


def test_a_wrong_stage_or_layout_stops_before_anything_runs(tmp_path):
    bad = run_script(["fmnist-corr,cifar-corr"], tmp_path, OUT=str(tmp_path / "out"))
    assert bad.returncode == 2 and "unknown stage cifar-corr" in bad.stderr
    auto = run_script(["fmnist-corr"], tmp_path, OUT=str(tmp_path / "out"), INTERLEAVE="auto")
    assert auto.returncode == 2 and "needs bench-interleave as the first stage" in auto.stderr
    no_out = run_script(["fmnist-corr"], tmp_path, OUT="")
    assert no_out.returncode != 0 and "OUT must name" in no_out.stderr
    assert not (tmp_path / "outputs").exists()


def test_a_stage_without_its_pack_says_which_pack_and_the_call_fails(tmp_path):
    result = run_script(["cifar10-corr", "100"], tmp_path, OUT=str(tmp_path / "out"), DEVICE="cpu", JOBS="1",
                        DATA_ROOT=str(tmp_path / "data"))
    assert result.returncode == 1
    assert "no pack carry/cifar10" in result.stdout and "FAILED: no data for cifar10-corr" in result.stdout
    assert (tmp_path / "out" / "cifar10-corr.tar.gz").is_file()



def test_a_stage_reached_after_the_budget_is_spent_prepares_nothing(tmp_path):
    """Preparing a pack costs device time (CIFAR-10's 60,000 JPEG decodes: about 40 s) that a stage left
    without budget could not use; with no pack carried either, nothing fails."""
    result = run_script(["fmnist-corr,cifar10-stem", "30"], tmp_path, OUT=str(tmp_path / "out"), DEVICE="cpu",
                        JOBS="1", DATA_ROOT=str(tmp_path / "data"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "budget spent, not starting fmnist-corr" in result.stdout
    assert "budget spent, not starting cifar10-stem" in result.stdout
    assert "no pack" not in result.stdout
    assert not list((tmp_path / "outputs" / "gpu" / "logs").glob("prepare-*.log"))
    assert (tmp_path / "out" / "fmnist-corr_cifar10-stem.tar.gz").is_file()

def write_fmnist_pack(carry: Path) -> None:
    """A Fashion-MNIST pack in the layout pack_for_device.py writes, with the official counts (the loader
    rejects fewer) and blank images: a few hundred kB compressed."""
    folder = carry / "fmnist" / "fashion_mnist"
    folder.mkdir(parents=True)
    np.savez_compressed(folder / "fashion_mnist.npz",
                        x_train=np.zeros((60000, 28, 28), np.uint8), y_train=np.arange(60000) % 10,
                        x_test=np.zeros((10000, 28, 28), np.uint8), y_test=np.arange(10000) % 10)


@pytest.mark.skipif(Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian's Fashion-MNIST package is installed here and takes precedence over the pack")
def test_a_call_trains_from_its_pack_and_the_next_call_skips_what_was_exported(tmp_path):
    work, results = tmp_path / "checkout", tmp_path / "results"
    work.mkdir()
    write_fmnist_pack(work / "carry")
    tiny = dict(DEVICE="cpu", JOBS="1", MODELS="resnet18", DATA_ROOT=str(tmp_path / "data"),
                EXTRA="--epochs 1 --max-train-samples 32 --gradflow-batches 0 --batch-size 16")

    first = run_script(["fmnist-corr", "200"], work, OUT=str(tmp_path / "out1"), RECORDED="", **tiny)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3 finished runs under outputs/gpu" in first.stdout
    assert "IDX files written losslessly from" in (tmp_path / "data" / "fashionmnist" / "MANIFEST.json").read_text()
    assert not (work / "data").exists()
    with tarfile.open(tmp_path / "out1" / "fmnist-corr.tar.gz") as archive:
        names = archive.getnames()
    assert "outputs/gpu/runs/fashionmnist/resnet18-e1-bs16-n32/corrected/seed2/metrics.json" in names
    assert not [n for n in names if n.endswith("checkpoint.pt")]
    assert "FAILED" not in first.stdout

    export = subprocess.run([sys.executable, "-m", "gradattn", "export", "--out", "outputs/gpu", "--dest",
                             str(results)], cwd=work, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True)
    assert export.returncode == 0, export.stdout + export.stderr
    (work / "outputs").rename(tmp_path / "first-call-outputs")     # the next call starts on a fresh machine

    second = run_script(["fmnist-corr", "200"], work, OUT=str(tmp_path / "out2"), RECORDED=str(results), **tiny)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"runs in {results}/results.csv, skipped by every sweep: 3" in second.stdout
    assert second.stdout.count(f"recorded in {results}/results.csv (skipped)") == 3
    assert "0 finished runs under outputs/gpu" in second.stdout


@pytest.mark.skipif(Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian's Fashion-MNIST package is installed here and takes precedence over the pack")
def test_one_call_runs_the_stem_stage_at_8_epochs_and_the_corrected_stage_at_the_papers_budget(tmp_path):
    """The stem stages compare with the paper-stem `-e8` rows, so they train 8 epochs unless STEM_EXTRA says
    otherwise, while `fmnist-corr` in the same call keeps the paper's budget. Both sets of ResNet-18 runs are
    in the committed results, so a call that plans them right trains nothing."""
    write_fmnist_pack(tmp_path / "carry")
    result = run_script(["fmnist-corr,fmnist-stem", "200"], tmp_path, OUT=str(tmp_path / "out"), DEVICE="cpu",
                        JOBS="1", MODELS="resnet18", DATA_ROOT=str(tmp_path / "data"), RECORDED=str(ROOT / "results"))
    assert result.returncode == 0, result.stdout + result.stderr
    for seed in (0, 1, 2):
        for tag in ("resnet18", "resnet18-cifarstem-e8"):
            assert f"fashionmnist/{tag}/corrected/seed{seed}: test top-1" in result.stdout
    assert result.stdout.count("(skipped)") == 6
    assert "0 finished runs under outputs/gpu" in result.stdout


def test_plan_lists_each_stages_runs_without_data_a_gpu_or_an_out_folder(tmp_path):
    """PLAN=1 is read here before a call: it would have shown session 21's second call training
    `resnet18-cifarstem` (the paper's budget) where `-cifarstem-e8` runs waited to resume."""
    result = run_script(["bench-interleave,fmnist-stem"], tmp_path, PLAN="1", OUT="", MODELS="resnet18",
                        RECORDED=str(ROOT / "results"), DATA_ROOT=str(tmp_path / "data"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "== bench-interleave: a benchmark, not planned" in result.stdout
    assert "== fmnist-stem" in result.stdout
    for seed in (0, 1, 2):
        assert f"fashionmnist/resnet18-cifarstem-e8/corrected/seed{seed}: test top-1" in result.stdout
    assert "plan: 0 to train, 0 to resume, 3 recorded, 0 finished under outputs/gpu" in result.stdout
    paper_budget = run_script(["fmnist-stem"], tmp_path, PLAN="1", OUT="", MODELS="resnet18", STEM_EXTRA="",
                              RECORDED=str(ROOT / "results"))
    assert "plan: 3 to train, 0 to resume, 0 recorded" in paper_budget.stdout
    assert "fashionmnist/resnet18-cifarstem/corrected/seed0: trains" in paper_budget.stdout
    assert not (tmp_path / "outputs" / "gpu" / "logs" / "prepare-fmnist.log").exists()
    assert not list(tmp_path.rglob("*.tar.gz"))

"""benchmarks/cpu_adam.py: both optimizers are timed on the same step, the printed ratio and difference are the
CSV's, the one-step difference is float rounding, and bad counts are refused before anything is written."""
import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "cpu_adam.py"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_both_optimizers_are_timed_and_agree_after_one_step(tmp_path):
    for model in ("plain18", "gradattn_nope"):
        result = run("--model", model, "--steps", "1", "--repeats", "2", "--batch-size", "2",
                     "--shape", "28x28x1", "--out", str(tmp_path))
        assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(tmp_path / "cpu_adam.csv")))
    assert [row["model"] for row in rows] == ["plain18", "gradattn_nope"]     # the second run kept the first
    row = rows[-1]
    assert row["shape"] == "28x28x1" and row["repeats"] == "2"
    assert float(row["default_ms_per_step"]) > 0 and float(row["fused_ms_per_step"]) > 0
    assert f"a/b = {float(row['ratio']):.2f}" in result.stdout
    assert f"differs by at most {row['one_step_max_abs_diff']}" in result.stdout
    assert 0 <= float(row["one_step_max_abs_diff"]) < 1e-5


def test_a_bad_count_is_refused(tmp_path):
    result = run("--repeats", "0", "--out", str(tmp_path))
    assert result.returncode == 2 and "must be at least 1" in result.stderr
    assert not (tmp_path / "cpu_adam.csv").exists()

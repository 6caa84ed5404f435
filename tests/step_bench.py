"""What the CPU step-benchmark tests share (not a test module): running a benchmark script in a fresh
process, and its tiny two-model run whose second row must not replace the first."""
import csv
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_script(name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True,
                          timeout=300)


def run_two_models(name: str, tmp_path) -> tuple[list[dict], subprocess.CompletedProcess]:
    """Run benchmarks/`name` for plain18, then gradattn_nope (one step a block, batch 2, 28x28x1) into
    `tmp_path`; return the CSV's rows and the second run's process."""
    for model in ("plain18", "gradattn_nope"):
        result = run_script(name, "--model", model, "--steps", "1", "--repeats", "2", "--batch-size", "2",
                            "--shape", "28x28x1", "--out", str(tmp_path))
        assert result.returncode == 0, result.stderr
    with open(tmp_path / name.replace(".py", ".csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["model"] for row in rows] == ["plain18", "gradattn_nope"]     # the second run kept the first
    return rows, result

"""benchmarks/cpu_adam.py: both optimizers are timed on the same step, the printed ratio and difference are the
CSV's, the one-step difference is float rounding, and bad counts are refused before anything is written."""
from step_bench import run_script, run_two_models


def run(*args):
    return run_script("cpu_adam.py", *args)


def test_both_optimizers_are_timed_and_agree_after_one_step(tmp_path):
    rows, result = run_two_models("cpu_adam.py", tmp_path)
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

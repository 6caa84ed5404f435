"""benchmarks/cpu_layout.py: both layouts run the same steps, the printed ratio is the CSV's, and a second
measurement adds a row rather than replacing the first."""
import csv

from step_bench import run_script


def run(*args):
    return run_script("cpu_layout.py", *args)


def test_both_layouts_are_timed_and_the_ratio_is_written(tmp_path):
    result = run("--model", "plain18", "--steps", "1", "--batch-size", "2", "--cores", "2",
                 "--shape", "32x32x3", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (row,) = list(csv.DictReader(open(tmp_path / "cpu_layout.csv")))
    assert row["shape"] == "32x32x3" and row["cores"] == "2" and row["model"] == "plain18"
    a, b = float(row["one_process_images_per_s"]), float(row["per_core_processes_images_per_s"])
    assert a > 0 and b > 0
    assert f"b/a = {float(row['ratio']):.2f}" in result.stdout
    assert "(a) 1 process x 2 threads" in result.stdout and "(b) 2 processes x 1 thread" in result.stdout


def test_a_bad_shape_or_count_is_refused(tmp_path):
    shape = run("--shape", "28x28", "--out", str(tmp_path))
    assert shape.returncode == 2 and "a shape is HxWxC" in shape.stderr
    cores = run("--cores", "0", "--out", str(tmp_path))
    assert cores.returncode == 2 and "must be at least 1" in cores.stderr
    assert not (tmp_path / "cpu_layout.csv").exists()


def test_a_second_measurement_keeps_the_first_row(tmp_path):
    for model in ("plain18", "resnet18"):
        result = run("--model", model, "--steps", "1", "--batch-size", "2", "--cores", "1", "--out", str(tmp_path))
        assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(tmp_path / "cpu_layout.csv")))
    assert [row["model"] for row in rows] == ["plain18", "resnet18"]
    assert all(row["cpu"] and row["cpu"] in result.stdout for row in rows)

"""benchmarks/interleave_speed.py: every layout trains the same runs, the CSV adds up, bad layouts are refused."""
import csv
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "interleave_speed.py"


def load_script():
    spec = importlib.util.spec_from_file_location("interleave_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_two_layouts_train_the_same_runs_and_write_a_consistent_csv(tmp_path, capsys):
    bench = load_script()
    code = bench.main(["--device", "cpu", "--sample", "--epochs", "1", "--max-train-samples", "32",
                       "--gradflow-batches", "0", "--models", "plain18", "--layouts", "2x1,1x2",
                       "--out", str(tmp_path / "bench"), "--keep", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = list(csv.DictReader(open(tmp_path / "bench" / "interleave_speed.csv")))
    assert [row["layout"] for row in rows] == ["2x1", "1x2"] and tuple(rows[0]) == bench.COLUMNS
    for row in rows:
        assert row["runs"] == row["finished"] == "2" and row["seeds"] == "0,1"
        assert int(row["train_images"]) == 2 * 32                     # two runs, one epoch of 32 images
        assert float(row["images_per_s"]) == pytest.approx(int(row["train_images"]) / float(row["wall_s"]), rel=0.02)
        assert "--interleave" not in row["sweep_options"] and "--sample" in row["sweep_options"]
    assert float(rows[0]["ratio_vs_first"]) == 1.0
    assert float(rows[1]["ratio_vs_first"]) == pytest.approx(
        float(rows[1]["images_per_s"]) / float(rows[0]["images_per_s"]), rel=0.01)
    for layout in ("2x1", "1x2"):      # the same two runs under each layout, from their own sweeps
        keys = sorted(p.parent.name for p in (tmp_path / "runs" / layout).glob("runs/**/metrics.json"))
        assert keys == ["seed0", "seed1"]
    assert (tmp_path / "runs" / "2x1" / "shard1.log").exists() and not (tmp_path / "runs" / "1x2" / "shard1.log").exists()

    fastest = max(rows, key=lambda row: float(row["images_per_s"]))["layout"]
    assert bench.main(["--best", str(tmp_path / "bench" / "interleave_speed.csv")]) == 0
    assert capsys.readouterr().out.split() == fastest.split("x")


def test_best_skips_layouts_with_unfinished_runs_and_fails_when_none_finished(tmp_path, capsys):
    bench = load_script()
    path = tmp_path / "interleave_speed.csv"
    rows = [{"layout": "6x1", "processes": 6, "interleave": 1, "runs": 6, "finished": 6, "images_per_s": 900.0},
            {"layout": "1x6", "processes": 1, "interleave": 6, "runs": 6, "finished": 5, "images_per_s": 2000.0},
            {"layout": "2x3", "processes": 2, "interleave": 3, "runs": 6, "finished": 6, "images_per_s": 1500.0}]
    bench.write_csv(path, rows)
    assert bench.main(["--best", str(path)]) == 0 and capsys.readouterr().out.split() == ["2", "3"]
    bench.write_csv(path, [{**row, "finished": 0} for row in rows])
    assert bench.main(["--best", str(path)]) == 1
    assert "no layout" in capsys.readouterr().err
    assert bench.main(["--best", str(tmp_path / "absent.csv")]) == 1


@pytest.mark.parametrize("layouts, message", [("6x1,1x4", "same number of runs"), ("6", "PxK"), ("0x2", "PxK")])
def test_bad_layouts_are_refused_naming_the_problem(layouts, message, capsys):
    bench = load_script()
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(["--layouts", layouts])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err

"""benchmarks/cpu_step.py: the four settings are what they say, the printed ratios are the CSV's, and bad
counts are refused before anything is written."""
import sys
import warnings
from pathlib import Path

import pytest
import torch

from step_bench import run_script, run_two_models

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return run_script("cpu_step.py", *args)


def test_each_setting_has_its_layout_and_precision():
    sys.path.insert(0, str(ROOT))
    from benchmarks.cpu_step import make_steps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # a CPU without native bf16 warns that it emulates it
        steps, (images, labels) = make_steps("resnet18", (3, 32, 32), 2)
    layouts = {name: (step.step.precision, step.channels_last,
                      step.step.model.stem[0].weight.is_contiguous(memory_format=torch.channels_last))
               for name, step in steps.items()}
    assert layouts == {"fp32_nchw": ("fp32", False, False), "fp32_channels_last": ("fp32", True, True),
                       "bf16_nchw": ("bf16", False, False), "bf16_channels_last": ("bf16", True, True)}
    assert images.shape == (2, 3, 32, 32) and labels.shape == (2,)


def test_all_settings_are_timed_and_the_printed_ratios_are_the_csvs(tmp_path):
    rows, result = run_two_models("cpu_step.py", tmp_path)
    row = rows[-1]
    assert row["shape"] == "28x28x1" and row["repeats"] == "2" and row["native_bf16"] in ("True", "False")
    ms = {name: float(row[f"{name}_ms_per_step"])
          for name in ("fp32_nchw", "fp32_channels_last", "bf16_nchw", "bf16_channels_last")}
    assert all(value > 0 for value in ms.values())
    for column, name in (("ratio_layout", "fp32_channels_last"), ("ratio_bf16", "bf16_nchw"),
                         ("ratio_bf16_channels_last", "bf16_channels_last")):
        assert float(row[column]) == pytest.approx(ms["fp32_nchw"] / ms[name], rel=0.1)
    assert (f"a/b = {float(row['ratio_layout']):.2f}; a/c = {float(row['ratio_bf16']):.2f}; "
            f"a/d = {float(row['ratio_bf16_channels_last']):.2f}") in result.stdout


def test_a_bad_count_is_refused(tmp_path):
    result = run("--steps", "0", "--out", str(tmp_path))
    assert result.returncode == 2 and "must be at least 1" in result.stderr
    assert not (tmp_path / "cpu_step.csv").exists()

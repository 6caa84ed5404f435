"""benchmarks/train_speed.py: runs end to end on CPU with only torch, torchvision and numpy, and
writes a CSV whose numbers are consistent with each other."""
import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "train_speed.py"
pytest.importorskip("torchvision")


def load_script():
    spec = importlib.util.spec_from_file_location("train_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module      # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_tiny_run_without_optional_packages_writes_consistent_csvs(tmp_path):
    blocked = ("scipy", "sklearn", "medmnist", "h5py", "pandas", "matplotlib")   # absent on the GPU machine
    args = ["--quick", "--sizes", "28x28x1", "--models", "resnet18", "--images", "16", "--batch-size", "8",
            "--steps", "1", "--repeats", "2", "--eval-batch-size", "16", "--workers", "1", "--out", str(tmp_path / "bench"),
            "--time-to-accuracy", "--data-root", str(tmp_path / "no-data")]
    # "not available" path: hide Debian's Fashion-MNIST package too, where this machine has it installed
    code = (f"import sys, runpy\nfor m in {blocked!r}: sys.modules[m] = None\n"
            f"import gradattn.data.sources as sources\nsources.SYSTEM_FASHION_MNIST = sources.Path({str(tmp_path / 'no-pkg')!r})\n"
            f"sys.argv = ['train_speed.py'] + {args!r}\nrunpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "b/a" in proc.stdout and "not available" in proc.stdout

    module = load_script()
    rows = list(csv.DictReader(open(tmp_path / "bench" / "train_speed.csv")))
    assert len(rows) == 1 and tuple(rows[0]) == module.COLUMNS
    row = rows[0]
    assert (row["data"], row["device"], row["images"], row["batch_size"]) == ("random uint8", "cpu", "16", "8")
    assert row["compile"] == "False" and row["amp"] == "fp32" and row["repeats"] == "2"
    a, b = float(row["authors_train_img_s"]), float(row["ours_train_img_s"])
    assert a > 0 and b > 0 and float(row["train_speedup"]) == pytest.approx(b / a, rel=2e-3)
    assert float(row["authors_epoch_s"]) == pytest.approx(16 / a, rel=2e-3)
    for column in ("authors_data_wait", "ours_data_wait"):
        assert 0 <= float(row[column]) <= 1
    tta = list(csv.DictReader(open(tmp_path / "bench" / "time_to_accuracy.csv")))
    assert tta[0]["status"].startswith("not available") and tta[0]["reached"] == ""
    assert sorted(p.name for p in (tmp_path / "bench").iterdir()) == ["time_to_accuracy.csv", "train_speed.csv"]


def test_options_quick_defaults_and_clear_errors(capsys):
    module = load_script()
    cfg = module.parse_args(["--quick", "--images", "64"])
    assert (cfg.device, cfg.images, cfg.batch_size) == ("cpu", 64, 32)
    assert cfg.shapes == module.DEFAULT_SHAPES and cfg.models == module.DEFAULT_MODELS
    for argv, message in ([["--sizes", "30x30x3"], "unknown size"],
                          [["--models", "vgg"], "unknown model"],
                          [["--images", "8"], "less than one batch"]):
        with pytest.raises(SystemExit):
            module.parse_args(argv)
        assert message in capsys.readouterr().err


def test_random_split_has_each_datasets_stored_shape():
    module = load_script()
    from gradattn.data.registry import get_info
    for shape, name in module.SHAPES.items():
        info = get_info(name)
        split = module.random_split(info, 3, seed=0)
        assert split.images.shape == (3, info.native_size, info.native_size, info.image_chans)
        assert split.images.dtype.name == "uint8" and split.labels.max() < info.num_classes
        assert shape.startswith(f"{info.input_size}x{info.input_size}x{info.in_chans}")


def test_time_to_accuracy_drives_gradattn_train_until_the_target(monkeypatch, tmp_path):
    import dataclasses

    import gradattn.data
    module = load_script()
    sample = gradattn.data.load_splits("fashionmnist", protocol="corrected", sample=True)
    tiny = dataclasses.replace(sample, train=sample.train.subset(range(64)), val=sample.val.subset(range(32)),
                               test=sample.test.subset(range(32)))
    monkeypatch.setattr(gradattn.data, "load_splits", lambda *args, **kwargs: tiny)
    cfg = module.BenchConfig(device="cpu", tta_target=0.0, tta_epochs=3, out=str(tmp_path))
    result = module.time_to_accuracy(cfg, module.fastdata.resolve_device("cpu"))
    assert result["status"] == "ok" and result["reached"] is True and result["epochs"] == 1
    assert result["seconds"] > 0 and 0 <= float(result["test_acc_by_epoch"]) <= 1
    cfg = module.BenchConfig(device="cpu", tta_target=1.01, tta_epochs=2, out=str(tmp_path))
    result = module.time_to_accuracy(cfg, module.fastdata.resolve_device("cpu"))
    assert result["reached"] is False and result["epochs"] == 2 and "not reached in 2 epochs" in result["status"]


def test_profile_steps_write_the_top_operators(tmp_path):
    module = load_script()
    result = module.main(["--quick", "--sizes", "28x28x1", "--models", "resnet18", "--images", "16",
                          "--batch-size", "8", "--steps", "1", "--repeats", "1", "--eval-batch-size", "16",
                          "--workers", "0", "--profile-steps", "2", "--out", str(tmp_path / "bench")])
    text = (tmp_path / "bench" / "profile.txt").read_text()
    assert result["profile"] == tmp_path / "bench" / "profile.txt"
    assert text.startswith("28x28x1 resnet18:") and "ms/step" in text
    assert "aten::convolution_backward" in text          # the backward pass was profiled

"""scripts/pack_for_device.py: the carry packs for the GPU machine hold the same data, within its limit."""
import importlib.util
import io
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
Image = pytest.importorskip("PIL.Image")
needs_jpegtran = pytest.mark.skipif(shutil.which("jpegtran") is None, reason="jpegtran absent (apt-get install "
                                    "libjpeg-turbo-progs); the CIFAR-10 and Tiny ImageNet packs need it")


def load_script():
    spec = importlib.util.spec_from_file_location("pack_for_device", ROOT / "scripts" / "pack_for_device.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _jpeg(seed: int, size: int = 64) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _blob(pieces):
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(p) for p in pieces])
    return np.frombuffer(b"".join(pieces), dtype=np.uint8), offsets


def write_tiny_shared(shared: Path) -> dict:
    """The shared npz layout with every official wnid, 2 train and 1 val image per class."""
    from gradattn.data.registry import get_info
    wnids = np.array(get_info("tinyimagenet").class_names)
    arrays = {"wnids": wnids, "class_names": np.array([f"thing {i}" for i in range(200)])}
    for split, per_class in (("train", 2), ("val", 1)):
        labels = np.repeat(np.arange(200), per_class).astype(np.int64)
        files = ([f"{wnids[c]}_{k}.JPEG" for c in range(200) for k in range(per_class)] if split == "train"
                 else [f"val_{i}.JPEG" for i in range(200)])
        arrays[f"{split}_jpeg"], arrays[f"{split}_offsets"] = _blob([_jpeg(1000 * per_class + i)
                                                                     for i in range(len(labels))])
        arrays[f"{split}_labels"], arrays[f"{split}_files"] = labels, np.array(files)
    (shared / "tiny_imagenet").mkdir(parents=True)
    np.savez(shared / "tiny_imagenet" / "tiny-imagenet-200-jpeg-train150-val.npz", **arrays)
    return arrays


def test_copy_packs_hold_the_shared_file_and_a_missing_source_is_named(tmp_path, capsys):
    pack = load_script()
    shared = tmp_path / "shared"
    (shared / "fashion_mnist").mkdir(parents=True)
    np.savez(shared / "fashion_mnist" / "fashion_mnist.npz", x_train=np.arange(10, dtype=np.uint8))
    assert pack.main(["--shared", str(shared), "--out", str(tmp_path / "carry"), "--packs", "fmnist"]) == 0
    copied = tmp_path / "carry" / "fmnist" / "fashion_mnist" / "fashion_mnist.npz"
    assert copied.read_bytes() == (shared / "fashion_mnist" / "fashion_mnist.npz").read_bytes()
    assert "fits one call's 64 MiB" in capsys.readouterr().out
    assert pack.main(["--shared", str(shared), "--out", str(tmp_path / "carry"), "--packs", "cifar10"]) == 2
    err = capsys.readouterr().err
    assert "cifar10-jpeg-bytes.npz not found" in err and "--shared" in err
    assert not (tmp_path / "carry" / "cifar10" / "cifar10" / "cifar10-jpeg-bytes.npz").exists()


@needs_jpegtran
def test_tiny_imagenet_pack_is_smaller_and_decodes_to_the_same_pixels(tmp_path):
    pack = load_script()
    original = write_tiny_shared(tmp_path / "shared")
    folder = pack.make_pack("tinyimagenet", tmp_path / "shared", tmp_path / "carry", workers=1)
    with np.load(folder / "tiny_imagenet" / "tiny-imagenet-200-jpeg-train150-val.npz") as z:
        assert "arithmetic" in str(z["transcoded"])
        for split in ("train", "val"):
            blob, offsets = z[f"{split}_jpeg"], z[f"{split}_offsets"]
            assert blob.nbytes < original[f"{split}_jpeg"].nbytes
            assert np.array_equal(z[f"{split}_labels"], original[f"{split}_labels"])
            for i in range(len(offsets) - 1):
                before = original[f"{split}_jpeg"][original[f"{split}_offsets"][i]:original[f"{split}_offsets"][i + 1]]
                after = blob[offsets[i]:offsets[i + 1]]
                assert after.tobytes() != before.tobytes()
                assert np.array_equal(np.asarray(Image.open(io.BytesIO(after.tobytes())).convert("RGB")),
                                      np.asarray(Image.open(io.BytesIO(before.tobytes())).convert("RGB")))

    from gradattn.data import cli_prepare, load_splits
    assert cli_prepare(tmp_path / "root", folder, use_apt=False, datasets=("tinyimagenet",)) == 0
    manifest = (tmp_path / "root" / "tinyimagenet" / "MANIFEST.json").read_text()
    assert "losslessly transcoded" in manifest
    splits = load_splits("tinyimagenet", "corrected", root=tmp_path / "root")
    assert len(splits.train) + len(splits.val) == 400 and len(splits.test) == 200


def write_cifar_shared(shared: Path) -> dict:
    """The shared CIFAR-10 npz layout: 2 train and 1 test JPEG per class."""
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    arrays = {"classes": np.array(classes)}
    for split, per_class in (("train", 2), ("test", 1)):
        labels = np.repeat(np.arange(10), per_class).astype(np.uint8)
        arrays[f"{split}_jpeg"], arrays[f"{split}_offsets"] = _blob([_jpeg(7000 * per_class + i, size=32)
                                                                     for i in range(len(labels))])
        arrays[f"{split}_labels"] = labels
    (shared / "cifar10").mkdir(parents=True)
    np.savez(shared / "cifar10" / "cifar10-jpeg-bytes.npz", **arrays)
    return arrays


@needs_jpegtran
def test_cifar10_pack_is_transcoded_and_prepares_the_same_pixels(tmp_path):
    pack = load_script()
    original = write_cifar_shared(tmp_path / "shared")
    folder = pack.make_pack("cifar10", tmp_path / "shared", tmp_path / "carry", workers=1)
    with np.load(folder / "cifar10" / "cifar10-jpeg-bytes.npz") as z:
        assert "arithmetic" in str(z["transcoded"])
        assert z["train_jpeg"].nbytes < original["train_jpeg"].nbytes

    from gradattn.data import cli_prepare
    assert cli_prepare(tmp_path / "root", folder, use_apt=False, datasets=("cifar10",)) == 0
    manifest = (tmp_path / "root" / "cifar10" / "MANIFEST.json").read_text()
    assert "losslessly transcoded" in manifest and "YoongiKim" in manifest
    first = original["test_jpeg"][original["test_offsets"][0]:original["test_offsets"][1]].tobytes()
    written = (tmp_path / "root" / "cifar10" / "test" / "airplane" / "00000.jpg").read_bytes()
    assert written != first
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(written)).convert("RGB")),
                          np.asarray(Image.open(io.BytesIO(first)).convert("RGB")))


def test_transcode_failure_is_a_clear_error(monkeypatch):
    pack = load_script()
    monkeypatch.setattr(pack, "TRANSCODE", ("no-such-jpegtran-binary",))
    with pytest.raises(pack.PackError, match="libjpeg-turbo-progs"):
        pack.transcode_jpeg(_jpeg(0))


def test_packs_made_together_say_whether_one_call_can_carry_them(tmp_path, capsys, monkeypatch):
    pack = load_script()
    shared = tmp_path / "shared"
    for subdir, filename in (pack.PACKS["fmnist"][0], pack.PACKS["cifar10"][0]):
        (shared / subdir).mkdir(parents=True)
        (shared / subdir / filename).write_bytes(b"\0" * 2**20)
    monkeypatch.setattr(pack, "TRANSCODED", {})              # byte copies: the sizes are what this test sets
    monkeypatch.setattr(pack, "tracked_bytes", lambda root=None: 61.5 * 2**20)
    args = ["--packs", "fmnist,cifar10", "--shared", str(shared), "--out", str(tmp_path / "carry")]
    assert pack.main(args) == 0                              # each fits on its own
    assert "fmnist + cifar10 + tracked tree: 63.5 MiB, one call can carry them together" in capsys.readouterr().out
    monkeypatch.setattr(pack, "tracked_bytes", lambda root=None: 62.5 * 2**20)
    assert pack.main(args) == 0
    assert "64.5 MiB, too much for one call: carry them in separate calls" in capsys.readouterr().out

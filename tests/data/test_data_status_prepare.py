"""`data status`, data-root resolution, the Debian package location, downloads, and `make data` (cli_prepare)."""
from __future__ import annotations

import hashlib
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from data_fixtures import WRITERS, write_medmnist
from gradattn.data import (DataFormatError, DatasetNotFoundError, cli_prepare, cli_status, data_root, data_status,
                           format_status, load_splits)
from gradattn.data import formats, sources


@pytest.fixture
def no_system_package(monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "SYSTEM_FASHION_MNIST", tmp_path / "no-such-package")


def test_data_root_resolution(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GRADATTN_DATA", raising=False)
    assert data_root() == tmp_path / "data"
    monkeypatch.setenv("GRADATTN_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"


def test_status_table_lists_present_and_absent(tmp_path, rng, capsys, no_system_package):
    write_medmnist(tmp_path, rng, "bloodmnist")
    WRITERS["svhn"](tmp_path, rng)
    rows = {r["dataset"]: r for r in data_status(tmp_path)}
    assert list(rows) == ["fashionmnist", "cifar10", "svhn", "bloodmnist", "tissuemnist", "pcam", "padufes20",
                          "tinyimagenet"]
    assert rows["bloodmnist"]["present"] and rows["bloodmnist"]["counts"] == {"train": 80, "val": 16, "test": 24}
    assert rows["svhn"]["counts"] == {"train": 100, "test": 30, "extra": 40}
    assert rows["svhn"]["source"].startswith(f"local files {tmp_path / 'svhn'}")
    assert not rows["pcam"]["present"] and "camelyonpatch_level_2_split" in rows["pcam"]["missing"]
    table = format_status(list(rows.values()))
    assert "bloodmnist" in table and "train 80 / val 16 / test 24" in table
    assert f"{tmp_path / 'tinyimagenet'}/" in table and "embedded sample" in table
    assert cli_status(tmp_path) == 0
    assert "padufes20" in capsys.readouterr().out


def test_status_reports_a_broken_dataset(tmp_path, rng, no_system_package):
    write_medmnist(tmp_path, rng, "tissuemnist")
    path = tmp_path / "tissuemnist" / "tissuemnist.npz"
    path.write_bytes(path.read_bytes()[:100])
    rows = {r["dataset"]: r for r in data_status(tmp_path)}
    assert str(path) in rows["tissuemnist"]["problem"]
    assert cli_status(tmp_path) == 1


def test_debian_package_location_is_found_and_checked(tmp_path, rng, monkeypatch):
    WRITERS["fashionmnist"](tmp_path / "fake", rng)
    system = tmp_path / "fake" / "fashionmnist"
    (system / "MANIFEST.json").unlink()  # a system package carries no manifest: official counts apply
    monkeypatch.setattr(sources, "SYSTEM_FASHION_MNIST", system)
    rows = {r["dataset"]: r for r in data_status(tmp_path / "root")}
    assert rows["fashionmnist"]["source"] == f"system package {system}"
    with pytest.raises(DataFormatError, match="official count is"):
        load_splits("fashionmnist", root=tmp_path / "root")


def test_fetch_verifies_checksums_and_reports_offline(tmp_path):
    payload = b"some file"
    (tmp_path / "src.bin").write_bytes(payload)
    info = sources.get_info("svhn")
    url = (tmp_path / "src.bin").as_uri()
    sources._fetch(url, tmp_path / "out" / "a.bin", hashlib.md5(payload).hexdigest(), info, tmp_path)
    assert (tmp_path / "out" / "a.bin").read_bytes() == payload
    with pytest.raises(DataFormatError, match="checksum mismatch"):
        sources._fetch(url, tmp_path / "out" / "b.bin", "0" * 32, info, tmp_path)
    assert not (tmp_path / "out" / "b.bin").exists()
    with pytest.raises(DatasetNotFoundError, match="train_32x32.mat"):
        sources._fetch((tmp_path / "absent.bin").as_uri(), tmp_path / "out" / "c.bin", None, info, tmp_path)


def test_download_path_writes_verified_files_then_checks_counts(tmp_path, rng, monkeypatch):
    """A download that yields a small file set is caught by the official-count check, not used silently."""
    write_medmnist(tmp_path / "server", rng, "bloodmnist")
    served = tmp_path / "server" / "bloodmnist" / "bloodmnist.npz"
    entry = [(served.as_uri(), "bloodmnist.npz", hashlib.md5(served.read_bytes()).hexdigest())]
    monkeypatch.setitem(sources.DOWNLOADS, "bloodmnist", entry)
    with pytest.raises(DataFormatError, match="official count is 11959"):
        load_splits("bloodmnist", root=tmp_path / "root", download=True)
    manifest = json.loads((tmp_path / "root" / "bloodmnist" / "MANIFEST.json").read_text())
    assert manifest["source"] == "downloaded"
    with pytest.raises(DatasetNotFoundError, match="no automatic download"):
        load_splits("padufes20", root=tmp_path / "root", download=True)


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _blob(encoded: list[bytes]):
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in encoded])]).astype(np.int64)
    return np.frombuffer(b"".join(encoded), np.uint8), offsets


def write_fake_shared(shared, rng):
    """The shared-data files in their documented layouts, with a few images each."""
    (shared / "fashion_mnist").mkdir(parents=True)
    np.savez_compressed(shared / "fashion_mnist" / "fashion_mnist.npz",
                        x_train=rng.integers(0, 256, (20, 28, 28), np.uint8), y_train=np.arange(20, dtype=np.uint8) % 10,
                        x_test=rng.integers(0, 256, (10, 28, 28), np.uint8), y_test=np.arange(10, dtype=np.uint8))
    (shared / "cifar10").mkdir()
    classes = np.array(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"])
    ramp = np.linspace(0, 120, 32)[None, :, None, None] + np.linspace(0, 60, 32)[None, None, :, None]
    lossless = (ramp + rng.integers(0, 70, (20, 1, 1, 3))).astype(np.uint8)  # smooth, like photos
    lossless_labels = np.arange(20, dtype=np.uint8) % 10
    arrays = {"classes": classes}
    for split, n in (("train", 30), ("test", 10)):
        labels = np.sort(np.arange(n) % 10).astype(np.uint8)  # class-sorted like the YoongiKim copy
        pictures = rng.integers(0, 256, (n, 32, 32, 3), np.uint8)
        if split == "train":
            rows = np.array([np.flatnonzero(labels == c)[k // 10] for k, c in enumerate(lossless_labels)])
            pictures[rows] = lossless
        arrays[f"{split}_jpeg"], arrays[f"{split}_offsets"] = _blob([_jpeg(p) for p in pictures])
        arrays[f"{split}_labels"] = labels
    np.savez(shared / "cifar10" / "cifar10-jpeg-bytes.npz", **arrays)
    np.savez_compressed(shared / "cifar10" / "cifar10-lossless-train-first4000.npz", x_train=lossless,
                        y_train=lossless_labels, train_index=np.arange(20, dtype=np.int32),
                        yoongikim_train_index=rows.astype(np.int32))
    (shared / "tiny_imagenet").mkdir()
    wnids = np.array(sources.get_info("tinyimagenet").class_names[::-1])
    tiny = {"wnids": wnids, "class_names": np.array([f"thing {i}" for i in range(200)])}
    for split, per_class in (("train", 2), ("val", 1)):
        labels = np.repeat(np.arange(200), per_class).astype(np.int64)
        files = [f"{wnids[c]}_{k}.JPEG" for c in range(200) for k in range(per_class)] if split == "train" \
            else [f"val_{i}.JPEG" for i in range(200)]
        tiny[f"{split}_jpeg"], tiny[f"{split}_offsets"] = _blob([_jpeg(np.full((64, 64, 3), c % 256, np.uint8))
                                                                 for c in labels])
        tiny[f"{split}_labels"], tiny[f"{split}_files"] = labels, np.array(files)
    np.savez(shared / "tiny_imagenet" / "tiny-imagenet-200-jpeg-train150-val.npz", **tiny)
    return lossless, lossless_labels


def test_prepare_builds_canonical_layouts_idempotently(tmp_path, rng, monkeypatch, capsys, no_system_package):
    lossless, lossless_labels = write_fake_shared(tmp_path / "shared", rng)
    root = tmp_path / "root"
    assert cli_prepare(root, tmp_path / "shared", use_apt=False) == 0

    fashion = formats.read_fashionmnist(root / "fashionmnist", sources.get_info("fashionmnist"))
    with np.load(tmp_path / "shared" / "fashion_mnist" / "fashion_mnist.npz") as z:
        assert np.array_equal(fashion["train"].images[..., 0], z["x_train"])
        assert np.array_equal(fashion["test"].labels, z["y_test"])
    with np.load(tmp_path / "shared" / "cifar10" / "cifar10-jpeg-bytes.npz") as z:
        first = z["train_jpeg"][z["train_offsets"][0]:z["train_offsets"][1]].tobytes()
    assert (root / "cifar10" / "train" / "airplane" / "00000.jpg").read_bytes() == first
    assert "JPEG re-encoded" in json.loads((root / "cifar10" / "MANIFEST.json").read_text())["origin"]

    tiny = load_splits("tinyimagenet", "corrected", root=root)
    assert (len(tiny.train) + len(tiny.val), len(tiny.test)) == (400, 200)
    assert "SUBSET" in " ".join(tiny.notes)
    from gradattn.results import dataset_label
    assert dataset_label("tinyimagenet", tiny.source) == "tinyimagenet (train, val subset)"   # both cut here

    stamp = (root / "cifar10" / "train" / "airplane" / "00000.jpg").stat().st_mtime_ns
    capsys.readouterr()
    assert cli_prepare(root, tmp_path / "shared", use_apt=False) == 0
    assert capsys.readouterr().out.count("already prepared") == 3
    assert (root / "cifar10" / "train" / "airplane" / "00000.jpg").stat().st_mtime_ns == stamp

    # the fake copy is small, so declare it as a subset; then the 4,000-image variants can be compared
    manifest = json.loads((root / "cifar10" / "MANIFEST.json").read_text())
    (root / "cifar10" / "MANIFEST.json").write_text(json.dumps({**manifest, "counts": {"train": 30, "test": 10}}))
    exact = load_splits("cifar10", root=root, variant="lossless4000")
    jpeg = load_splits("cifar10", root=root, variant="jpeg4000")
    assert np.array_equal(np.sort(np.concatenate([exact.train.labels, exact.val.labels])), np.sort(lossless_labels))
    assert np.array_equal(exact.train.labels, jpeg.train.labels) and np.array_equal(exact.test.images, jpeg.test.images)
    error = np.abs(exact.train.images.astype(int) - jpeg.train.images.astype(int)).mean()
    assert 0 < error < 3  # the same pictures, slightly JPEG-degraded
    assert "lossless" in exact.source and "JPEG" in jpeg.source
    with pytest.raises(ValueError, match="corrected protocol only"):
        load_splits("cifar10", "paper", root=root, variant="lossless4000")


def test_cli_data_prepare_reads_the_shared_folder_it_is_given(tmp_path, rng, capsys, no_system_package):
    """`make data` / `python -m gradattn data prepare [--shared PATH]` from the command line."""
    from gradattn.cli import main

    write_fake_shared(tmp_path / "shared", rng)
    root = tmp_path / "root"
    assert main(["data", "prepare", "--data-root", str(root), "--shared", str(tmp_path / "shared")]) == 0
    assert (root / "cifar10" / "train" / "airplane" / "00000.jpg").is_file()
    assert (root / "fashionmnist" / "MANIFEST.json").is_file() and (root / "tinyimagenet" / "MANIFEST.json").is_file()
    capsys.readouterr()
    assert main(["data", "prepare", "--data-root", str(root), "--shared", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere" in err and "--shared" in err


def test_prepare_leaves_foreign_folders_alone(tmp_path, rng, capsys, no_system_package):
    write_fake_shared(tmp_path / "shared", rng)
    WRITERS["cifar10"](tmp_path / "root", rng)
    before = sorted(p.name for p in (tmp_path / "root" / "cifar10").iterdir())
    cli_prepare(tmp_path / "root", tmp_path / "shared", use_apt=False)
    assert "left alone" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "root" / "cifar10").iterdir()) == before
    shutil.rmtree(tmp_path / "root")

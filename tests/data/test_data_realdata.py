"""The full real datasets available offline, loaded through the user path: known counts and class balance.

Skipped, with the reason, where the data is absent. CIFAR-10 and Tiny ImageNet are read from the repo's
data root when `make data` has prepared them there (their decoded caches make reruns fast), otherwise
prepared into a temporary root first.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gradattn.data import load_splits
from gradattn.data.prepare import cli_prepare, default_shared
from gradattn.data.sources import SYSTEM_FASHION_MNIST, read_manifest

pytestmark = pytest.mark.realdata
SHARED = default_shared()
REPO_DATA = Path(__file__).resolve().parents[2] / "data"


def prepared_root(tmp_path_factory, name: str, shared_file: str) -> Path:
    if (REPO_DATA / name).is_dir() and "prepared_from" in read_manifest(REPO_DATA / name):
        return REPO_DATA  # prepared by `make data`; its decoded cache makes this fast
    if SHARED is None or not (SHARED / shared_file).is_file():
        pytest.skip(f"real {name} copy absent: neither {REPO_DATA / name} (make data) nor ../shared/data/{shared_file}")
    root = tmp_path_factory.mktemp(f"real_{name}")
    cli_prepare(root, SHARED, use_apt=False, datasets=(name,))
    return root


def assert_balanced(labels: np.ndarray, num_classes: int, per_class: int) -> None:
    assert np.bincount(labels, minlength=num_classes).tolist() == [per_class] * num_classes


@pytest.mark.skipif(not SYSTEM_FASHION_MNIST.is_dir(), reason=f"{SYSTEM_FASHION_MNIST} absent "
                    "(apt-get install dataset-fashion-mnist)")
def test_debian_fashion_mnist_full(tmp_path):
    splits = load_splits("fashionmnist", "corrected", root=tmp_path)
    assert splits.source == f"system package {SYSTEM_FASHION_MNIST}"
    assert (len(splits.train) + len(splits.val), len(splits.test)) == (60000, 10000)
    assert_balanced(np.concatenate([splits.train.labels, splits.val.labels]), 10, 6000)
    assert_balanced(splits.test.labels, 10, 1000)
    paper = load_splits("fashionmnist", "paper", root=tmp_path)
    assert (len(paper.train), len(paper.val), len(paper.test)) == (49000, 10500, 10500)


@pytest.mark.skipif(SHARED is None or not (SHARED / "fashion_mnist" / "fashion_mnist.npz").is_file(),
                    reason="../shared/data/fashion_mnist/fashion_mnist.npz absent")
def test_shared_fashion_mnist_full_via_make_data(tmp_path, monkeypatch):
    from gradattn.data import sources
    monkeypatch.setattr(sources, "SYSTEM_FASHION_MNIST", tmp_path / "no-package")
    cli_prepare(tmp_path, SHARED, use_apt=False, datasets=("fashionmnist",))
    splits = load_splits("fashionmnist", "corrected", root=tmp_path)
    assert (len(splits.train) + len(splits.val), len(splits.test)) == (60000, 10000)
    assert_balanced(splits.test.labels, 10, 1000)
    pixels = splits.test.images.astype(np.float32) / 255
    assert abs(pixels.mean() - 0.286) < 0.01
    assert splits.test.labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]  # the official t10k order


def test_cifar10_jpeg_copy_full(tmp_path_factory):
    root = prepared_root(tmp_path_factory, "cifar10", "cifar10/cifar10-jpeg-bytes.npz")
    splits = load_splits("cifar10", "corrected", root=root)
    assert "JPEG re-encoded" in splits.source
    assert (len(splits.train), len(splits.val), len(splits.test)) == (45000, 5000, 10000)
    assert_balanced(np.concatenate([splits.train.labels, splits.val.labels]), 10, 5000)
    assert_balanced(splits.test.labels, 10, 1000)
    means = splits.test.images.reshape(-1, 3).mean(0) / 255
    assert np.allclose(means, (0.4942, 0.4851, 0.4504), atol=0.01)
    paper = load_splits("cifar10", "paper", root=root)
    assert (len(paper.train), len(paper.val), len(paper.test)) == (42000, 9000, 9000) and paper.paper_defects

    exact = load_splits("cifar10", root=root, variant="lossless4000")
    jpeg = load_splits("cifar10", root=root, variant="jpeg4000")
    assert len(exact.train) + len(exact.val) == 4000 and np.array_equal(exact.train.labels, jpeg.train.labels)
    assert np.abs(exact.train.images.astype(np.int16) - jpeg.train.images).mean() < 10  # README: MAE 5.8/255


def test_tiny_imagenet_subset(tmp_path_factory):
    root = prepared_root(tmp_path_factory, "tinyimagenet", "tiny_imagenet/tiny-imagenet-200-jpeg-train150-val.npz")
    splits = load_splits("tinyimagenet", "corrected", root=root)
    assert "SUBSET" in " ".join(splits.notes)
    from gradattn.results import dataset_label
    assert dataset_label("tinyimagenet", splits.source) == "tinyimagenet (train subset)"   # val is complete
    assert (len(splits.train) + len(splits.val), len(splits.test)) == (30000, 10000)
    assert_balanced(splits.test.labels, 200, 50)
    assert splits.test.images.shape[1:] == (64, 64, 3)

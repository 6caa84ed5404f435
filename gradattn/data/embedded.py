"""The embedded Fashion-MNIST sample: 2,000 train / 500 test real images shipped in the package.

It lets the quick profile run on any machine with no network and no system package, and is labelled
as a sample wherever it is used. Stratified and deterministic: the first 200 train and the first 50
test images of every class, in the official file order. Regenerate with
`python -m gradattn.data.embedded [fashion_mnist.npz | /usr/share/datasets/fashion-mnist]`.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

from ..fileio import atomic_write_bytes
from .formats import read_idx
from .sources import SAMPLE_COUNTS, SAMPLE_FILE, SYSTEM_FASHION_MNIST


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first `per_class` images of every class, in the original order."""
    picked = [np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)]
    if any(len(p) < per_class for p in picked):
        raise ValueError(f"fewer than {per_class} images in some class")
    return np.sort(np.concatenate(picked))


def build_sample(x_train, y_train, x_test, y_test, dest: Path = SAMPLE_FILE) -> dict:
    arrays = {}
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        index = first_per_class(np.asarray(y), SAMPLE_COUNTS[split] // 10)
        arrays.update({f"x_{split}": np.asarray(x, dtype=np.uint8)[index],
                       f"y_{split}": np.asarray(y, dtype=np.uint8)[index],
                       f"{split}_index": index.astype(np.int32)})
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(dest, buffer.getvalue())
    return arrays


def load_full(source: Path) -> tuple[np.ndarray, ...]:
    if source.is_dir():
        return tuple(read_idx(source / f"{n}.gz") for n in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
    with np.load(source) as z:
        return z["x_train"], z["y_train"], z["x_test"], z["y_test"]


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else SYSTEM_FASHION_MNIST
    build_sample(*load_full(source))
    print(f"wrote {SAMPLE_FILE} ({SAMPLE_FILE.stat().st_size:,} bytes) from {source}")

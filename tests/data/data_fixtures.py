"""Tiny file sets in each dataset's canonical on-disk format, written the way the real files are laid out.

Each writer puts a few images per class under `<root>/<name>/` and returns the counts it wrote per
official split; a MANIFEST.json declares those counts, as a user keeping a deliberate subset would.
"""
from __future__ import annotations

import csv
import gzip
import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from gradattn.data import get_info
from gradattn.data.prepare import idx_bytes

RNG_SEED = 1234


def images(rng, n, size, chans):
    shape = (n, size, size) if chans == 1 else (n, size, size, chans)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def balanced_labels(num_classes, per_class):
    return np.repeat(np.arange(num_classes), per_class)


def declare(folder: Path, counts: dict) -> dict:
    (folder / "MANIFEST.json").write_text(json.dumps({"origin": "test fixture", "counts": counts}))
    return counts


def write_fashionmnist(root: Path, rng) -> dict:
    folder = root / "fashionmnist"
    folder.mkdir(parents=True)
    counts = {}
    for split, prefix, per_class in (("train", "train", 10), ("test", "t10k", 3)):
        y = balanced_labels(10, per_class)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images(rng, len(y), 28, 1))))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(y.astype(np.uint8))))
        counts[split] = len(y)
    return declare(folder, counts)


def write_cifar10(root: Path, rng) -> dict:
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, per_class in [(f"data_batch_{i}", 2) for i in range(1, 6)] + [("test_batch", 3)]:
        y = balanced_labels(10, per_class)
        data = images(rng, len(y), 32, 3).transpose(0, 3, 1, 2).reshape(len(y), 3072)
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": y.tolist(), b"data": data,
                         b"filenames": [b"x.png"] * len(y)}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in get_info("cifar10").class_names]}, f)
    return declare(folder.parent, {"train": 100, "test": 30})


def write_svhn(root: Path, rng) -> dict:
    import scipy.io
    folder = root / "svhn"
    folder.mkdir(parents=True)
    counts = {}
    for split, per_class in (("train", 10), ("test", 3), ("extra", 4)):
        digits = balanced_labels(10, per_class)
        y = np.where(digits == 0, 10, digits).reshape(-1, 1).astype(np.uint8)  # SVHN stores digit 0 as 10
        x = images(rng, len(y), 32, 3).transpose(1, 2, 3, 0)
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
        counts[split] = len(y)
    return declare(folder, counts)


def write_medmnist(root: Path, rng, name: str, size: int = 28) -> dict:
    info = get_info(name)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    arrays, counts = {}, {}
    for split, per_class in (("train", 10), ("val", 2), ("test", 3)):
        y = balanced_labels(info.num_classes, per_class)
        arrays[f"{split}_images"] = images(rng, len(y), size, info.image_chans)
        arrays[f"{split}_labels"] = y.reshape(-1, 1).astype(np.uint8)
        counts[split] = len(y)
    np.savez_compressed(folder / (f"{name}.npz" if size == 28 else f"{name}_{size}.npz"), **arrays)
    return declare(folder, counts)


def write_pcam(root: Path, rng) -> dict:
    import h5py
    folder = root / "pcam"
    folder.mkdir(parents=True)
    counts = {}
    for split, file_split, per_class in (("train", "train", 6), ("val", "valid", 2), ("test", "test", 2)):
        y = balanced_labels(2, per_class).astype(np.uint8).reshape(-1, 1, 1, 1)
        with h5py.File(folder / f"camelyonpatch_level_2_split_{file_split}_x.h5", "w") as f:
            f.create_dataset("x", data=images(rng, len(y), 96, 3))
        with h5py.File(folder / f"camelyonpatch_level_2_split_{file_split}_y.h5", "w") as f:
            f.create_dataset("y", data=y)
        counts[split] = len(y)
    return declare(folder, counts)


def write_padufes20(root: Path, rng) -> dict:
    """60 patients, 10 per diagnosis, 1-3 photos each of varying size, spread over imgs_part_1/2."""
    info = get_info("padufes20")
    folder = root / "padufes20"
    rows = []
    for patient in range(60):
        diagnosis = info.class_names[patient % 6]
        for k in range(1 + patient % 3):
            img_id = f"PAT_{patient}_{k}_{len(rows)}.png"
            part = folder / f"imgs_part_{1 + len(rows) % 2}"
            part.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images(rng, 1, 40 + 8 * k, 3)[0]).save(part / img_id)
            rows.append({"patient_id": f"PAT_{patient}", "lesion_id": patient, "img_id": img_id,
                         "diagnostic": diagnosis})
    with open(folder / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return declare(folder, {"all": len(rows)})


def write_tinyimagenet(root: Path, rng) -> dict:
    """All 200 wnids (wnids.txt order differs from the sorted class order), 6 train and 1 val JPEG each."""
    wnids = list(get_info("tinyimagenet").class_names)[::-1]
    base = root / "tinyimagenet" / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    annotations = []
    for c, wnid in enumerate(wnids):
        (base / "train" / wnid / "images").mkdir(parents=True)
        for k in range(6):
            Image.fromarray(np.full((64, 64, 3), c, np.uint8)).save(base / "train" / wnid / "images" / f"{wnid}_{k}.JPEG")
        Image.fromarray(np.full((64, 64, 3), c, np.uint8)).save(base / "val" / "images" / f"val_{c}.JPEG")
        annotations.append(f"val_{c}.JPEG\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    return declare(root / "tinyimagenet", {"train": 1200, "val": 200})


def write_imagefolder(root: Path, rng, name: str, per_class: dict) -> dict:
    info = get_info(name)
    folder = root / name
    for split, n in per_class.items():
        for c, class_name in enumerate(info.class_names):
            class_dir = folder / split / class_name.replace("/", "_")
            class_dir.mkdir(parents=True)
            for k in range(n):
                array = images(rng, 1, info.native_size, info.image_chans)[0]
                Image.fromarray(array).save(class_dir / f"{k:03d}.png")
    return declare(folder, {s: n * info.num_classes for s, n in per_class.items()})


WRITERS = {
    "fashionmnist": write_fashionmnist,
    "cifar10": write_cifar10,
    "svhn": write_svhn,
    "bloodmnist": lambda root, rng: write_medmnist(root, rng, "bloodmnist"),
    "tissuemnist": lambda root, rng: write_medmnist(root, rng, "tissuemnist"),
    "pcam": write_pcam,
    "padufes20": write_padufes20,
    "tinyimagenet": write_tinyimagenet,
}

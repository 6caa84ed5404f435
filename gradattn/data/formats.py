"""Readers for each dataset's canonical on-disk format, plus the generic ImageFolder tree.

Every reader returns the official splits as `{split: ArraySplit}` and checks what it reads: a corrupt
or truncated file, a wrong shape, or a label out of range raises `DataFormatError` naming the file.
Each reader also has a cheap `count_*` twin (headers only) for `data status`.

Folders of encoded images (ImageFolder, Tiny ImageNet, PAD-UFES-20) are decoded once and cached as an
npz under `<dataset dir>/.cache/`; the cache records a fingerprint of the file names, sizes and mtimes
and is rebuilt when any of them changes.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import pickle
import re
import struct
import zipfile
from pathlib import Path

import numpy as np

from ..fileio import atomic_write_bytes
from .errors import DataFormatError
from .registry import DatasetInfo
from .splits import ArraySplit

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
FOLDER_SPLITS = ("train", "val", "test")
CACHE_DIR = ".cache"


def atomic_savez(path: Path, **arrays) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def check_labels(labels: np.ndarray, num_classes: int, path: Path) -> np.ndarray:
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataFormatError(f"{path}: labels must lie in 0..{num_classes - 1}, found "
                              f"{labels.min()}..{labels.max()}")
    return labels


def check_images(images: np.ndarray, size: int, chans: int, path: Path) -> np.ndarray:
    if images.ndim == 3 and chans == 1:
        images = images[..., None]
    expected = (size, size, chans)
    if images.ndim != 4 or images.shape[1:] != expected:
        raise DataFormatError(f"{path}: images must have shape (N, {size}, {size}, {chans}), "
                              f"found {images.shape}")
    if images.dtype != np.uint8:
        raise DataFormatError(f"{path}: images must be uint8, found {images.dtype}")
    return images


def first_existing(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


# ---------------------------------------------------------------------------------------- Fashion-MNIST
FASHION_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                 "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FASHION_SUBDIRS = (".", "FashionMNIST/raw")


def _open_maybe_gz(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def idx_header(path: Path) -> tuple[int, ...]:
    """Dimensions declared in an IDX file's header (the file holds prod(dims) unsigned bytes after it)."""
    try:
        with _open_maybe_gz(path) as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] != 0x08:
                raise DataFormatError(f"{path}: not an IDX file of unsigned bytes (magic {magic!r})")
            raw = f.read(4 * magic[3])
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataFormatError(f"{path}: unreadable ({e}); the file is corrupt or truncated, place it again") from None
    if len(raw) < 4 * magic[3]:
        raise DataFormatError(f"{path}: header is truncated")
    return struct.unpack(f">{magic[3]}I", raw)


def read_idx(path: Path) -> np.ndarray:
    dims = idx_header(path)
    try:
        with _open_maybe_gz(path) as f:
            data = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataFormatError(f"{path}: unreadable ({e}); the file is corrupt or truncated, place it again") from None
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * len(dims))
    if body.size != int(np.prod(dims)):
        raise DataFormatError(f"{path}: header declares {dims} = {int(np.prod(dims))} values but the file holds "
                              f"{body.size}; the file is truncated or corrupt")
    return body.reshape(dims)


def fashion_paths(folder: Path) -> dict[str, tuple[Path, Path]] | None:
    for sub in FASHION_SUBDIRS:
        base = folder / sub
        found = {}
        for split, names in FASHION_FILES.items():
            pair = tuple(first_existing(base, (n + ".gz", n)) for n in names)
            if None in pair:
                break
            found[split] = pair
        else:
            return found
    return None


def read_fashionmnist(folder: Path, info: DatasetInfo) -> dict[str, ArraySplit]:
    out = {}
    for split, (image_path, label_path) in fashion_paths(folder).items():
        images = check_images(read_idx(image_path), 28, 1, image_path)
        labels = check_labels(read_idx(label_path), info.num_classes, label_path)
        if len(labels) != len(images):
            raise DataFormatError(f"{label_path}: {len(labels)} labels for {len(images)} images in {image_path}")
        out[split] = ArraySplit(images, labels)
    return out


def count_fashionmnist(folder: Path) -> dict[str, int]:
    return {split: idx_header(pair[0])[0] for split, pair in fashion_paths(folder).items()}


# ---------------------------------------------------------------------------------------------- CIFAR-10
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}


def cifar_folder(folder: Path) -> Path | None:
    for base in (folder / CIFAR_DIR, folder):
        if all((base / b).is_file() for names in CIFAR_BATCHES.values() for b in names):
            return base
    return None


def read_cifar_batch(path: Path, num_classes: int) -> ArraySplit:
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data, labels = batch[b"data"], batch[b"labels"]
    except Exception as e:  # pickle raises many types on truncated input
        raise DataFormatError(f"{path}: not a readable CIFAR python batch ({type(e).__name__}: {e}); "
                              "the file is corrupt or truncated, place it again") from None
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataFormatError(f"{path}: 'data' must be uint8 (N, 3072), found {data.dtype} {data.shape}")
    labels = check_labels(np.asarray(labels), num_classes, path)
    if len(labels) != len(data):
        raise DataFormatError(f"{path}: {len(labels)} labels for {len(data)} images")
    return ArraySplit(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels)


def read_cifar10(folder: Path, info: DatasetInfo) -> dict[str, ArraySplit]:
    base = cifar_folder(folder)
    return {split: ArraySplit.concat([read_cifar_batch(base / n, info.num_classes) for n in names])
            for split, names in CIFAR_BATCHES.items()}


def count_cifar10(folder: Path) -> dict[str, int]:
    # A batch pickle has no header; the cheap count trusts the official 10,000 per batch (load checks it).
    return {split: 10000 * len(names) for split, names in CIFAR_BATCHES.items()}


# ------------------------------------------------------------------------------------------------- SVHN
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}


def read_svhn_mat(path: Path) -> ArraySplit:
    import scipy.io
    try:
        mat = scipy.io.loadmat(path)
        x, y = mat["X"], mat["y"]
    except Exception as e:
        raise DataFormatError(f"{path}: not a readable SVHN .mat file ({type(e).__name__}: {e}); "
                              "the file is corrupt or truncated, place it again") from None
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise DataFormatError(f"{path}: X must be uint8 (32, 32, 3, N), found {x.dtype} {x.shape}")
    y = np.asarray(y).reshape(-1).astype(np.int64)
    if len(y) != x.shape[3]:
        raise DataFormatError(f"{path}: {len(y)} labels for {x.shape[3]} images")
    if len(y) and (y.min() < 0 or y.max() > 10):
        raise DataFormatError(f"{path}: SVHN labels must lie in 1..10 (10 is digit 0), found {y.min()}..{y.max()}")
    return ArraySplit(np.ascontiguousarray(x.transpose(3, 0, 1, 2)), y % 10)


def read_svhn(folder: Path, info: DatasetInfo) -> dict[str, ArraySplit]:
    return {split: read_svhn_mat(folder / name) for split, name in SVHN_FILES.items()
            if (folder / name).is_file()}


def count_svhn(folder: Path) -> dict[str, int]:
    import scipy.io
    out = {}
    for split, name in SVHN_FILES.items():
        if (folder / name).is_file():
            try:
                shapes = {n: s for n, s, _ in scipy.io.whosmat(folder / name)}
            except Exception as e:
                raise DataFormatError(f"{folder / name}: unreadable ({type(e).__name__}: {e})") from None
            out[split] = shapes["X"][3] if "X" in shapes else 0
    return out


# ------------------------------------------------------------------------------------------- MedMNIST
def medmnist_file(folder: Path, name: str, size: int) -> Path:
    return folder / (f"{name}.npz" if size == 28 else f"{name}_{size}.npz")


def read_medmnist(folder: Path, info: DatasetInfo, size: int = 28) -> dict[str, ArraySplit]:
    path = medmnist_file(folder, info.name, size)
    out = {}
    try:
        with np.load(path) as npz:
            missing = [f"{s}_{k}" for s in FOLDER_SPLITS for k in ("images", "labels") if f"{s}_{k}" not in npz]
            if missing:
                raise DataFormatError(f"{path}: missing arrays {missing}; a MedMNIST npz has "
                                      "train/val/test _images and _labels")
            for split in FOLDER_SPLITS:
                images = check_images(npz[f"{split}_images"], size, info.image_chans, path)
                labels = check_labels(npz[f"{split}_labels"], info.num_classes, path)
                if len(labels) != len(images):
                    raise DataFormatError(f"{path}: {split}: {len(labels)} labels for {len(images)} images")
                out[split] = ArraySplit(images, labels)
    except DataFormatError:
        raise
    except Exception as e:
        raise DataFormatError(f"{path}: not a readable npz ({type(e).__name__}: {e}); the file is corrupt or "
                              "truncated, place it again") from None
    return out


def npz_shapes(path: Path) -> dict[str, tuple]:
    """Array shapes in an .npz from the member headers, without loading the arrays."""
    shapes = {}
    try:
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                with z.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, _ = read_header(f)
                shapes[member.removesuffix(".npy")] = shape
    except Exception as e:
        raise DataFormatError(f"{path}: not a readable npz ({type(e).__name__}: {e})") from None
    return shapes


def count_medmnist(folder: Path, name: str, size: int = 28) -> dict[str, int]:
    shapes = npz_shapes(medmnist_file(folder, name, size))
    return {s: shapes[f"{s}_images"][0] for s in FOLDER_SPLITS if f"{s}_images" in shapes}


# ------------------------------------------------------------------------------------------------ PCam
PCAM_SPLITS = {"train": "train", "val": "valid", "test": "test"}


def pcam_file(folder: Path, split: str, key: str) -> Path:
    return folder / f"camelyonpatch_level_2_split_{PCAM_SPLITS[split]}_{key}.h5"


def read_pcam(folder: Path, info: DatasetInfo) -> dict[str, ArraySplit]:
    import h5py
    out = {}
    for split in PCAM_SPLITS:
        arrays = {}
        for key in ("x", "y"):
            path = pcam_file(folder, split, key)
            try:
                with h5py.File(path, "r") as f:
                    arrays[key] = f[key][()]
            except Exception as e:
                raise DataFormatError(f"{path}: not a readable PCam h5 file with dataset {key!r} "
                                      f"({type(e).__name__}: {e}); the file is corrupt or truncated") from None
        images = check_images(arrays["x"], 96, 3, pcam_file(folder, split, "x"))
        labels = check_labels(arrays["y"], info.num_classes, pcam_file(folder, split, "y"))
        if len(labels) != len(images):
            raise DataFormatError(f"{pcam_file(folder, split, 'y')}: {len(labels)} labels for {len(images)} images")
        out[split] = ArraySplit(images, labels)
    return out


def count_pcam(folder: Path) -> dict[str, int]:
    import h5py
    out = {}
    for split in PCAM_SPLITS:
        path = pcam_file(folder, split, "x")
        if not path.is_file():
            continue  # still .h5.gz: decompressed on first load
        try:
            with h5py.File(path, "r") as f:
                out[split] = f["x"].shape[0]
        except Exception as e:
            raise DataFormatError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    return out


# ----------------------------------------------------------------------------- decoding folders of images
def fingerprint(paths: list[Path], extra: str = "", root: Path | None = None) -> str:
    """Hash of names, sizes and mtimes; names are taken relative to `root`, so the same data reached
    through another path (a moved data root, a symlink from a worktree) keeps its cache."""
    h = hashlib.sha1(extra.encode())
    for p in paths:
        st = p.stat()
        name = p.relative_to(root) if root is not None and p.is_relative_to(root) else p
        h.update(f"{name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def decode_image(path: Path, mode: str, size: int | None) -> np.ndarray:
    from PIL import Image
    try:
        with Image.open(path) as img:
            img = img.convert(mode)
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except Exception as e:
        raise DataFormatError(f"{path}: not a readable image ({type(e).__name__}: {e}); replace the file") from None
    return array[..., None] if array.ndim == 2 else array


def decode_cached(paths: list[Path], mode: str, size: int, cache: Path, expected_size: int | None = None,
                  progress: str = "") -> np.ndarray:
    """Decode `paths` to (N, size, size, C) uint8, reusing `cache` while its fingerprint still matches.

    `expected_size`: images must already be size x size (datasets with a fixed native size); None means
    resize to `size` (PAD-UFES-20, whose photos vary).
    """
    key = fingerprint(paths, f"{mode}|{size}", root=cache.parent.parent)
    if cache.is_file():
        try:
            with np.load(cache) as z:
                if str(z["fingerprint"]) == key:
                    return z["images"]
        except Exception:
            pass  # an unreadable cache is rebuilt below
    if progress:
        print(f"decoding {len(paths)} images {progress} (cached afterwards in {cache})", flush=True)
    chans = 1 if mode == "L" else 3
    images = np.empty((len(paths), size, size, chans), dtype=np.uint8)
    for i, path in enumerate(paths):
        array = decode_image(path, mode, None if expected_size else size)
        if array.shape[:2] != (size, size):
            raise DataFormatError(f"{path}: image is {array.shape[1]}x{array.shape[0]}, expected {size}x{size}")
        images[i] = array
    try:
        atomic_savez(cache, images=images, fingerprint=np.array(key))
    except OSError:
        pass  # a read-only data root just goes uncached
    return images


# ---------------------------------------------------------------------------------------- ImageFolder
def normalise_class_name(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def class_index(info: DatasetInfo) -> dict[str, int]:
    """Folder name -> label: the class name (case and punctuation ignored) or the class index."""
    index = {normalise_class_name(n): i for i, n in enumerate(info.class_names)}
    index.update({str(i): i for i in range(info.num_classes)})
    return index


def imagefolder_splits(folder: Path) -> list[str]:
    return [s for s in FOLDER_SPLITS if (folder / s).is_dir()
            and any(p.is_dir() for p in (folder / s).iterdir())]


def imagefolder_files(folder: Path, split: str, info: DatasetInfo) -> tuple[list[Path], np.ndarray]:
    lookup = class_index(info)
    paths, labels = [], []
    for class_dir in sorted(p for p in (folder / split).iterdir() if p.is_dir()):
        label = lookup.get(normalise_class_name(class_dir.name), lookup.get(class_dir.name))
        if label is None:
            raise DataFormatError(f"{class_dir}: folder name is not a {info.title} class; use one of "
                                  f"{', '.join(info.class_names[:10])}{' ...' if info.num_classes > 10 else ''} "
                                  f"or the class index 0..{info.num_classes - 1}")
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int64)


def read_imagefolder(folder: Path, info: DatasetInfo, size: int | None = None) -> dict[str, ArraySplit]:
    size = size or info.native_size
    mode = "L" if info.image_chans == 1 else "RGB"
    out = {}
    for split in imagefolder_splits(folder):
        paths, labels = imagefolder_files(folder, split, info)
        images = decode_cached(paths, mode, size, folder / CACHE_DIR / f"imagefolder-{split}.npz",
                               expected_size=size, progress=f"from {folder / split}")
        names = np.array([str(p.relative_to(folder)) for p in paths])
        out[split] = ArraySplit(images, labels, names=names)
    return out


def count_imagefolder(folder: Path) -> dict[str, int]:
    return {s: sum(1 for p in (folder / s).glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
            for s in imagefolder_splits(folder)}


# ------------------------------------------------------------------------------------------ Tiny ImageNet
TINY_DIR = "tiny-imagenet-200"


def tiny_folder(folder: Path) -> Path | None:
    for base in (folder / TINY_DIR, folder):
        if (base / "wnids.txt").is_file() and (base / "train").is_dir() and \
                (base / "val" / "val_annotations.txt").is_file():
            return base
    return None


def tiny_files(base: Path, info: DatasetInfo) -> dict[str, tuple[list[Path], np.ndarray]]:
    wnids = (base / "wnids.txt").read_text().split()
    if sorted(wnids) != list(info.class_names):
        raise DataFormatError(f"{base / 'wnids.txt'}: expected the 200 Tiny ImageNet wnids, found {len(wnids)} "
                              "ids that differ from the official list")
    lookup = {w: i for i, w in enumerate(info.class_names)}
    train_paths, train_labels = [], []
    for wnid in info.class_names:
        files = sorted((base / "train" / wnid / "images").glob("*.JPEG"))
        train_paths += files
        train_labels += [lookup[wnid]] * len(files)
    val_paths, val_labels = [], []
    annotations = base / "val" / "val_annotations.txt"
    for line_no, line in enumerate(annotations.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in lookup:
            raise DataFormatError(f"{annotations}:{line_no}: expected '<file>\\t<wnid>...', found {line!r}")
        path = base / "val" / "images" / fields[0]
        if not path.is_file():
            raise DataFormatError(f"{annotations}:{line_no}: lists {fields[0]} but {path} does not exist")
        val_paths.append(path)
        val_labels.append(lookup[fields[1]])
    return {"train": (train_paths, np.asarray(train_labels, dtype=np.int64)),
            "val": (val_paths, np.asarray(val_labels, dtype=np.int64))}


def read_tinyimagenet(folder: Path, info: DatasetInfo) -> dict[str, ArraySplit]:
    base = tiny_folder(folder)
    out = {}
    for split, (paths, labels) in tiny_files(base, info).items():
        images = decode_cached(paths, "RGB", 64, folder / CACHE_DIR / f"tiny-{split}.npz", expected_size=64,
                               progress=f"from {base / split}")
        out[split] = ArraySplit(images, labels, names=np.array([p.name for p in paths]))
    return out


def count_tinyimagenet(folder: Path) -> dict[str, int]:
    base = tiny_folder(folder)
    lines = (base / "val" / "val_annotations.txt").read_text().splitlines()
    return {"train": sum(1 for _ in (base / "train").glob("*/images/*.JPEG")),
            "val": sum(1 for line in lines if line.strip())}


# ------------------------------------------------------------------------------------------- PAD-UFES-20
PAD_IMAGE_DIRS = ("imgs_part_1", "imgs_part_2", "imgs_part_3", "images", "imgs")
PAD_COLUMNS = ("patient_id", "img_id", "diagnostic")


def pad_rows(folder: Path) -> list[dict]:
    path = folder / "metadata.csv"
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in PAD_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataFormatError(f"{path}: missing columns {missing}; PAD-UFES-20's metadata.csv has "
                                      f"{', '.join(PAD_COLUMNS)} among others")
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataFormatError(f"{path}: unreadable ({type(e).__name__}: {e})") from None


def read_padufes20(folder: Path, info: DatasetInfo) -> dict[str, ArraySplit]:
    rows = pad_rows(folder)
    images_by_name = {p.name: p for d in PAD_IMAGE_DIRS if (folder / d).is_dir() for p in (folder / d).rglob("*")
                      if p.suffix.lower() in IMAGE_SUFFIXES}
    lookup = {n: i for i, n in enumerate(info.class_names)}
    paths, labels = [], []
    for line_no, row in enumerate(rows, 2):
        if row["diagnostic"] not in lookup:
            raise DataFormatError(f"{folder / 'metadata.csv'}:{line_no}: diagnostic {row['diagnostic']!r} is not "
                                  f"one of {', '.join(info.class_names)}")
        if row["img_id"] not in images_by_name:
            raise DataFormatError(f"{folder / 'metadata.csv'}:{line_no}: image {row['img_id']} not found under "
                                  f"{folder}/{{{','.join(PAD_IMAGE_DIRS)}}}/")
        paths.append(images_by_name[row["img_id"]])
        labels.append(lookup[row["diagnostic"]])
    images = decode_cached(paths, "RGB", info.native_size, folder / CACHE_DIR / "padufes20.npz",
                           progress=f"from {folder}")
    return {"all": ArraySplit(images, np.asarray(labels, dtype=np.int64),
                              groups=np.array([r["patient_id"] for r in rows]),
                              names=np.array([r["img_id"] for r in rows]))}


def count_padufes20(folder: Path) -> dict[str, int]:
    return {"all": len(pad_rows(folder))}

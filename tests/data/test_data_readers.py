"""Every dataset read from tiny files in its canonical format through `load_splits`, under both protocols."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from data_fixtures import WRITERS, write_imagefolder, write_medmnist
from gradattn.data import DataFormatError, DatasetNotFoundError, get_info, load_splits

NAMES = list(WRITERS)


def expected_sizes(name: str, counts: dict, protocol: str) -> tuple[int, int, int] | None:
    """Split sizes implied by the protocol rules (None where they depend on the patient draw)."""
    info = get_info(name)
    if name == "padufes20":
        n = counts["all"]
        return (int(0.7 * n), int(0.15 * n), n - int(0.7 * n) - int(0.15 * n)) if protocol == "paper" else None
    if protocol == "paper" and name in ("fashionmnist", "cifar10", "svhn", "tinyimagenet"):
        n = sum(counts.values())
        return int(0.7 * n), int(0.15 * n), n - int(0.7 * n) - int(0.15 * n)
    if "val" in counts and name != "tinyimagenet":
        return counts["train"], counts["val"], counts["test"]
    per_class = counts["train"] // info.num_classes
    n_val = int(0.1 * per_class + 0.5) * info.num_classes
    return counts["train"] - n_val, n_val, counts["test" if name != "tinyimagenet" else "val"]


@pytest.mark.parametrize("protocol", ["paper", "corrected"])
@pytest.mark.parametrize("name", NAMES)
def test_load_canonical_files(fixture_roots, name, protocol):
    root, counts = fixture_roots(name)
    info = get_info(name)
    splits = load_splits(name, protocol, root=root, seed=3)
    assert splits.source.startswith(f"local files {root / name}")
    assert not splits.is_sample and splits.protocol == protocol
    for part in (splits.train, splits.val, splits.test):
        assert part.images.dtype == np.uint8 and part.labels.dtype == np.int64
        assert part.images.shape[1:] == (info.native_size, info.native_size, info.image_chans)
        assert len(part.images) == len(part.labels) > 0
        assert part.labels.min() >= 0 and part.labels.max() < info.num_classes
    sizes = (len(splits.train), len(splits.val), len(splits.test))
    assert sum(sizes) == sum(counts.values()) - (counts.get("extra", 0) if protocol == "corrected" else 0)
    want = expected_sizes(name, counts, protocol)
    if want is not None:
        assert sizes == want
    assert splits.paper_defects == (protocol == "paper" and name in ("cifar10", "fashionmnist"))


@pytest.mark.parametrize("name", NAMES)
def test_split_is_a_pure_function_of_the_seed(fixture_roots, name):
    root, _ = fixture_roots(name)
    for protocol in ("paper", "corrected"):
        a = load_splits(name, protocol, root=root, seed=7, paper_defects=False)
        b = load_splits(name, protocol, root=root, seed=7, paper_defects=False)
        c = load_splits(name, protocol, root=root, seed=8, paper_defects=False)
        for part in ("train", "val", "test"):
            assert np.array_equal(getattr(a, part).images, getattr(b, part).images)
            assert np.array_equal(getattr(a, part).labels, getattr(b, part).labels)
        if protocol == "paper" and name not in ("bloodmnist", "tissuemnist", "pcam"):
            assert not np.array_equal(a.train.images, c.train.images)


@pytest.mark.parametrize("name", ["fashionmnist", "cifar10", "svhn", "tinyimagenet"])
def test_corrected_keeps_official_test_and_stratifies_val(fixture_roots, name):
    root, counts = fixture_roots(name)
    info = get_info(name)
    splits = load_splits(name, "corrected", root=root)
    assert len(splits.test) == counts["test" if name != "tinyimagenet" else "val"]
    val_per_class = np.bincount(splits.val.labels, minlength=info.num_classes)
    assert (val_per_class == val_per_class[0]).all() and val_per_class[0] >= 1


def test_labels_decode_to_the_right_class(fixture_roots):
    """SVHN's 10 means digit 0; Tiny ImageNet's class index is the sorted-wnid position, not wnids.txt order."""
    root, _ = fixture_roots("svhn")
    splits = load_splits("svhn", "corrected", root=root)
    assert set(np.unique(splits.test.labels)) == set(range(10))
    root, _ = fixture_roots("tinyimagenet")
    splits = load_splits("tinyimagenet", "corrected", root=root)
    # the fixture paints class at wnids.txt position c (reversed sorted order) with gray value c
    gray = splits.test.images.reshape(len(splits.test), -1).mean(1)
    assert np.all(np.abs(gray - (199 - splits.test.labels)) < 2)


def test_svhn_paper_protocol_needs_extra(tmp_path, rng):
    WRITERS["svhn"](tmp_path, rng)
    (tmp_path / "svhn" / "extra_32x32.mat").unlink()
    counts = json.loads((tmp_path / "svhn" / "MANIFEST.json").read_text())
    counts["counts"].pop("extra")
    (tmp_path / "svhn" / "MANIFEST.json").write_text(json.dumps(counts))
    assert len(load_splits("svhn", "corrected", root=tmp_path).test) == 30
    with pytest.raises(DatasetNotFoundError, match="extra_32x32.mat"):
        load_splits("svhn", "paper", root=tmp_path)


MISSING = {"fashionmnist": "t10k-labels-idx1-ubyte.gz", "cifar10": "cifar-10-batches-py/data_batch_3",
           "svhn": "test_32x32.mat", "bloodmnist": "bloodmnist.npz", "tissuemnist": "tissuemnist.npz",
           "pcam": "camelyonpatch_level_2_split_valid_y.h5", "padufes20": "metadata.csv",
           "tinyimagenet": "tiny-imagenet-200/wnids.txt"}


@pytest.mark.parametrize("name", NAMES)
def test_missing_file_names_the_file_and_where(tmp_path, rng, name):
    WRITERS[name](tmp_path, rng)
    (tmp_path / name / MISSING[name]).unlink()
    with pytest.raises(DatasetNotFoundError) as error:
        load_splits(name, root=tmp_path)
    message = str(error.value)
    assert MISSING[name].split("/")[-1] in message and str(tmp_path / name) in message


def test_absent_dataset_is_one_clear_error(tmp_path):
    for name in NAMES:
        with pytest.raises(DatasetNotFoundError, match=f"{tmp_path / name}/"):
            load_splits(name, root=tmp_path)


TRUNCATE = {"fashionmnist": "train-images-idx3-ubyte.gz", "cifar10": "cifar-10-batches-py/test_batch",
            "svhn": "train_32x32.mat", "bloodmnist": "bloodmnist.npz", "tissuemnist": "tissuemnist.npz",
            "pcam": "camelyonpatch_level_2_split_train_x.h5", "padufes20": "imgs_part_1/PAT_0_0_0.png",
            "tinyimagenet": "tiny-imagenet-200/train/n01443537/images/n01443537_3.JPEG"}


@pytest.mark.parametrize("name", NAMES)
def test_truncated_file_names_the_file(tmp_path, rng, name):
    WRITERS[name](tmp_path, rng)
    path = tmp_path / name / TRUNCATE[name]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataFormatError) as error:
        load_splits(name, root=tmp_path)
    assert str(path) in str(error.value)


def test_counts_must_match_official_unless_a_subset_is_declared(tmp_path, rng):
    WRITERS["fashionmnist"](tmp_path, rng)
    (tmp_path / "fashionmnist" / "MANIFEST.json").unlink()
    with pytest.raises(DataFormatError, match="train split has 100 images but the official count is 60000"):
        load_splits("fashionmnist", root=tmp_path)
    manifest = tmp_path / "fashionmnist" / "MANIFEST.json"
    manifest.write_text(json.dumps({"counts": {"train": 200, "test": 30}}))
    with pytest.raises(DataFormatError, match="train split has 100 images but the count declared in MANIFEST.json is 200"):
        load_splits("fashionmnist", root=tmp_path)
    manifest.write_text(json.dumps({"counts": {"train": 100, "test": 30}}))
    assert len(load_splits("fashionmnist", root=tmp_path).test) == 30


def test_bad_labels_and_shapes_are_named(tmp_path, rng):
    write_medmnist(tmp_path, rng, "bloodmnist")
    path = tmp_path / "bloodmnist" / "bloodmnist.npz"
    arrays = dict(np.load(path))
    arrays["val_labels"] = arrays["val_labels"] + 8
    np.savez(path, **arrays)
    with pytest.raises(DataFormatError, match=r"labels must lie in 0\.\.7"):
        load_splits("bloodmnist", root=tmp_path)
    arrays["val_labels"] -= 8
    arrays["test_images"] = arrays["test_images"][:, :20]
    np.savez(path, **arrays)
    with pytest.raises(DataFormatError, match=r"shape \(N, 28, 28, 3\)"):
        load_splits("bloodmnist", root=tmp_path)


def test_medmnist_64_variant(tmp_path, rng):
    write_medmnist(tmp_path, rng, "tissuemnist", size=64)
    splits = load_splits("tissuemnist", root=tmp_path, variant="64")
    assert splits.train.images.shape[1:] == (64, 64, 1) and splits.info.native_size == 64
    with pytest.raises(DatasetNotFoundError, match="tissuemnist.npz"):
        load_splits("tissuemnist", root=tmp_path)


def test_imagefolder_tree_and_its_cache(tmp_path, rng):
    write_imagefolder(tmp_path, rng, "fashionmnist", {"train": 10, "test": 2})
    first = load_splits("fashionmnist", "corrected", root=tmp_path)
    assert "ImageFolder" in first.source and first.train.images.shape[1:] == (28, 28, 1)
    cache = tmp_path / "fashionmnist" / ".cache" / "imagefolder-train.npz"
    assert cache.is_file()
    again = load_splits("fashionmnist", "corrected", root=tmp_path)
    assert np.array_equal(first.train.images, again.train.images)
    # a changed source file invalidates the cache
    from PIL import Image
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "fashionmnist" / "train" / "Bag" / "000.png")
    changed = load_splits("fashionmnist", "corrected", root=tmp_path)
    for before, after in ((again.train, changed.train), (again.val, changed.val)):
        rows = np.flatnonzero(after.names == "train/Bag/000.png")
        if len(rows):
            assert before.images[rows[0]].max() > 0 and after.images[rows[0]].max() == 0


def test_imagefolder_cache_survives_a_moved_data_root(tmp_path, rng, capsys):
    write_imagefolder(tmp_path / "a", rng, "cifar10", {"train": 2, "test": 1})
    first = load_splits("cifar10", "corrected", root=tmp_path / "a")
    assert "decoding" in capsys.readouterr().out
    (tmp_path / "a").rename(tmp_path / "b")
    (tmp_path / "link").symlink_to(tmp_path / "b")
    moved = load_splits("cifar10", "corrected", root=tmp_path / "link")
    assert "decoding" not in capsys.readouterr().out
    assert np.array_equal(first.train.images, moved.train.images)


def test_imagefolder_rejects_unknown_class_folder(tmp_path, rng):
    write_imagefolder(tmp_path, rng, "cifar10", {"train": 1, "test": 1})
    shutil.move(tmp_path / "cifar10" / "test" / "ship", tmp_path / "cifar10" / "test" / "boat")
    with pytest.raises(DataFormatError, match="boat"):
        load_splits("cifar10", root=tmp_path)


def test_unknown_names_are_rejected_with_the_valid_choices(tmp_path):
    with pytest.raises(ValueError, match="valid names"):
        load_splits("mnist", root=tmp_path)
    with pytest.raises(ValueError, match="choose one of paper, corrected"):
        load_splits("fashionmnist", "faithful", sample=True)
    with pytest.raises(ValueError, match="lossless4000"):
        load_splits("cifar10", root=tmp_path, variant="lossless")


def test_pcam_gz_archives_are_decompressed_on_first_load(tmp_path, rng):
    import gzip
    WRITERS["pcam"](tmp_path, rng)
    plain = load_splits("pcam", root=tmp_path)
    h5 = tmp_path / "pcam" / "camelyonpatch_level_2_split_test_x.h5"
    h5.with_suffix(".h5.gz").write_bytes(gzip.compress(h5.read_bytes()))
    h5.unlink()
    again = load_splits("pcam", root=tmp_path)
    assert h5.is_file() and np.array_equal(plain.test.images, again.test.images)
    h5.unlink()
    archive = h5.with_suffix(".h5.gz")
    archive.write_bytes(archive.read_bytes()[:1000])
    with pytest.raises(DataFormatError, match=str(archive)):
        load_splits("pcam", root=tmp_path)

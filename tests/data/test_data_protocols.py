"""The paper and corrected protocols: exact split indices, the SPEC 7.1 wrap-around, patient-level splits."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from data_fixtures import WRITERS
from gradattn.data import get_info, load_splits, wrap_like_to_pil_image
from gradattn.data.splits import paper_numpy_split, paper_random_split, patient_split, stratified_holdout


def test_cifar_ramp_wraps_exactly_as_spec_7_1():
    info = get_info("cifar10")
    ramp = np.zeros((1, 1, 8, 3), np.uint8)
    ramp[0, 0, :, 0] = np.arange(0, 256, 32)
    wrapped = wrap_like_to_pil_image(ramp, info.mean, info.std)
    assert wrapped[0, 0, :, 0].tolist() == [149, 51, 209, 112, 13, 171, 73, 231]


def test_fashion_black_background_becomes_50():
    info = get_info("fashionmnist")
    assert wrap_like_to_pil_image(np.zeros((1, 2, 2, 1), np.uint8), info.mean, info.std).max() == 50


@pytest.mark.parametrize("name", ["cifar10", "fashionmnist"])
def test_wrap_matches_torchvision_to_pil_image_on_every_intensity(name):
    """Reproduce the authors' TransformSubset: ToPILImage on a ToTensor+Normalize'd image."""
    from torchvision import transforms as T
    info = get_info(name)
    chans = info.image_chans
    values = np.arange(256, dtype=np.uint8)
    image = np.stack([np.roll(values, 40 * c) for c in range(chans)], -1).reshape(16, 16, chans)
    authors = T.Compose([T.ToTensor(), T.Normalize(info.mean, info.std), T.ToPILImage()])
    pil = authors(image[..., 0] if chans == 1 else image)
    expected = np.asarray(pil).reshape(16, 16, chans)
    assert np.array_equal(wrap_like_to_pil_image(image[None], info.mean, info.std)[0], expected)


def test_paper_split_is_torch_random_split():
    for n, seed in ((60, 42), (1001, 3)):
        ours = paper_random_split(n, seed)
        lengths = [int(0.7 * n), int(0.15 * n), n - int(0.7 * n) - int(0.15 * n)]
        theirs = torch.utils.data.random_split(range(n), lengths, generator=torch.Generator().manual_seed(seed))
        for a, b in zip(ours, theirs):
            assert a.tolist() == list(b.indices)


def test_paper_split_sizes_match_spec_table():
    for n, sizes in ((60000, (42000, 9000, 9000)), (70000, (49000, 10500, 10500)),
                     (630420, (441294, 94563, 94563)), (110000, (77000, 16500, 16500))):
        assert tuple(len(p) for p in paper_random_split(n, 42)) == sizes
    assert tuple(len(p) for p in paper_numpy_split(2298, 42)) == (1608, 344, 346)


def test_paper_numpy_split_is_numpy_shuffle():
    index = np.arange(50)
    np.random.seed(9)
    np.random.shuffle(index)
    assert np.concatenate(paper_numpy_split(50, 9)).tolist() == index.tolist()


def test_stratified_holdout_partitions_each_class():
    labels = np.repeat(np.arange(4), [10, 20, 30, 41])
    keep, held = stratified_holdout(labels, 0.1, seed=0)
    assert sorted(np.concatenate([keep, held]).tolist()) == list(range(len(labels)))
    assert np.bincount(labels[held]).tolist() == [1, 2, 3, 4]
    assert not np.array_equal(held, stratified_holdout(labels, 0.1, seed=1)[1])


def test_patient_split_keeps_patients_apart():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 200, 1000).astype(str)
    labels = rng.integers(0, 6, 1000)
    parts = patient_split(labels, groups, seed=5)
    assert sorted(np.concatenate(parts).tolist()) == list(range(1000))
    sets = [set(groups[p]) for p in parts]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert 0.6 < len(parts[0]) / 1000 < 0.8


def test_padufes_corrected_protocol_has_no_patient_in_two_splits(tmp_path, rng):
    WRITERS["padufes20"](tmp_path, rng)
    splits = load_splits("padufes20", "corrected", root=tmp_path)
    patients = [set(part.groups) for part in (splits.train, splits.val, splits.test)]
    assert all(patients) and not (patients[0] & patients[1] | patients[0] & patients[2] | patients[1] & patients[2])
    paper = load_splits("padufes20", "paper", root=tmp_path)
    leaked = set(paper.train.groups) & (set(paper.val.groups) | set(paper.test.groups))
    assert leaked, "the paper's image-level split is expected to share patients between splits"


def test_defect_switch_touches_train_only_and_defaults_by_protocol():
    plain = load_splits("fashionmnist", "paper", sample=True, paper_defects=False)
    wrapped = load_splits("fashionmnist", "paper", sample=True)
    assert wrapped.paper_defects and not plain.paper_defects
    info = get_info("fashionmnist")
    assert np.array_equal(wrapped.train.images, wrap_like_to_pil_image(plain.train.images, info.mean, info.std))
    assert np.array_equal(wrapped.test.images, plain.test.images)
    assert np.array_equal(wrapped.val.images, plain.val.images)
    assert not load_splits("fashionmnist", "corrected", sample=True).paper_defects
    assert load_splits("fashionmnist", "corrected", sample=True, paper_defects=True).paper_defects


def test_defect_is_never_applied_where_the_authors_did_not_have_it(tmp_path, rng):
    WRITERS["svhn"](tmp_path, rng)
    splits = load_splits("svhn", "paper", root=tmp_path, paper_defects=True)
    plain = load_splits("svhn", "paper", root=tmp_path, paper_defects=False)
    assert not splits.paper_defects and np.array_equal(splits.train.images, plain.train.images)


def test_embedded_sample_is_real_stratified_and_labelled():
    splits = load_splits("fashionmnist", "corrected", sample=True)
    assert splits.is_sample and "sample" in splits.source.lower() and splits.summary()["is_sample"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (1800, 200, 500)
    assert np.bincount(splits.test.labels).tolist() == [50] * 10
    assert np.bincount(splits.val.labels).tolist() == [20] * 10
    pixels = np.concatenate([splits.train.images, splits.val.images]).astype(np.float64) / 255
    assert abs(pixels.mean() - 0.286) < 0.02 and abs(pixels.std() - 0.353) < 0.02
    with pytest.raises(ValueError, match="only for fashionmnist"):
        load_splits("cifar10", sample=True)


def test_corrected_train_order_is_shuffled_so_prefixes_are_random():
    from gradattn.data.splits import ArraySplit, apply_protocol
    labels = np.repeat(np.arange(10), 50)  # stored sorted by class, like the CIFAR-10 JPEG tree
    official = {"train": ArraySplit(np.zeros((500, 1, 1, 1), np.uint8), labels),
                "test": ArraySplit(np.zeros((20, 1, 1, 1), np.uint8), np.arange(20) % 10)}
    train, val, _ = apply_protocol(get_info("cifar10"), official, "corrected", seed=0)
    assert len(np.unique(train.labels[:50])) >= 8
    assert sorted(np.concatenate([train.labels, val.labels]).tolist()) == labels.tolist()


@pytest.mark.parametrize("name, variant, protocol, sample, named", [
    ("cifar10", "png4000", "corrected", False, "unknown variant 'png4000'"),
    ("fashionmnist", "jpeg4000", "corrected", False, "valid: none"),
    ("cifar10", "jpeg4000", "paper", False, "corrected protocol only"),
    ("fashionmnist", "64", "corrected", True, "valid: none"),
    ("bloodmnist", "64", "corrected", True, "sample has no variants"),
])
def test_check_variant_names_what_is_wrong(name, variant, protocol, sample, named):
    from gradattn.data.sources import check_variant
    with pytest.raises(ValueError, match=named):
        check_variant(name, variant, protocol, sample)


def test_check_variant_accepts_the_defined_ones():
    from gradattn.data.sources import check_variant
    check_variant("cifar10", None, "paper")
    check_variant("cifar10", "lossless4000", "corrected")
    check_variant("tissuemnist", "64", "paper")


def test_load_splits_refuses_a_variant_on_the_sample_before_reading():
    with pytest.raises(ValueError, match="sample has no variants"):
        load_splits("cifar10", sample=True, variant="jpeg4000")

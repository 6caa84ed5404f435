"""Split containers and the two protocols (SPEC 2, 7.1, 7.7).

`paper` rebuilds the authors' splits exactly: merge-and-`random_split` for the datasets they merged,
official splits for MedMNIST and PCam, an image-level `np.random.shuffle` split for PAD-UFES-20.
`corrected` keeps every official test set intact, carves validation from the official train split
(10 %, stratified by class, seeded) where there is no official validation split, and splits PAD-UFES-20
by patient so no patient is in two splits. Under both protocols the train split comes in a seeded random
order, so a prefix of it is a random sample.

The double-normalisation defect (SPEC 7.1) is applied here to the *train* images, once, as a uint8
remapping. Both data paths then normalise normally and reproduce the authors' corrupted inputs without
knowing about the defect.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .registry import DatasetInfo

PROTOCOLS = ("paper", "corrected")
CORRECTED_VAL_FRACTION = 0.10
PAPER_FRACTIONS = (0.70, 0.15)          # train, val; test gets the rest (the notebooks' int() arithmetic)
CORRECTED_PATIENT_FRACTIONS = (0.70, 0.15)
# Which official splits the authors concatenated, in order, before `random_split` (SPEC 2).
PAPER_MERGE = {
    "fashionmnist": ("train", "test"),
    "cifar10": ("train", "test"),
    "svhn": ("train", "test", "extra"),
    "tinyimagenet": ("train", "val"),
}
# The datasets whose train images went through `TransformSubset` (ToPILImage on a normalised tensor).
DOUBLE_NORMALISATION_DATASETS = ("cifar10", "fashionmnist")


@dataclass
class ArraySplit:
    """One split as uint8 images (N, H, W, C) at native size and int64 labels (N,).

    `groups` holds the patient id of each image where the dataset has one (PAD-UFES-20); `names` holds
    the source file name of each image where it came from a folder of files.
    """

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray | None = None
    names: np.ndarray | None = None

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"ArraySplit images must be uint8 (N, H, W, C), got {self.images.dtype} "
                             f"{self.images.shape}")
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.labels) != len(self.images):
            raise ValueError(f"ArraySplit has {len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> "ArraySplit":
        index = np.asarray(index, dtype=np.int64)
        return ArraySplit(self.images[index], self.labels[index],
                          None if self.groups is None else self.groups[index],
                          None if self.names is None else self.names[index])

    @staticmethod
    def concat(parts: list["ArraySplit"]) -> "ArraySplit":
        def cat(attr):
            values = [getattr(p, attr) for p in parts]
            return None if any(v is None for v in values) else np.concatenate(values)
        return ArraySplit(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]),
                          cat("groups"), cat("names"))


@dataclass
class DatasetSplits:
    """The train/val/test arrays of one dataset under one protocol, with where they came from."""

    info: DatasetInfo
    protocol: str
    seed: int
    source: str
    is_sample: bool
    paper_defects: bool
    train: ArraySplit
    val: ArraySplit
    test: ArraySplit
    variant: str | None = None
    notes: list = field(default_factory=list)

    def summary(self) -> dict:
        """What a run records in its config so the data it saw can be identified."""
        return {"dataset": self.info.name, "protocol": self.protocol, "seed": self.seed,
                "source": self.source, "is_sample": self.is_sample, "paper_defects": self.paper_defects,
                "variant": self.variant, "sizes": {k: len(getattr(self, k)) for k in ("train", "val", "test")},
                "notes": list(self.notes)}

    def __repr__(self) -> str:
        sample = " SAMPLE" if self.is_sample else ""
        return (f"DatasetSplits({self.info.name}{sample}, protocol={self.protocol}, seed={self.seed}, "
                f"train/val/test={len(self.train)}/{len(self.val)}/{len(self.test)}, "
                f"paper_defects={self.paper_defects}, source={self.source!r})")


def paper_random_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices exactly as `torch.utils.data.random_split(ds, [int(.7n), int(.15n), rest], Generator(seed))`."""
    n_train, n_val = int(PAPER_FRACTIONS[0] * n), int(PAPER_FRACTIONS[1] * n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    return perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:]


def paper_numpy_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PAD-UFES-20's split: `np.random.seed(seed); np.random.shuffle(arange(n))`, then 70/15/rest."""
    index = np.arange(n)
    np.random.RandomState(seed).shuffle(index)
    n_train, n_val = int(PAPER_FRACTIONS[0] * n), int(PAPER_FRACTIONS[1] * n)
    return index[:n_train], index[n_train:n_train + n_val], index[n_train + n_val:]


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out fraction * n_c (rounded half up) of every class c, chosen with a seeded permutation; sorted indices."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(len(members))]
        n_held = int(fraction * len(members) + 0.5)
        held.append(members[:n_held])
        keep.append(members[n_held:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def patient_split(labels: np.ndarray, groups: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
    """70/15/15 split by patient, stratified by each patient's most frequent diagnosis.

    Every image of a patient lands in the same split, so no patient is seen in training and at test.
    """
    rng = np.random.default_rng(seed)
    patients, patient_of_image = np.unique(groups, return_inverse=True)
    counts = np.zeros((len(patients), int(labels.max()) + 1), dtype=np.int64)
    np.add.at(counts, (patient_of_image, labels), 1)
    patient_label = counts.argmax(1)
    split_of_patient = np.empty(len(patients), dtype=np.int64)
    for c in np.unique(patient_label):
        members = np.flatnonzero(patient_label == c)
        members = members[rng.permutation(len(members))]
        n_train = int(CORRECTED_PATIENT_FRACTIONS[0] * len(members) + 0.5)
        n_train_val = int(sum(CORRECTED_PATIENT_FRACTIONS) * len(members) + 0.5)
        split_of_patient[members[:n_train]] = 0
        split_of_patient[members[n_train:n_train_val]] = 1
        split_of_patient[members[n_train_val:]] = 2
    split_of_image = split_of_patient[patient_of_image]
    return tuple(np.flatnonzero(split_of_image == k) for k in range(3))


def wrap_like_to_pil_image(images: np.ndarray, mean: tuple, std: tuple) -> np.ndarray:
    """SPEC 7.1: what `ToPILImage()(Normalize(mean, std)(ToTensor()(img)))` hands to the train transform.

    ToTensor divides by 255, Normalize subtracts and divides in float32, and `to_pil_image` does
    `pic.mul(255).byte()`: the float is truncated toward zero and the uint8 cast wraps modulo 256.
    The same float32 operations are used here so the result is bit-identical.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(torch.float32).div(255)
    mean_t = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    scaled = x.sub(mean_t).div(std_t).mul(255)
    wrapped = torch.remainder(scaled.trunc().to(torch.int64), 256).to(torch.uint8)
    return wrapped.permute(0, 2, 3, 1).contiguous().numpy()


def apply_protocol(info: DatasetInfo, official: dict[str, ArraySplit], protocol: str,
                   seed: int) -> tuple[ArraySplit, ArraySplit, ArraySplit]:
    """Turn the official splits of one dataset into (train, val, test) under `protocol`."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    name = info.name
    if name == "padufes20":
        everything = official["all"]
        if protocol == "paper":
            parts = paper_numpy_split(len(everything), seed)
        else:
            if everything.groups is None:
                raise ValueError("PAD-UFES-20's corrected protocol needs patient ids (metadata.csv patient_id)")
            parts = patient_split(everything.labels, everything.groups, seed)
            parts = (_shuffled(parts[0], seed),) + parts[1:]
        return tuple(everything.subset(p) for p in parts)

    if protocol == "paper" and name in PAPER_MERGE:
        order = PAPER_MERGE[name] + tuple(k for k in ("train", "val", "test") if k not in PAPER_MERGE[name])
        merged = ArraySplit.concat([official[k] for k in order if k in official])
        return tuple(merged.subset(p) for p in paper_random_split(len(merged), seed))

    test_key = "test" if "test" in official else ("val" if name == "tinyimagenet" else None)
    if test_key is None or "train" not in official:
        raise ValueError(f"{info.title}: need official train and test splits, found {sorted(official)}")
    train, test = official["train"], official[test_key]
    if test_key != "val" and "val" in official:
        return train.subset(_shuffled(np.arange(len(train)), seed)), official["val"], test
    keep, held = stratified_holdout(train.labels, CORRECTED_VAL_FRACTION, seed)
    return train.subset(_shuffled(keep, seed)), train.subset(held), test


def _shuffled(index: np.ndarray, seed: int) -> np.ndarray:
    """Train order is a seeded permutation under both protocols, so any prefix is a random sample
    (some copies, e.g. the CIFAR-10 JPEG tree, are stored sorted by class)."""
    return index[np.random.default_rng(seed + 1).permutation(len(index))]

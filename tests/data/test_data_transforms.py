"""The authors' PIL pipelines and the torch Datasets built over the arrays."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import transforms as T

from data_fixtures import WRITERS
from gradattn.data import DATASETS, build_torch_datasets, get_info, load_splits, paper_transforms


@pytest.mark.parametrize("name", list(DATASETS))
def test_transforms_produce_the_paper_input(name):
    info = get_info(name)
    chans = info.image_chans
    array = np.random.default_rng(0).integers(0, 256, (info.native_size, info.native_size, chans), np.uint8)
    from PIL import Image
    image = Image.fromarray(array[..., 0] if chans == 1 else array)
    for train in (True, False):
        x = paper_transforms(info, train)(image)
        assert x.dtype == torch.float32 and x.shape == (info.in_chans, info.input_size, info.input_size)


def test_eval_transform_is_exactly_normalised_pixels():
    info = get_info("cifar10")
    array = np.random.default_rng(1).integers(0, 256, (32, 32, 3), np.uint8)
    from PIL import Image
    x = paper_transforms(info, train=False)(Image.fromarray(array))
    expected = (torch.from_numpy(array).permute(2, 0, 1).float() / 255 - torch.tensor(info.mean)[:, None, None]) \
        / torch.tensor(info.std)[:, None, None]
    assert torch.allclose(x, expected, atol=1e-6)


def test_train_steps_follow_the_authors_order():
    kinds = lambda name, train: [type(t) for t in paper_transforms(get_info(name), train).transforms]
    assert kinds("cifar10", True)[:2] == [T.RandomHorizontalFlip, T.RandomCrop]
    assert kinds("fashionmnist", True)[:3] == [T.RandomHorizontalFlip, T.RandomRotation, T.RandomAffine]
    assert kinds("bloodmnist", True)[:4] == [T.Resize, T.RandomRotation, T.RandomHorizontalFlip, T.ColorJitter]
    assert kinds("padufes20", True)[:5] == [T.Resize, T.RandomHorizontalFlip, T.RandomRotation, T.ColorJitter,
                                           T.RandomResizedCrop]
    for name in ("svhn", "pcam", "tinyimagenet"):
        assert kinds(name, True) == kinds(name, False) == [T.ToTensor, T.Normalize]


def test_torch_datasets_over_tissuemnist_give_three_channel_64px(tmp_path, rng):
    WRITERS["tissuemnist"](tmp_path, rng)
    splits = load_splits("tissuemnist", "paper", root=tmp_path)
    datasets = build_torch_datasets(splits)
    assert {k: len(v) for k, v in datasets.items()} == {"train": 80, "val": 16, "test": 24}
    x, y = datasets["test"][5]
    assert x.shape == (3, 64, 64) and isinstance(y, int) and y == splits.test.labels[5]
    info = splits.info
    gray = x * torch.tensor(info.std)[:, None, None] + torch.tensor(info.mean)[:, None, None]
    assert torch.allclose(gray[0], gray[1], atol=1e-5) and torch.allclose(gray[1], gray[2], atol=1e-5)
    batch = next(iter(torch.utils.data.DataLoader(datasets["train"], batch_size=8)))
    assert batch[0].shape == (8, 3, 64, 64) and batch[1].dtype == torch.int64


def test_train_dataset_sees_the_wrapped_images_under_the_paper_protocol():
    splits = load_splits("fashionmnist", "paper", sample=True)
    info = splits.info
    x, _ = build_torch_datasets(splits)["val"][0]
    raw = torch.from_numpy(splits.val.images[0]).permute(2, 0, 1).float() / 255
    assert torch.allclose(x, (raw - info.mean[0]) / info.std[0], atol=1e-6)
    torch.manual_seed(0)
    train = build_torch_datasets(splits)["train"]
    background = [train[i][0] for i in range(4)]
    # the black background (the most frequent value) wraps to 50/255 (SPEC 7.1); clean, it would normalise to -0.81
    wrapped_black = (50 / 255 - info.mean[0]) / info.std[0]
    assert all(abs(float(t.flatten().mode().values) - wrapped_black) < 1e-4 for t in background)

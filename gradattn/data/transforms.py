"""The authors' PIL transform pipelines (SPEC 2), built from the registry, and torch Datasets over ArraySplits.

Train: [Resize] + the dataset's augmentation steps in the authors' order + ToTensor [+ gray->3 channels]
+ Normalize. Val/test: [Resize] + ToTensor [+ gray->3 channels] + Normalize. Resize appears where the
network input size differs from the stored size (MedMNIST 28 -> 64) and for PAD-UFES-20, whose notebook
resizes every photo to 224 x 224.
"""
from __future__ import annotations

import torch

from .registry import Augment, DatasetInfo
from .splits import ArraySplit, DatasetSplits


class RepeatChannels:
    """Repeat a 1-channel tensor to `chans` channels (TissueMNIST is gray, the network takes 3)."""

    def __init__(self, chans: int):
        self.chans = chans

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(self.chans, -1, -1).clone() if x.shape[0] == 1 else x

    def __repr__(self) -> str:
        return f"RepeatChannels({self.chans})"


def augment_steps(augment: Augment, size: int) -> list:
    from torchvision import transforms as T
    steps = {
        "hflip": augment.hflip and T.RandomHorizontalFlip(augment.hflip),
        "crop_pad": augment.crop_pad and T.RandomCrop(size, padding=augment.crop_pad),
        "rotate": augment.rotate and T.RandomRotation(augment.rotate),
        "translate": augment.translate and T.RandomAffine(0, translate=(augment.translate, augment.translate)),
        "color_jitter": augment.color_jitter and T.ColorJitter(*augment.color_jitter),
        "resized_crop": augment.resized_crop_scale and T.RandomResizedCrop(size, scale=augment.resized_crop_scale),
    }
    order = list(augment.order) + [s for s in Augment.STEPS if s not in augment.order]
    return [steps[name] for name in order if steps[name]]


def paper_transforms(info: DatasetInfo, train: bool):
    """The authors' torchvision transform for one dataset and split kind (augmentation on train only)."""
    from torchvision import transforms as T
    steps = []
    if info.input_size != info.native_size or info.name == "padufes20":
        steps.append(T.Resize((info.input_size, info.input_size)) if info.name == "padufes20"
                     else T.Resize(info.input_size))
    if train:
        steps += augment_steps(info.augment, info.input_size)
    steps.append(T.ToTensor())
    if info.in_chans != info.image_chans:
        steps.append(RepeatChannels(info.in_chans))
    steps.append(T.Normalize(info.mean, info.std))
    return T.Compose(steps)


class ArrayImageDataset(torch.utils.data.Dataset):
    """A uint8 ArraySplit seen through a PIL transform, the way a torchvision dataset hands out images."""

    def __init__(self, split: ArraySplit, transform=None):
        self.images, self.labels, self.transform = split.images, split.labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image
        image = self.images[index]
        image = Image.fromarray(image[..., 0], "L") if image.shape[-1] == 1 else Image.fromarray(image, "RGB")
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


def build_torch_datasets(splits: DatasetSplits) -> dict[str, ArrayImageDataset]:
    """{"train","val","test": Dataset} yielding (normalised float tensor C,H,W at input_size, int label)."""
    return {name: ArrayImageDataset(getattr(splits, name), paper_transforms(splits.info, train=name == "train"))
            for name in ("train", "val", "test")}

"""CNN classifiers on the shared backbone: ResNet-18, SE-ResNet-18, CBAM-ResNet-18 and plain18.

All four end in global average pooling and `Linear(512, K)` (`.classifier`). `plain18` is the
GradAttn backbone (no residuals) with that ordinary head: the ablation that separates "removing the
skips" from "adding tokens and attention" (SPEC 7.6).
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import Backbone, apply_init, check_io


class ResNetClassifier(Backbone):
    """18-layer backbone + GAP + Linear head."""

    def __init__(self, num_classes: int, in_chans: int = 3, stem: str = "imagenet",
                 residual: bool = True, attention: str | None = None):
        check_io(num_classes, in_chans)
        super().__init__(in_chans, stem, residual, attention)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.classifier(torch.flatten(self.avgpool(features), 1))


def resnet18(num_classes: int, in_chans: int = 3, stem: str = "imagenet",
             init: str = "paper") -> ResNetClassifier:
    """The paper's baseline (11,181,642 parameters for 10 classes); PyTorch default init."""
    model = ResNetClassifier(num_classes, in_chans, stem, residual=True)
    return apply_init(model, init, paper_scheme="default")


def se_resnet18(num_classes: int, in_chans: int = 3, stem: str = "imagenet",
                init: str = "paper") -> ResNetClassifier:
    """ResNet-18 with an SE module (reduction 16) in every block; the authors' Kaiming init."""
    model = ResNetClassifier(num_classes, in_chans, stem, residual=True, attention="se")
    return apply_init(model, init, paper_scheme="kaiming")


def cbam_resnet18(num_classes: int, in_chans: int = 3, stem: str = "imagenet",
                  init: str = "paper") -> ResNetClassifier:
    """ResNet-18 with CBAM (reduction 16, 7x7 spatial conv) in every block; the authors' Kaiming init."""
    model = ResNetClassifier(num_classes, in_chans, stem, residual=True, attention="cbam")
    return apply_init(model, init, paper_scheme="kaiming")


def plain18(num_classes: int, in_chans: int = 3, stem: str = "imagenet",
            init: str = "paper") -> ResNetClassifier:
    """Ablation: the non-residual GradAttn backbone with a GAP + Linear head, no taps, no attention."""
    model = ResNetClassifier(num_classes, in_chans, stem, residual=False)
    return apply_init(model, init, paper_scheme="default")

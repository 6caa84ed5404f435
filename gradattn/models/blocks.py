"""Building blocks shared by every model: stems, basic blocks, SE / CBAM, the 18-layer backbone.

The layout is torchvision's ResNet-18 (SPEC 1.1), rebuilt by hand so that the module tree is the one
the authors' notebooks had: the faithful gradient-flow analysis hooks every nn.Conv2d / nn.Linear by
walking `named_modules()`, so an extra or missing module changes its numbers.
"""
from __future__ import annotations

import torch
from torch import nn

STEMS = ("imagenet", "cifar")
INITS = ("paper", "kaiming")
STAGE_CHANNELS = (64, 128, 256, 512)
TAP_CHANNELS = (64, 64, 128, 256, 512)   # after stem, layer1, layer2, layer3, layer4
TAP_NAMES = ("stem", "layer1", "layer2", "layer3", "layer4")


def conv3x3(in_chans: int, out_chans: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chans, out_chans, kernel_size=3, stride=stride, padding=1, bias=False)


def make_stem(in_chans: int, stem: str = "imagenet") -> nn.Sequential:
    """The input stem; its output is the first tap.

    "imagenet" is the paper's (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) and divides the side by 4, which
    leaves 1x1 maps in layer4 for 28-32 px inputs (SPEC 7.3). "cifar" (3x3/1 conv, BN, ReLU, no pool)
    keeps the full resolution, the usual choice for small images.
    """
    if stem == "imagenet":
        return nn.Sequential(
            nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
    if stem == "cifar":
        return nn.Sequential(conv3x3(in_chans, 64), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
    raise ValueError(f"unknown stem {stem!r}; use one of {list(STEMS)}")


class SEModule(nn.Module):
    """Squeeze-and-excitation: GAP, Linear(C, C/r), ReLU, Linear(C/r, C), sigmoid, channel rescale."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        weights = self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)
        return x * weights


class ChannelAttention(nn.Module):
    """CBAM channel gate: avg- and max-pooled vectors through one shared 1x1-conv MLP, summed."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, kernel_size=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, kernel_size=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(self.avg_pool(x)) + self.mlp(self.max_pool(x)))


class SpatialAttention(nn.Module):
    """CBAM spatial gate: [channel mean, channel max] through a 7x7 conv to one map, sigmoid."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Convolutional block attention: channel gate, then spatial gate (SPEC 1.5)."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.channel(x)
        return x * self.spatial(x)


ATTENTION_MODULES = {None: None, "se": SEModule, "cbam": CBAM}


def check_io(num_classes: int, in_chans: int) -> None:
    """Reject class / channel counts that would build a broken or silently wrong model."""
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans must be a positive int (3 for RGB, 1 for grayscale), got {in_chans!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")


class BasicBlock(nn.Module):
    """ResNet basic block: conv-BN-ReLU-conv-BN [-SE/CBAM] + shortcut, ReLU.

    The shortcut is the identity, or a 1x1 conv + BN when the stride or width changes. The optional
    attention module sits after bn2 and before the residual add, as in the authors' SE/CBAM models.
    """

    def __init__(self, in_chans: int, out_chans: int, stride: int = 1, attention: str | None = None):
        super().__init__()
        self.conv1 = conv3x3(in_chans, out_chans, stride)
        self.bn1 = nn.BatchNorm2d(out_chans)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_chans, out_chans)
        self.bn2 = nn.BatchNorm2d(out_chans)
        attention_cls = ATTENTION_MODULES[attention]
        self.attention = attention_cls(out_chans) if attention_cls else None
        self.downsample = None
        if stride != 1 or in_chans != out_chans:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_chans, out_chans, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_chans),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.attention is not None:
            out = self.attention(out)
        out += identity
        return self.relu(out)


class NonResidualBlock(nn.Module):
    """The GradAttn backbone block: conv-BN-ReLU-conv-BN-ReLU with no skip and no downsample branch.

    Stacking these gives a plain 18-layer CNN; in GradAttn the only extra routes for gradient are the
    per-stage token projections (SPEC 1.3).
    """

    def __init__(self, in_chans: int, out_chans: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(in_chans, out_chans, stride)
        self.bn1 = nn.BatchNorm2d(out_chans)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_chans, out_chans)
        self.bn2 = nn.BatchNorm2d(out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)))


def make_stage(in_chans: int, out_chans: int, stride: int, residual: bool,
               attention: str | None = None, num_blocks: int = 2) -> nn.Sequential:
    blocks = []
    for i in range(num_blocks):
        block_in, block_stride = (in_chans, stride) if i == 0 else (out_chans, 1)
        if residual:
            blocks.append(BasicBlock(block_in, out_chans, block_stride, attention))
        else:
            blocks.append(NonResidualBlock(block_in, out_chans, block_stride))
    return nn.Sequential(*blocks)


class Backbone(nn.Module):
    """The 18-layer trunk every model shares: `.stem`, `.layer1` .. `.layer4` and `tap_features`.

    `residual=False` builds it from NonResidualBlock (GradAttn, plain18); `attention` adds SE or CBAM
    to every residual block.
    """

    def __init__(self, in_chans: int, stem: str = "imagenet", residual: bool = True,
                 attention: str | None = None):
        super().__init__()
        self.stem = make_stem(in_chans, stem)
        widths = (64,) + STAGE_CHANNELS
        for i, (stage_in, stage_out) in enumerate(zip(widths[:-1], widths[1:])):
            stride = 1 if i == 0 else 2
            self.add_module(f"layer{i + 1}", make_stage(stage_in, stage_out, stride, residual, attention))

    def tap_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five feature maps GradAttn turns into tokens: after the stem, and after layer1..4."""
        taps = [self.stem(x)]
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            taps.append(stage(taps[-1]))
        return taps


def kaiming_init_(model: nn.Module) -> nn.Module:
    """The authors' SE/CBAM initialisation, applied by module type over `model.modules()`.

    Conv2d: Kaiming-normal (fan_out, ReLU gain); BatchNorm: weight 1, bias 0; Linear: N(0, 0.01),
    bias 0. Other parameters (LayerNorm, nn.MultiheadAttention's packed in_proj, the learnable
    positional embedding) keep their defaults, exactly as the same loop would leave them.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def apply_init(model: nn.Module, init: str, paper_scheme: str) -> nn.Module:
    """Initialise `model` for `init` ("paper" or "kaiming").

    `paper_scheme` is what the authors used for this family: "default" (PyTorch's own init: ResNet-18,
    plain18, GradAttn) or "kaiming" (SE/CBAM). "paper" follows it, confound included (SPEC 7.6);
    "kaiming" gives every model the SE/CBAM scheme so that init is not a difference between models.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; use one of {list(INITS)}")
    if init == "kaiming" or paper_scheme == "kaiming":
        kaiming_init_(model)
    return model

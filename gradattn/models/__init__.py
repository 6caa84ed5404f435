"""Model registry: build any of the paper's models (and our ablations) by name.

    model = build_model("gradattn_rope", num_classes=10, in_chans=3, stem="cifar")

Options common to all models: `stem="imagenet"` (the paper's, default) or `"cifar"`, and
`init="paper"` (each family as the authors initialised it: PyTorch defaults for ResNet-18 / plain18 /
GradAttn, Kaiming + N(0, 0.01) for SE / CBAM) or `"kaiming"` (that SE/CBAM scheme for every model).
GradAttn models also take `d_model`, `nhead`, `dim_feedforward`, `num_layers`, `dropout`
(gradattn_mlp: `d_model`, `dim_feedforward`, `dropout`).
"""
from __future__ import annotations

import inspect
from typing import Callable

import torch
from torch import nn

from .blocks import (CBAM, Backbone, BasicBlock, NonResidualBlock, SEModule, kaiming_init_,
                     make_stem)
from .gradattn import (GradAttn, GradAttnMLP, TransformerConfig, gradattn_lpe, gradattn_mlp,
                       gradattn_nope, gradattn_nope_d32, gradattn_rope)
from .resnet import ResNetClassifier, cbam_resnet18, plain18, resnet18, se_resnet18
from .rope import MultiHeadAttentionWithRoPE, RotaryEmbedding, TransformerEncoderLayerWithRoPE

MODELS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "resnet18": (resnet18, "ResNet-18 baseline (paper)"),
    "se_resnet18": (se_resnet18, "ResNet-18 + SE in every block (paper, May-2026 runs)"),
    "cbam_resnet18": (cbam_resnet18, "ResNet-18 + CBAM in every block (paper, May-2026 runs)"),
    "gradattn_nope": (gradattn_nope, "GradAttn, no positional encoding, d=256 (paper HEAD)"),
    "gradattn_nope_d32": (gradattn_nope_d32, "GradAttn, no positional encoding, d=32, FF=2 (arXiv v1)"),
    "gradattn_lpe": (gradattn_lpe, "GradAttn, learnable positional embedding, d=256 (paper)"),
    "gradattn_rope": (gradattn_rope, "GradAttn, rotary positional embedding, d=256 (paper)"),
    "plain18": (plain18, "Ablation: non-residual backbone + GAP + Linear, no tokens"),
    "gradattn_mlp": (gradattn_mlp, "Ablation: GradAttn's 5 pooled tokens into an MLP, no attention"),
}


def list_models() -> list[str]:
    """Registered model names, in table order (baselines, GradAttn variants, ablations)."""
    return list(MODELS)


def model_options(name: str) -> list[str]:
    """Keyword options `build_model` accepts for `name` (the factory's own keywords)."""
    factory = _lookup(name)[0]
    return [p for p in inspect.signature(factory).parameters if p not in ("num_classes", "in_chans")]


def _lookup(name: str):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}")
    return MODELS[name]


def build_model(name: str, num_classes: int, in_chans: int = 3, **options) -> nn.Module:
    """Build registered model `name` for `num_classes` classes and `in_chans` input channels."""
    factory = _lookup(name)[0]
    accepted = model_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for model {name!r}; accepted options: {accepted}")
    return factory(num_classes=num_classes, in_chans=in_chans, **options)


def logits_of(output) -> torch.Tensor:
    """The logits of a forward pass: models return a tensor, or a dict with "logits" on a details pass."""
    return output["logits"] if isinstance(output, dict) else output


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (what the notebooks print); buffers are not counted."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, in_chans: int, image_size: int) -> int:
    """Forward FLOPs for one image of `image_size` px, on the meta device, as torch.utils.flop_counter counts
    them: convolutions and matrix products, a multiply-add as 2; element-wise work (RoPE's rotation, norms) is
    not counted. The model runs in train mode: in eval mode PyTorch's fused transformer encoder path would hide
    the encoder's matmuls from the counter. Two images, since BatchNorm in train mode needs more than one value
    per channel."""
    from torch.utils.flop_counter import FlopCounterMode

    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be the image side in pixels (an int >= 1), got {image_size!r}")

    was_training = model.training
    model.train()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.empty(2, in_chans, image_size, image_size, device="meta"))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def model_summary_rows(num_classes: int = 10, in_chans: int = 3, image_size: int | None = None,
                       **options) -> list[dict]:
    """One dict per registered model: name, description, parameters (computed, not stored), and with
    `image_size` the forward FLOPs per image with the paper's stem and with the small-image stem.

    Models are built on the meta device, so no memory is allocated and no init is run.
    """
    rows = []
    for name, (_, description) in MODELS.items():
        with torch.device("meta"):
            model = build_model(name, num_classes, in_chans, **options)
        row = {"name": name, "description": description, "parameters": count_parameters(model)}
        if image_size:
            for stem in ("imagenet", "cifar"):
                with torch.device("meta"):
                    stemmed = build_model(name, num_classes, in_chans, **{**options, "stem": stem})
                row[f"flops_{stem}"] = count_flops(stemmed, in_chans, image_size)
        rows.append(row)
    return rows


def format_model_table(num_classes: int = 10, in_chans: int = 3, image_size: int | None = None) -> str:
    """Markdown table of every registered model and its parameter count for this class/channel count; with
    `image_size`, also its forward GFLOPs per image with the paper's (ImageNet) stem and the small-image stem."""
    flops = f" GFLOPs/image at {image_size} px: paper stem | small-image stem |" if image_size else ""
    lines = [f"| model | description | parameters ({num_classes} classes, {in_chans} ch) |" + flops,
             "|---|---|---:|" + ("---:|---:|" if image_size else "")]
    for row in model_summary_rows(num_classes, in_chans, image_size):
        cells = f"| `{row['name']}` | {row['description']} | {row['parameters']:,} |"
        if image_size:
            cells += f" {row['flops_imagenet'] / 1e9:.3f} | {row['flops_cifar'] / 1e9:.3f} |"
        lines.append(cells)
    return "\n".join(lines)


__all__ = [
    "MODELS", "build_model", "list_models", "model_options", "logits_of", "count_parameters", "count_flops",
    "model_summary_rows", "format_model_table", "Backbone", "BasicBlock", "NonResidualBlock", "SEModule", "CBAM",
    "make_stem",
    "kaiming_init_", "ResNetClassifier", "GradAttn", "GradAttnMLP", "TransformerConfig",
    "RotaryEmbedding", "MultiHeadAttentionWithRoPE", "TransformerEncoderLayerWithRoPE",
    "resnet18", "se_resnet18", "cbam_resnet18", "plain18", "gradattn_nope", "gradattn_nope_d32",
    "gradattn_lpe", "gradattn_rope", "gradattn_mlp",
]

"""GradAttn (the notebooks' `ResNetTransformer`, SPEC 1.3-1.4) and its no-attention ablation.

A plain (non-residual) 18-layer CNN whose five stage outputs are each global-average-pooled and
projected to a d-dim token by their own Linear head; the (B, 5, d) sequence goes through 3 post-norm
encoder layers, is averaged over tokens and classified. No CLS token. Positional encoding:
"none" (nn.TransformerEncoderLayer), "learned" (a N(0, 1) parameter (1, 5, d) added before the encoder)
or "rope" (the authors' hand-written rotary layer). `gradattn_mlp` keeps the tokens but replaces the
encoder with an MLP, to tell whether attention matters (SPEC 7.6).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import TAP_CHANNELS, Backbone, apply_init, check_io
from .rope import TransformerEncoderLayerWithRoPE

POS_ENCODINGS = ("none", "learned", "rope")


def _is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_dropout(value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"dropout must be a float in [0, 1), got {value!r}")


@dataclass(frozen=True)
class TransformerConfig:
    """Token width and encoder shape. Defaults are the paper's d=256 / 8 heads / FF 512 / 3 layers."""

    d_model: int = 256
    nhead: int = 8
    dim_feedforward: int = 512
    num_layers: int = 3
    dropout: float = 0.1

    def __post_init__(self):
        for name in ("d_model", "nhead", "dim_feedforward", "num_layers"):
            if not _is_positive_int(getattr(self, name)):
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.d_model % self.nhead:
            raise ValueError(f"d_model={self.d_model} is not divisible by nhead={self.nhead}; "
                             "pick nhead that divides d_model")
        _check_dropout(self.dropout)


def make_projections(d_model: int) -> nn.ModuleList:
    """One GAP -> Flatten -> Linear(C_i, d) head per tap; unshared, so each token knows its depth."""
    return nn.ModuleList(
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, d_model))
        for channels in TAP_CHANNELS
    )


def mha_attention_weights(attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """Softmax self-attention weights (B, heads, N, N) of a batch-first nn.MultiheadAttention on x.

    Recomputed from the packed in_proj so that no dropout is applied and no random numbers are
    drawn: a details pass then yields exactly the logits of the plain forward.
    """
    if not attn.batch_first or not attn._qkv_same_embed_dim:
        raise ValueError("mha_attention_weights needs a batch_first nn.MultiheadAttention with "
                         "kdim == vdim == embed_dim (the layers GradAttn builds)")
    d = attn.embed_dim
    bias = attn.in_proj_bias[: 2 * d] if attn.in_proj_bias is not None else None
    q, k = F.linear(x, attn.in_proj_weight[: 2 * d], bias).chunk(2, dim=-1)
    b, n, _ = x.shape
    q = q.view(b, n, attn.num_heads, attn.head_dim).transpose(1, 2)
    k = k.view(b, n, attn.num_heads, attn.head_dim).transpose(1, 2)
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(attn.head_dim), dim=-1)


class GradAttn(Backbone):
    """Non-residual backbone -> 5 pooled tokens -> transformer encoder -> token mean -> Linear(d, K)."""

    def __init__(self, num_classes: int, in_chans: int = 3, stem: str = "imagenet",
                 pos_encoding: str = "none", config: TransformerConfig = TransformerConfig()):
        check_io(num_classes, in_chans)
        if pos_encoding not in POS_ENCODINGS:
            raise ValueError(f"unknown pos_encoding {pos_encoding!r}; use one of {list(POS_ENCODINGS)}")
        super().__init__(in_chans, stem, residual=False)
        self.pos_encoding = pos_encoding
        self.config = config
        d = config.d_model
        self.projections = make_projections(d)
        self.pos_embedding = nn.Parameter(torch.randn(1, len(TAP_CHANNELS), d)) if pos_encoding == "learned" else None
        if pos_encoding == "rope":
            layers = [TransformerEncoderLayerWithRoPE(d, config.nhead, config.dim_feedforward, config.dropout)
                      for _ in range(config.num_layers)]
        else:
            layers = [nn.TransformerEncoderLayer(d, config.nhead, config.dim_feedforward, config.dropout,
                                                 activation="relu", batch_first=True, norm_first=False)
                      for _ in range(config.num_layers)]
        self.encoder = nn.ModuleList(layers)
        self.classifier = nn.Linear(d, num_classes)

    def project_taps(self, x: torch.Tensor) -> torch.Tensor:
        """The five projected tokens (B, 5, d), before any positional embedding."""
        return torch.stack([proj(f) for proj, f in zip(self.projections, self.tap_features(x))], dim=1)

    def _with_position(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens if self.pos_embedding is None else tokens + self.pos_embedding

    def classify_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits from projected tokens (B, 5, d): [+PE], encoder, mean over tokens, classifier."""
        h = self._with_position(tokens)
        for layer in self.encoder:
            h = layer(h)
        return self.classifier(h.mean(dim=1))

    def forward(self, x: torch.Tensor, return_details: bool = False):
        """Logits; with `return_details`, dict(logits, tokens (B, 5, d) encoder input,
        attention (B, layers, heads, 5, 5) softmax weights, before attention dropout)."""
        projected = self.project_taps(x)
        if not return_details:
            return self.classify_tokens(projected)
        tokens = self._with_position(projected)
        h, attention = tokens, []
        for layer in self.encoder:
            if isinstance(layer, TransformerEncoderLayerWithRoPE):
                h, weights = layer(h, return_attention=True)
            else:
                weights = mha_attention_weights(layer.self_attn, h)
                h = layer(h)
            attention.append(weights)
        logits = self.classifier(h.mean(dim=1))
        return {"logits": logits, "tokens": tokens, "attention": torch.stack(attention, dim=1)}


class GradAttnMLP(Backbone):
    """Ablation: GradAttn's five pooled tokens, concatenated (B, 5d), classified by an MLP.

    Head: Linear(5d, dim_feedforward) -> ReLU -> Dropout -> Linear(dim_feedforward, K). It sees the
    same multi-scale pooled features and gives every stage the same direct gradient route as GradAttn,
    but has no attention and no token mixing other than through the hidden layer.
    """

    def __init__(self, num_classes: int, in_chans: int = 3, stem: str = "imagenet",
                 d_model: int = 256, dim_feedforward: int = 512, dropout: float = 0.1):
        check_io(num_classes, in_chans)
        for name, value in (("d_model", d_model), ("dim_feedforward", dim_feedforward)):
            if not _is_positive_int(value):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        _check_dropout(dropout)
        super().__init__(in_chans, stem, residual=False)
        self.projections = make_projections(d_model)
        self.classifier = nn.Sequential(
            nn.Linear(len(TAP_CHANNELS) * d_model, dim_feedforward),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(dim_feedforward, num_classes),
        )

    def project_taps(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([proj(f) for proj, f in zip(self.projections, self.tap_features(x))], dim=1)

    def classify_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.classifier(tokens.flatten(1))

    def forward(self, x: torch.Tensor, return_details: bool = False):
        """Logits; with `return_details`, dict(logits, tokens (B, 5, d), attention=None)."""
        tokens = self.project_taps(x)
        logits = self.classify_tokens(tokens)
        return {"logits": logits, "tokens": tokens, "attention": None} if return_details else logits


def _gradattn(pos_encoding, num_classes, in_chans, stem, init, **transformer) -> GradAttn:
    model = GradAttn(num_classes, in_chans, stem, pos_encoding, TransformerConfig(**transformer))
    return apply_init(model, init, paper_scheme="default")


def gradattn_nope(num_classes: int, in_chans: int = 3, stem: str = "imagenet", init: str = "paper",
                  d_model: int = 256, nhead: int = 8, dim_feedforward: int = 512, num_layers: int = 3,
                  dropout: float = 0.1) -> GradAttn:
    """No positional encoding, the README's d=256 config (the HEAD notebooks' No-PE-256)."""
    return _gradattn("none", num_classes, in_chans, stem, init, d_model=d_model, nhead=nhead,
                     dim_feedforward=dim_feedforward, num_layers=num_layers, dropout=dropout)


def gradattn_nope_d32(num_classes: int, in_chans: int = 3, stem: str = "imagenet", init: str = "paper",
                      d_model: int = 32, nhead: int = 16, dim_feedforward: int = 2, num_layers: int = 3,
                      dropout: float = 0.1) -> GradAttn:
    """No positional encoding at d=32, 16 heads (d_k=2), FF=2: the config behind arXiv v1's No-PE."""
    return _gradattn("none", num_classes, in_chans, stem, init, d_model=d_model, nhead=nhead,
                     dim_feedforward=dim_feedforward, num_layers=num_layers, dropout=dropout)


def gradattn_lpe(num_classes: int, in_chans: int = 3, stem: str = "imagenet", init: str = "paper",
                 d_model: int = 256, nhead: int = 8, dim_feedforward: int = 512, num_layers: int = 3,
                 dropout: float = 0.1) -> GradAttn:
    """Learnable positional embedding over the 5 depth positions (+5d parameters)."""
    return _gradattn("learned", num_classes, in_chans, stem, init, d_model=d_model, nhead=nhead,
                     dim_feedforward=dim_feedforward, num_layers=num_layers, dropout=dropout)


def gradattn_rope(num_classes: int, in_chans: int = 3, stem: str = "imagenet", init: str = "paper",
                  d_model: int = 256, nhead: int = 8, dim_feedforward: int = 512, num_layers: int = 3,
                  dropout: float = 0.1) -> GradAttn:
    """Rotary position embedding over depth positions 0..4, in the authors' hand-written layer."""
    return _gradattn("rope", num_classes, in_chans, stem, init, d_model=d_model, nhead=nhead,
                     dim_feedforward=dim_feedforward, num_layers=num_layers, dropout=dropout)


def gradattn_mlp(num_classes: int, in_chans: int = 3, stem: str = "imagenet", init: str = "paper",
                 d_model: int = 256, dim_feedforward: int = 512, dropout: float = 0.1) -> GradAttnMLP:
    """Ablation: GradAttn's tokens into an MLP head instead of attention (see GradAttnMLP)."""
    model = GradAttnMLP(num_classes, in_chans, stem, d_model, dim_feedforward, dropout)
    return apply_init(model, init, paper_scheme="default")

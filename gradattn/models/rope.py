"""The authors' hand-written RoPE attention and encoder layer (SPEC 1.4).

The "positions" are the five depth indices 0..4 of GradAttn's tokens. The layer is post-norm like
nn.TransformerEncoderLayer, but its modules differ (separate Q/K/V projections without bias; the FFN
uses ReLU(inplace=True) straight after linear1): the faithful gradient-flow analysis depends on this,
since the in-place ReLU on the 3-D linear1 output (a view) drops that module's legacy backward hook.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the two halves of the last dim (GPT-NeoX convention)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (i, i + d/2) pair of `x` by its position's angle: x*cos + rotate_half(x)*sin."""
    return x * cos + rotate_half(x) * sin


class RotaryEmbedding(nn.Module):
    """cos/sin tables for rotary embedding over a head of size `head_dim` (even).

    inv_freq[i] = 1 / base^(2i / head_dim) for i < head_dim/2 is a buffer, not a parameter, so RoPE
    adds no parameters; angles are position * inv_freq, duplicated as cat(freqs, freqs).
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embedding needs an even head size, got {head_dim}; "
                             "choose d_model and nhead so that d_model // nhead is even")
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin of shape (*positions.shape, head_dim) for integer or real positions."""
        freqs = positions.to(self.inv_freq.dtype)[..., None] * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()


class MultiHeadAttentionWithRoPE(nn.Module):
    """Self-attention with rotary position embedding on Q and K (not V), computed by hand.

    Returns (output, weights): weights are the softmax attention probabilities (B, heads, N, N)
    before the attention dropout, which is applied only to the copy used to mix the values.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.1):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by nhead={num_heads}; "
                             "pick nhead that divides d_model")
        self.d_model = d_model
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.w_q = nn.Linear(d_model, d_model, bias=False)
        self.w_k = nn.Linear(d_model, d_model, bias=False)
        self.w_v = nn.Linear(d_model, d_model, bias=False)
        self.w_o = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        self.rotary = RotaryEmbedding(self.head_dim)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, _ = x.shape
        q, k, v = self._split_heads(self.w_q(x)), self._split_heads(self.w_k(x)), self._split_heads(self.w_v(x))
        cos, sin = self.rotary(torch.arange(n, device=x.device))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        weights = torch.softmax(scores, dim=-1)
        out = (self.dropout(weights) @ v).transpose(1, 2).reshape(b, n, self.d_model)
        return self.w_o(out), weights


class TransformerEncoderLayerWithRoPE(nn.Module):
    """Post-norm encoder layer around MultiHeadAttentionWithRoPE (batch-first input (B, N, d)).

    src = norm1(src + dropout1(attn(src)))
    src = norm2(src + dropout2(linear2(dropout(relu_(linear1(src))))))
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.1):
        super().__init__()
        self.self_attn = MultiHeadAttentionWithRoPE(d_model, nhead, dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, src: torch.Tensor, return_attention: bool = False):
        attended, weights = self.self_attn(src)
        src = self.norm1(src + self.dropout1(attended))
        hidden = self.dropout(self.activation(self.linear1(src)))
        src = self.norm2(src + self.dropout2(self.linear2(hidden)))
        return (src, weights) if return_attention else src

"""Rotary embedding properties and the authors' RoPE attention layer (SPEC 1.4)."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradattn.models.rope import (MultiHeadAttentionWithRoPE, RotaryEmbedding,
                                  TransformerEncoderLayerWithRoPE, apply_rotary, rotate_half)


def rotate(x, position, rotary):
    cos, sin = rotary(torch.tensor(float(position), dtype=torch.float64))
    return apply_rotary(x, cos, sin)


@settings(max_examples=60, deadline=None)
@given(head_dim=st.sampled_from([2, 8, 32]), i=st.integers(0, 4), j=st.integers(0, 4),
       shift=st.integers(-50, 50), seed=st.integers(0, 2**16))
def test_rotated_dot_product_depends_only_on_relative_position(head_dim, i, j, shift, seed):
    generator = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, head_dim, generator=generator, dtype=torch.float64)
    rotary = RotaryEmbedding(head_dim).double()
    before = rotate(q, i, rotary) @ rotate(k, j, rotary)
    after = rotate(q, i + shift, rotary) @ rotate(k, j + shift, rotary)
    assert after.item() == pytest.approx(before.item(), abs=1e-9)
    unrotated = q @ k
    if i != j and head_dim == 2:
        assert before.item() != pytest.approx(unrotated.item(), abs=1e-9)  # the offset is seen


@settings(max_examples=30, deadline=None)
@given(position=st.integers(0, 1000), seed=st.integers(0, 2**16))
def test_rotation_preserves_norm_and_position_zero_is_identity(position, seed):
    x = torch.randn(32, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    rotary = RotaryEmbedding(32).double()
    assert torch.linalg.norm(rotate(x, position, rotary)).item() == pytest.approx(torch.linalg.norm(x).item())
    torch.testing.assert_close(rotate(x, 0, rotary), x)
    if position > 0:
        assert not torch.allclose(rotate(x, position, rotary), x)   # a real rotation, not the identity


def test_inverse_frequencies_and_rotate_half_convention():
    rotary = RotaryEmbedding(32)
    assert "inv_freq" in dict(rotary.named_buffers()) and not list(rotary.parameters())
    torch.testing.assert_close(rotary.inv_freq, 10000.0 ** (-torch.arange(16) * 2 / 32))
    torch.testing.assert_close(rotate_half(torch.tensor([1.0, 2.0, 3.0, 4.0])), torch.tensor([-3.0, -4.0, 1.0, 2.0]))
    cos, _ = rotary(torch.arange(5))
    assert cos.shape == (5, 32)
    torch.testing.assert_close(cos[:, :16], cos[:, 16:])        # emb = cat(freqs, freqs)


def test_attention_is_hand_computed_softmax_with_rope_on_q_and_k_only():
    torch.manual_seed(0)
    attn = MultiHeadAttentionWithRoPE(16, 4, dropout=0.1).eval()
    assert attn.w_q.bias is None and attn.w_k.bias is None and attn.w_v.bias is None
    assert attn.w_o.bias is not None
    x = torch.randn(3, 5, 16)
    out, weights = attn(x)
    assert out.shape == (3, 5, 16) and weights.shape == (3, 4, 5, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, 5))
    # Reference: rotate per-head q, k by their position; v is not rotated.
    heads = lambda t: t.view(3, 5, 4, 4).transpose(1, 2)
    cos, sin = attn.rotary(torch.arange(5))
    q, k = apply_rotary(heads(attn.w_q(x)), cos, sin), apply_rotary(heads(attn.w_k(x)), cos, sin)
    reference = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1)
    torch.testing.assert_close(weights, reference)
    mixed = (reference @ heads(attn.w_v(x))).transpose(1, 2).reshape(3, 5, 16)
    torch.testing.assert_close(out, attn.w_o(mixed))


def test_encoder_layer_is_post_norm_with_inplace_relu_ffn():
    torch.manual_seed(0)
    layer = TransformerEncoderLayerWithRoPE(16, 4, 8, dropout=0.1).eval()
    assert layer.activation.inplace
    x = torch.randn(2, 5, 16)
    h = layer.norm1(x + layer.self_attn(x)[0])
    reference = layer.norm2(h + layer.linear2(torch.relu(layer.linear1(h))))
    out, weights = layer(x, return_attention=True)
    torch.testing.assert_close(out, reference)
    torch.testing.assert_close(layer(x), reference)
    assert weights.shape == (2, 4, 5, 5)

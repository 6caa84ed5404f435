"""GradAttn forward semantics, attention details, token order, and gradient-hook structure (SPEC 1.3-1.4, 5, 7.4)."""
import warnings

import pytest
import torch
from torch import nn

from gradattn.models import build_model, list_models
from gradattn.models.gradattn import mha_attention_weights

GRADATTN = ["gradattn_nope", "gradattn_nope_d32", "gradattn_lpe", "gradattn_rope"]
# (registered, fired) legacy backward hooks on every Conv2d / Linear / TransformerEncoderLayer
# (SPEC 5, 7.4): MHA's out_proj (No-PE/LPE) and RoPE's linear1 are registered but never fire.
HOOKS = {"resnet18": (21, 21), "se_resnet18": (37, 37), "cbam_resnet18": (45, 45),
         "gradattn_nope": (35, 32), "gradattn_nope_d32": (35, 32), "gradattn_lpe": (35, 32),
         "gradattn_rope": (41, 38), "plain18": (18, 18), "gradattn_mlp": (24, 24)}
SILENT = {"gradattn_nope": "self_attn.out_proj", "gradattn_nope_d32": "self_attn.out_proj",
          "gradattn_lpe": "self_attn.out_proj", "gradattn_rope": "linear1"}


def small(name, **options):
    torch.manual_seed(0)
    return build_model(name, 10, **options)


def images(batch=2, side=32, seed=1):
    return torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", list_models())
def test_legacy_backward_hooks_registered_and_fired(name):
    model = small(name).train()
    hooked, fired = [], set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # register_backward_hook is deprecated; that is the point
        for path, module in model.named_modules():
            if isinstance(module, (nn.Conv2d, nn.Linear, nn.TransformerEncoderLayer)):
                hooked.append(path)
                module.register_backward_hook(lambda m, gi, go, path=path: fired.add(path))
        model(images()).sum().backward()
    assert (len(hooked), len(fired)) == HOOKS[name]
    silent = set(hooked) - fired
    assert all(path.endswith(SILENT[name]) for path in silent)


@pytest.mark.parametrize("name", list_models())
def test_gradient_reaches_the_first_convolution(name):
    model = small(name).train()
    nn.functional.cross_entropy(model(images()), torch.tensor([3, 7])).backward()
    first_conv = model.stem[0]
    assert isinstance(first_conv, nn.Conv2d)
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", GRADATTN)
def test_details_pass_reproduces_plain_logits_and_returns_attention(name):
    model = small(name).eval()
    x = images(batch=3)
    with torch.no_grad():
        plain = model(x)
        details = model(x, return_details=True)
    torch.testing.assert_close(details["logits"], plain, rtol=0, atol=1e-6)
    d, heads = model.config.d_model, model.config.nhead
    assert details["tokens"].shape == (3, 5, d)
    attention = details["attention"]
    assert attention.shape == (3, len(model.encoder), heads, 5, 5)
    assert torch.all(attention >= 0)
    torch.testing.assert_close(attention.sum(-1), torch.ones(attention.shape[:-1]))


@pytest.mark.parametrize("name", GRADATTN)
def test_details_pass_draws_no_extra_random_numbers_in_train_mode(name):
    model = small(name).train()
    x = images()
    torch.manual_seed(5)
    plain = model(x)
    torch.manual_seed(5)
    details = model(x, return_details=True)
    torch.testing.assert_close(details["logits"], plain)


def test_tokens_are_encoder_input_with_learned_position_added():
    model = small("gradattn_lpe").eval()
    assert model.pos_embedding.shape == (1, 5, 256)
    x = images()
    with torch.no_grad():
        tokens = model(x, return_details=True)["tokens"]
        torch.testing.assert_close(tokens, model.project_taps(x) + model.pos_embedding)


def test_attention_weights_agree_with_multihead_attention():
    torch.manual_seed(0)
    attn = nn.MultiheadAttention(32, 4, dropout=0.1, batch_first=True).eval()
    h = torch.randn(2, 5, 32)
    _, reference = attn(h, h, h, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(mha_attention_weights(attn, h), reference)


@pytest.mark.parametrize("name,invariant", [("gradattn_nope", True), ("gradattn_nope_d32", True),
                                            ("gradattn_lpe", False), ("gradattn_rope", False),
                                            ("gradattn_mlp", False)])
def test_token_order_matters_only_with_positional_information(name, invariant):
    model = small(name).eval()
    with torch.no_grad():
        tokens = model.project_taps(images())
        logits = model.classify_tokens(tokens)
        permuted = model.classify_tokens(tokens[:, [3, 0, 4, 1, 2]])
    if invariant:
        torch.testing.assert_close(permuted, logits, rtol=0, atol=1e-5)
    else:
        assert (permuted - logits).abs().max() > 1e-4


def test_gradattn_modules_follow_the_contract():
    model = small("gradattn_rope")
    assert len(model.projections) == 5 and len(model.encoder) == 3
    for projection, channels in zip(model.projections, (64, 64, 128, 256, 512)):
        assert [type(m) for m in projection] == [nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear]
        assert projection[2].in_features == channels
    assert model.pos_embedding is None and model.classifier.in_features == 256
    nope_layer = small("gradattn_nope").encoder[0]
    assert isinstance(nope_layer, nn.TransformerEncoderLayer)
    assert nope_layer.self_attn.batch_first and not nope_layer.norm_first
    assert nope_layer.dropout.p == 0.1 and nope_layer.linear1.out_features == 512


def test_mlp_ablation_returns_tokens_without_attention():
    model = small("gradattn_mlp").eval()
    with torch.no_grad():
        details = model(images(), return_details=True)
        torch.testing.assert_close(details["logits"], model(images()))
    assert details["tokens"].shape == (2, 5, 256) and details["attention"] is None
    assert [type(m) for m in model.classifier] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]

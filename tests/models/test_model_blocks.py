"""Backbone blocks: tap shapes (SPEC 1.1), residual vs non-residual blocks, SE/CBAM placement."""
import pytest
import torch
from torch import nn

from gradattn.models import build_model
from gradattn.models.blocks import BasicBlock, CBAM, NonResidualBlock, SEModule

# SPEC 1.1 (ImageNet stem): input side -> spatial side after stem, layer1, layer2, layer3, layer4.
IMAGENET_STEM_SIDES = {28: (7, 7, 4, 2, 1), 32: (8, 8, 4, 2, 1), 64: (16, 16, 8, 4, 2),
                       96: (24, 24, 12, 6, 3), 224: (56, 56, 28, 14, 7)}
# CIFAR stem: stride-1 stem, no max-pool; each stride-2 3x3/pad-1 conv maps H to ceil(H / 2).
CIFAR_STEM_SIDES = {28: (28, 28, 14, 7, 4), 32: (32, 32, 16, 8, 4), 64: (64, 64, 32, 16, 8),
                    96: (96, 96, 48, 24, 12), 224: (224, 224, 112, 56, 28)}
TAP_CHANNELS = (64, 64, 128, 256, 512)


def tap_shapes(model, side, in_chans=3, device="cpu"):
    model.eval()
    with torch.no_grad():
        taps = model.tap_features(torch.randn(1, in_chans, side, side, device=device))
    return [tuple(t.shape[1:]) for t in taps]


def expected(sides):
    return [(c, s, s) for c, s in zip(TAP_CHANNELS, sides)]


@pytest.mark.parametrize("side", sorted(IMAGENET_STEM_SIDES))
def test_imagenet_stem_taps_match_spec_table(side):
    in_chans = 1 if side == 28 else 3
    model = build_model("gradattn_nope_d32", 10, in_chans)
    assert tap_shapes(model, side, in_chans) == expected(IMAGENET_STEM_SIDES[side])


@pytest.mark.parametrize("side", sorted(CIFAR_STEM_SIDES))
def test_cifar_stem_taps_keep_full_resolution(side):
    # Shape inference on the meta device: the same shape rules without the compute of a 224 px CIFAR stem.
    with torch.device("meta"):
        model = build_model("resnet18", 10, stem="cifar")
    assert tap_shapes(model, side, device="meta") == expected(CIFAR_STEM_SIDES[side])


def test_meta_shape_inference_agrees_with_real_compute():
    real = build_model("resnet18", 10, stem="cifar")
    with torch.device("meta"):
        meta = build_model("resnet18", 10, stem="cifar")
    assert tap_shapes(real, 28) == tap_shapes(meta, 28, device="meta")


def zero_convs(block):
    for module in block.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.zeros_(module.weight)
    return block


@pytest.mark.parametrize("train", [True, False])
def test_non_residual_block_has_no_skip_path(train):
    block = zero_convs(NonResidualBlock(8, 8)).train(train)
    x = torch.randn(2, 8, 5, 5)
    assert torch.count_nonzero(block(x)) == 0


def test_residual_block_with_zeroed_convs_passes_relu_of_input():
    block = zero_convs(BasicBlock(8, 8)).eval()
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(block(x), torch.relu(x))


def test_residual_downsample_is_1x1_conv_bn_only_when_shape_changes():
    assert BasicBlock(8, 8).downsample is None
    shortcut = BasicBlock(8, 16, stride=2).downsample
    assert [type(m) for m in shortcut] == [nn.Conv2d, nn.BatchNorm2d]
    assert shortcut[0].kernel_size == (1, 1) and shortcut[0].stride == (2, 2)


@pytest.mark.parametrize("name", ["plain18", "gradattn_lpe", "gradattn_mlp"])
def test_grad_attn_backbones_are_plain_cnns(name):
    with torch.device("meta"):
        model = build_model(name, 10)
    assert not any(isinstance(m, BasicBlock) for m in model.modules())
    assert sum(isinstance(m, NonResidualBlock) for m in model.modules()) == 8
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 17


@pytest.mark.parametrize("attention", ["se", "cbam"])
def test_attention_gate_sits_after_bn2_and_before_the_residual_add(attention):
    torch.manual_seed(0)
    block = BasicBlock(32, 32, attention=attention).eval()
    x = torch.randn(2, 32, 6, 6)
    branch = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
    torch.testing.assert_close(block(x), torch.relu(block.attention(branch) + x))
    # With the last gate layer zeroed every gate is sigmoid(0) = 1/2, so the branch is exactly halved.
    if attention == "se":
        nn.init.zeros_(block.attention.fc[2].weight)
        torch.testing.assert_close(block(x), torch.relu(branch / 2 + x))


def test_se_and_cbam_gates_are_in_unit_interval_and_reduce_by_16():
    se, cbam = SEModule(64), CBAM(64)
    assert se.fc[0].out_features == 4 and cbam.channel.mlp[0].out_channels == 4
    assert cbam.spatial.conv.kernel_size == (7, 7) and cbam.spatial.conv.in_channels == 2
    x = torch.rand(2, 64, 5, 5) + 0.1
    for gated in (se(x), cbam(x)):
        assert gated.shape == x.shape and torch.all(gated >= 0) and torch.all(gated <= x)

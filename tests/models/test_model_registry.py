"""Registry behaviour: names, option validation, parameter counts against SPEC 1.6, tables, init."""
import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from gradattn.models import (build_model, count_flops, count_parameters, format_model_table, list_models,
                             logits_of, model_options, model_summary_rows)

PAPER_MODELS = ["resnet18", "se_resnet18", "cbam_resnet18", "gradattn_nope", "gradattn_nope_d32",
                "gradattn_lpe", "gradattn_rope"]

# SPEC 1.6, as printed by the authors' notebooks: (model, num_classes, in_chans) -> parameters.
PAPER_PARAMETER_COUNTS = {
    ("resnet18", 10, 3): 11_181_642, ("resnet18", 10, 1): 11_175_370,
    ("resnet18", 200, 3): 11_279_112, ("resnet18", 8, 3): 11_180_616,
    ("resnet18", 2, 3): 11_177_538, ("resnet18", 6, 3): 11_179_590,
    ("gradattn_nope_d32", 10, 3): 11_049_488, ("gradattn_nope_d32", 10, 1): 11_043_216,
    ("gradattn_nope_d32", 200, 3): 11_055_758, ("gradattn_nope_d32", 8, 3): 11_049_422,
    ("gradattn_nope_d32", 2, 3): 11_049_224, ("gradattn_nope_d32", 6, 3): 11_049_356,
    ("gradattn_nope", 10, 3): 12_849_994, ("gradattn_nope", 10, 1): 12_843_722,
    ("gradattn_nope", 8, 3): 12_849_480,
    ("gradattn_lpe", 10, 3): 12_851_274, ("gradattn_lpe", 10, 1): 12_845_002,
    ("gradattn_lpe", 200, 3): 12_900_104, ("gradattn_lpe", 8, 3): 12_850_760,
    ("gradattn_lpe", 2, 3): 12_849_218, ("gradattn_lpe", 6, 3): 12_850_246,
    ("gradattn_rope", 10, 3): 12_847_690, ("gradattn_rope", 10, 1): 12_841_418,
    ("gradattn_rope", 200, 3): 12_896_520, ("gradattn_rope", 8, 3): 12_847_176,
    ("gradattn_rope", 2, 3): 12_845_634, ("gradattn_rope", 6, 3): 12_846_662,
    ("se_resnet18", 10, 3): 11_268_682, ("se_resnet18", 10, 1): 11_262_410,
    ("cbam_resnet18", 10, 3): 11_269_466, ("cbam_resnet18", 10, 1): 11_263_194,
}
NON_RESIDUAL_BACKBONE = 11_002_688   # SPEC 1.6 breakdown
PROJECTIONS_D256 = 263_424


def meta_model(name, num_classes=10, in_chans=3, **options):
    """Parameter shapes without allocating or initialising 11 M weights."""
    with torch.device("meta"):
        return build_model(name, num_classes, in_chans, **options)


@pytest.mark.parametrize("config,expected", PAPER_PARAMETER_COUNTS.items(), ids=lambda v: str(v))
def test_parameter_counts_match_the_notebooks(config, expected):
    name, num_classes, in_chans = config
    assert count_parameters(meta_model(name, num_classes, in_chans)) == expected


@pytest.mark.parametrize("num_classes", [2, 10, 200])
def test_ablation_parameter_counts_follow_the_spec_breakdown(num_classes):
    assert count_parameters(meta_model("plain18", num_classes)) == (
        NON_RESIDUAL_BACKBONE + 512 * num_classes + num_classes)
    mlp_head = (5 * 256 * 512 + 512) + (512 * num_classes + num_classes)
    assert count_parameters(meta_model("gradattn_mlp", num_classes)) == (
        NON_RESIDUAL_BACKBONE + PROJECTIONS_D256 + mlp_head)


def test_resnet18_matches_torchvision_and_meta_counts_match_real_models():
    torchvision = pytest.importorskip("torchvision")
    reference = torchvision.models.resnet18(num_classes=10)
    real = build_model("resnet18", 10)
    assert count_parameters(real) == count_parameters(reference)
    assert count_parameters(real) == count_parameters(meta_model("resnet18"))
    ours = sorted(p.shape for p in real.parameters())
    assert ours == sorted(p.shape for p in reference.parameters())


def test_list_models_has_every_paper_model_and_ablation():
    assert set(list_models()) == set(PAPER_MODELS) | {"plain18", "gradattn_mlp"}


def test_summary_rows_and_markdown_table_are_computed_per_configuration():
    rows = model_summary_rows(num_classes=200, in_chans=3)
    assert [r["name"] for r in rows] == list_models()
    by_name = {r["name"]: r["parameters"] for r in rows}
    assert by_name["gradattn_rope"] == PAPER_PARAMETER_COUNTS[("gradattn_rope", 200, 3)]
    table = format_model_table(num_classes=10, in_chans=1).splitlines()
    assert table[0].startswith("| model |") and set(table[1]) <= set("|-:")
    assert len(table) == 2 + len(list_models())
    resnet_line = next(line for line in table if "`resnet18`" in line)
    assert resnet_line.rstrip(" |").endswith("11,175,370")


def test_flops_count_the_encoder_exactly_and_the_small_image_stem_costs_over_ten_times_more():
    def flops(name, image_size=32, **options):
        with torch.device("meta"):
            return count_flops(build_model(name, 10, 3, **options), in_chans=3, image_size=image_size)

    tokens, d, ff = 5, 256, 512     # per encoder layer: QKV, output projection, scores, weighted sum, feed-forward
    per_layer = 2 * (tokens * d * 3 * d + tokens * d * d + 2 * tokens * tokens * d + 2 * tokens * d * ff)
    assert flops("gradattn_nope", num_layers=3) - flops("gradattn_nope", num_layers=1) == 2 * per_layer
    real = build_model("resnet18", 10, 3).train()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        real(torch.zeros(2, 3, 32, 32))
    assert flops("resnet18") == counter.get_total_flops() // 2 and real.training
    assert flops("resnet18", stem="cifar") > 10 * flops("resnet18")
    rows = {r["name"]: r for r in model_summary_rows(10, 1, image_size=28)}
    assert rows["gradattn_lpe"]["flops_cifar"] > 10 * rows["gradattn_lpe"]["flops_imagenet"] > 0
    with pytest.raises(ValueError, match="image side in pixels"):
        flops("resnet18", image_size=0)
    header = format_model_table(10, 1, image_size=28).splitlines()[0]
    assert "GFLOPs/image at 28 px: paper stem | small-image stem" in header


def test_first_conv_follows_in_chans_and_stem():
    imagenet = meta_model("gradattn_lpe", in_chans=1).stem
    assert [type(m) for m in imagenet] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    assert imagenet[0].in_channels == 1 and imagenet[0].kernel_size == (7, 7) and imagenet[0].stride == (2, 2)
    cifar = meta_model("resnet18", stem="cifar").stem
    assert [type(m) for m in cifar] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert cifar[0].kernel_size == (3, 3) and cifar[0].stride == (1, 1)


def test_gradattn_options_change_the_transformer():
    model = meta_model("gradattn_nope", d_model=64, nhead=4, dim_feedforward=32, num_layers=2, dropout=0.0)
    assert len(model.encoder) == 2
    layer = model.encoder[0]
    assert layer.self_attn.num_heads == 4 and layer.linear1.out_features == 32
    assert model.classifier.in_features == 64 and all(p[-1].out_features == 64 for p in model.projections)
    assert model_options("resnet18") == ["stem", "init"]


@pytest.mark.parametrize("name,kwargs,fragment", [
    ("resnet50", {}, "valid names: resnet18"),
    ("resnet18", {"in_chans": "3"}, "in_chans must be a positive int"),
    ("resnet18", {"in_chans": 0}, "in_chans must be a positive int"),
    ("gradattn_lpe", {"in_chans": True}, "in_chans must be a positive int"),
    ("resnet18", {"num_classes": 1}, "num_classes must be an int >= 2"),
    ("gradattn_rope", {"num_classes": 10.0}, "num_classes must be an int >= 2"),
    ("plain18", {"stem": "tiny"}, "unknown stem 'tiny'"),
    ("se_resnet18", {"init": "xavier"}, "unknown init 'xavier'"),
    ("gradattn_nope", {"d_model": 100, "nhead": 8}, "not divisible by nhead=8"),
    ("gradattn_rope", {"d_model": 24, "nhead": 8}, "even head size"),
    ("gradattn_lpe", {"dropout": 1.5}, "dropout must be a float in [0, 1)"),
    ("gradattn_mlp", {"d_model": 0}, "d_model must be a positive int"),
    ("resnet18", {"d_model": 32}, "accepted options: ['stem', 'init']"),
    ("gradattn_nope", {"heads": 4}, "accepted options: ['stem', 'init', 'd_model', 'nhead'"),
])
def test_bad_arguments_raise_clear_errors(name, kwargs, fragment):
    args = {"num_classes": 10, "in_chans": 3, **kwargs}
    with pytest.raises(ValueError) as excinfo:
        with torch.device("meta"):
            build_model(name, **args)
    assert fragment in str(excinfo.value)


def test_paper_init_is_pytorch_default_for_resnet_and_kaiming_for_se():
    torch.manual_seed(0)
    resnet = build_model("resnet18", 10)
    conv = resnet.layer4[1].conv2
    fan_in = conv.in_channels * 9
    assert conv.weight.abs().max() <= 1 / math.sqrt(fan_in)          # kaiming_uniform(a=sqrt(5)) bound
    se = build_model("se_resnet18", 10)
    fan_out = se.layer4[1].conv2.out_channels * 9
    assert se.layer4[1].conv2.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.02)
    assert se.classifier.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.all(se.classifier.bias == 0)


def test_kaiming_init_option_reaches_every_family():
    torch.manual_seed(0)
    model = build_model("gradattn_nope", 10, init="kaiming")
    fan_out = model.layer4[1].conv2.out_channels * 9
    assert model.layer4[1].conv2.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.02)
    linear2 = model.encoder[0].linear2
    assert linear2.weight.std().item() == pytest.approx(0.01, rel=0.05) and torch.all(linear2.bias == 0)
    default = build_model("gradattn_nope", 10)
    assert default.encoder[0].linear2.weight.std().item() > 0.02      # default: U(+-1/sqrt(512))


@pytest.mark.parametrize("name", ["resnet18", "gradattn_lpe", "gradattn_rope"])
def test_models_trace_into_one_graph_for_torch_compile(name):
    """`--compile` on CUDA should compile each model whole: a graph break would leave eager islands and
    an untimed recompile in the benchmark. Dynamo's eager backend checks the trace without code generation."""
    import torch._dynamo

    torch._dynamo.reset()
    model = build_model(name, num_classes=10, in_chans=1).eval()
    x = torch.randn(2, 1, 28, 28)
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))


def test_logits_of_reads_plain_and_details_outputs_alike():
    torch.manual_seed(0)
    model = build_model("gradattn_lpe", num_classes=4, in_chans=1).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        plain, details = model(x), model(x, return_details=True)
    assert logits_of(plain) is plain
    assert torch.equal(logits_of(details), details["logits"])
    assert logits_of(details).shape == (2, 4)

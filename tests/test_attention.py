"""Attention summaries over the five taps: per-class means, the image-weighted layer maps, the share each
tap receives, and clear errors for models without attention."""
import numpy as np
import pytest
import torch

from gradattn.attention import attention_by_class, has_attention, received_table, summarize_attention
from gradattn.models import build_model


def batches(n=12, num_classes=3, batch_size=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 28, 28, generator=g)
    y = torch.arange(n) % num_classes
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n, batch_size)]


def test_class_means_equal_the_details_pass_averaged_by_hand():
    torch.manual_seed(0)
    model = build_model("gradattn_lpe", num_classes=3, in_chans=1).train()
    loader = batches()
    maps, counts = attention_by_class(model, loader, num_classes=3, device="cpu")
    assert model.training                                     # mode restored
    assert maps.shape == (3, 3, 8, 5, 5) and counts.tolist() == [4, 4, 4]
    model.eval()
    with torch.no_grad():
        x = torch.cat([b[0] for b in loader])
        y = torch.cat([b[1] for b in loader])
        attention = model(x, return_details=True)["attention"].double().numpy()
    for c in range(3):
        np.testing.assert_allclose(maps[c], attention[(y == c).numpy()].mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)


def test_summary_weights_classes_by_their_images_and_reports_what_each_tap_receives():
    maps = np.zeros((2, 1, 2, 5, 5))
    maps[0, ..., 0] = 1.0            # class 0: every query reads the stem token
    maps[1, ..., 4] = 1.0            # class 1: every query reads layer4
    summary = summarize_attention(maps, np.array([3, 1]), ["a", "b"])
    by_layer = np.array(summary["by_layer"])
    assert by_layer.shape == (1, 5, 5)
    np.testing.assert_allclose(by_layer[0, :, 0], 0.75)
    np.testing.assert_allclose(by_layer[0, :, 4], 0.25)
    assert summary["received"] == [[0.75, 0.0, 0.0, 0.0, 0.25]]
    assert np.array(summary["by_class"])[1, 2, 4] == 1.0
    assert summary["images"] == 4 and summary["class_names"] == ["a", "b"]
    assert summary["taps"] == ["stem", "layer1", "layer2", "layer3", "layer4"]
    table = received_table([({"model": "gradattn_lpe", "seed": 0}, summary)])
    assert len(table) == 5 and table.set_index("tap").loc["stem", "received"] == 0.75


@pytest.mark.parametrize("bad, fragment", [
    ((np.zeros((2, 1, 1, 4, 4)), np.array([1, 1])), "(classes, layers, heads, 5, 5)"),
    ((np.zeros((2, 1, 1, 5, 5)), np.array([1])), "one count per class"),
    ((np.zeros((2, 1, 1, 5, 5)), np.array([0, 0])), "no images"),
])
def test_summary_rejects_malformed_input(bad, fragment):
    with pytest.raises(ValueError, match=re_escape(fragment)):
        summarize_attention(*bad)


def re_escape(text):
    import re
    return re.escape(text)


@pytest.mark.parametrize("name", ["resnet18", "plain18", "gradattn_mlp"])
def test_models_without_attention_are_named_in_the_error(name):
    model = build_model(name, num_classes=3, in_chans=1)
    assert not has_attention(model)
    with pytest.raises(ValueError, match="no attention to summarise"):
        attention_by_class(model, batches(), num_classes=3, device="cpu")


@pytest.mark.parametrize("name", ["gradattn_nope", "gradattn_nope_d32", "gradattn_lpe", "gradattn_rope"])
def test_every_transformer_variant_has_attention(name):
    assert has_attention(build_model(name, num_classes=3, in_chans=1))


def test_a_rebuilt_attention_summary_uses_the_precision_the_run_was_tested_under(tmp_path, monkeypatch):
    import json

    import pandas as pd

    from gradattn.attention import backfill, run_attention
    from gradattn.report import load_trained_model, test_split_loader, tested_precision
    from gradattn.train import TrainConfig, run_experiment

    monkeypatch.delenv("GRADATTN_OUTPUTS", raising=False)
    cfg = TrainConfig(dataset="fashionmnist", model="gradattn_lpe", protocol="corrected", sample=True, epochs=1,
                      max_train_samples=128, gradflow_batches=0, out_dir=str(tmp_path), progress=False,
                      device="cpu", precision="bf16")
    run_experiment(cfg)
    original = json.loads((cfg.run_dir / "attention.json").read_text())
    assert tested_precision(cfg.run_dir) == "bf16"

    (cfg.run_dir / "attention.json").unlink()
    assert len(backfill(tmp_path, device="cpu", log=lambda message: None)) == 1
    assert json.loads((cfg.run_dir / "attention.json").read_text()) == original
    model, _ = load_trained_model(cfg.run_dir)
    info, loader = test_split_loader(cfg, "cpu")
    in_fp32 = run_attention(model, loader, info, "cpu", "fp32")
    assert in_fp32["by_layer"] != original["by_layer"]     # so the match above is the precision's doing

    history = pd.read_csv(cfg.run_dir / "history.csv").drop(columns="precision")
    history.to_csv(cfg.run_dir / "history.csv", index=False)        # a run from before epochs recorded it
    assert tested_precision(cfg.run_dir) == "fp32"                  # the CPU's policy then

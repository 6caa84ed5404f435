"""gradattn.gates: telling a collapsed SE/CBAM gate (constant 0.5) from a working one."""
import pytest
import torch

from gradattn.cli import USAGE_ERROR, main
from gradattn.gates import format_gate_report, gate_modules, gate_report
from gradattn.models import build_model


def batches(n=2, batch_size=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch_size, 1, 32, 32, generator=generator), torch.zeros(batch_size, dtype=torch.long))
            for _ in range(n)]


def seeded_model(name):
    torch.manual_seed(0)
    return build_model(name, num_classes=3, in_chans=1)


def test_every_gate_of_se_and_cbam_resnet18_is_found():
    se = gate_modules(seeded_model("se_resnet18"))
    assert [kind for _, kind, _ in se] == ["se"] * 8
    assert se[0][0] == "layer1.0.attention.fc"
    cbam = gate_modules(seeded_model("cbam_resnet18"))
    assert sorted({kind for _, kind, _ in cbam}) == ["cbam_channel", "cbam_spatial"] and len(cbam) == 16


def test_a_gate_with_zero_weights_is_constant_at_one_half_and_a_scaled_up_one_is_not():
    model = seeded_model("se_resnet18")
    with torch.no_grad():
        for weight in model.layer3[1].attention.fc.parameters():
            weight.zero_()
        for weight in model.layer1[0].attention.fc.parameters():
            weight.mul_(30.0)                # a gate that modulates, as training makes some
    model.train()
    rows = {row["name"]: row for row in gate_report(model, batches())}
    collapsed = rows["layer3.1.attention.fc"]
    assert collapsed["constant"] and collapsed["weight_absmax"] == 0.0 and collapsed["factor_absmax"] == [0.0, 0.0]
    assert collapsed["out_min"] == collapsed["out_max"] == 0.5 and collapsed["stage"] == "layer3"
    working = rows["layer1.0.attention.fc"]
    assert not working["constant"] and working["out_spread"] > 0.01
    # at PyTorch's default init a gate is nearly flat as well, but its weights are far from zero
    untouched = [row for name, row in rows.items() if name not in ("layer3.1.attention.fc", "layer1.0.attention.fc")]
    assert all(0 < row["out_spread"] for row in untouched) and min(row["weight_absmax"] for row in untouched) > 0.01
    assert model.training                       # the mode it came in with is restored
    assert not any(module._forward_hooks for module in model.modules())   # and no hook is left behind
    report = format_gate_report(list(rows.values()))
    assert f"{sum(row['constant'] for row in rows.values())} of 8 gates constant" in report
    assert "layer3.1.attention.fc" in report


def test_one_shrunk_factor_silences_a_gate_and_factor_absmax_says_which():
    model = seeded_model("cbam_resnet18")
    mlp = model.layer4[1].attention.channel.mlp
    with torch.no_grad():
        mlp[0].weight.mul_(1e-6)             # the input-side 1x1 conv shrunk, the output side left as it was
    rows = {row["name"]: row for row in gate_report(model, batches(), num_batches=1)}
    gate = rows["layer4.1.attention.channel"]
    first, second = gate["factor_absmax"]
    assert gate["constant"] and first < 1e-5 and second == gate["weight_absmax"] > 1e-2
    assert first == float(mlp[0].weight.detach().abs().max())
    assert len(rows["layer4.1.attention.spatial"]["factor_absmax"]) == 1      # one 7x7 conv
    assert f"{first:.1e} / {second:.1e}" in format_gate_report(list(rows.values()))


def test_dead_hidden_units_make_a_cbam_channel_gate_constant():
    model = seeded_model("cbam_resnet18")
    with torch.no_grad():
        first = model.layer2[0].attention.channel.mlp[0].weight
        first.copy_(-first.abs())            # every hidden unit negative on non-negative pooled inputs ...
    model.layer2[0].attention.channel.register_forward_pre_hook(lambda module, args: (args[0].abs(),))
    rows = {row["name"]: row for row in gate_report(model, batches(), num_batches=1)}
    gate = rows["layer2.0.attention.channel"]
    assert gate["constant"] and gate["out_min"] == gate["out_max"] == 0.5 and gate["weight_absmax"] > 0.0


def test_models_without_gates_and_empty_loaders_are_refused():
    with pytest.raises(ValueError, match="no SE or CBAM gates"):
        gate_report(seeded_model("resnet18"), batches())
    with pytest.raises(ValueError, match="no batch"):
        gate_report(seeded_model("se_resnet18"), [])
    with pytest.raises(ValueError, match="num_batches"):
        gate_report(seeded_model("se_resnet18"), batches(), num_batches=0)


def test_cli_names_a_folder_without_checkpoint(tmp_path, capsys):
    assert main(["gates", str(tmp_path)]) == USAGE_ERROR
    err = capsys.readouterr().err
    assert "no checkpoint.pt" in err and str(tmp_path) in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, named", [([], "not both or neither"), (["RUN", "--out", "."], "not both or neither"),
                                         (["--out", "no-such-folder"], "no such folder"),
                                         (["RUN", "--batches", "0"], "--batches 0"),
                                         (["RUN", "--force"], "--force: only --out")])
def test_cli_refuses_bad_arguments_in_one_line(argv, named, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["gates", *argv]) == USAGE_ERROR
    err = capsys.readouterr().err
    assert named in err and len(err.strip().splitlines()) == 1


def test_a_finished_se_run_keeps_its_gate_report_which_export_commits_and_backfill_rebuilds(tmp_path, capsys,
                                                                                             monkeypatch):
    import json

    from gradattn.findings import gates_records, gates_table
    from gradattn.results import export_results
    from gradattn.train import TrainConfig, run_experiment

    monkeypatch.delenv("GRADATTN_OUTPUTS", raising=False)
    cfg = TrainConfig(dataset="fashionmnist", model="se_resnet18", protocol="corrected", sample=True, epochs=1,
                      max_train_samples=128, gradflow_batches=0, out_dir=str(tmp_path / "outputs"),
                      progress=False, device="cpu")
    run_experiment(cfg)
    record = json.loads((cfg.run_dir / "gates.json").read_text())
    assert record["num_batches"] == 4 and record["constant_spread"] == 1e-3
    assert [g["name"] for g in record["gates"]][0] == "layer1.0.attention.fc" and len(record["gates"]) == 8

    exported = export_results(tmp_path / "outputs", tmp_path / "results")
    assert [p.name for p in exported["gates"]] == ["fashionmnist__se_resnet18-e1-n128-sample__corrected__seed0.json"]
    assert json.loads(exported["gates"][0].read_text()) == record

    (cfg.run_dir / "gates.json").unlink()           # a run from before gates.json existed
    assert main(["gates", "--out", str(tmp_path / "outputs")]) == 0
    assert "1 gate reports written" in capsys.readouterr().out
    rebuilt = json.loads((cfg.run_dir / "gates.json").read_text())
    assert [(g["name"], g["constant"]) for g in rebuilt["gates"]] == [(g["name"], g["constant"]) for g in record["gates"]]
    assert main(["gates", "--out", str(tmp_path / "outputs")]) == 0
    assert "0 gate reports written" in capsys.readouterr().out      # nothing left to do

    import pandas as pd
    df = pd.DataFrame([dict(run_key=cfg.run_key, dataset="fashionmnist", data="fashionmnist", model="se_resnet18",
                            setting="e1-n128-sample", protocol="corrected", seed=0)])
    (cfg.run_dir / "gates.json").unlink()           # a fresh checkout: the committed copy is read
    row = gates_table(gates_records(df, root=tmp_path)).iloc[0]
    constant = [g for g in record["gates"] if g["constant"]]
    assert (row["runs"], row["gates per run"], row["constant per run"]) == (1, 8, str(len(constant)))
    assert all(f"{g['name'].replace('attention.', '')} 1/1" in row["constant gates"] for g in constant)
    smallest = [min(g["factor_absmax"]) for g in constant]
    assert row["smallest factor"] == (f"{min(smallest):.0e} to {max(smallest):.0e}" if constant else "")
    # a gates.json from before factor_absmax existed says so instead of guessing
    older = {**record, "gates": [{k: v for k, v in g.items() if k != "factor_absmax"} for g in record["gates"]]}
    older_row = gates_table([(df.iloc[0].to_dict(), older)]).iloc[0]
    assert older_row["smallest factor"] == ("not recorded" if constant else "")

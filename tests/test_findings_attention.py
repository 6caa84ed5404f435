"""05_results' attention section: summaries found per run (this machine first, then the committed copy),
averaged over seeds per group and encoder layer, and one map per group."""
import json

import numpy as np
import pandas as pd
import pytest

from gradattn.attention import summarize_attention
from gradattn.findings import attention_maps_by_group, attention_received_table, attention_records


def summary(key_tap):
    maps = np.zeros((2, 2, 1, 5, 5))
    maps[..., key_tap] = 1.0                  # every query of every layer reads one tap
    return summarize_attention(maps, np.array([1, 1]))


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("GRADATTN_OUTPUTS", raising=False)
    rows = [dict(run_key=f"fashionmnist/gradattn_lpe-e8/{p}/seed{s}", dataset="fashionmnist", data="fashionmnist",
                 model="gradattn_lpe", setting="e8", protocol=p, seed=s) for p in ("paper", "corrected") for s in (0, 1)]
    rows.append(dict(run_key="fashionmnist/resnet18-e8/paper/seed0", dataset="fashionmnist", data="fashionmnist",
                     model="resnet18", setting="e8", protocol="paper", seed=0))
    committed = tmp_path / "results" / "attention"
    write(committed / "fashionmnist__gradattn_lpe-e8__paper__seed0.json", summary(0))
    write(committed / "fashionmnist__gradattn_lpe-e8__paper__seed1.json", summary(4))
    write(committed / "fashionmnist__gradattn_lpe-e8__corrected__seed0.json", summary(1))
    # this machine's copy wins over the committed one for the same run
    write(committed / "fashionmnist__gradattn_lpe-e8__corrected__seed1.json", summary(3))
    write(tmp_path / "outputs/runs/fashionmnist/gradattn_lpe-e8/corrected/seed1/attention.json", summary(1))
    return tmp_path, pd.DataFrame(rows)


def test_records_prefer_this_machine_and_skip_runs_without_attention(project):
    root, df = project
    records = attention_records(df, root=root)
    assert [m["run_key"].split("/")[-2:] for m, _ in records] == [
        ["paper", "seed0"], ["paper", "seed1"], ["corrected", "seed0"], ["corrected", "seed1"]]
    assert records[-1][1]["received"][0][1] == 1.0           # outputs/ copy (tap layer1), not the committed one


def test_received_shares_are_averaged_over_seeds_per_layer(project):
    root, df = project
    table = attention_received_table(attention_records(df, root=root)).set_index(["protocol", "layer"])
    assert table.loc[("paper", 0), "stem"] == pytest.approx(0.5) and table.loc[("paper", 1), "layer4"] == 0.5
    assert table.loc[("corrected", 0), "layer1"] == 1.0 and table.loc[("corrected", 0), "seeds"] == 2
    assert attention_received_table([]).empty


def test_one_map_per_group_averaged_over_layers_and_seeds(project):
    root, df = project
    labels, maps, seeds = attention_maps_by_group(attention_records(df, root=root))["fashionmnist"]
    assert labels == ["gradattn_lpe-e8 · corrected", "gradattn_lpe-e8 · paper"] and seeds == [2, 2]
    assert maps.shape == (2, 5, 5)
    np.testing.assert_allclose(maps[1][:, 0], 0.5) and np.testing.assert_allclose(maps[1][:, 4], 0.5)
    np.testing.assert_allclose(maps.sum(-1), 1.0)

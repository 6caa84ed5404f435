"""The gradient-flow table of `findings gradflow` and 05_results: per group, how many runs had each stage
dead, without gradient, or with a vanishing one; this machine's gradflow.json first, else the committed summary."""
import json

import pandas as pd
import pytest

from gradattn.findings import gradflow_records, gradflow_table


def full_record(dead: bool, faithful=0.9143, corrected=1.0):
    vanishing = [{"name": f"layer4.0.conv{i}", "mean_norm": 0.0, "severity": "high"} for i in (1, 2)] if dead else []
    return {"faithful_health_score": faithful, "corrected_health_score": corrected,
            "dead_layer_names": ["layer4.1"] if dead else [],
            "corrected": {"vanishing": vanishing, "exploding": [], "never_fired": [], "layers": []}}


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("GRADATTN_OUTPUTS", raising=False)
    rows = [dict(run_key=f"cifar10/gradattn_rope/corrected/seed{s}", dataset="cifar10", data="cifar10",
                 model="gradattn_rope", setting="", protocol="corrected", seed=s) for s in (0, 1, 2)]
    rows.append(dict(run_key="cifar10/resnet18/corrected/seed0", dataset="cifar10", data="cifar10",
                     model="resnet18", setting="", protocol="corrected", seed=0))
    local = tmp_path / "outputs" / "runs" / "cifar10" / "gradattn_rope" / "corrected"
    write(local / "seed0" / "gradflow.json", full_record(dead=True, corrected=0.875))
    write(local / "seed1" / "gradflow.json", full_record(dead=False))
    committed = tmp_path / "results" / "gradflow"
    write(committed / "cifar10__gradattn_rope__corrected__seed2.json",
          {"faithful_health_score": 0.9268, "corrected_health_score": 0.95, "dead_layer_names": [],
           "vanishing": [{"name": "layer3.1.conv2", "stage": "layer3", "mean_norm": 1e-9, "severity": "high"}]})
    return tmp_path, pd.DataFrame(rows)


def test_records_summarise_this_machines_files_and_read_committed_summaries(project):
    root, df = project
    records = gradflow_records(df, root=root)
    assert [m["seed"] for m, _ in records] == [0, 1, 2]               # resnet18 has no record: left out
    assert records[0][1]["vanishing"][0]["stage"] == "layer4"          # summarised from the full record
    assert "corrected" not in records[0][1]


def test_table_counts_dead_zero_and_vanishing_stages_over_the_groups_runs(project):
    root, df = project
    row = gradflow_table(gradflow_records(df, root=root)).iloc[0]
    assert (row["model"], row["runs"]) == ("gradattn_rope", 3)
    assert row["dead stages"] == "layer4.1 1/3"
    assert row["zero-gradient stages"] == "layer4 1/3"                  # layer3's 1e-9 vanishes but is not zero
    assert row["vanishing stages"] == "layer3 1/3, layer4 1/3"
    assert row["health corrected %"] == pytest.approx(100 * (0.875 + 1.0 + 0.95) / 3, abs=0.05)
    assert gradflow_table([]).empty

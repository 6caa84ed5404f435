"""`python -m gradattn findings`: the findings tables as text or CSV, from a tiny frame of runs."""
import io

import pandas as pd
import pytest

from gradattn import cli, findings
from gradattn.findings_text import TABLES, build_table, render
from gradattn.results import run_setting

TOP1 = {"resnet18": [64.0, 65.0, 63.5], "gradattn_lpe": [75.0, 76.5, 74.2], "plain18": [60.0, 61.0, 62.0]}


def runs(tags=("",)):
    rows = [("fashionmnist", model, model + (f"-{tag}" if tag else ""), protocol, seed, acc + (2.0 if tag else 0.0),
             1.0, 1.0, 0, False)
            for tag in tags for protocol in ("paper", "corrected") for model, values in TOP1.items()
            for seed, acc in enumerate(values)]
    df = pd.DataFrame(rows, columns=["dataset", "model", "model_tag", "protocol", "seed", "top1",
                                     "health_score_faithful", "health_score_corrected", "num_dead_layers",
                                     "is_sample"])
    df["setting"] = [run_setting(m, t) for m, t in zip(df["model"], df["model_tag"])]
    df["run_key"] = [f"test-only/{t}/{p}/seed{s}" for t, p, s in zip(df["model_tag"], df["protocol"], df["seed"])]
    return df


def test_every_table_builds_from_the_findings_functions():
    df = runs()
    for name in TABLES:
        assert isinstance(build_table(df, name), pd.DataFrame), name
    paired = build_table(df, "paired").set_index(["protocol", "model"])
    assert paired.loc[("paper", "gradattn_lpe"), "mean"] == pytest.approx(11.0667, abs=1e-3)
    assert paired.loc[("paper", "gradattn_lpe"), "paper gain"] == pytest.approx(11.07)
    assert "run" not in build_table(df, "beside-paper")          # plotting helpers stay out of the text table
    with pytest.raises(ValueError, match="unknown findings table 'nope'"):
        build_table(df, "nope")


def test_text_names_the_papers_own_settings_and_keeps_other_settings_apart():
    text = render(runs(tags=("", "e8")), ["beside-paper"])
    assert text.startswith("== beside-paper: ")
    lines = [line.split() for line in text.splitlines() if "gradattn_lpe" in line and "paper" in line.split()[3:5]]
    settings = sorted(line[2] for line in lines)
    assert settings == ["e8", "paper's"]
    assert "75.23 ± " in text and "77.23 ± " in text             # LPE's means at the two settings


def test_verdicts_print_one_block_per_claim_and_empty_tables_say_so():
    df = runs()
    text = render(df, ["verdicts", "jpeg"])
    verdicts = findings.claim_verdicts(df, "paper")
    assert text.count("\n[") == len(verdicts)
    assert "[reproduced] best gain +11.07" in text
    assert "== jpeg: " in text and "(no runs for this table yet)" in text


def test_coverage_shows_both_matrices_and_csv_keeps_full_precision():
    df = runs()
    text = render(df, ["coverage"])
    assert "seeds run, best-covered setting:" in text and "seeds run at the paper's own settings:" in text
    assert "fashionmnist · paper · imagenet stem" in text
    csv = render(df, ["paired", "coverage"], fmt="csv")
    blocks = csv.split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == ["# paired", "# coverage"]
    paired = pd.read_csv(io.StringIO(blocks[0].split("\n", 1)[1]))
    assert paired.set_index(["protocol", "model"]).loc[("paper", "gradattn_lpe"), "mean"] == \
        pytest.approx(33.2 / 3)
    with pytest.raises(ValueError, match="unknown format"):
        render(df, ["paired"], fmt="html")


def test_cli_prints_the_chosen_tables_for_the_chosen_datasets(monkeypatch, capsys):
    other = runs().assign(dataset="cifar10", top1=lambda d: d["top1"] / 5)
    monkeypatch.setattr(findings, "collect_results", lambda profile: pd.concat([runs(), other], ignore_index=True))
    assert cli.main(["findings", "paired", "--datasets", "cifar10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("== paired: ") and "cifar10" in out and "fashionmnist" not in out
    assert cli.main(["findings", "paired", "--datasets", "svhn"]) == cli.USAGE_ERROR
    assert "no paper-profile runs of svhn" in capsys.readouterr().err
    assert cli.main(["findings", "verdicts", "nope"]) == cli.USAGE_ERROR
    assert "unknown findings table 'nope'" in capsys.readouterr().err
    assert cli.main(["findings"]) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("== ")] == \
        ["== verdicts", "== beside-paper", "== paired"]


def test_budget_compares_each_configuration_at_the_papers_budget_with_its_reduced_one():
    table = build_table(runs(tags=("", "e8")), "budget").set_index(["protocol", "model"])
    assert len(table) == 2 * len(TOP1)                       # both protocols, every model
    row = table.loc[("paper", "gradattn_lpe")]
    assert (row["setting"], row["reduced budget"], row["n"], row["n reduced"]) == ("", "e8", 3, 3)
    assert row["gain"] == pytest.approx(-2.0)                 # runs() puts the e8 runs 2 points higher
    assert row["ci_low"] + row["ci_high"] == pytest.approx(-4.0, abs=0.02)   # Welch interval around the gain
    assert row["ci_low"] < -2.0 < row["ci_high"] and not row["excludes_zero"]  # 3 seeds' spread covers 2 points
    assert build_table(runs(), "budget").empty               # no reduced runs: nothing to compare

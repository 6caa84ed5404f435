"""findings.stem_table: the small-image stem minus the paper's stem, per configuration, paired by seed."""
import math

import pandas as pd
import pytest

from gradattn import findings
from gradattn.findings_text import render
from gradattn.results import run_setting

PAPER_STEM = {"resnet18": [88.0, 88.5, 87.5], "gradattn_lpe": [87.5, 88.0, 87.0]}
SMALL_STEM_GAIN = {"resnet18": [3.0, 3.2, 2.8], "gradattn_lpe": [5.0, 5.5, 4.5]}


def runs(settings):
    """Rows of (model, setting, seeds) as results.csv would hold them; cifarstem rows gain SMALL_STEM_GAIN."""
    rows = []
    for model, setting, seeds in settings:
        for seed in seeds:
            top1 = PAPER_STEM[model][seed] + (SMALL_STEM_GAIN[model][seed] if "cifarstem" in setting else 0.0)
            tag = model + (f"-{setting}" if setting else "")
            rows.append({"dataset": "fashionmnist", "model": model, "model_tag": tag, "protocol": "corrected",
                         "seed": seed, "top1": top1, "variant": None,
                         "stem": "cifar" if "cifarstem" in setting else "imagenet"})
    df = pd.DataFrame(rows)
    df["setting"] = [run_setting(m, t) for m, t in zip(df["model"], df["model_tag"])]
    return df


def test_each_configuration_pairs_the_two_stems_by_seed_at_the_same_budget():
    df = runs([(m, st, range(3)) for m in PAPER_STEM for st in ("e8", "cifarstem-e8")])
    table = findings.stem_table(df).set_index("model")
    assert sorted(table.index) == ["gradattn_lpe", "resnet18"]
    lpe = table.loc["gradattn_lpe"]
    assert (lpe["setting"], lpe["n"], lpe["n paper stem"], lpe["n small stem"]) == ("e8", 3, 3, 3)
    assert lpe["gain"] == pytest.approx(5.0)
    assert lpe["paper stem top-1"] == pytest.approx(87.5) and lpe["small stem top-1"] == pytest.approx(92.5)
    # paired: the seeds' gains 5.0, 5.5, 4.5 (std 0.5), not the spread of either side
    assert lpe["ci_high"] - lpe["gain"] == pytest.approx(4.303 * 0.5 / math.sqrt(3), abs=0.01)
    assert bool(lpe["excludes_zero"])
    assert lpe["per seed"] == "s0 +5.00, s1 +5.50, s2 +4.50"


def test_budgets_stay_apart_and_one_pair_has_no_interval():
    df = runs([("resnet18", "", [0, 1]), ("resnet18", "cifarstem", [1]),       # the paper's budget
               ("resnet18", "e8", [0, 1, 2]), ("resnet18", "cifarstem-e8", [2])])
    table = findings.stem_table(df).set_index("setting")
    assert sorted(table.index) == ["", "e8"]
    assert table.loc["", "gain"] == pytest.approx(3.2) and table.loc["", "n"] == 1   # seed 1 only
    assert table.loc["e8", "gain"] == pytest.approx(2.8) and table.loc["e8", "n"] == 1
    assert table.loc["e8", "per seed"] == "s2 +2.80"
    assert math.isnan(table.loc["e8", "ci_low"]) and not table.loc["e8", "excludes_zero"]


def test_no_row_without_both_stems_on_a_common_seed_and_variants_stay_out():
    assert findings.stem_table(runs([("resnet18", "e8", range(3))])).empty            # paper stem only
    assert findings.stem_table(runs([("resnet18", "e8", [0]), ("resnet18", "cifarstem-e8", [1])])).empty
    df = runs([("resnet18", "e8", [0]), ("resnet18", "cifarstem-e8", [0])])
    df.loc[df["stem"] == "cifar", "variant"] = "jpeg4000"                              # other training data
    assert findings.stem_table(df).empty
    assert findings.stem_table(pd.DataFrame()).empty


def test_findings_cli_prints_the_stem_table():
    text = render(runs([("resnet18", "e8", [0, 1]), ("resnet18", "cifarstem-e8", [0, 1])]), ["stem"])
    assert text.startswith("== stem: what the small-image stem changes")
    row = [line.split() for line in text.splitlines() if "resnet18" in line]
    assert len(row) == 1 and {"88.25", "91.35", "3.1"} <= set(row[0])      # gain: the mean of +3.0 and +3.2
    assert "(no runs for this table yet)" in render(runs([("resnet18", "e8", [0])]), ["stem"])

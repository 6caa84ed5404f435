"""05_results' verdict per claim: accuracy claims need the paper's protocol and matched seeds."""
import pandas as pd
import pytest

from gradattn.report import claim_verdicts


def runs(rows):
    cols = ["dataset", "model", "protocol", "seed", "top1", "health_score_faithful", "health_score_corrected",
            "num_dead_layers", "is_sample"]
    return pd.DataFrame(rows, columns=cols)


def verdicts(df, profile="paper"):
    return dict(zip(*claim_verdicts(df, profile)[["claim", "verdict"]].T.values))


def fmnist(protocol, resnet, lpe, seeds=(0, 1, 2)):
    rows = []
    for seed, (a, b) in zip(seeds, zip(resnet, lpe)):
        rows.append(("fashionmnist", "resnet18", protocol, seed, a, 1.0, 1.0, 0, False))
        rows.append(("fashionmnist", "gradattn_lpe", protocol, seed, b, 32 / 35, 1.0, 0, False))
    return rows


def test_quick_profile_never_judges_accuracy_claims():
    v = verdicts(runs(fmnist("paper", [64, 65, 63], [75, 76, 74])), profile="quick")
    assert v["wins_5_of_8"] == v["fmnist_plus_11_07"] == v["pe_dataset_dependent"] == "not tested here"


def test_fashionmnist_claim_needs_paper_protocol_runs_with_seeds():
    only_corrected = runs(fmnist("corrected", [92.1], [92.4], seeds=(0,)))
    assert verdicts(only_corrected)["fmnist_plus_11_07"] == "not tested here"
    one_seed = runs(fmnist("paper", [64.1], [75.2], seeds=(0,)))
    assert verdicts(one_seed)["fmnist_plus_11_07"] == "not tested here"


@pytest.mark.parametrize("lpe, expected", [([75.0, 76.5, 74.2], "reproduced"), ([65.0, 66.1, 64.0], "not reproduced")])
def test_fashionmnist_claim_is_judged_by_the_paired_interval(lpe, expected):
    assert verdicts(runs(fmnist("paper", [64.0, 65.0, 63.5], lpe)))["fmnist_plus_11_07"] == expected


def test_health_gap_that_vanishes_with_the_right_denominator_is_not_reproduced():
    v = verdicts(runs(fmnist("corrected", [92.1], [92.4], seeds=(0,))))
    assert v["controlled_instabilities"] == "not reproduced"
    assert v["wins_5_of_8"] == "not tested here"          # one dataset of eight

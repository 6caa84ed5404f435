import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from gradattn.stats import mean_ci, paired_difference, paired_vs_baseline, sampling_se, summarize, t_critical


@pytest.mark.parametrize("df", range(1, 31))
def test_t_critical_matches_scipy(df):
    assert t_critical(df) == pytest.approx(sps.t.ppf(0.975, df), abs=1e-6)


def test_mean_ci_matches_scipy_interval():
    x = [91.2, 92.5, 90.8, 93.1]
    out = mean_ci(x)
    low, high = sps.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
    assert out["n"] == 4 and out["std"] == pytest.approx(np.std(x, ddof=1))
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((low, high))


def test_mean_ci_single_value_has_no_interval_and_empty_is_an_error():
    out = mean_ci([70.0])
    assert out["mean"] == 70.0 and math.isnan(out["ci_low"])
    with pytest.raises(ValueError, match="at least one"):
        mean_ci([])


def test_paired_difference_matches_on_seed_and_uses_paired_t():
    diff = paired_difference([80, 82, 81], [78, 79, 80], seeds=[0, 1, 2], baseline_seeds=[2, 1, 0])
    # seed-matched differences: 80-80, 82-79, 81-78
    expected = sps.ttest_rel([80, 82, 81], [80, 79, 78]).confidence_interval(0.95)
    assert diff["mean"] == pytest.approx(2.0)
    assert (diff["ci_low"], diff["ci_high"]) == pytest.approx((expected.low, expected.high))
    assert diff["excludes_zero"] is False
    assert [seed for seed, _ in diff["per_seed"]] == [0, 1, 2]
    assert [d for _, d in diff["per_seed"]] == pytest.approx([0.0, 3.0, 3.0])
    clear = paired_difference([90.0, 90.1, 90.2], [80.0, 80.05, 80.1])
    assert clear["excludes_zero"] is True
    assert [seed for seed, _ in clear["per_seed"]] == [None, None, None]


def test_per_seed_text_signs_each_difference_and_names_its_seed():
    from gradattn.stats import per_seed_text
    partial = paired_difference([71.55, 63.2], [68.27, 69.63, 70.0], seeds=[1, 0], baseline_seeds=[0, 1, 2])
    assert per_seed_text(partial["per_seed"]) == "s0 -5.07, s1 +1.92"      # seed 2 has no partner: left out
    assert per_seed_text(paired_difference([1.0], [1.5])["per_seed"]) == "-0.50"


def test_sampling_se_reproduces_spec_7_8():
    assert sampling_se(95.97, 3421) == pytest.approx(0.34, abs=0.005)
    assert sampling_se(55.49, 346) == pytest.approx(2.7, abs=0.05)


def test_summarize_and_paired_vs_baseline_on_a_tidy_frame():
    df = pd.DataFrame({
        "dataset": ["f"] * 6, "protocol": ["corrected"] * 6,
        "model": ["resnet18"] * 3 + ["gradattn_lpe"] * 3, "seed": [0, 1, 2] * 2,
        "top1": [90.0, 91.0, 92.0, 91.0, 92.5, 93.0],
    })
    summary = summarize(df).set_index("model")
    assert summary.loc["resnet18", "mean"] == pytest.approx(91.0)
    assert summary.loc["gradattn_lpe", "n"] == 3
    paired = paired_vs_baseline(df)
    assert list(paired["model"]) == ["gradattn_lpe"]
    assert paired.loc[0, "mean"] == pytest.approx(np.mean([1.0, 1.5, 1.0]))
    assert paired.loc[0, "per seed"] == "s0 +1.00, s1 +1.50, s2 +1.00"


def test_welch_difference_matches_scipy_with_its_degrees_of_freedom_rounded_down():
    from gradattn.stats import welch_difference
    a, b = [25.0, 25.6, 26.5], [12.0, 13.9, 13.1, 12.2]
    out = welch_difference(a, b)
    result = sps.ttest_ind(a, b, equal_var=False)
    se = (np.var(a, ddof=1) / 3 + np.var(b, ddof=1) / 4) ** 0.5
    assert out["mean"] == pytest.approx(np.mean(a) - np.mean(b))
    assert out["mean"] / se == pytest.approx(result.statistic)
    assert out["df"] == math.floor(result.df)
    assert out["half_width"] == pytest.approx(sps.t.ppf(0.975, out["df"]) * se, rel=1e-5)
    assert out["excludes_zero"] and (out["n"], out["n_baseline"]) == (3, 4)
    with pytest.raises(ValueError, match="2 values a side, got 3 and 1"):
        welch_difference(a, [12.0])

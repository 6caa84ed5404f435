"""Seed statistics: mean, standard deviation and 95 % Student-t confidence intervals, plain and paired.

The paper ran one seed per configuration (SPEC 7.8); these helpers are what turns our several seeds into
statements with error bars. Pure Python/numpy so they run anywhere; pandas only in `summarize`.
"""
from __future__ import annotations

import math

import numpy as np

# Two-sided 95 % Student-t critical values t_{0.975, df} for df = 1..30 (mathematical constants).
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
         2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
         2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)


def t_critical(df: int) -> float:
    """t_{0.975, df}; beyond df=30 the normal 1.96 is within 2 % and is used."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return _T975[df - 1] if df <= len(_T975) else 1.959964


def _finite(values) -> np.ndarray:
    """The values that are numbers: a run without a result (None, NaN) is left out, not counted as zero."""
    return np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)


def mean_ci(values, confidence_level: float = 0.95) -> dict:
    """n, mean, sample std and the 95 % t-interval of the mean. With one value the interval is undefined (NaN)."""
    if confidence_level != 0.95:
        raise ValueError("only 95 % intervals are supported")
    x = _finite(values)
    n = int(x.size)
    if n == 0:
        raise ValueError("mean_ci needs at least one finite value")
    mean = float(x.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "std": math.nan, "ci_low": math.nan, "ci_high": math.nan, "half_width": math.nan}
    std = float(x.std(ddof=1))
    half = t_critical(n - 1) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "half_width": half}


def paired_difference(values, baseline, seeds=None, baseline_seeds=None) -> dict:
    """Mean of (values - baseline) over matched seeds, with its 95 % t-interval.

    Pairing by seed removes the variance the two models share (same split, same data order), which is the
    fair way to ask whether a model beats the baseline. When seeds are given, only seeds present in both are used.
    "per_seed" holds each (seed, difference), by seed; the seed is None where no seeds were given.
    """
    if seeds is not None or baseline_seeds is not None:
        if seeds is None or baseline_seeds is None:
            raise ValueError("give seeds for both sides, or for neither")
        base = dict(zip(baseline_seeds, baseline))
        keyed = sorted((s, v, base[s]) for s, v in zip(seeds, values) if s in base)
    else:
        if len(values) != len(baseline):
            raise ValueError(f"paired values need equal lengths, got {len(values)} and {len(baseline)}")
        keyed = [(None, v, b) for v, b in zip(values, baseline)]
    if not keyed:
        raise ValueError("no matched seeds between the two sides")
    out = mean_ci([a - b for _, a, b in keyed])
    out["excludes_zero"] = bool(out["n"] > 1 and (out["ci_low"] > 0 or out["ci_high"] < 0))
    out["per_seed"] = tuple((seed, float(a - b)) for seed, a, b in keyed)
    return out


def per_seed_text(per_seed) -> str:
    """The differences behind a paired mean, one per seed, as a table cell: "s0 -5.07, s1 +1.92". With two or
    three seeds the 95 % interval is wide, and the single differences say whether one seed carries the mean."""
    return ", ".join(("" if seed is None else f"s{seed} ") + f"{diff:+.2f}" for seed, diff in per_seed)


def welch_difference(values, baseline) -> dict:
    """Mean of `values` minus mean of `baseline` for two independent groups of runs (different budgets, say,
    where seeds do not pair), with Welch's 95 % t-interval; its degrees of freedom (Welch-Satterthwaite) are
    rounded down, which widens the interval slightly. Needs two values a side."""
    a, b = _finite(values), _finite(baseline)
    if a.size < 2 or b.size < 2:
        raise ValueError(f"Welch's interval needs 2 values a side, got {a.size} and {b.size}")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    mean, se = float(a.mean() - b.mean()), math.sqrt(va + vb)
    if se == 0:
        df, half = a.size + b.size - 2, 0.0
    else:
        df = int((va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1)))
        half = t_critical(max(df, 1)) * se
    return {"n": int(a.size), "n_baseline": int(b.size), "mean": mean, "df": df, "ci_low": mean - half,
            "ci_high": mean + half, "half_width": half, "excludes_zero": bool(mean - half > 0 or mean + half < 0)}


def sampling_se(accuracy_percent: float, n_test: int) -> float:
    """Binomial standard error (in points) of one test accuracy measured on n_test images (SPEC 7.8)."""
    p = accuracy_percent / 100.0
    return 100.0 * math.sqrt(p * (1 - p) / n_test)


def summarize(df, by=("dataset", "model", "protocol"), value: str = "top1"):
    """Group a tidy results DataFrame and give n, mean, std, ci_low, ci_high of `value` per group."""
    import pandas as pd

    by = [c for c in by if c in df.columns]
    rows = []
    for key, group in df.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), **mean_ci(group[value].tolist())})
    return pd.DataFrame(rows)


def paired_vs_baseline(df, baseline: str = "resnet18", by=("dataset", "protocol"), value: str = "top1"):
    """Paired difference (model - baseline) per group, matched on seed, for every non-baseline model, with the
    single differences behind each mean ("per seed", per_seed_text)."""
    import pandas as pd

    by = [c for c in by if c in df.columns]
    rows = []
    for key, group in df.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        base = group[group["model"] == baseline]
        if base.empty:
            continue
        for model, runs in group[group["model"] != baseline].groupby("model"):
            try:
                diff = paired_difference(runs[value].tolist(), base[value].tolist(),
                                         runs["seed"].tolist(), base["seed"].tolist())
            except ValueError:
                continue
            per_seed = per_seed_text(diff.pop("per_seed"))
            rows.append({**dict(zip(by, key)), "model": model, "baseline": baseline, **diff, "per seed": per_seed})
    return pd.DataFrame(rows)

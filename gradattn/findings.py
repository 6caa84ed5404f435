"""What the runs say: our accuracy beside the paper's, paired differences, the positional-encoding pairs,
coverage of the reproduction grid, the cost of the JPEG copy, attention per tap, and a verdict on each claim
of the abstract.

Each function takes a DataFrame of runs (:func:`collect_results`: this machine's outputs/results.csv and
the committed results/results.csv), so 05_results and scripts/update_readme.py show the same numbers and
tests feed tiny frames; only :func:`collect_results` and :func:`attention_records` read files. pandas is
imported lazily.
"""
from __future__ import annotations

import json
import re
from itertools import combinations
from pathlib import Path

from gradattn.paths import outputs_dir, project_root


def collect_results(profile: str, root: Path | None = None):
    """Our runs for a profile: outputs/results.csv (this machine) combined with the committed
    results/results.csv, each row labelled with its provenance; a run present in both is taken from
    outputs/. The quick profile keeps the embedded-sample rows, the paper profile the full-data ones."""
    import pandas as pd

    from gradattn.results import load_results, sample_mask
    root = Path(root) if root else project_root()
    frames = []
    for path, provenance in ((outputs_dir(root) / "results.csv", "this machine (outputs/results.csv)"),
                             (root / "results" / "results.csv", "committed (results/results.csv)")):
        if path.exists():
            df = load_results(path)
            df["provenance"] = provenance
            frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["run_key", "dataset", "model", "protocol", "seed", "top1", "provenance"])
    df = pd.concat(frames, ignore_index=True).drop_duplicates("run_key", keep="first")
    sample = sample_mask(df)
    return df[sample if profile == "quick" else ~sample].reset_index(drop=True)


RUN_GROUP = ("dataset", "data", "model", "setting", "protocol")
PAIR_GROUP = ("dataset", "data", "protocol", "setting")


def without_variants(df):
    """The runs on the dataset itself: a run on a variant (CIFAR-10's 4,000-image subsets) trains on other data."""
    return df[df["variant"].isna() | df["variant"].astype(str).eq("")] if "variant" in df else df


def label_subsets(table):
    """Show `data` (the dataset, marked "(train subset)" where the files were one) as the dataset."""
    if "data" in table:
        table = table.assign(dataset=table["data"].where(table["data"].notna(), table["dataset"]))
        table = table.drop(columns="data")
    return table


def results_beside_paper(df):
    """Per dataset x model x setting x protocol: our mean ± 95 % CI over seeds (n) and the seeds' std
    beside the paper's single run. `setting` (gradattn.results.run_setting) keeps e.g. 8-epoch and small-stem runs apart."""
    import pandas as pd

    from gradattn import stats
    if df.empty:
        return pd.DataFrame()
    by = [c for c in RUN_GROUP if c in df.columns]
    summary = stats.summarize(df, by=by, value="top1")
    if "setting" not in summary:
        summary["setting"] = ""
    summary["run"] = [m + (f"-{st}" if st else "") for m, st in zip(summary["model"], summary["setting"])]
    variant = df.groupby(by)["variant"].first() if "variant" in df else {}   # one per setting
    summary["paper top-1"] = [paper_reference(d, m, variant.get(tuple(row))) for d, m, row in zip(
        summary["dataset"], summary["model"], summary[by].itertuples(index=False))]
    if "provenance" in df:
        source = df.groupby(by)["provenance"].agg(lambda p: " + ".join(sorted({v.split(" (")[0] for v in p})))
        summary["runs from"] = [source.get(tuple(row), "") for row in summary[by].itertuples(index=False)]
    else:
        summary["runs from"] = ""
    summary["ours: mean ± 95 % CI"] = [
        f"{m:.2f}" + ("" if n < 2 else f" ± {h:.2f}") + f" (n={n})"
        for m, h, n in zip(summary["mean"], summary["half_width"], summary["n"])]
    summary["paper recovered"] = [recovered(*row) for row in zip(
        summary["protocol"], summary["paper top-1"], summary["ci_low"], summary["ci_high"], summary["n"])]
    summary = label_subsets(summary)
    summary["std"] = summary["std"].round(2)
    return summary[["dataset", "model", "setting", "protocol", "ours: mean ± 95 % CI", "std", "paper top-1",
                    "paper recovered", "runs from", "run", "mean", "half_width", "ci_low", "ci_high", "n"]]


def paper_reference(dataset: str, model: str, variant=None) -> float | None:
    """The paper's top-1 to set beside a run, or None: a run on a dataset variant (a non-empty string)
    trains on other data than the paper's, so its number is no reference."""
    from gradattn import paper
    return None if isinstance(variant, str) and variant else paper.paper_top1(dataset, model)


def recovered(protocol: str, published, ci_low, ci_high, n) -> str:
    """Whether the paper's number lies within our 95 % CI over seeds: the test of "the published numbers
    are recovered within seed noise". Only the paper protocol is expected to recover them."""
    import pandas as pd
    if protocol != "paper" or published is None or pd.isna(published):
        return ""
    if n < 2:
        return "one seed"
    return "yes" if ci_low <= published <= ci_high else ("no: ours higher" if ci_low > published else
                                                          "no: ours lower")


def paired_table(df, baseline: str = "resnet18", beside_paper: bool = False):
    """Paired difference (model − baseline, points) per dataset, protocol and setting, matched on seed.

    With `beside_paper`, paper-protocol rows also get the paper's own difference for the same pair ("paper
    gain", one run each, SPEC 4.2) and whether our paired 95 % CI holds it ("paper gain in our CI"): the
    per-dataset test of the wins behind "5 of 8" (Tiny ImageNet's +5.07, Fashion-MNIST's +11.07)."""
    from gradattn import stats
    if not len(df):
        return df.iloc[0:0]
    by = [c for c in PAIR_GROUP if c in df.columns]
    pairs = stats.paired_vs_baseline(df, baseline=baseline, by=by)
    if beside_paper and len(pairs):
        variant = df.groupby(by, dropna=False)["variant"].first() if "variant" in df else {}
        keys = list(pairs[by].itertuples(index=False, name=None))
        pairs["paper gain"] = [
            paper_gain(d, m, baseline) if p == "paper" and paper_reference(d, baseline, variant.get(k)) is not None
            else None for d, m, p, k in zip(pairs["dataset"], pairs["model"], pairs["protocol"], keys)]
        pairs["paper gain in our CI"] = [recovered(*row) for row in zip(
            pairs["protocol"], pairs["paper gain"], pairs["ci_low"], pairs["ci_high"], pairs["n"])]
    return label_subsets(pairs)


def paper_gain(dataset: str, model: str, baseline: str = "resnet18") -> float | None:
    """The paper's top-1 of `model` minus its `baseline`'s on `dataset` (points), or None if either is missing."""
    from gradattn import paper
    ours, base = paper.paper_top1(dataset, model), paper.paper_top1(dataset, baseline)
    return None if ours is None or base is None else round(ours - base, 2)


PE_MODELS = ("gradattn_nope", "gradattn_lpe", "gradattn_rope")      # the three encodings at d=256
PE_PAIRS = tuple((later, earlier) for earlier, later in combinations(PE_MODELS, 2))   # (model, baseline): LPE − No-PE, ...


def pe_pairs(df):
    """Paired differences (points, matched seeds) between the three positional encodings at equal capacity
    (d=256), each pair, per dataset, protocol and setting. The paper compared one seed each, with a 100x smaller
    No-PE (SPEC 6); this is the check of whether a ranking of encodings exceeds seed noise."""
    return model_pairs(df, PE_PAIRS)


ABLATION_STEPS = (    # (model, baseline, what the difference measures): plain18 -> +5 tapped tokens -> +attention
    ("resnet18", "plain18", "residual connections"),
    ("gradattn_mlp", "plain18", "five tapped tokens (MLP head) over global pooling"),
    ("gradattn_nope", "gradattn_mlp", "attention over the same five tokens"),
)


def ablation_pairs(df):
    """Paired differences along the ablation ladder of SPEC 7.6: what the residual connections add to the
    plain backbone, what GradAttn's five tapped tokens add to it (through an MLP), and what attention adds
    over that MLP (No-PE, d=256). The paper has no ablation; without one, a GradAttn gain cannot be told
    apart from the gain of tapping five stages at all."""
    import pandas as pd

    pairs = model_pairs(df, [(model, baseline) for model, baseline, _ in ABLATION_STEPS])
    if not len(pairs):
        return pairs
    adds = {(m, b): what for m, b, what in ABLATION_STEPS}
    column = [adds[(m, b)] for m, b in zip(pairs["model"], pairs["baseline"])]
    return pairs.assign(measures=pd.Series(column, index=pairs.index))


def plain18_pairs(df):
    """Each GradAttn variant (paper.GRADATTN_MODELS, and the gradattn_mlp ablation) minus plain18, paired by seed:
    GradAttn is plain18 (the same non-residual backbone) plus the five tapped tokens and a transformer over them,
    so this is what GradAttn's pathway adds where the residual connections are gone."""
    from gradattn import paper
    return model_pairs(df, [(model, "plain18") for model in (*paper.GRADATTN_MODELS, "gradattn_mlp")])


def model_pairs(df, pairs):
    """Paired differences (points, matched seeds) of each (model, baseline) in `pairs`, per dataset, protocol
    and setting; rows only where both models ran with at least one common seed."""
    import pandas as pd

    from gradattn import stats
    models = {m for pair in pairs for m in pair}
    runs = df[df["model"].isin(models)] if len(df) else df
    if not len(runs):
        return pd.DataFrame()
    by = [c for c in PAIR_GROUP if c in runs.columns]
    tables = [stats.paired_vs_baseline(runs[runs["model"].isin(pair)], baseline=pair[1], by=by) for pair in pairs]
    tables = [t for t in tables if len(t)]
    if not tables:
        return pd.DataFrame()
    table = pd.concat(tables, ignore_index=True).sort_values(by, kind="stable", ignore_index=True)
    return label_subsets(table)


def coverage_table(df, datasets=None, seeds_needed: int = 3):
    """How much of the reproduction grid (gradattn.profiles.reproduction_grid) the runs in `df` cover.

    One row per cell (dataset, protocol, stem, model): the seeds finished in each setting (e.g. "e8: 3",
    8-epoch runs), `seeds` in the best-covered setting and `missing`, what it still lacks to reach
    `seeds_needed`, and `paper settings`, the seeds run at the paper's own settings (its epoch budget; the
    stem is part of the cell), which is what the GPU sessions aim at.
    Runs on a dataset variant (CIFAR-10's 4,000-image subsets) train on other data and do not count."""
    import pandas as pd

    from gradattn.profiles import OFFLINE_DATASETS, reproduction_grid
    from gradattn.results import run_setting
    from gradattn.train import TrainConfig
    runs = without_variants(df)
    seeds: dict[tuple, dict[str, set]] = {}
    for r in runs.to_dict("records"):
        stem = r.get("stem") if isinstance(r.get("stem"), str) else "imagenet"   # older rows: the paper's
        cell = (r["dataset"], r["protocol"], stem, r["model"])
        setting = r["setting"] if "setting" in r else run_setting(r["model"], r["model_tag"])
        seeds.setdefault(cell, {}).setdefault(setting, set()).add(int(r["seed"]))
    rows = []
    for cell in reproduction_grid(datasets or OFFLINE_DATASETS):
        done = seeds.get(tuple(cell.values()), {})
        best = max((len(s) for s in done.values()), default=0)
        own_setting = run_setting(cell["model"], TrainConfig(**cell).model_tag)   # "" or e.g. "cifarstem"
        own = done.get(own_setting, set())
        rows.append({**cell, "seeds": best, "missing": max(0, seeds_needed - best), "paper settings": len(own),
                     "runs (setting: seeds)": "; ".join(f"{st or 'paper settings'}: {len(s)}"
                                                        for st, s in sorted(done.items()))})
    return pd.DataFrame(rows)


def coverage_matrix(coverage, seeds_needed: int = 3, column: str = "seeds"):
    """coverage_table as (dataset · protocol · stem) x models: "k/3" seeds per cell (`column`: "seeds", the
    best-covered setting, or "paper settings"), blank outside the grid."""
    rows = coverage["dataset"] + " · " + coverage["protocol"] + " · " + coverage["stem"] + " stem"
    cells = coverage.assign(cell_row=rows, cell=[f"{k}/{seeds_needed}" for k in coverage[column]])
    matrix = cells.pivot(index="cell_row", columns="model", values="cell")
    matrix = matrix.reindex(index=list(dict.fromkeys(rows)), columns=list(dict.fromkeys(coverage["model"])))
    matrix.index.name, matrix.columns.name = "dataset · protocol · stem", None
    return matrix.fillna("")


def jpeg_cost_table(df):
    """What the JPEG copy of CIFAR-10 costs: the same 4,000 training images, lossless vs JPEG re-encoded
    (variants of gradattn.data), per model and setting, and the paired difference lossless − JPEG."""
    import pandas as pd

    from gradattn import stats
    from gradattn.data.sources import CIFAR_4000_VARIANTS as CIFAR_4000
    from gradattn.results import run_setting
    if df.empty or "variant" not in df:
        return pd.DataFrame()
    runs = df[df["variant"].isin(CIFAR_4000)].copy()
    if runs.empty:
        return pd.DataFrame()
    runs["common"] = [run_setting(m, t).replace(v, "").strip("-") for m, t, v in
                      zip(runs["model"], runs["model_tag"], runs["variant"])]
    rows = []
    for (model, common, protocol), group in runs.groupby(["model", "common", "protocol"], sort=True):
        side = {v: group[group["variant"] == v] for v in CIFAR_4000}
        row = {"model": model, "setting": common, "protocol": protocol}
        for v in CIFAR_4000:
            if len(side[v]):
                ci = stats.mean_ci(side[v]["top1"].tolist())
                row[f"{v} top-1"] = f"{ci['mean']:.2f}" + ("" if ci["n"] < 2 else f" ± {ci['half_width']:.2f}") \
                    + f" (n={ci['n']})"
            else:
                row[f"{v} top-1"] = "not run"
        try:
            diff = stats.paired_difference(side["lossless4000"]["top1"].tolist(), side["jpeg4000"]["top1"].tolist(),
                                           side["lossless4000"]["seed"].tolist(), side["jpeg4000"]["seed"].tolist())
            row.update({"lossless − JPEG (points)": round(diff["mean"], 2), "ci_low": round(diff["ci_low"], 2),
                        "ci_high": round(diff["ci_high"], 2), "pairs": diff["n"],
                        "excludes_zero": diff["excludes_zero"], "per seed": stats.per_seed_text(diff["per_seed"])})
        except ValueError:
            row.update({"lossless − JPEG (points)": None, "pairs": 0})
        rows.append(row)
    return pd.DataFrame(rows)


def budget_table(df):
    """What a reduced epoch budget changes: per dataset, protocol, model and setting, the runs at the paper's
    budget against the same configuration cut to N epochs (setting "eN" beside ""; "cifarstem-e8" beside
    "cifarstem"), with Welch's interval for the difference (different runs, so seeds do not pair). A model
    that gains much more than its baseline from the longer run is misjudged by the reduced budget."""
    import pandas as pd

    from gradattn import stats
    from gradattn.results import run_setting
    if df.empty:
        return pd.DataFrame()
    runs = without_variants(df)
    setting = [run_setting(m, t) for m, t in zip(runs["model"], runs["model_tag"])]
    split = [re.fullmatch(r"(?:(.*)-)?e(\d+)", s) for s in setting]
    runs = runs.assign(base=[m.group(1) or "" if m else s for m, s in zip(split, setting)],
                       reduced=[f"e{m.group(2)}" if m else "" for m in split])
    rows = []
    data = "data" if "data" in runs else "dataset"        # "(train subset)" where the files were one
    for (dataset, protocol, model, base), group in runs.groupby([data, "protocol", "model", "base"], sort=True):
        full = group[group["reduced"] == ""]["top1"].tolist()
        for reduced, short in group[group["reduced"] != ""].groupby("reduced", sort=True):
            if len(full) < 2 or len(short) < 2:
                continue
            diff = stats.welch_difference(full, short["top1"].tolist())
            rows.append({"dataset": dataset, "protocol": protocol, "model": model, "setting": base,
                         "reduced budget": reduced, "paper's budget top-1": round(sum(full) / len(full), 2),
                         "reduced top-1": round(float(short["top1"].mean()), 2), "n": diff["n"],
                         "n reduced": diff["n_baseline"], "gain": round(diff["mean"], 2),
                         "ci_low": round(diff["ci_low"], 2), "ci_high": round(diff["ci_high"], 2),
                         "excludes_zero": diff["excludes_zero"]})
    return pd.DataFrame(rows)


SMALL_STEM_PART = "cifarstem"        # the small-image stem's part of a setting (TrainConfig.model_tag)


def stem_table(df):
    """What the small-image stem changes (SPEC 7.3): per dataset, protocol, model and budget, the runs with
    the CIFAR-style 3×3 stem minus the same configuration with the paper's ImageNet stem, paired by seed (the
    same seed gives the same split and data order, as in paired_table). On 28- and 32-px inputs the paper's
    stem leaves layer4 a 1×1 map, so every model is handicapped; a model that gains more than ResNet-18 from
    the right stem was judged on a handicap, not on its design."""
    import pandas as pd

    from gradattn import stats
    from gradattn.results import run_setting
    if df.empty:
        return pd.DataFrame()
    runs = without_variants(df)
    parts = [run_setting(m, t).split("-") for m, t in zip(runs["model"], runs["model_tag"])]
    runs = runs.assign(small=[SMALL_STEM_PART in p for p in parts],
                       base=["-".join(x for x in p if x and x != SMALL_STEM_PART) for p in parts])
    rows = []
    data = "data" if "data" in runs else "dataset"
    for (dataset, protocol, model, base), group in runs.groupby([data, "protocol", "model", "base"], sort=True):
        small, paper_stem = group[group["small"]], group[~group["small"]]
        if small.empty or paper_stem.empty:
            continue
        try:
            diff = stats.paired_difference(small["top1"].tolist(), paper_stem["top1"].tolist(),
                                           small["seed"].tolist(), paper_stem["seed"].tolist())
        except ValueError:                                     # no seed run with both stems
            continue
        rows.append({"dataset": dataset, "protocol": protocol, "model": model, "setting": base,
                     "paper stem top-1": round(float(paper_stem["top1"].mean()), 2), "n paper stem": len(paper_stem),
                     "small stem top-1": round(float(small["top1"].mean()), 2), "n small stem": len(small),
                     "gain": round(diff["mean"], 2), "n": diff["n"],
                     "ci_low": round(diff["ci_low"], 2), "ci_high": round(diff["ci_high"], 2),   # NaN for one pair
                     "excludes_zero": diff["excludes_zero"], "per seed": stats.per_seed_text(diff["per_seed"])})
    return pd.DataFrame(rows)


def claim_verdicts(df, profile: str):
    """One row per claim of gradattn.paper.CLAIMS: reproduced / not reproduced / inconclusive / not tested here, with
    the evidence from our runs (df as from collect_results) and the reason."""
    import pandas as pd

    from gradattn import paper, stats
    full = df if profile != "quick" else df.iloc[0:0]
    why_quick = ("quick profile: a 2,000-image sample for a few epochs cannot test an accuracy claim; "
                 "run `make paper PROFILE=paper`")
    rows = []

    # 5 of 8 wins
    if full.empty:
        rows.append(("wins_5_of_8", "not tested here", "", why_quick))
    else:
        pairs = paired_table(full[full["protocol"] == "paper"])
        datasets = sorted(full[full["protocol"] == "paper"]["dataset"].unique())
        wins, judged_on = _wins_per_dataset(pairs)
        evidence = f"significant GradAttn wins (paper protocol, paired 95 % CI > 0): {len(wins)} of " \
                   f"{len(datasets)} datasets run under it ({', '.join(wins) or 'none'})" \
                   + (f"; judged at other settings: {'; '.join(judged_on)}" if judged_on else "")
        rule = ("each dataset is judged on its runs at the paper's own settings where 2 or more seeds have them, "
                "else on its best-covered other setting")
        if len(datasets) < 8:
            rows.append(("wins_5_of_8", "not tested here", evidence,
                         f"only {len(datasets)} of the 8 datasets are present here; {rule}"))
        else:
            rows.append(("wins_5_of_8", "reproduced" if len(wins) >= 5 else "not reproduced", evidence, rule))

    # +11.07 on FashionMNIST
    fm = full[(full["dataset"] == "fashionmnist")] if not full.empty else full
    if fm.empty:
        rows.append(("fmnist_plus_11_07", "not tested here", "",
                     why_quick if profile == "quick" else "no full Fashion-MNIST runs present"))
    else:
        pairs = paired_table(fm)
        pairs = pairs[pairs["model"].isin(paper.GRADATTN_MODELS)] if not pairs.empty else pairs
        if pairs.empty:
            rows.append(("fmnist_plus_11_07", "not tested here", "", "no paired ResNet-18 / GradAttn seeds"))
        else:
            if "setting" not in pairs:
                pairs = pairs.assign(setting="")
            seeded = pairs.assign(enough=pairs["n"] >= 2)
            best = (seeded.sort_values(["enough", "mean"], ascending=False)
                    .groupby(["protocol", "setting"], sort=False).head(1))
            best = best.assign(departs=best["setting"] != "").sort_values(["protocol", "departs"], kind="stable")
            evidence = "; ".join(f"{p}{f' ({st})' if st else ''}: {m} {mu:+.2f}"
                                 + (f" [{lo:+.2f}, {hi:+.2f}]" if n >= 2 else "") + f", n={n}"
                                 for p, st, m, mu, lo, hi, n in
                                 zip(best["protocol"], best["setting"], best["model"], best["mean"], best["ci_low"],
                                     best["ci_high"], best["n"]))
            on_paper = best[(best["protocol"] == "paper") & best["enough"]]   # the paper's own settings first
            if on_paper.empty:
                rows.append(("fmnist_plus_11_07", "not tested here", evidence,
                             "the claim is about the paper's protocol: needs paper-protocol runs of ResNet-18 "
                             "and GradAttn with at least 2 matched seeds"))
            else:
                low, high = float(on_paper["ci_low"].iloc[0]), float(on_paper["ci_high"].iloc[0])
                contains_claim, contains_zero = low <= 11.07 <= high, low <= 0 <= high
                verdict = ("not reproduced" if not contains_claim else
                           "inconclusive" if contains_zero else "reproduced")
                setting = on_paper["setting"].iloc[0]
                rows.append(("fmnist_plus_11_07", verdict, evidence,
                             "best GradAttn − ResNet-18, paired over seeds; reproduced when the paper-protocol "
                             "interval contains +11.07 and excludes 0, inconclusive when it holds both (too few "
                             "seeds or too much seed noise), not reproduced when it excludes +11.07; judged on "
                             "runs at the paper's own settings where 2 or more seeds have them"
                             + (f"; these runs depart from the paper's settings ({setting})" if setting else "")))

    # controlled instabilities: the faithful score gap vs the corrected one (data-independent artefact)
    if df.empty or "health_score_faithful" not in df:
        rows.append(("controlled_instabilities", "not tested here", "", "no runs with gradient-flow analysis"))
    else:
        h = df.dropna(subset=["health_score_faithful", "health_score_corrected"])
        ga = h[h["model"].isin(paper.GRADATTN_MODELS)]
        rn = h[h["model"] == "resnet18"]
        if ga.empty or rn.empty:
            rows.append(("controlled_instabilities", "not tested here", "", "need ResNet-18 and GradAttn runs"))
        else:
            f_gap = 100 * (rn["health_score_faithful"].mean() - ga["health_score_faithful"].mean())
            c_gap = 100 * (rn["health_score_corrected"].mean() - ga["health_score_corrected"].mean())
            dead = int(pd.to_numeric(ga.get("num_dead_layers"), errors="coerce").fillna(0).sum())
            lower = _health_by_dataset(ga, rn)
            better = sum(diff > 0 for _, _, diff in lower)
            evidence = (f"ResNet-18 minus GradAttn health score: faithful {f_gap:+.1f} pts, corrected "
                        f"(measured layers only) {c_gap:+.1f} pts; dead GradAttn layers: {dead}"
                        + _lower_health_evidence(lower, better))
            artefact, coincides = c_gap < f_gap - 1, 2 * better > len(lower)
            verdict = "not reproduced" if artefact or not coincides else "reproduced"
            rows.append(("controlled_instabilities", verdict, evidence,
                         "the faithful gap comes from hooks that never fire (SPEC 7.4) and exact-zero dead "
                         "stages (7.5); 'not reproduced' when correcting the denominator removes most of it, or "
                         "when a lower corrected score goes with higher GradAttn top-1 in at most half of the "
                         "groups where it is lower"
                         + ("; quick profile: sample data" if profile == "quick" else "")))

    # PE dataset-dependence
    pe = full[full["model"].isin(PE_MODELS)] if not full.empty else full
    winners = {}                                  # (protocol, setting) -> {dataset: best PE model by mean}
    if not pe.empty:
        by = [c for c in ("protocol", "setting", "data" if "data" in pe.columns else "dataset") if c in pe.columns]
        summary = stats.summarize(pe, by=(*by, "model"), value="top1")
        for key, group in summary.groupby(by, sort=True):
            key = key if isinstance(key, tuple) else (key,)
            if set(group["model"]) == set(PE_MODELS):          # all three, same protocol and setting
                best = group.sort_values("mean", ascending=False).iloc[0]
                protocol_setting = (key[0], key[1] if len(by) == 3 else "")
                winners.setdefault(protocol_setting, {})[key[-1]] = best["model"]
    compared = {k: w for k, w in winners.items() if len(w) >= 2}
    reversals = _pe_reversals(pe_pairs(pe))
    if not compared and not reversals:
        rows.append(("pe_dataset_dependent", "not tested here", "",
                     why_quick if profile == "quick" else
                     "needs all three PE variants, same protocol and setting, on at least two datasets, or two of "
                     "them whose order reverses between datasets beyond seed noise"))
    else:
        verdict = ("reproduced" if reversals else
                   "inconclusive" if any(len(set(w.values())) > 1 for w in compared.values()) else "not reproduced")
        evidence = "; ".join([" ".join(v for v in k if v) + ": best by mean " +
                              ", ".join(f"{d} {m}" for d, m in sorted(w.items())) for k, w in sorted(compared.items())]
                             + (reversals or ["no pair of encodings reverses order with both paired 95 % CIs "
                                              "excluding 0"]))
        rows.append(("pe_dataset_dependent", verdict, evidence,
                     "equal capacity (d=256), within one protocol and setting; reproduced when some pair of "
                     "encodings is significantly better on one dataset and significantly worse on another (paired "
                     "95 % CIs), inconclusive when only the best-by-mean variant changes, not reproduced when "
                     "the same variant is best everywhere; table in 05_results and 04_pe_study"))
    table = pd.DataFrame(rows, columns=["claim", "verdict", "evidence", "why"])
    table.insert(1, "statement", [paper.CLAIMS[c] for c in table["claim"]])
    return table


def _wins_per_dataset(pairs) -> tuple[list[str], list[str]]:
    """Datasets where some GradAttn variant beats ResNet-18 beyond seed noise (paired CI above 0), each judged
    on the runs at the paper's own settings when 2 or more seeds have them, else on its best-covered other
    setting; and the datasets judged that way ("dataset: e8")."""
    from gradattn import paper
    if pairs.empty:
        return [], []
    ga = pairs[pairs["model"].isin(paper.GRADATTN_MODELS) & (pairs["n"] >= 2)]
    if "setting" not in ga:
        ga = ga.assign(setting="")
    wins, fallback = [], []
    for dataset, group in ga.groupby("dataset", sort=True):
        own = group[group["setting"] == ""]
        if own.empty:
            setting = group.groupby("setting")["n"].sum().idxmax()
            own = group[group["setting"] == setting]
            fallback.append(f"{dataset}: {setting}")
        if (own["ci_low"] > 0).any():
            wins.append(dataset)
    return wins, fallback


def _pe_reversals(pairs) -> list[str]:
    """Pairs of encodings whose paired difference is significantly positive on one dataset and significantly
    negative on another, within one protocol and setting: "dataset dependent" beyond seed noise (paired 95 % CIs).

    A pair counts wherever both of its encodings ran, even on a dataset that lacks the third one.
    """
    out = []
    if pairs.empty:
        return out
    setting = pairs["setting"] if "setting" in pairs else ""
    significant = pairs.assign(setting=setting)[pairs["excludes_zero"].astype(bool)]
    for (protocol, st), sub in significant.groupby(["protocol", "setting"], sort=True):
        for (model, baseline), g in sub.groupby(["model", "baseline"], sort=True):
            up, down = sorted(g[g["mean"] > 0]["dataset"]), sorted(g[g["mean"] < 0]["dataset"])
            if up and down:
                out.append(f"{protocol}{f' ({st})' if st else ''}: {model} − {baseline} > 0 on {', '.join(up)}, "
                           f"< 0 on {', '.join(down)}")
    return out


def _lower_health_evidence(groups: list[tuple[str, float, float]], better: int) -> str:
    """The evidence text for `groups` (from _health_by_dataset), `better` of which have the higher GradAttn top-1."""
    if not groups:
        return "; GradAttn's corrected score is nowhere below ResNet-18's"
    return ("; where GradAttn's corrected score is lower (means over runs; gap = ResNet-18 minus GradAttn, "
            "top-1 = GradAttn minus ResNet-18): "
            + "; ".join(f"{label}: corrected gap {gap:+.1f} pts, GradAttn top-1 {diff:+.2f}"
                        for label, gap, diff in groups)
            + f"; GradAttn's top-1 is higher in {better} of these {len(groups)} groups")


def _health_by_dataset(gradattn_runs, resnet_runs) -> list[tuple[str, float, float]]:
    """(dataset protocol setting, health gap, top-1 difference) per group where GradAttn's corrected health
    score is below ResNet-18's, so a reader sees whether a lower score went with better accuracy."""
    key = ["data" if "data" in gradattn_runs else "dataset", "protocol"] + (["setting"] if "setting" in
                                                                           gradattn_runs else [])
    columns = ["health_score_corrected", "top1"]
    both = gradattn_runs.groupby(key, sort=True)[columns].mean().merge(
        resnet_runs.groupby(key)[columns].mean(), left_index=True, right_index=True, suffixes=("", "_resnet"))
    groups = []
    for group, r in both.iterrows():
        group = group if isinstance(group, tuple) else (group,)
        gap = 100 * (r["health_score_corrected_resnet"] - r["health_score_corrected"])
        if gap > 0.05:
            groups.append((" ".join(str(v) for v in group if v), gap, r["top1"] - r["top1_resnet"]))
    return groups


RECORD_GROUP = ["dataset", "model", "setting", "protocol"]   # per-run records (attention, gradient flow) group by


def _run_records(df, local_name: str, committed: str, summarise=None, root: Path | None = None):
    """(run metadata, record) for the runs of `df` that have one: this machine's
    outputs/runs/<run>/<local_name> first (passed through `summarise`), else results/<committed>/'s copy."""
    from gradattn.results import summary_file_name
    root = Path(root) if root else project_root()
    records = []
    for r in df.to_dict("records") if len(df) else []:
        local = outputs_dir(root) / "runs" / r["run_key"] / local_name
        copy = root / "results" / committed / summary_file_name(r["run_key"])
        for path, transform in ((local, summarise), (copy, None)):
            if path.exists():
                meta = {k: (r.get(k) if isinstance(r.get(k), (str, int)) else "") for k in (
                    "run_key", "dataset", "data", "model", "setting", "protocol", "seed")}
                record = json.loads(path.read_text())
                records.append((meta, transform(record) if transform else record))
                break
    return records


def attention_records(df, root: Path | None = None) -> list[tuple[dict, dict]]:
    """(run metadata, attention summary) for the runs of `df` (as from collect_results) that have one:
    this machine's outputs/runs/<run>/attention.json first, else the committed results/attention/ copy."""
    return _run_records(df, "attention.json", "attention", root=root)


def gradflow_records(df, root: Path | None = None) -> list[tuple[dict, dict]]:
    """(run metadata, gradient-flow summary, gradattn.gradflow.gradflow_summary) for the runs of `df` that
    have one: this machine's outputs/runs/<run>/gradflow.json first, else the committed results/gradflow/."""
    from gradattn.gradflow import gradflow_summary
    return _run_records(df, "gradflow.json", "gradflow", summarise=gradflow_summary, root=root)


def gradflow_table(records):
    """Per dataset, model, setting and protocol: runs with a gradient-flow record, mean faithful and
    corrected health score (%), and in how many of those runs each stage was dead (exact-zero output,
    SPEC 7.5), got no gradient at all, or got a vanishing one (corrected analysis); e.g. "layer4 3/3"."""
    import pandas as pd

    rows = []
    for meta, summary in records:
        vanishing = summary.get("vanishing") or []
        rows.append({**meta,
                     "faithful": summary.get("faithful_health_score"),
                     "corrected": summary.get("corrected_health_score"),
                     "dead": sorted(set(summary.get("dead_layer_names") or [])),
                     "zero": sorted({v["stage"] for v in vanishing if v.get("mean_norm") == 0}),
                     "vanishing": sorted({v["stage"] for v in vanishing})})
    if not rows:
        return pd.DataFrame()
    table = label_subsets(pd.DataFrame(rows))

    out = []
    for key, runs in table.groupby(RECORD_GROUP, sort=True):
        out.append({**dict(zip(RECORD_GROUP, key)), "runs": len(runs),
                    "health faithful %": round(100 * pd.to_numeric(runs["faithful"]).mean(), 1),
                    "health corrected %": round(100 * pd.to_numeric(runs["corrected"]).mean(), 1),
                    "dead stages": _counted(runs["dead"]), "zero-gradient stages": _counted(runs["zero"]),
                    "vanishing stages": _counted(runs["vanishing"])})
    return pd.DataFrame(out)


def _counted(lists) -> str:
    """'name k/n' for each name in some of the n runs' lists, sorted by name; "none" if in none."""
    import pandas as pd
    n = len(lists)
    counts = pd.Series([name for names in lists for name in names], dtype=object).value_counts()
    return ", ".join(f"{name} {counts[name]}/{n}" for name in sorted(counts.index)) or "none"


def gates_records(df, root: Path | None = None) -> list[tuple[dict, dict]]:
    """(run metadata, gate report, gradattn.gates.gates_record) for the SE/CBAM runs of `df` that have one:
    this machine's outputs/runs/<run>/gates.json first, else the committed results/gates/ copy."""
    return _run_records(df, "gates.json", "gates", root=root)


def gates_table(records):
    """Per dataset, model, setting and protocol: runs, gates per run, how many of them were constant in each
    run (by seed), which gates were constant in how many runs (named by block and gate, e.g. "layer3.1.fc"),
    and the range of the largest weights of the constant ones: a gate training switched off is constant
    with weights far below their init (gradattn.gates). "smallest factor": the range, over the constant gates,
    of their smaller weight matrix's largest weight (gates.json from before `factor_absmax` existed lack it:
    how many of the constant gates have it is said where not all do)."""
    import pandas as pd

    rows = []
    for meta, record in records:
        constant = [g for g in record["gates"] if g["constant"]]
        rows.append({**meta, "gates": len(record["gates"]),
                     "constant": sorted(g["name"].replace("attention.", "") for g in constant),
                     "weights": [g["weight_absmax"] for g in constant],
                     "factors": [min(g["factor_absmax"]) for g in constant if g.get("factor_absmax")]})
    if not rows:
        return pd.DataFrame()
    table = label_subsets(pd.DataFrame(rows))
    out = []
    for key, runs in table.groupby(RECORD_GROUP, sort=True):
        runs = runs.sort_values("seed")
        weights = [w for ws in runs["weights"] for w in ws]
        factors = [w for ws in runs["factors"] for w in ws]
        smallest = f"{min(factors):.0e} to {max(factors):.0e}" if factors else ""
        if weights and len(factors) < len(weights):
            smallest = f"{smallest} ({len(factors)} of {len(weights)} recorded)" if factors else "not recorded"
        out.append({**dict(zip(RECORD_GROUP, key)), "runs": len(runs), "gates per run": int(runs["gates"].max()),
                    "constant per run": ", ".join(str(len(names)) for names in runs["constant"]),
                    "constant gates": _counted(runs["constant"]),
                    "max |w| of constant gates": f"{min(weights):.0e} to {max(weights):.0e}" if weights else "",
                    "smallest factor": smallest})
    return pd.DataFrame(out)


def attention_received_table(records):
    """Share of attention each tap receives (gradattn.attention), mean over seeds, per dataset, model,
    setting, protocol and encoder layer; one column per tap, plus the number of seeds."""
    import pandas as pd

    from gradattn.attention import received_table
    from gradattn.models.blocks import TAP_NAMES
    table = received_table(records)
    if table.empty:
        return pd.DataFrame()
    table = label_subsets(table)
    key = [*RECORD_GROUP, "layer"]
    shares = table.pivot_table(index=key, columns="tap", values="received", aggfunc="mean")[list(TAP_NAMES)]
    return shares.join(table.groupby(key)["seed"].nunique().rename("seeds")).reset_index()


def attention_maps_by_group(records) -> dict:
    """{dataset: (labels, maps (groups, 5, 5), seeds)}: each model/setting/protocol's attention map,
    averaged over encoder layers, heads, test images and seeds, for class_attention_figure."""
    import numpy as np
    import pandas as pd

    if not records:
        return {}
    rows = [{**meta, "map": np.asarray(summary["by_layer"]).mean(axis=0)} for meta, summary in records]
    table = label_subsets(pd.DataFrame(rows))
    out = {}
    for dataset, group in table.groupby("dataset", sort=True):
        labels, maps, seeds = [], [], []
        for (model, setting, protocol), runs in group.groupby(RECORD_GROUP[1:], sort=True):
            labels.append(f"{model}{'-' + setting if setting else ''} · {protocol}")
            maps.append(np.mean(np.stack(runs["map"].tolist()), axis=0))
            seeds.append(runs["seed"].nunique())
        out[dataset] = (labels, np.stack(maps), seeds)
    return out

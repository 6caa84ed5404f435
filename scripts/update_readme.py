"""Regenerate the generated blocks of README.md (`make readme`); tests/test_readme.py checks they are current."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pandas as pd

README = Path(__file__).resolve().parents[1] / "README.md"


RESULTS = README.parent / "results" / "results.csv"


def paper_cell(published: float | None, variant: str | None) -> str:
    """The paper's number, or why there is none: a dataset variant trains on other data than the paper's."""
    if isinstance(variant, str) and variant:
        return f"n/a (variant {variant})"
    return "" if published is None or pd.isna(published) else f"{published:.2f}"


def _full_runs(path: Path):
    """The committed runs on real data: results/results.csv without the embedded sample's rows."""
    from gradattn.results import load_results, sample_mask

    df = load_results(path)
    return df[~sample_mask(df)]


def _paired_ci(r) -> str:
    return "n/a (one seed)" if r["n"] < 2 else f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"


def _table_block(intro: str, headers, alignment: str, rows) -> str:
    """A paragraph and a markdown table under it: `alignment` is the separator row (e.g. "|---|---:|"),
    `rows` the cells of each row."""
    lines = [f"\n\n{intro}\n", "| " + " | ".join(headers) + " |", alignment]
    lines += ["| " + " | ".join(map(str, cells)) + " |" for cells in rows]
    return "\n".join(lines)


def _pair_rows(intro: str, pairs, pair_header: str, what_header: str | None, label) -> str:
    """A paragraph and a markdown table of paired differences (model_pairs' columns), or "" without pairs;
    `label(row)` gives the pair's own cells (the pair, and what it measures when `what_header` is set)."""
    if not len(pairs):
        return ""
    headers = ["dataset", "protocol", "setting", pair_header, *([what_header] if what_header else []),
               "seeds paired", "mean (points)", "95 % CI", "per seed"]
    return _table_block(intro, headers, "|---|---|---|---|" + ("---|" if what_header else "") + "---:|---:|---|---|",
                        ([r["dataset"], r["protocol"], _setting_cell(r["setting"]), *label(r), r["n"],
                          f"{r['mean']:+.2f}", _paired_ci(r), r["per seed"]] for r in pairs.to_dict("records")))


def _setting_cell(setting: str) -> str:
    """A run's setting in a table: `e8` and the like, or "paper's" where the run kept all the paper's settings."""
    return f"`{setting}`" if setting else "paper's"


def findings_table(path: Path = RESULTS) -> str:
    """Markdown table of the committed runs (results/results.csv): `findings.results_beside_paper` (seeds
    grouped, mean ± 95 % CI and std beside the paper, whether the paper lies within it) plus the README's own
    columns: each run's epochs (best epoch), health scores and device."""
    from gradattn.findings import results_beside_paper

    df = _full_runs(path)
    if df.empty:
        return "_No full-data runs committed yet (`results/results.csv`)._"
    key = ["data", "model", "setting", "protocol"]
    details = df.groupby(key, sort=False, dropna=False).apply(_run_details, include_groups=False).apply(pd.Series)
    table = results_beside_paper(df).merge(details.reset_index().rename(columns={"data": "dataset"}),
                                           on=["dataset", "model", "setting", "protocol"], validate="one_to_one")
    lines = ["| dataset | model (tag) | protocol | seeds | epochs run (best) | test top-1 % | std | paper's top-1 % "
             "| paper in our CI | health: faithful / corrected | device |",
             "|---|---|---|---:|---|---:|---:|---:|---|---|---|"]
    for r in table.sort_values(["dataset", "run", "protocol"]).to_dict("records"):
        top1 = f"{r['mean']:.2f}" + (f" ± {r['half_width']:.2f}" if r["n"] > 1 else "")
        std = f"{r['std']:.2f}" if r["n"] > 1 else ""
        lines.append(f"| {r['dataset']} | `{r['run']}` | {r['protocol']} | {r['n']} | {r['epochs']} | {top1} | {std} | "
                     f"{paper_cell(r['paper top-1'], r['variant'])} | {r['paper recovered']} | {r['health']} | "
                     f"{r['devices']} |")
    return "\n".join(lines)


def _run_details(runs) -> dict:
    """The README's per-group extras, each run in file (seed) order."""
    health = dict.fromkeys(     # each distinct pair once
        f"{float(f):.1%} / {float(c):.1%}" for f, c in zip(runs["health_score_faithful"], runs["health_score_corrected"])
        if pd.notna(f))
    return {"epochs": ", ".join(f"{int(e)} ({int(b)})" for e, b in zip(runs["epochs"], runs["best_epoch"])),
            "health": ", ".join(health), "devices": ", ".join(sorted(set(runs["device"]))),
            "variant": runs["variant"].iloc[0]}


def findings_pairs(path: Path = RESULTS) -> str:
    """Markdown: paired differences vs ResNet-18 (same dataset, protocol, setting; matched seeds), the
    ablation ladder (plain18 -> gradattn_mlp -> gradattn_nope, resnet18 vs plain18), each GradAttn variant vs
    plain18, the cost of CIFAR-10's JPEG copy (lossless4000 vs jpeg4000), what the reduced epoch budget
    changes (the paper's budget vs e.g. 8 epochs) and what the small-image stem changes, from the committed runs."""
    from gradattn.findings import (ablation_pairs, budget_table, jpeg_cost_table, paired_table, plain18_pairs,
                                   stem_table, without_variants)

    df = _full_runs(path)
    if df.empty:
        return "_No full-data runs committed yet (`results/results.csv`)._"
    full_data = without_variants(df)
    pairs = paired_table(full_data, baseline="resnet18", beside_paper=True)
    lines = ["| dataset | protocol | setting | model − ResNet-18 | seeds paired | mean (points) | 95 % CI | per seed "
             "| paper's difference | paper's in our CI |", "|---|---|---|---|---:|---:|---|---|---:|---|"]
    for r in pairs.to_dict("records") if len(pairs) else []:
        ci = _paired_ci(r)
        gain = "" if r["paper gain"] is None or pd.isna(r["paper gain"]) else f"{r['paper gain']:+.2f}"
        lines.append(f"| {r['dataset']} | {r['protocol']} | {_setting_cell(r['setting'])} | {r['model']} | {r['n']} | "
                     f"{r['mean']:+.2f} | {ci} | {r['per seed']} | {gain} | {r['paper gain in our CI']} |")
    out = "\n".join(lines) if len(pairs) else "_No paired runs (a model and ResNet-18 with the same seed) yet._"
    out += _pair_rows("The ablation ladder (`findings.ablation_pairs`; the paper has none): what each step adds, paired "
                      "by seed.", ablation_pairs(full_data), "model − baseline", "what it adds",
                      lambda r: (f"{r['model']} − {r['baseline']}", r["measures"]))
    out += _pair_rows("Each GradAttn variant against the non-residual backbone it is built on "
                      "(`findings.plain18_pairs`), paired by seed.", plain18_pairs(full_data), "model − plain18", None,
                      lambda r: (r["model"],))
    cost = jpeg_cost_table(df)
    if len(cost):
        out += _table_block(
            "CIFAR-10, the same 4,000 training images lossless vs JPEG re-encoded (test top-1 %):",
            ["model", "setting", "lossless", "JPEG", "lossless − JPEG (points)", "95 % CI", "per seed"],
            "|---|---|---|---|---:|---|---|",
            (_jpeg_cells(r) for r in cost.to_dict("records")))
    budget = budget_table(df)
    if len(budget):
        out += _table_block(
            "What the reduced epoch budget changes (`findings.budget_table`): each configuration at the paper's "
            "budget minus the same one cut to a few epochs; different runs, so Welch's interval, not paired "
            "(test top-1 %):",
            ["dataset", "protocol", "setting", "model", "reduced", "paper's budget", "reduced budget", "runs",
             "gain (points)", "95 % CI"], "|---|---|---|---|---|---:|---:|---|---:|---|",
            ([r["dataset"], r["protocol"], _setting_cell(r["setting"]), r["model"], f"`{r['reduced budget']}`",
              format(r["paper's budget top-1"], ".2f"), f"{r['reduced top-1']:.2f}", f"{r['n']} + {r['n reduced']}",
              f"{r['gain']:+.2f}", f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"] for r in budget.to_dict("records")))
    stems = stem_table(df)
    if len(stems):
        out += _table_block(
            "What the small-image stem changes (`findings.stem_table`, SPEC 7.3): each configuration with the "
            "CIFAR-style 3×3 stem minus the same one with the paper's ImageNet stem, paired by seed (test top-1 %):",
            ["dataset", "protocol", "setting", "model", "paper stem", "small-image stem", "seeds paired",
             "gain (points)", "95 % CI", "per seed"], "|---|---|---|---|---:|---:|---:|---:|---|---|",
            ([r["dataset"], r["protocol"], _setting_cell(r["setting"]), r["model"],
              f"{r['paper stem top-1']:.2f} (n={r['n paper stem']})",
              f"{r['small stem top-1']:.2f} (n={r['n small stem']})", r["n"], f"{r['gain']:+.2f}", _paired_ci(r),
              r["per seed"]]
             for r in stems.to_dict("records")))
    return out


def _jpeg_cells(r) -> list:
    diff = r.get("lossless − JPEG (points)")
    ci = "n/a" if diff is None or pd.isna(r.get("ci_low")) else f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
    return [r["model"], _setting_cell(r["setting"]), r["lossless4000 top-1"], r["jpeg4000 top-1"],
            "" if diff is None else f"{diff:+.2f}", ci,
            r["per seed"] if isinstance(r.get("per seed"), str) else ""]


def findings_coverage(path: Path = RESULTS, seeds_needed: int = 3) -> str:
    """Markdown: how many seeds of each cell of the reproduction grid (gradattn.profiles.reproduction_grid)
    the committed runs cover, in their best-covered setting (e.g. 8 epochs) and at the paper's own settings."""
    from gradattn.findings import coverage_matrix, coverage_table

    coverage = coverage_table(_full_runs(path), seeds_needed=seeds_needed)
    blocks = []
    for column, title in (("seeds", "In the best-covered setting (e.g. 8 epochs on a CPU)"),
                          ("paper settings", "At the paper's own settings (its epoch budget: mostly GPU runs)")):
        matrix = coverage_matrix(coverage, seeds_needed, column)
        complete = int((coverage[column] >= seeds_needed).sum())
        lines = [f"**{title}**: {complete} of {len(coverage)} cells have {seeds_needed} seeds (blank: not part of "
                 "the grid).", "",
                 "| " + " | ".join([matrix.index.name, *matrix.columns]) + " |",
                 "|---|" + "---:|" * len(matrix.columns)]
        lines += ["| " + " | ".join([name, *row]) + " |" for name, row in zip(matrix.index, matrix.values.tolist())]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def findings_verdicts(path: Path = RESULTS) -> str:
    """Markdown: the verdict on each claim of the paper's abstract (`findings.claim_verdicts`, the table of
    05_results) from the committed runs, with its evidence; 05_results also says how each verdict is decided."""
    from gradattn.findings import claim_verdicts

    df = _full_runs(path)
    if df.empty:
        return "_No full-data runs committed yet (`results/results.csv`)._"
    lines = ["| the paper's claim | verdict here | evidence |", "|---|---|---|"]
    for r in claim_verdicts(df, "paper").to_dict("records"):
        evidence = (r["evidence"] or r["why"]).replace("|", "\\|")
        lines.append(f"| {r['statement']} | **{r['verdict']}** | {evidence} |")
    return "\n".join(lines)


def generated_blocks() -> dict[str, str]:
    from gradattn.models import format_model_table

    return {"models-table": "\n\n".join([format_model_table(10, 3), format_model_table(10, 1)]),
            "findings-verdicts": findings_verdicts(), "findings-table": findings_table(),
            "findings-pairs": findings_pairs(),
            "findings-coverage": findings_coverage()}


def render(text: str, blocks: dict[str, str]) -> str:
    for name, body in blocks.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md has no '<!-- {name}:start -->' ... '<!-- {name}:end -->' markers")
        text = pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)
    return text


def main() -> int:
    text = README.read_text()
    new = render(text, generated_blocks())
    if "--check" in sys.argv:
        return 0 if new == text else 1
    tmp = README.with_suffix(".md.tmp")
    tmp.write_text(new)
    os.replace(tmp, README)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

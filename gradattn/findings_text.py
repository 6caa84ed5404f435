"""The findings tables as plain text or CSV, for `python -m gradattn findings`: the same gradattn.findings
functions that build the README's tables and 05_results, readable in a terminal without a notebook."""
from __future__ import annotations

from gradattn import findings

TABLES = {
    "verdicts": "the verdict on each claim of the paper's abstract, with its evidence",
    "beside-paper": "our top-1 (mean ± 95 % CI over seeds) per model, setting and protocol, beside the paper's",
    "paired": "each model minus ResNet-18, paired by seed, beside the paper's gain",
    "pe": "every pair of the three positional encodings at d=256, paired by seed",
    "ablation": "the ablation ladder: plain18, + five tapped tokens (MLP), + attention; ResNet-18 vs plain18",
    "vs-plain18": "each GradAttn variant minus the plain non-residual backbone, paired by seed",
    "coverage": "seeds run per cell of the reproduction grid (best-covered setting, and at the paper's settings)",
    "jpeg": "what the JPEG copy of CIFAR-10 costs: the same 4,000 images, lossless vs JPEG",
    "budget": "what the reduced epoch budget changes: the paper's budget minus e.g. 8 epochs, per model (Welch CI)",
    "stem": "what the small-image stem changes: the CIFAR-style 3x3 stem minus the paper's, per model, paired by seed",
    "attention": "share of attention each tap receives, per encoder layer (mean over seeds)",
    "gradflow": "health scores and the stages that were dead or got no or vanishing gradient, per group (corrected analysis)",
    "gates": "SE/CBAM gates whose output training left constant over the test split, per group (gradattn.gates)",
}
DEFAULT_TABLES = ("verdicts", "beside-paper", "paired")

_NUMERIC_HELPERS = ("run", "mean", "half_width", "ci_low", "ci_high", "n")   # beside-paper's, for plots


def build_table(df, name: str, profile: str = "paper"):
    """The DataFrame behind table `name` (a key of TABLES) for the runs `df` (findings.collect_results)."""
    if name not in TABLES:
        raise ValueError(f"unknown findings table {name!r}; choose from {', '.join(TABLES)}")
    if name == "verdicts":
        return findings.claim_verdicts(df, profile)
    if name == "beside-paper":
        table = findings.results_beside_paper(df)
        return table.drop(columns=[c for c in _NUMERIC_HELPERS if c in table])
    if name == "paired":
        return findings.paired_table(df, beside_paper=True)
    if name == "pe":
        return findings.pe_pairs(df)
    if name == "ablation":
        return findings.ablation_pairs(df)
    if name == "vs-plain18":
        return findings.plain18_pairs(df)
    if name == "coverage":
        return findings.coverage_table(df)
    if name == "jpeg":
        return findings.jpeg_cost_table(df)
    if name == "budget":
        return findings.budget_table(df)
    if name == "stem":
        return findings.stem_table(df)
    if name == "gradflow":
        return findings.gradflow_table(findings.gradflow_records(df))
    if name == "gates":
        return findings.gates_table(findings.gates_records(df))
    return findings.attention_received_table(findings.attention_records(df))


def render(df, names, profile: str = "paper", fmt: str = "text") -> str:
    """Tables `names` as one text: a titled block each (`text`; the setting of runs at the paper's own settings
    reads "paper's", coverage shows as two matrices), or CSV blocks headed by `# name` (`csv`)."""
    if fmt not in ("text", "csv"):
        raise ValueError(f"unknown format {fmt!r}; choose text or csv")
    blocks = []
    for name in names:
        table = build_table(df, name, profile)
        if fmt == "csv":
            blocks.append(f"# {name}\n" + table.to_csv(index=False).rstrip("\n"))
            continue
        title = f"== {name}: {TABLES[name]} =="
        if table.empty:
            blocks.append(f"{title}\n(no runs for this table yet)")
        elif name == "coverage":
            blocks.append(f"{title}\n{_coverage_matrices(table)}")
        elif name == "verdicts":
            blocks.append(title + "\n" + "\n\n".join(
                f"[{row.verdict}] {row.statement}" + (f"\n  evidence: {row.evidence}" if row.evidence else "")
                + f"\n  why: {row.why}" for row in table.itertuples(index=False)))
        else:
            if "setting" in table:
                table = table.assign(setting=table["setting"].replace("", "paper's"))
            blocks.append(f"{title}\n{_to_text(table.round(2), index=False)}")
    return "\n\n".join(blocks)


def _to_text(table, index: bool) -> str:
    import pandas as pd

    with pd.option_context("display.width", 250, "display.max_columns", None, "display.max_rows", None,
                           "display.max_colwidth", 80):
        return table.to_string(index=index)


def _coverage_matrices(coverage) -> str:
    return "\n\n".join(
        f"{caption}:\n{_to_text(findings.coverage_matrix(coverage, column=column), index=True)}"
        for column, caption in (("seeds", "seeds run, best-covered setting"),
                                ("paper settings", "seeds run at the paper's own settings")))

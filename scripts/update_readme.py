"""Regenerate the generated blocks of README.md (`make readme`); tests/test_readme.py checks they are current."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


RESULTS = README.parent / "results" / "results.csv"


def paper_cell(published: float | None, variant: str | None) -> str:
    """The paper's number, or why there is none: a dataset variant trains on other data than the paper's."""
    if variant:
        return f"n/a (variant {variant})"
    return "" if published is None else f"{published:.2f}"


def findings_table(path: Path = RESULTS) -> str:
    """Markdown table of the committed runs (results/results.csv), grouped over seeds, beside the paper."""
    from gradattn import stats
    from gradattn.report import paper_reference, recovered
    from gradattn.results import dataset_label, read_results

    rows = [r for r in read_results(path) if r.get("is_sample") != "True"]
    if not rows:
        return "_No full-data runs committed yet (`results/results.csv`)._"
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((dataset_label(r["dataset"], r.get("data_source")), r["model_tag"], r["protocol"]),
                          []).append(r)
    lines = ["| dataset | model (tag) | protocol | seeds | epochs run (best) | test top-1 % | paper's top-1 % "
             "| paper in our CI | health: faithful / corrected | device |", "|---|---|---|---:|---|---:|---:|---|---|---|"]
    for (dataset, tag, protocol), runs in sorted(groups.items()):
        ci = stats.mean_ci([float(r["top1"]) for r in runs])
        top1 = f"{ci['mean']:.2f}" + (f" ± {ci['half_width']:.2f}" if ci["n"] > 1 else "")
        variant = runs[0].get("variant")
        published = paper_reference(runs[0]["dataset"], runs[0]["model"], variant)
        epochs = ", ".join(f"{r['epochs']} ({r['best_epoch']})" for r in runs)
        health = ", ".join(dict.fromkeys(     # each distinct pair once, in seed order
            f"{float(r['health_score_faithful']):.1%} / {float(r['health_score_corrected']):.1%}"
            for r in runs if r.get("health_score_faithful")))
        devices = ", ".join(sorted({r["device"] for r in runs}))
        lines.append(f"| {dataset} | `{tag}` | {protocol} | {len(runs)} | {epochs} | {top1} | "
                     f"{paper_cell(published, variant)} | {recovered(protocol, published, ci['ci_low'], ci['ci_high'], ci['n'])} | "
                     f"{health} | {devices} |")
    return "\n".join(lines)


def findings_pairs(path: Path = RESULTS) -> str:
    """Markdown: paired differences vs ResNet-18 (same dataset, protocol, setting; matched seeds) and the
    cost of CIFAR-10's JPEG copy (lossless4000 vs jpeg4000), from the committed runs."""
    import pandas as pd

    from gradattn.report import jpeg_cost_table, paired_table
    from gradattn.results import load_results, sample_mask

    df = load_results(path)
    df = df[~sample_mask(df)]
    if df.empty:
        return "_No full-data runs committed yet (`results/results.csv`)._"
    pairs = paired_table(df[df["variant"].isna()], baseline="resnet18")
    lines = ["| dataset | protocol | setting | model − ResNet-18 | seeds paired | mean (points) | 95 % CI |",
             "|---|---|---|---|---:|---:|---|"]
    for r in pairs.itertuples(index=False) if len(pairs) else []:
        ci = "n/a (one seed)" if r.n < 2 else f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
        lines.append(f"| {r.dataset} | {r.protocol} | `{r.setting or 'paper'}` | {r.model} | {r.n} | "
                     f"{r.mean:+.2f} | {ci} |")
    out = "\n".join(lines) if len(pairs) else "_No paired runs (a model and ResNet-18 with the same seed) yet._"
    cost = jpeg_cost_table(df)
    if len(cost):
        out += ("\n\nCIFAR-10, the same 4,000 training images lossless vs JPEG re-encoded (test top-1 %):\n\n"
                "| model | setting | lossless | JPEG | lossless − JPEG (points) | 95 % CI |\n|---|---|---|---|---:|---|")
        for r in cost.to_dict("records"):
            diff = r.get("lossless − JPEG (points)")
            ci = ("n/a" if diff is None or pd.isna(r.get("ci_low")) else f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]")
            out += (f"\n| {r['model']} | `{r['setting'] or 'paper'}` | {r['lossless4000 top-1']} | {r['jpeg4000 top-1']} | "
                    f"{'' if diff is None else f'{diff:+.2f}'} | {ci} |")
    return out


def generated_blocks() -> dict[str, str]:
    from gradattn.models import format_model_table

    return {"models-table": "\n\n".join([format_model_table(10, 3), format_model_table(10, 1)]),
            "findings-table": findings_table(), "findings-pairs": findings_pairs()}


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

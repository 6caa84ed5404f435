"""Check that every decimal number in the hand-written findings prose comes from a command.

The README's "In short" bullets and docs/findings.md are written by hand from ``python -m gradattn findings``.
When new runs land, those tables change and the prose can go stale. This check lists each decimal number in
the prose that nothing behind it shows at the precision written. "Behind it" means a findings table (text or
CSV), a committed run's own top-1, best validation accuracy, health scores or training time, or a number the
paper published (gradattn.paper).

The match is by value, not by place. So it catches stale and mistyped numbers, but not a right number quoted
in the wrong sentence. Integers are not checked, since they are mostly counts, epochs and seeds.
"""
from __future__ import annotations

import re
from pathlib import Path

DECIMAL = re.compile(r"(?<![\w.])[-+−]?(\d+\.\d+)(?![.\d])")
RUN_COLUMNS = ("top1", "best_val", "health_score_faithful", "health_score_corrected", "train_time_s")
README_MARKERS = ("<!-- findings-prose:start -->", "<!-- findings-prose:end -->")


def _forms(value: float) -> set[str]:
    return {f"{abs(value):.1f}", f"{abs(value):.2f}"}


def backed_numbers(df, profile: str = "paper") -> set[str]:
    """Every number the findings tables, the runs of `df` (findings.collect_results) and the paper's published
    data show, each as written with 1 and 2 decimals. Health scores are stored as fractions and quoted in %."""
    from gradattn import paper
    from gradattn.findings_text import TABLES, render

    values = []
    for fmt in ("text", "csv"):
        values += [float(number) for number in DECIMAL.findall(render(df, list(TABLES), profile, fmt))]
    for column in RUN_COLUMNS:
        if column in df:
            scale = 100.0 if column.startswith("health_score") else 1.0
            values += [scale * float(v) for v in df[column].dropna()]
    for run in paper.paper_runs():
        values += [float(v) for v in run.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    values += list(paper.HEALTH_SCORES.values())
    return set().union(*(_forms(v) for v in values)) if values else set()


def unbacked_numbers(text: str, backed: set[str]) -> list[tuple[str, str]]:
    """(number, the words around it) for each decimal number of `text` that is not in `backed`."""
    found = []
    for match in DECIMAL.finditer(text):
        if match.group(1) not in backed:
            context = " ".join(text[max(0, match.start() - 60):match.end() + 30].split())
            found.append((match.group(1), context))
    return found


def prose_of(path: Path) -> str:
    """The hand-written findings prose of a file: the README's block between README_MARKERS, else all of it."""
    text = Path(path).read_text()
    start, end = README_MARKERS
    if start in text:
        if end not in text:
            raise ValueError(f"{path}: {start} has no {end}; close the prose block")
        return text[text.index(start) + len(start):text.index(end)]
    return text


def check_prose(paths, df, profile: str = "paper") -> dict[str, list[tuple[str, str]]]:
    """{path: unbacked numbers} for each file of `paths` that has any (empty: all the prose is backed)."""
    backed = backed_numbers(df, profile)
    report = {str(path): unbacked_numbers(prose_of(path), backed) for path in paths}
    return {path: found for path, found in report.items() if found}

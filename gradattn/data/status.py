"""`python -m gradattn data status`: which datasets are on disk, where, how many images, from what source."""
from __future__ import annotations

from .errors import DataFormatError
from .registry import DATASETS
from .sources import SAMPLE_COUNTS, SAMPLE_FILE, count_location, data_root, locate, missing_message


def data_status(root=None) -> list[dict]:
    """One dict per dataset: dataset, present, path, counts, source, note, missing (what to place), problem."""
    rows = []
    for info in DATASETS.values():
        row = {"dataset": info.name, "present": False, "path": str(data_root(root) / info.name),
               "counts": {}, "source": "", "note": None, "missing": None, "problem": None}
        try:
            location = locate(info, root, unpack=False)
            if location is None:
                row["missing"] = missing_message(info, root)
            else:
                row.update(present=True, path=str(location.path), source=location.source(info),
                           note=location.manifest.get("note"), counts=count_location(info, location))
        except (DataFormatError, OSError) as e:
            row["problem"] = str(e)
        rows.append(row)
    return rows


def format_status(rows: list[dict]) -> str:
    """The status rows as a fixed-width table, with what to place under each absent dataset."""
    def counts(row):
        return " / ".join(f"{k} {v:,}" for k, v in row["counts"].items()) or "-"

    table = [("dataset", "present", "images per split", "source / path")]
    for row in rows:
        where = row["source"] if row["present"] else row["path"]
        table.append((row["dataset"], "yes" if row["present"] else "no", counts(row), where))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    lines = []
    for i, r in enumerate(table):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
        if i == 0:
            lines.append("-" * (sum(widths) + 6 + len(r[3])))
            continue
        row = rows[i - 1]
        if row.get("note"):
            lines.append(f"    note: {row['note']}")
        if row["problem"]:
            lines.append(f"    PROBLEM: {row['problem']}")
        elif row["missing"]:
            lines += ["    " + m.strip() for m in row["missing"].splitlines()]
    lines.append(f"\nembedded sample (offline default, labelled SAMPLE wherever used): fashionmnist "
                 f"{SAMPLE_COUNTS['train']:,} train / {SAMPLE_COUNTS['test']:,} test in {SAMPLE_FILE}")
    return "\n".join(lines)


def cli_status(root=None) -> int:
    """Print the status table; exit code 0 (absent datasets are normal, a broken one returns 1)."""
    rows = data_status(root)
    print(f"data root: {data_root(root)}")
    print(format_status(rows))
    return 1 if any(r["problem"] for r in rows) else 0

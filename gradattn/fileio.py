"""Atomic file writes: a temporary file in the target's folder, then os.replace.

Readers (and a run killed half-way) never see a half-written file: the target either keeps its old
content or has the new content whole. Used for checkpoints, run records, CSV tables, caches, notebooks and HTML.
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically, with the usual permissions (mkstemp alone would give 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_csv(path: str | os.PathLike, rows, columns, *, ignore_extra: bool = False) -> Path:
    """Write `rows` (dicts) under the header `columns` atomically, one "\\n" per line.

    Keys of a row missing from `columns` raise ValueError unless `ignore_extra`; columns a row lacks are
    left empty. Values are written with str(), so callers format floats as they want them kept."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n",
                            extrasaction="ignore" if ignore_extra else "raise")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())

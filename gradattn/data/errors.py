"""The two errors the data layer raises, so callers can tell "not there" from "there but wrong"."""
from __future__ import annotations


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not where we looked; the message names the files and where to put them."""


class DataFormatError(ValueError):
    """A dataset file exists but is unreadable or inconsistent; the message names the file and the problem."""

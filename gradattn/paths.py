"""Where the project's folders are: the repository root, outputs/ and the data root.

Notebooks run with notebooks/ as their working directory (Jupyter, nbval, papermill) and the library may be
installed without a checkout (Colab, Binder), so these are found, not assumed: environment variables first,
then a search upwards for the checkout, then the working directory.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_OUTPUTS = "GRADATTN_OUTPUTS"          # overrides <project>/outputs (used by `make test` for nbval)
ENV_ROOT = "GRADATTN_PROJECT_ROOT"        # overrides the project-root search


def _looks_like_root(path: Path) -> bool:
    return (path / "gradattn" / "__init__.py").is_file() and (path / "notebooks").is_dir()


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The repository root: $GRADATTN_PROJECT_ROOT, else the first folder at or above ``start`` (default:
    the working directory, which is ``notebooks/`` under Jupyter, nbval and papermill) holding
    ``gradattn/`` and ``notebooks/``, else the working directory itself (an installed package on
    Colab/Binder without a checkout)."""
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser().resolve()
    here = Path(start or os.getcwd()).resolve()
    for candidate in (here, *here.parents):
        if _looks_like_root(candidate):
            return candidate
    return here


def outputs_dir(root: str | os.PathLike | None = None) -> Path:
    """Where runs, results.csv, executed notebooks and the HTML site live: $GRADATTN_OUTPUTS, else
    ``<project root>/outputs``."""
    env = os.environ.get(ENV_OUTPUTS)
    if env:
        return Path(env).expanduser().resolve()
    return (Path(root) if root else project_root()) / "outputs"


def resolve_data_root(data_root: str | os.PathLike | None = None) -> str:
    """The data root as an absolute path: the argument, else $GRADATTN_DATA, else <project root>/data.

    (gradattn.data's own default is ./data relative to the working directory, which is notebooks/ under
    Jupyter, so notebooks resolve it here.)"""
    if data_root not in (None, ""):
        return str(Path(data_root).expanduser().resolve())
    env = os.environ.get("GRADATTN_DATA")
    return str(Path(env).expanduser().resolve()) if env else str(project_root() / "data")

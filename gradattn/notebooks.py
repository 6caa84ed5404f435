"""Execute the companion's notebooks, render them to HTML, and write the site's index (`make paper`).

The notebooks in ``notebooks/`` are thin: they call the library and show results. This module runs them:

- :func:`run_paper` executes every notebook with papermill for one profile (``02_train`` once per
  dataset, into ``outputs/notebooks/02_train_<dataset>.ipynb``), stops at the first failing notebook
  with its name and the failing cell's error (:class:`NotebookFailed`), then renders the HTML site.
- :func:`render_site` converts executed notebooks to ``outputs/html/*.html`` with nbconvert and writes
  ``outputs/html/index.html`` linking them (``make html``).
- :func:`refresh_committed` re-executes the committed notebooks in place with their default (quick)
  parameters so that GitHub readers and nbval see real outputs; volatile metadata is stripped.

Every file is written atomically (temporary file in the same folder, then ``os.replace``).
papermill, nbformat and nbconvert are imported lazily so ``import gradattn`` needs only torch and numpy.

Command line: ``python -m gradattn.notebooks {paper,html,refresh} [--profile quick|paper] ...``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import html as _html
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from gradattn.fileio import atomic_write_text
from gradattn.paths import ENV_OUTPUTS, ENV_ROOT, outputs_dir, project_root, resolve_data_root
from gradattn.report import profile_label

# Order of the site. 02_train is parameterised and executed once per dataset.
NOTEBOOKS = ("00_overview", "01_architecture", "02_train", "03_gradient_flow", "04_pe_study",
             "05_results")
TRAIN_NOTEBOOK = "02_train"
_log = partial(print, flush=True)


class NotebookFailed(RuntimeError):
    """A notebook raised while executing; names the notebook, the cell and the error."""

    def __init__(self, notebook: str, cell: int | None, ename: str, evalue: str, kept: Path | None):
        self.notebook, self.cell, self.ename, self.evalue, self.kept = notebook, cell, ename, evalue, kept
        where = f"cell {cell}" if cell is not None else "an unknown cell"
        msg = f"notebook {notebook} failed in {where}: {ename}: {evalue}"
        if kept is not None:
            msg += f"\n  the executed notebook (with the traceback) is kept at {kept}"
        super().__init__(msg)



# --------------------------------------------------------------------------------------------------
# execution
# --------------------------------------------------------------------------------------------------

@dataclass
class NotebookJob:
    """One papermill execution: which notebook, with which parameters, into which file."""

    name: str                     # notebook stem in notebooks/, e.g. "02_train"
    output: Path                  # executed notebook
    parameters: dict = field(default_factory=dict)
    label: str = ""               # shown in progress lines, e.g. "02_train [fashionmnist]"


def _error_cell(nb) -> tuple[int | None, str, str]:
    """Index (1-based, code cells counted as shown in Jupyter's In [n]) and error of the first error."""
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return cell.get("execution_count") or index, out.get("ename", "?"), out.get("evalue", "")
    return None, "", ""


def count_error_cells(nb) -> int:
    """How many cells of an executed notebook hold an error output."""
    return sum(any(o.get("output_type") == "error" for o in c.get("outputs", [])) for c in nb.cells)


def execute_notebook(source: str | os.PathLike, output: str | os.PathLike, parameters: dict | None = None,
                     cwd: str | os.PathLike | None = None, progress: bool = True,
                     kernel_name: str | None = None, env: dict | None = None, log_output: bool = False):
    """Execute ``source`` with papermill into ``output`` (atomically) and return the executed notebook.

    On an error the executed notebook is kept next to ``output`` as ``<stem>.failed.ipynb`` and
    :class:`NotebookFailed` names the notebook, the cell (Jupyter's ``In [n]``) and the error."""
    try:
        import papermill as pm
        from papermill.exceptions import PapermillExecutionError
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("executing notebooks needs papermill: pip install -e '.[notebooks]'") from exc
    source, output = Path(source), Path(output)
    if not source.is_file():
        raise FileNotFoundError(f"notebook {source} does not exist; run from the repository root "
                                f"(which holds notebooks/) or set {ENV_ROOT}")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.partial.ipynb")
    failed = output.with_name(f"{output.stem}.failed.ipynb")
    saved_env = {}
    for key, value in (env or {}).items():      # the kernel inherits os.environ
        saved_env[key] = os.environ.get(key)
        os.environ[key] = value
    try:
        nb = pm.execute_notebook(str(source), str(tmp), parameters=parameters or {},
                                 cwd=str(cwd or source.parent), progress_bar=progress,
                                 kernel_name=kernel_name, log_output=log_output)
    except PapermillExecutionError as exc:
        os.replace(tmp, failed)
        raise NotebookFailed(source.name, exc.exec_count, exc.ename, exc.evalue, failed) from None
    except BaseException:
        if tmp.exists():
            os.replace(tmp, failed)
        raise
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    os.replace(tmp, output)
    if failed.exists():
        failed.unlink()
    return nb


def train_datasets(profile: str, data_root: str | None = None) -> tuple[list[str], list[dict]]:
    """Datasets 02_train runs for a profile, and the rows of datasets that are absent (skipped).

    quick: the profile's datasets (embedded sample data, always present). paper: every dataset the
    profile lists that is present under the data root; absent ones are returned as skipped rows so the
    site reports them as absent (never silently replaced)."""
    from gradattn.profiles import PROFILES
    prof = PROFILES[profile]
    wanted = list(getattr(prof, "datasets", ()) or ())
    if getattr(prof, "sample", False) or profile == "quick":
        return wanted, []
    from gradattn.data import data_status
    rows = data_status(data_root)
    present, skipped = [], []
    by_name = {str(r.get("dataset", r.get("name"))): r for r in rows}
    for name in wanted or list(by_name):
        row = by_name.get(name, {})
        if row.get("present", row.get("status") == "present"):
            present.append(name)
        else:
            skipped.append({"dataset": name, **row})
    return present, skipped


def plan(profile: str = "quick", data_root: str | None = None, device: str = "auto",
         datasets: list[str] | None = None, out: Path | None = None) -> tuple[list[NotebookJob], list[dict]]:
    """The list of notebook executions for ``make paper`` (and the datasets skipped as absent)."""
    out = Path(out) if out else outputs_dir()
    nb_out = out / "notebooks"
    common = {"profile": profile, "data_root": data_root, "device": device}
    if datasets is None:
        datasets, skipped = train_datasets(profile, data_root)
    else:
        skipped = []
    jobs = []
    for name in NOTEBOOKS:
        if name == TRAIN_NOTEBOOK:
            for ds in datasets:
                jobs.append(NotebookJob(name, nb_out / f"{name}_{ds}.ipynb",
                                        {**common, "dataset": ds}, f"{name} [{ds}]"))
        else:
            jobs.append(NotebookJob(name, nb_out / f"{name}.ipynb", dict(common), name))
    return jobs, skipped


def run_paper(profile: str = "quick", data_root: str | None = None, device: str = "auto",
              datasets: list[str] | None = None, root: Path | None = None, out: Path | None = None,
              html: bool = True, progress: bool = True, log=None) -> dict:
    """Execute every notebook for ``profile`` (stopping at the first failure), then render the site.

    Returns ``{"executed": [(label, path, seconds)], "skipped": [...], "index": path}``."""
    log = log or _log
    root = Path(root) if root else project_root()
    out = Path(out) if out else outputs_dir(root)
    data_root = resolve_data_root(data_root) if data_root else None   # notebooks run in notebooks/
    jobs, skipped = plan(profile, data_root, device, datasets, out)
    for row in skipped:
        log(f"absent: {row['dataset']} is not under the data root and is reported as absent "
            f"(see 00_overview for how to get it)")
    executed = []
    env = {ENV_OUTPUTS: str(out)}
    if progress:   # stream what the notebooks print (one line per training run) while they run
        import logging
        pm_log = logging.getLogger("papermill")
        if not pm_log.handlers:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("    %(message)s"))
            noise = ("Executing Cell", "Ending Cell", "Executing notebook", "Input Notebook", "Output Notebook",
                     "Working directory", "<IPython.core.display", "<Figure")
            handler.addFilter(lambda record: not str(record.getMessage()).lstrip().startswith(noise)
                              and str(record.getMessage()).strip() != "")
            pm_log.addHandler(handler)
            pm_log.setLevel(logging.INFO)
            pm_log.propagate = False
    t_all = time.perf_counter()
    for i, job in enumerate(jobs, 1):
        log(f"[{i}/{len(jobs)}] executing {job.label} ...")
        t0 = time.perf_counter()
        execute_notebook(root / "notebooks" / f"{job.name}.ipynb", job.output, job.parameters,
                         cwd=root / "notebooks", progress=False, env=env, log_output=progress)
        seconds = time.perf_counter() - t0
        executed.append((job.label, job.output, seconds))
        log(f"[{i}/{len(jobs)}] {job.label} done in {seconds:.1f} s -> {job.output}")
    log(f"all {len(jobs)} notebooks executed in {time.perf_counter() - t_all:.1f} s")
    index = render_site(out, profile=profile, log=log) if html else None
    return {"executed": executed, "skipped": skipped, "index": index}


# --------------------------------------------------------------------------------------------------
# HTML site
# --------------------------------------------------------------------------------------------------

def _nb_title(nb, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _sort_key(path: Path) -> tuple:
    stem = path.stem
    for i, name in enumerate(NOTEBOOKS):
        if stem == name or stem.startswith(name + "_"):
            return (i, stem)
    return (len(NOTEBOOKS), stem)


def render_html(notebook: str | os.PathLike, html_path: str | os.PathLike) -> Path:
    """Render one notebook to a standalone HTML page (nbconvert's lab template), atomically."""
    import nbformat
    from nbconvert import HTMLExporter
    nb = nbformat.read(str(notebook), as_version=4)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    return atomic_write_text(html_path, body)


def render_site(out: Path | None = None, profile: str | None = None, source: Path | None = None,
                log=None) -> Path:
    """Render every executed notebook under ``<out>/notebooks`` (or, when none exist, the committed
    notebooks in ``notebooks/``, labelled so) into ``<out>/html`` and write ``index.html``."""
    import nbformat
    log = log or _log
    out = Path(out) if out else outputs_dir()
    src = Path(source) if source else out / "notebooks"
    notebooks = sorted((p for p in src.glob("*.ipynb") if not p.name.endswith(".failed.ipynb")
                        and not p.name.startswith(".")), key=_sort_key) if src.is_dir() else []
    provenance = f"executed notebooks in {src}"
    if not notebooks and source is None:
        src = project_root() / "notebooks"
        notebooks = sorted(src.glob("[0-9]*.ipynb"), key=_sort_key)
        provenance = ("the committed notebooks in notebooks/ with their committed quick-profile outputs "
                      "(run `make paper` to execute them here)")
    if not notebooks:
        raise FileNotFoundError(f"no notebooks to render in {src}; run `make paper` first")
    html_dir = out / "html"
    entries = []
    for i, path in enumerate(notebooks, 1):
        nb = nbformat.read(str(path), as_version=4)
        page = html_dir / f"{path.stem}.html"
        render_html(path, page)
        meta = nb.metadata.get("papermill", {})
        entries.append({
            "page": page.name, "title": _nb_title(nb, path.stem), "stem": path.stem,
            "errors": count_error_cells(nb), "seconds": meta.get("duration"),
            "parameters": meta.get("parameters", {}),
        })
        log(f"[html {i}/{len(notebooks)}] {path.name} -> {page}")
    index = write_index(html_dir, entries, profile=profile, provenance=provenance)
    log(f"site index: {index}")
    return index


def write_index(html_dir: Path, entries: list[dict], profile: str | None = None,
                provenance: str = "") -> Path:
    """Write ``index.html`` linking every rendered page, with its status and execution time."""
    if profile is None:
        profiles = {e["parameters"].get("profile") for e in entries if e["parameters"].get("profile")}
        profile = profiles.pop() if len(profiles) == 1 else None
    label = profile_label(profile) if profile else "committed outputs (quick profile)"
    rows = []
    for e in entries:
        status = "ok" if e["errors"] == 0 else f"{e['errors']} error cell(s)"
        seconds = f"{e['seconds']:.1f} s" if isinstance(e["seconds"], (int, float)) else "–"
        params = ", ".join(f"{k}={v}" for k, v in e["parameters"].items()
                           if k in ("dataset", "profile", "device") and v is not None)
        rows.append(
            f"<tr><td><a href=\"{_html.escape(e['page'])}\">{_html.escape(e['stem'])}</a></td>"
            f"<td>{_html.escape(e['title'])}</td><td>{_html.escape(params)}</td>"
            f"<td class=\"{'ok' if e['errors'] == 0 else 'err'}\">{status}</td><td>{seconds}</td></tr>")
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>GradAttn companion: notebooks</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }} th, td {{ text-align: left; padding: .4rem .6rem;
border-bottom: 1px solid #ddd; }} .ok {{ color: #1a7f37; }} .err {{ color: #b00020; font-weight: bold; }}
.label {{ background: #fff4ce; padding: .5rem .8rem; border-left: 4px solid #e0a800; }}
</style></head><body>
<h1>GradAttn companion: rendered notebooks</h1>
<p>Reproduction of <i>GradAttn: Replacing Fixed Residual Connections with Task-Modulated Attention
Pathways</i> (arXiv 2603.26756): the paper's protocol (defects included) and a corrected protocol, side by side.</p>
<p class="label"><b>{_html.escape(label)}</b></p>
<table><thead><tr><th>notebook</th><th>title</th><th>parameters</th><th>status</th><th>execution time</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<p>Source: {_html.escape(provenance)}. Rendered {stamp} by <code>python -m gradattn.notebooks</code>.</p>
</body></html>
"""
    return atomic_write_text(Path(html_dir) / "index.html", page)


# --------------------------------------------------------------------------------------------------
# committed notebooks
# --------------------------------------------------------------------------------------------------

def strip_volatile_metadata(nb):
    """Remove papermill's absolute paths, timestamps and durations (committed notebooks stay diff-clean)."""
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    return nb


# Notebooks that only show quick-profile runs which other notebooks train.
SHOWS_RUNS_OF = {"05_results": ("02_train", "04_pe_study")}


def _check_runs_to_show(names: list[str], root: Path) -> None:
    """Refuse to refresh a notebook that shows other notebooks' runs when none are under outputs/ and those
    notebooks do not run before it: its committed tables would become "no runs yet"."""
    from gradattn.findings import collect_results
    for i, name in enumerate(names):
        producers = SHOWS_RUNS_OF.get(name, ())
        if producers and not set(producers) & set(names[:i]) and collect_results("quick", root).empty:
            raise FileNotFoundError(
                f"{name} shows the quick-profile runs that {' and '.join(producers)} train, and "
                f"{outputs_dir(root)} holds none: run `make paper` first, or refresh them together "
                f"(python -m gradattn.notebooks refresh {' '.join(producers)} {name})")


REFRESH_THREADS = 2   # the committed outputs' CPU thread count (and the CI machine's core count)


def refresh_committed(names: list[str] | None = None, root: Path | None = None,
                      progress: bool = True, log=None, threads: int = REFRESH_THREADS) -> list[Path]:
    """Re-execute the committed notebooks in place with their default (quick) parameters, on `threads`
    CPU threads: CPU training is bit-for-bit repeatable at a fixed thread count, so a refresh on an
    unchanged library reproduces the committed quick-profile numbers on any machine of the same kind of CPU
    with at least `threads` cores (torch caps the count at the cores there are)."""
    import nbformat
    if threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    log = log or _log
    root = Path(root) if root else project_root()
    names = list(names or NOTEBOOKS)
    _check_runs_to_show(names, root)
    written = []
    for name in names:
        path = root / "notebooks" / f"{name}.ipynb"
        log(f"refreshing {path} ({threads} CPU threads) ...")
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            nb = execute_notebook(path, Path(tmp) / path.name, cwd=path.parent, progress=progress,
                                  env={"OMP_NUM_THREADS": str(threads)})
        strip_volatile_metadata(nb)
        atomic_write_text(path, nbformat.writes(nb) + "\n")
        log(f"  done in {time.perf_counter() - t0:.1f} s")
        written.append(path)
    return written


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradattn.notebooks",
                                     description="Execute and render the companion's notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("paper", help="execute every notebook for a profile, then render the HTML site")
    p.add_argument("--profile", default="quick", help="quick (default, CPU, sample data) or paper")
    p.add_argument("--data-root", default=None, help="data root (default: the library's default)")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    p.add_argument("--datasets", default=None,
                   help="comma-separated datasets for 02_train (default: the profile's)")
    p.add_argument("--no-html", action="store_true", help="execute only")
    h = sub.add_parser("html", help="render executed notebooks (outputs/notebooks) to outputs/html")
    h.add_argument("--profile", default=None, help="label for the index (default: from the notebooks)")
    r = sub.add_parser("refresh", help="re-execute the committed notebooks in place (quick defaults)")
    r.add_argument("names", nargs="*", help="notebook stems (default: all)")
    r.add_argument("--threads", type=int, default=REFRESH_THREADS,
                   help=f"CPU threads of the kernels (default {REFRESH_THREADS}, the committed outputs')")
    args = parser.parse_args(argv)
    try:
        if args.command == "paper":
            profile_label(args.profile)  # validates the name early
            datasets = args.datasets.split(",") if args.datasets else None
            run_paper(args.profile, args.data_root or None, args.device, datasets, html=not args.no_html)
        elif args.command == "html":
            render_site(profile=args.profile)
        else:
            refresh_committed(args.names or None, threads=args.threads)
    except NotebookFailed as exc:
        print(f"\nERROR: {exc}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as exc:
        print(f"\nERROR: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

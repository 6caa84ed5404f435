"""The notebook site: committed notebooks, papermill execution, HTML rendering, Make/Binder wiring.

nbval itself runs from `make test` (pytest --nbval-lax notebooks/); these tests check the machinery
around it: that the committed notebooks are thin, parameterised and carry error-free outputs, that
02_train executes under papermill with tiny parameters and writes its run directory, that a failing
notebook is reported with its name and cell, and that the HTML site and its index are written.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("papermill")

from gradattn import notebooks, paths, report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
COMMON_PARAMETERS = ("profile", "data_root", "device")
TRAIN_PARAMETERS = ("dataset", "models", "protocol", "seeds", "epochs", *COMMON_PARAMETERS)
MAX_CELL_LINES = 25          # "thin": logic lives in gradattn/, notebooks call it


def _read(name: str):
    return nbformat.read(str(NB_DIR / f"{name}.ipynb"), as_version=4)


def _parameter_names(nb) -> set[str]:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell must be tagged `parameters` (papermill)"
    return set(re.findall(r"^(\w+)\s*=", cells[0].source, flags=re.M))


@pytest.mark.parametrize("name", notebooks.NOTEBOOKS)
def test_committed_notebook_is_thin_parameterised_and_colab_ready(name):
    nb = _read(name)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    first = code[0].source
    assert 'REPO_URL = "https://github.com/<owner>/gradattn"' in first
    assert '"google.colab" in sys.modules' in first and "pip" in first
    names = _parameter_names(nb)
    wanted = TRAIN_PARAMETERS if name == notebooks.TRAIN_NOTEBOOK else COMMON_PARAMETERS
    assert set(wanted) <= names, f"{name}: parameters cell lacks {set(wanted) - names}"
    for cell in code:
        assert len(cell.source.splitlines()) <= MAX_CELL_LINES, f"{name}: a code cell is not thin:\n{cell.source}"
        assert "def " not in cell.source and "class " not in cell.source, f"{name}: logic belongs in gradattn/"


@pytest.mark.parametrize("name", notebooks.NOTEBOOKS)
def test_committed_notebook_carries_quick_outputs_without_errors(name):
    nb = _read(name)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{name}: commit it executed (quick profile)"
    assert notebooks.count_error_cells(nb) == 0
    text = json.dumps([c.outputs for c in code])
    assert "quick profile: not the paper's numbers" in text
    assert "papermill" not in nb.metadata, "volatile papermill metadata must be stripped before committing"


def test_deterministic_cells_are_marked_for_nbval():
    marked = {name: sum("# NBVAL_CHECK_OUTPUT" in c.source for c in _read(name).cells if c.cell_type == "code")
              for name in notebooks.NOTEBOOKS}
    assert marked["01_architecture"] >= 2          # parameter-count and tap-shape tables
    assert marked["05_results"] >= 1               # the paper's published table
    # marked cells must not depend on training: none of them may call ensure_runs
    for name in notebooks.NOTEBOOKS:
        for cell in _read(name).cells:
            if "# NBVAL_CHECK_OUTPUT" in cell.source:
                assert "ensure_runs" not in cell.source and "collect_results" not in cell.source


def test_parameter_table_output_matches_paper_counts():
    nb = _read("01_architecture")
    cell = next(c for c in nb.cells if "parameter_table()" in c.source)
    text = "".join(o.get("text", "") for o in cell.outputs)
    hits, total = report.parameter_agreement()
    assert hits == total > 0
    assert f"{hits} of the paper's {total} printed parameter counts reproduced exactly" in text


def test_sanitize_file_neutralises_volatile_output():
    from nbval.plugin import get_sanitize_patterns
    patterns = get_sanitize_patterns((ROOT / "tests" / "nbval_sanitize.cfg").read_text())
    assert len(patterns) >= 6

    def clean(text):
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    a = "<object at 0x7f3a2b1c9d10> trained in 12.3 s at 2026-03-01 10:11:12 /home/u/x/outputs/runs 45%|####  | 9/20"
    b = "<object at 0x55aa00112233> trained in 7 s at 2025-12-31 23:59:00 /work/main/outputs/runs 100%|######| 20/20"
    assert clean(a) == clean(b)
    assert clean("11,181,642 ✓") == "11,181,642 ✓"     # numbers that matter are untouched


def test_execute_failure_names_notebook_cell_and_error(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_code_cell("raise ValueError('broken on purpose')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "bad.ipynb"
    nbformat.write(nb, str(src))
    out = tmp_path / "out" / "bad.ipynb"
    with pytest.raises(notebooks.NotebookFailed) as err:
        notebooks.execute_notebook(src, out, progress=False)
    message = str(err.value)
    assert "bad.ipynb" in message and "cell 2" in message and "ValueError: broken on purpose" in message
    assert not out.exists(), "no half-executed notebook under the final name"
    kept = tmp_path / "out" / "bad.failed.ipynb"
    assert kept.exists() and notebooks.count_error_cells(nbformat.read(str(kept), as_version=4)) == 1
    assert not list((tmp_path / "out").glob(".*partial*"))


def test_cli_reports_failure_with_exit_code(tmp_path, monkeypatch, capsys):
    def boom(*args, **kwargs):
        raise notebooks.NotebookFailed("02_train.ipynb", 7, "RuntimeError", "diverged", None)
    monkeypatch.setattr(notebooks, "run_paper", boom)
    assert notebooks.main(["paper", "--profile", "quick"]) == 1
    assert "02_train.ipynb failed in cell 7: RuntimeError: diverged" in capsys.readouterr().err
    assert notebooks.main(["paper", "--profile", "nonsense"]) == 2
    assert "unknown profile 'nonsense'" in capsys.readouterr().err


def test_plan_runs_02_once_per_dataset(tmp_path):
    jobs, skipped = notebooks.plan("quick", out=tmp_path, datasets=["fashionmnist", "cifar10"])
    labels = [j.label for j in jobs]
    assert labels == ["00_overview", "01_architecture", "02_train [fashionmnist]", "02_train [cifar10]",
                      "03_gradient_flow", "04_pe_study", "05_results"]
    assert jobs[2].output == tmp_path / "notebooks" / "02_train_fashionmnist.ipynb"
    assert jobs[3].parameters["dataset"] == "cifar10" and jobs[3].parameters["profile"] == "quick"
    assert skipped == []
    jobs, _ = notebooks.plan("quick", out=tmp_path)
    from gradattn.profiles import PROFILES
    assert [j.parameters["dataset"] for j in jobs if j.name == "02_train"] == list(PROFILES["quick"].datasets)


def test_paper_profile_reports_absent_datasets(tmp_path):
    present, skipped = notebooks.train_datasets("paper", str(tmp_path / "empty-data-root"))
    from gradattn.profiles import PROFILES
    assert set(present) | {s["dataset"] for s in skipped} == set(PROFILES["paper"].datasets)
    assert {s["dataset"] for s in skipped} >= {"svhn", "pcam", "padufes20"}   # never available offline
    assert all(s["missing"] for s in skipped)


def test_paths_follow_environment(tmp_path, monkeypatch):
    assert paths.project_root(NB_DIR) == ROOT
    monkeypatch.setenv(paths.ENV_OUTPUTS, str(tmp_path / "o"))
    assert paths.outputs_dir() == tmp_path / "o"
    monkeypatch.delenv("GRADATTN_DATA", raising=False)
    monkeypatch.chdir(NB_DIR)
    assert paths.resolve_data_root(None) == str(ROOT / "data")
    assert paths.resolve_data_root("rel") == str(NB_DIR / "rel")



def test_refreshing_05_alone_without_quick_runs_is_refused(tmp_path, monkeypatch, capsys):
    """05_results only shows runs that 02 and 04 train; refreshed alone on a fresh checkout it would commit
    "no runs yet" in place of its tables, so it stops, names the fix and leaves the notebook as it was."""
    (tmp_path / "notebooks").mkdir()
    committed = (NB_DIR / "05_results.ipynb").read_text()
    (tmp_path / "notebooks" / "05_results.ipynb").write_text(committed)
    monkeypatch.setenv(paths.ENV_OUTPUTS, str(tmp_path / "outputs"))
    with pytest.raises(FileNotFoundError, match=r"run `make paper` first.*refresh 02_train 04_pe_study 05_results"):
        notebooks.refresh_committed(["05_results"], root=tmp_path)
    assert (tmp_path / "notebooks" / "05_results.ipynb").read_text() == committed
    notebooks._check_runs_to_show(["02_train", "05_results"], tmp_path)         # trained before it: fine
    with pytest.raises(FileNotFoundError):
        notebooks._check_runs_to_show(["05_results", "02_train"], tmp_path)     # trained after it: refused
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "results.csv").write_text(
        "run_key,dataset,model,model_tag,protocol,seed,is_sample,top1\n"
        "fashionmnist/resnet18-e3-sample/paper/seed0,fashionmnist,resnet18,resnet18-e3-sample,paper,0,True,50.0\n")
    notebooks._check_runs_to_show(["05_results"], tmp_path)                     # runs present: fine

def test_a_refresh_pins_the_kernels_cpu_threads_and_restores_the_callers(monkeypatch, tmp_path):
    """A refresh reproduces the committed quick-profile numbers only at their thread count: its kernels run
    torch with that many threads (execute_notebook's env), and the caller's environment comes back."""
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("import torch\nprint('threads', torch.get_num_threads())")]
    nbformat.write(nb, str(tmp_path / "notebooks" / "threads.ipynb"))
    monkeypatch.setattr(notebooks, "NOTEBOOKS", ("threads",))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    notebooks.refresh_committed(root=tmp_path, progress=False, threads=1, log=lambda *a: None)
    refreshed = nbformat.read(str(tmp_path / "notebooks" / "threads.ipynb"), as_version=4)
    assert refreshed.cells[0].outputs[0]["text"] == "threads 1\n"   # (torch caps a larger count at the cores)
    assert notebooks.os.environ["OMP_NUM_THREADS"] == "2"
    with pytest.raises(ValueError, match="--threads must be at least 1, got 0"):
        notebooks.refresh_committed(["00_overview"], root=tmp_path, threads=0)


def test_notebooks_open_with_setup_which_prints_the_device_with_its_thread_count(capsys, monkeypatch):
    import torch

    label = report.device_label("cpu")
    assert label.startswith("cpu (") and label.endswith(f", {torch.get_num_threads()} threads)"), label
    monkeypatch.delenv("GRADATTN_DATA", raising=False)
    assert report.setup("quick", "cpu", None) == ("cpu", str(ROOT / "data"))
    assert capsys.readouterr().out == f"{report.profile_label('quick')} | device: {label}\n"
    for name in notebooks.NOTEBOOKS:
        assert any("report.setup(profile, device, data_root)" in c.source
                   for c in _read(name).cells if c.cell_type == "code"), name


@pytest.mark.slow
def test_papermill_02_train_tiny_run(tmp_path):
    """02_train under papermill with a tiny parameter set: executed notebook and run directory."""
    out = tmp_path / "outputs"
    executed = out / "notebooks" / "02_train_fashionmnist.ipynb"
    params = {"dataset": "fashionmnist", "models": ["gradattn_nope_d32"], "protocol": "corrected",
              "seeds": [0], "epochs": 1, "profile": "quick", "device": "cpu"}
    nb = notebooks.execute_notebook(NB_DIR / "02_train.ipynb", executed, params, progress=False,
                                    env={paths.ENV_OUTPUTS: str(out), "OMP_NUM_THREADS": "1"})
    assert executed.exists() and notebooks.count_error_cells(nb) == 0
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "gradattn_nope_d32" in injected[0].source
    run_dir = out / "runs" / "fashionmnist" / "gradattn_nope_d32-e1-sample" / "corrected" / "seed0"
    for name in ("config.json", "history.csv", "metrics.json", "gradflow.json", "checkpoint.pt"):
        assert (run_dir / name).is_file(), f"{name} missing in {run_dir}"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and metrics["is_sample"] is True
    text = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert f"{100 * metrics['test']['accuracy']:.2f} %" in text       # the notebook shows what was run
    assert "image/png" in text                                        # curves, confusion matrix, attention
    assert (out / "results.csv").exists()

    # the same executed notebook renders into the HTML site with an index linking it
    index = notebooks.render_site(out, profile="quick", log=lambda m: None)
    page = out / "html" / "02_train_fashionmnist.html"
    assert page.exists() and "attention per class" in page.read_text()
    html = index.read_text()
    assert 'href="02_train_fashionmnist.html"' in html and "quick profile: not the paper&#x27;s numbers" in html
    assert ">ok<" in html and "dataset=fashionmnist" in html
    assert not list((out / "html").glob(".*.tmp"))


def test_makefile_targets_install_first_and_run_nbval():
    text = (ROOT / "Makefile").read_text()
    assert re.search(r"^paper: \$\(STAMP\)", text, re.M) and re.search(r"^test: \$\(STAMP\)", text, re.M)
    assert "-m gradattn.notebooks paper --profile $(PROFILE)" in text
    assert re.search(r"^html: ", text, re.M) and re.search(r"^lab: ", text, re.M)
    assert "--nbval-lax" in text and "--nbval-sanitize-with tests/nbval_sanitize.cfg" in text
    assert re.search(r"^PROFILE \?= quick", text, re.M)


def test_environment_yml_builds_the_notebook_extra():
    yaml = pytest.importorskip("yaml")
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert any(p.startswith("torch==") for p in pip) and "-e .[notebooks]" in pip

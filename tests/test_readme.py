"""The README's model table is generated; it must match what the registry computes now."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _updater():
    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "scripts" / "update_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_model_table_is_current():
    updater = _updater()
    text = (ROOT / "README.md").read_text()
    assert updater.render(text, updater.generated_blocks()) == text, "README.md is stale: run `make readme`"


def test_readme_names_the_test_command_that_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci

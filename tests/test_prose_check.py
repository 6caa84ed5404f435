"""`python -m gradattn check-prose`: decimal numbers in the findings prose must be backed by a table, a run or
the paper; the repository's own README and docs/findings.md must pass."""
from pathlib import Path

import pandas as pd
import pytest

from gradattn import cli, findings
from gradattn.prose_check import backed_numbers, check_prose, prose_of, unbacked_numbers
from gradattn.results import load_results, run_setting

ROOT = Path(__file__).resolve().parents[1]
TOP1 = {"resnet18": [90.0, 91.0, 92.5], "gradattn_lpe": [89.0, 91.5, 91.25]}


def runs():
    rows = [("fashionmnist", model, model, "corrected", seed, acc, 1.0, 0.875, 0, False)
            for model, values in TOP1.items() for seed, acc in enumerate(values)]
    df = pd.DataFrame(rows, columns=["dataset", "model", "model_tag", "protocol", "seed", "top1",
                                     "health_score_faithful", "health_score_corrected", "num_dead_layers",
                                     "is_sample"])
    df["setting"] = [run_setting(m, t) for m, t in zip(df["model"], df["model_tag"])]
    df["run_key"] = [f"test-only/{m}/corrected/seed{s}" for m, s in zip(df["model"], df["seed"])]
    return df


def test_numbers_from_tables_runs_and_the_paper_are_backed_others_are_not():
    backed = backed_numbers(runs())
    text = ("ResNet-18 reaches 91.17 % (mean of 3 seeds; seed 2: 92.5 %), LPE's health score is 87.5 %, "
            "LPE − ResNet-18 is −0.58; the paper's ResNet-18 had 64.11 %; over 8 epochs and 3 seeds; "
            "LPE 93.21 % and 12.3 points")
    found = unbacked_numbers(text, backed)
    assert [number for number, _ in found] == ["93.21", "12.3"]
    assert "LPE 93.21 % and" in found[0][1]               # the words around it, to find the sentence


def test_readme_prose_is_the_marked_block_and_an_unclosed_block_is_an_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("Speed 13.05x\n<!-- findings-prose:start -->\nLPE 91.25 %\n<!-- findings-prose:end -->\n")
    assert prose_of(readme).strip() == "LPE 91.25 %"
    assert check_prose([readme], runs()) == {}
    readme.write_text("<!-- findings-prose:start -->\nLPE 91.25 %\n")
    with pytest.raises(ValueError, match="findings-prose:end"):
        prose_of(readme)


def test_the_repositorys_findings_prose_is_backed_by_the_committed_runs(tmp_path, monkeypatch):
    """Fails when new runs change a table the README or docs/findings.md quotes: update the prose with them."""
    monkeypatch.setenv("GRADATTN_OUTPUTS", str(tmp_path))       # the committed results only, not this machine's
    df = findings.collect_results("paper", ROOT)
    assert len(df) == len(load_results(ROOT / "results" / "results.csv").query("not is_sample"))
    report = check_prose([ROOT / "README.md", ROOT / "docs" / "findings.md"], df)
    assert report == {}, "numbers no command backs (stale or mistyped); see `python -m gradattn check-prose`"


def test_cli_lists_unbacked_numbers_and_exits_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRADATTN_OUTPUTS", str(tmp_path / "outputs"))
    prose = tmp_path / "notes.md"
    prose.write_text("ResNet-18 reached 12.3456 and 99.99 %.\n")
    assert cli.main(["check-prose", str(prose)]) == 1
    out = capsys.readouterr().out
    assert "99.99 is in no findings table" in out and "12.3456" in out
    assert cli.main(["check-prose", str(tmp_path / "absent.md")]) == cli.USAGE_ERROR
    assert "no such file" in capsys.readouterr().err

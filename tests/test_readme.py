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


def test_findings_table_groups_seeds_and_sets_the_paper_beside(tmp_path):
    from gradattn.results import append_result

    updater = _updater()
    for seed, top1 in ((0, 0.90), (1, 0.92)):
        append_result({"run_key": f"fashionmnist/resnet18/corrected/seed{seed}", "dataset": "fashionmnist",
                       "model": "resnet18", "model_tag": "resnet18", "protocol": "corrected", "seed": seed,
                       "is_sample": False, "epochs": 20, "best_epoch": 13, "top1": 100 * top1,
                       "health_score_faithful": 1.0, "health_score_corrected": 1.0, "device": "NVIDIA H100"},
                      tmp_path / "results.csv")
    table = updater.findings_table(tmp_path / "results.csv")
    row = [line for line in table.splitlines() if "`resnet18`" in line]
    assert len(row) == 1
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    assert cells[3] == "2" and cells[5] == "91.00 ± 12.71" and cells[7] == "64.11"   # t(0.975, 1) = 12.706
    assert cells[6] == "1.41"                  # the seeds' sample std, sqrt(2)
    assert cells[8] == ""                      # corrected protocol: the paper's number is not expected
    assert updater.findings_table(tmp_path / "absent.csv").startswith("_No full-data runs")


def test_findings_pairs_match_seeds_within_a_setting_and_report_the_jpeg_cost(tmp_path):
    from gradattn.results import append_result

    updater = _updater()
    path = tmp_path / "results.csv"
    base = {"dataset": "cifar10", "protocol": "corrected", "is_sample": False, "epochs": 20, "best_epoch": 9,
            "device": "cpu"}
    for seed, (r18, lpe) in enumerate(((80.0, 81.0), (82.0, 84.0), (81.0, 82.0))):
        for model, top1 in (("resnet18", r18), ("gradattn_lpe", lpe)):
            append_result({**base, "run_key": f"cifar10/{model}-e20/corrected/seed{seed}", "model": model,
                           "model_tag": f"{model}-e20", "seed": seed, "top1": top1}, path)
        for variant, top1 in (("lossless4000", 50.0 + seed), ("jpeg4000", 49.0 + seed)):
            append_result({**base, "run_key": f"cifar10/resnet18-{variant}-e20/corrected/seed{seed}",
                           "model": "resnet18", "model_tag": f"resnet18-{variant}-e20", "variant": variant,
                           "seed": seed, "top1": top1}, path)
    text = updater.findings_pairs(path)
    pair_rows = [line for line in text.splitlines() if "| gradattn_lpe |" in line]
    assert len(pair_rows) == 1                       # the 4,000-image variants are not paired with full data
    cells = [c.strip() for c in pair_rows[0].strip("|").split("|")]
    assert cells[2] == "`e20`" and cells[4] == "3" and cells[5] == "+1.33"
    assert cells[7] == "s0 +1.00, s1 +2.00, s2 +1.00"            # the single differences behind +1.33
    jpeg_rows = [line for line in text.splitlines() if line.startswith("| resnet18 |")]
    assert len(jpeg_rows) == 1 and "+1.00" in jpeg_rows[0] and "(n=3)" in jpeg_rows[0]
    assert jpeg_rows[0].endswith("| s0 +1.00, s1 +1.00, s2 +1.00 |")
    assert updater.findings_pairs(tmp_path / "absent.csv").startswith("_No full-data runs")
    table = updater.findings_table(path)
    variant_rows = [line for line in table.splitlines() if "4000-e20`" in line]
    assert len(variant_rows) == 2 and all("n/a (variant" in line and "14.07" not in line for line in variant_rows)
    full = [line for line in table.splitlines() if "`resnet18-e20`" in line]
    assert len(full) == 1 and "| 14.07 |" in full[0]


def test_findings_label_runs_on_a_declared_subset(tmp_path):
    from gradattn.results import append_result

    updater = _updater()
    path = tmp_path / "results.csv"
    for seed, top1 in ((0, 30.0), (1, 32.0)):
        for model, gain in (("resnet18", 0.0), ("gradattn_rope", 1.5)):
            append_result({"run_key": f"tinyimagenet/{model}/paper/seed{seed}", "dataset": "tinyimagenet",
                           "model": model, "model_tag": model, "protocol": "paper", "seed": seed,
                           "is_sample": False, "epochs": 20, "best_epoch": 9, "top1": top1 + gain, "device": "cpu",
                           "data_source": "local files x (ImageFolder; a SUBSET of train: counts declared in "
                                          "MANIFEST.json)"}, path)
    table = updater.findings_table(path)
    rows = [line for line in table.splitlines() if line.startswith("| tinyimagenet")]
    assert len(rows) == 2 and all(line.startswith("| tinyimagenet (train subset) |") for line in rows)
    pairs = [line for line in updater.findings_pairs(path).splitlines() if "gradattn_rope" in line]
    assert len(pairs) == 1 and pairs[0].startswith("| tinyimagenet (train subset) |") and "+1.50" in pairs[0]


def test_findings_coverage_counts_full_data_seeds_per_cell(tmp_path):
    from gradattn.results import append_result

    updater = _updater()
    path = tmp_path / "results.csv"
    for seed in (0, 1, 2):
        append_result({"run_key": f"cifar10/resnet18-e8/paper/seed{seed}", "dataset": "cifar10", "model": "resnet18",
                       "model_tag": "resnet18-e8", "protocol": "paper", "stem": "imagenet", "seed": seed,
                       "is_sample": False, "top1": 10.0}, path)
    append_result({"run_key": "fashionmnist/resnet18/paper/seed0", "dataset": "fashionmnist", "model": "resnet18",
                   "model_tag": "resnet18", "protocol": "paper", "stem": "imagenet", "seed": 0, "is_sample": True,
                   "top1": 60.0}, path)                                   # the embedded sample does not count
    best, own = updater.findings_coverage(path).split("\n\n**")
    lines = best.splitlines()
    assert "best-covered setting" in lines[0] and "1 of 75 cells have 3 seeds" in lines[0]
    assert "paper's own settings" in own.splitlines()[0] and "0 of 75 cells have 3 seeds" in own.splitlines()[0]
    header = [c.strip() for c in lines[2].strip("|").split("|")]
    rows = {cells[0]: dict(zip(header, cells)) for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in lines[4:])}
    assert rows["cifar10 · paper · imagenet stem"]["resnet18"] == "3/3"
    assert rows["fashionmnist · paper · imagenet stem"]["resnet18"] == "0/3"
    assert rows["fashionmnist · paper · imagenet stem"]["plain18"] == ""
    assert len(rows) == 9 and len(header) == 10
    own_rows = [line for line in own.splitlines() if line.startswith("| cifar10 · paper")]
    assert own_rows[0].split("|")[2].strip() == "0/3"                   # 8-epoch runs are not the paper's budget


def test_findings_verdicts_judge_each_claim_from_the_committed_runs(tmp_path):
    from gradattn.results import append_result

    updater = _updater()
    path = tmp_path / "results.csv"
    for seed, gain in enumerate((10.0, 12.0, 11.0)):       # GradAttn-LPE +11.0 [+8.52, +13.48] vs ResNet-18
        for model, top1 in (("resnet18", 64.0 + seed), ("gradattn_lpe", 64.0 + seed + gain)):
            append_result({"run_key": f"fashionmnist/{model}/paper/seed{seed}", "dataset": "fashionmnist",
                           "model": model, "model_tag": model, "protocol": "paper", "seed": seed,
                           "is_sample": False, "epochs": 30, "best_epoch": 20, "top1": top1, "device": "cpu"}, path)
    lines = updater.findings_verdicts(path).splitlines()
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])}
    assert len(rows) == 4 and all(len(cells) == 2 for cells in rows.values())
    fmnist = next(cells for claim, cells in rows.items() if "+11.07" in claim)
    assert fmnist[0] == "**reproduced**" and "gradattn_lpe +11.00 [+8.52, +13.48], n=3" in fmnist[1]
    wins = next(cells for claim, cells in rows.items() if "5 of 8" in claim)
    assert wins[0] == "**not tested here**" and "1 of 1 datasets" in wins[1]
    assert updater.findings_verdicts(tmp_path / "absent.csv").startswith("_No full-data runs")


def test_findings_pairs_list_the_ablation_ladder_when_its_models_ran(tmp_path):
    from gradattn.results import append_result

    updater = _updater()
    path = tmp_path / "results.csv"
    for seed in (0, 1):
        for model, top1 in (("resnet18", 88.0 + seed), ("plain18", 85.0), ("gradattn_mlp", 86.0 + 2 * seed)):
            append_result({"run_key": f"fashionmnist/{model}-e8/corrected/seed{seed}", "dataset": "fashionmnist",
                           "model": model, "model_tag": f"{model}-e8", "protocol": "corrected", "seed": seed,
                           "is_sample": False, "epochs": 8, "best_epoch": 8, "top1": top1, "device": "cpu"}, path)
    text = updater.findings_pairs(path)
    rows = [line for line in text.splitlines() if " − plain18 |" in line and not line.startswith("| dataset")]
    assert len(rows) == 2
    cells = {line.split("|")[4].strip(): [c.strip() for c in line.strip("|").split("|")] for line in rows}
    assert cells["resnet18 − plain18"][4:7] == ["residual connections", "2", "+3.50"]
    assert cells["gradattn_mlp − plain18"][4:7] == ["five tapped tokens (MLP head) over global pooling", "2", "+2.00"]
    assert "gradattn_nope − gradattn_mlp" not in text            # No-PE did not run: that step is left out
    over_plain = text[text.index("| model − plain18 |"):].splitlines()
    assert over_plain[2] == ("| fashionmnist | corrected | `e8` | gradattn_mlp | 2 | +2.00 | [-10.71, +14.71] | "
                             "s0 +1.00, s1 +3.00 |")
    assert len([line for line in over_plain if line.startswith("| fashionmnist")]) == 1   # ResNet-18 is no variant


def test_relative_links_in_the_docs_point_at_files_that_exist():
    import re

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
    broken = []
    for page in (p for p in pages if p.exists()):
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue                                           # a URL or an anchor on the same page
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, f"links to missing files: {broken}"


def test_findings_pairs_show_what_the_reduced_budget_changes(tmp_path):
    from gradattn.results import append_result

    updater = _updater()
    path = tmp_path / "results.csv"
    for seed in range(3):
        for tag, top1 in (("resnet18", 24.0 + seed), ("resnet18-e8", 21.0 + seed)):
            append_result({"run_key": f"tinyimagenet/{tag}/paper/seed{seed}", "dataset": "tinyimagenet",
                           "model": "resnet18", "model_tag": tag, "protocol": "paper", "seed": seed,
                           "is_sample": False, "top1": top1, "device": "cpu"}, path)
    rows = [line for line in updater.findings_pairs(path).splitlines() if "| `e8` |" in line]
    assert rows == ["| tinyimagenet | paper | paper's | resnet18 | `e8` | 25.00 | 22.00 | 3 + 3 | +3.00 | "
                    "[+0.73, +5.27] |"]   # Welch: se sqrt(2/3), df 4, t 2.776 -> half-width 2.27


def test_findings_pairs_show_what_the_small_image_stem_changes(tmp_path):
    from gradattn.results import append_result

    updater = _updater()
    path = tmp_path / "results.csv"
    for seed in range(2):
        for tag, stem, top1 in (("resnet18-e8", "imagenet", 88.0 + seed), ("resnet18-cifarstem-e8", "cifar", 91.0)):
            append_result({"run_key": f"fashionmnist/{tag}/corrected/seed{seed}", "dataset": "fashionmnist",
                           "model": "resnet18", "model_tag": tag, "protocol": "corrected", "seed": seed,
                           "stem": stem, "is_sample": False, "top1": top1, "device": "cpu"}, path)
    text = updater.findings_pairs(path)
    assert "What the small-image stem changes" in text
    rows = [line for line in text.splitlines() if line.startswith("| fashionmnist | corrected | `e8` | resnet18 | 88.50")]
    assert rows == ["| fashionmnist | corrected | `e8` | resnet18 | 88.50 (n=2) | 91.00 (n=2) | 2 | +2.50 | "
                    "[-3.85, +8.85] | s0 +3.00, s1 +2.00 |"]   # gains 3 and 2: sd 0.707, t(1) 12.706 -> half-width 6.35

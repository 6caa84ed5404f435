"""Coverage of the reproduction grid: which cells (dataset, protocol, stem, model) have how many seeds."""
import pandas as pd

from gradattn.profiles import ABLATION_MODELS, PAPER_MODELS, reproduction_grid
from gradattn.findings import coverage_matrix, coverage_table


def runs(rows):
    cols = ["dataset", "model", "model_tag", "protocol", "stem", "variant", "seed"]
    return pd.DataFrame(rows, columns=cols)


def cell(table, **where):
    mask = pd.Series(True, index=table.index)
    for key, value in where.items():
        mask &= table[key] == value
    assert mask.sum() == 1, where
    return table[mask].iloc[0]


def test_grid_has_the_papers_models_under_its_protocol_and_the_ablations_with_both_stems_corrected():
    grid = reproduction_grid(("cifar10",))
    paper = [c for c in grid if c["protocol"] == "paper"]
    corrected = [c for c in grid if c["protocol"] == "corrected"]
    assert [c["model"] for c in paper] == list(PAPER_MODELS) and {c["stem"] for c in paper} == {"imagenet"}
    assert len(corrected) == 2 * (len(PAPER_MODELS) + len(ABLATION_MODELS))
    assert {(c["stem"], c["model"]) for c in corrected} >= {("cifar", "plain18"), ("imagenet", "gradattn_mlp")}
    assert len({tuple(c.values()) for c in grid}) == len(grid)
    from gradattn.models import list_models
    assert set(PAPER_MODELS + ABLATION_MODELS) == set(list_models())       # every registered model is in it


def test_seeds_are_counted_per_setting_and_variants_do_not_count():
    df = runs([("cifar10", "resnet18", "resnet18-e8", "paper", "imagenet", None, s) for s in (0, 1, 2)]
              + [("cifar10", "resnet18", "resnet18-e8", "paper", "imagenet", None, 2)]       # a rerun: same seed
              + [("cifar10", "resnet18", "resnet18", "paper", "imagenet", None, 42)]
              + [("cifar10", "gradattn_lpe", "gradattn_lpe-cifarstem-e8", "corrected", "cifar", "", s)
                 for s in (0, 1)]
              + [("cifar10", "resnet18", "resnet18-jpeg4000-e20", "corrected", "imagenet", "jpeg4000", s)
                 for s in (0, 1, 2)])
    table = coverage_table(df, datasets=("cifar10",))
    r18 = cell(table, protocol="paper", stem="imagenet", model="resnet18")
    assert (r18["seeds"], r18["missing"], r18["runs (setting: seeds)"]) == (3, 0, "paper settings: 1; e8: 3")
    lpe = cell(table, protocol="corrected", stem="cifar", model="gradattn_lpe")
    assert (lpe["seeds"], lpe["missing"], lpe["runs (setting: seeds)"]) == (2, 1, "cifarstem-e8: 2")
    corrected_r18 = cell(table, protocol="corrected", stem="imagenet", model="resnet18")
    assert (corrected_r18["seeds"], corrected_r18["missing"]) == (0, 3)       # only the 4,000-image variant ran
    assert len(table) == len(reproduction_grid(("cifar10",)))


def test_matrix_marks_cells_outside_the_grid_blank():
    table = coverage_table(runs([("fashionmnist", "resnet18", "resnet18-e8", "paper", "imagenet", None, 0)]),
                           datasets=("fashionmnist",))
    matrix = coverage_matrix(table)
    assert list(matrix.columns) == list(PAPER_MODELS + ABLATION_MODELS)
    assert matrix.loc["fashionmnist · paper · imagenet stem", "resnet18"] == "1/3"
    assert matrix.loc["fashionmnist · paper · imagenet stem", "plain18"] == ""
    assert matrix.loc["fashionmnist · corrected · cifar stem", "plain18"] == "0/3"
    assert matrix.shape == (3, len(PAPER_MODELS) + len(ABLATION_MODELS))


def test_seeds_at_the_papers_own_settings_are_counted_apart_from_shorter_budgets():
    df = runs([("cifar10", "resnet18", "resnet18-e8", "paper", "imagenet", None, s) for s in (0, 1, 2)]
              + [("cifar10", "resnet18", "resnet18", "paper", "imagenet", None, 0)]
              + [("cifar10", "gradattn_lpe", "gradattn_lpe-cifarstem", "corrected", "cifar", None, s) for s in (0, 1)]
              + [("cifar10", "gradattn_lpe", "gradattn_lpe-cifarstem-e8", "corrected", "cifar", None, 2)])
    table = coverage_table(df, datasets=("cifar10",))
    r18 = cell(table, protocol="paper", stem="imagenet", model="resnet18")
    assert (r18["seeds"], r18["paper settings"]) == (3, 1)
    lpe = cell(table, protocol="corrected", stem="cifar", model="gradattn_lpe")     # the stem is the cell's own
    assert (lpe["seeds"], lpe["paper settings"]) == (2, 2)
    own = coverage_matrix(table, column="paper settings")
    assert own.loc["cifar10 · paper · imagenet stem", "resnet18"] == "1/3"
    assert coverage_matrix(table).loc["cifar10 · paper · imagenet stem", "resnet18"] == "3/3"

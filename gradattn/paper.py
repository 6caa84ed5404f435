"""The paper's published numbers, as data (SPEC 1.6, 4.2, 4.3 and 5).

These are the figures the authors' notebooks printed (the arXiv v1 tables reproduce them, SPEC 4.2), kept here
so tables and notebooks can put them beside ours without anyone typing them again. Model names are this
package's registry names: the authors' "No-PE" is `gradattn_nope_d32` (d=32, 16 heads, ff=2) in the runs that
fed arXiv v1 and `gradattn_nope` (d=256) in the May-2026 reruns.

`RUNS` is tidy: one record per printed run. Fields that a run did not print are None. Accuracies are percent,
the other scores fractions, `train_time_s` seconds of wall clock on an unknown Colab GPU.
"""
from __future__ import annotations

_FIELDS = ("epochs", "best_epoch", "best_val", "last_val", "top1", "top3", "top5", "macro_precision",
           "macro_recall", "macro_f1", "weighted_f1", "mean_confidence", "entropy", "ece", "loss")


def _hms(text: str) -> int:
    """'1h07m' / '20m22s' -> seconds."""
    total, number = 0, ""
    for ch in text:
        if ch.isdigit():
            number += ch
        else:
            total += int(number) * {"h": 3600, "m": 60, "s": 1}[ch]
            number = ""
    return total


def _run(dataset, model, version, values, time, in_table=True):
    record = dict(zip(_FIELDS, values))
    record.update(dataset=dataset, model=model, version=version, train_time_s=_hms(time), in_paper_table=in_table)
    return record


_ = None
# (epochs, best_epoch, best_val, last_val, top1, top3, top5, macro P, R, F1, weighted F1, conf, entropy, ECE, loss)
RUNS: list[dict] = [
    _run("tinyimagenet", "resnet18", "Aug-2025",
         (21, 14, 33.91, 33.46, 33.21, 50.75, 58.76, .3285, .3311, .3279, .3304, .677, 1.060, .345, 4.211), "20m22s"),
    _run("tinyimagenet", "gradattn_nope_d32", "Aug-2025",
         (31, 24, 35.18, 33.84, 33.39, 52.24, 60.82, .3255, .3341, .3272, .3286, .457, 1.993, .123, 3.045), "27m53s"),
    _run("tinyimagenet", "gradattn_lpe", "Aug-2025",
         (36, 29, 35.67, 34.98, 34.85, 52.78, 62.05, .3417, .3489, .3425, .3439, .537, 1.641, .188, 3.156), "32m25s"),
    _run("tinyimagenet", "gradattn_rope", "Aug-2025",
         (37, 30, 38.61, 38.43, 38.28, 57.34, 65.73, .3753, .3821, .3762, .3784, .549, 1.620, .166, 2.872), "35m20s"),

    _run("cifar10", "resnet18", "v1",
         (30, 23, 15.90, 14.71, 14.07, 37.90, 54.11, .0796, .1434, .0810, .0798, .604, 1.105, .463, 3.919), "16m57s"),
    _run("cifar10", "gradattn_nope_d32", "v1",
         (30, 23, 12.86, 12.73, 12.12, 39.04, 59.50, .2724, .1238, .0704, .0696, .638, 1.093, .517, 3.522), "17m10s"),
    _run("cifar10", "gradattn_lpe", "v1",
         (15, 8, 14.69, 13.31, 13.68, 31.89, 53.99, .1490, .1380, .0613, .0610, .533, 1.242, .396, 3.703), "8m29s"),
    _run("cifar10", "gradattn_rope", "v1",
         (30, 23, 13.68, 13.56, 12.51, 36.40, 57.26, .1362, .1280, .0675, .0664, .586, 1.145, .461, 3.798), "17m23s"),

    _run("svhn", "se_resnet18", "May-2026",
         (21, 14, 97.95, 97.90, 97.94, 99.44, 99.73, _, _, .9784, _, _, _, .0113, _), "1h10m", in_table=False),
    _run("svhn", "cbam_resnet18", "May-2026",
         (25, 18, 98.01, 97.86, 97.99, 99.46, 99.72, _, _, .9790, _, _, _, .0107, _), "1h37m", in_table=False),
    _run("svhn", "resnet18", "Aug-2025",
         (23, 16, 98.08, 98.02, 97.98, 99.42, 99.70, _, _, .9789, _, _, _, .0113, _), "1h07m"),
    _run("svhn", "gradattn_nope", "May-2026",
         (24, 17, 98.11, 98.03, 98.09, 99.44, 99.74, _, _, .9800, _, _, _, .0126, _), "1h20m", in_table=False),
    _run("svhn", "gradattn_nope_d32", "Aug-2025",
         (23, 16, 98.16, 98.08, 98.12, 99.47, 99.73, _, _, .9806, _, _, _, .0123, _), "1h15m"),
    _run("svhn", "gradattn_lpe", "Aug-2025",
         (21, 14, 98.15, 98.04, 98.09, 99.42, 99.71, _, _, .9800, _, _, _, .0131, _), "1h12m"),
    _run("svhn", "gradattn_rope", "Aug-2025",
         (28, 21, 98.14, 98.05, 98.15, 99.46, 99.72, _, _, .9807, _, _, _, .0119, _), "1h35m"),

    _run("fashionmnist", "se_resnet18", "May-2026",
         (8, 1, 69.83, 63.05, 63.11, 90.79, 97.25, .6503, .6256, .5696, _, _, _, .189, _), "5m02s", in_table=False),
    _run("fashionmnist", "cbam_resnet18", "May-2026",
         (10, 3, 71.61, 67.01, 66.98, 94.53, 98.87, .6906, .6655, .6260, _, _, _, .186, _), "6m54s", in_table=False),
    _run("fashionmnist", "resnet18", "Aug-2025",
         (12, 5, 71.18, 64.18, 64.11, 92.21, 98.06, .6621, .6361, .5852, _, _, _, .193, _), "7m16s"),
    _run("fashionmnist", "gradattn_nope", "May-2026",
         (12, 5, 70.85, 66.66, 66.70, 92.28, 98.35, .6809, .6613, .6089, _, _, _, .183, _), "7m29s", in_table=False),
    _run("fashionmnist", "gradattn_nope_d32", "Aug-2025",
         (10, 3, 74.25, 70.37, 70.41, 95.80, 99.12, .7426, .6979, .6469, _, _, _, .155, _), "6m14s"),
    _run("fashionmnist", "gradattn_lpe", "Aug-2025",
         (18, 11, 76.16, 75.18, 75.18, 96.93, 99.30, .7596, .7480, .7207, _, _, _, .121, _), "11m15s"),
    _run("fashionmnist", "gradattn_rope", "Aug-2025",
         (16, 9, 71.27, 62.05, 62.40, 90.38, 95.57, .6780, .6189, .5714, _, _, _, .214, _), "10m23s"),

    _run("tissuemnist", "resnet18", "v1",
         (26, 19, 70.00, 69.79, 69.88, 93.83, 98.55, .6306, .6091, .6167, .6948, _, _, .067, _), "1h02m"),
    _run("tissuemnist", "gradattn_nope_d32", "v1",
         (34, 27, 70.47, 70.45, 70.69, 94.06, 98.63, .6439, .6216, .6279, .7026, _, _, .031, _), "1h27m"),
    _run("tissuemnist", "gradattn_lpe", "v1",
         (31, 24, 70.17, 69.93, 69.88, 93.92, 98.64, .6318, .6125, .6175, .6945, _, _, .039, _), "1h19m"),
    _run("tissuemnist", "gradattn_rope", "v1",
         (31, 24, 70.02, 69.76, 69.72, 93.98, 98.63, .6324, .6095, .6157, .6924, _, _, .033, _), "1h22m"),

    _run("bloodmnist", "resnet18", "v1",
         (25, 18, 96.85, 96.73, 95.97, 99.82, 99.94, _, _, .9560, _, _, _, .013, _), "5m13s"),
    _run("bloodmnist", "gradattn_nope", "Sep-2025",
         (29, 22, 96.96, 96.85, 96.23, 99.85, 99.88, _, _, .9584, _, _, _, .008, _), "5m44s", in_table=False),
    _run("bloodmnist", "gradattn_nope_d32", "Aug-2025",
         (29, 22, 96.55, 96.50, 96.26, 99.91, 99.94, _, _, .9581, _, _, _, .007, _), "6m14s"),
    _run("bloodmnist", "gradattn_lpe", "v1",
         (36, 29, 95.68, 95.50, 95.70, 99.91, 99.97, _, _, .9527, _, _, _, .008, _), "7m47s"),
    _run("bloodmnist", "gradattn_rope", "v1",
         (40, 33, 96.96, 96.67, 95.59, 99.85, 99.94, _, _, .9513, _, _, _, .011, _), "8m51s"),

    _run("pcam", "resnet18", "v1",
         (10, 3, 87.86, 84.33, 80.71, _, _, .8419, .8070, .8020, _, _, _, .150, _), "34m52s"),
    _run("pcam", "gradattn_nope_d32", "v1",
         (13, 6, 89.20, 84.38, 80.06, _, _, .8413, .8005, .7944, _, _, _, .146, _), "42m08s"),
    _run("pcam", "gradattn_lpe", "v1",
         (16, 9, 88.40, 82.41, 79.74, _, _, .8389, .7973, .7910, _, _, _, .150, _), "52m37s"),
    _run("pcam", "gradattn_rope", "v1",
         (13, 6, 87.86, 84.42, 79.82, _, _, .8385, .7981, .7919, _, _, _, .142, _), "42m56s"),

    _run("padufes20", "resnet18", "v1",
         (34, 27, 57.56, 55.81, 55.49, 89.60, 99.13, .4061, .3559, .3600, .5086, _, _, .024, _), "44m09s"),
    _run("padufes20", "gradattn_nope_d32", "v1",
         (11, 4, 47.97, 44.19, 44.51, 84.97, 98.84, .1954, .2172, .1941, .3787, _, _, .059, _), "14m02s"),
    _run("padufes20", "gradattn_lpe", "v1",
         (36, 29, 53.20, 53.20, 50.58, 88.44, 98.84, .3497, .3002, .3041, .4731, _, _, .032, _), "46m08s"),
    _run("padufes20", "gradattn_rope", "v1",
         (32, 25, 52.03, 50.58, 47.69, 86.42, 98.55, .4672, .3132, .3102, .4309, _, _, .037, _), "42m00s"),
]

# Faithful gradient health score (%) printed per run (SPEC 5). The No-PE column of the runs that fed the
# paper's table is d=32, except SVHN where both widths were printed.
HEALTH_SCORES: dict[tuple[str, str], float] = {
    **{(d, "resnet18"): 100.0 for d in ("tinyimagenet", "cifar10", "fashionmnist", "tissuemnist",
                                          "bloodmnist", "pcam", "padufes20")},
    ("svhn", "resnet18"): 90.48,
    **{(d, "gradattn_nope_d32"): 91.43 for d in ("tinyimagenet", "cifar10", "fashionmnist", "tissuemnist",
                                                   "bloodmnist", "padufes20")},
    ("pcam", "gradattn_nope_d32"): 68.57, ("svhn", "gradattn_nope_d32"): 68.57, ("svhn", "gradattn_nope"): 80.00,
    ("tinyimagenet", "gradattn_lpe"): 68.57, ("cifar10", "gradattn_lpe"): 91.43, ("svhn", "gradattn_lpe"): 91.43,
    ("fashionmnist", "gradattn_lpe"): 91.43, ("tissuemnist", "gradattn_lpe"): 80.00,
    ("bloodmnist", "gradattn_lpe"): 91.43, ("pcam", "gradattn_lpe"): 80.00, ("padufes20", "gradattn_lpe"): 91.43,
    ("tinyimagenet", "gradattn_rope"): 82.93, ("cifar10", "gradattn_rope"): 92.68, ("svhn", "gradattn_rope"): 63.41,
    ("fashionmnist", "gradattn_rope"): 92.68, ("tissuemnist", "gradattn_rope"): 92.68,
    ("bloodmnist", "gradattn_rope"): 92.68, ("pcam", "gradattn_rope"): 78.05, ("padufes20", "gradattn_rope"): 92.68,
    ("svhn", "se_resnet18"): 78.38, ("fashionmnist", "se_resnet18"): 97.30,
    ("svhn", "cbam_resnet18"): 88.89, ("fashionmnist", "cbam_resnet18"): 100.0,
}

# Parameter counts printed by the notebooks (SPEC 1.6), keyed by (model, num_classes, in_chans).
PARAM_COUNTS: dict[tuple[str, int, int], int] = {
    ("resnet18", 10, 3): 11_181_642, ("resnet18", 10, 1): 11_175_370, ("resnet18", 200, 3): 11_279_112,
    ("resnet18", 8, 3): 11_180_616, ("resnet18", 2, 3): 11_177_538, ("resnet18", 6, 3): 11_179_590,
    ("gradattn_nope_d32", 10, 3): 11_049_488, ("gradattn_nope_d32", 10, 1): 11_043_216,
    ("gradattn_nope_d32", 200, 3): 11_055_758, ("gradattn_nope_d32", 8, 3): 11_049_422,
    ("gradattn_nope_d32", 2, 3): 11_049_224, ("gradattn_nope_d32", 6, 3): 11_049_356,
    ("gradattn_nope", 10, 3): 12_849_994, ("gradattn_nope", 10, 1): 12_843_722, ("gradattn_nope", 8, 3): 12_849_480,
    ("gradattn_lpe", 10, 3): 12_851_274, ("gradattn_lpe", 10, 1): 12_845_002, ("gradattn_lpe", 200, 3): 12_900_104,
    ("gradattn_lpe", 8, 3): 12_850_760, ("gradattn_lpe", 2, 3): 12_849_218, ("gradattn_lpe", 6, 3): 12_850_246,
    ("gradattn_rope", 10, 3): 12_847_690, ("gradattn_rope", 10, 1): 12_841_418, ("gradattn_rope", 200, 3): 12_896_520,
    ("gradattn_rope", 8, 3): 12_847_176, ("gradattn_rope", 2, 3): 12_845_634, ("gradattn_rope", 6, 3): 12_846_662,
    ("se_resnet18", 10, 3): 11_268_682, ("se_resnet18", 10, 1): 11_262_410,
    ("cbam_resnet18", 10, 3): 11_269_466, ("cbam_resnet18", 10, 1): 11_263_194,
}

# The abstract's claims, checked by 05_results.ipynb.
CLAIMS: dict[str, str] = {
    "wins_5_of_8": "GradAttn beats ResNet-18 on 5 of 8 datasets",
    "fmnist_plus_11_07": "best gain +11.07 points top-1 on FashionMNIST, at comparable size",
    "controlled_instabilities": "attention-induced 'controlled instabilities' in gradient flow (health score "
                                "below ResNet-18's) coincide with better generalisation",
    "pe_dataset_dependent": "the benefit of positional encoding is dataset dependent; the CNN hierarchy often "
                            "suffices",
}

GRADATTN_MODELS = ("gradattn_nope_d32", "gradattn_nope", "gradattn_lpe", "gradattn_rope")


def paper_runs(dataset: str | None = None, in_paper_table: bool | None = None) -> list[dict]:
    """The published runs, optionally for one dataset and only those in (or outside) the paper's table."""
    return [r for r in RUNS
            if (dataset is None or r["dataset"] == dataset)
            and (in_paper_table is None or r["in_paper_table"] == in_paper_table)]


def paper_top1(dataset: str, model: str) -> float | None:
    """Test top-1 (%) the paper reports for one model; the run in the paper's table wins over reruns."""
    runs = sorted(paper_runs(dataset), key=lambda r: not r["in_paper_table"])
    for run in runs:
        if run["model"] == model:
            return run["top1"]
    return None


def best_gradattn_gain(dataset: str) -> tuple[str, float]:
    """(best GradAttn variant, its top-1 minus ResNet-18's) among the runs in the paper's table."""
    table = {r["model"]: r["top1"] for r in paper_runs(dataset, in_paper_table=True)}
    best = max((m for m in GRADATTN_MODELS if m in table), key=table.__getitem__)
    return best, round(table[best] - table["resnet18"], 2)


def paper_table():
    """The paper's top-1 table (SPEC 4.2) as a pandas DataFrame: datasets x models, runs in the paper's table."""
    import pandas as pd

    rows = paper_runs(in_paper_table=True)
    return (pd.DataFrame(rows).pivot(index="dataset", columns="model", values="top1")
            .reindex(columns=["resnet18", *GRADATTN_MODELS[:1], *GRADATTN_MODELS[2:]]))

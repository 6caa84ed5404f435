"""Run profiles: which grid of runs a notebook, `make paper` or `python -m gradattn sweep` trains.

- ``quick``: the embedded Fashion-MNIST sample, a few epochs, one seed, every GradAttn variant beside
  ResNet-18 and the plain (non-residual) ablation. CPU-friendly; shows that the pipeline works end to
  end, never the paper's numbers (its label says so on every table and figure).
- ``paper``: the full datasets, the paper's protocol and the corrected one, 100 epochs with early
  stopping, three seeds, every registered model. Seed 42 (the authors') is the first.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gradattn.train import STEMS, ConfigError, TrainConfig, sweep

ALL_DATASETS = ("tinyimagenet", "cifar10", "svhn", "fashionmnist", "tissuemnist", "bloodmnist", "pcam",
                "padufes20")
PAPER_MODELS = ("resnet18", "se_resnet18", "cbam_resnet18", "gradattn_nope", "gradattn_nope_d32",
                "gradattn_lpe", "gradattn_rope")
ABLATION_MODELS = ("plain18", "gradattn_mlp")
ALL_MODELS = PAPER_MODELS + ABLATION_MODELS
OFFLINE_DATASETS = ("fashionmnist", "cifar10", "tinyimagenet")   # the three in ../shared/data


def reproduction_grid(datasets=OFFLINE_DATASETS) -> list[dict]:
    """The cells that test the paper's claims on each dataset, as {dataset, protocol, stem, model}.

    Under the paper protocol: the paper's seven models with its (ImageNet) stem, to recover its numbers.
    Under the corrected protocol: the same models plus the two ablations (no residuals at all; an MLP in place
    of attention), with the paper's stem and the small-image one, to see what holds once the defects are
    fixed. `gradattn.findings.coverage_table` counts how many seeds of each cell have run."""
    arms = (("paper", PAPER_MODELS, ("imagenet",)), ("corrected", PAPER_MODELS + ABLATION_MODELS, STEMS))
    return [dict(dataset=d, protocol=p, stem=st, model=m)
            for d in datasets for p, models, stems in arms for st in stems for m in models]


@dataclass(frozen=True)
class Profile:
    """A grid of runs plus the training settings shared by all of them."""

    name: str
    label: str                          # shown on every table and figure made from this profile
    datasets: tuple
    models: tuple
    protocols: tuple
    seeds: tuple
    stems: tuple = ("imagenet",)
    epochs: int = 100
    sample: bool = False
    max_train_samples: int | None = None
    gradflow_batches: int = 20
    grad_sample_every: int = 0          # gradient norms during training (gradnorms.csv), 0: off

    def train_config(self, **overrides) -> TrainConfig:
        """A TrainConfig with this profile's shared settings (first grid point unless overridden)."""
        settings = dict(dataset=self.datasets[0], model=self.models[0], protocol=self.protocols[0],
                        seed=self.seeds[0], stem=self.stems[0], epochs=self.epochs, sample=self.sample,
                        max_train_samples=self.max_train_samples, gradflow_batches=self.gradflow_batches,
                        grad_sample_every=self.grad_sample_every)
        settings.update(overrides)
        return TrainConfig(**settings)

    def configs(self, **overrides) -> list[TrainConfig]:
        """Every run of the grid, in sweep order."""
        base = self.train_config(**overrides)
        return [dataclasses.replace(base, dataset=d, model=m, protocol=p, stem=st, seed=s)
                for d in self.datasets for m in self.models for p in self.protocols
                for st in self.stems for s in self.seeds]

    def run(self, datasets=None, skip_missing: bool = True, on_result=None, **overrides) -> list[dict]:
        """Train (or skip, when finished) every run of the grid; absent datasets are reported."""
        return sweep(self.train_config(**overrides), datasets=list(datasets or self.datasets),
                     models=list(self.models), protocols=list(self.protocols), seeds=list(self.seeds),
                     stems=list(self.stems), skip_missing=skip_missing, on_result=on_result)


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick", label="quick profile: not the paper's numbers",
        datasets=("fashionmnist",),
        models=("resnet18", "plain18", "gradattn_mlp", "gradattn_nope", "gradattn_lpe", "gradattn_rope"),
        protocols=("paper", "corrected"), seeds=(0,), epochs=3, sample=True, gradflow_batches=2,
        grad_sample_every=5),
    "paper": Profile(
        name="paper", label="paper profile: the paper's protocol and the corrected one, full data",
        datasets=ALL_DATASETS, models=ALL_MODELS, protocols=("paper", "corrected"), seeds=(42, 43, 44),
        epochs=100, gradflow_batches=20, grad_sample_every=100),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; valid: {', '.join(PROFILES)}")
    return PROFILES[name]

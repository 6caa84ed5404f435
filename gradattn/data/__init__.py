"""Datasets: registry, canonical-format readers, the paper and corrected protocols, PIL transforms, status.

    splits = load_splits("cifar10", protocol="paper")        # uint8 arrays (tensor path)
    datasets = build_torch_datasets(splits)                   # torchvision-style Datasets (PIL path)
"""
from .errors import DataFormatError, DatasetNotFoundError
from .prepare import cli_prepare
from .registry import DATASETS, Augment, DatasetInfo, get_info, list_datasets
from .sources import VARIANTS, data_root, load_splits, locate
from .splits import PROTOCOLS, ArraySplit, DatasetSplits, wrap_like_to_pil_image
from .status import cli_status, data_status, format_status
from .transforms import build_torch_datasets, paper_transforms

__all__ = [
    "DATASETS", "PROTOCOLS", "VARIANTS", "ArraySplit", "Augment", "DataFormatError", "DatasetInfo",
    "DatasetNotFoundError", "DatasetSplits", "build_torch_datasets", "cli_prepare", "cli_status", "data_root",
    "data_status", "format_status", "get_info", "list_datasets", "load_splits", "locate", "paper_transforms",
    "wrap_like_to_pil_image",
]

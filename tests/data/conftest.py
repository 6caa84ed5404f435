"""Pytest fixtures for the data tests; the file-set writers live in data_fixtures.py."""
from __future__ import annotations

import numpy as np
import pytest

from data_fixtures import RNG_SEED, WRITERS


@pytest.fixture
def rng():
    return np.random.default_rng(RNG_SEED)


@pytest.fixture(scope="module")
def fixture_roots(tmp_path_factory):
    """One written file set per dataset, shared by a module's read-only tests."""
    roots = {}

    def get(name):
        if name not in roots:
            root = tmp_path_factory.mktemp(f"root_{name}")
            roots[name] = (root, WRITERS[name](root, np.random.default_rng(RNG_SEED)))
        return roots[name]
    return get

import numpy as np
import pytest

import labkit as lk


@pytest.fixture(scope="session")
def digits():
    """The default train/test split (seed 0)."""
    return lk.data.digits(seed=0)


@pytest.fixture
def tiny():
    """A 40-row, 4-class dataset of 1x4x4 images, for fast contract checks."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 10)
    X = np.clip(rng.normal(0.2 + 0.2 * y[:, None, None, None], 0.05, (40, 1, 4, 4)), 0, 1)
    return lk.Dataset(X, y, 4, "tiny")

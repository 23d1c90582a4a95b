import os

import numpy as np
import pytest

from shenjing import backend
from shenjing.backend import jit

DATASETS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets")


@pytest.fixture(autouse=True)
def _fresh_settings():
    """Every test starts from the default settings and a fixed seed."""
    backend.set_floatx("float32")
    backend.set_image_data_format("channels_last")
    backend.set_random_seed(1234)
    backend.clear_session()
    yield
    backend.set_floatx("float32")
    jit.set_enabled(None)


@pytest.fixture
def float64():
    backend.set_floatx("float64")
    yield
    backend.set_floatx("float32")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def datasets_dir():
    path = os.path.abspath(DATASETS)
    if not os.path.isdir(path):
        pytest.skip("../shared/datasets is not present")
    return path

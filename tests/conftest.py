"""Fixtures shared by the tests."""

import numpy as np
import pytest

from gumbelkit.harness.executors import torch_threads


@pytest.fixture
def one_thread():
    """Run torch on one CPU thread, restored afterwards: for tests made of many tiny operations,
    which a second intra-op thread on a loaded 2-core machine slows down many times over."""
    with torch_threads(1):
        yield


@pytest.fixture
def no_validation():
    """Turn gumbelkit's value validation off for one test, and restore the setting afterwards."""
    import gumbelkit as gk

    previous = gk.validation_enabled()
    gk.set_validation(False)
    try:
        yield
    finally:
        gk.set_validation(previous)


@pytest.fixture(scope="session")
def fashion_dir(tmp_path_factory):
    """Small 8x8 Fashion-MNIST-like idx files (300 training and 40 test images): blobs of two
    brightnesses on a dark ground, so that experiments on the data run without the package."""
    from .workloads.test_data import _write_split

    directory = tmp_path_factory.mktemp("fashion")
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 300), ("t10k", 40)):
        labels = rng.integers(0, 2, size=count, dtype=np.uint8)
        images = rng.integers(0, 40, size=(count, 8, 8), dtype=np.uint8)
        images[:, 2:6, 2:6] += np.where(labels, 200, 100).astype(np.uint8)[:, None, None]
        _write_split(directory, prefix, images, labels, compressed=True)
    return directory


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: builds something outside the test process (a virtual environment); "
        "deselect with -m 'not slow'")

"""Fixtures shared by the tests."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Run torch on one CPU thread, restored afterwards: for tests made of many tiny operations,
    which a second intra-op thread on a loaded 2-core machine slows down many times over."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: builds something outside the test process (a virtual environment); "
        "deselect with -m 'not slow'")

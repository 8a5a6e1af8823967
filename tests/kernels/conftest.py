"""Where the Triton kernels run in these tests: compiled on a CUDA device when there is one,
otherwise in Triton's interpreter on CPU tensors (``TRITON_INTERPRET=1``, set before Triton is
imported)."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

KERNEL_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture
def triton_gumbel():
    """The Triton module, or a skip where Triton is not installed."""
    pytest.importorskip("triton")
    from gumbelkit.kernels import triton_gumbel

    return triton_gumbel

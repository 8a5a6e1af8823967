"""The CPU kernels in C++ (``cpu_native.cpp``), built on first use.

Eager calls of :func:`gumbelkit.kernels.gumbel_max` and :func:`gumbelkit.kernels.gumbel_softmax`
on a contiguous float32 or float64 CPU tensor run these (with a temperature that is one number
and needs no gradient): the values of the Python CPU path (:mod:`gumbelkit.kernels.cpu`) bit
for bit, over its chunks, the same gradients, double backward included, in one call instead of
a dozen tensor operations per chunk; at small sizes those operations' fixed costs, about a
microsecond each, were most of a call's time (``tests/kernels/test_cpu_native.py`` checks the
values; ``gumbelkit bench kernels`` times them).

The extension is compiled once per machine, torch version and source with torch's JIT builder
(``torch.utils.cpp_extension.load``: a C++ compiler and ninja; 12 to 15 s on the project's CPU,
benchmarks/RESULTS.md; cached under ``TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``). Where it cannot be built
(no compiler), or with ``GUMBELKIT_NATIVE=0`` in the environment, the Python CPU path serves the
same calls, with the same values, and a warning says so once.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import torch

__all__ = ["DTYPES", "SOURCE", "library"]

SOURCE = Path(__file__).with_name("cpu_native.cpp")
DTYPES = (torch.float32, torch.float64)
# a tensor of one chunk, and (``_chunks``) one of several, with the chunk size and the rule of
# gumbelkit._ops.short_rows as arguments
OPS = ("gumbel_max", "gumbel_max_chunks", "gumbel_softmax", "gumbel_softmax_chunks")


def _extension_name() -> str:
    """One name per source text and torch build: a change of either builds anew."""
    key = SOURCE.read_bytes() + torch.__version__.encode() + sys.version.encode()
    return "gumbelkit_cpu_" + hashlib.sha256(key).hexdigest()[:12]


@functools.cache
def library() -> SimpleNamespace | None:
    """The ops :data:`OPS` of ``torch.ops.gumbelkit_cpu`` (their default overloads), built and
    loaded on the first call; None where the extension is switched off or cannot be built."""
    if os.environ.get("GUMBELKIT_NATIVE", "1") == "0":
        return None
    try:
        from torch.utils import cpp_extension

        name = _extension_name()
        built = Path(cpp_extension._get_build_directory(name, verbose=False), f"{name}.so")
        if not built.exists():
            print("gumbelkit: compiling its C++ CPU kernels (once per machine and torch "
                  "version, some seconds)", file=sys.stderr, flush=True)
        cpp_extension.load(name, [str(SOURCE)], extra_cflags=["-O3"], is_python_module=False)
    except Exception as error:  # no compiler, no ninja, a failed build: the Python path serves
        warnings.warn(f"gumbelkit: the C++ CPU kernels could not be built ({error}); small CPU "
                      "tensors take the Python path, with the same values, more slowly",
                      RuntimeWarning, stacklevel=2)
        return None
    ops = torch.ops.gumbelkit_cpu
    return SimpleNamespace(**{name: getattr(ops, name).default for name in OPS})

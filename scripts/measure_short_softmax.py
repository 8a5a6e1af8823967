"""Why rows of fewer than 16 categories take the softmax across the rows on the CPU (the numbers
of ``gumbelkit._ops.short_rows`` and benchmarks/RESULTS.md, "Kernels", CPU).

Times, on one torch thread, the best of 7 rounds of 20 calls at ROWSx``K`` float32: torch's
softmax over the last dim against the same softmax over the first dim of the transpose, and the
softmax backward (``torch._softmax_backward_data``) against ``y g - y <g, y>`` along the rows,
as gumbelkit's op computes it there; then forward and backward through autograd of
``torch.softmax`` against ``gumbelkit._ops.softmax`` (which takes the transposed path for fewer
than 16 categories).

    python scripts/measure_short_softmax.py [--rows 65536] [--categories 4,10,16,32]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from gumbelkit._ops import softmax


def best_ms(call: Callable[[], object], calls: int = 20, rounds: int = 7) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        times.append((time.perf_counter() - start) / calls)
    return 1e3 * min(times)


def row(rows: int, k: int) -> list[float]:
    """The six times for ``rows`` x ``k``."""
    x = torch.randn(rows, k)
    y, g = torch.softmax(x, -1), torch.randn(rows, k)

    def along() -> torch.Tensor:
        product = g * y
        return torch.addcmul(product, y, product.sum(-1, keepdim=True), value=-1)

    leaf = x.clone().requires_grad_(True)
    return [best_ms(lambda: torch.softmax(x, -1)),
            best_ms(lambda: torch.softmax(x.t(), 0).t().contiguous()),
            best_ms(lambda: torch._softmax_backward_data(g, y, 1, y.dtype)), best_ms(along),
            best_ms(lambda: torch.softmax(leaf, -1).backward(g)),
            best_ms(lambda: softmax(leaf, -1).backward(g))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=65536)
    parser.add_argument("--categories", default="4,10,16,32")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, {args.rows} rows, float32, ms per call")
    print("| K | softmax last dim | across the rows | backward | y g - y <g, y> "
          "| torch fwd+bwd | gumbelkit fwd+bwd |")
    print("|---|---|---|---|---|---|---|")
    for k in map(int, args.categories.split(",")):
        print(f"| {k} | " + " | ".join(f"{ms:.2f}" for ms in row(args.rows, k)) + " |")


if __name__ == "__main__":
    main()

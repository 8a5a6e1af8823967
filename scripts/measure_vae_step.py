"""Why ``gumbelkit bench kernels`` times its VAE steps as it does (benchmarks/RESULTS.md,
"Kernels", CPU): three measurements of the categorical VAE's training step at C x L (batch of
100 random images, Adam, one torch thread), each the median over paired rounds of the ratio of a
round's two steps with its distribution-free 95% interval (``paired_ratios`` of
:mod:`gumbelkit.bench.kernels`, ``median_interval`` of :mod:`gumbelkit.harness.statistics`):

- ``copies``: the same plain-PyTorch step on two copies of one model (their tensors in other
  memory): the bias of timing two models;
- ``workload``: gumbelkit's workload step (``gumbelkit.workloads.vae.train``, through
  ``gk.expectation``) against the plain step on one shared model: two different step codes;
- ``sample``: the plain step with ``gk.sample`` against the same step with
  ``F.gumbel_softmax(hard=True)`` on one shared model: the row of ``gumbelkit bench kernels``;

then the milliseconds of a plain step in blocks of 200 steps of one model (the slowdown once
Adam's state holds denormal numbers).

    python scripts/measure_vae_step.py [--case 8x4] [--rounds 800]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from gumbelkit.bench.categorical_vae import plain_train
from gumbelkit.bench.kernels import paired_ratios, parse_vae_case
from gumbelkit.expectation import sample
from gumbelkit.harness.statistics import median_interval
from gumbelkit.workloads import vae

CPU = torch.device("cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="8x4", help="CxL: C categories, L latents")
    parser.add_argument("--rounds", type=int, default=800)
    args = parser.parse_args()
    torch.set_num_threads(1)
    categories, latents = parse_vae_case(f"vae-{args.case}")
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(vae.BATCH_SIZE, 784, generator=generator)

    def fresh() -> tuple[vae.CategoricalVAE, torch.optim.Optimizer]:
        model = vae.CategoricalVAE(784, latents, categories)
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)

    def plain(model, optimizer, **options):
        return lambda: plain_train(model, images, 1, 1.0, optimizer, generator, **options)

    def gumbelkit_sample(logits: torch.Tensor, tau: float) -> torch.Tensor:
        return sample(logits, "st-gs", tau, generator=generator)

    def comparisons(model, optimizer):
        other = copy.deepcopy(model)
        other_optimizer = torch.optim.Adam(other.parameters(), lr=1e-3)
        return {
            "copies": [plain(model, optimizer), plain(other, other_optimizer)],
            "workload": [plain(model, optimizer),
                         lambda: vae.train(model, images, 1, "st-gs", 1.0,
                                           generator=generator, optimizer=optimizer)],
            "sample": [plain(model, optimizer), plain(model, optimizer,
                                                      sample=gumbelkit_sample)],
        }

    torch.manual_seed(0)
    for name in ("copies", "workload", "sample"):  # a fresh model every block, as the bench
        first, second = paired_ratios(lambda n=name: comparisons(*fresh())[n], CPU, args.rounds)
        print(f"{args.case} {name}: first/second {median_interval(first / second).format(4)}")
    model, optimizer = fresh()
    step = plain(model, optimizer)
    blocks = []
    for _ in range(8):
        start = time.perf_counter()
        for _ in range(200):
            step()
        blocks.append(f"{1e3 * (time.perf_counter() - start) / 200:.1f}")
    print(f"{args.case} plain step, ms, blocks of 200 steps of one model: {', '.join(blocks)}")


if __name__ == "__main__":
    main()

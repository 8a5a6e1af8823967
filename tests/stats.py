"""Statistical helpers for the tests.

Every statistical test uses a fixed seed, so it is deterministic; the thresholds below say how
likely a *correct* implementation would be to fail with an arbitrary seed.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

# Goodness-of-fit tests reject at p < ALPHA: a correct sampler fails one seed in 10,000, while a
# sampler off by a few percent on one category with 10^5 draws gives p far below it.
ALPHA = 1e-4
# Mean tests allow Z_TOL standard errors: |z| > 4.5 has probability 7e-6 under the null.
Z_TOL = 4.5


def gen(seed: int) -> torch.Generator:
    """A CPU generator with a fixed seed: every random test draws from one of these."""
    return torch.Generator().manual_seed(seed)


def chisquare_pvalue(counts: np.ndarray | torch.Tensor, probs: np.ndarray | torch.Tensor) -> float:
    """Pearson chi-square p-value of observed counts against probabilities.

    Categories of probability 0 must have count 0 (asserted). Categories whose expected count is
    below 5 are pooled into one bin, so the chi-square approximation holds.
    """
    counts = np.asarray(counts, dtype=np.float64).ravel()
    probs = np.asarray(probs, dtype=np.float64).ravel()
    assert counts.shape == probs.shape
    assert np.all(counts[probs == 0] == 0), "a category of probability 0 was drawn"
    n = counts.sum()
    expected = n * probs / probs.sum()
    keep = expected >= 5
    observed = np.append(counts[keep], counts[~keep].sum())
    expected = np.append(expected[keep], expected[~keep].sum())
    if expected[-1] == 0:
        observed, expected = observed[:-1], expected[:-1]
    if len(observed) < 2:
        return 1.0
    return float(stats.chisquare(observed, expected).pvalue)


def assert_law(counts, probs, alpha: float = ALPHA) -> None:
    p = chisquare_pvalue(counts, probs)
    assert p >= alpha, f"chi-square p-value {p:.2e} < {alpha}: counts {counts} vs probs {probs}"


def assert_mean_close(draws: torch.Tensor, expected: torch.Tensor, z_tol: float = Z_TOL,
                      atol: float = 1e-9) -> None:
    """Each coordinate of mean(draws, 0) within z_tol standard errors (+atol) of ``expected``."""
    draws = draws.double()
    mean = draws.mean(0)
    se = draws.std(0) / draws.shape[0] ** 0.5
    err = (mean - expected.double()).abs()
    bad = err > z_tol * se + atol
    assert not bad.any(), (
        f"mean off by {err[bad].tolist()} with standard errors {se[bad].tolist()}"
    )

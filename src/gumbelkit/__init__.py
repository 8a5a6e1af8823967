"""gumbelkit: gradient estimators for categorical variables, numerically safe and tested.

The public face: everything here is re-exported from its own module (DESIGN.md section 2).
"""

from . import bernoulli, distributions, exact, nn, portable, schedules
from ._validate import set_validation, validation_enabled
from .embedding import soft_embedding
from .estimators import ESTIMATORS
from .estimators.subsets import SUBSET_ESTIMATORS, sample_subset, subset_expectation
from .expectation import expectation, sample
from .noise import conditional_gumbel, gumbel_noise
from .restricted import restrict
from .sampling import gumbel_max, gumbel_softmax, gumbel_topk, relaxed_bernoulli, softmax_t
from .variance import VarianceStep, variance_step

__version__ = "0.1.0"

__all__ = [
    "ESTIMATORS",
    "SUBSET_ESTIMATORS",
    "VarianceStep",
    "bernoulli",
    "conditional_gumbel",
    "distributions",
    "exact",
    "expectation",
    "gumbel_max",
    "gumbel_noise",
    "gumbel_softmax",
    "gumbel_topk",
    "nn",
    "portable",
    "relaxed_bernoulli",
    "restrict",
    "sample",
    "sample_subset",
    "schedules",
    "set_validation",
    "soft_embedding",
    "softmax_t",
    "subset_expectation",
    "validation_enabled",
    "variance_step",
]

"""The lab: each claim of the seed thread as an experiment with a computed verdict.

``EXPERIMENTS`` maps an id (E1, E2, ...) to its experiment (:mod:`gumbelkit.harness.protocol`);
:func:`gumbelkit.lab.answer.run_lab` runs them on the harness and writes the report that answers
the question. Needs the ``lab`` extra (matplotlib, tqdm, scipy, scikit-learn).
"""

from __future__ import annotations

from ..harness.protocol import Experiment
from .e1_gumbel_max import EXPERIMENT as E1
from .e2_temperature import EXPERIMENT as E2
from .e3_expected_loss import EXPERIMENT as E3
from .e4_vae import EXPERIMENT as E4
from .e5_conditional_generation import EXPERIMENT as E5
from .e6_next_token import EXPERIMENT as E6
from .e7_actor_critic import EXPERIMENT as E7
from .e8_exploration import EXPERIMENT as E8
from .e9_annealing import EXPERIMENT as E9
from .e10_relaxed_law import EXPERIMENT as E10
from .e11_pointers import EXPERIMENT as E11
from .e12_gates import EXPERIMENT as E12
from .e13_start_temperature import EXPERIMENT as E13
from .e14_beam_search import EXPERIMENT as E14

EXPERIMENTS: dict[str, Experiment] = {e.id: e for e in (E1, E2, E3, E4, E5, E6, E7, E8, E9,
                                                        E10, E11, E12, E13, E14)}

__all__ = ["EXPERIMENTS"]

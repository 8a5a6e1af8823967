"""Shared workloads: the models, problems and data that the lab's experiments and the benchmarks
run on. Each imports only the core library (never the harness, the lab or the bench).

- :mod:`~gumbelkit.workloads.vae`: the categorical VAE (training, one-hot evaluation);
- :mod:`~gumbelkit.workloads.data`: Fashion-MNIST, offline;
- :mod:`~gumbelkit.workloads.problems`: small objectives with enumerable expectations (also the
  polynomial programming loss of Liu et al. 2023);
- :mod:`~gumbelkit.workloads.bandit`: a contextual bandit with exact returns and batched critics;
- :mod:`~gumbelkit.workloads.trap`: a deceptive objective with a local and a global optimum.
"""

"""The experiment harness, under the lab and the benchmarks and knowing nothing of either.

- :mod:`~gumbelkit.harness.protocol`: what an experiment is (configuration, runs, summary,
  verdict, tables, figures);
- :mod:`~gumbelkit.harness.records`: the run records (SQLite, digest-keyed, resumable,
  mergeable);
- :mod:`~gumbelkit.harness.executors`: where runs compute (this process, local worker
  processes, Ray tasks);
- :mod:`~gumbelkit.harness.runner`: plan, execute, record, report;
- :mod:`~gumbelkit.harness.statistics`: intervals, paired differences, decisions;
- :mod:`~gumbelkit.harness.report`: the one renderer (Markdown, HTML, JSON, CSV);
- :mod:`~gumbelkit.harness.plotting`: matplotlib without a screen.

Needs the ``lab`` extra (matplotlib, tqdm); the ``ray`` executor needs the ``ray`` extra.
"""

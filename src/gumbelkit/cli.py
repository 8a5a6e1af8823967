"""The ``gumbelkit`` command.

``gumbelkit lab``: run the lab's experiments and write the report that answers the seed question.
``gumbelkit compare``: every estimator's gradient against the exact one on a small problem.
``gumbelkit bench poly``: the polynomial programming benchmark of Liu et al. (2023).
``gumbelkit bench vae``: the categorical-VAE benchmark of Liu et al. (2023), on Fashion-MNIST.
``gumbelkit merge-runs``: gather the run records of several output directories into one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from . import exact
from .bench.problems import PROBLEMS, make_problem
from .data import DataNotFoundError
from .estimators import ESTIMATORS

T = TypeVar("T")

COLUMNS = ("estimator", "bias", "bias_se", "variance", "mse", "cosine", "snr", "seconds")


def progress(items: Sequence[T], description: str) -> Iterator[T]:
    """A tqdm progress bar on stderr; plain lines when tqdm (the ``lab`` extra) is absent."""
    try:
        from tqdm import tqdm
    except ImportError:
        for i, item in enumerate(items, 1):
            print(f"{description} [{i}/{len(items)}] {item}", file=sys.stderr)
            yield item
        return
    bar = tqdm(items, desc=description, unit="estimator", file=sys.stderr)
    for item in bar:
        bar.set_postfix_str(str(item))
        yield item


def format_table(rows: Iterable[dict[str, Any]]) -> str:
    """A Markdown table of compare's rows."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [row["estimator"]] + [f"{row[c]:.4g}" for c in COLUMNS[1:-1]]
        cells.append(f"{row['seconds'] * 1e3:.3g} ms")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def estimator_options(names: Sequence[str], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Each estimator's options for ``compare``, from the registry's option specs: a flag of the
    same name (``--k``) sets that option of every estimator taking it, ``--option NAME.OPT=VALUE``
    one estimator's (parsed as the spec says); the others keep their defaults."""
    given = vars(args)
    options: dict[str, dict[str, Any]] = {name: {} for name in names}
    for name in names:
        for spec in ESTIMATORS[name].option_specs:
            if spec.parse is not None and given.get(spec.name) is not None:
                options[name][spec.name] = given[spec.name]
    for item in args.option or ():
        key, sep, text = item.partition("=")
        name, dot, option = key.strip().rpartition(".")
        specs = {spec.name: spec for spec in ESTIMATORS[name].option_specs} \
            if name in ESTIMATORS else {}
        if not (sep and dot) or option not in specs or specs[option].parse is None:
            settable = ", ".join(f"{n}.{spec.name}" for n, est in ESTIMATORS.items()
                                 for spec in est.option_specs if spec.parse is not None)
            raise ValueError(f"--option {item!r}: expected ESTIMATOR.OPTION=VALUE, one of "
                             f"{settable}")
        if name not in options:
            raise ValueError(f"--option {item!r}: {name!r} is not among the estimators compared")
        try:
            options[name][option] = specs[option].parse(text.strip())
        except ValueError as error:
            raise ValueError(f"--option {item!r}: {error}") from None
    return options


def compare_command(args: argparse.Namespace) -> int:
    problem = make_problem(args.problem, seed=args.seed, power=args.power)
    names = args.estimators.split(",") if args.estimators else list(ESTIMATORS)
    for name in names:
        if name not in ESTIMATORS:
            raise SystemExit(f"unknown estimator {name!r}; known: {', '.join(ESTIMATORS)}")
    generator = torch.Generator().manual_seed(args.seed)
    options = estimator_options(names, args)
    rows = []
    for name in progress(names, "estimators"):
        n_samples = max(args.samples, ESTIMATORS[name].min_samples)
        rows += exact.compare(problem.f, problem.logits, [name], n_draws=args.draws,
                              tau=args.tau, n_samples=n_samples, generator=generator,
                              options=options)
    gradient = exact.exact_gradient(problem.f, problem.logits)
    at_least = "".join(f", {name}: at least {ESTIMATORS[name].min_samples}" for name in names
                       if ESTIMATORS[name].min_samples > args.samples)
    settings = ", ".join(f"{name} {option} = {value:g}" if isinstance(value, float)
                         else f"{name} {option} = {value}"
                         for name in names for option, value in
                         ESTIMATORS[name].check_options(options[name]).items()
                         if value is not None and not callable(value))
    no_tau = ", ".join(name for name in names if not ESTIMATORS[name].uses_tau)
    print(f"problem: {problem.name}: {problem.description}")
    print(f"tau = {args.tau:g}" + (f" (not used by {no_tau})" if no_tau else "")
          + f", {args.draws} draws of each estimate, n_samples = {args.samples}{at_least}, "
          f"seed {args.seed}" + (f", {settings}" if settings else ""))
    advised = "; ".join(f"{name}: {ESTIMATORS[name].advised_tau}" for name in names
                        if ESTIMATORS[name].advised_tau)
    if advised:
        print(f"advised tau: {advised}")
    print(f"exact gradient norm: {float(gradient.norm()):.4g}\n")
    print(format_table(rows))
    print("\nbias: ||mean estimate - exact gradient||; bias_se: its Monte Carlo noise floor "
          "sqrt(variance / draws); variance: sum of per-coordinate variances; cosine: mean "
          "cosine to the exact gradient; seconds: per estimate, forward and backward")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"problem": problem.name, "rows": rows}, out, indent=2)
    return 0


def lab_command(args: argparse.Namespace) -> int:
    from .lab import EXPERIMENTS  # needs the lab extra
    from .lab.runner import run_lab

    budget = "full" if args.full else "tiny" if args.smoke else "quick"
    only = args.only.split(",") if args.only else None
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    try:
        paths = run_lab(args.out, EXPERIMENTS, budget=budget, only=only, device=args.device,
                        overrides=overrides, command="gumbelkit " + " ".join(sys.argv[1:]))
    except KeyboardInterrupt:
        return 130
    answer = paths["markdown"].read_text().split("## The answer", 1)[1]
    print("The answer\n" + answer.split("### The evidence", 1)[0].strip())
    print(f"\nreport: {paths['html']} (also {paths['markdown'].name}, {paths['results'].name})")
    return 0


def run_benchmark(args: argparse.Namespace, config_class: Callable[..., Any],
                  run: Callable[..., dict[str, Any]], config_fields: Sequence[str]) -> int:
    """Run a benchmark with the options given (the others take the benchmark's defaults), print
    its table and what it wrote."""
    given = {name: value for name, value in vars(args).items() if value is not None}
    config = config_class(**{name: given[name] for name in config_fields if name in given})
    options = {name: given[name]
               for name in ("powers", "configurations", "estimators", "measure_throughput")
               if name in given}
    if "threads" in given:
        options["threads"] = given["threads"] or None
    try:
        done = run(args.out, config, command="gumbelkit " + " ".join(sys.argv[1:]), **options)
    except KeyboardInterrupt:
        return 130
    print(done["paths"]["markdown"].read_text().split("\n\n![", 1)[0])
    written = [str(path) for path in done["paths"].values() if isinstance(path, Path)]
    print(f"\nwrote {', '.join(written)} and {len(done['paths']['figures'])} figure(s); "
          f"reused {done['reused']} of {done['results']} results")
    return 0


def bench_poly_command(args: argparse.Namespace) -> int:
    from .bench.poly import PolyConfig, run_poly  # needs the lab extra

    return run_benchmark(args, PolyConfig, run_poly, ("steps", "seeds", "gr_k", "device"))


def bench_vae_command(args: argparse.Namespace) -> int:
    from .bench.categorical_vae import VAEBenchConfig, run_vae  # needs the lab extra

    return run_benchmark(args, VAEBenchConfig, run_vae, (
        "seeds", "epochs", "minutes", "max_steps", "gr_k", "test_size", "iw_samples",
        "gradient_draws", "throughput_steps", "throughput_repeats", "data_dir", "device"))


def bench_kernels_command(args: argparse.Namespace) -> int:
    from .bench.kernels import MODES, run_kernels  # needs the lab extra (tqdm), and triton on CUDA

    out = Path(args.out)
    run_kernels(out, args.device, args.cases, args.modes or MODES, args.compile_cases,
                args.threads, command="gumbelkit " + " ".join(sys.argv[1:]))
    print((out / f"kernels-{torch.device(args.device).type}.md").read_text())
    return 0


def merge_runs_command(args: argparse.Namespace) -> int:
    from .lab.records import RunStore

    with RunStore(args.target) as store:
        for source in args.sources:
            print(f"{source}: {store.merge(source)} run(s) added")
    return 0


def comma_list(kind: type[T]) -> Callable[[str], list[T]]:
    """An argparse type: comma-separated values of ``kind``."""
    def parse(text: str) -> list[T]:
        return [kind(item) for item in text.split(",") if item.strip()]
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gumbelkit", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    lab = commands.add_parser("lab", help="run the experiments and write the report that "
                              "answers when Gumbel noise helps over softmax with temperature")
    lab.add_argument("--out", default="lab-report", help="output directory (default lab-report)")
    lab.add_argument("--full", action="store_true", help="paper-scale budgets (hours)")
    lab.add_argument("--smoke", action="store_true", help="seconds-long budgets, for testing")
    lab.add_argument("--only", default="", help="comma-separated experiment ids, e.g. E4,E5")
    lab.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    lab.add_argument("--data-dir", default="",
                     help="Fashion-MNIST idx files (default /usr/share/datasets/fashion-mnist)")
    lab.set_defaults(handler=lab_command)
    compare = commands.add_parser(
        "compare", help="bias, variance, cosine and cost of every estimator's gradient "
        "against the exact gradient on a small problem")
    compare.add_argument("--problem", choices=sorted(PROBLEMS), default="toy")
    compare.add_argument("--tau", type=float, default=1.0, help="temperature (default 1)")
    compare.add_argument("--draws", type=int, default=1000,
                         help="independent gradient estimates per estimator (default 1000)")
    compare.add_argument("--samples", type=int, default=1,
                         help="samples per estimate (n_samples; rloo uses at least 2)")
    compare.add_argument("--estimators", default="",
                         help="comma-separated names (default: all of gk.ESTIMATORS: "
                         f"{','.join(ESTIMATORS)})")
    compare.add_argument("--option", action="append", metavar="ESTIMATOR.OPTION=VALUE",
                         help="an estimator's option, e.g. gr.k=20 (repeatable): " + "; ".join(
                             f"{name}.{spec.name}: {spec.help}"
                             + ("" if spec.default is None else f" (default {spec.default})")
                             for name, est in ESTIMATORS.items() for spec in est.option_specs
                             if spec.parse is not None))
    compare.add_argument("--power", type=float, default=2.0, help="p of the poly problem")
    compare.add_argument("--k", type=int, default=10, help="gr: conditional samples")
    compare.add_argument("--gap", type=float, default=1.0, help="gst: gap")
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--json", default="", help="also write the rows to this JSON file")
    compare.set_defaults(handler=compare_command)

    bench = commands.add_parser("bench", help="published benchmarks reproduced")
    benchmarks = bench.add_subparsers(dest="benchmark", required=True)
    poly = benchmarks.add_parser(
        "poly", help="polynomial programming (Liu et al. 2023, section 6.1): every estimator "
        "trained on E|z - 0.45|^p over 128 binary variables")
    # options left out take the paper's protocol, the defaults of gumbelkit.bench.poly
    poly.add_argument("--steps", type=int, help="Adam steps (default 8000)")
    poly.add_argument("--seeds", type=int, help="seeds, trained at once (default 10)")
    poly.add_argument("--powers", type=comma_list(float),
                      help="comma-separated p (default 1.5,2,3)")
    poly.add_argument("--estimators", type=comma_list(str), help="comma-separated names "
                      "(default reinforce,rloo,st,st-gs,gr,gst,reinmax,softmax)")
    poly.add_argument("--gr-k", type=int, help="gr: conditional samples (default 100)")
    poly.add_argument("--out", default="bench-results/poly",
                      help="output directory (default bench-results/poly)")
    poly.add_argument("--device", help="cpu (default) or cuda")
    poly.add_argument("--threads", type=int, help="torch CPU threads (default 1, measured "
                      "fastest for this workload; 0: torch's default, one per core)")
    poly.set_defaults(handler=bench_poly_command)
    vae = benchmarks.add_parser(
        "vae", help="categorical VAE (Liu et al. 2023, MNIST-VAE protocol, on Fashion-MNIST): "
        "every estimator at 8x4 and 10x30, gradients against the exact one at 8x4, throughput "
        "against torch's gumbel_softmax")
    # options left out take the defaults of gumbelkit.bench.categorical_vae
    vae.add_argument("--configurations", type=comma_list(str),
                     help="comma-separated CxL names (default 8x4,10x30)")
    vae.add_argument("--estimators", type=comma_list(str), help="comma-separated names "
                     "(default st,st-gs,gr,gst,reinmax,softmax,gs,rloo)")
    vae.add_argument("--seeds", type=int, help="seeds (default 1; the paper: 10)")
    vae.add_argument("--epochs", type=int, help="epochs per run (the paper: 160; default: "
                     "train for --minutes instead)")
    vae.add_argument("--minutes", type=float, help="training time per run when --epochs is not "
                     "given, finishing the epoch in which it runs out (default 10)")
    vae.add_argument("--max-steps", type=int, help="cap on the training steps of a run")
    vae.add_argument("--gr-k", type=int, help="gr: conditional samples (default 100)")
    vae.add_argument("--test-size", type=int,
                     help="test images evaluated (default 0: all 10,000)")
    vae.add_argument("--iw-samples", type=int,
                     help="samples of the importance-weighted bound (default 100)")
    vae.add_argument("--gradient-draws", type=int,
                     help="gradient draws per 8x4 checkpoint (default 1024)")
    vae.add_argument("--throughput-steps", type=int,
                     help="steps per timed repetition of the throughput comparison (default 100)")
    vae.add_argument("--throughput-repeats", type=int,
                     help="timed repetitions of the throughput comparison (default 5)")
    vae.add_argument("--data-dir", help="Fashion-MNIST idx files (default "
                     "/usr/share/datasets/fashion-mnist, Debian package dataset-fashion-mnist)")
    vae.add_argument("--out", default="bench-results/vae",
                     help="output directory (default bench-results/vae)")
    vae.add_argument("--device", help="cpu (default) or cuda")
    vae.add_argument("--threads", type=int, help="torch CPU threads (default 1, measured "
                     "fastest on a loaded 2-core machine; 0: torch's default, one per core)")
    vae.add_argument("--no-throughput", dest="measure_throughput", action="store_false",
                     help="leave out the throughput comparison (for runs split over processes "
                     "sharing a machine: merge their records, then measure it alone)")
    vae.set_defaults(handler=bench_vae_command)
    kernel = benchmarks.add_parser(
        "kernels", help="Gumbel-max and Gumbel-Softmax (soft, hard, forward and backward) of "
        "gumbelkit against torch eager, torch.compile and a copy, in one process")
    kernel.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    kernel.add_argument("--cases", type=comma_list(str), help="comma-separated ROWSxK:DTYPE "
                        "(dtype fp32, bf16 or fp16; default: the shapes of "
                        "benchmarks/RESULTS.md for the device)")
    kernel.add_argument("--modes", type=comma_list(str),
                        help="comma-separated from index,soft,hard,soft+bwd,hard+bwd (default all)")
    kernel.add_argument("--compile-cases", type=comma_list(str), help="cases also timed under "
                        "torch.compile (default on cuda: 4096x50257:bf16; on "
                        "cpu: none); an empty string for none")
    kernel.add_argument("--threads", type=int, default=2,
                        help="torch CPU threads (default 2)")
    kernel.add_argument("--out", default="bench-results/kernels",
                        help="output directory (default bench-results/kernels)")
    kernel.set_defaults(handler=bench_kernels_command)
    merge = commands.add_parser(
        "merge-runs", help="add the run records (runs.sqlite) of other output directories to "
        "one, so that a single lab or bench command reuses them all")
    merge.add_argument("target", help="the runs.sqlite to add to (created if missing); records "
                       "made before a change of the digest's rule are found again in a new one")
    merge.add_argument("sources", nargs="+", help="runs.sqlite files to add; a run already in "
                       "the target is kept as it is there")
    merge.set_defaults(handler=merge_runs_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, TypeError, DataNotFoundError) as error:
        print(f"gumbelkit: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The ``gumbelkit`` command.

``gumbelkit lab``: run the lab's experiments and write the report that answers the seed question.
``gumbelkit compare``: every estimator's gradient against the exact one on a small problem.
``gumbelkit bench poly``: the polynomial programming benchmark of Liu et al. (2023).
``gumbelkit bench vae``: the categorical-VAE benchmark of Liu et al. (2023), on Fashion-MNIST.
``gumbelkit merge-runs``: gather the run records of several output directories into one.

Every argument is checked before any work: a bad one, or a missing extra, is one line on stderr
and exit code 2, with nothing computed or written. Ctrl-C keeps what finished (the recorded runs,
compare's finished rows), says how to resume, and exits 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from . import exact
from ._validate import check_count, check_tau
from .estimators import ESTIMATORS, get_estimator
from .estimators.bernoulli import BERNOULLI_ESTIMATORS
from .estimators.subsets import SUBSET_ESTIMATORS
from .harness.executors import EXECUTORS, Executor, make_executor
from .harness.paths import check_output_directory, check_output_file
from .harness.protocol import Experiment, ExperimentConfig
from .harness.report import markdown_blocks, markdown_table, to_jsonable
from .workloads.data import DataNotFoundError, load_fashion_mnist
from .workloads.problems import PROBLEMS, BernoulliProblem, SubsetProblem, make_problem

T = TypeVar("T")
EXTRA_HINT = "it needs the lab extra: pip install 'gumbelkit[lab]'"


def _poly() -> list[Experiment]:
    from .bench import poly

    return [poly.EXPERIMENT]


def _vae() -> list[Experiment]:
    from .bench import categorical_vae

    return [categorical_vae.EXPERIMENT, categorical_vae.THROUGHPUT]


# the benchmarks that are experiments of the harness: their loader and their help
BENCHMARKS: dict[str, tuple[Callable[[], list[Experiment]], str]] = {
    "poly": (_poly, "polynomial programming (Liu et al. 2023, section 6.1): every estimator "
             "trained on E|z - 0.45|^p over 128 binary variables"),
    "vae": (_vae, "categorical VAE (Liu et al. 2023, MNIST-VAE protocol, on Fashion-MNIST): "
            "every estimator at 8x4 and 10x30, gradients against the exact one at 8x4, "
            "throughput against torch's gumbel_softmax"),
}

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
        for spec in get_estimator(name).option_specs:  # an unknown name: a clear ValueError
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
    if isinstance(problem, SubsetProblem | BernoulliProblem):
        return compare_structured(args, problem)
    names = args.estimators.split(",") if args.estimators else list(ESTIMATORS)
    generator = torch.Generator().manual_seed(args.seed)
    options = estimator_options(names, args)
    check_compare(args, names, options)
    rows: list[dict[str, Any]] = []
    interrupted = False
    try:
        for name in progress(names, "estimators"):
            n_samples = max(args.samples, ESTIMATORS[name].min_samples)
            rows += exact.compare(problem.f, problem.logits, [name], n_draws=args.draws,
                                  tau=args.tau, n_samples=n_samples, generator=generator,
                                  options=options)
    except KeyboardInterrupt:  # the finished rows are printed and written below
        interrupted = True
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
        write_rows(args.json, problem.name, rows)
    if interrupted:
        rest = ",".join(names[len(rows):])
        print(f"\ninterrupted: {len(rows)} of {len(names)} estimators finished, shown above"
              f"{' and written to ' + args.json if args.json else ''}; for the rest run the same "
              f"command with --estimators {rest}", file=sys.stderr)
        return 130
    return 0


def compare_structured(args: argparse.Namespace, problem: SubsetProblem | BernoulliProblem) -> int:
    """``compare`` on a subset or Bernoulli problem: the estimators of that family (``--k`` and
    ``--gap`` do not apply), each against the exact gradient of its own law."""
    generator = torch.Generator().manual_seed(args.seed)
    settings = {"n_draws": args.draws, "tau": args.tau, "n_samples": args.samples,
                "generator": generator}
    if isinstance(problem, SubsetProblem):
        registry = SUBSET_ESTIMATORS
        def run(name):  # noqa: E306
            return exact.subset_compare(problem.f, problem.logits, problem.k, [name], **settings)
    else:
        registry = BERNOULLI_ESTIMATORS
        def run(name):  # noqa: E306
            return exact.bernoulli_compare(problem.f, problem.logits, [name], **settings)
    names = args.estimators.split(",") if args.estimators else list(registry)
    check_compare(args, [])
    rows = [row for name in progress(names, "estimators") for row in run(name)]
    print(f"problem: {problem.name}: {problem.description}")
    print(f"tau = {args.tau:g}, {args.draws} draws of each estimate, n_samples = {args.samples} "
          f"(at least each estimator's minimum: 2 for rloo and disarm), seed {args.seed}")
    if isinstance(problem, SubsetProblem):
        print("laws: " + ", ".join(f"{row['estimator']}: {row['law']}" for row in rows))
    print()
    print(format_table(rows))
    print("\nbias, variance, cosine against the exact gradient of E f under each estimator's "
          "law, by enumeration; seconds: per estimate, forward and backward")
    if args.json:
        write_rows(args.json, problem.name, rows)
    return 0


def check_compare(args: argparse.Namespace, names: Sequence[str],
                  options: dict[str, dict[str, Any]] | None = None) -> None:
    """Refuse compare's bad arguments before the first estimator runs (:func:`exact.compare`
    checks an estimator's own only when the loop reaches it) and the ``--json`` path; ``names``
    are categorical estimators whose ``options`` are checked."""
    check_count(args.draws, "--draws", minimum=2)
    check_count(args.samples, "--samples")
    check_tau(args.tau)
    for name in names:
        get_estimator(name).check_options((options or {}).get(name, {}))
    if args.json:
        check_output_file(args.json, "--json")


def write_rows(path: str, problem: str, rows: list[dict[str, Any]]) -> None:
    """compare's rows as strict JSON (a number that is not finite is written as null)."""
    with open(path, "w") as out:
        json.dump(to_jsonable({"problem": problem, "rows": rows}), out, indent=2,
                  allow_nan=False)


def missing_extra(args: argparse.Namespace) -> int:
    raise ImportError(EXTRA_HINT)


def lab_command(args: argparse.Namespace) -> int:
    from .lab import EXPERIMENTS  # the lab extra
    from .lab.answer import answer_blocks, run_lab

    settings = parse_settings(args.set, EXPERIMENTS)
    if args.data_dir and not Path(args.data_dir).is_dir():
        raise ValueError(f"--data-dir {args.data_dir}: no such directory; give the one that "
                         "holds the Fashion-MNIST idx files")
    if args.data_dir:  # data asked for by name must be there (without it: E4, E9 not run)
        load_fashion_mnist("train", args.data_dir)
    outcome = run_lab(args.out, EXPERIMENTS, budget=budget(args),
                      only=args.only.split(",") if args.only else None,
                      overrides={"data_dir": args.data_dir} if args.data_dir else {},
                      settings=settings, executor=executor(args), device=args.device,
                      threads=threads(args), command=command_line())
    print("The answer\n\n" + "\n".join(markdown_blocks(answer_blocks(outcome.sections))).strip())
    paths = outcome.paths
    print(f"\nreport: {paths['html']} (also {paths['markdown'].name}, {paths['results'].name})")
    return 0


def bench_command(args: argparse.Namespace) -> int:
    """Run a benchmark's experiments with the configuration the options give, print its tables."""
    experiments = args.experiments()
    config = experiments[0].make_config(budget(args), **config_overrides(args,
                                                                         experiments[0]))
    from .harness.runner import run_sweep

    outcome = run_sweep(args.out, [(e, config) for e in experiments], title=args.title,
                        executor=executor(args), device=args.device,
                        threads=threads(args), command=command_line())
    for section in outcome.sections:
        for table in section.tables:
            print(markdown_table(table) + "\n")
    print(f"report: {outcome.paths['html']} (also {outcome.paths['markdown'].name}, "
          f"{outcome.paths['results'].name}, tables/*.csv); reused {outcome.reused} of "
          f"{outcome.runs} runs")
    return 0


def bench_kernels_command(args: argparse.Namespace) -> int:
    from .bench.kernels import MODES, run_kernels  # needs the lab extra (tqdm), and triton on CUDA

    out = check_output_directory(args.out)
    run_kernels(out, args.device, args.cases, args.modes or MODES, args.compile_cases,
                args.threads, command=command_line())
    print((out / f"kernels-{torch.device(args.device).type}.md").read_text())
    return 0


def bench_vocab_command(args: argparse.Namespace) -> int:
    from .bench.vocab import run_vocab  # needs the lab extra (tqdm)

    out = check_output_directory(args.out)
    run_vocab(out, args.device, args.cases, args.restricted_cases, args.dtype, args.threads,
              args.repeats, command=command_line())
    print((out / f"vocab-{torch.device(args.device).type}.md").read_text())
    return 0


def merge_runs_command(args: argparse.Namespace) -> int:
    from .harness.records import RunStore, check_records_file

    for source in args.sources:  # every path checked before the target is touched
        check_records_file(source)
    target = check_output_file(args.target, "target")
    if target.exists():
        check_records_file(target)
    added = 0
    try:
        with RunStore(target) as store:
            for source in args.sources:
                print(f"{source}: {store.merge(source)} run(s) added")
                added += 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: {added} of {len(args.sources)} source(s) added to {target} (a "
              "source is added whole or not at all); run the same command again to add the "
              "rest (a run already in the target is kept, none is added twice)", file=sys.stderr)
        raise
    return 0


def comma_list(kind: type[T]) -> Callable[[str], list[T]]:
    """An argparse type: comma-separated values of ``kind``."""
    def parse(text: str) -> list[T]:
        return [kind(item) for item in text.split(",") if item.strip()]
    return parse


def command_line() -> str:
    return "gumbelkit " + " ".join(sys.argv[1:])


def budget(args: argparse.Namespace) -> str:
    if args.full and args.smoke:
        raise ValueError("--full and --smoke are exclusive: choose one budget")
    return "full" if args.full else "tiny" if args.smoke else "quick"


def threads(args: argparse.Namespace) -> int | None:
    """``--threads-per-run``: None (torch's default) for 0."""
    return args.threads_per_run or None


def integer_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value: int | None = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value
    return parse


def executor(args: argparse.Namespace) -> Executor:
    return make_executor(args.executor, jobs=args.jobs, address=args.address,
                         cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run)


def value_parser(kind: Any) -> Callable[[str], Any]:
    """A parser of command-line text for a configuration field's type: numbers, strings,
    booleans, and tuples of them written comma-separated."""
    if typing.get_origin(kind) is tuple:
        item = value_parser(typing.get_args(kind)[0])
        return lambda text: tuple(item(part) for part in text.split(",") if part.strip())
    if kind is bool:
        def parse_bool(text: str) -> bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"expected true or false, got {text!r}")
            return text.lower() in ("true", "1", "yes")
        return parse_bool
    return kind


def add_config_options(parser: argparse.ArgumentParser, config_class: type[ExperimentConfig]
                       ) -> None:
    """One option per configuration field (``--field-name``), its help and type from the field;
    an option left out keeps the budget's value."""
    group = parser.add_argument_group(
        "configuration", "fields of the configuration (left out: the value of the budget)")
    defaults = config_class()
    for field in dataclasses.fields(config_class):
        kind = config_class.field_types()[field.name]
        default = getattr(defaults, field.name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = f"{field.metadata.get('help', '')} (default {shown})".strip()
        flag = "--" + field.name.replace("_", "-")
        if kind is bool:
            group.add_argument(flag, dest=f"config_{field.name}", default=None, help=help_text,
                               action=argparse.BooleanOptionalAction)
        else:
            group.add_argument(flag, dest=f"config_{field.name}", default=None, help=help_text,
                               type=value_parser(kind), metavar=field.name.upper())


def config_overrides(args: argparse.Namespace, experiment: Experiment) -> dict[str, Any]:
    return {f.name: getattr(args, f"config_{f.name}")
            for f in dataclasses.fields(experiment.config_class)
            if getattr(args, f"config_{f.name}") is not None}


def parse_settings(items: Sequence[str], experiments: dict[str, Experiment]
                   ) -> dict[str, dict[str, Any]]:
    """``--set ID.field=value`` items as ``{ID: {field: value}}``, each checked against the
    experiment's configuration."""
    settings: dict[str, dict[str, Any]] = {}
    for item in items:
        target, sep, text = item.partition("=")
        eid, dot, name = target.partition(".")
        if not sep or not dot:
            raise ValueError(f"--set takes ID.field=value (e.g. E2.categories=2), got {item!r}")
        experiment = experiments.get(eid.strip().upper())
        if experiment is None:
            raise ValueError(f"--set {item}: unknown experiment {eid!r}; known: "
                             f"{', '.join(experiments)}")
        types = experiment.config_class.field_types()
        if name not in types:
            raise ValueError(f"--set {item}: {experiment.id} has no field {name!r}; its fields: "
                             f"{', '.join(types)}")
        try:
            value = value_parser(types[name])(text)
        except ValueError as error:
            raise ValueError(f"--set {item}: {error}") from None
        settings.setdefault(experiment.id, {})[name] = value
    return settings


def add_timing_options(parser: argparse.ArgumentParser, name: str) -> None:
    """``--device``, ``--threads`` and ``--out`` of the timing benchmarks (bench kernels, vocab)."""
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=integer_at_least(1), default=1,
                        help="torch CPU threads (default 1: on a shared 2-core machine two "
                        "threads made single rounds 10-100x slower, see benchmarks/RESULTS.md)")
    parser.add_argument("--out", default=f"bench-results/{name}",
                        help=f"output directory (default bench-results/{name}); its JSON is "
                        "strict, where null stands for a number that is not finite")


def add_sweep_options(parser: argparse.ArgumentParser, out: str) -> None:
    """The options every sweep takes: output, budget, device and executor."""
    parser.add_argument("--out", default=out, help=f"output directory (default {out}); its "
                        "results.json is strict JSON, where null stands for a number that is "
                        "not finite (NaN or infinite)")
    parser.add_argument("--full", action="store_true",
                        help="the larger budget: >= 20 seeds, longer training, more draws "
                             "(its measured time is in the README)")
    parser.add_argument("--smoke", action="store_true", help="seconds-long budgets, for testing")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    group = parser.add_argument_group("where the runs compute")
    group.add_argument("--executor", choices=EXECUTORS, default="local",
                       help="local (default): this machine; ray: Ray tasks (the ray extra)")
    group.add_argument("--jobs", type=int, default=1,
                       help="local: runs at once in worker processes (default 1: one after "
                       "another in this process)")
    group.add_argument("--threads-per-run", type=integer_at_least(0), default=1,
                       help="torch CPU threads of a run (default 1; 0: torch's default)")
    group.add_argument("--cpus-per-run", type=float, default=None,
                       help="ray: CPUs reserved per run (default 1; fractions allowed)")
    group.add_argument("--gpus-per-run", type=float, default=None,
                       help="ray: GPUs reserved per run (default 0; 0.25: four runs share one)")
    group.add_argument("--address", default=None,
                       help="ray: the address of a running cluster (default: start a local Ray "
                       "instance)")


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (``--help`` gives the usage)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="gumbelkit", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    lab = commands.add_parser("lab", help="run the experiments and write the report that "
                              "answers when Gumbel noise helps over softmax with temperature")
    add_sweep_options(lab, "lab-report")
    lab.add_argument("--only", default="", help="comma-separated experiment ids, e.g. E4,E5")
    lab.add_argument("--set", action="append", default=[], metavar="ID.FIELD=VALUE",
                     help="set one field of one experiment's configuration, e.g. "
                     "--set E2.categories=2 (repeatable; tuples comma-separated); the fields "
                     "are those of each experiment's Config (results.json lists them)")
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
    compare.add_argument("--json", default="", help="also write the rows to this JSON file "
                         "(strict JSON: null stands for a number that is not finite, such as "
                         "the snr of an estimator whose variance is 0)")
    compare.set_defaults(handler=compare_command)

    bench = commands.add_parser("bench", help="published benchmarks reproduced")
    benchmarks = bench.add_subparsers(dest="benchmark", required=True)
    for name, (load, help_text) in BENCHMARKS.items():
        sub = benchmarks.add_parser(name, help=help_text)
        add_sweep_options(sub, f"bench-results/{name}")
        try:
            experiments = load()
        except ImportError:  # a core install: the command says what to install
            sub.set_defaults(handler=missing_extra)
            continue
        add_config_options(sub, experiments[0].config_class)
        sub.set_defaults(handler=bench_command, experiments=load, title=experiments[0].title)
    kernel = benchmarks.add_parser(
        "kernels", help="Gumbel-max and Gumbel-Softmax (soft, hard, forward and backward) of "
        "gumbelkit against torch eager, torch.compile and a copy, in one process")
    add_timing_options(kernel, "kernels")
    kernel.add_argument("--cases", type=comma_list(str), help="comma-separated ROWSxK:DTYPE "
                        "(dtype fp32, bf16 or fp16; default: the shapes of "
                        "benchmarks/RESULTS.md for the device)")
    kernel.add_argument("--modes", type=comma_list(str),
                        help="comma-separated from index,soft,hard,soft+bwd,hard+bwd (default all)")
    kernel.add_argument("--compile-cases", type=comma_list(str), help="cases also timed under "
                        "torch.compile (default on cuda: 4096x50257:bf16; on "
                        "cpu: every case but the VAE steps); an empty string for none")
    kernel.set_defaults(handler=bench_kernels_command)
    vocab = benchmarks.add_parser(
        "vocab", help="gk.soft_embedding against F.gumbel_softmax(logits) @ E (time, bytes "
        "held for backward, GPU peak) and the restricted samplers against plain torch")
    add_timing_options(vocab, "vocab")
    vocab.add_argument("--cases", type=comma_list(str), help="comma-separated ROWSxVxD (default "
                       "on cpu: 512x50257x768,64x32000x256; on cuda: "
                       "4096x50257x768,4096x128256x4096)")
    vocab.add_argument("--restricted-cases", type=comma_list(str), help="comma-separated "
                       "ROWSxV for top_k, top_p and min_p (default 512x50257); an empty string "
                       "for none")
    vocab.add_argument("--dtype", default="fp32", help="fp32 (default), bf16 or fp16")
    vocab.add_argument("--repeats", type=integer_at_least(1), default=5,
                       help="interleaved rounds on the CPU, the best one kept (default 5)")
    vocab.set_defaults(handler=bench_vocab_command)
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
    except KeyboardInterrupt:  # the command has said what it kept and how to resume
        return 130
    except (ValueError, TypeError, DataNotFoundError) as error:
        print(f"gumbelkit: error: {error}", file=sys.stderr)
        return 2
    except ImportError as error:  # an extra is missing
        missing = f" ({error.name} is not installed)" if error.name else ""
        command = " ".join(filter(None, (args.command, getattr(args, "benchmark", None))))
        print(f"gumbelkit: error: gumbelkit {command}{missing}: {EXTRA_HINT}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Kernel benchmark: Gumbel-max and Gumbel-Softmax of gumbelkit against torch, in one process.

Unlike the other benchmarks it is not a sweep of the harness: its numbers are ratios of timings
taken together, interleaved, in one process, which recording them run by run, resuming them
later or spreading them over workers would break. It writes its table with the harness's
renderer (Markdown, CSV, strict JSON).

For each case (shape, dtype; the categories along the last dim) and mode, the time of:

- ``torch``: eager PyTorch, ``torch.nn.functional.gumbel_softmax(x, tau=1, hard=...)``, and for
  the index-only mode ``(x - torch.empty_like(x).exponential_().log()).argmax(-1)``;
- ``compile``: ``torch.compile`` of the same function (where asked for: compiling costs seconds
  per case);
- ``gumbelkit``: the dispatch of :mod:`gumbelkit.kernels` (Triton on CUDA, the chunked path on
  the CPU), which is what ``gk.gumbel_softmax`` and ``gk.gumbel_max`` run after validating their
  input;
- ``copy``: ``x.clone()``, one read and one write of the logits: the bandwidth yardstick.

``compile_s`` is the seconds of the first call of the compiled function (compiling and one
run), excluded from ``compile_ms``. A ``vae-CxL`` case times one training step of the
categorical VAE of :mod:`gumbelkit.workloads.vae` (batch of 100 random images, L latents of C
categories, Adam) written in plain PyTorch (:func:`gumbelkit.bench.categorical_vae.plain_train`),
mode ``train-step``, with gumbelkit's ``st-gs`` sample (``gk.sample``, the public function,
validation included) against the same step with ``torch.nn.functional.gumbel_softmax(hard=True)``:
the two steps differ in the sample alone. Both train one model with one optimizer, in turn, so
that they run on the same tensors in the same memory (two copies of a model timed with the same
plain step differ by a few percent either way, as much as the sample's share of a step at 8x4:
``scripts/measure_vae_step.py``), a fresh model every :data:`VAE_BLOCK` rounds. Their ratio is
the median over :data:`VAE_ROUNDS` rounds of the two times of a round (:func:`paired_ratios`),
with its distribution-free 95% interval. The ``1x16`` case
is the time of a call with next to no work: the host overhead per call.

Modes: ``index`` (the sampled index only), ``soft`` and ``hard`` (forward), ``soft+bwd`` and
``hard+bwd`` (forward and ``torch.autograd.grad`` with a given output gradient). The ratios
``torch / gumbelkit`` and ``compile / gumbelkit`` compare like with like in the same process. The
achieved bandwidth is the fewest bytes a mode must move (index: the logits once; forward: read
and write, 2 passes; forward and backward: 5 passes) over the time, as a fraction of the copy's
(2 passes over its time). On CUDA, memory is the peak allocated during a forward with
``requires_grad`` and what stays allocated after it (the output and what autograd keeps), both
in multiples of the logits' size. GPU times come from ``triton.testing.do_bench`` (CUDA events,
median); CPU times interleave the functions compared: rounds of one block of calls of each in turn,
each block long enough to take about a millisecond, and the best round's time per call (as
``timeit`` advises: on a shared machine the other rounds measure the other jobs), on the threads
asked for; interleaving gives every function the same share of the noise.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import kernels
from ..expectation import sample
from ..harness.executors import resolve_device, torch_threads
from ..harness.protocol import Table
from ..harness.report import markdown_table, to_jsonable, write_csv
from ..harness.runner import machine_description
from ..harness.statistics import median_interval
from ..workloads import vae

__all__ = ["CASES", "MODES", "run_kernels", "parse_case", "parse_vae_case"]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# the table, plus decode-size rows and a middle size
CASES = {
    "cuda": ["4096x50257:bf16", "4096x128256:bf16", "4096x50257:fp32", "1048576x10:fp32",
             "262144x64:bf16", "8x128256:bf16", "65536x1024:bf16"],
    "cpu": list(dict.fromkeys([  # in this order, each once
        "512x50257:fp32", "512x50257:bf16", "65536x10:fp32", "16384x64:fp32", "4096x1024:fp32",
        # the small shapes where most calls are: decode-size rows, the VAE's, host overhead
        *[f"{rows}x{k}:fp32" for k in (50257, 128256) for rows in (1, 2, 4, 8)],
        "64x16:fp32", "1024x10:fp32", "100x32:fp32", "100x300:fp32", "1x16:fp32",
        "vae-8x4", "vae-10x30"])),
}
# also timed under torch.compile by default (the VAE step is not)
COMPILED = {"cuda": ["4096x50257:bf16"],
            "cpu": [case for case in CASES["cpu"] if not case.startswith("vae-")]}
VAE_MODE = "train-step"
VAE_ROUNDS = 800  # paired rounds of the VAE steps (a step is milliseconds: about 15 s a case)
# rounds on one model: after about 600 steps on random images Adam's state holds denormal
# numbers and a step takes about twice as long, for both samples (scripts/measure_vae_step.py)
VAE_BLOCK = 100
MODES = ("index", "soft", "hard", "soft+bwd", "hard+bwd")
PASSES = {"index": 1, "soft": 2, "hard": 2, "soft+bwd": 5, "hard+bwd": 5}
COLUMNS = ("case", "mode", "torch_ms", "compile_ms", "compile_s", "gumbelkit_ms", "copy_ms",
           "speedup_vs_torch", "speedup_low", "speedup_high", "speedup_vs_compile",
           "gumbelkit_bandwidth", "torch_bandwidth", "torch_peak", "torch_held", "gumbelkit_peak",
           "gumbelkit_held")


def parse_vae_case(text: str) -> tuple[int, int]:
    """``"vae-8x4"`` as ``(8, 4)``: C categories, L latents."""
    try:
        categories, latents = (int(size) for size in text.removeprefix("vae-").split("x"))
    except ValueError as error:
        raise ValueError(f"a VAE case is vae-CxL, got {text!r}") from error
    if min(categories, latents) < 2:
        raise ValueError(f"a VAE case has C, L >= 2, got {text!r}")
    return categories, latents


def parse_case(text: str) -> tuple[tuple[int, ...], torch.dtype]:
    """``"4096x50257:bf16"`` as ``((4096, 50257), torch.bfloat16)``."""
    try:
        shape_text, dtype_text = text.split(":")
        shape = tuple(int(size) for size in shape_text.split("x"))
        dtype = DTYPES[dtype_text]
    except (ValueError, KeyError) as error:
        raise ValueError(f"a case is ROWSxK:DTYPE with DTYPE one of {sorted(DTYPES)}, got "
                         f"{text!r}") from error
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"a case's shape is two positive sizes, got {text!r}")
    return shape, dtype


def torch_function(mode: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The eager PyTorch code a user would write for ``mode`` (forward only)."""
    if mode == "index":
        return lambda x: (x - torch.empty_like(x).exponential_().log()).argmax(-1)
    hard = mode.startswith("hard")
    return lambda x: F.gumbel_softmax(x, tau=1.0, hard=hard)


def gumbelkit_function(mode: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if mode == "index":
        return lambda x: kernels.gumbel_max(x, -1)
    hard = mode.startswith("hard")
    return lambda x: kernels.gumbel_softmax(x, 1.0, hard, -1)


def bound(function: Callable[[torch.Tensor], Any], argument: torch.Tensor
          ) -> Callable[[], Any]:
    return lambda: function(argument)


def with_backward(forward: Callable[[torch.Tensor], torch.Tensor], grad: torch.Tensor
                  ) -> Callable[[torch.Tensor], Any]:
    return lambda x: torch.autograd.grad(forward(x), x, grad)


def timer(device: torch.device, repeats: int
          ) -> Callable[[Sequence[Callable[[], Any]]], list[float]]:
    """Median milliseconds per call of each of several calls, measured together: CUDA events
    through Triton's do_bench, or interleaved host clocks (see the module's docstring)."""
    if device.type == "cuda":
        from triton.testing import do_bench

        return lambda calls: [float(do_bench(call, warmup=25, rep=100, return_mode="median"))
                              for call in calls]

    def host(calls: Sequence[Callable[[], Any]]) -> list[float]:
        sizes = []
        for call in calls:  # warm up, and calls per block of about a millisecond
            call()
            start = time.perf_counter()
            call()
            sizes.append(max(1, min(1000, int(1e-3 / max(time.perf_counter() - start, 1e-7)))))
        times: list[list[float]] = [[] for _ in calls]
        for _ in range(repeats):
            for call, size, record in zip(calls, sizes, times, strict=True):
                start = time.perf_counter()
                for _ in range(size):
                    call()
                record.append((time.perf_counter() - start) / size)
        return [1e3 * min(record) for record in times]

    return host


def memory(forward: Callable[[torch.Tensor], Any], x: torch.Tensor) -> tuple[float, float]:
    """(peak during, held after) a forward with gradients, in multiples of the size of ``x``."""
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = forward(x)
    torch.cuda.synchronize()
    size = x.numel() * x.element_size()
    held = (torch.cuda.memory_allocated() - before) / size
    peak = (torch.cuda.max_memory_allocated() - before) / size
    del out
    return peak, held


def measure_case(case: str, device: torch.device, modes: Sequence[str], compiled: bool,
                 time_calls: Callable[[Sequence[Callable[[], Any]]], list[float]], bar: tqdm
                 ) -> list[dict[str, Any]]:
    shape, dtype = parse_case(case)
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(shape, device=device, generator=generator).to(dtype)
    leaf = x.detach().requires_grad_(True)
    grad = torch.randn(shape, device=device, generator=generator).to(dtype)
    (copy_ms,) = time_calls([lambda: x.clone()])
    rows = []
    for mode in modes:
        backward = mode.endswith("+bwd")
        argument = leaf if backward else x
        functions = {"torch": torch_function(mode), "gumbelkit": gumbelkit_function(mode)}
        row: dict[str, Any] = {"case": case, "mode": mode, "copy_ms": copy_ms}
        if compiled:
            # a fresh cache for each compiled function: they share one code object, and past
            # torch._dynamo's recompile limit (8) a frame runs eagerly, which would time eager
            # torch under the compile column
            torch.compiler.reset()
            functions["compile"] = torch.compile(torch_function(mode), dynamic=False)
        calls = [bound(with_backward(f, grad) if backward else f, argument)
                 for f in functions.values()]
        if compiled:
            start = time.perf_counter()
            calls[-1]()
            row["compile_s"] = time.perf_counter() - start
        for name, ms in zip(functions, time_calls(calls), strict=True):
            row[f"{name}_ms"] = ms
            bar.update(1)
        if device.type == "cuda" and mode in ("soft", "hard"):
            for name in ("torch", "gumbelkit"):
                row[f"{name}_peak"], row[f"{name}_held"] = memory(functions[name], leaf)
        bytes_moved = PASSES[mode] * x.numel() * x.element_size()
        copy_rate = 2 * x.numel() * x.element_size() / copy_ms
        for name in ("torch", "gumbelkit"):
            row[f"{name}_bandwidth"] = bytes_moved / row[f"{name}_ms"] / copy_rate
        row["speedup_vs_torch"] = row["torch_ms"] / row["gumbelkit_ms"]
        if compiled:
            row["speedup_vs_compile"] = row["compile_ms"] / row["gumbelkit_ms"]
        rows.append(row)
    return rows


def paired_rounds(calls: Sequence[Callable[[], Any]], device: torch.device, rounds: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The seconds of two calls timed in rounds, each round both, the order alternating (after
    one warm-up call of each): the ratio of one round's two times cancels the drift of a shared
    machine, which the best round of each does not."""
    def timed(call: Callable[[], Any]) -> float:
        start = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    first, second = calls
    first(), second()
    times = []
    for round_ in range(rounds):
        if round_ % 2:
            b = timed(second)
            times.append((timed(first), b))
        else:
            times.append((timed(first), timed(second)))
    a, b = (np.asarray(column) for column in zip(*times, strict=True))
    return a, b


def paired_ratios(make_calls: Callable[[], Sequence[Callable[[], Any]]], device: torch.device,
                  rounds: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`paired_rounds` of the two calls ``make_calls()`` returns, made again every
    :data:`VAE_BLOCK` rounds (for the VAE steps: a fresh model and optimizer), concatenated."""
    blocks = [paired_rounds(make_calls(), device, min(VAE_BLOCK, rounds - start))
              for start in range(0, rounds, VAE_BLOCK)]
    first, second = (np.concatenate(times) for times in zip(*blocks, strict=True))
    return first, second


def measure_vae_step(case: str, device: torch.device, rounds: int, bar: tqdm) -> dict[str, Any]:
    """One training step of the categorical VAE with ``st-gs``: the same plain-PyTorch step
    with gumbelkit's sample (``gk.sample``) against torch's (``F.gumbel_softmax``), both
    training one model with one optimizer, a fresh one every :data:`VAE_BLOCK` rounds."""
    from .categorical_vae import plain_train

    categories, latents = parse_vae_case(case)
    generator = torch.Generator(device=device).manual_seed(0)
    images = torch.rand(vae.BATCH_SIZE, 784, device=device, generator=generator)

    def gumbelkit_sample(logits: torch.Tensor, tau: float) -> torch.Tensor:
        return sample(logits, "st-gs", tau, generator=generator)

    def steps() -> list[Callable[[], Any]]:
        model = vae.CategoricalVAE(784, latents, categories).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        return [lambda: plain_train(model, images, 1, 1.0, optimizer, generator),
                lambda: plain_train(model, images, 1, 1.0, optimizer, generator,
                                    sample=gumbelkit_sample)]

    torch.manual_seed(0)
    torch_s, gumbelkit_s = paired_ratios(steps, device, rounds)
    ratio = median_interval(torch_s / gumbelkit_s)
    bar.update(2)
    return {"case": case, "mode": VAE_MODE, "torch_ms": 1e3 * float(np.median(torch_s)),
            "gumbelkit_ms": 1e3 * float(np.median(gumbelkit_s)),
            "speedup_vs_torch": ratio.estimate, "speedup_low": ratio.low,
            "speedup_high": ratio.high}


def worst(rows: Sequence[dict[str, Any]]) -> str:
    """The sentence naming the row where gumbelkit does worst against torch and torch.compile."""
    parts = []
    for key, name in (("speedup_vs_torch", "torch eager"), ("speedup_vs_compile",
                                                            "torch.compile")):
        timed = [row for row in rows if row.get(key) is not None]
        if timed:
            row = min(timed, key=lambda r: r[key])
            parts.append(f"against {name}: {row['case']} {row['mode']} at {row[key]:.2f}x")
    return "Worst row " + "; ".join(parts) + "." if parts else ""


def table(rows: Sequence[dict[str, Any]]) -> Table:
    """The rows as one table (milliseconds, speed-ups, bandwidth, memory)."""
    def memory_cell(row: dict[str, Any], name: str) -> str:
        peak = row.get(f"{name}_peak")
        return "" if peak is None else f"{peak:.2f} / {row[f'{name}_held']:.2f}"

    def interval_cell(row: dict[str, Any]) -> str:
        low = row.get("speedup_low")
        return "" if low is None else f"[{low:.3f}, {row['speedup_high']:.3f}]"

    return Table(
        ["case", "mode", "torch", "compile", "compile s", "gumbelkit", "copy", "×torch",
         "×torch 95%", "×compile", "gk bw", "torch bw", "torch peak/held", "gk peak/held"],
        [[row["case"], row["mode"], row["torch_ms"], row.get("compile_ms"),
          row.get("compile_s"), row["gumbelkit_ms"], row.get("copy_ms"),
          row["speedup_vs_torch"], interval_cell(row), row.get("speedup_vs_compile"),
          row.get("gumbelkit_bandwidth"), row.get("torch_bandwidth"),
          memory_cell(row, "torch"), memory_cell(row, "gumbelkit")] for row in rows])


def markdown(rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    return "\n".join([
        f"# Kernel benchmark ({meta['device']})", "",
        "Milliseconds (GPU: median of CUDA events; CPU: the best interleaved round; the VAE "
        "steps: the median round); speed-ups are torch's (or torch.compile's) time over "
        "gumbelkit's (the VAE steps: the median ratio of a round, with its 95% interval); "
        "bandwidth is the fewest bytes the mode must move per second, as a fraction of a copy's; "
        "memory is in multiples of the logits' size (peak during a forward with gradients, held "
        "after it).", "",
        markdown_table(table(rows)), "",
        f"Machine: {meta['machine']}. Command: `{meta['command']}`. Wall time "
        f"{meta['wall_seconds']:.0f} s. The gumbelkit column times gumbelkit.kernels, which the "
        "public functions call after validating their input (gk.set_validation(False) skips "
        "that). " + worst(rows), ""])


def run_kernels(out: str | Path, device: str = "cpu", cases: Sequence[str] | None = None,
                modes: Sequence[str] = MODES, compile_cases: Sequence[str] | None = None,
                threads: int | None = None, repeats: int = 15, vae_rounds: int = VAE_ROUNDS,
                command: str | None = None) -> list[dict[str, Any]]:
    """Time every case and mode, write ``kernels-<device>.md``, ``.csv`` and ``.json`` under
    ``out``, and return the rows. ``compile_cases`` are also timed under ``torch.compile``."""
    resolved = resolve_device(device)
    if resolved.type not in CASES:
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    cases = list(CASES[resolved.type] if cases is None else cases)
    compile_cases = set(COMPILED[resolved.type] if compile_cases is None else compile_cases)
    for case in [*cases, *compile_cases]:
        parse_vae_case(case) if case.startswith("vae-") else parse_case(case)
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise ValueError(f"unknown modes {unknown}; modes are {', '.join(MODES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    total = sum(2 if case.startswith("vae-") else len(modes) * (3 if case in compile_cases else 2)
                for case in cases)
    with torch_threads(threads), \
            tqdm(total=total, desc="bench kernels", unit="timing", file=sys.stderr) as bar:
        time_calls = timer(resolved, repeats)
        for case in cases:
            if case.startswith("vae-"):
                rows.append(measure_vae_step(case, resolved, vae_rounds, bar))
            else:
                rows += measure_case(case, resolved, modes, case in compile_cases, time_calls,
                                     bar)
        meta = {"device": resolved.type, "machine": machine_description(resolved),
                "python": platform.python_version(), "torch": torch.__version__,
                "triton": _triton_version(), "backend": kernels.backend_for(
                    torch.empty(1, 2, device=resolved)),
                "command": command or "gumbelkit bench kernels",
                "wall_seconds": time.perf_counter() - started}
    stem = f"kernels-{resolved.type}"
    (out / f"{stem}.md").write_text(markdown(rows, meta))
    write_csv(out / f"{stem}.csv", Table(list(COLUMNS), [[row.get(c) for c in COLUMNS]
                                                          for row in rows]))
    (out / f"{stem}.json").write_text(json.dumps(to_jsonable({"meta": meta, "rows": rows}),
                                                 indent=2, allow_nan=False))
    return rows


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__

"""Kernel benchmark: Gumbel-max and Gumbel-Softmax of gumbelkit against torch, in one process.

For each case (shape, dtype; the categories along the last dim) and mode, the median time of:

- ``torch``: eager PyTorch, ``torch.nn.functional.gumbel_softmax(x, tau=1, hard=...)``, and for
  the index-only mode ``(x - torch.empty_like(x).exponential_().log()).argmax(-1)``;
- ``compile``: ``torch.compile`` of the same function (where asked for: compiling costs seconds
  per case);
- ``gumbelkit``: the dispatch of :mod:`gumbelkit.kernels` (Triton on CUDA, the chunked path on
  the CPU), which is what ``gk.gumbel_softmax`` and ``gk.gumbel_max`` run after validating their
  input;
- ``copy``: ``x.clone()``, one read and one write of the logits: the bandwidth yardstick.

Modes: ``index`` (the sampled index only), ``soft`` and ``hard`` (forward), ``soft+bwd`` and
``hard+bwd`` (forward and ``torch.autograd.grad`` with a given output gradient). The ratios
``torch / gumbelkit`` and ``compile / gumbelkit`` compare like with like in the same process. The
achieved bandwidth is the fewest bytes a mode must move (index: the logits once; forward: read
and write, 2 passes; forward and backward: 5 passes) over the time, as a fraction of the copy's
(2 passes over its time). On CUDA, memory is the peak allocated during a forward with
``requires_grad`` and what stays allocated after it (the output and what autograd keeps), both
in multiples of the logits' size. GPU times come from ``triton.testing.do_bench`` (CUDA events,
median); CPU times are the median of repeated ``time.perf_counter`` intervals on the threads
asked for.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import kernels
from ..harness.executors import resolve_device, torch_threads
from ..harness.protocol import Table
from ..harness.report import to_jsonable, write_csv
from ..harness.runner import machine_description

__all__ = ["CASES", "MODES", "run_kernels", "parse_case"]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# the issue's table, plus decode-size rows and a middle size
CASES = {
    "cuda": ["4096x50257:bf16", "4096x128256:bf16", "4096x50257:fp32", "1048576x10:fp32",
             "262144x64:bf16", "8x128256:bf16", "65536x1024:bf16"],
    "cpu": ["512x50257:fp32", "512x50257:bf16", "65536x10:fp32", "16384x64:fp32",
            "8x128256:fp32", "4096x1024:fp32"],
}
COMPILED = {"cuda": ["4096x50257:bf16"], "cpu": []}  # also timed under torch.compile by default
MODES = ("index", "soft", "hard", "soft+bwd", "hard+bwd")
PASSES = {"index": 1, "soft": 2, "hard": 2, "soft+bwd": 5, "hard+bwd": 5}
COLUMNS = ("case", "mode", "torch_ms", "compile_ms", "gumbelkit_ms", "copy_ms",
           "speedup_vs_torch", "speedup_vs_compile", "gumbelkit_bandwidth", "torch_bandwidth",
           "torch_peak", "torch_held", "gumbelkit_peak", "gumbelkit_held")


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


def with_backward(forward: Callable[[torch.Tensor], torch.Tensor], grad: torch.Tensor
                  ) -> Callable[[torch.Tensor], Any]:
    return lambda x: torch.autograd.grad(forward(x), x, grad)


def timer(device: torch.device, repeats: int) -> Callable[[Callable[[], Any]], float]:
    """Median milliseconds of a call: CUDA events through Triton's do_bench, or host clocks."""
    if device.type == "cuda":
        from triton.testing import do_bench

        return lambda call: float(do_bench(call, warmup=25, rep=100, return_mode="median"))

    def host(call: Callable[[], Any]) -> float:
        call()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return 1e3 * statistics.median(times)

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
                 time_call: Callable[[Callable[[], Any]], float], bar: tqdm
                 ) -> list[dict[str, Any]]:
    shape, dtype = parse_case(case)
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(shape, device=device, generator=generator).to(dtype)
    leaf = x.detach().requires_grad_(True)
    grad = torch.randn(shape, device=device, generator=generator).to(dtype)
    copy_ms = time_call(lambda: x.clone())
    rows = []
    for mode in modes:
        backward = mode.endswith("+bwd")
        functions = {"torch": torch_function(mode), "gumbelkit": gumbelkit_function(mode)}
        if compiled:
            functions["compile"] = torch.compile(torch_function(mode), dynamic=False)
        row: dict[str, Any] = {"case": case, "mode": mode, "copy_ms": copy_ms}
        for name, forward in functions.items():
            call = with_backward(forward, grad) if backward else forward
            argument = leaf if backward else x
            row[f"{name}_ms"] = time_call(lambda c=call, a=argument: c(a))
            bar.update(1)
            if device.type == "cuda" and name != "compile" and mode in ("soft", "hard"):
                row[f"{name}_peak"], row[f"{name}_held"] = memory(forward, leaf)
        bytes_moved = PASSES[mode] * x.numel() * x.element_size()
        copy_rate = 2 * x.numel() * x.element_size() / copy_ms
        for name in ("torch", "gumbelkit"):
            row[f"{name}_bandwidth"] = bytes_moved / row[f"{name}_ms"] / copy_rate
        row["speedup_vs_torch"] = row["torch_ms"] / row["gumbelkit_ms"]
        if compiled:
            row["speedup_vs_compile"] = row["compile_ms"] / row["gumbelkit_ms"]
        rows.append(row)
    return rows


def _cell(value: Any, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def markdown(rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"# Kernel benchmark ({meta['device']})", "",
             "Milliseconds (median); speed-ups are torch's (or torch.compile's) time over "
             "gumbelkit's; bandwidth is the fewest bytes the mode must move per second, as a "
             "fraction of a copy's; memory is in multiples of the logits' size (peak during a "
             "forward with gradients, held after it).", "",
             "| case | mode | torch | compile | gumbelkit | copy | ×torch | ×compile | "
             "gk bw | torch bw | torch peak/held | gk peak/held |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        get = row.get
        memory_cells = [
            f"{get(f'{n}_peak'):.2f} / {get(f'{n}_held'):.2f}" if get(f"{n}_peak") is not None
            else "" for n in ("torch", "gumbelkit")]
        lines.append(
            f"| {row['case']} | {row['mode']} | {row['torch_ms']:.3f} | "
            f"{_cell(get('compile_ms'), '.3f')} | {row['gumbelkit_ms']:.3f} | "
            f"{row['copy_ms']:.3f} | {row['speedup_vs_torch']:.2f} | "
            f"{_cell(get('speedup_vs_compile'), '.2f')} | {row['gumbelkit_bandwidth']:.2f} | "
            f"{row['torch_bandwidth']:.2f} | {memory_cells[0]} | {memory_cells[1]} |")
    lines += ["", f"Machine: {meta['machine']}. Command: `{meta['command']}`. "
              f"Wall time {meta['wall_seconds']:.0f} s. The gumbelkit column times "
              "gumbelkit.kernels, which the public functions call after validating their input "
              "(gk.set_validation(False) skips that).", ""]
    return "\n".join(lines)


def run_kernels(out: str | Path, device: str = "cpu", cases: Sequence[str] | None = None,
                modes: Sequence[str] = MODES, compile_cases: Sequence[str] | None = None,
                threads: int | None = None, repeats: int = 5,
                command: str | None = None) -> list[dict[str, Any]]:
    """Time every case and mode, write ``kernels-<device>.md``, ``.csv`` and ``.json`` under
    ``out``, and return the rows. ``compile_cases`` are also timed under ``torch.compile``."""
    resolved = resolve_device(device)
    if resolved.type not in CASES:
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    cases = list(CASES[resolved.type] if cases is None else cases)
    compile_cases = set(COMPILED[resolved.type] if compile_cases is None else compile_cases)
    for case in [*cases, *compile_cases]:
        parse_case(case)
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise ValueError(f"unknown modes {unknown}; modes are {', '.join(MODES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    total = sum(len(modes) * (3 if case in compile_cases else 2) for case in cases)
    with torch_threads(threads), \
            tqdm(total=total, desc="bench kernels", unit="timing", file=sys.stderr) as bar:
        time_call = timer(resolved, repeats)
        for case in cases:
            rows += measure_case(case, resolved, modes, case in compile_cases, time_call, bar)
        meta = {"device": resolved.type, "machine": machine_description(resolved),
                "python": platform.python_version(), "torch": torch.__version__,
                "triton": _triton_version(), "backend": kernels.backend_for(
                    torch.empty(1, 2, device=resolved)),
                "command": command or "gumbelkit bench kernels",
                "wall_seconds": time.perf_counter() - started}
    stem = f"kernels-{resolved.type}"
    (out / f"{stem}.md").write_text(markdown(rows, meta))
    write_csv(out / f"{stem}.csv",
              Table(list(COLUMNS), [[row.get(c) for c in COLUMNS] for row in rows]))
    (out / f"{stem}.json").write_text(json.dumps(to_jsonable({"meta": meta, "rows": rows}),
                                                 indent=2, allow_nan=False))
    return rows


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__

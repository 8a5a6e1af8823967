"""Vocabulary-size benchmark: ``gk.soft_embedding`` against the composition
``F.gumbel_softmax(logits) @ E``, and the restricted samplers against plain torch, in one process.

For each case ``ROWSxVxD`` (rows of logits over a vocabulary of V, a ``(V, D)`` embedding table):

- the time of forward and backward (``torch.autograd.grad`` of the output, with a given output
  gradient, to the logits and the table) of the composition ``F.gumbel_softmax(x, tau=1) @ E``
  and of ``gk.soft_embedding(x, E, 1.0)`` with each noise (``"torch"``, the default, and
  ``"portable"``), interleaved by :func:`gumbelkit.bench.kernels.timer`;
- the bytes held for backward: every tensor a forward saves for backward (through
  ``torch.autograd.graph.saved_tensors_hooks``), each storage counted once, the storages of the
  inputs (logits, table) left out;
- on CUDA, the peak memory allocated during the forward, beyond what was allocated before it
  (on the CPU there is no allocator counter: only the saved bytes are reported).

The ratios (composition over soft embedding) come from the same run. For each case ``ROWSxV``
of the restricted samplers, the time of ``gk.gumbel_max(x, top_k=50)``, ``top_p=0.9`` and
``min_p=0.05`` against the torch code a user would write: ``torch.topk`` and a mask for top-k;
``torch.sort``, a cumulative sum and a mask for top-p (as HF transformers' TopPLogitsWarper); a
softmax, its maximum and a mask for min-p; each followed by a Gumbel-max sample
``(x - log(Exp(1))).argmax(-1)``. Tables are written with the harness's renderer (Markdown,
CSV, strict JSON), as ``gumbelkit bench kernels`` does.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..embedding import soft_embedding
from ..harness.executors import resolve_device, torch_threads
from ..harness.protocol import Table
from ..harness.report import markdown_table, to_jsonable, write_csv
from ..harness.runner import machine_description
from ..sampling import gumbel_max
from .kernels import DTYPES, timer

__all__ = ["CASES", "RESTRICTED_CASES", "RULES", "run_vocab", "parse_sizes", "saved_bytes"]

CASES = {"cpu": ["512x50257x768", "64x32000x256"],
         "cuda": ["4096x50257x768", "4096x128256x4096"]}
RESTRICTED_CASES = {"cpu": ["512x50257"], "cuda": ["512x50257"]}
NOISES = ("torch", "portable")
COLUMNS = ("case", "dtype", "composition_ms", "gumbelkit_ms", "speedup", "portable_ms",
           "portable_speedup", "composition_saved_bytes", "gumbelkit_saved_bytes",
           "saved_ratio", "composition_peak_bytes", "gumbelkit_peak_bytes", "peak_ratio")
RESTRICTED_COLUMNS = ("case", "dtype", "rule", "baseline", "torch_ms", "gumbelkit_ms",
                      "speedup")


def _sample(x: torch.Tensor) -> torch.Tensor:
    return (x - torch.empty_like(x).exponential_().log()).argmax(-1)


def _torch_top_k(x: torch.Tensor) -> torch.Tensor:
    return _sample(x.masked_fill(x < torch.topk(x, 50, -1).values[..., -1:], -math.inf))


def _torch_top_p(x: torch.Tensor) -> torch.Tensor:
    ordered, order = torch.sort(x, descending=False)
    drop = ordered.softmax(-1).cumsum(-1) <= 1 - 0.9
    drop[..., -1:] = False
    return _sample(x.masked_fill(drop.scatter(-1, order, drop), -math.inf))


def _torch_min_p(x: torch.Tensor) -> torch.Tensor:
    probs = x.softmax(-1)
    return _sample(x.masked_fill(probs < 0.05 * probs.amax(-1, keepdim=True), -math.inf))


# rule: (the baseline in words, the torch code, gumbelkit's call)
RULES: dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor],
                       Callable[[torch.Tensor], torch.Tensor]]] = {
    "top_k=50": ("topk + mask + sample", _torch_top_k, lambda x: gumbel_max(x, top_k=50)),
    "top_p=0.9": ("sort + cumsum + mask + sample", _torch_top_p,
                  lambda x: gumbel_max(x, top_p=0.9)),
    "min_p=0.05": ("softmax + max + mask + sample", _torch_min_p,
                   lambda x: gumbel_max(x, min_p=0.05)),
}


def parse_sizes(text: str, count: int) -> tuple[int, ...]:
    """``"512x50257x768"`` as ``(512, 50257, 768)``: ``count`` positive sizes."""
    try:
        sizes = tuple(int(size) for size in text.split("x"))
    except ValueError:
        sizes = ()
    if len(sizes) != count or min(sizes) < 1:
        form = "x".join(("ROWS", "V", "D")[:count])
        raise ValueError(f"a case is {form} ({count} positive sizes), got {text!r}")
    return sizes


def saved_bytes(forward: Callable[[], Any], inputs: Sequence[torch.Tensor]) -> int:
    """The bytes of the tensors ``forward`` saves for backward, each storage once, the storages
    of ``inputs`` left out."""
    left_out = {tensor.untyped_storage().data_ptr() for tensor in inputs}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in left_out:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = forward()  # the graph keeps every saved storage alive: no address is reused
    del out
    return sum(storages.values())


def peak_bytes(forward: Callable[[], Any]) -> int:
    """The peak CUDA memory allocated during ``forward``, beyond what was allocated before."""
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = forward()
    torch.cuda.synchronize()
    del out
    return torch.cuda.max_memory_allocated() - before


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if numerator is None or not denominator else numerator / denominator


def measure_embedding(case: str, dtype: str, device: torch.device,
                      time_calls: Callable[[Sequence[Callable[[], Any]]], list[float]],
                      bar: tqdm) -> dict[str, Any]:
    rows, size, width = parse_sizes(case, 3)
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(rows, size, device=device, generator=generator).to(DTYPES[dtype])
    table = torch.randn(size, width, device=device, generator=generator).to(DTYPES[dtype])
    grad = torch.randn(rows, width, device=device, generator=generator).to(DTYPES[dtype])
    x.requires_grad_(True)
    table.requires_grad_(True)
    forwards = {"composition": lambda: F.gumbel_softmax(x, tau=1.0) @ table,
                **{noise: (lambda noise=noise: soft_embedding(x, table, 1.0, noise=noise,
                                                              generator=generator))
                   for noise in NOISES}}
    calls = [lambda f=f: torch.autograd.grad(f(), (x, table), grad) for f in forwards.values()]
    composition_ms, gumbelkit_ms, portable_ms = time_calls(calls)
    bar.update(len(calls))
    row: dict[str, Any] = {
        "case": case, "dtype": dtype, "composition_ms": composition_ms,
        "gumbelkit_ms": gumbelkit_ms, "speedup": composition_ms / gumbelkit_ms,
        "portable_ms": portable_ms, "portable_speedup": composition_ms / portable_ms,
        "composition_saved_bytes": saved_bytes(forwards["composition"], (x, table)),
        "gumbelkit_saved_bytes": saved_bytes(forwards["torch"], (x, table))}
    row["saved_ratio"] = _ratio(row["composition_saved_bytes"], row["gumbelkit_saved_bytes"])
    if device.type == "cuda":
        row["composition_peak_bytes"] = peak_bytes(forwards["composition"])
        row["gumbelkit_peak_bytes"] = peak_bytes(forwards["torch"])
        row["peak_ratio"] = _ratio(row["composition_peak_bytes"], row["gumbelkit_peak_bytes"])
    return row


def measure_restricted(case: str, dtype: str, device: torch.device,
                       time_calls: Callable[[Sequence[Callable[[], Any]]], list[float]],
                       bar: tqdm) -> list[dict[str, Any]]:
    shape = parse_sizes(case, 2)
    generator = torch.Generator(device=device).manual_seed(0)
    x = (2 * torch.randn(shape, device=device, generator=generator)).to(DTYPES[dtype])
    rows = []
    for rule, (baseline, plain, restricted) in RULES.items():
        torch_ms, gumbelkit_ms = time_calls([lambda f=plain: f(x), lambda f=restricted: f(x)])
        bar.update(2)
        rows.append({"case": case, "dtype": dtype, "rule": rule, "baseline": baseline,
                     "torch_ms": torch_ms, "gumbelkit_ms": gumbelkit_ms,
                     "speedup": torch_ms / gumbelkit_ms})
    return rows


def tables(rows: Sequence[dict[str, Any]], restricted: Sequence[dict[str, Any]]
           ) -> tuple[Table, Table]:
    embedding = Table(
        ["case", "dtype", "composition ms", "soft_embedding ms", "×", "portable ms",
         "× portable", "composition saved bytes", "soft_embedding saved bytes", "× saved",
         "composition peak bytes", "soft_embedding peak bytes", "× peak"],
        [[row["case"], row["dtype"], row["composition_ms"], row["gumbelkit_ms"],
          row["speedup"], row["portable_ms"], row["portable_speedup"],
          row["composition_saved_bytes"], row["gumbelkit_saved_bytes"], row["saved_ratio"],
          row.get("composition_peak_bytes"), row.get("gumbelkit_peak_bytes"),
          row.get("peak_ratio")] for row in rows])
    samplers = Table(
        ["case", "dtype", "rule", "torch baseline", "torch ms", "gk.gumbel_max ms", "×"],
        [[row[c] for c in RESTRICTED_COLUMNS] for row in restricted])
    return embedding, samplers


def markdown(rows: Sequence[dict[str, Any]], restricted: Sequence[dict[str, Any]],
             meta: dict[str, Any]) -> str:
    embedding, samplers = tables(rows, restricted)
    peak = ("peak is the CUDA memory allocated during a forward beyond what was allocated "
            "before it" if meta["device"] == "cuda" else "peak memory is not measured on the "
            "CPU (no allocator counter): only the bytes saved for backward")
    parts = [
        f"# Vocabulary benchmark ({meta['device']})", "",
        "Forward and backward (to the logits and the table) of `F.gumbel_softmax(x) @ E` "
        "against `gk.soft_embedding(x, E)` with the torch noise (the default) and the portable "
        "one, in milliseconds (GPU: median of CUDA events; CPU: the best interleaved round); "
        "× is the composition's time over the soft embedding's. Saved: the bytes every forward "
        "keeps for backward (saved-tensor hooks, each storage once, the logits and the table "
        f"left out), × saved their ratio; {peak}.", "", markdown_table(embedding), ""]
    if restricted:
        parts += ["Restricted samplers: `gk.gumbel_max(x, rule)` against the torch baseline; "
                  "× is the baseline's time over gumbelkit's.", "", markdown_table(samplers), ""]
    parts += [f"Machine: {meta['machine']}. Command: `{meta['command']}`. Wall time "
              f"{meta['wall_seconds']:.0f} s.", ""]
    return "\n".join(parts)


def run_vocab(out: str | Path, device: str = "cpu", cases: Sequence[str] | None = None,
              restricted_cases: Sequence[str] | None = None, dtype: str = "fp32",
              threads: int | None = None, repeats: int = 5,
              command: str | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Measure every case, write ``vocab-<device>.md``, ``.csv`` (and ``-restricted.csv``) and
    ``.json`` under ``out``, and return the soft-embedding rows and the restricted rows."""
    resolved = resolve_device(device)
    if resolved.type not in CASES:
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    cases = list(CASES[resolved.type] if cases is None else cases)
    restricted_cases = list(RESTRICTED_CASES[resolved.type] if restricted_cases is None
                            else restricted_cases)
    for case in cases:
        parse_sizes(case, 3)
    for case in restricted_cases:
        parse_sizes(case, 2)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    total = 3 * len(cases) + 2 * len(RULES) * len(restricted_cases)
    with torch_threads(threads), \
            tqdm(total=total, desc="bench vocab", unit="timing", file=sys.stderr) as bar:
        time_calls = timer(resolved, repeats)
        rows = [measure_embedding(case, dtype, resolved, time_calls, bar) for case in cases]
        restricted = [row for case in restricted_cases
                      for row in measure_restricted(case, dtype, resolved, time_calls, bar)]
        meta = {"device": resolved.type, "machine": machine_description(resolved),
                "python": platform.python_version(), "torch": torch.__version__,
                "dtype": dtype, "repeats": repeats, "command": command or "gumbelkit bench vocab",
                "wall_seconds": time.perf_counter() - started}
    stem = f"vocab-{resolved.type}"
    (out / f"{stem}.md").write_text(markdown(rows, restricted, meta))
    write_csv(out / f"{stem}.csv", Table(list(COLUMNS), [[row.get(c) for c in COLUMNS]
                                                          for row in rows]))
    write_csv(out / f"{stem}-restricted.csv", Table(list(RESTRICTED_COLUMNS), [
        [row[c] for c in RESTRICTED_COLUMNS] for row in restricted]))
    (out / f"{stem}.json").write_text(json.dumps(to_jsonable(
        {"meta": meta, "rows": rows, "restricted": restricted}), indent=2, allow_nan=False))
    return rows, restricted

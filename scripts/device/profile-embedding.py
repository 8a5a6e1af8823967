"""Where the time of the soft embedding goes on a GPU, kernel by kernel, beside the composition
``F.gumbel_softmax(x) @ E``: torch.profiler's table of the device time of each kernel over a few
forward and backward passes, for tuning the Triton path (gumbelkit/kernels/triton_embedding.py).

    python3 scripts/device/profile-embedding.py [ROWSxVxD] [bf16|fp32]

(default 4096x50257x768 bf16; on a machine without CUDA it profiles the CPU, for trying it).
"""

import sys

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import gumbelkit as gk
from gumbelkit.bench.vocab import parse_sizes

case = sys.argv[1] if len(sys.argv) > 1 else "4096x50257x768"
dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[sys.argv[2] if len(sys.argv) > 2
                                                         else "bf16"]
rows, size, width = parse_sizes(case, 3)
device = "cuda" if torch.cuda.is_available() else "cpu"
x = torch.randn(rows, size, device=device).to(dtype).requires_grad_(True)
table = torch.randn(size, width, device=device).to(dtype).requires_grad_(True)
grad = torch.randn(rows, width, device=device).to(dtype)
calls = {"composition": lambda: F.gumbel_softmax(x, tau=1.0) @ table,
         "soft_embedding": lambda: gk.soft_embedding(x, table, 1.0)}
activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
for name, call in calls.items():
    torch.autograd.grad(call(), (x, table), grad)  # compiled and warm
    with profile(activities=activities) as trace:
        for _ in range(3):
            torch.autograd.grad(call(), (x, table), grad)
        if device == "cuda":
            torch.cuda.synchronize()
    sort = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
    print(f"## {name}, {case} {dtype}, 3 forward and backward passes on {device}")
    print(trace.key_averages().table(sort_by=sort, row_limit=15))

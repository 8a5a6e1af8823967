"""One launch of each Triton kernel at 4096x50257 bfloat16, for Nsight Compute to profile:
index-only Gumbel-max, hard and soft Gumbel-Softmax forward and backward.

    ncu --section SpeedOfLight --section ComputeWorkloadAnalysis --section InstructionStats \
        -k regex:_kernel python3 scripts/device/profile-kernels.py
"""

import torch

from gumbelkit import kernels

x = torch.randn(4096, 50257, device="cuda").bfloat16().requires_grad_(True)
grad = torch.randn_like(x)
kernels.gumbel_max(x, 1)
for hard in (True, False):
    torch.autograd.grad(kernels.gumbel_softmax(x, 1.0, hard, 1), x, grad)
torch.cuda.synchronize()

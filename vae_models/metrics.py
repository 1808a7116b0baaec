"""Evaluation metrics shared by the trainer, the app and the benchmarks."""

from __future__ import annotations

import torch
from torch import Tensor


def mmd_rbf(a: Tensor, b: Tensor, bandwidths: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0)) -> Tensor:
    """Unbiased estimate of the squared maximum mean discrepancy (Gretton et al. 2012, eq. 3) between the samples
    a (n, d) and b (m, d), with a sum of Gaussian kernels exp(-|u-v|^2 / (2 h^2)) over several bandwidths h, so
    that no single scale has to be tuned to the data. Zero in expectation when both come from one distribution."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    n, m = len(a), len(b)
    if n < 2 or m < 2:
        raise ValueError("mmd_rbf needs at least two samples on each side")

    def kernel(u: Tensor, v: Tensor) -> Tensor:
        d2 = torch.cdist(u, v).pow(2)
        return sum(torch.exp(-d2 / (2 * h * h)) for h in bandwidths)

    kaa, kbb, kab = kernel(a, a), kernel(b, b), kernel(a, b)
    term_a = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))
    term_b = (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    return (term_a + term_b - 2 * kab.mean()).float()

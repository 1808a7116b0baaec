"""benchmarks/peak_share.py's breakdown of a training step: a profiled matrix product's (m, k, n) is read from its
input shapes, so its GFLOP/s can be given beside its time."""

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.peak_share import matmul_shapes, time_by_operation


def test_mm_and_addmm_shapes_give_m_k_n_and_other_operations_none():
    assert matmul_shapes([[128, 784], [784, 200]]) == (128, 784, 200)  # aten::mm
    assert matmul_shapes([[200], [128, 784], [784, 200], [], []]) == (128, 784, 200)  # aten::addmm, bias first
    assert matmul_shapes([[128, 784], [128, 784]]) is None  # not a product of these shapes (an elementwise op)


def test_the_breakdown_counts_calls_per_step_and_the_products_share_of_the_time():
    a, b = torch.randn(64, 32), torch.randn(32, 16)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(4):  # four "steps", each one product and two elementwise operations
            torch.mm(a, b)
            torch.tanh(a)
            torch.tanh(a)
    rows, share = time_by_operation(prof, steps=4)
    by_operation = {(row[0], row[1]): row for row in rows}
    mm = by_operation[("aten::mm", "64x32 32x16")]
    assert mm[2] == "1" and by_operation[("aten::tanh", "64x32")][2] == "2"  # calls per step
    assert float(mm[4]) > 0 and 0 < share < 1  # the product has a rate; it is part of the time, not all of it

"""The continuous Bernoulli's log-normaliser (Loaiza-Ganem & Cunningham 2019, eq. 7), log C(lambda) with
C = 2 atanh(1 - 2 lambda) / (1 - 2 lambda), in terms of the logit t: C = t / tanh(t / 2), -> 2 at t = 0. Checked in
float64 against that closed form and, near t = 0 where it is 0/0, against its series log 2 + t^2/12 - t^4/1440."""

import math

import pytest
import torch

from vae_models.blocks import _cb_log_norm


def exact(t: float) -> float:
    if abs(t) < 1e-2:
        return math.log(2.0) + t * t / 12 - t**4 / 1440
    return math.log(t / math.tanh(t / 2))


@pytest.mark.parametrize("t", [0.0, 1e-5, -3e-4, 9.9e-4, 1e-3, -2e-3, 0.05, 0.7, -3.0, 12.0, 29.5, -29.9, 45.0, -300.0, 1e4])
def test_log_normaliser_matches_the_closed_form(t):
    """Also far out: a trained decoder's background logits pass -30, where C(lambda) = |t| keeps growing."""
    value = _cb_log_norm(torch.tensor([t], dtype=torch.float64)).item()
    assert value == pytest.approx(exact(t), rel=0, abs=1e-12)


"""`vae_models.corruption.corrupt`: what it refuses, and that a corrupted copy keeps the images' dtype (the noise
is drawn in float32 on the CPU and converted, so half-precision images stay half precision)."""

import pytest
import torch

from vae_models.corruption import CORRUPTIONS, corrupt


def test_only_floating_point_tensors_are_corrupted():
    for bad in (torch.ones(2, 1, 4, 4, dtype=torch.long), torch.ones(2, 1, 4, 4, dtype=torch.uint8), [[0.5]]):
        with pytest.raises(ValueError, match="floating-point image tensor"):
            corrupt(bad, "gaussian", 0.1)


@pytest.mark.parametrize("value", [1.5, 1.0001, -0.5])
def test_values_just_outside_the_unit_interval_are_refused(value):
    x = torch.full((1, 1, 4, 4), 0.5)
    x[0, 0, 1, 1] = value
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        corrupt(x, "salt_and_pepper", 0.1)


@pytest.mark.parametrize("kind", CORRUPTIONS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_the_corrupted_copy_keeps_the_dtype(kind, dtype):
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(dtype)
    noisy = corrupt(x, kind, 0.3, torch.Generator().manual_seed(1))
    assert noisy.dtype == dtype and noisy.shape == x.shape and not torch.equal(noisy, x)

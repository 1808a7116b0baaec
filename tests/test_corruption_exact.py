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


def block_corners(erased: torch.Tensor) -> set[tuple[int, int]]:
    """(top, left) of the erased square of each image in (N, H, W)."""
    return {tuple(image.nonzero()[0].tolist()) for image in erased}


def test_the_block_can_sit_anywhere_in_the_image_edges_included():
    side = round(0.5 * 28)  # 14: 15 possible rows and columns for its corner
    erased = corrupt(torch.ones(400, 1, 28, 28), "block", 0.5, torch.Generator().manual_seed(0))[:, 0] == 0
    corners = block_corners(erased)
    assert {top for top, _ in corners} == set(range(28 - side + 1))
    assert {left for _, left in corners} == set(range(28 - side + 1))


@pytest.mark.parametrize("shape", [(28, 28), (5, 28, 28), (2, 3, 1, 28, 28)])
def test_a_block_is_erased_from_images_of_any_leading_shape(shape):
    noisy = corrupt(torch.ones(shape), "block", 0.25, torch.Generator().manual_seed(0))
    assert noisy.shape == shape
    assert ((noisy == 0).reshape(-1, 28 * 28).sum(1) == 49).all()  # one 7 x 7 block in every image

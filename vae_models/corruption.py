"""Input corruptions p(x~|x) for the denoising VAE (Im et al. 2017), the app's denoising tab and the metrics.

Every corruption maps images in [0, 1] to images in [0, 1] of the same shape; `level` means:

    salt_and_pepper  the probability that a pixel is replaced by noise; a replaced pixel becomes 0 or 1 with equal
                     probability (so on a grey image the share of changed pixels is `level`). level in [0, 1].
    gaussian         the standard deviation of additive N(0, level^2) pixel noise, clipped back to [0, 1].
                     level in [0, 1] (beyond 1 the clipped image is pure salt-and-pepper anyway).
    block            the side of one square block set to 0 (erased), as a fraction of the image side, at a random
                     position in each image: round(level * H) x round(level * W) pixels. level in [0, 1].

Randomness comes from `generator` (a CPU torch.Generator) when given, else from torch's global RNG, and is drawn
on the CPU so a seed gives the same corruption on every device.
"""

from __future__ import annotations

import torch
from torch import Tensor

CORRUPTIONS = ("salt_and_pepper", "gaussian", "block")


def check_corruption(kind: str, level: float) -> None:
    """Raise ValueError unless (kind, level) describes a valid corruption (configs call this too)."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; choose one of {list(CORRUPTIONS)}")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 <= float(level) <= 1.0:
        raise ValueError(f"corruption level must be a number in [0, 1], got {level!r}")


def corrupt(x: Tensor, kind: str, level: float, generator: torch.Generator | None = None) -> Tensor:
    """A corrupted copy x~ ~ p(x~|x) of the images x (values in [0, 1]; block needs (..., H, W))."""
    check_corruption(kind, level)
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise ValueError("corrupt expects a floating-point image tensor with values in [0, 1]")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"corrupt expects values in [0, 1], got [{x.min().item():.3g}, {x.max().item():.3g}]")
    level = float(level)

    def uniform(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=generator).to(x.device, x.dtype)

    if kind == "salt_and_pepper":
        hit = uniform(*x.shape) < level
        salt = (uniform(*x.shape) < 0.5).to(x.dtype)  # 1 (salt) or 0 (pepper), equally likely
        return torch.where(hit, salt, x)
    if kind == "gaussian":
        noise = torch.randn(*x.shape, generator=generator).to(x.device, x.dtype)
        return (x + level * noise).clamp(0.0, 1.0)
    # block
    if x.dim() < 2:
        raise ValueError(f"block corruption needs images of shape (..., H, W), got {tuple(x.shape)}")
    height, width = x.shape[-2:]
    bh, bw = round(level * height), round(level * width)
    images = x.reshape(-1, height, width).clone()
    tops = torch.randint(0, height - bh + 1, (len(images),), generator=generator)
    lefts = torch.randint(0, width - bw + 1, (len(images),), generator=generator)
    for image, top, left in zip(images, tops.tolist(), lefts.tolist()):
        image[top:top + bh, left:left + bw] = 0.0
    return images.reshape(x.shape)

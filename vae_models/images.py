"""Image helpers shared by the trainer (sample grids for logs and model cards) and the app."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def make_grid(images: Tensor, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile images (B,1,H,W) in [0,1] into one uint8 (rows*H, cols*W) array, row-major, with a light border."""
    images = images.detach().float().cpu().clamp(0, 1)
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"make_grid expects (B,1,H,W) images, got {tuple(images.shape)}")
    b, _, h, w = images.shape
    ncol = nrow or math.ceil(math.sqrt(b))
    nrows = math.ceil(b / ncol)
    grid = torch.full((nrows * (h + padding) + padding, ncol * (w + padding) + padding), pad_value)
    for i in range(b):
        r, c = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[top:top + h, left:left + w] = images[i, 0]
    return (grid.numpy() * 255).round().astype(np.uint8)


def grid_image(images: Tensor, nrow: int | None = None, scale: int = 1) -> Image.Image:
    """make_grid as a PIL image, optionally enlarged (nearest neighbour keeps the pixels crisp)."""
    img = Image.fromarray(make_grid(images, nrow))
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img

"""Sample grids during and after training: which images a model shows (chosen by its declaration), saved under the
run folder and sent to the experiment tracker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vae_models.base import evaluating
from vae_models.images import grid_image

PREVIEW_COUNT = 64  # images in each sample grid (8 x 8)


def preview_images(model, images: torch.Tensor, labels: torch.Tensor, seed: int) -> torch.Tensor | None:
    """A grid's worth of images, chosen by the model's declaration: samples from the prior for generative models
    (label-conditional ones: each digit in turn), completions of the fixed test images for quadrant-completion
    models, nothing for models that produce no images (the classifier). `labels` are the test images' labels."""
    spec = model.spec
    if spec.classifies:
        return None
    generator = torch.Generator().manual_seed(seed)  # own RNG: previews never perturb training randomness
    x = images[:PREVIEW_COUNT].to(model.device)
    cond = (torch.arange(PREVIEW_COUNT, device=model.device) % 10) if spec.label_conditional else None
    with evaluating(model), torch.no_grad():
        if spec.completes_quadrants:
            return model.complete(x, model.default_num_given, 1, generator=generator)[0].float().cpu()
        return model.sample(PREVIEW_COUNT, labels=cond, generator=generator).float().cpu()


def save_preview(images: torch.Tensor, path: Path, scale: int = 1) -> Image.Image:
    grid = grid_image(images, nrow=8, scale=scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return grid


def log_to_trackers(trackers, grid: Image.Image, step: int) -> None:
    """Send the grid to each tracker in the form it takes (TensorBoard: an HW array; trackio: its Image type)."""
    for tracker in trackers:
        if tracker.name == "tensorboard":
            tracker.log_images({"samples": np.asarray(grid)}, step=step, dataformats="HW")
        elif tracker.name == "trackio":
            import trackio  # optional and slow to import (it brings a web UI): only when --log-with trackio

            trackio.log({"samples": trackio.Image(grid)}, step=step)

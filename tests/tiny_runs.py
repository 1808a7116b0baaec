"""The tiny in-process training runs that the trainer's tests share: a 784-8-2 VAE on MNIST, fixed binarisation,
a checkpoint every 2 steps, the loss terms read after every step; each test states only what it changes."""

from pathlib import Path

import pytest
import torch

from train.trainer import TrainConfig
from tests.paths import MNIST_DIR



def tiny_vae_config(run: Path, **changes) -> TrainConfig:
    return TrainConfig(**{"model": "vae", "model_config": {"hidden_dims": [8], "latent_dim": 2},
                          "data_dir": str(MNIST_DIR), "batch_size": 16, "max_steps": 6, "checkpoint_every": 2,
                          "keep_checkpoints": 2, "output_dir": str(run), "seed": 1, "binarize": "fixed",
                          "progress_bar": False, "sync_every": 1, **changes})


@pytest.fixture(autouse=True)  # autouse in every test module that imports it
def restore_denormals():
    """The trainer flushes float32 denormals to zero for speed, a process-wide switch: undo it for the other tests."""
    yield
    torch.set_flush_denormal(False)

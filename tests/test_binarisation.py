"""Which binarisation training uses (train.trainer.default_binarize, vae_models.data.make_loader): likelihood models
train on dynamically binarised digits (the IWAE protocol), redrawn every time an image is used; grey-level
likelihoods and the classifier on grey levels; a fixed binarisation is the same every epoch."""

import pytest
import torch

from train.trainer import default_binarize
from vae_models import build_model
from vae_models.data import make_loader


@pytest.mark.parametrize("name,fields,expected", [
    ("vae", {}, "dynamic"), ("cvae", {}, "dynamic"), ("dvae", {}, "dynamic"), ("avb", {}, "dynamic"),
    ("aae", {}, "dynamic"), ("socvae", {}, "dynamic"), ("quadrant_nn", {}, "dynamic"), ("ae", {}, "dynamic"),
    ("vae", {"likelihood": "gaussian"}, "none"), ("vae", {"likelihood": "continuous_bernoulli"}, "none"),
    ("classifier", {"backbone": "conv", "hidden_dims": [4, 8], "latent_dim": 8}, "none"),
])
def test_likelihood_models_train_on_binarised_digits_and_grey_level_models_on_grey_levels(name, fields, expected):
    """README, Data: likelihood models train on dynamically binarised digits (the IWAE protocol); grey-level
    likelihoods and the classifier on grey levels."""
    assert default_binarize(build_model(name, **{"hidden_dims": [8], "latent_dim": 2, **fields})) == expected


def test_dynamic_binarisation_redraws_every_time_an_image_is_used():
    images = torch.full((64, 28, 28), 128, dtype=torch.uint8)  # every pixel is 1 with probability 128/255
    loader = make_loader(images, torch.zeros(64, dtype=torch.int64), batch_size=64, shuffle=False, binarize="dynamic")
    torch.manual_seed(0)
    first, second = (next(iter(loader))[0] for _ in range(2))
    assert set(first.unique().tolist()) == {0.0, 1.0} and not torch.equal(first, second)
    assert abs(first.mean().item() - 128 / 255) < 0.01
    fixed = make_loader(images, torch.zeros(64, dtype=torch.int64), batch_size=64, shuffle=False, binarize="fixed")
    assert torch.equal(next(iter(fixed))[0], next(iter(fixed))[0])
    assert make_loader(images, torch.zeros(64, dtype=torch.int64), batch_size=64).dataset.binarize == "dynamic"

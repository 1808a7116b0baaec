"""The shared blocks of vae_models/blocks.py.

The convolutional backbone written out with torch.nn.functional (the encoder: two 4x4 stride-2 convolutions,
1 -> 32 -> 64 channels, 28 -> 14 -> 7, each followed by the activation, then the MLP head on the flattened features
and the extra vector; the decoder mirrors it) and the parameter names and shapes that published conv checkpoints
(the bundled classifier) are strict-loaded by; the continuous Bernoulli's mean through lambda = 1/2; the types and
limits every model config checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vae_models import ConfigError, build_model
from vae_models.blocks import Decoder, Encoder, ModelConfig, pixel_mean

CONFIG = ModelConfig(backbone="conv", hidden_dims=(16,), activation="tanh")


def _linear(x, params, prefix):
    return F.linear(x, params[prefix + ".weight"], params[prefix + ".bias"])


def test_the_conv_encoder_is_two_strided_convolutions_then_the_mlp_on_features_and_extra():
    torch.manual_seed(0)
    encoder = Encoder(CONFIG, out_features=4, extra_features=3)
    p = dict(encoder.named_parameters())
    assert {k: tuple(v.shape) for k, v in p.items()} == {
        "features.0.weight": (32, 1, 4, 4), "features.0.bias": (32,),
        "features.2.weight": (64, 32, 4, 4), "features.2.bias": (64,),
        "head.0.weight": (16, 64 * 7 * 7 + 3), "head.0.bias": (16,), "head.2.weight": (4, 16), "head.2.bias": (4,)}
    x, extra = torch.rand(2, 1, 28, 28), torch.randn(2, 3)
    h = torch.tanh(F.conv2d(x, p["features.0.weight"], p["features.0.bias"], stride=2, padding=1))
    h = torch.tanh(F.conv2d(h, p["features.2.weight"], p["features.2.bias"], stride=2, padding=1))
    h = torch.cat([h.flatten(1), extra], dim=1)
    expected = _linear(torch.tanh(_linear(h, p, "head.0")), p, "head.2")
    torch.testing.assert_close(encoder(x, extra), expected)


def test_the_conv_decoder_mirrors_the_encoder_up_to_one_logit_per_pixel():
    torch.manual_seed(0)
    decoder = Decoder(CONFIG, in_features=4)
    p = dict(decoder.named_parameters())
    assert {k: tuple(v.shape) for k, v in p.items()} == {
        "head.0.0.weight": (16, 4), "head.0.0.bias": (16,), "head.0.2.weight": (64 * 7 * 7, 16),
        "head.0.2.bias": (64 * 7 * 7,), "body.1.weight": (64, 32, 4, 4), "body.1.bias": (32,),
        "body.3.weight": (32, 1, 4, 4), "body.3.bias": (1,)}
    z = torch.randn(2, 4)
    h = torch.tanh(_linear(torch.tanh(_linear(z, p, "head.0.0")), p, "head.0.2")).view(2, 64, 7, 7)
    h = torch.tanh(F.conv_transpose2d(h, p["body.1.weight"], p["body.1.bias"], stride=2, padding=1))
    expected = F.conv_transpose2d(h, p["body.3.weight"], p["body.3.bias"], stride=2, padding=1)
    assert expected.shape == (2, 1, 28, 28)
    torch.testing.assert_close(decoder(z), expected)


@pytest.mark.parametrize("value", ["0.1", True, None, float("nan")])
def test_a_number_field_refuses_strings_booleans_none_and_nan(value):
    with pytest.raises(ConfigError, match="gaussian_std must be a finite number"):
        build_model("ae", likelihood="gaussian", gaussian_std=value)


@pytest.mark.parametrize("value", [1, "true", None])
def test_a_switch_must_be_a_boolean(value):
    with pytest.raises(ConfigError, match="supervised_prior must be a bool"):
        build_model("aae", prior="mixture10", latent_dim=2, supervised_prior=value)


@pytest.mark.parametrize("hidden_dims", [[], [0], [16, 0]])
def test_hidden_widths_must_be_a_non_empty_list_of_positive_integers(hidden_dims):
    with pytest.raises(ConfigError, match="hidden_dims must be non-empty positive widths"):
        build_model("ae", hidden_dims=hidden_dims)


def test_the_smallest_network_has_one_hidden_unit_and_one_latent_dimension():
    config = build_model("vae", hidden_dims=[1], latent_dim=1).config
    assert config.hidden_dims == (1,) and config.latent_dim == 1
    with pytest.raises(ConfigError, match="latent_dim must be >= 1"):
        build_model("vae", hidden_dims=[1], latent_dim=0)


def test_continuous_bernoulli_mean_rises_through_one_half_continuously():
    """Near lambda = 1/2 the closed form is 0/0; the series 1/2 + t/12 (t the logit) takes over below |t| = 1e-3."""
    t = torch.tensor([-2e-3, -1e-3, -5e-4, 0.0, 5e-4, 1e-3, 2e-3], dtype=torch.float64)
    mean = pixel_mean(t, "continuous_bernoulli")
    assert (mean.diff() > 0).all()
    torch.testing.assert_close(mean, 0.5 + t / 12, atol=1e-9, rtol=0)

"""Adversarial variational Bayes (vae_models/avb.py, Mescheder et al. 2017) beyond the shared suite: the
discriminator learns the true log density ratio (Proposition 1), the losses are finite and the parameter groups the
trainer alternates over are a partition of the model, the config's refusals, and the noise-basis and every-layer-noise
encoders."""

import math
from pathlib import Path

import pytest
import torch

from vae_models import AVB, ConfigError, build_model
from vae_models.avb import JointDiscriminator, avb_discriminator_loss
from vae_models.blocks import log_normal


def test_avb_discriminator_learns_the_log_density_ratio(one_thread):
    """Gaussian toy: x ~ N(0,1), q(z|x) = N(a x, s^2), p(z) = N(0,1), so T*(x,z) = log q(z|x) - log p(z) (eq. 3.4) is
    known in closed form. T is trained with the very loss the model uses (eq. 3.3)."""
    torch.manual_seed(0)
    a, s = 0.8, 0.6

    def draw(n):
        x = torch.randn(n, 1)
        return x, a * x + s * torch.randn(n, 1), torch.randn(n, 1)

    T = JointDiscriminator(1, 1, (64, 64), "elu")
    optimizer = torch.optim.Adam(T.parameters(), lr=3e-3)
    for _ in range(400):
        optimizer.zero_grad()
        avb_discriminator_loss(T, *draw(512)).loss.backward()
        optimizer.step()

    x, z_q, z_p = draw(4000)
    x, z = torch.cat([x, x]), torch.cat([z_q, z_p])  # fresh pairs from both sides of the game
    true_ratio = log_normal(z, a * x, torch.full_like(z, 2 * math.log(s))) - log_normal(z)
    with torch.no_grad():
        estimate = T(x, z)
    assert torch.corrcoef(torch.stack([estimate, true_ratio]))[0, 1] > 0.95
    assert (estimate - true_ratio).abs().mean() < 0.15 * true_ratio.std()


AUTHORS_FORM = dict(adaptive_contrast=True, encoder_type="noise_basis", num_basis=3, basis_hidden_dims=[8],
                    basis_moments="batch", discriminator_type="inner_product", discriminator_features=16,
                    discriminator_prior_term=True, weight_init="authors")


@pytest.mark.parametrize("fields", [dict(adaptive_contrast=False), dict(adaptive_contrast=True), AUTHORS_FORM],
                         ids=["plain", "adaptive_contrast", "authors_form"])
def test_avb_losses_finite_and_parameter_groups_partition_the_model(fields):
    torch.manual_seed(0)
    model = build_model("avb", hidden_dims=[32], latent_dim=3, noise_dim=4, discriminator_hidden_dims=[32],
                        contrast_samples=4, proposal_samples=8, **fields)
    batch = (torch.rand(8, 1, 28, 28).bernoulli(), torch.arange(8))
    generator, discriminator = model.loss(batch), model.discriminator_loss(batch)
    assert set(generator.terms) == {"reconstruction", "kl_estimate"}
    for value in [generator.loss, discriminator.loss, *generator.terms.values(), *discriminator.terms.values()]:
        assert value.dim() == 0 and torch.isfinite(value)
    assert generator.terms["reconstruction"] > 0 and discriminator.loss > 0

    gen = {id(p) for p in model.generator_parameters()}
    disc = {id(p) for p in model.discriminator_parameters()}
    assert gen and disc and not gen & disc and gen | disc == {id(p) for p in model.parameters()}
    assert disc == {id(p) for p in model.discriminator.parameters()}

    # The discriminator step must not leak gradient into the encoder/decoder (their codes are detached).
    model.zero_grad()
    discriminator.loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.generator_parameters())

    log_w = model.log_importance_weights(batch[0], num_samples=5)
    assert log_w.shape == (5, 8) and torch.isfinite(log_w).all()
    assert model.encode(batch[0]).mean is None and model.reconstruct(batch[0]).shape == batch[0].shape


def test_avb_config_errors():
    with pytest.raises(ConfigError, match="contrast_samples"):
        build_model("avb", contrast_samples=1)
    with pytest.raises(ConfigError, match="noise_dim"):
        build_model("avb", noise_dim=0)


def test_avb_noise_basis_moments_are_those_of_its_samples():
    """The adaptive-contrast encoder z = z0(x) + sum_i a_i(x) v_i(eps_i): E[z|x] and Var[z|x] from the basis moments
    (Mescheder et al. 2017, Sec. 4 / the authors' full0_ac) match the moments of many draws of z for each x."""
    torch.manual_seed(0)
    model = build_model("avb", hidden_dims=[16], latent_dim=3, noise_dim=4, num_basis=5, basis_hidden_dims=[8],
                        encoder_type="noise_basis", adaptive_contrast=True, moment_samples=20_000,
                        discriminator_hidden_dims=[8])
    x = torch.rand(3, 1, 28, 28).bernoulli()
    mean, std = model.moments(x, 2)
    draws = model.posterior_samples(x, 20_000)
    torch.testing.assert_close(mean, draws.mean(0), atol=0.03 * std.max().item(), rtol=0)
    torch.testing.assert_close(std, draws.std(0), rtol=0.05, atol=0)
    z0, a = model.encoder.coefficients(x)
    assert (a > 0).all() and a.shape == (5, 3, 3)
    assert model.loss((x, None)).loss.isfinite() and model.discriminator_loss((x, None)).loss.isfinite()


def test_avb_every_layer_noise_reaches_every_layer_and_old_configs_keep_their_encoder():
    torch.manual_seed(0)
    model = build_model("avb", hidden_dims=[16, 16], latent_dim=2, noise_dim=3, encoder_type="every_layer_noise",
                        discriminator_hidden_dims=[8], discriminator_prior_term=True)
    x = torch.rand(4, 1, 28, 28).bernoulli()
    eps = torch.randn(4, 3, requires_grad=True)
    z = model.encoder(x, eps)
    assert len(model.encoder.noise) == 3  # both hidden layers and the output layer get the noise
    for noise in model.encoder.noise:  # each layer's noise path alone still moves z
        (grad,) = torch.autograd.grad(z.sum(), noise.weight, retain_graph=True)
        assert grad.abs().sum() > 0
    # T's prior term: T(x, z) = net(x, z) + |z|^2 / 2, so T learns log q(z|x) up to a constant.
    z = torch.randn(4, 2)
    plain = model.discriminator.net(torch.cat([x.flatten(1), z], 1)).squeeze(1)
    torch.testing.assert_close(model.discriminator(x, z), plain + 0.5 * z.pow(2).sum(1))
    # Weights saved before these options load with the old encoder (input noise, no prior term).
    old = AVB.from_pretrained(str(Path(__file__).resolve().parents[1] / "pretrained" / "avb"))
    assert old.config.encoder_type == "input_noise" and not old.config.discriminator_prior_term
    assert (old.config.discriminator_type, old.config.basis_moments, old.config.weight_init) == (
        "joint", "fresh", "pytorch")

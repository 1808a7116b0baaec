"""Details of the models that the mutation run found untested: seeded prior samples, the Gaussian AAE prior, the
continuous-Bernoulli mean near lambda = 1/2, the configs' smallest valid values, the single-sample ELBO, and the
quadrant counts a structured CVAE trains on."""

import math

import pytest
import torch

from vae_models import build_model
from vae_models.blocks import pixel_mean


@pytest.mark.parametrize("prior", ["gaussian", "mixture10", "swiss_roll"])
def test_aae_prior_samples_are_reproducible_from_their_generator(prior):
    model = build_model("aae", hidden_dims=[8], latent_dim=2, prior=prior)
    first = model.prior_sample(50, torch.Generator().manual_seed(3))
    torch.manual_seed(123)  # the global RNG must not matter
    again = model.prior_sample(50, torch.Generator().manual_seed(3))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, model.prior_sample(50, torch.Generator().manual_seed(4)))


def test_the_gaussian_aae_prior_is_the_standard_normal():
    z = build_model("aae", hidden_dims=[8], latent_dim=2, prior="gaussian").prior_sample(
        20_000, torch.Generator().manual_seed(0))
    assert z.mean(0).abs().max() < 0.03 and (z.std(0) - 1).abs().max() < 0.03  # 4 standard errors
    assert (z.norm(dim=1) < 1).float().mean().item() == pytest.approx(1 - math.exp(-0.5), abs=0.01)  # chi2(2)


def test_continuous_bernoulli_mean_rises_through_one_half_continuously():
    """Near lambda = 1/2 the closed form is 0/0; the series 1/2 + t/12 (t the logit) takes over below |t| = 1e-3."""
    t = torch.tensor([-2e-3, -1e-3, -5e-4, 0.0, 5e-4, 1e-3, 2e-3], dtype=torch.float64)
    mean = pixel_mean(t, "continuous_bernoulli")
    assert (mean.diff() > 0).all()
    torch.testing.assert_close(mean, 0.5 + t / 12, atol=1e-9, rtol=0)


def test_smallest_valid_config_values_are_accepted():
    assert build_model("aae", hidden_dims=[8], latent_dim=2, posterior="universal", noise_dim=1).config.noise_dim == 1
    assert build_model("classifier", hidden_dims=[4], latent_dim=8, num_classes=2).config.num_classes == 2


def test_the_default_elbo_is_one_importance_weight_below_the_many_sample_bound():
    """AVB has no closed-form KL: its ELBO is the one-sample importance weight of its fitted proposal."""
    torch.manual_seed(0)
    model = build_model("avb", hidden_dims=[8], latent_dim=2, discriminator_hidden_dims=[8]).eval()
    x = torch.bernoulli(torch.full((64, 1, 28, 28), 0.3), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        elbo = model.elbo(x)
        log_w = model.log_importance_weights(x, 200)
    assert elbo.shape == (64,)
    bound = torch.logsumexp(log_w, 0) - math.log(200)
    assert elbo.mean() < bound.mean()  # Burda et al. 2015: the k-sample bound tightens the ELBO
    assert elbo.mean() == pytest.approx(log_w.mean().item(), abs=3 * log_w.std().item() / math.sqrt(64))


def test_a_structured_cvae_trained_on_all_settings_draws_1_2_or_3_given_quadrants():
    model = build_model("socvae", hidden_dims=[8], latent_dim=2, num_given_quadrants=0)
    counts = model.training_counts(3000)
    assert set(counts.tolist()) == {1, 2, 3} and counts.dtype == torch.long
    fixed = build_model("socvae", hidden_dims=[8], latent_dim=2, num_given_quadrants=2)
    assert set(fixed.training_counts(100).tolist()) == {2}


def test_decode_gives_the_mean_of_the_models_own_pixel_likelihood():
    """Continuous Bernoulli (Loaiza-Ganem & Cunningham 2019): mean = lambda/(2 lambda - 1) + 1/(2 atanh(1 - 2 lambda)),
    not the sigmoid that a Bernoulli decoder's mean is."""
    torch.manual_seed(0)
    model = build_model("vae", hidden_dims=[8], latent_dim=2, likelihood="continuous_bernoulli").eval()
    z = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model.decoder_logits(z).double()
        mean = model.decode(z).double()
    lam = torch.sigmoid(logits)
    closed_form = lam / (2 * lam - 1) + 1 / (2 * torch.atanh(1 - 2 * lam))
    far = logits.abs() > 0.5  # the closed form is 0/0 at lambda = 1/2 (float32 cancellation near it)
    torch.testing.assert_close(mean[far], closed_form[far], atol=1e-4, rtol=0)
    assert (mean[far] - lam[far]).abs().max() > 0.01


@pytest.mark.parametrize("given", [1, 2, 3])
def test_a_quadrant_models_reconstruction_keeps_the_quadrants_it_was_trained_to_be_given(given):
    from vae_models.socvae import mask

    torch.manual_seed(0)
    model = build_model("quadrant_nn", hidden_dims=[8], num_given_quadrants=given).eval()
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model.reconstruct(x)
    kept = (out == x).all(0)[0]
    assert torch.equal(kept, mask(given)[0])  # exactly the given quadrants are the input's pixels


def test_a_quadrant_model_names_the_shape_it_refuses():
    model = build_model("quadrant_nn", hidden_dims=[8])
    with pytest.raises(ValueError, match=r"got \(2, 28, 28\)$"):
        model.reconstruct(torch.zeros(2, 28, 28))

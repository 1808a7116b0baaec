"""The mathematics the models rest on: KL in closed form, likelihood normalisation, the ELBO / IWAE bounds
on a model whose log p(x) is known exactly, and gradients through the reparameterisation."""

import math

import pytest
import torch
from torch import nn

from vae_models import VAE, VAEConfig
from vae_models.base import VAEFamilyModel
from vae_models.blocks import (
    kl_normal, kl_standard_normal, log_normal, pixel_log_likelihood, pixel_mean, reparameterize,
)
from vae_models.vae import GaussianEncoderMixin


def test_analytic_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g) * 0.5
    mean_p, logvar_p = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g) * 0.5
    z = mean + (0.5 * logvar).exp() * torch.randn(200_000, 3, 5, generator=g)
    log_q = log_normal(z, mean, logvar)
    mc_standard = (log_q - log_normal(z)).mean(0)
    mc_general = (log_q - log_normal(z, mean_p, logvar_p)).mean(0)
    torch.testing.assert_close(kl_standard_normal(mean, logvar), mc_standard, atol=0.03, rtol=0.01)
    torch.testing.assert_close(kl_normal(mean, logvar, mean_p, logvar_p), mc_general, atol=0.05, rtol=0.01)
    assert (kl_standard_normal(mean, logvar) > 0).all()
    torch.testing.assert_close(kl_standard_normal(torch.zeros(4), torch.zeros(4)), torch.tensor(0.0))


def test_bernoulli_likelihood_is_the_log_of_the_pmf():
    logits = torch.randn(2, 1, 28, 28)
    x = torch.rand(2, 1, 28, 28).bernoulli()
    p = torch.sigmoid(logits)
    manual = (x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)
    torch.testing.assert_close(pixel_log_likelihood(logits, x, "bernoulli"), manual, atol=1e-3, rtol=1e-5)


@pytest.mark.parametrize("logit", [-60.0, -6.0, -1.0, -1e-4, 0.0, 2e-4, 0.7, 5.0, 40.0])
def test_continuous_bernoulli_is_a_normalised_density_with_the_stated_mean(logit):
    # Integrate the density over [0,1] with the midpoint rule, pixel by pixel.
    n = 20_000
    x = ((torch.arange(n, dtype=torch.float64) + 0.5) / n).view(n, 1, 1, 1)
    logits = torch.full_like(x, logit)
    density = pixel_log_likelihood(logits, x, "continuous_bernoulli").exp()
    assert density.mean().item() == pytest.approx(1.0, abs=1e-4)
    mean = (x.flatten() * density).mean().item()
    assert pixel_mean(torch.tensor([logit], dtype=torch.float64), "continuous_bernoulli").item() == pytest.approx(mean, abs=1e-3)


def test_gaussian_likelihood_matches_torch_distributions():
    logits, x = torch.randn(3, 1, 28, 28), torch.rand(3, 1, 28, 28)
    expected = torch.distributions.Normal(torch.sigmoid(logits), 0.2).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(pixel_log_likelihood(logits, x, "gaussian", gaussian_std=0.2), expected)
    default = torch.distributions.Normal(torch.sigmoid(logits), 0.1).log_prob(x).flatten(1).sum(1)  # the config's
    torch.testing.assert_close(pixel_log_likelihood(logits, x, "gaussian"), default)


class LinearGaussianModel(GaussianEncoderMixin, VAEFamilyModel):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I): log p(x) = log N(x; b, W W^T + s^2 I) is known exactly.
    The encoder is linear with a free log-variance, so it can represent the exact posterior. It reuses the
    library's importance-weight code (GaussianEncoderMixin) and only swaps in the linear decoder."""

    def __init__(self, x_dim=6, z_dim=3, std=0.5):
        super().__init__(VAEConfig(latent_dim=z_dim))
        g = torch.Generator().manual_seed(1)
        self.W, self.b, self.std = torch.randn(x_dim, z_dim, generator=g), torch.randn(x_dim, generator=g), std
        self.enc_mean = nn.Linear(x_dim, z_dim)
        self.enc_logvar = nn.Parameter(torch.zeros(z_dim))

    def encoder(self, x, extra=None):
        return torch.cat([self.enc_mean(x), self.enc_logvar.expand(len(x), -1)], dim=1)

    def decoder_logits(self, z, labels=None):
        return z @ self.W.T + self.b

    def log_likelihood(self, mean, x):
        return torch.distributions.Normal(mean, self.std).log_prob(x).sum(-1)

    def exact_log_px(self, x):
        cov = self.W @ self.W.T + self.std**2 * torch.eye(len(self.b))
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x)

    def set_exact_posterior(self):
        precision = torch.eye(self.W.shape[1]) + self.W.T @ self.W / self.std**2
        cov = torch.linalg.inv(precision)
        gain = cov @ self.W.T / self.std**2  # posterior mean = gain (x - b)
        with torch.no_grad():
            self.enc_mean.weight.copy_(gain)
            self.enc_mean.bias.copy_(-gain @ self.b)
        return cov


def iwae_bound(model, x, k):
    torch.manual_seed(0)
    log_w = model.log_importance_weights(x, k)
    return (torch.logsumexp(log_w, 0) - math.log(k)).mean().item()


def test_elbo_below_exact_log_likelihood_and_iwae_tightens_with_k():
    torch.manual_seed(0)
    model = LinearGaussianModel()
    x = model.decoder_logits(torch.randn(64, 3)) + 0.5 * torch.randn(64, 6)
    log_px = model.exact_log_px(x).mean().item()
    bounds = {k: iwae_bound(model, x, k) for k in (1, 5, 50, 1000)}
    assert bounds[1] < bounds[5] < bounds[50] < bounds[1000] < log_px
    assert log_px - bounds[1000] < 0.25 * (log_px - bounds[1])  # most of the gap closes


def test_exact_posterior_makes_every_importance_weight_equal_log_px():
    model = LinearGaussianModel()
    cov = model.set_exact_posterior()
    # Our encoders are diagonal Gaussians; rotating W by the posterior's eigenvectors makes W^T W (and so the
    # exact posterior covariance) diagonal without changing p(x).
    model.W = model.W @ torch.linalg.eigh(cov).eigenvectors
    cov = model.set_exact_posterior()
    assert torch.allclose(cov, torch.diag(cov.diagonal()), atol=1e-5)
    with torch.no_grad():
        model.enc_logvar.copy_(cov.diagonal().log())
    x = torch.randn(16, 6)
    log_w = model.log_importance_weights(x, 20)
    torch.testing.assert_close(log_w, model.exact_log_px(x).expand(20, -1), atol=1e-4, rtol=1e-5)


def test_gradients_flow_through_the_reparameterisation_to_the_encoder():
    torch.manual_seed(0)
    model = VAE(VAEConfig(hidden_dims=(32,), latent_dim=4))
    x = torch.rand(8, 1, 28, 28).bernoulli()
    enc = model.encode(x)
    reconstruction = -model.log_likelihood(model.decoder_logits(enc.z), x).mean()  # no KL term on purpose
    reconstruction.backward()
    for name, p in model.encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    mean, logvar = torch.zeros(1000, 2, requires_grad=True), torch.zeros(1000, 2, requires_grad=True)
    reparameterize(mean, logvar).pow(2).sum().backward()  # d/dsigma E[(mu + sigma eps)^2] = 2 sigma > 0
    assert logvar.grad.sum() > 0 and mean.grad.abs().sum() > 0


def test_reparameterisation_is_mean_plus_sigma_times_the_standard_normal_draw():
    """z = mu + exp(logvar / 2) * eps (eq. 10), eps the next draw of torch's generator: the seeded runs and the
    importance sampler's proposal depend on this exact form, not only on its distribution."""
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    torch.manual_seed(5)
    z = reparameterize(mean, logvar)
    torch.manual_seed(5)
    torch.testing.assert_close(z, mean + (0.5 * logvar).exp() * torch.randn(4, 3))


def test_gaussian_kl_sums_over_the_last_dimension_of_any_batch_shape():
    """(k, B, d) inputs (k draws of B codes) give (k, B) KLs, each that of its own row."""
    g = torch.Generator().manual_seed(1)
    args = [torch.randn(2, 3, 4, generator=g) for _ in range(4)]
    rows = torch.stack([kl_normal(*(a[i] for a in args)) for i in range(2)])
    torch.testing.assert_close(kl_normal(*args), rows)

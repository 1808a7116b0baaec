"""Exact log p(x) of 2-D latent models by quadrature (vae_models/quadrature.py), against closed forms, an independent
Gauss-Hermite rule, the model's own likelihood on the same grid, and the IWAE bound of the bundled 2-D VAE."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vae_models import VAEConfig, VAEFamilyModel, build_model, load_model
from vae_models.export import read_eval_results
from vae_models.quadrature import NARROWER_BY, grid_log_posterior, latent_grid, quadrature_log_likelihood

from .test_math import LinearGaussianModel
from .paths import MNIST_DIR

ROOT = Path(__file__).resolve().parents[1]


class LinearBernoulliModel(VAEFamilyModel):
    """p(z) = N(0, I) in 2-D and five Bernoulli pixels with logits W z + b: the library's Bernoulli likelihood (the
    quadrature's matrix-product path), with an integrand smooth enough for Gauss-Hermite to be exact."""

    def __init__(self):
        super().__init__(VAEConfig(latent_dim=2))
        g = torch.Generator().manual_seed(3)
        self.W = nn.Parameter(2 * torch.randn(5, 2, generator=g))
        self.b = nn.Parameter(torch.randn(5, generator=g))

    def decoder_logits(self, z, labels=None):
        return z @ self.W.T + self.b


def gauss_hermite_log_px(model, x, nodes=120):
    """log E_{z ~ N(0, I)}[p(x|z)] by the probabilists' Gauss-Hermite product rule (no grid, no truncation)."""
    t, w = np.polynomial.hermite_e.hermegauss(nodes)
    t, w = torch.tensor(t), torch.tensor(w) / math.sqrt(2 * math.pi)
    z = torch.cartesian_prod(t, t)
    log_w = torch.log(torch.cartesian_prod(w, w)).sum(1)
    with torch.no_grad():
        logits = model.decoder_logits(z.float()).double()
        log_lik = torch.stack([model.log_likelihood(logits, one.double().expand(len(z), -1)) for one in x])
    return torch.logsumexp(log_lik + log_w, 1)


def test_a_linear_gaussian_model_gets_its_closed_form_log_likelihood():
    """p(x) = N(x; b, W W^T + s^2 I) for p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I): the model's own Gaussian
    log_likelihood (the chunked path); the posterior's std is ~0.2, so spacing 0.05 is far below its scale."""
    model = LinearGaussianModel(x_dim=6, z_dim=2, std=0.5)
    g = torch.Generator().manual_seed(0)
    x = model.decoder_logits(torch.randn(12, 2, generator=g)) + 0.5 * torch.randn(12, 6, generator=g)
    result = quadrature_log_likelihood(model, x, grid=latent_grid(model, spacing=0.05))
    torch.testing.assert_close(result.log_px, model.exact_log_px(x).double(), rtol=0, atol=1e-4)


def test_the_bernoulli_product_path_matches_gauss_hermite_on_five_pixels():
    model = LinearBernoulliModel()
    x = torch.bernoulli(torch.full((16, 5), 0.5), generator=torch.Generator().manual_seed(1))
    result = quadrature_log_likelihood(model, x, grid=latent_grid(model, spacing=0.02))
    torch.testing.assert_close(result.log_px, gauss_hermite_log_px(model, x), rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def digits():
    from train.evaluate import test_set

    _, binary, labels = test_set(str(MNIST_DIR), 8, seed=0)
    return binary, labels


def midpoint_rule(model, binary, grid, labels=None):
    """log p(x) = log sum_cells p(z) p(x|z) h^2 (grid spacing h), one digit at a time with the model's own
    log_likelihood on every grid point (a label-conditional model given each digit's label)."""
    with torch.no_grad():
        rows = []
        for i, x in enumerate(binary):
            y = None if labels is None else labels[i].expand(len(grid.index))
            logits = model.decoder_logits(grid.points, y)
            rows.append(model.log_likelihood(logits, x.expand(len(logits), -1, -1, -1)))
    return torch.logsumexp(torch.stack(rows).double() + grid.log_prior, 1) + 2 * math.log(grid.spacing)


def test_the_bernoulli_product_equals_the_models_own_likelihood_on_the_same_grid(digits):
    """The matrix product x @ logits^T - sum softplus is the model's log_likelihood, for every grid point."""
    torch.manual_seed(0)
    model = build_model("vae", hidden_dims=[8], latent_dim=2).eval()
    binary, _ = digits
    grid = latent_grid(model, spacing=0.1)
    expected = midpoint_rule(model, binary, grid)
    result = quadrature_log_likelihood(model, binary, grid=grid, chunk=1000, batch_size=3)
    torch.testing.assert_close(result.log_px, expected, rtol=0, atol=2e-4)


def test_a_label_conditional_model_is_scored_by_log_p_x_given_its_own_label(digits):
    torch.manual_seed(0)
    model = build_model("cvae", hidden_dims=[8], latent_dim=2).eval()
    binary, labels = digits
    grid = latent_grid(model, spacing=0.1)
    expected = midpoint_rule(model, binary, grid, labels)
    result = quadrature_log_likelihood(model, binary, labels, grid=grid, chunk=1000)
    torch.testing.assert_close(result.log_px, expected, rtol=0, atol=2e-4)
    other = quadrature_log_likelihood(model, binary, (labels + 1) % 10, grid=grid)
    assert (other.log_px - result.log_px).abs().min() > 1e-3  # the label reaches the decoder


def test_the_grid_covers_the_standard_normal_prior_to_the_stated_level():
    """For N(0, I) the kept cells are the disc |z|^2 <= 2 support, whose prior mass is 1 - e^-support."""
    model = build_model("vae", hidden_dims=[8], latent_dim=2)
    grid = latent_grid(model, spacing=0.01, support=3.0)
    radius = grid.points.double().norm(dim=1)
    assert radius.max() <= math.sqrt(6.0) and radius.max() > math.sqrt(6.0) - 0.01
    mass = float(torch.exp(grid.log_prior).sum() * 0.01 ** 2)
    assert mass == pytest.approx(1 - math.exp(-3), abs=2e-3)
    default = latent_grid(model, spacing=0.1)
    assert default.half_cells * 0.1 == pytest.approx(8.0) and default.support == 32.0  # |z| <= 8: e^-32 outside
    assert default.peak == pytest.approx(-math.log(2 * math.pi) - 0.05 ** 2, abs=1e-6)  # at the cell (0.05, 0.05)


@pytest.mark.parametrize("prior", ["mixture10", "swiss_roll"])
def test_the_grid_covers_the_aae_priors_support(prior):
    """The AAE's 2-D priors: the cells within 8 nats of the peak hold all but at most e^-8 of the prior's mass, and
    nearly every prior sample lies in a kept cell."""
    model = build_model("aae", hidden_dims=[8], latent_dim=2, prior=prior)
    grid = latent_grid(model, spacing=0.05, support=8.0)
    outside = 1 - float(torch.exp(grid.log_prior).sum() * 0.05 ** 2)
    assert 0 < outside <= 1.01 * math.exp(-8)  # mixture: e^-8 (each petal a 2-D Gaussian); roll: less (1-D across)
    samples = model.prior_sample(2000, torch.Generator().manual_seed(0))
    cells = torch.floor(samples.double() / 0.05).long()
    kept = {tuple(c) for c in grid.index.tolist()}
    assert sum(tuple(c) in kept for c in cells.tolist()) >= 1995


def test_the_grid_needs_a_2d_code():
    with pytest.raises(ValueError, match="2-D code"):
        latent_grid(build_model("vae", hidden_dims=[8], latent_dim=3))


def test_the_posterior_on_the_grid_is_the_normalised_closed_form_posterior():
    """Linear-Gaussian: p(z|x) = N(gain (x - b), (I + W^T W / s^2)^-1); on the grid it integrates to 1."""
    model = LinearGaussianModel(x_dim=6, z_dim=2, std=0.5)
    x = model.decoder_logits(torch.randn(3, 2, generator=torch.Generator().manual_seed(2)))
    cov = model.set_exact_posterior()
    with torch.no_grad():
        mean = model.enc_mean(x)
    log_post, grid = grid_log_posterior(model, x, grid=latent_grid(model, spacing=0.05))
    assert torch.allclose(torch.exp(log_post).sum(1) * 0.05 ** 2, torch.ones(3, dtype=torch.float64), atol=1e-9)
    z = grid.points
    for i in range(3):
        exact = torch.distributions.MultivariateNormal(mean[i], cov).log_prob(z).double()
        near = exact > exact.max() - 20  # where the posterior holds its mass
        torch.testing.assert_close(log_post[i][near], exact[near], rtol=0, atol=1e-3)
    dense = grid.dense(log_post)
    n = grid.half_cells
    a, b = grid.index[7]
    assert dense.shape == (3, 2 * n, 2 * n) and dense[1, a + n, b + n] == log_post[1, 7]
    assert torch.isinf(dense).sum() == 3 * (4 * n * n - len(grid.index))  # off the support: -inf


def test_halving_the_spacing_moves_log_px_by_less_than_the_grids_own_estimate(digits):
    """The in-pass estimate (four sub-lattices of spacing 2h against h) bounds what an explicit refinement to
    h / 2 changes, on a ReLU decoder whose integrand has kinks."""
    torch.manual_seed(0)
    model = build_model("vae", hidden_dims=[16], latent_dim=2).eval()
    binary, _ = digits
    coarse = quadrature_log_likelihood(model, binary, grid=latent_grid(model, spacing=0.08))
    fine = quadrature_log_likelihood(model, binary, grid=latent_grid(model, spacing=0.04))
    moved = (fine.log_px - coarse.log_px).abs()
    assert (moved > 0).all() and (moved <= coarse.spacing_change).all()
    assert (fine.spacing_change < coarse.spacing_change).all()  # and the estimate shrinks with the spacing
    assert (coarse.support_change >= -1e-6).all() and coarse.support_change.max() < 1e-4  # |z| 6.9 -> 8: nothing


@pytest.fixture(scope="module")
def bundled_vae_2d(digits):
    """The bundled 2-D VAE on 8 binarised test digits: quadrature on spacing 0.02 within 24 nats of the prior's peak
    (|z| <= 6.9), and the k = 5000 IWAE bound with its Monte Carlo standard error per digit."""
    model = load_model(str(ROOT / "pretrained/vae-2d"))
    binary, _ = digits
    result = quadrature_log_likelihood(model, binary, grid=latent_grid(model, spacing=0.02, support=24.0))
    torch.manual_seed(0)
    with torch.no_grad():
        log_w = model.log_importance_weights(binary, 5000).double()
    iwae = torch.logsumexp(log_w, 0) - math.log(5000)
    w = torch.exp(log_w - log_w.max(0).values)
    mc_error = w.std(0) / (w.mean(0) * math.sqrt(5000))  # delta method: s.e. of log mean(w)
    return result, iwae, mc_error


def test_the_exact_log_likelihood_of_the_bundled_2d_vae_is_at_or_above_its_iwae_bound(bundled_vae_2d):
    result, iwae, mc_error = bundled_vae_2d
    tolerance = result.spacing_change + 3 * mc_error
    assert (result.log_px >= iwae - tolerance).all()
    assert (result.log_px - iwae).mean() < 0.5  # and in 2-D the bound is nearly tight


def test_refining_the_bundled_2d_vaes_grid_moves_log_px_by_less_than_the_stated_tolerance(bundled_vae_2d):
    """Halving the spacing from 0.04 to 0.02 and widening the support from 16 to 24 nats, both measured in the
    same pass; the module docstring states the tolerance of this grid. Eight digits, so their mean is one sharp
    posterior's: the 10,000-digit mean is the records' (the next test)."""
    result, _, _ = bundled_vae_2d
    assert result.spacing_change.max() < 0.5 and result.mean_spacing_change < 0.05
    assert result.support_change.max() < 0.01 and NARROWER_BY == 8.0


def test_every_bundled_exact_nll_moved_less_than_a_hundredth_of_a_nat_when_its_grid_spacing_halved():
    """The target of the exact likelihood: on all 10,000 test digits, halving the spacing (to the default 0.02, or
    to a finer grid where a sharp posterior needs it) changes the mean -log p(x) by < 0.01 nats, for every bundled
    2-D export that records it."""
    records = [r for folder in sorted((ROOT / "pretrained").iterdir()) if folder.is_dir()
               for r in read_eval_results(folder) or [] if r.name == "Exact-NLL"]
    assert len(records) >= 7
    for r in records:
        assert r.details["num_images"] == 10000 and r.details["spacing"] <= 0.02
        assert r.details["spacing_change_of_mean"] < 0.01

"""The exact posterior beside q(z|x) and the identity log p(x) = ELBO + KL(q || p(z|x)) (vae_models/posterior.py):
on a linear-Gaussian 2-D model whose posterior is known in closed form, on the kinds of q the family has, and on
the bundled vae-2d against the whole-support quadrature."""

import math
from pathlib import Path

import torch

from vae_models import build_model, load_model
from vae_models.blocks import kl_normal
from vae_models.posterior import approximate_posterior, dataset_elbo, evidence, exact_posterior
from vae_models.quadrature import grid_log_posterior, latent_grid, quadrature_log_likelihood, quadrature_posterior

from .test_math import LinearGaussianModel

ROOT = Path(__file__).resolve().parents[1]


def linear_model():
    """The 2-D linear-Gaussian model with its encoder set to the exact posterior (diagonal, as test_math rotates it),
    one observation x, and the posterior's closed-form mean (2,) and covariance (2, 2)."""
    torch.manual_seed(0)
    model = LinearGaussianModel(x_dim=6, z_dim=2, std=0.5)
    cov = model.set_exact_posterior()
    model.W = model.W @ torch.linalg.eigh(cov).eigenvectors
    cov = model.set_exact_posterior()
    with torch.no_grad():
        model.enc_logvar.copy_(cov.diagonal().log())
    x = model.decoder_logits(torch.tensor([[0.7, -0.4]])) + 0.5 * torch.randn(1, 6)
    gain = cov @ model.W.T / model.std ** 2
    return model, x, gain @ (x[0] - model.b), cov


def test_the_grid_posterior_is_the_closed_form_and_an_exact_q_closes_the_gap():
    model, x, mean, cov = linear_model()
    torch.manual_seed(1)
    posterior = exact_posterior(model, x)
    grid_mean, grid_cov = posterior.mean_and_covariance()
    torch.testing.assert_close(grid_mean, mean.double(), rtol=0, atol=1e-4)
    torch.testing.assert_close(grid_cov, cov.double(), rtol=0, atol=1e-4)
    assert abs(posterior.log_px - float(model.exact_log_px(x)[0])) < 1e-4
    assert posterior.q.kind == "gaussian" and abs(posterior.q_mass() - 1) < 1e-6 and posterior.mass_outside < 1e-10
    numbers = evidence(model, x, posterior)
    assert abs(numbers.gap) < 1e-4  # q is p(z|x) itself
    assert abs(numbers.difference) < 4 * numbers.elbo_error  # log p(x) - ELBO = 0 within the Monte Carlo error
    assert numbers.kl_closed_form and numbers.draws == 2000


def test_the_gap_of_a_wrong_q_is_its_kl_to_the_posterior_and_log_px_minus_elbo():
    model, x, mean, cov = linear_model()
    with torch.no_grad():  # q shifted by about one posterior std and twice as wide
        model.enc_mean.bias.add_(cov.diagonal().sqrt())
        model.enc_logvar.add_(math.log(2.0))
    torch.manual_seed(2)
    posterior = exact_posterior(model, x)
    numbers = evidence(model, x, posterior)
    q_mean, q_logvar = posterior.q.mean.double(), posterior.q.logvar.double()
    kl = float(kl_normal(q_mean, q_logvar, mean.double(), cov.diagonal().log().double()))
    assert kl > 0.5 and abs(numbers.gap - kl) < 1e-4
    assert abs(numbers.difference - numbers.gap) < 4 * numbers.elbo_error
    assert 4 * numbers.elbo_error < numbers.gap / 3  # the check above tells a gap of this size from none


def test_each_kind_of_q_is_read_from_the_interface():
    torch.manual_seed(0)
    x = torch.rand(1, 1, 28, 28).bernoulli()
    sizes = {"hidden_dims": [16], "latent_dim": 2, "discriminator_hidden_dims": [8]}
    kinds = {"gaussian": build_model("vae", hidden_dims=[16], latent_dim=2),
             "point": build_model("aae", **sizes),
             "draws": build_model("aae", posterior="universal", noise_dim=2, **sizes)}
    for kind, model in kinds.items():
        q = approximate_posterior(model.eval(), x, draws=50)
        assert q.kind == kind and q.draws.shape == ((1, 2) if kind == "point" else (50, 2))
    gaussian = approximate_posterior(build_model("aae", posterior="gaussian", **sizes).eval(), x)
    assert gaussian.kind == "gaussian" and gaussian.mean.shape == (2,)
    avb = build_model("avb", noise_dim=2, **sizes).eval()
    torch.manual_seed(1)
    numbers = evidence(avb, x, exact_posterior(avb, x))
    assert numbers.learned_kl and numbers.gap is None and math.isfinite(numbers.elbo)
    point = kinds["point"].eval()
    numbers = evidence(point, x, exact_posterior(point, x))
    assert numbers.elbo is None and numbers.difference is None and math.isfinite(numbers.log_px)
    assert dataset_elbo(point, x) is None and dataset_elbo(avb, x).values.shape == (1,)


def test_the_dataset_elbo_averages_to_log_px_for_the_exact_q():
    model, x, _, _ = linear_model()
    elbo = dataset_elbo(model, x.expand(4000, -1))
    # every image is the same x: the spread of its values is the draws' noise alone, which the error must match
    assert abs(elbo.error - float(elbo.values.std()) / math.sqrt(len(elbo.values))) < 0.1 * elbo.error
    assert abs(elbo.mean - float(model.exact_log_px(x)[0])) < 4 * elbo.error
    again = [dataset_elbo(model, x.expand(10, -1)).values for _ in range(2)]
    torch.testing.assert_close(*again)  # seeded: the same draws every call


def test_the_window_holds_the_bundled_vae_2d_posterior():
    """log p(x) on the window equals the whole-support quadrature of the evaluation (the default grid: 502,652
    cells) for a bundled test digit, and the gap agrees with log p(x) - ELBO within the Monte Carlo error."""
    from demo.common import test_digits
    from vae_models.typicality import binarize

    model = load_model(str(ROOT / "pretrained" / "vae-2d"))
    x = binarize(test_digits()[0][:1])
    torch.manual_seed(0)
    posterior = exact_posterior(model, x)
    whole = float(quadrature_log_likelihood(model, x).log_px[0])
    assert abs(posterior.log_px - whole) < 0.01
    numbers = evidence(model, x, posterior)
    assert abs(numbers.difference - numbers.gap) < 4 * numbers.elbo_error + 0.01


def test_one_decoding_gives_both_the_likelihood_and_the_posterior():
    model, x, _, _ = linear_model()
    xs = torch.cat([x, x + 1])
    grid = latent_grid(model, spacing=0.1)
    result, log_posterior = quadrature_posterior(model, xs, grid=grid)
    apart = quadrature_log_likelihood(model, xs, grid=grid)
    for mine, theirs in [(result.log_px, apart.log_px), (result.coarse_log_px, apart.coarse_log_px),
                         (result.narrow_log_px, apart.narrow_log_px)]:
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-5)  # the float32 sums of quadrature_log_likelihood
    torch.testing.assert_close(log_posterior, grid_log_posterior(model, xs, grid=grid)[0], rtol=0, atol=1e-6)

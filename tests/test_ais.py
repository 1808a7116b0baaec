"""Annealed importance sampling and BDMC (vae_models/ais.py) against exact answers, and the priors' densities."""

import json
import math
from pathlib import Path

import pytest
import torch

from vae_models import VAE, VAEConfig, build_model
from vae_models.aae import (
    NUM_COMPONENTS, mixture10_log_density, mixture10_sample, swiss_roll_log_density, swiss_roll_sample,
)
from vae_models.ais import annealing_schedule, ais_log_likelihood, bdmc, simulate
from vae_models.data import load_mnist
from vae_models.export import read_eval_results
from vae_models.metrics import importance_sampled_nll

from .test_math import LinearGaussianModel
from .paths import MNIST_DIR



def linear_gaussian_data(n=24, seed=0):
    """The linear-Gaussian model with exact log p(x), n digits simulated from it and the codes behind them."""
    model = LinearGaussianModel()
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 3, generator=g)
    x = model.decoder_logits(z) + model.std * torch.randn(n, 6, generator=g)
    return model, z, x, model.exact_log_px(x)


def ais(model, x, steps, chains=8, seed=1, **kw):
    return ais_log_likelihood(model, x, num_steps=steps, num_chains=chains, leapfrog_steps=3,
                              generator=torch.Generator().manual_seed(seed), **kw)


def test_schedules_run_from_zero_to_one_monotonically():
    for kind in ("sigmoid", "geometric", "linear"):
        betas = annealing_schedule(50, kind)
        assert len(betas) == 51 and betas[0] == 0 and betas[-1] == 1
        assert (betas.diff() > 0).all(), kind
    geometric = annealing_schedule(50, "geometric", start=1e-4)
    assert geometric[1] == pytest.approx(1e-4) and geometric[25] == pytest.approx(10 ** -2, rel=0.2)
    with pytest.raises(ValueError, match="schedule"):
        annealing_schedule(10, "cosine")


def test_ais_approaches_the_exact_log_likelihood_and_rises_with_the_number_of_steps():
    model, _, x, exact = linear_gaussian_data()
    estimates = {steps: ais(model, x, steps).log_px for steps in (2, 30, 300)}
    errors = {steps: (est - exact).mean().item() for steps, est in estimates.items()}
    assert errors[2] < errors[30] < errors[300]  # the bound rises with the number of steps ...
    assert errors[2] < -1.0 and errors[30] < -0.1  # (short schedules are clearly below log p(x))
    assert abs(errors[300]) < 0.1  # ... to within 0.1 nats of log p(x) (mean over 24 digits)
    assert (estimates[300] - exact).abs().max() < 0.6


def test_bdmc_sandwiches_the_exact_log_likelihood():
    model, z, x, exact = linear_gaussian_data()
    result = bdmc(model, z, x, generator=torch.Generator().manual_seed(2), num_steps=30, num_chains=4,
                  leapfrog_steps=3)
    assert result.lower.mean() < exact.mean() < result.upper.mean()
    assert result.gap == pytest.approx((result.upper - result.lower).mean().item())
    assert 0.1 < result.gap < 20
    longer = bdmc(model, z, x, generator=torch.Generator().manual_seed(2), num_steps=150, num_chains=4,
                  leapfrog_steps=3)
    assert longer.gap < 0.8 * result.gap  # the sandwich closes on log p(x) as the schedule lengthens
    assert longer.lower.mean() < exact.mean() + 0.05 and longer.upper.mean() > exact.mean() - 0.05


def moment_matched(model):
    """The linear-Gaussian model's encoder set to the diagonal Gaussian with the exact posterior's per-dimension
    means and variances (its covariance is not diagonal): a q0(z|x) near, not at, the posterior."""
    cov = model.set_exact_posterior()
    with torch.no_grad():
        model.enc_logvar.copy_(cov.diagonal().log())
    return model


def test_ais_from_the_exact_posterior_weighs_every_chain_at_log_px():
    """With q0(z|x) = p(z|x) every increment log p(z) + log p(x|z) - log q0(z|x) is log p(x) itself, so each
    chain's log weight is exactly log p(x), whatever the chains do. A decoder with orthogonal columns makes the
    exact posterior diagonal, so the encoder's Gaussian can be it."""
    model, _, x, _ = linear_gaussian_data(n=5)
    q, _ = torch.linalg.qr(model.W)
    model.W = q * torch.tensor([2.0, 1.0, 0.5])  # W^T W diagonal: p(z|x) has a diagonal covariance
    x = model.decoder_logits(torch.randn(5, 3, generator=torch.Generator().manual_seed(5))) + 0.5 * torch.randn(5, 6)
    moment_matched(model)
    result = ais(model, x, 20, chains=3, start="posterior")
    exact = model.exact_log_px(x).double()
    torch.testing.assert_close(result.log_weights, exact.expand(3, -1), atol=1e-4, rtol=0)
    assert result.settings["start"] == "posterior"
    assert 0.3 < result.acceptance.mean() < 1.0  # the chains did move


def test_ais_from_a_moment_matched_posterior_and_from_the_prior_agree_with_the_exact_log_px():
    """q0 = the diagonal Gaussian with the exact posterior's means and variances (not the posterior: its
    correlations are missing). Both starts reach the exact log p(x) to within their standard error; started at
    q0, a short schedule is already much closer than the same schedule started at the prior; and BDMC from q0
    sandwiches log p(x)."""
    model, z, x, exact = linear_gaussian_data()
    moment_matched(model)
    errors = {}
    for start, steps in (("prior", 300), ("posterior", 100), ("prior", 10), ("posterior", 10)):
        errors[start, steps] = (ais(model, x, steps, start=start).log_px - exact).double()
    for key in (("prior", 300), ("posterior", 100)):
        e = errors[key]
        assert abs(e.mean()) < max(3 * e.std() / math.sqrt(len(e)), 0.05), (key, e.mean(), e.std())
    both = errors["prior", 300] - errors["posterior", 100]
    assert abs(both.mean()) < max(3 * both.std() / math.sqrt(len(both)), 0.05)
    assert errors["prior", 10].mean() < -1.0 and abs(errors["posterior", 10].mean()) < 0.2
    sandwich = bdmc(model, z, x, generator=torch.Generator().manual_seed(2), num_steps=30, num_chains=4,
                    leapfrog_steps=3, start="posterior")
    assert sandwich.lower.mean() < exact.mean() < sandwich.upper.mean() and sandwich.gap < 1.0


def test_ais_start_must_be_prior_or_a_posterior_the_model_has():
    model, _, x, _ = linear_gaussian_data(n=2)
    with pytest.raises(ValueError, match="start"):
        ais(model, x, 5, start="encoder")
    aae = build_model("aae", hidden_dims=[8], latent_dim=2)  # a deterministic encoder: no Gaussian to start from
    with pytest.raises(ValueError, match="posterior_gaussian"):
        ais(aae, torch.rand(2, 1, 28, 28).round(), 5, start="posterior")


def test_pilot_step_sizes_are_fixed_per_digit_and_reused_in_reverse():
    model, z, x, _ = linear_gaussian_data(n=4)
    result = ais(model, x, 40, chains=3)
    assert result.step_sizes.shape == (4, 39) and (result.step_sizes > 0).all()
    assert result.log_weights.shape == (3, 4) and 0.3 < result.acceptance.mean() < 0.95
    # The pilot starts at initial_step_size, grows it near the wide prior, shrinks it near the narrow posterior.
    largest = result.step_sizes.max(1).values
    assert torch.allclose(result.step_sizes[:, 0], torch.tensor(0.1)) and (largest > 0.2).all()
    assert (result.step_sizes[:, -1] < 0.5 * largest).all()
    again = ais(model, x, 40, chains=3, step_sizes=result.step_sizes)
    assert torch.equal(again.step_sizes, result.step_sizes)
    with pytest.raises(ValueError, match="step_sizes"):
        ais(model, x, 40, step_sizes=result.step_sizes[:, 1:])
    with pytest.raises(ValueError, match="initial_codes"):
        ais(model, x, 40, initial_codes=z[:2])


def trained_tiny_vae():
    images, _ = load_mnist("test", data_dir=MNIST_DIR, download=False)
    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(images[:2000].float().div(255).unsqueeze(1), generator=g)
    torch.manual_seed(0)
    model = VAE(VAEConfig(hidden_dims=(64,), latent_dim=4))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(200):
        batch = x[torch.randint(0, 1900, (100,), generator=g)]
        opt.zero_grad()
        model.loss((batch, None)).loss.backward()
        opt.step()
    return model.eval(), x[1900:1930]  # scored on digits it did not train on


def test_ais_agrees_with_importance_sampling_on_a_trained_vae():
    model, x = trained_tiny_vae()
    torch.manual_seed(0)
    is_log_px = -importance_sampled_nll(model, x, num_samples=2000)
    ais_log_px = ais(model, x, 200, chains=4).log_px
    diff = ais_log_px - is_log_px
    standard_error = diff.std().item() / math.sqrt(len(diff))
    assert diff.mean().item() >= -max(standard_error, 0.05)  # agrees with the k=2000 bound, or is above it
    assert diff.mean().item() < 1.0  # and is not far above a bound that is nearly tight in 4 dimensions
    codes, images = simulate(model, 6, generator=torch.Generator().manual_seed(3))
    assert set(images.unique().tolist()) <= {0.0, 1.0} and codes.shape == (6, 4)
    sandwich = bdmc(model, codes, images, generator=torch.Generator().manual_seed(4), num_steps=50, num_chains=4,
                    leapfrog_steps=3)
    assert 0 <= sandwich.gap < 2.0


@pytest.mark.parametrize("prior", ["gaussian", "mixture10", "swiss_roll"])
def test_ais_runs_on_every_aae_prior_and_label_conditional_models(prior):
    torch.manual_seed(0)
    model = build_model("aae", hidden_dims=[16], latent_dim=2, prior=prior,
                        supervised_prior=prior != "gaussian")
    x = torch.rand(3, 1, 28, 28).bernoulli()
    marginal = ais(model, x, 20, chains=2).log_px
    assert marginal.shape == (3,) and torch.isfinite(marginal).all()
    if prior != "gaussian":  # log p(x) = log mean_c p(x|c): every conditional is below 10x the marginal
        labels = torch.tensor([0, 4, 9])
        conditional = ais(model, x, 20, chains=2, labels=labels).log_px
        assert (conditional < marginal + math.log(NUM_COMPONENTS) + 1.0).all()
    cvae = build_model("cvae", hidden_dims=[16], latent_dim=2)
    with pytest.raises(ValueError, match="label"):
        ais(cvae, x, 5, chains=2)
    assert torch.isfinite(ais(cvae, x, 5, chains=2, labels=torch.tensor([1, 2, 3])).log_px).all()


def grid_integral(log_density, low, high, spacing):
    """(integral of p, E[z], E[z z^T]) over the box by the midpoint rule."""
    axes = [torch.arange(lo + spacing / 2, hi, spacing, dtype=torch.float64) for lo, hi in zip(low, high)]
    z = torch.cartesian_prod(*axes)
    p = torch.cat([log_density(part).exp() for part in z.split(20_000)]) * spacing ** 2
    return p.sum().item(), (p[:, None] * z).sum(0), (p[:, None, None] * z[:, :, None] * z[:, None, :]).sum(0)


@pytest.mark.parametrize("name", ["mixture10", "swiss_roll"])
def test_prior_densities_integrate_to_one_and_match_their_samplers(name):
    log_density = mixture10_log_density if name == "mixture10" else swiss_roll_log_density
    sampler = mixture10_sample if name == "mixture10" else swiss_roll_sample
    g = torch.Generator().manual_seed(0)
    for component in (0, 3, 7):  # one component / segment: its mass, mean and covariance against 100k samples
        samples = sampler(torch.full((100_000,), component), g).double()
        low, high = (samples.min(0).values - 0.3).tolist(), (samples.max(0).values + 0.3).tolist()
        labels = lambda z: torch.full((len(z),), component)  # noqa: E731
        # Grid spacing 0.02 < the narrowest std (0.05 across the roll), so the midpoint rule is accurate here too.
        mass, mean, second = grid_integral(lambda z: log_density(z.float(), labels(z)).double(), low, high, 0.02)
        assert mass == pytest.approx(1.0, abs=3e-3)
        torch.testing.assert_close(mean, samples.mean(0), atol=0.01, rtol=0)
        cov = second - mean[:, None] * mean[None, :]
        torch.testing.assert_close(cov, samples.T.cov(), atol=0.005, rtol=0.02)
    # The prior itself is the equal-weight mixture of its parts: log p(z) = log mean_c p(z|c), at prior samples.
    z = sampler(torch.randint(0, NUM_COMPONENTS, (500,), generator=g), g)
    parts = torch.stack([log_density(z, torch.full((len(z),), c)) for c in range(NUM_COMPONENTS)])
    torch.testing.assert_close(log_density(z), torch.logsumexp(parts, 0) - math.log(NUM_COMPONENTS), atol=1e-4,
                               rtol=0)
    assert torch.isfinite(log_density(z)).all()
    grad, = torch.autograd.grad(log_density(z.requires_grad_()).sum(), z)  # AIS needs d log p / dz
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_evaluate_ais_only_merges_ais_nll_with_its_bdmc_gap(tmp_path):
    from train.evaluate import main as evaluate_main

    torch.manual_seed(0)
    build_model("avb", hidden_dims=[16], latent_dim=2, discriminator_hidden_dims=[8]).save_pretrained(tmp_path / "avb")
    build_model("ae", hidden_dims=[16], latent_dim=2).save_pretrained(tmp_path / "ae")
    stale = [{"name": "IS-NLL (k=1000)", "type": "nll", "value": 207.0}, {"name": "Prior MMD", "type": "mmd",
                                                                          "value": 0.1}]
    (tmp_path / "avb" / "eval_results.json").write_text(json.dumps(stale))
    argv = [str(tmp_path / "avb"), str(tmp_path / "ae"), "--data-dir", str(MNIST_DIR), "--limit", "10",
            "--ais-only", "--ais-steps", "6", "--ais-chains", "2", "--bdmc-digits", "3", "--classifier",
            str(tmp_path / "none")]
    assert evaluate_main(argv) == 0
    avb = [vars(r) for r in read_eval_results(tmp_path / "avb")]
    # The proposal-dominated IS-NLL is gone; AIS-NLL, its error against the quadrature (a 2-D code) and the check
    # of T's KL against it are in.
    assert [e["name"] for e in avb] == ["Prior MMD", "AIS-NLL", "AIS-NLL minus Exact-NLL",
                                        "Objective ELBO minus AIS log-likelihood"]
    entry, gap = avb[1], avb[3]
    assert gap["value"] == pytest.approx(gap["details"]["objective_elbo"] + entry["value"], abs=1e-3)
    assert entry["type"] == "nll" and 0 < entry["value"] < 784 * math.log(2) * 2
    details = entry["details"]
    assert details["num_images"] == 10 and details["num_steps"] == 6 and details["num_chains"] == 2
    assert details["bdmc_digits"] == 3 and details["bdmc_upper"] - details["bdmc_lower"] == pytest.approx(
        details["bdmc_gap"], abs=1e-3) and details["std_error"] > 0
    assert read_eval_results(tmp_path / "ae") == []  # an AE has no likelihood


def test_evaluate_ais_limit_below_one_batch_scores_exactly_those_digits(tmp_path):
    """--ais-limit smaller than the 100-digit chunks of the objective-ELBO check, with --ais-batch digits at a time."""
    from train.evaluate import main as evaluate_main

    torch.manual_seed(0)
    build_model("avb", hidden_dims=[16], latent_dim=2, discriminator_hidden_dims=[8]).save_pretrained(tmp_path / "avb")
    argv = [str(tmp_path / "avb"), "--data-dir", str(MNIST_DIR), "--limit", "10", "--ais-only", "--ais-limit", "5",
            "--ais-batch", "2", "--ais-steps", "4", "--ais-chains", "2", "--bdmc-digits", "2", "--classifier",
            str(tmp_path / "none")]
    assert evaluate_main(argv) == 0
    ais, error, gap = [vars(r) for r in read_eval_results(tmp_path / "avb")]
    assert ais["details"]["num_images"] == error["details"]["num_images"] == gap["details"]["num_images"] == 5


@pytest.mark.parametrize("option", [["--device", "no-such-device"], ["--ais-batch", "0"]])
def test_evaluate_rejects_a_bad_device_or_ais_batch_with_one_message(tmp_path, capsys, option):
    from train.evaluate import main as evaluate_main

    build_model("vae", hidden_dims=[16], latent_dim=2).save_pretrained(tmp_path / "vae")
    with pytest.raises(SystemExit) as exc:
        evaluate_main([str(tmp_path / "vae"), "--data-dir", str(MNIST_DIR), *option])
    assert exc.value.code == 2 and option[0] in capsys.readouterr().err
    assert not (tmp_path / "vae" / "eval_results.json").exists()


def test_mixture_prior_is_stratified_by_component_and_matches_quadrature(monkeypatch):
    """On a 10-petal prior with a sharp decoder the posterior sits in one petal, which HMC chains started in other
    petals cannot reach. Stratified AIS (chains from every component, log p(x) = log mean_c p(x|c)) matches log p(x)
    integrated on a grid over the 2-D code space; unstratified chains miss it by many nats."""
    torch.manual_seed(0)
    model = build_model("aae", hidden_dims=[8], latent_dim=2, prior="mixture10")
    with torch.no_grad():
        model.decoder.head[-1].weight.mul_(8)
        model.decoder.head[0].weight.mul_(3)
    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.sigmoid(model.decoder_logits(model.prior_sample(3, g))), generator=g)
    h = 0.02
    axis = torch.arange(-6 + h / 2, 6, h)
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        log_lik = torch.cat([torch.stack([model.log_likelihood(model.decoder_logits(part), xi.expand(len(part), -1, -1, -1))
                                          for xi in x], 1) for part in grid.split(20_000)])
        exact = torch.logsumexp(model.log_prior(grid)[:, None] + log_lik, 0) + 2 * math.log(h)
    assert model.prior_components == 10
    stratified = ais(model, x, 100, chains=1)
    assert stratified.log_weights.shape == (10, 3) and stratified.settings["stratified_components"] == 10
    assert (stratified.log_px - exact).abs().max() < 0.5
    monkeypatch.setattr(type(model), "prior_components", property(lambda self: 0))
    assert (ais(model, x, 100, chains=1).log_px - exact).mean() < -5

"""Details of the adversarial autoencoder that a whole mutation run of vae_models/aae.py found untested: the signs of
both players' adversarial terms (eq. 1 of Makhzani et al. 2015), the label-supervised prior in the discriminator's
step (Sec. 2.3), the Gaussian and universal posteriors' encodings and reconstructions, the configured prior's
density, and the config's limits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import pytest

from vae_models import ConfigError, build_model
from vae_models.aae import mixture10_log_density, swiss_roll_log_density

TINY = {"hidden_dims": [8], "latent_dim": 2, "discriminator_hidden_dims": [4]}


def constant_critic(model, logit: float):
    """D(z) = sigmoid(logit) everywhere: the last layer's weights zero, its bias the logit."""
    last = [m for m in model.discriminator.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(logit)


def test_both_players_adversarial_terms_have_the_papers_signs():
    """D minimises -log D(z_p) - log(1 - D(z_q)); the encoder minimises -log D(z_q) (non-saturating): with D's logit
    t everywhere these are softplus(-t), softplus(t) and softplus(-t)."""
    model = build_model("aae", **TINY)
    constant_critic(model, 3.0)
    batch = (torch.rand(5, 1, 28, 28).round(), torch.zeros(5, dtype=torch.long))
    d = model.discriminator_loss(batch)
    assert d.terms["prior_codes"].item() == pytest.approx(F.softplus(torch.tensor(-3.0)).item())
    assert d.terms["posterior_codes"].item() == pytest.approx(F.softplus(torch.tensor(3.0)).item())
    assert model.loss(batch).terms["adversarial"].item() == pytest.approx(F.softplus(torch.tensor(-3.0)).item())


@pytest.mark.parametrize("supervised", [True, False])
def test_the_discriminator_sees_prior_codes_from_each_labels_component_only_when_supervised(supervised, monkeypatch):
    model = build_model("aae", prior="mixture10", supervised_prior=supervised, **TINY)
    seen = []
    original = model.prior_sample
    monkeypatch.setattr(model, "prior_sample", lambda n, generator=None, *, labels=None: seen.append(labels)
                        or original(n, generator, labels=labels))
    labels = torch.tensor([3, 1, 4, 1, 5])
    model.discriminator_loss((torch.rand(5, 1, 28, 28).round(), labels))
    assert len(seen) == 1
    assert torch.equal(seen[0], labels) if supervised else seen[0] is None


def test_the_gaussian_posterior_encodes_its_mean_and_log_variance_and_reconstructs_from_the_mean():
    torch.manual_seed(0)
    model = build_model("aae", posterior="gaussian", **TINY).eval()
    x = torch.rand(4, 1, 28, 28)
    out = model.encode(x)
    mean, logvar = model.encoder(x).chunk(2, dim=1)
    torch.testing.assert_close(out.mean, mean)
    torch.testing.assert_close(out.logvar, logvar)
    torch.testing.assert_close(model.reconstruct(x), model.decode(mean))


def test_the_universal_posterior_reconstructs_from_the_average_of_16_noise_draws():
    model = build_model("aae", posterior="universal", noise_dim=3, **TINY).eval()
    x = torch.rand(2, 1, 28, 28)
    torch.manual_seed(7)
    got = model.reconstruct(x)
    torch.manual_seed(7)
    codes = torch.stack([model.encoder(x, torch.randn(2, 3)) for _ in range(16)])
    torch.testing.assert_close(got, model.decode(codes.mean(0)))


@pytest.mark.parametrize("prior", ["gaussian", "mixture10", "swiss_roll"])
def test_log_prior_is_the_configured_priors_density(prior):
    model = build_model("aae", prior=prior, **TINY)
    z = torch.randn(6, 2) * 3
    expected = {"gaussian": torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1),
                "mixture10": mixture10_log_density(z), "swiss_roll": swiss_roll_log_density(z)}[prior]
    torch.testing.assert_close(model.log_prior(z), expected)
    if prior != "gaussian":
        labels = torch.tensor([0, 1, 2, 3, 4, 5])
        density = mixture10_log_density if prior == "mixture10" else swiss_roll_log_density
        torch.testing.assert_close(model.log_prior(z, labels), density(z, labels))


def test_the_swiss_roll_hugs_its_curve_with_the_stated_width():
    """Across the roll the density falls off as N(0, SWISS_ROLL_STD^2): one std off the curve costs 1/2 nat."""
    from vae_models.aae import SWISS_ROLL_STD, swiss_roll_curve

    t = torch.tensor([0.55])
    point = swiss_roll_curve(t)
    tangent = swiss_roll_curve(t + 1e-4) - point
    normal = torch.stack([-tangent[:, 1], tangent[:, 0]], dim=1) / tangent.norm()
    on, off = swiss_roll_log_density(point), swiss_roll_log_density(point + SWISS_ROLL_STD * normal)
    assert (on - off).item() == pytest.approx(0.5, abs=0.05)


def test_the_critic_gives_one_logit_per_code():
    model = build_model("aae", **TINY)
    assert model.critic(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long)).shape == (3,)


@pytest.mark.parametrize("field, value", [("gaussian_std", 0.0), ("adversarial_weight", -0.5), ("noise_dim", 0),
                                          ("discriminator_hidden_dims", (4, 0))])
def test_the_config_refuses_values_outside_its_limits(field, value):
    with pytest.raises(ConfigError):
        build_model("aae", **{**TINY, field: value})


def test_the_config_accepts_its_limits():
    config = build_model("aae", **{**TINY, "adversarial_weight": 0.0, "noise_dim": 1,
                                   "discriminator_hidden_dims": (1,)}).config
    assert (config.adversarial_weight, config.noise_dim, config.discriminator_hidden_dims) == (0.0, 1, (1,))


def test_prior_labels_out_of_range_are_refused():
    model = build_model("aae", prior="mixture10", **TINY)
    with pytest.raises(ValueError, match="integers in 0..9"):
        model.prior_sample(2, labels=torch.tensor([1, 10]))
    with pytest.raises(ValueError, match="integers in 0..9"):
        model.prior_sample(2, labels=torch.tensor([-1, 3]))


def test_labels_pick_no_component_of_the_gaussian_prior():
    model = build_model("aae", **TINY)
    with pytest.raises(ValueError, match="only for the mixture10 and swiss_roll priors"):
        model.prior_sample(2, labels=torch.tensor([1, 2]))


def test_the_swiss_roll_density_matches_a_far_finer_quadrature_at_its_ends_and_segment_boundaries():
    """p(z) = int_0^1 N(z; curve(t), STD^2 I) dt: the library's midpoint rule against one with 50 times the nodes, in
    float64, where the grid's placement matters most: the roll's two ends and the boundary between two segments."""
    import math

    from vae_models.aae import NUM_COMPONENTS, SWISS_ROLL_STD, swiss_roll_curve

    points = swiss_roll_curve(torch.tensor([0.0, 1.0, 0.3, 0.55], dtype=torch.float64))
    n = NUM_COMPONENTS * 400 * 50
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    log_kernel = (-0.5 * torch.cdist(points, swiss_roll_curve(t)).pow(2) / SWISS_ROLL_STD ** 2
                  - math.log(2 * math.pi * SWISS_ROLL_STD ** 2))
    fine = torch.logsumexp(log_kernel, dim=1) - math.log(n)
    torch.testing.assert_close(swiss_roll_log_density(points), fine, rtol=0, atol=2e-3)
    per_segment = log_kernel.view(4, NUM_COMPONENTS, -1)  # t = 0.3 is where segment 2 ends and segment 3 starts
    for labels in ([0, 9, 2, 5], [0, 9, 3, 5]):
        fine_c = torch.logsumexp(per_segment[torch.arange(4), torch.tensor(labels)], dim=1) - math.log(n // NUM_COMPONENTS)
        torch.testing.assert_close(swiss_roll_log_density(points, torch.tensor(labels)), fine_c, rtol=0, atol=2e-3)

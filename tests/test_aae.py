"""The adversarial autoencoder (vae_models/aae.py, Makhzani et al. 2015): both players' adversarial terms (eq. 1) and
the label-supervised prior in the discriminator's step (Sec. 2.3); the adversarial game on real digits pulling the
codes to the prior; the three priors (their shapes, densities, seeded samples and labelled components); the
Gaussian and universal posteriors' encodings and reconstructions; and the config's limits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vae_models import AAE, AVB, ConfigError, build_model
from vae_models.aae import (MIXTURE_RADIUS, NUM_COMPONENTS, SWISS_ROLL_RADII, mixture10_log_density,
                            swiss_roll_log_density)
from vae_models.data import load_mnist
from vae_models.metrics import mmd_rbf

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


def test_supervised_aae_samples_decode_codes_from_the_labels_component():
    """sample(labels=...) on a label-supervised mixture prior decodes codes drawn from component `label`."""
    torch.manual_seed(0)
    model = build_model("aae", hidden_dims=[8], latent_dim=2, prior="mixture10", supervised_prior=True,
                        discriminator_hidden_dims=[8])
    decoded = []
    decode = model.decode
    model.decode = lambda z, labels=None: decoded.append(z) or decode(z, labels)
    labels = torch.tensor([3] * 50 + [7] * 50)
    images = model.sample(100, labels=labels, generator=torch.Generator().manual_seed(0))
    assert images.shape == (100, 1, 28, 28)
    angles = torch.atan2(decoded[0][:, 1], decoded[0][:, 0]) % (2 * math.pi)
    component = torch.round(angles / (2 * math.pi / 10)).long() % 10
    assert (component == labels).float().mean() > 0.95


def test_aae_adversarial_training_pulls_codes_to_the_prior(one_thread, mnist_dir):
    """A tiny AAE on 256 real MNIST test digits with the 10-component prior: after alternating discriminator and
    generator steps as the trainer does, the MMD between codes and prior samples is far below that of the untrained
    encoder, and clearly below the same training without the adversarial term (so it is the game that does it,
    not the reconstruction merely spreading the codes)."""
    images, labels = load_mnist("test", data_dir=mnist_dir, download=False)
    g = torch.Generator().manual_seed(0)
    x, y = (images[:256].float() / 255).unsqueeze(1).bernoulli(generator=g), labels[:256]

    def train(adversarial_weight, steps=800):
        torch.manual_seed(0)
        model = build_model("aae", hidden_dims=[32], latent_dim=2, prior="mixture10",
                            discriminator_hidden_dims=[32], adversarial_weight=adversarial_weight)

        def mmd():
            with torch.no_grad():
                return mmd_rbf(model.encode(x).z, model.prior_sample(len(x))).item()

        untrained = mmd()
        g_opt = torch.optim.Adam(model.generator_parameters(), lr=1e-3, betas=(0.5, 0.999))
        d_opt = torch.optim.Adam(model.discriminator_parameters(), lr=1e-3, betas=(0.5, 0.999))
        for _ in range(steps):
            idx = torch.randint(0, len(x), (64,))
            batch = (x[idx], y[idx])
            if adversarial_weight > 0:  # without the adversarial term D cannot influence the encoder
                d_opt.zero_grad()
                model.discriminator_loss(batch).loss.backward()
                d_opt.step()
            g_opt.zero_grad()
            model.loss(batch).loss.backward()
            g_opt.step()
        return untrained, mmd()

    untrained, adversarial = train(1.0)
    _, reconstruction_only = train(0.0)
    assert adversarial < 0.25 * untrained
    assert adversarial < 0.8 * reconstruction_only


def test_mixture10_prior_has_ten_modes_on_the_circle():
    torch.manual_seed(0)
    model = build_model("aae", hidden_dims=[8], latent_dim=2, prior="mixture10", discriminator_hidden_dims=[8])
    z = model.prior_sample(5000)
    assert z.shape == (5000, 2)
    assert abs(z.norm(dim=1).mean().item() - MIXTURE_RADIUS) < 0.05
    centres = MIXTURE_RADIUS * torch.stack([torch.cos(2 * math.pi * torch.arange(10) / 10),
                                            torch.sin(2 * math.pi * torch.arange(10) / 10)], dim=1)
    nearest = torch.cdist(z, centres).argmin(1)
    counts = torch.bincount(nearest, minlength=10).float() / len(z)
    assert counts.min() > 0.07 and counts.max() < 0.13  # every mode used, about equally
    for k in range(10):  # each mode is centred on its point of the circle
        assert (z[nearest == k].mean(0) - centres[k]).norm() < 0.15


def test_supervised_prior_puts_label_k_in_component_k():
    torch.manual_seed(0)
    model = build_model("aae", hidden_dims=[8], latent_dim=2, prior="mixture10", supervised_prior=True,
                        discriminator_hidden_dims=[8])
    labels = torch.arange(10).repeat(100)
    z = model.prior_sample(len(labels), labels=labels)
    angles = torch.atan2(z[:, 1], z[:, 0]) % (2 * math.pi)
    component = torch.round(angles / (2 * math.pi / NUM_COMPONENTS)).long() % NUM_COMPONENTS
    assert (component == labels).float().mean() > 0.99
    # sample(labels=...) decodes codes of the labels' components: what the app shows for "draw a 3".
    labels = torch.tensor([3, 3, 7, 7])
    images = model.sample(4, labels=labels, generator=torch.Generator().manual_seed(5))
    codes = model.prior_sample(4, torch.Generator().manual_seed(5), labels=labels)
    torch.testing.assert_close(images, model.decode(codes))
    assert model.samples_by_label

    class ZeroJudge:  # calls every image a 0: exactly the tenth of samples asked for a 0 are "right"
        def predict(self, images):
            return torch.zeros(len(images), dtype=torch.long)

    from vae_models.metrics import conditional_accuracy
    assert conditional_accuracy(ZeroJudge(), model, n_per_digit=3) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="labels must be"):
        model.prior_sample(2, labels=torch.tensor([0, 10]))


def test_swiss_roll_prior_is_2d_within_its_radii_and_segmented_by_label():
    torch.manual_seed(0)
    model = build_model("aae", hidden_dims=[8], latent_dim=2, prior="swiss_roll", discriminator_hidden_dims=[8])
    z = model.prior_sample(5000)
    inner, outer = SWISS_ROLL_RADII
    radius = z.norm(dim=1)
    assert z.shape == (5000, 2)
    assert radius.min() > inner - 0.3 and radius.max() < outer + 0.3
    assert radius.quantile(0.05) < inner + 0.5 and radius.quantile(0.95) > outer - 0.5  # the whole roll is used
    # Segment k lies at radii between those of its ends: later labels further out.
    mean_radius = [model.prior_sample(200, labels=torch.full((200,), k)).norm(dim=1).mean() for k in range(10)]
    assert all(a < b for a, b in zip(mean_radius, mean_radius[1:]))


def test_aae_config_errors_and_parameter_groups():
    with pytest.raises(ConfigError, match="latent_dim=2"):
        build_model("aae", latent_dim=4, prior="mixture10")
    with pytest.raises(ConfigError, match="supervised_prior"):
        build_model("aae", supervised_prior=True)
    with pytest.raises(ConfigError, match="posterior"):
        build_model("aae", posterior="flow")
    model = build_model("aae", hidden_dims=[8], latent_dim=2, prior="swiss_roll", posterior="universal",
                        discriminator_hidden_dims=[8])
    assert isinstance(model, AAE) and AAE.spec.adversarial and AVB.spec.adversarial
    gen = {id(p) for p in model.generator_parameters()}
    disc = {id(p) for p in model.discriminator_parameters()}
    assert gen and disc and not gen & disc and gen | disc == {id(p) for p in model.parameters()}


def test_a_universal_posterior_takes_a_single_noise_dimension():
    assert build_model("aae", hidden_dims=[8], latent_dim=2, posterior="universal", noise_dim=1).config.noise_dim == 1

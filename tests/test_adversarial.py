"""What makes the adversarial models correct beyond the shared suite: AVB's discriminator learns the true log density
ratio (Proposition 1), AAE's adversarial game pulls the codes to the prior, the priors are the stated shapes,
and the parameter groups the trainer alternates over are a partition of the model."""

import math
from pathlib import Path

import pytest
import torch

from vae_models import AAE, AVB, ConfigError, build_model
from vae_models.aae import MIXTURE_RADIUS, NUM_COMPONENTS, SWISS_ROLL_RADII
from vae_models.avb import JointDiscriminator, avb_discriminator_loss
from vae_models.blocks import log_normal
from vae_models.data import load_mnist
from vae_models.metrics import mmd_rbf

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared/data/mnist"


@pytest.fixture
def one_thread():
    """The training tests use tiny matrices: one thread is faster than fighting over shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


def test_aae_adversarial_training_pulls_codes_to_the_prior(one_thread):
    """A tiny AAE on 256 real MNIST test digits with the 10-component prior: after alternating discriminator and
    generator steps as the trainer does, the MMD between codes and prior samples is far below that of the untrained
    encoder, and clearly below the same training without the adversarial term (so it is the game that does it,
    not the reconstruction merely spreading the codes)."""
    images, labels = load_mnist("test", data_dir=MNIST_DIR, download=False)
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


@pytest.mark.parametrize("model_type,fields", [("aae", {"prior": "mixture10"}), ("aae", {}), ("vae", {}),
                                               ("avb", {"discriminator_hidden_dims": [8]})])
def test_labels_are_an_error_for_models_without_label_supervision(model_type, fields):
    model = build_model(model_type, hidden_dims=[8], latent_dim=2, **fields)
    assert not model.samples_by_label
    with pytest.raises(ValueError, match="label"):
        model.sample(2, labels=torch.tensor([1, 2]))
    assert model.sample(2).shape == (2, 1, 28, 28)


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

"""The defaults every model inherits from vae_models/base.py: the pixel likelihood and decoder mean the config
chooses (the one shared PixelLikelihoodConfig; Bernoulli for a config without it), the standard-normal prior
density, the one-sample ELBO (the labels passed on; below the many-sample bound), label-conditional sampling refused
where the model has no labels, `evaluating`'s eval mode, and the parameter groups of one- and two-player models."""

import math
from dataclasses import dataclass

import torch

import pytest

import vae_models
from vae_models import ConfigError, build_model
from vae_models.base import VAEFamilyModel, evaluating
from vae_models.blocks import ModelConfig, PixelLikelihood, PixelLikelihoodConfig, pixel_log_likelihood, pixel_mean

G = torch.Generator().manual_seed(0)
LOGITS = 3 * torch.randn(4, 1, 28, 28, generator=G)
X = torch.rand(4, 1, 28, 28, generator=G)


@dataclass
class NoLikelihoodConfig(ModelConfig):
    model_type: str = "no-likelihood"  # a user's model whose config names no pixel likelihood


@dataclass
class GaussianConfig(PixelLikelihoodConfig):
    model_type: str = "gaussian"  # a user's model that takes the shared pixel-likelihood fields
    likelihood: str = "gaussian"  # and chooses its default, but not its pixel std


class Decoded(VAEFamilyModel):
    """Only what the inherited defaults need: fixed decoder logits, and importance weights that show their inputs."""

    config_class = ModelConfig

    def decoder_logits(self, z, labels=None):
        return LOGITS[: len(z)]

    def log_importance_weights(self, x, num_samples, labels=None):
        """Row k holds k + the label of each image (0 without labels)."""
        shift = torch.zeros(len(x)) if labels is None else labels.float()
        return torch.stack([shift + k for k in range(num_samples)])


def model_with(config_class) -> Decoded:
    cls = type("Model", (Decoded,), {"config_class": config_class})
    return cls(config_class(hidden_dims=(4,), latent_dim=2))


def test_a_config_without_a_likelihood_means_bernoulli_pixels():
    model = model_with(NoLikelihoodConfig)
    assert model.config.pixel_likelihood == PixelLikelihood("bernoulli") and model.config.pixel_likelihood.binary
    torch.testing.assert_close(model.log_likelihood(LOGITS, X), pixel_log_likelihood(LOGITS, X, "bernoulli"))
    torch.testing.assert_close(model.decode(torch.zeros(4, 2)), torch.sigmoid(LOGITS))


def test_the_shared_gaussian_likelihood_has_a_pixel_std_of_one_tenth_by_default():
    model = model_with(GaussianConfig)
    assert model.config.pixel_likelihood == PixelLikelihood("gaussian", 0.1) and not model.config.pixel_likelihood.binary
    expected = torch.distributions.Normal(torch.sigmoid(LOGITS), 0.1).log_prob(X).flatten(1).sum(1)
    torch.testing.assert_close(model.log_likelihood(LOGITS, X), expected)


def test_every_model_that_chooses_a_pixel_likelihood_shares_one_config_and_its_checks():
    """The AE, the VAEs, AVB and both AAEs declare the two fields once (PixelLikelihoodConfig): same keys in the
    config.json files, same refusals, and the choice is what the model binarises for (grey levels throughout for
    the categorical AAE, whose spec says so: its encoder is scored as a classifier of grey digits)."""
    chooses = {name for name, cls in vae_models.MODELS.items() if issubclass(cls.config_class, PixelLikelihoodConfig)}
    assert chooses == {"ae", "vae", "cvae", "dvae", "avb", "aae", "categorical_aae"}
    for name in sorted(chooses):
        config = build_model(name, hidden_dims=[8], latent_dim=2).config
        assert (config.likelihood, config.gaussian_std, config.pixel_likelihood.binary) == ("bernoulli", 0.1, True)
        grey = build_model(name, hidden_dims=[8], latent_dim=2, likelihood="gaussian", gaussian_std=0.3).config
        assert grey.pixel_likelihood == PixelLikelihood("gaussian", 0.3)
        spec = vae_models.get_spec(name)
        assert spec.binarize_for(grey) == "none"
        assert spec.binarize_for(config) == ("none" if name == "categorical_aae" else "dynamic")
        with pytest.raises(ConfigError, match="gaussian_std must be > 0, got 0.0"):
            build_model(name, hidden_dims=[8], latent_dim=2, gaussian_std=0.0)
        with pytest.raises(ConfigError, match="likelihood must be one of"):
            build_model(name, hidden_dims=[8], latent_dim=2, likelihood="poisson")


def test_the_likelihood_and_the_decoded_mean_are_the_ones_the_config_names():
    gaussian = build_model("vae", hidden_dims=[8], latent_dim=2, likelihood="gaussian", gaussian_std=0.3)
    expected = torch.distributions.Normal(torch.sigmoid(LOGITS), 0.3).log_prob(X).flatten(1).sum(1)
    torch.testing.assert_close(gaussian.log_likelihood(LOGITS, X), expected)
    for model_type in ("vae", "avb", "aae", "ae"):
        model = build_model(model_type, hidden_dims=[8], latent_dim=2, likelihood="continuous_bernoulli")
        torch.testing.assert_close(model.log_likelihood(LOGITS, X),
                                   pixel_log_likelihood(LOGITS, X, "continuous_bernoulli"), msg=model_type)
        z = torch.randn(3, 2, generator=G)
        torch.testing.assert_close(model.decode(z), pixel_mean(model.decoder_logits(z), "continuous_bernoulli"))
        assert not torch.allclose(model.decode(z), torch.sigmoid(model.decoder_logits(z)))  # the CB mean differs


def test_the_default_prior_is_the_standard_normal_density():
    z = torch.randn(5, 3, generator=G)
    expected = -0.5 * (z**2).sum(1) - 1.5 * math.log(2 * math.pi)
    torch.testing.assert_close(model_with(NoLikelihoodConfig).log_prior(z), expected)


def test_the_default_elbo_is_the_first_importance_weight_with_the_labels_passed_on():
    model = model_with(NoLikelihoodConfig)
    torch.testing.assert_close(model.elbo(X, torch.tensor([3, 1, 4, 1])), torch.tensor([3.0, 1, 4, 1]))
    torch.testing.assert_close(model.elbo(X), torch.zeros(4))


def test_evaluating_runs_the_block_in_eval_mode_and_restores_the_mode_it_found():
    model = build_model("vae", hidden_dims=[8], latent_dim=2)
    for mode in (True, False):
        model.train(mode)
        with evaluating(model) as inside:
            assert inside is model and not model.training and not model.encoder.training
        assert model.training is mode and model.decoder.training is mode


def test_evaluating_restores_the_training_mode_when_the_block_raises():
    model = build_model("vae", hidden_dims=[8], latent_dim=2).train()
    with pytest.raises(ZeroDivisionError):
        with evaluating(model):
            1 / 0
    assert model.training and model.encoder.training


def test_the_metrics_measure_in_eval_mode_and_leave_a_training_model_training():
    from vae_models import ais, latent, metrics

    model, cvae, socvae = (build_model(name, hidden_dims=[8], latent_dim=2).train() for name in ("vae", "cvae", "socvae"))
    classifier = build_model("classifier", hidden_dims=[4], latent_dim=8).train()
    seen = []  # the mode of each network a metric runs
    for module in (model.encoder, model.decoder, cvae.decoder, socvae.prior_net, classifier.conv):
        module.register_forward_pre_hook(lambda m, args: seen.append(m.training))
    x = X.bernoulli(generator=G)
    calls = [lambda: metrics.importance_sampled_nll(model, x, num_samples=2),
             lambda: metrics.elbo(model, x),
             lambda: metrics.prior_mmd(model, x, n=4),
             lambda: latent.latent_statistics(model, x),
             lambda: ais.simulate(model, 2),
             lambda: ais.ais_log_likelihood(model, x[:2], num_steps=2, num_chains=2, leapfrog_steps=1),
             lambda: metrics.conditional_accuracy(classifier, cvae, n_per_digit=1),
             lambda: metrics.conditional_nll_quadrants(socvae, x, 2, num_samples=2),
             lambda: classifier.predict(x),
             lambda: metrics.classifier_frechet_distance(classifier, x, x)]
    for call in calls:
        seen.clear()
        call()
        assert all(m.training for m in (model, cvae, socvae, classifier))
        assert seen and not any(seen)  # every forward pass ran in eval mode


def test_the_generator_trains_every_parameter_but_the_discriminators_in_module_order():
    ids = lambda params: [id(p) for p in params]  # noqa: E731
    vae = build_model("vae", hidden_dims=[8], latent_dim=2)
    assert ids(vae.generator_parameters()) == ids(vae.parameters())
    for model_type in ("aae", "avb"):
        model = build_model(model_type, hidden_dims=[8], latent_dim=2)
        assert ids(model.generator_parameters()) == ids([*model.encoder.parameters(), *model.decoder.parameters()])


def test_a_one_player_model_has_no_discriminator_parameters():
    for model_type in ("vae", "ae", "cvae"):
        assert list(build_model(model_type, hidden_dims=[8], latent_dim=2).discriminator_parameters()) == []
    assert len(list(build_model("avb", hidden_dims=[8], latent_dim=2).discriminator_parameters())) > 0


@pytest.mark.parametrize("model_type,fields", [("aae", {"prior": "mixture10"}), ("aae", {}), ("vae", {}),
                                               ("avb", {"discriminator_hidden_dims": [8]})])
def test_labels_are_an_error_for_models_without_label_supervision(model_type, fields):
    model = build_model(model_type, hidden_dims=[8], latent_dim=2, **fields)
    assert not model.samples_by_label
    with pytest.raises(ValueError, match="label"):
        model.sample(2, labels=torch.tensor([1, 2]))
    assert model.sample(2).shape == (2, 1, 28, 28)


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

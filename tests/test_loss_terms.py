"""What every model's `loss` promises (base.py, README "The models"): the objective is exactly the weighted sum of its
named terms, with the weights the config states and nothing hidden, and the terms are non-negative. Checked on
every tiny variant of tests/model_variants.py, so a weight dropped or a term mislabelled anywhere fails here.

Non-negativity holds for discrete likelihoods (-log of a probability), KL divergences, cross-entropies and the
softplus terms of the adversarial games. A continuous density can exceed 1, so a Gaussian or continuous-Bernoulli
reconstruction term may legitimately be negative and only its finiteness is checked. AVB's `kl_estimate` is the
discriminator's estimate of KL(q || p): single values of T can be negative, so it is checked by its mean once T
has learned to tell the posterior's codes from the prior's (test_avb_kl_estimate_is_non_negative_on_average)."""

import pytest
import torch

from vae_models import MODELS, build_model

from .model_variants import TINY, VARIANTS

CASES = [(name, fields) for name in sorted(MODELS) for fields in VARIANTS.get(name, [{}])]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in fields.items()) or 'default'}" for name, fields in CASES]


def weighted_sum(config, terms: dict) -> torch.Tensor:
    """The objective each paper (and each model's docstring) defines, written out here independently of the code."""
    kind = config.model_type
    if kind in ("vae", "cvae", "dvae"):
        return terms["reconstruction"] + config.beta * terms["kl"]  # beta-weighted negative ELBO
    if kind in ("ae", "quadrant_nn"):
        return terms["reconstruction"]
    if kind == "classifier":
        return terms["cross_entropy"]
    if kind == "avb":
        return terms["reconstruction"] + terms["kl_estimate"]  # eq. 3.7 with T in place of the KL
    if kind == "aae":
        return terms["reconstruction"] + config.adversarial_weight * terms["adversarial"]
    if kind == "categorical_aae":  # the paper's separate phases: the adversarial terms are the regularisation's
        adversarial = 0 if config.regularisation_phase else config.adversarial_weight * (
            terms["clusters_adversarial"] + terms["style_adversarial"])
        return terms["reconstruction"] + adversarial + config.classification_weight * terms.get("classification", 0)
    if kind == "socvae":
        cvae = terms.get("reconstruction", 0) + terms.get("kl", 0)
        return {"cvae": cvae, "gsnn": terms.get("gsnn_reconstruction"),
                "hybrid": config.alpha * cvae + (1 - config.alpha) * terms.get("gsnn_reconstruction", 0)}[config.objective]
    raise AssertionError(f"add the objective of {kind!r} to weighted_sum")


EXPECTED_TERMS = {
    "vae": {"reconstruction", "kl"}, "cvae": {"reconstruction", "kl"}, "dvae": {"reconstruction", "kl"},
    "ae": {"reconstruction"}, "quadrant_nn": {"reconstruction"}, "classifier": {"cross_entropy"},
    "avb": {"reconstruction", "kl_estimate"}, "aae": {"reconstruction", "adversarial"},
    "categorical_aae": {"reconstruction"},
}
SOCVAE_TERMS = {"cvae": {"reconstruction", "kl"}, "gsnn": {"gsnn_reconstruction"},
                "hybrid": {"reconstruction", "kl", "gsnn_reconstruction"}}


def fixed_batch(n=16):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, 28, 28, generator=g).pow(3).bernoulli(generator=g)  # sparse, digit-like
    return images, torch.arange(n) % 10


def sign_is_defined(config, term: str) -> bool:
    """False only for a continuous likelihood's -log density (and AVB's per-batch T, checked by its mean)."""
    if term == "kl_estimate":
        return False
    return not (not config.pixel_likelihood.binary and "reconstruction" in term)


@pytest.mark.parametrize("name,fields", CASES, ids=IDS)
def test_loss_is_the_weighted_sum_of_non_negative_terms(name, fields):
    torch.manual_seed(0)
    model = build_model(name, **{**TINY, **fields})
    batch = fixed_batch()
    for mode in ("train", "eval"):
        model.train(mode == "train")
        torch.manual_seed(1)
        out = model.loss(batch)
        config = model.config
        expected = SOCVAE_TERMS[config.objective] if name == "socvae" else EXPECTED_TERMS[name]
        assert set(out.terms) == expected
        torch.testing.assert_close(out.loss, weighted_sum(config, out.terms), rtol=1e-6, atol=1e-5)
        for term, value in out.terms.items():
            assert value.dim() == 0 and torch.isfinite(value), term
            if sign_is_defined(config, term):
                assert value >= 0, (term, value)
    if model.spec.adversarial:  # the discriminator's objective: a sum of two softplus (negated log-likelihood) terms
        d = model.discriminator_loss(batch)
        names = {"avb": {"posterior_pairs", "prior_pairs"}, "aae": {"prior_codes", "posterior_codes"},
                 "categorical_aae": {"clusters", "style"}}[name]
        assert set(d.terms) == names and all(v > 0 for v in d.terms.values())
        torch.testing.assert_close(d.loss, sum(d.terms.values()), rtol=1e-6, atol=1e-6)


def test_weighted_sum_covers_every_registered_model():
    assert set(MODELS) == set(EXPECTED_TERMS) | {"socvae"}


@pytest.mark.parametrize("name", ["vae", "cvae", "dvae"])
def test_beta_changes_the_loss_by_exactly_beta_minus_one_times_kl(name):
    """loss(beta) = reconstruction + beta KL, so with the same weights and the same noise
    loss(beta) - loss(1) = (beta - 1) KL, and the reconstruction and KL terms themselves do not move."""
    torch.manual_seed(0)
    plain = build_model(name, **TINY, beta=1.0)
    weighted = build_model(name, **TINY, beta=3.5)
    weighted.load_state_dict(plain.state_dict())
    batch = fixed_batch()
    torch.manual_seed(5)
    a = plain.loss(batch)
    torch.manual_seed(5)
    b = weighted.loss(batch)
    assert a.terms["kl"] > 0.01
    torch.testing.assert_close(b.terms["kl"], a.terms["kl"], rtol=0, atol=0)
    torch.testing.assert_close(b.terms["reconstruction"], a.terms["reconstruction"], rtol=0, atol=0)
    # atol: the losses are ~500 nats in float32 (resolution ~6e-5), the difference ~1 nat
    torch.testing.assert_close(b.loss - a.loss, 2.5 * a.terms["kl"], rtol=0, atol=1e-3)


def test_avb_kl_estimate_is_non_negative_on_average():
    """Once T has been trained (eq. 3.3) to separate the encoder's codes from prior samples, its mean on posterior
    codes estimates KL(q(z|x) || p(z)) >= 0; a T that learned the ratio the wrong way round would make it negative."""
    for adaptive in (False, True):
        torch.manual_seed(0)
        model = build_model("avb", **TINY, noise_dim=4, discriminator_hidden_dims=[64, 64], activation="elu",
                            adaptive_contrast=adaptive, contrast_samples=4)
        batch = fixed_batch(32)
        optimizer = torch.optim.Adam(model.discriminator_parameters(), lr=3e-3)
        for _ in range(200):
            optimizer.zero_grad()
            model.discriminator_loss(batch).loss.backward()
            optimizer.step()
        with torch.no_grad():
            estimates = torch.stack([model.loss(batch).terms["kl_estimate"] for _ in range(20)])
        # The untrained encoder's codes (std ~0.1) are far from N(0, I): the true KL is several nats.
        assert estimates.mean() > 0.5, (adaptive, estimates)


@pytest.mark.parametrize("name", ["vae", "cvae", "dvae"])
def test_beta_and_pixel_std_bounds(name):
    """beta >= 0 (0 drops the KL, below 1 is a beta-VAE, 1 the ELBO) and a positive Gaussian pixel std are valid;
    a negative beta or a zero std is refused."""
    for fields in ({"beta": 0.0}, {"beta": 0.5}, {"beta": 1.0}, {"gaussian_std": 1e-3}):
        assert build_model(name, **TINY, **fields).config.beta == fields.get("beta", 1.0)
    for fields in ({"beta": -0.5}, {"gaussian_std": 0.0}, {"gaussian_std": -0.1}):
        with pytest.raises(ValueError):
            build_model(name, **TINY, **fields)

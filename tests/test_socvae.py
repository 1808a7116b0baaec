"""The structured-output CVAE and its quadrant baseline (vae_models/socvae.py, Sohn et al. 2015): the quadrant
masks; completions that copy the given pixels and decode the prior net's seeded samples; the three objectives; the
conditional log-likelihood (its average of seeded weights, tightening with k, exact for the baseline); the recognition
net behind `encode`; how the number of given quadrants is validated, encoded and drawn in training; and the
config's limits."""

from __future__ import annotations

import math

import pytest
import torch

from tests.tiny_models import digit_like_batch, grouped_bounds, make, move_posterior
from vae_models import ConfigError, QuadrantBaseline, StructuredCVAE, Unsupported, build_model
from vae_models.socvae import mask

TINY = {"hidden_dims": [8], "latent_dim": 2}


def _images(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)).round()


@pytest.mark.parametrize("counts", [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1, 2]), torch.tensor([[1, 2, 3]]),
                                    torch.tensor([0, 2, 3]), torch.tensor([1, 2, 4])])
def test_per_image_counts_must_be_a_length_n_integer_tensor_of_1_to_3(counts):
    model = build_model("socvae", **TINY)
    with pytest.raises(ValueError, match="integer tensor of values 1-3"):
        model.given_counts(counts, 3)


def test_valid_per_image_counts_pass_through_as_int64():
    model = build_model("socvae", **TINY)
    counts = model.given_counts(torch.tensor([3, 1, 2], dtype=torch.int32), 3)
    assert counts.dtype == torch.int64 and counts.tolist() == [3, 1, 2]


@pytest.mark.parametrize("images, named", [([[0.0] * 28] * 28, "list"), (None, "NoneType")])
def test_non_tensor_images_get_the_shape_error_naming_their_type(images, named):
    model = build_model("socvae", **TINY)
    with pytest.raises(ValueError, match=rf"\(B, 1, 28, 28\) tensor in \[0, 1\], got {named}"):
        model.complete(images, 2)


def test_the_quadrant_code_marks_the_given_quadrants_in_their_order():
    """Bottom-left first, then top-left, then top-right: k given quadrants are the first k of the four."""
    model = build_model("socvae", **TINY)
    code = model.quadrant_code(torch.tensor([1, 2, 3]))
    assert code.tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]]


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_the_hybrid_objective_accepts_alpha_at_both_ends(alpha):
    """alpha = 1 is the CVAE bound alone and alpha = 0 the GSNN loss alone (eq. 9's two ends)."""
    assert build_model("socvae", objective="hybrid", alpha=alpha, **TINY).config.alpha == alpha


def test_completions_decode_prior_net_samples_drawn_from_the_given_generator():
    """complete(): z = mean_p + exp(logvar_p / 2) * eps with eps from the caller's generator, one per sample."""
    torch.manual_seed(0)
    model = build_model("socvae", **TINY).eval()
    images = _images()
    out = model.complete(images, 2, n_samples=4, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        counts = model.given_counts(2, 3)
        x, given = model.prepare(images, counts)
        mean_p, logvar_p = model.prior(x)
        eps = torch.randn(4, 3, 2, generator=torch.Generator().manual_seed(5))
        z = mean_p + (0.5 * logvar_p).exp() * eps
        expected = torch.sigmoid(model.generation_logits(x.repeat(4, 1, 1, 1), z.flatten(0, 1))).view(4, 3, 1, 28, 28)
    torch.testing.assert_close(out, torch.where(given, images, expected))
    torch.manual_seed(123)  # the global stream must not matter
    again = model.complete(images, 2, n_samples=4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(out, again)


def test_encode_is_the_recognition_net_of_the_full_image_at_the_default_setting():
    """q(z|x,y) sees the whole digit and which quadrants are given: 2 (the left half) for a model trained on all."""
    torch.manual_seed(0)
    model = build_model("socvae", **TINY).eval()
    images = _images()
    torch.manual_seed(7)
    out = model.encode(images)
    with torch.no_grad():
        mean, logvar = model.recognition(images, torch.tensor([[1.0, 1.0, 0.0, 0.0]] * 3)).chunk(2, dim=1)
    torch.testing.assert_close(out.mean, mean)
    torch.testing.assert_close(out.logvar, logvar)
    torch.manual_seed(7)
    eps = torch.randn(3, 2)
    torch.testing.assert_close(out.z, mean + (0.5 * logvar).exp() * eps)
    three = build_model("socvae", num_given_quadrants=3, **TINY).eval()
    with torch.no_grad():
        mean3, _ = three.recognition(images, torch.tensor([[1.0, 1.0, 1.0, 0.0]] * 3)).chunk(2, dim=1)
    torch.testing.assert_close(three.encode(images).mean, mean3)


def test_the_conditional_log_likelihood_is_the_log_mean_of_its_seeded_weights():
    """log (1/k) sum_i w_i, the weights drawn with the caller's generator; the default k is 100."""
    torch.manual_seed(0)
    model = build_model("socvae", **TINY).eval()
    images = _images()
    weights = model.conditional_log_weights(images, 1, 100, generator=torch.Generator().manual_seed(3))
    assert weights.shape == (100, 3)
    torch.manual_seed(99)  # the global stream must not matter
    cll = model.conditional_log_likelihood(images, 1, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(cll, torch.logsumexp(weights, 0) - math.log(100))


def test_a_structured_cvae_trained_on_all_settings_draws_1_2_or_3_given_quadrants():
    model = build_model("socvae", hidden_dims=[8], latent_dim=2, num_given_quadrants=0)
    counts = model.training_counts(3000)
    assert set(counts.tolist()) == {1, 2, 3} and counts.dtype == torch.long
    fixed = build_model("socvae", hidden_dims=[8], latent_dim=2, num_given_quadrants=2)
    assert set(fixed.training_counts(100).tolist()) == {2}


@pytest.mark.parametrize("given", [1, 2, 3])
def test_a_quadrant_models_reconstruction_keeps_the_quadrants_it_was_trained_to_be_given(given):
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


def test_quadrant_masks_follow_the_pyro_layout():
    bottom_left = torch.zeros(1, 28, 28, dtype=torch.bool)
    bottom_left[0, 14:, :14] = True
    left = torch.zeros(1, 28, 28, dtype=torch.bool)
    left[0, :, :14] = True
    all_but_bottom_right = torch.ones(1, 28, 28, dtype=torch.bool)
    all_but_bottom_right[0, 14:, 14:] = False
    assert torch.equal(mask(1), bottom_left) and torch.equal(mask(2), left)
    assert torch.equal(mask(3), all_but_bottom_right)
    for bad in (0, 4, 2.0, True):
        with pytest.raises(ValueError, match="num_given must be 1, 2 or 3"):
            mask(bad)


@pytest.mark.parametrize("name", ["socvae", "quadrant_nn"])
@pytest.mark.parametrize("num_given", [1, 2, 3])
def test_complete_copies_the_given_pixels(name, num_given):
    model = make(name).eval()
    images, _ = digit_like_batch(6)
    out = model.complete(images, num_given, n_samples=3, generator=torch.Generator().manual_seed(0))
    given = mask(num_given).expand_as(images)
    assert out.shape == (3, 6, 1, 28, 28) and out.min() >= 0 and out.max() <= 1
    assert all(torch.equal(sample[given], images[given]) for sample in out)
    stochastic = not torch.allclose(out[0], out[1])
    assert stochastic == (name == "socvae")  # samples differ through z; the NN baseline has one answer


def test_complete_accepts_a_number_of_given_quadrants_per_image():
    model = make("socvae").eval()
    images, _ = digit_like_batch(3)
    out = model.complete(images, torch.tensor([1, 2, 3]), generator=torch.Generator().manual_seed(0))[0]
    for i, k in enumerate([1, 2, 3]):
        assert torch.equal(out[i][mask(k)], images[i][mask(k)])


@pytest.mark.parametrize("objective,terms", [
    ("cvae", {"reconstruction", "kl"}),
    ("gsnn", {"gsnn_reconstruction"}),
    ("hybrid", {"reconstruction", "kl", "gsnn_reconstruction"}),
])
def test_socvae_objectives_are_positive_combine_as_stated_and_decrease(objective, terms):
    model = make("socvae", objective=objective, alpha=0.3)
    batch = digit_like_batch()

    def seeded_loss():
        torch.manual_seed(5)
        return model.loss(batch)

    out = seeded_loss()
    assert set(out.terms) == terms
    assert all(torch.isfinite(v) and v > 0 for v in out.terms.values())
    t = out.terms
    expected = {"cvae": lambda: t["reconstruction"] + t["kl"], "gsnn": lambda: t["gsnn_reconstruction"],
                "hybrid": lambda: 0.3 * (t["reconstruction"] + t["kl"]) + 0.7 * t["gsnn_reconstruction"]}
    assert torch.allclose(out.loss, expected[objective]())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(10):
        optimizer.zero_grad()
        seeded_loss().loss.backward()
        optimizer.step()
    assert seeded_loss().loss.item() < out.loss.item() - 1.0


def test_socvae_log_likelihood_tightens_with_k_and_matches_the_cvae_bound():
    model = make("socvae", num_given_quadrants=2).eval()
    move_posterior(model.recognition, 4)
    batch = digit_like_batch(8)
    with torch.no_grad():
        log_w = model.conditional_log_weights(batch[0], 2, 2000, max_rows=1000,
                                              generator=torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        losses = [model.loss(batch).loss.item() for _ in range(200)]
    assert log_w.shape == (2000, 8) and torch.isfinite(log_w).all()
    bounds = grouped_bounds(log_w, [1, 10, 100, 1000, 2000])
    assert bounds == sorted(bounds)
    # E_q[log w] = E_q[log p(y|x,z)] - KL(q(z|x,y) || p(z|x)) = -L_CVAE (eq. 4): the loss estimates the same number.
    assert abs(log_w.mean().item() + sum(losses) / len(losses)) < 0.5
    cll = model.conditional_log_likelihood(batch[0], 2, num_samples=101, max_rows=16)  # 7 chunks, the last short
    assert cll.shape == (8,) and torch.isfinite(cll).all() and (cll < 0).all()


def test_quadrant_baseline_log_likelihood_is_exact_and_is_the_loss():
    model = make("quadrant_nn", num_given_quadrants=3).eval()
    batch = digit_like_batch()
    cll = model.conditional_log_likelihood(batch[0], 3)
    assert cll.shape == (16,) and torch.isfinite(cll).all() and (cll < 0).all()
    assert torch.allclose(-cll.mean(), model.loss(batch).loss)
    assert torch.equal(cll, model.conditional_log_likelihood(batch[0], 3, num_samples=50))  # no sampling


@pytest.mark.parametrize("model", [StructuredCVAE, QuadrantBaseline])
def test_quadrant_models_refuse_unconditional_use_and_bad_input(model):
    m = make(model.config_class().model_type)
    with pytest.raises(Unsupported, match="use complete"):
        m.sample(4)
    with pytest.raises(Unsupported, match="use complete"):
        m.decode(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        m.complete(torch.zeros(2, 28, 28), 2)
    with pytest.raises(ValueError, match="num_given must be"):
        m.complete(torch.zeros(2, 1, 28, 28), 0)
    with pytest.raises(ValueError, match="num_given must be"):
        m.complete(torch.zeros(2, 1, 28, 28), torch.tensor([1, 4]))


@pytest.mark.parametrize("fields,message", [
    ({"objective": "elbo"}, "objective must be one of"),
    ({"alpha": 1.5}, r"alpha must be in \[0, 1\]"),
    ({"num_given_quadrants": 4}, "num_given_quadrants must be 0"),
])
def test_socvae_config_rejects_bad_values(fields, message):
    with pytest.raises(ConfigError, match=message):
        make("socvae", **fields)

"""Details of the structured-output CVAE and its quadrant baseline that a whole mutation run of vae_models/socvae.py
found untested: how the number of given quadrants is validated and encoded, the prior net's samples behind a
completion, the recognition net behind `encode`, the importance-sampled conditional log-likelihood's average, and
the limits of the hybrid objective's alpha."""

from __future__ import annotations

import math

import pytest
import torch

from vae_models import build_model

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


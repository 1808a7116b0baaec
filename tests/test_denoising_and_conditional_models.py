"""Mathematical tests of the corruptions, the DVAE (vae_models/dvae.py) and the label-conditional CVAE
(vae_models/cvae.py): what each corruption does and refuses, the DVAE's clean target and seeded corruption, the
CVAE's labels, bounds and config (the generic build / training-step / save-load checks are in test_models.py; the
structured-output CVAE is in test_socvae.py)."""

import math

import pytest
import torch

from tests.tiny_models import digit_like_batch, grouped_bounds, make, move_posterior
from vae_models import CVAE, DVAE, ConfigError, build_model, corrupt
from vae_models.blocks import kl_standard_normal

NARROW = {"hidden_dims": [8], "latent_dim": 2}  # the tests of a config's or a label's handling


# -- corruption ------------------------------------------------------------------------------------------------


def test_salt_and_pepper_changes_the_stated_share_of_pixels():
    grey = torch.full((64, 1, 28, 28), 0.5)
    noisy = corrupt(grey, "salt_and_pepper", 0.3, torch.Generator().manual_seed(0))
    changed = noisy != grey
    assert abs(changed.float().mean().item() - 0.3) < 0.01  # 50,176 pixels: the std of the share is 0.002
    flipped = noisy[changed]
    assert set(flipped.unique().tolist()) == {0.0, 1.0}
    assert abs(flipped.mean().item() - 0.5) < 0.02  # salt and pepper equally likely


def test_gaussian_noise_has_the_stated_std():
    grey = torch.full((64, 1, 28, 28), 0.5)
    diff = corrupt(grey, "gaussian", 0.05, torch.Generator().manual_seed(0)) - grey  # 10 std from clipping
    assert abs(diff.std().item() - 0.05) < 0.001 and abs(diff.mean().item()) < 0.001


def test_gaussian_noise_is_clipped_to_the_unit_interval():
    noisy = corrupt(torch.full((8, 1, 28, 28), 0.5), "gaussian", 1.0, torch.Generator().manual_seed(0))
    assert noisy.min() == 0 and noisy.max() == 1


def test_block_erases_exactly_one_square_of_the_stated_side():
    ones = torch.ones(32, 1, 28, 28)
    noisy = corrupt(ones, "block", 0.25, torch.Generator().manual_seed(0))  # side round(0.25 * 28) = 7
    erased = noisy == 0
    assert (erased.flatten(1).sum(1) == 49).all()
    for image in erased[:, 0]:
        rows, cols = image.any(1).nonzero().flatten(), image.any(0).nonzero().flatten()
        assert len(rows) == len(cols) == 7 and rows[-1] - rows[0] == 6 and cols[-1] - cols[0] == 6
    assert len({tuple(image.nonzero()[0].tolist()) for image in erased[:, 0]}) > 1  # random positions


@pytest.mark.parametrize("kind", ["salt_and_pepper", "gaussian", "block"])
def test_corruption_keeps_shape_and_range_is_seeded_and_level_zero_is_identity(kind):
    x, _ = digit_like_batch(8)
    a = corrupt(x, kind, 0.4, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1 and not torch.equal(a, x)
    assert torch.equal(a, corrupt(x, kind, 0.4, torch.Generator().manual_seed(1)))
    assert torch.equal(corrupt(x, kind, 0.0), x)


@pytest.mark.parametrize("kind,level,message", [
    ("speckle", 0.1, "unknown corruption 'speckle'"),
    ("gaussian", -0.1, r"level must be a number in \[0, 1\]"),
    ("block", 1.5, r"level must be a number in \[0, 1\]"),
    ("salt_and_pepper", True, r"level must be a number in \[0, 1\]"),
])
def test_corruption_rejects_bad_kind_and_level(kind, level, message):
    with pytest.raises(ValueError, match=message):
        corrupt(torch.zeros(2, 1, 28, 28), kind, level)


def test_corruption_rejects_images_outside_the_unit_interval():
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        corrupt(torch.full((1, 1, 28, 28), 255.0), "gaussian", 0.1)


# -- DVAE ------------------------------------------------------------------------------------------------------


def test_dvae_encodes_the_corrupted_image_and_scores_the_clean_one():
    model = make("dvae", corruption="salt_and_pepper", noise_level=0.5)
    x, labels = digit_like_batch()
    torch.manual_seed(3)
    out = model.loss((x, labels))
    torch.manual_seed(3)  # replay the same noise: first the corruption, then the reparameterisation
    noisy = model.corrupt(x)
    enc = model.encode(noisy)
    logits = model.decoder_logits(enc.z)
    against_clean = -model.log_likelihood(logits, x).mean()
    against_noisy = -model.log_likelihood(logits, noisy).mean()
    assert torch.allclose(out.terms["reconstruction"], against_clean, rtol=0, atol=1e-4)
    # An untrained decoder predicts ~1/2 everywhere, so the two targets differ by ~0.4 nats here: far above 1e-4.
    assert not torch.allclose(out.terms["reconstruction"], against_noisy, rtol=0, atol=1e-2)
    assert torch.allclose(out.terms["kl"], kl_standard_normal(enc.mean, enc.logvar).mean())
    assert torch.allclose(out.loss, against_clean + out.terms["kl"])


def test_dvae_reconstruct_is_a_deterministic_denoiser_of_its_input():
    model = make("dvae").eval()
    noisy = corrupt(digit_like_batch()[0], "salt_and_pepper", 0.2, torch.Generator().manual_seed(0))
    out = model.reconstruct(noisy)
    assert torch.equal(out, model.reconstruct(noisy))  # no corruption, no sampling at denoising time
    assert torch.allclose(out, model.decode(model.encode(noisy).mean))


@pytest.mark.parametrize("fields,message", [
    ({"corruption": "speckle"}, "unknown corruption"),
    ({"noise_level": 2.0}, r"level must be a number in \[0, 1\]"),
])
def test_dvae_config_rejects_bad_corruption(fields, message):
    with pytest.raises(ConfigError, match=message):
        make("dvae", **fields)


def test_the_dvae_corruption_follows_the_generator_it_is_given():
    model = build_model("dvae", corruption="salt_and_pepper", noise_level=0.3, **NARROW)
    x = torch.rand(4, 1, 28, 28)
    torch.manual_seed(0)
    first = model.corrupt(x, torch.Generator().manual_seed(5))
    second = model.corrupt(x, torch.Generator().manual_seed(5))  # the global RNG has moved on, the generator not
    assert torch.equal(first, second) and not torch.equal(first, x)


# -- CVAE ------------------------------------------------------------------------------------------------------


def test_cvae_decoder_and_encoder_depend_on_the_label():
    model = make("cvae").eval()
    x, _ = digit_like_batch(4)
    z = torch.randn(4, 4)
    zeros, ones = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    assert not torch.allclose(model.decode(z, zeros), model.decode(z, ones))
    assert not torch.allclose(model.encode(x, zeros).mean, model.encode(x, ones).mean)


def test_cvae_samples_the_requested_digits():
    model = make("cvae").eval()
    labels = torch.tensor([3, 3, 7, 0, 9])
    images = model.sample(5, labels, temperature=0.5, generator=torch.Generator().manual_seed(0))
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(0)) * 0.5
    assert images.shape == (5, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    assert torch.allclose(images, model.decode(z, labels))
    other = model.sample(5, [1, 1, 1, 1, 1], temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(images, other)  # same codes, different digits


@pytest.mark.parametrize("labels,message", [
    (None, "label-conditional: pass labels"),
    (torch.tensor([1, 2]), "got 2 labels for 3 images"),
    (torch.tensor([1, 2, 10]), r"labels must be in 0..9"),
    (torch.tensor([1, -1, 2]), r"labels must be in 0..9"),
    (torch.tensor([0.0, 1.0, 2.0]), "1-D sequence of integers"),
])
def test_cvae_rejects_bad_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        make("cvae").sample(3, labels)


def test_cvae_importance_weights_bound_the_elbo_from_above_and_match_the_loss():
    model = make("cvae").eval()
    move_posterior(model.encoder, 4)
    x, labels = digit_like_batch()
    torch.manual_seed(0)
    with torch.no_grad():
        log_w = model.log_importance_weights(x, 1000, labels)  # (k, B)
        losses = [model.loss((x, labels)).loss.item() for _ in range(200)]
    assert log_w.shape == (1000, 16) and torch.isfinite(log_w).all()
    iwae = torch.logsumexp(log_w, 0) - math.log(1000)
    assert (log_w.mean(0) <= iwae).all()  # ELBO <= IWAE_k per image
    bounds = grouped_bounds(log_w, [1, 10, 100, 1000])
    assert bounds == sorted(bounds)
    # E_q[log w] is the ELBO, whose negative (KL in closed form) is the loss: both estimate the same number.
    assert abs(log_w.mean().item() + sum(losses) / len(losses)) < 0.5
    with torch.no_grad():
        other_labels = model.log_importance_weights(x, 10, (labels + 1) % 10)
    assert not torch.allclose(other_labels.mean(0), log_w.mean(0), atol=1e-3)


def test_cvae_loss_is_its_negative_conditional_bound_with_beta_on_the_kl():
    """-log p(x|z,c) + beta KL(q(z|x,c) || N(0, I)) for the images' own labels (Sohn et al. 2015, eq. 4), replayed
    from the same reparameterisation noise."""
    model = make("cvae", beta=0.5)
    x, labels = digit_like_batch()
    torch.manual_seed(3)
    out = model.loss((x, labels))
    torch.manual_seed(3)
    enc = model.encode(x, labels)
    reconstruction = -model.log_likelihood(model.decoder_logits(enc.z, labels), x).mean()
    kl = kl_standard_normal(enc.mean, enc.logvar).mean()
    torch.testing.assert_close(out.terms["reconstruction"], reconstruction)
    torch.testing.assert_close(out.terms["kl"], kl)
    torch.testing.assert_close(out.loss, reconstruction + 0.5 * kl)
    torch.manual_seed(3)
    other = model.loss((x, (labels + 1) % 10))
    assert not torch.allclose(other.terms["reconstruction"], reconstruction)  # the labels are the condition


def test_cvae_same_style_all_digits_decodes_one_code_with_every_label():
    model = make("cvae").eval()
    image = digit_like_batch(1)[0][0]
    grid = model.same_style_all_digits(image, 4)
    mean = model.encode(image[None], torch.tensor([4])).mean
    assert grid.shape == (10, 1, 28, 28)
    assert torch.allclose(grid, model.decode(mean.expand(10, -1), torch.arange(10)))
    with pytest.raises(ValueError, match="takes one image"):
        model.same_style_all_digits(digit_like_batch(2)[0], 4)


def test_a_cvae_takes_two_classes_at_least():
    assert build_model("cvae", num_classes=2, **NARROW).config.num_classes == 2
    with pytest.raises(ConfigError, match="num_classes must be >= 2"):
        make("cvae", num_classes=1)


def test_a_single_integer_label_conditions_a_single_image():
    model = build_model("cvae", **NARROW).eval()
    x = torch.rand(1, 1, 28, 28)
    assert torch.equal(model.check_labels(torch.tensor(3), 1), torch.tensor([3]))
    assert torch.equal(model.encode(x, torch.tensor(3)).mean, model.encode(x, torch.tensor([3])).mean)


def test_cvae_labels_must_be_integers_one_per_image():
    model = build_model("cvae", **NARROW).eval()
    x, z = torch.rand(3, 1, 28, 28), torch.zeros(3, 2)
    with pytest.raises(ValueError, match="1-D sequence of integers"):
        model.check_labels(torch.tensor([True, False, True]), 3)
    with pytest.raises(ValueError, match="one label per image: got 2 labels for 3 images"):
        model.encode(x, [1, 2])
    with pytest.raises(ValueError, match="one label per image: got 2 labels for 3 images"):
        model.decoder_logits(z, [1, 2])


def test_models_are_the_registered_classes():
    assert isinstance(make("cvae"), CVAE) and isinstance(make("dvae"), DVAE)
    assert CVAE.spec.label_conditional and not DVAE.spec.label_conditional

"""Mathematical tests of the corruptions, the DVAE, the label-conditional CVAE, the structured-output CVAE and its NN
baseline (the generic build / training-step / save-load checks are in test_models.py)."""

import math

import pytest
import torch

from vae_models import CVAE, DVAE, ConfigError, QuadrantBaseline, StructuredCVAE, Unsupported, build_model, corrupt
from vae_models.blocks import kl_standard_normal
from vae_models.socvae import mask

TINY = {"hidden_dims": [32], "latent_dim": 4}


def make(name, **fields):
    torch.manual_seed(0)
    return build_model(name, **{**TINY, **fields})


def digit_like_batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 28, 28, generator=g).pow(3).bernoulli(generator=g)
    return images, torch.arange(n) % 10


def move_posterior(encoder, latent_dim):
    """Shift an untrained Gaussian encoder's output (mean +1.5, log-variance -1), so that its KL to the prior is
    ~5 nats rather than ~0 and a bound that dropped or mis-signed a term would be caught."""
    with torch.no_grad():
        encoder.head[-1].bias[:latent_dim] += 1.5
        encoder.head[-1].bias[latent_dim:] -= 1.0


def grouped_bounds(log_w, ks):
    """For each k dividing len(log_w): the mean over disjoint groups of k weights of log((1/k) sum exp) - the
    k-sample importance-sampling estimate averaged over the groups. Nested groups make it non-decreasing in k
    (Jensen), so this checks the weights are used as an importance-sampling bound should be."""
    total = len(log_w)
    return [(torch.logsumexp(log_w.view(total // k, k, -1), dim=1) - math.log(k)).mean().item() for k in ks]


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


def test_cvae_config_needs_two_classes():
    with pytest.raises(ConfigError, match="num_classes must be >= 2"):
        make("cvae", num_classes=1)


# -- structured-output CVAE and its baseline -------------------------------------------------------------------


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


def test_models_are_the_registered_classes():
    assert isinstance(make("cvae"), CVAE) and isinstance(make("dvae"), DVAE)
    assert CVAE.spec.label_conditional and not DVAE.spec.label_conditional

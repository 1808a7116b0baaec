"""Metrics (vae_models/metrics.py) and the MNIST classifier, on tiny real models."""

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from train.evaluate import main as evaluate_main
from vae_models import HubModel, Unsupported, VAEFamilyModel, build_model, load_model
from vae_models.export import SCHEMA_VERSION, read_eval_results
from vae_models.metrics import (
    classifier_frechet_distance,
    conditional_accuracy,
    conditional_nll_quadrants,
    elbo,
    importance_sampled_nll,
    prior_mmd,
    psnr,
    ssim,
)
from vae_models.vae import VAE
from tests.paths import MNIST_DIR


class CountingVAE(VAE):
    """A real VAE that records how many samples each log_importance_weights call asks for."""

    def __init__(self, config):
        super().__init__(config)
        self.requested: list[tuple[int, int]] = []

    def log_importance_weights(self, x, num_samples, labels=None):
        self.requested.append((len(x), num_samples))
        return super().log_importance_weights(x, num_samples, labels)


class IdentityFeatures(nn.Module):
    """A 'classifier' whose features are its inputs, so Fréchet distances have a closed form."""

    def features(self, x):
        return x.flatten(1).float()


def tiny_vae(cls=VAE):
    torch.manual_seed(0)
    return cls(VAE.config_class(hidden_dims=(32,), latent_dim=4)).eval()


def binary_images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, 1, 28, 28), 0.2), generator=g)


def test_is_nll_streams_chunks_exactly_and_respects_chunk_size():
    model, x = tiny_vae(CountingVAE), binary_images(6)
    torch.manual_seed(1)
    nll = importance_sampled_nll(model, x, num_samples=100, batch_size=6, chunk=30)
    assert model.requested == [(6, 30), (6, 30), (6, 30), (6, 10)]  # never more than chunk samples per call
    # The same random draws, all kept in memory and reduced by one logsumexp.
    torch.manual_seed(1)
    with torch.no_grad():
        w = torch.cat([model.log_importance_weights(x, k) for k in (30, 30, 30, 10)])
    reference = -(torch.logsumexp(w.double(), 0) - math.log(100))
    torch.testing.assert_close(nll, reference, rtol=0, atol=1e-9)
    assert nll.dtype == torch.float64 and nll.shape == (6,)


def test_is_nll_batches_cover_every_image_and_tighten_the_elbo():
    model, x = tiny_vae(CountingVAE), binary_images(5)
    torch.manual_seed(0)
    nll = importance_sampled_nll(model, x, num_samples=256, batch_size=2, chunk=128)
    assert [b for b, _ in model.requested] == [2, 2, 2, 2, 1, 1] and nll.shape == (5,)
    # k = 256 importance samples give a tighter bound than the ELBO: -log p(x) estimate below -ELBO on average.
    neg_elbo = -elbo(model, x)
    assert torch.isfinite(nll).all() and nll.mean() < neg_elbo.mean()
    assert nll.mean() > 0  # -log p(x) of binary images is positive


def test_is_nll_rejects_bad_input():
    model = tiny_vae()
    with pytest.raises(ValueError, match="images must be"):
        importance_sampled_nll(model, torch.rand(2, 784))
    with pytest.raises(ValueError, match=">= 1"):
        importance_sampled_nll(model, binary_images(2), chunk=0)
    with pytest.raises(Unsupported, match="no importance-sampled likelihood"):
        importance_sampled_nll(build_model("ae", hidden_dims=[8], latent_dim=2), binary_images(2))


def test_psnr_and_ssim_sanity():
    a = torch.rand(3, 1, 28, 28)
    assert torch.isinf(psnr(a, a)) and ssim(a, a).item() == pytest.approx(1.0, abs=1e-5)
    grey, brighter = torch.full((2, 1, 28, 28), 0.5), torch.full((2, 1, 28, 28), 0.6)
    # MSE = 0.01 -> PSNR = 10 log10(1 / 0.01) = 20 dB.
    torch.testing.assert_close(psnr(grey, brighter, reduction="none"), torch.full((2,), 20.0), atol=1e-3, rtol=0)
    noisy = (a + 0.3 * torch.randn_like(a)).clamp(0, 1)
    per_image = ssim(noisy, a, reduction="none")
    assert per_image.shape == (3,) and (per_image < 0.9).all()
    assert psnr(noisy, a) < psnr((a + 0.05 * torch.randn_like(a)).clamp(0, 1), a)
    with pytest.raises(ValueError, match="same shape"):
        psnr(a, a[:2])


def gaussian_with_exact_moments(n, mean, cov, seed):
    """n samples whose empirical mean and (unbiased) covariance are exactly `mean` and `cov`."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, len(mean), generator=g, dtype=torch.float64)
    x = x - x.mean(0)
    x = x @ torch.linalg.inv(torch.linalg.cholesky(x.T @ x / (n - 1))).T  # empirical covariance = I
    return x @ torch.linalg.cholesky(cov).T + mean


def sqrtm_psd(m):
    values, vectors = torch.linalg.eigh(m)
    return vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T


def test_classifier_frechet_distance_matches_closed_form():
    stub = IdentityFeatures()
    mean_a, mean_b = torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64), torch.tensor([2.0, 0.0, 0.5], dtype=torch.float64)
    cov_a = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 0.5]], dtype=torch.float64)
    cov_b = torch.tensor([[1.0, -0.4, 0.2], [-0.4, 3.0, 0.0], [0.2, 0.0, 1.5]], dtype=torch.float64)
    a = gaussian_with_exact_moments(500, mean_a, cov_a, 0)
    b = gaussian_with_exact_moments(400, mean_b, cov_b, 1)
    # Dowson & Landau: |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), computed independently here.
    root_a = sqrtm_psd(cov_a)
    expected = (mean_a - mean_b).square().sum() + torch.trace(cov_a + cov_b - 2 * sqrtm_psd(root_a @ cov_b @ root_a))
    assert classifier_frechet_distance(stub, a.float(), b.float()) == pytest.approx(expected.item(), rel=1e-3)


def test_classifier_frechet_distance_zero_for_same_set_and_grows_with_shift():
    stub = IdentityFeatures()
    a = torch.randn(300, 4)
    assert classifier_frechet_distance(stub, a, a) == pytest.approx(0.0, abs=1e-3)
    shifts = [classifier_frechet_distance(stub, a + s, a) for s in (0.5, 1.0, 2.0)]
    assert shifts == pytest.approx([4 * 0.25, 4 * 1.0, 4 * 4.0], rel=1e-3)  # |shift|^2 summed over 4 features
    with pytest.raises(ValueError, match="two images"):
        classifier_frechet_distance(stub, a[:1], a)


def tiny_classifier():
    torch.manual_seed(0)
    return build_model("classifier", hidden_dims=[4, 8], latent_dim=16)


def test_classifier_frechet_distance_on_images_with_the_real_classifier():
    clf = tiny_classifier().eval()
    images = torch.rand(64, 1, 28, 28)
    assert classifier_frechet_distance(clf, images, images) == pytest.approx(0.0, abs=1e-3)
    assert classifier_frechet_distance(clf, images, binary_images(64)) > 0.0


def test_conditional_accuracy_on_a_tiny_cvae():
    cvae = build_model("cvae", hidden_dims=[16], latent_dim=2)
    value = conditional_accuracy(tiny_classifier(), cvae, n_per_digit=3, generator=torch.Generator().manual_seed(0))
    assert isinstance(value, float) and 0.0 <= value <= 1.0
    assert value * 30 == pytest.approx(round(value * 30))  # a share of the 30 samples
    with pytest.raises(Unsupported, match="not label-conditional"):
        conditional_accuracy(tiny_classifier(), tiny_vae(), n_per_digit=1)


def test_prior_mmd_prefers_codes_that_match_the_prior():
    model = tiny_vae()
    value = prior_mmd(model, binary_images(64), n=64, generator=torch.Generator().manual_seed(0))
    assert math.isfinite(value)
    # An encoder whose codes sit far from N(0, I) must score worse than one whose codes are N(0, I)-like.
    with torch.no_grad():
        model.encoder.head[-1].bias[:4] += 5.0
    assert prior_mmd(model, binary_images(64), n=64, generator=torch.Generator().manual_seed(0)) > value


def test_conditional_nll_quadrants_wraps_both_quadrant_models():
    x = binary_images(4)
    socvae = build_model("socvae", hidden_dims=[16], latent_dim=2).eval()
    baseline = build_model("quadrant_nn", hidden_dims=[16], latent_dim=2).eval()
    for given in (1, 2, 3):
        for model in (socvae, baseline):
            nll = conditional_nll_quadrants(model, x, given, num_samples=8, batch_size=3)
            assert nll.shape == (4,) and (nll > 0).all() and nll.dtype == torch.float64
    with pytest.raises(ValueError, match="1, 2 or 3"):
        conditional_nll_quadrants(socvae, x, 4)
    with pytest.raises(Unsupported, match="quadrant"):
        conditional_nll_quadrants(tiny_vae(), x, 2)


def test_classifier_learns_a_fixed_batch_and_round_trips(tmp_path):
    clf = tiny_classifier()
    g = torch.Generator().manual_seed(0)
    x, y = 0.3 * torch.rand(32, 1, 28, 28, generator=g), torch.arange(32) % 10
    for i, label in enumerate(y):  # a learnable batch: the label says which band of rows is bright
        x[i, 0, 2 * label:2 * label + 3] = 1.0
    opt = torch.optim.Adam(clf.parameters(), lr=3e-3)
    clf.eval()
    before = clf.loss((x, y)).loss.item()
    clf.train()
    for _ in range(40):
        out = clf.loss((x, y))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    clf.eval()
    after = clf.loss((x, y))
    assert set(after.terms) == {"cross_entropy"} and after.loss.item() < 0.5 * before
    assert clf(x).shape == (32, 10) and clf.features(x).shape == (32, 16)
    assert (clf.predict(x) == y).float().mean() > 0.5
    clf.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))
    torch.testing.assert_close(loaded(x), clf(x))


def test_classifier_is_a_hub_model_without_the_generative_interface():
    clf = tiny_classifier()
    assert isinstance(clf, HubModel) and not isinstance(clf, VAEFamilyModel) and clf.spec.kind == "classifier"
    for method in ("sample", "encode", "decode", "reconstruct", "prior_sample"):  # nothing stubbed
        assert not hasattr(clf, method), method
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        clf(torch.rand(2, 784))
    with pytest.raises(ValueError, match="conv"):
        build_model("classifier", backbone="mlp")




def test_evaluate_cli_writes_eval_results(tmp_path, capsys):
    torch.manual_seed(0)
    build_model("vae", hidden_dims=[16], latent_dim=2).save_pretrained(tmp_path / "vae")
    build_model("cvae", hidden_dims=[16], latent_dim=2).save_pretrained(tmp_path / "cvae")
    tiny_classifier().save_pretrained(tmp_path / "classifier")
    argv = [str(tmp_path / "vae"), str(tmp_path / "cvae"), "--data-dir", str(MNIST_DIR), "--limit", "20",
            "--num-samples", "4", "--classifier", str(tmp_path / "classifier")]
    assert evaluate_main(argv) == 0
    assert json.loads((tmp_path / "vae" / "eval_results.json").read_text())["schema_version"] == SCHEMA_VERSION
    vae, cvae = read_eval_results(tmp_path / "vae"), read_eval_results(tmp_path / "cvae")
    assert {r.type for r in vae} == {"nll", "psnr", "ssim", "classifier_fd", "mmd"}
    assert {r.type for r in cvae} == {"nll", "classifier_fd", "accuracy"}
    for r in vae + cvae:
        assert r.dataset == "mnist" and r.split == "test" and math.isfinite(r.value) and r.estimator
        assert r.command.startswith("python -m train.evaluate ") and r.details["num_images"] == 20
    nll = next(r for r in vae if r.type == "nll")
    assert nll.name == "IS-NLL (k=4)" and 0 < nll.value < 784 * math.log(2) * 2
    assert "IS-NLL (k=4)" in capsys.readouterr().out  # the printed table
    assert evaluate_main([str(tmp_path / "missing"), "--data-dir", str(MNIST_DIR)]) == 2

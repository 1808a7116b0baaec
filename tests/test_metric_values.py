"""Metrics checked against values known exactly: a judge that is always right or always wrong, MMD by hand on a
tiny set, and `train.evaluate`'s reported numbers recomputed with the library functions they claim to be."""

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from train import evaluate as evaluation
from vae_models import ModelSpec, build_model
from vae_models.corruption import corrupt
from vae_models.metrics import conditional_accuracy, importance_sampled_nll, mmd_rbf, psnr
from tests.paths import MNIST_DIR



class LabelStampingGenerator(nn.Module):
    """A label-conditional 'model' whose sample for digit d is a blank image with pixel (0, 0) = d / 9, so that a
    judge can read the requested label back. Records every batch of labels it is asked for."""

    spec = ModelSpec(name="label_stamp", description="a label-conditional stand-in for a CVAE", label_conditional=True)

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the module a device
        self.requests: list[list[int]] = []

    @property
    def device(self):
        return self.anchor.device

    def sample(self, n, labels=None, temperature=1.0, generator=None):
        assert labels is not None and len(labels) == n
        self.requests.append(labels.tolist())
        images = torch.zeros(n, 1, 28, 28)
        images[:, 0, 0, 0] = labels.float() / 9
        return images


class Judge:
    """`predict` reads the stamped label, shifted by `offset` (0: always right; 1..9: always wrong)."""

    def __init__(self, offset: int):
        self.offset = offset

    def predict(self, images):
        return ((images[:, 0, 0, 0] * 9).round().long() + self.offset) % 10


def test_conditional_accuracy_is_one_for_a_right_judge_and_zero_for_a_wrong_one():
    generator = LabelStampingGenerator()
    assert conditional_accuracy(Judge(0), generator, n_per_digit=7, batch_size=16) == 1.0
    # every digit asked for n_per_digit times, in batches of at most batch_size
    asked = [label for batch in generator.requests for label in batch]
    assert sorted(asked) == sorted(list(range(10)) * 7) and max(len(b) for b in generator.requests) <= 16
    assert conditional_accuracy(Judge(1), generator, n_per_digit=7, batch_size=16) == 0.0
    assert conditional_accuracy(Judge(3), generator, n_per_digit=2) == 0.0


class HalfRightJudge(Judge):
    """Right on even digits, wrong on odd ones: accuracy exactly 1/2."""

    def predict(self, images):
        label = (images[:, 0, 0, 0] * 9).round().long()
        return torch.where(label % 2 == 0, label, (label + 1) % 10)


def test_conditional_accuracy_is_the_share_judged_right():
    assert conditional_accuracy(HalfRightJudge(0), LabelStampingGenerator(), n_per_digit=3) == 0.5


def kernel(d2: float, bandwidths) -> float:
    return sum(math.exp(-d2 / (2 * h * h)) for h in bandwidths)


def test_mmd_matches_a_hand_computed_value():
    """a = {0, 1}, b = {0, 2} on the line; unbiased MMD^2 (Gretton et al. 2012, eq. 3):
    sum_{i!=j} k(a_i,a_j) / (n(n-1)) + sum_{i!=j} k(b_i,b_j) / (m(m-1)) - 2 sum_ij k(a_i,b_j) / (nm)."""
    a, b = torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [2.0]])
    for bandwidths in ((1.0,), (0.5, 2.0)):
        k = lambda d2: kernel(d2, bandwidths)  # noqa: E731
        expected = k(1) + k(4) - 2 * (k(0) + k(4) + k(1) + k(1)) / 4
        assert mmd_rbf(a, b, bandwidths).item() == pytest.approx(expected, rel=1e-6)
    default = mmd_rbf(a, b)  # the default multi-scale kernel
    k = lambda d2: kernel(d2, (0.2, 0.5, 1.0, 2.0, 5.0))  # noqa: E731
    assert default.item() == pytest.approx(k(1) + k(4) - (k(0) + k(4) + 2 * k(1)) / 2, rel=1e-6)
    assert mmd_rbf(b, a).item() == pytest.approx(default.item(), rel=1e-6)
    with pytest.raises(ValueError, match="two samples"):
        mmd_rbf(a[:1], b)


def test_mmd_is_near_zero_for_one_distribution_and_large_for_two():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1500, 2, generator=g), torch.randn(1500, 2, generator=g)
    same = mmd_rbf(a, b).item()
    shifted = mmd_rbf(a, b + torch.tensor([1.0, 0.0])).item()
    assert abs(same) < 0.01 and shifted > 0.3


# ------------------------------------------------------------------------------------------- train.evaluate


@pytest.fixture(scope="module")
def tiny_vae(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval") / "vae"
    torch.manual_seed(0)
    build_model("vae", hidden_dims=[16], latent_dim=2).save_pretrained(folder)
    return folder


def test_test_set_is_binarised_once_with_the_seed():
    grey, binary, labels = evaluation.test_set(str(MNIST_DIR), 50, seed=0)
    assert grey.shape == binary.shape == (50, 1, 28, 28) and labels.shape == (50,)
    assert set(binary.unique().tolist()) == {0.0, 1.0} and grey.min() >= 0 and grey.max() <= 1
    torch.testing.assert_close(binary, torch.bernoulli(grey, generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(binary, evaluation.test_set(str(MNIST_DIR), 50, seed=1)[1])


def test_evaluate_reports_the_library_nll_on_binarised_digits_and_the_library_psnr(tiny_vae):
    from vae_models import load_model

    results = {r.name: r for r in evaluation.evaluate(str(tiny_vae), data_dir=str(MNIST_DIR), limit=20,
                                                      settings=evaluation.EvalSettings(num_samples=8))}
    model = load_model(str(tiny_vae))
    grey, binary, _ = evaluation.test_set(str(MNIST_DIR), 20, 0)
    torch.manual_seed(0)  # evaluate seeds with the seed (0) and computes the IS-NLL first: the same importance samples
    reference = importance_sampled_nll(model, binary, num_samples=8)
    assert results["IS-NLL (k=8)"].value == round(float(reference.mean()), 4)
    assert results["IS-NLL (k=8)"].details["std_error"] == round(float(reference.std() / math.sqrt(20)), 4)
    torch.manual_seed(0)  # the grey-level digits give another number: the binarised ones are the ones scored
    assert round(float(importance_sampled_nll(model, grey, num_samples=8).mean()), 4) != results["IS-NLL (k=8)"].value

    for kind, level in evaluation.CORRUPTIONS:
        noisy = corrupt(grey, kind, level, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            clean = model.reconstruct(noisy)
        entry = results[f"Denoising PSNR ({kind} {level})"]
        assert entry.value == round(float(psnr(clean, grey)), 4)
        assert entry.details["input_psnr"] == round(float(psnr(noisy, grey)), 4)


def test_ssim_of_flat_images_is_the_luminance_term_with_data_range_one():
    """Flat images have no variance, so SSIM (Wang et al. 2004, eq. 13) is its luminance term
    (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1) with C1 = (0.01 L)^2 and L = 1, the range of our images."""
    from vae_models.metrics import ssim

    a, b = torch.full((2, 1, 28, 28), 0.01), torch.full((2, 1, 28, 28), 0.02)
    c1 = 0.01 ** 2
    expected = (2 * 0.01 * 0.02 + c1) / (0.01 ** 2 + 0.02 ** 2 + c1)  # 0.8333; L = 2 would give 0.889, L = 0 0.8
    assert ssim(a, b).item() == pytest.approx(expected, rel=1e-4)
    torch.testing.assert_close(ssim(a, b, reduction="none"), torch.full((2,), expected), rtol=1e-4, atol=0)


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli", "gaussian"])
def test_importance_sampling_scores_with_the_models_own_pixel_likelihood(likelihood):
    """sample_log_likelihood (the k-sample fast path of the IS-NLL) equals the model's log p(x|z) decoded one sample
    at a time, for every pixel likelihood: the Bernoulli shortcut must not be used for the others."""
    torch.manual_seed(0)
    model = build_model("vae", hidden_dims=[16], latent_dim=3, likelihood=likelihood).eval()
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1)).round()
    z = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        fast = model.sample_log_likelihood(x, z)
        one_by_one = torch.stack([model.log_likelihood(model.decoder_logits(z[i]), x) for i in range(4)])
    torch.testing.assert_close(fast, one_by_one, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("bad", [torch.zeros(2, 1, 28, 28, dtype=torch.uint8), torch.zeros(2, 1, 28, 27),
                                 torch.zeros(2, 2, 28, 28), torch.zeros(1, 28, 28)])
def test_likelihood_metrics_refuse_images_that_are_not_float_batches_of_digits(bad):
    from vae_models.metrics import elbo

    model = build_model("vae", hidden_dims=[8], latent_dim=2)
    for metric in (importance_sampled_nll, elbo):
        with pytest.raises(ValueError, match=r"images must be a float tensor \(N, 1, 28, 28\)"):
            metric(model, bad)

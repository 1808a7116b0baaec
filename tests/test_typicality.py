"""The "how digit-like" meter's library side (vae_models/typicality.py) and the latent tools (vae_models/latent.py):
percentiles on a reference distribution, the reference file's format and its tie to the weights, the bundled
references in sync with the bundled weights, drawn letters and scribbles in the tail; slerp, active units, sweeps."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from vae_models import EncoderOutput, build_model, latent, load_model, typicality
from vae_models.data import load_mnist
from vae_models.preprocess import to_mnist

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared/data/mnist"
LIKELIHOOD_EXPORTS = ("vae", "dvae", "avb")  # the app's "every model" models that have a likelihood
NOT_DIGITS = "KMWXHE"  # capital letters that resemble no digit (A, B, Q, R pass for 8s and 0s and are left out)


def reference(quantiles, **kw) -> typicality.LikelihoodReference:
    return typicality.LikelihoodReference(quantiles=list(quantiles), size=100, num_samples=5, weights_sha256="0" * 64,
                                          **kw)


def test_percentile_interpolates_between_quantiles_and_clamps_outside():
    ref = reference([-200.0, -150.0, -100.0, -90.0, -80.0])  # levels 0, 25, 50, 75, 100 %
    assert ref.percentile(-100.0) == pytest.approx(50.0)
    assert ref.percentile(-125.0) == pytest.approx(37.5)
    assert ref.percentile(-85.0) == pytest.approx(87.5)
    assert ref.percentile(-1000.0) == 0.0 and ref.percentile(-10.0) == 100.0
    assert ref.median() == pytest.approx(-100.0)
    with pytest.raises(ValueError, match="finite"):
        ref.percentile(float("nan"))


def test_percentile_of_a_tied_value_is_the_middle_of_the_tie():
    ref = reference([-3.0, -2.0, -2.0, -2.0, -1.0])
    assert ref.percentile(-2.0) == pytest.approx(50.0)


@pytest.mark.parametrize("quantiles", [[1.0], [2.0, 1.0], [0.0, float("inf")]])
def test_reference_rejects_bad_quantiles(quantiles):
    with pytest.raises(typicality.ReferenceError):
        reference(quantiles)


def test_reference_json_round_trip_and_strict_fields():
    ref = reference([-3.0, -1.0], check_values=[-2.5])
    assert typicality.LikelihoodReference.from_json(ref.to_json()) == ref
    data = json.loads(ref.to_json())
    for bad in ({**data, "extra": 1}, {k: v for k, v in data.items() if k != "quantiles"},
                {**data, "format_version": 99}, [1, 2]):
        with pytest.raises(typicality.ReferenceError):
            typicality.LikelihoodReference.from_json(json.dumps(bad))
    with pytest.raises(typicality.ReferenceError, match="not JSON"):
        typicality.LikelihoodReference.from_json("{")


def test_a_reference_of_other_weights_is_refused(tmp_path):
    model = build_model("vae", hidden_dims=[16], latent_dim=2)
    model.save_pretrained(tmp_path)
    images = torch.rand(30, 1, 28, 28)
    ref = typicality.build_reference(model, images, typicality.file_sha256(tmp_path / "model.safetensors"),
                                     num_samples=4, num_quantiles=11)
    typicality.save_reference(ref, tmp_path)
    assert typicality.load_reference(tmp_path) == ref
    assert len(ref.quantiles) == 11 and ref.size == 30 and len(ref.check_values) == typicality.BATCH
    build_model("vae", hidden_dims=[16], latent_dim=2).save_pretrained(tmp_path)  # retrained: new weights
    with pytest.raises(typicality.ReferenceError, match="other weights"):
        typicality.load_reference(tmp_path)
    assert typicality.load_reference(tmp_path, check_weights=False) == ref
    shutil.rmtree(tmp_path)
    with pytest.raises(typicality.ReferenceError, match="no likelihood_reference.json"):
        typicality.load_reference(tmp_path)


def test_log_likelihood_is_seeded_prefix_stable_and_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    model = build_model("vae", hidden_dims=[16], latent_dim=2)
    images = torch.rand(25, 1, 28, 28)
    state = torch.get_rng_state()
    full = typicality.log_likelihood(model, images, num_samples=8)
    assert torch.equal(torch.get_rng_state(), state)
    prefix = typicality.log_likelihood(model, images[:typicality.BATCH], num_samples=8)
    assert torch.equal(full[:typicality.BATCH], prefix)
    other_seed = typicality.log_likelihood(model, images[:typicality.BATCH], num_samples=8, seed=1)
    assert not torch.equal(prefix, other_seed)
    # it scores the thresholded image: grey levels on the same side of the threshold give the same value
    assert torch.equal(typicality.log_likelihood(model, images[:3] * 0.4, num_samples=8),
                       typicality.log_likelihood(model, torch.zeros(3, 1, 28, 28), num_samples=8))
    with pytest.raises(TypeError, match="no likelihood"):
        typicality.log_likelihood(build_model("ae", hidden_dims=[16], latent_dim=2), images)


@pytest.mark.parametrize("name", LIKELIHOOD_EXPORTS)
def test_bundled_reference_matches_the_bundled_weights(name):
    """Retraining a bundled model without recomputing its reference fails here (`python -m train.reference`)."""
    folder = REPO / "pretrained" / name
    ref = typicality.load_reference(folder)  # checks the weights' SHA-256
    assert ref.size == 10_000 and ref.dataset == "mnist" and ref.split == "test"
    assert len(ref.quantiles) == typicality.NUM_QUANTILES and ref.num_samples == typicality.NUM_SAMPLES
    images, _ = load_mnist("test", data_dir=MNIST_DIR)
    first = images[:len(ref.check_values)].unsqueeze(1).float() / 255.0
    values = typicality.log_likelihood(load_model(str(folder)), first, ref.num_samples, ref.seed)
    assert values.tolist() == pytest.approx(ref.check_values, abs=0.05)


# ------------------------------------------------------------------------------------------- drawn inputs


def canvas_image(draw) -> np.ndarray:
    image = Image.new("L", (280, 280), 255)  # black ink on white paper, as drawn in the app
    draw(ImageDraw.Draw(image))
    return np.asarray(image)


def letter(ch: str) -> np.ndarray:
    font = ImageFont.load_default(size=220)
    return canvas_image(lambda d: d.text((40, 10), ch, fill=0, font=font))


def scribble(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = [tuple(rng.uniform(20, 260, 2)) for _ in range(12)]
    return canvas_image(lambda d: d.line(points, fill=0, width=18))


@pytest.fixture(scope="module")
def models_and_references():
    return {name: (load_model(str(REPO / "pretrained" / name)), typicality.load_reference(REPO / "pretrained" / name))
            for name in ("vae", "dvae")}


def percentiles(models_and_references, images: torch.Tensor) -> dict[str, list[float]]:
    return {name: [ref.percentile(float(v)) for v in typicality.log_likelihood(model, images)]
            for name, (model, ref) in models_and_references.items()}


def test_letters_and_scribbles_land_in_the_tail_and_test_digits_do_not(models_and_references):
    from demo.common import test_digits

    drawn = torch.stack([to_mnist(letter(c)) for c in NOT_DIGITS] + [to_mnist(scribble(s)) for s in range(5)])
    digits = test_digits()[0]  # 20 MNIST test digits
    for name, values in percentiles(models_and_references, drawn).items():
        assert max(values) < 1.0, (name, values)  # every letter and scribble below the 1st percentile
    for name, values in percentiles(models_and_references, digits).items():
        assert sum(v < 1.0 for v in values) <= 1 and float(np.median(values)) > 20, (name, values)


# ------------------------------------------------------------------------------------------- latent tools


def test_slerp_keeps_the_norm_on_the_arc_and_hits_both_ends():
    a, b = torch.tensor([3.0, 0.0, 0.0]), torch.tensor([0.0, 3.0, 0.0])
    t = torch.linspace(0, 1, 5)
    path = latent.slerp(a, b, t)
    assert torch.allclose(path[0], a) and torch.allclose(path[-1], b, atol=1e-6)
    assert torch.allclose(path.norm(dim=1), torch.full((5,), 3.0))
    assert torch.allclose(path[2], torch.tensor([1.0, 1.0, 0.0]) * 3 / math.sqrt(2))
    straight = latent.lerp(a, b, t)
    assert torch.allclose(straight[2], torch.tensor([1.5, 1.5, 0.0])) and straight[2].norm() < 3.0
    assert torch.allclose(latent.slerp(a, 2 * a, t), latent.lerp(a, 2 * a, t))  # parallel: the line


class FixedEncoder(torch.nn.Module):
    """A Gaussian encoder with a known answer: dim 0's mean is the image's mean pixel times 10, dim 1's mean is
    constant 0.5; log-variances are 0 (sigma = 1)."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def encode(self, x, labels=None):
        m0 = x.flatten(1).mean(1) * 10
        mean = torch.stack([m0, torch.full_like(m0, 0.5)], dim=1)
        return EncoderOutput(z=mean, mean=mean, logvar=torch.zeros_like(mean))

    @property
    def device(self):
        return self.anchor.device


def test_latent_statistics_are_burdas_activity_and_the_closed_form_kl():
    x = torch.rand(200, 1, 28, 28)
    mean_kl, activity = latent.latent_statistics(FixedEncoder(), x, batch_size=64)
    m0 = x.flatten(1).mean(1).double() * 10
    assert activity[0].item() == pytest.approx(m0.var().item()) and activity[1].item() == pytest.approx(0.0)
    assert mean_kl[0].item() == pytest.approx((0.5 * m0.pow(2)).mean().item(), rel=1e-5)  # sigma = 1: KL = mu^2 / 2
    assert mean_kl[1].item() == pytest.approx(0.125, rel=1e-5)
    assert latent.active_units(activity) == (1 if m0.var() > 0.01 else 0)
    assert latent.active_units(torch.tensor([0.5, 0.011, 0.01, 0.0])) == 2
    with pytest.raises(TypeError, match="Gaussian posterior"):
        latent.latent_statistics(build_model("ae", hidden_dims=[8], latent_dim=2), x[:4])


def test_traversal_moves_one_dimension_per_row():
    code = torch.tensor([0.1, -0.2, 0.3])
    offsets = torch.tensor([-3.0, 0.0, 3.0])
    z = latent.traversal(code, [2, 0], offsets)
    assert z.shape == (6, 3)
    assert torch.allclose(z[:3, 2], code[2] + offsets) and torch.allclose(z[:3, :2], code[:2].expand(3, 2))
    assert torch.allclose(z[3:, 0], code[0] + offsets) and torch.allclose(z[3:, 1:], code[1:].expand(3, 2))
    with pytest.raises(ValueError, match="outside"):
        latent.traversal(code, [3], offsets)

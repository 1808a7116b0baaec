"""Paths between two codes (vae_models/latent.py): the decoded frames of an interpolation, and the midpoint dip the
lecture's moon example is measured by (benchmarks/moon.py)."""

import pytest
import torch

from vae_models import build_model
from vae_models.latent import frame_measures, interpolation_frames, lerp, midpoint_dip, posterior_code


def test_interpolation_frames_decode_the_path_between_the_two_posterior_codes():
    model = build_model("vae", hidden_dims=[8], latent_dim=2).eval()
    a, b = torch.rand(1, 1, 28, 28), torch.rand(1, 1, 28, 28)
    frames = interpolation_frames(model, a, b, 5)
    with torch.no_grad():
        expected = model.decode(lerp(posterior_code(model, a), posterior_code(model, b), torch.linspace(0, 1, 5)))
    assert frames.shape == (5, 1, 28, 28) and torch.allclose(frames, expected)
    assert torch.allclose(frames[0], model.decode(model.encode(a).mean)[0])


def test_the_midpoint_dip_is_the_ends_mean_minus_the_middle():
    values = torch.tensor([[0.9, 0.5, 0.2, 0.6, 0.7], [1.0, 1.0, 1.0, 1.0, 1.0]])
    assert torch.allclose(midpoint_dip(values), torch.tensor([0.6, 0.0]))
    with pytest.raises(ValueError, match="odd number of frames"):
        midpoint_dip(values[:, :4])


def test_a_frame_is_measured_by_the_classifiers_top_probability_and_its_meter_percentile():
    from vae_models import typicality

    torch.manual_seed(0)
    classifier = build_model("classifier", hidden_dims=[4], latent_dim=8).eval()
    likelihood = build_model("vae", hidden_dims=[8], latent_dim=2)
    frames = torch.rand(4, 1, 28, 28)
    log_px = typicality.log_likelihood(likelihood, frames)
    reference = typicality.LikelihoodReference(quantiles=sorted([float(log_px.min()) - 1, float(log_px[1]),
                                                                 float(log_px.max()) + 1]), size=3, num_samples=5,
                                               weights_sha256="0" * 64)
    confidence, percentile = frame_measures(classifier, likelihood, reference, frames)
    with torch.no_grad():
        expected = classifier(frames).softmax(1).max(1).values.double()
    assert torch.allclose(confidence, expected)
    assert percentile.tolist() == pytest.approx([reference.percentile(float(v)) for v in log_px])
    assert percentile[1] == pytest.approx(50.0)  # frame 1's own value is the reference's middle quantile

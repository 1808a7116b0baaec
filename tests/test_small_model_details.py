"""Details of the AE, CVAE, DVAE and classifier that a whole mutation run of their files found untested: the limits
their configs accept and refuse, how the CVAE reads its labels, the DVAE's seeded corruption and the classifier's
feature layer (the embedding of the Fréchet distance)."""

from __future__ import annotations

import pytest
import torch

from vae_models import ConfigError, build_model

TINY = {"hidden_dims": [8], "latent_dim": 2}


@pytest.mark.parametrize("std, ok", [(0.0, False), (-0.1, False), (1e-3, True)])
def test_the_ae_gaussian_std_must_be_positive(std, ok):
    if ok:
        assert build_model("ae", likelihood="gaussian", gaussian_std=std, **TINY).config.gaussian_std == std
    else:
        with pytest.raises(ConfigError):
            build_model("ae", likelihood="gaussian", gaussian_std=std, **TINY)


def test_a_cvae_needs_two_classes_at_least():
    assert build_model("cvae", num_classes=2, **TINY).config.num_classes == 2
    with pytest.raises(ConfigError):
        build_model("cvae", num_classes=1, **TINY)


def test_a_single_integer_label_conditions_a_single_image():
    model = build_model("cvae", **TINY).eval()
    x = torch.rand(1, 1, 28, 28)
    assert torch.equal(model.check_labels(torch.tensor(3), 1), torch.tensor([3]))
    assert torch.equal(model.encode(x, torch.tensor(3)).mean, model.encode(x, torch.tensor([3])).mean)


def test_cvae_labels_must_be_integers_one_per_image():
    model = build_model("cvae", **TINY).eval()
    x, z = torch.rand(3, 1, 28, 28), torch.zeros(3, 2)
    with pytest.raises(ValueError, match="1-D sequence of integers"):
        model.check_labels(torch.tensor([True, False, True]), 3)
    with pytest.raises(ValueError, match="one label per image: got 2 labels for 3 images"):
        model.encode(x, [1, 2])
    with pytest.raises(ValueError, match="one label per image: got 2 labels for 3 images"):
        model.decoder_logits(z, [1, 2])


def test_the_dvae_corruption_follows_the_generator_it_is_given():
    model = build_model("dvae", corruption="salt_and_pepper", noise_level=0.3, **TINY)
    x = torch.rand(4, 1, 28, 28)
    torch.manual_seed(0)
    first = model.corrupt(x, torch.Generator().manual_seed(5))
    second = model.corrupt(x, torch.Generator().manual_seed(5))  # the global RNG has moved on, the generator not
    assert torch.equal(first, second) and not torch.equal(first, x)


@pytest.mark.parametrize("layers, ok", [([4], True), ([4, 4, 4, 4], True), ([4, 4, 4, 4, 4], False)])
def test_the_classifier_has_one_to_four_conv_layers(layers, ok):
    if ok:
        assert len(build_model("classifier", hidden_dims=layers).config.hidden_dims) == len(layers)
    else:
        with pytest.raises(ConfigError, match="1 to 4 conv layers"):
            build_model("classifier", hidden_dims=layers)


@pytest.mark.parametrize("dropout, ok", [(0.0, True), (0.99, True), (1.0, False), (1.5, False), (-0.1, False)])
def test_the_classifier_dropout_is_a_probability_below_one(dropout, ok):
    if ok:
        assert build_model("classifier", hidden_dims=[4], dropout=dropout).config.dropout == dropout
    else:
        with pytest.raises(ConfigError, match=r"dropout must be in \[0, 1\)"):
            build_model("classifier", hidden_dims=[4], dropout=dropout)


def test_the_classifier_features_are_post_activation_and_refuse_other_shapes():
    model = build_model("classifier", hidden_dims=[4], latent_dim=16).eval()
    torch.manual_seed(0)
    features = model.features(torch.rand(8, 1, 28, 28))
    assert features.shape == (8, 16) and features.min() >= 0 and (features == 0).any()  # ReLU output, as FD expects
    for shape in [(2, 3, 28, 28), (2, 28, 28), (2, 1, 32, 32)]:
        with pytest.raises(ValueError, match=r"expects images of shape \(B, 1, 28, 28\)"):
            model.features(torch.rand(shape))

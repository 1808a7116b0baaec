"""The digit classifier (vae_models/classifier.py) that judges label-conditional samples and embeds images for the
Fréchet distance: the limits of its config and its feature layer."""

import pytest
import torch

from vae_models import ConfigError, build_model


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


def test_the_classifier_takes_two_classes_at_least():
    assert build_model("classifier", hidden_dims=[4], latent_dim=8, num_classes=2).config.num_classes == 2

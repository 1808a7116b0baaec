"""The plain autoencoder (vae_models/ae.py): the limits of its config (the shared pixel likelihood, the encoder and
decoder are tested in test_base.py, test_blocks.py and test_models.py)."""

import pytest

from vae_models import ConfigError, build_model

TINY = {"hidden_dims": [8], "latent_dim": 2}


@pytest.mark.parametrize("std, ok", [(0.0, False), (-0.1, False), (1e-3, True)])
def test_the_ae_gaussian_std_must_be_positive(std, ok):
    if ok:
        assert build_model("ae", likelihood="gaussian", gaussian_std=std, **TINY).config.gaussian_std == std
    else:
        with pytest.raises(ConfigError):
            build_model("ae", likelihood="gaussian", gaussian_std=std, **TINY)

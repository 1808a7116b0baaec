"""The per-image ELBO of the Gaussian-posterior models (VAE, DVAE, CVAE), computed by hand: log p(x|z) at one
reparameterised z minus the closed-form KL(N(mu, sigma^2) || N(0, I)) = 1/2 sum(mu^2 + sigma^2 - 1 - log sigma^2)
(Kingma & Welling 2013, eq. 10 and Appendix B)."""

import pytest
import torch

from vae_models import build_model
from vae_models.blocks import pixel_log_likelihood

X = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
LABELS = torch.tensor([0, 1, 2, 3, 4, 5])


def by_hand(model, labels):
    enc = model.encode(X, labels)  # the same draw of eps as elbo's, under the same seed
    log_px = pixel_log_likelihood(model.decoder_logits(enc.z, labels), X, model.config.likelihood,
                                  model.config.gaussian_std)
    kl = 0.5 * (enc.mean.pow(2) + enc.logvar.exp() - 1 - enc.logvar).sum(1)
    return log_px - kl


@pytest.mark.parametrize("model_type, labels", [("vae", None), ("dvae", None), ("cvae", LABELS)])
def test_the_elbo_is_the_log_likelihood_of_one_draw_minus_the_closed_form_kl(model_type, labels):
    model = build_model(model_type, hidden_dims=[16], latent_dim=3, likelihood="gaussian", gaussian_std=0.5).eval()
    with torch.no_grad():
        torch.manual_seed(1)
        elbo = model.elbo(X, labels)
        torch.manual_seed(1)
        expected = by_hand(model, labels)
    assert elbo.shape == (6,)
    torch.testing.assert_close(elbo, expected)


def test_the_cvae_elbo_is_that_of_the_labels_given():
    model = build_model("cvae", hidden_dims=[16], latent_dim=3).eval()
    other = (LABELS + 1) % 10
    with torch.no_grad():
        torch.manual_seed(1)
        elbo = model.elbo(X, other)
        torch.manual_seed(1)
        torch.testing.assert_close(elbo, by_hand(model, other))
        torch.manual_seed(1)
        assert not torch.allclose(elbo, by_hand(model, LABELS))

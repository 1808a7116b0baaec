"""AVB's adaptive contrast (Mescheder et al. 2017, Sec. 3.3) checked exactly: with a Gaussian posterior and T equal
to the exact log-ratio of the normalised codes, the loss's KL estimate must be log q(z|x) - log p(z) for every
sample, whatever moments r_alpha was fitted with, and so average to the closed-form KL(q || p)."""

import math

import torch
from torch import nn

from vae_models import build_model
from vae_models.blocks import kl_standard_normal, log_normal

LATENT = 3
STD = torch.tensor([0.3, 0.7, 1.4])


class GaussianEncoder(nn.Module):
    """z = f(x, eps) = mu(x) + STD * eps: q(z|x) = N(mu(x), diag STD^2) with mu(x) depending on the image."""

    def forward(self, x, eps):
        brightness = x.flatten(1).mean(1, keepdim=True)
        return self.mean(brightness) + STD * eps[:, :LATENT]

    @staticmethod
    def mean(brightness):
        return torch.tensor([1.0, -0.5, 0.2]) + 4 * brightness * torch.tensor([1.0, 1.0, -1.0])


class ExactContrastRatio(nn.Module):
    """T(x, z~) = log q~(z~|x) - log N(z~; 0, I), q~ the law of z~ = (z - m) / s under the r_alpha moments (m, s)
    the model just estimated (recorded by `record`): q~ = N((mu(x) - m) / s, (STD / s)^2)."""

    def __init__(self):
        super().__init__()
        self.moments = None

    def forward(self, x, z_tilde):
        m, s = self.moments
        mu = GaussianEncoder.mean(x.flatten(1).mean(1, keepdim=True))
        return log_normal(z_tilde, (mu - m) / s, 2 * (STD / s).log()) - log_normal(z_tilde)


def adaptive_avb():
    torch.manual_seed(0)
    model = build_model("avb", hidden_dims=[8], latent_dim=LATENT, noise_dim=LATENT, discriminator_hidden_dims=[8],
                        adaptive_contrast=True, contrast_samples=4)
    model.encoder = GaussianEncoder()
    model.discriminator = T = ExactContrastRatio()
    estimate = model.moments

    def record(x, k):
        T.moments = estimate(x, k)
        return T.moments

    model.moments = record
    return model, T


def test_adaptive_contrast_kl_is_the_exact_log_ratio_per_sample_and_the_closed_form_on_average():
    model, T = adaptive_avb()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 28, 28, generator=g).pow(2)
    mu = GaussianEncoder.mean(x.flatten(1).mean(1, keepdim=True))
    logvar = 2 * STD.log().expand_as(mu)

    captured = []
    decoder_logits = model.decoder_logits
    model.decoder_logits = lambda z, labels=None: captured.append(z) or decoder_logits(z)
    estimates = []
    for _ in range(400):
        kl = model.loss((x, None)).terms["kl_estimate"]
        z = captured[-1]  # the code the loss scored (its reconstruction decodes it)
        # per sample: T(x, z~) + log r(z|x) - log p(z) = log q(z|x) - log p(z), for any estimated r
        exact = (log_normal(z, mu, logvar) - log_normal(z)).mean()
        torch.testing.assert_close(kl, exact, rtol=1e-4, atol=1e-4)
        estimates.append(kl.item())
    closed_form = kl_standard_normal(mu, logvar).mean().item()  # KL(N(mu, STD^2) || N(0, I)), App. B
    spread = torch.tensor(estimates).std().item() / math.sqrt(len(estimates))
    assert abs(sum(estimates) / len(estimates) - closed_form) < 4 * spread + 1e-3, (closed_form, spread)

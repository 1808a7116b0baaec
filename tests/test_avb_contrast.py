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


def test_avb_importance_weights_use_the_fitted_gaussian_proposal():
    """log w = log p(x|z) + log p(z) - log g(z|x) with z ~ g, g the diagonal Gaussian fitted to the posterior draws
    (std floored at 1e-3 so a collapsed dimension cannot break the bound). Checked sample by sample on a known
    Gaussian posterior, one of whose dimensions has collapsed."""
    torch.manual_seed(0)
    model = build_model("avb", hidden_dims=[8], latent_dim=LATENT, noise_dim=LATENT, discriminator_hidden_dims=[8],
                        proposal_samples=64).eval()
    collapsed = torch.tensor([0.3, 1e-6, 1.4])

    class Posterior(torch.nn.Module):
        def forward(self, x, eps):
            return GaussianEncoder.mean(x.flatten(1).mean(1, keepdim=True)) + collapsed * eps[:, :LATENT]

    model.encoder = Posterior()
    fitted, decoded = [], []
    moments, decoder_logits = model.moments, model.decoder_logits
    model.moments = lambda x, k: fitted.append(moments(x, k)) or fitted[-1]
    model.decoder_logits = lambda z, labels=None: decoded.append(z) or decoder_logits(z)
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0)).round()
    with torch.no_grad():
        log_w = model.log_importance_weights(x, num_samples=3000)
        mean, std = fitted[-1]
        std = std.clamp_min(1e-3)
        z = torch.cat(decoded).view(3000, 4, LATENT)  # decoded ROWS_PER_STEP rows at a time
        log_px = model.log_likelihood(decoder_logits(z.reshape(-1, LATENT)), x.repeat(3000, 1, 1, 1)).view(3000, 4)
    torch.testing.assert_close(std[:, 1], torch.full((4,), 1e-3))  # the floor, on the collapsed dimension
    expected = log_px + log_normal(z) - log_normal(z, mean, 2 * std.log())
    torch.testing.assert_close(log_w, expected, rtol=1e-5, atol=1e-3)
    # and z really is drawn from g: its moments are the fitted ones
    torch.testing.assert_close(z.mean(0), mean, rtol=0, atol=0.1)
    torch.testing.assert_close(z.std(0) / std, torch.ones_like(std), rtol=0, atol=0.1)


def gaussian_avb(**fields):
    torch.manual_seed(0)
    model = build_model("avb", hidden_dims=[8], latent_dim=LATENT, noise_dim=LATENT, discriminator_hidden_dims=[8],
                        **fields).eval()
    model.encoder = GaussianEncoder()
    return model


def test_avb_moments_and_reconstruction_follow_the_posterior():
    """r_alpha / the proposal get the posterior's own mean and std per image and dimension; reconstruct decodes the
    posterior mean (estimated from proposal_samples draws), one image per input."""
    model = gaussian_avb(proposal_samples=400)
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    mu = GaussianEncoder.mean(x.flatten(1).mean(1, keepdim=True))
    mean, std = model.moments(x, 4000)
    torch.testing.assert_close(mean, mu, rtol=0, atol=0.1)
    torch.testing.assert_close(std, STD.expand_as(mu), rtol=0.06, atol=0)
    with torch.no_grad():
        reconstruction = model.reconstruct(x)
        torch.testing.assert_close(reconstruction, model.decode(mu), rtol=0, atol=0.02)
    assert reconstruction.shape == (5, 1, 28, 28)


def test_adaptive_contrast_discriminator_sees_normalised_codes():
    """With adaptive contrast, T separates z~ = (z - mean) / std from N(0, I) samples (Sec. 3.3): the codes it is
    shown as 'posterior' are standardised, whatever the posterior's location and scale."""
    model = gaussian_avb(adaptive_contrast=True, contrast_samples=64)
    seen = []

    class Recorder(nn.Module):
        def forward(self, x, z):
            seen.append(z)
            return torch.zeros(len(z))

    model.discriminator = Recorder()
    x = torch.rand(2000, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    model.discriminator_loss((x, None))
    z_tilde, z_prior = seen
    torch.testing.assert_close(z_tilde.mean(0), torch.zeros(LATENT), rtol=0, atol=0.1)
    torch.testing.assert_close(z_tilde.std(0), torch.ones(LATENT), rtol=0, atol=0.1)
    assert z_prior.shape == z_tilde.shape

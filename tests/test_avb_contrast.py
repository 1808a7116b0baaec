"""AVB's adaptive contrast (Mescheder et al. 2017, Sec. 4) checked exactly: with a Gaussian posterior and T equal
to the exact log-ratio of the normalised codes, the loss's KL estimate must be log q(z|x) - log p(z) for every
sample, whatever moments r_alpha was fitted with, and so average to the closed-form KL(q || p). Checked for a
Gaussian encoder and for the noise-basis encoder (the authors' full0_ac) with either moment estimate."""

import math

import pytest
import torch
from torch import nn

from vae_models import build_model
from vae_models.avb import VARIANCE_FLOOR
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
    """With adaptive contrast, T separates z~ = (z - mean) / std from N(0, I) samples (Sec. 4): the codes it is
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


def linear_basis_avb(basis_moments):
    """A noise-basis AVB (adaptive contrast) whose basis MLPs work where elu is the identity (first-layer biases
    +30, small weights), so v_i(eps_i) = eps_i A_i + c_i with A_i = W1_i W2_i, c_i = b1_i W2_i + b2_i and
    q(z|x) = N(z0 + sum_i a_i c_i, sum_i diag(a_i) A_i^T A_i diag(a_i)): a full-covariance Gaussian, known exactly."""
    torch.manual_seed(0)
    model = build_model("avb", hidden_dims=[8], latent_dim=LATENT, noise_dim=2, num_basis=4, basis_hidden_dims=[5],
                        encoder_type="noise_basis", adaptive_contrast=True, basis_moments=basis_moments,
                        moment_samples=64, discriminator_hidden_dims=[8])
    w1, w2 = model.encoder.weights
    b1, b2 = model.encoder.biases
    with torch.no_grad():
        w1.mul_(0.1)
        b1.fill_(30.0)
        b2.copy_(torch.randn(b2.shape))
        model.encoder.scales.bias.fill_(5.0)  # a_i(x) = elu(l_i(x)) + 1 of order one

    def exact(x):
        z0, a = model.encoder.coefficients(x)  # (B, d), (m, B, d)
        A, c = w1 @ w2, (b1 @ w2 + b2)[:, 0]  # (m, noise_dim, d), (m, d)
        mean = z0 + (a * c[:, None]).sum(0)
        cov = sum(torch.diag_embed(a[i]) @ (A[i].T @ A[i]) @ torch.diag_embed(a[i]) for i in range(len(A)))
        return torch.distributions.MultivariateNormal(mean, cov)

    return model, exact


class ExactBasisContrastRatio(nn.Module):
    """T*(x, z~) = log q~(z~|x) - log N(z~; 0, I) for z~ = (z - m) / s: q~(z~) = q(m + s z~) prod(s), with (m, s)
    the moments the model last used (set by the caller) and q the exact Gaussian of `linear_basis_avb`."""

    def __init__(self, exact):
        super().__init__()
        self.exact, self.moments = exact, None

    def forward(self, x, z_tilde):
        m, s = self.moments
        return self.exact(x).log_prob(m + s * z_tilde) + s.log().sum(1) - log_normal(z_tilde)


@pytest.mark.parametrize("basis_moments", ["fresh", "batch"])
def test_noise_basis_contrast_kl_is_the_exact_log_ratio_per_sample(basis_moments):
    """With T at its optimum, the generator's KL estimate T(x, z~) + log r_alpha(z|x) - log p(z) is exactly
    log q(z|x) - log p(z) for each z, with r_alpha from fresh basis draws or from the batch's own draws, and its
    average over draws is the closed-form KL of the full-covariance Gaussian q(z|x) to N(0, I)."""
    model, exact = linear_basis_avb(basis_moments)
    model.discriminator = T = ExactBasisContrastRatio(exact)
    if basis_moments == "batch":
        sample_with_moments = model.encoder.sample_with_moments

        def record(x, eps):
            z, mean, var = sample_with_moments(x, eps)
            T.moments = mean.detach(), (var.detach() + VARIANCE_FLOOR).sqrt()
            return z, mean, var

        model.encoder.sample_with_moments = record
    else:
        moments = model.moments

        def record(x, k):
            T.moments = moments(x, k)
            return T.moments

        model.moments = record
    captured = []
    decoder_logits = model.decoder_logits
    model.decoder_logits = lambda z, labels=None: captured.append(z) or decoder_logits(z)
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0)).pow(2)
    with torch.no_grad():
        q = exact(x)
        kls = []
        for _ in range(300):
            _, kl = model.loss_terms(x)
            z = captured[-1]
            torch.testing.assert_close(kl, q.log_prob(z) - log_normal(z), rtol=1e-4, atol=2e-3)
            kls.append(kl)
    kls = torch.stack(kls)
    cov, mean = q.covariance_matrix, q.mean
    closed_form = 0.5 * (cov.diagonal(dim1=1, dim2=2).sum(1) + mean.pow(2).sum(1) - LATENT - cov.logdet())
    spread = kls.std(0) / math.sqrt(len(kls))
    assert (kls.mean(0) - closed_form).abs().max() < (4 * spread).max() + 1e-3, (kls.mean(0), closed_form)
    assert (closed_form > 0.5).all()  # q is far from the prior: the check has something to find


def test_noise_basis_draws_have_the_mean_and_covariance_of_the_formula():
    """z = z0 + sum_i a_i v_i with linear v_i: the draws' mean is z0 + sum_i a_i c_i and their covariance
    sum_i diag(a_i) A_i^T A_i diag(a_i) (off-diagonal terms included); the encoder's moments (fresh basis draws)
    are that mean and that covariance's diagonal, and posterior_gaussian is (mean, log of the floored variance)."""
    model, exact = linear_basis_avb("fresh")
    model.encoder.moment_samples = 40_000
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1)).pow(2)
    with torch.no_grad():
        q = exact(x)
        draws = model.posterior_samples(x, 40_000)  # (k, B, d)
        mean, var = model.encoder.moments(x)
        gaussian_mean, logvar = model.posterior_gaussian(x)
    scale = q.covariance_matrix.diagonal(dim1=1, dim2=2).sqrt()
    torch.testing.assert_close(draws.mean(0), q.mean, atol=0.03 * scale.max().item(), rtol=0)
    for b in range(2):
        torch.testing.assert_close(draws[:, b].T.cov(), q.covariance_matrix[b], atol=0.03 * scale[b].max() ** 2, rtol=0)
    assert (q.covariance_matrix[:, 0, 1].abs() > 0.1 * scale[:, 0] * scale[:, 1]).all()  # correlated: a real check
    torch.testing.assert_close(mean, q.mean, atol=0.03 * scale.max().item(), rtol=0)
    torch.testing.assert_close(var, scale.pow(2), rtol=0.03, atol=0)
    torch.testing.assert_close(gaussian_mean, mean, rtol=0, atol=0.03 * scale.max().item())
    torch.testing.assert_close(logvar, (var + VARIANCE_FLOOR).log(), rtol=0, atol=0.05)

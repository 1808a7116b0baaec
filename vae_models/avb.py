"""Adversarial Variational Bayes (Mescheder, Nowozin & Geiger 2017, "Adversarial Variational Bayes: Unifying
Variational Autoencoders and Generative Adversarial Networks").

The posterior is implicit: z = f(x, eps), eps ~ N(0, I) fed to the encoder beside the image, so q(z|x) can take
any shape but has no density to put in the KL term of the ELBO. A discriminator T(x, z) learns the missing
log-density ratio instead. It is trained with the logistic loss of eq. 3.3,

    max_T  E_pD(x) E_q(z|x) log sigmoid(T(x, z))  +  E_pD(x) E_p(z) log(1 - sigmoid(T(x, z))),

whose optimum is T*(x, z) = log q(z|x) - log p(z) (Proposition 1, eq. 3.4). With T in place of the KL the
encoder/decoder minimise the negated eq. 3.7 objective,

    loss = E_pD(x) E_eps[ T(x, z) - log p(x|z) ],    z = f(x, eps),

(Proposition 2: the gradient through T's own dependence on the encoder vanishes in expectation, so T is used as a
fixed function of (x, z) here and gradients flow only through z.)

Adaptive contrast (Sec. 3.3): T struggles when q(z|x) and p(z) barely overlap, so T instead compares q with an
auxiliary Gaussian r_alpha(z|x) = N(mu(x), sigma(x)^2) that matches q's first two moments (estimated from several
noise draws per x). Sec. 3.3 rewrites the bound as
    log p(x) >= -KL(q(z|x) || r_alpha(z|x)) + E_q[ -log r_alpha(z|x) + log p(x, z) ],
and KL(q || r_alpha) equals the KL of the normalised z~ = (z - mu) / sigma to N(0, I), which T estimates by
separating z~ from N(0, I) samples. The generator loss becomes E[ T(x, z~) + log r_alpha(z|x) - log p(z) - log p(x|z) ].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import EncoderOutput, LossOutput, VAEFamilyModel
from .blocks import LIKELIHOODS, NUM_PIXELS, ConfigError, Decoder, Encoder, ModelConfig, log_normal, mlp


@dataclass
class AVBConfig(ModelConfig):
    model_type: str = "avb"
    likelihood: str = "bernoulli"  # bernoulli (binarised data), continuous_bernoulli or gaussian (grey levels)
    gaussian_std: float = 0.1  # fixed pixel std of the gaussian likelihood; unused otherwise
    noise_dim: int = 16  # dimension of the noise eps fed to the encoder beside x (what makes q(z|x) implicit)
    discriminator_hidden_dims: tuple[int, ...] = (512, 256)  # widths of T(x, z)'s MLP over [flattened x, z]
    adaptive_contrast: bool = False  # compare q(z|x) with a moment-matched Gaussian r_alpha (Sec. 3.3), not p(z)
    contrast_samples: int = 8  # noise draws per x that estimate r_alpha's mean and std (adaptive contrast only)
    proposal_samples: int = 64  # draws per x that fit the Gaussian proposal of the IWAE bound and the reconstruction

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_choice("likelihood", LIKELIHOODS)
        if self.gaussian_std <= 0:
            raise ConfigError(f"gaussian_std must be > 0, got {self.gaussian_std}")
        if self.noise_dim < 1:
            raise ConfigError(f"noise_dim must be >= 1, got {self.noise_dim}")
        if not self.discriminator_hidden_dims or min(self.discriminator_hidden_dims) < 1:
            raise ConfigError(f"discriminator_hidden_dims must be positive, got {self.discriminator_hidden_dims}")
        if self.contrast_samples < 2 or self.proposal_samples < 2:
            raise ConfigError("contrast_samples and proposal_samples must be >= 2 (a std needs two draws)")


class JointDiscriminator(nn.Module):
    """T(x, z): an MLP over [flattened x, z] returning one logit per pair, shape (B,)."""

    def __init__(self, x_features: int, z_features: int, hidden_dims: tuple[int, ...], activation: str):
        super().__init__()
        self.net = mlp(x_features + z_features, hidden_dims, 1, activation)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        return self.net(torch.cat([x.flatten(1), z], dim=1)).squeeze(1)


def avb_discriminator_loss(T: Callable[[Tensor, Tensor], Tensor], x: Tensor, z_q: Tensor, z_p: Tensor) -> LossOutput:
    """The negated logistic objective of eq. 3.3, averaged over the batch: pairs (x, z_q), z_q ~ q(z|x), are labelled
    1 and pairs (x, z_p), z_p ~ p(z), labelled 0. -log sigmoid(t) = softplus(-t), -log(1 - sigmoid(t)) = softplus(t).
    Its minimiser is T*(x, z) = log q(z|x) - log p(z) (Proposition 1, eq. 3.4)."""
    posterior = F.softplus(-T(x, z_q)).mean()
    prior = F.softplus(T(x, z_p)).mean()
    return LossOutput(posterior + prior, {"posterior_pairs": posterior, "prior_pairs": prior})


class AVB(VAEFamilyModel):
    config_class = AVBConfig
    needs_ais = True
    is_adversarial = True

    def __init__(self, config: AVBConfig):
        super().__init__(config)
        self.encoder = Encoder(config, config.latent_dim, extra_features=config.noise_dim)
        self.decoder = Decoder(config, config.latent_dim)
        self.discriminator = JointDiscriminator(NUM_PIXELS, config.latent_dim, config.discriminator_hidden_dims,
                                                config.activation)

    # -- the implicit posterior -------------------------------------------------------------------------------
    def posterior_samples(self, x: Tensor, k: int) -> Tensor:
        """k draws z = f(x, eps) per image, shape (k, B, latent_dim), in one batched encoder pass."""
        b = x.shape[0]
        eps = torch.randn(k * b, self.config.noise_dim, device=x.device)
        return self.encoder(x.repeat(k, 1, 1, 1), eps).view(k, b, -1)

    def encode(self, x: Tensor, labels: Tensor | None = None) -> EncoderOutput:
        """One sample of the implicit q(z|x); there is no mean/logvar to report."""
        return EncoderOutput(z=self.posterior_samples(x, 1)[0])

    def decoder_logits(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.decoder(z)

    def reconstruct(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Decodes the posterior mean, estimated from `proposal_samples` draws of f(x, eps) (not eps = 0: the code of
        zero noise need not be typical of a non-Gaussian q(z|x), while its mean is the usual VAE choice)."""
        return self.decode(self.posterior_samples(x, self.config.proposal_samples).mean(0))

    def moments(self, x: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """Mean and std of q(z|x) per image from k draws: r_alpha's parameters (detached: for any fixed r_alpha the
        Sec. 3.3 identity holds, and T(x, z~) + log r_alpha(z|x) then has the gradient of log q(z|x) in z)."""
        with torch.no_grad():
            draws = self.posterior_samples(x, k)
            return draws.mean(0), (draws.var(0) + 1e-6).sqrt()

    # -- the two players ------------------------------------------------------------------------------------------
    def discriminator_loss(self, batch) -> LossOutput:
        x, _ = batch
        with torch.no_grad():
            z_q = self.encode(x).z
            if self.config.adaptive_contrast:  # T sees the normalised z~, and N(0, I) stands in for p(z)
                mean, std = self.moments(x, self.config.contrast_samples)
                z_q = (z_q - mean) / std
        return avb_discriminator_loss(self.discriminator, x, z_q, torch.randn_like(z_q))

    def loss(self, batch) -> LossOutput:
        x, _ = batch
        z = self.encode(x).z
        reconstruction = -self.log_likelihood(self.decoder_logits(z), x)
        if self.config.adaptive_contrast:
            mean, std = self.moments(x, self.config.contrast_samples)
            contrast = self.discriminator(x, (z - mean) / std)  # estimates log q(z|x) - log r_alpha(z|x)
            kl = contrast + log_normal(z, mean, 2 * std.log()) - log_normal(z)
        else:
            kl = self.discriminator(x, z)  # estimates log q(z|x) - log p(z)
        # kl_estimate: the mean of T (plus the explicit r_alpha terms under adaptive contrast) estimates
        # KL(q(z|x) || p(z)), which is >= 0 in expectation although single values of T can be negative.
        reconstruction, kl = reconstruction.mean(), kl.mean()
        return LossOutput(reconstruction + kl, {"reconstruction": reconstruction, "kl_estimate": kl})

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.encoder.parameters()
        yield from self.decoder.parameters()

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        return self.discriminator.parameters()

    # -- test log-likelihood --------------------------------------------------------------------------------------
    def log_importance_weights(self, x: Tensor, num_samples: int, labels: Tensor | None = None,
                               proposal_samples: int | None = None) -> Tensor:
        """log w_i = log p(x|z_i) + log p(z_i) - log g(z_i|x), z_i ~ g, shape (num_samples, B).

        q(z|x) has no density, so the proposal g is a diagonal Gaussian fitted per image to `proposal_samples`
        draws of f(x, eps). E_g[w] = p(x) for ANY proposal whose support covers the posterior (a Gaussian does), so
        logsumexp(log w) - log k is still a stochastic lower bound on log p(x) (Burda et al. 2015, eq. 8); a poor
        fit only loosens it. The std is widened by a small floor so that a collapsed dimension cannot break it."""
        m = proposal_samples or self.config.proposal_samples
        mean, std = self.moments(x, m)
        std = std.clamp_min(1e-3)
        z = mean + std * torch.randn(num_samples, *mean.shape, device=x.device)
        b, d = mean.shape
        logits = self.decoder_logits(z.reshape(num_samples * b, d))
        log_px = self.log_likelihood(logits, x.repeat(num_samples, 1, 1, 1)).view(num_samples, b)
        return log_px + log_normal(z) - log_normal(z, mean, 2 * std.log())

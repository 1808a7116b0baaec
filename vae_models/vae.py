"""Variational autoencoder (Kingma & Welling 2013, "Auto-Encoding Variational Bayes").

Objective (negative of the SGVB estimator, eq. 10, with the KL term in closed form, Appendix B):

    loss = E_q(z|x)[ -log p(x|z) ]  +  beta * KL( q(z|x) || N(0, I) ),    q(z|x) = N(mu(x), diag sigma^2(x))

with one reparameterised sample of z per image; beta = 1 is the ELBO (beta != 1 is Higgins et al. 2017's
beta-VAE and no longer a bound). `log_importance_weights` gives the k-sample bound of Burda et al. 2015 (eq. 8)
used for test log-likelihoods.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import EncoderOutput, LossOutput, VAEFamilyModel
from .blocks import ConfigError, Decoder, Encoder, PixelLikelihoodConfig, kl_standard_normal, log_normal, reparameterize
from .registry import ModelSpec, Paper, register_model


@dataclass
class VAEConfig(PixelLikelihoodConfig):
    model_type: str = "vae"
    beta: float = 1.0  # weight of the KL term; 1.0 is the true ELBO

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta < 0:
            raise ConfigError(f"beta must be >= 0, got {self.beta}")


class GaussianProposalMixin:
    """The importance weights log p(x, z) - log g(z|x), z ~ g, of the IWAE bound (Burda et al. 2015, eq. 8) for any
    model whose `posterior_gaussian(x, labels)` returns (mean, logvar), each (B, latent_dim), of a normalised
    diagonal Gaussian g(z|x) near its posterior: q(z|x) itself for the Gaussian encoders (GaussianEncoderMixin), a
    Gaussian moment-matched to an implicit q(z|x) for AVB. The same g is where AIS may start its chains
    (`vae_models.ais`, start="posterior")."""

    # Decoded samples per step of log_importance_weights: a (1024, 784) block of logits (3 MB) is still in cache
    # for the likelihood passes that follow the decoder matmul. Same samples, same result for any value; the
    # measurements that chose it are in benchmarks/README.md.
    ROWS_PER_STEP = 1024

    def log_importance_weights(self, x: Tensor, num_samples: int, labels: Tensor | None = None) -> Tensor:
        """log w_i = log p(x|z_i) + log p(z_i) - log g(z_i|x), z_i ~ g(z|x); shape (num_samples, B)."""
        mean, logvar = self.posterior_gaussian(x, labels)
        b, d = mean.shape
        z = mean + (0.5 * logvar).exp() * torch.randn(num_samples, b, d, device=x.device)
        steps = z.split(max(1, self.ROWS_PER_STEP // b))
        log_px = torch.cat([self.sample_log_likelihood(x, part, labels) for part in steps])
        return log_px + log_normal(z) - log_normal(z, mean, logvar)

    def sample_log_likelihood(self, x: Tensor, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """log p(x|z) for k latent samples of each of the B images: z (k, B, d) -> (k, B)."""
        k, b, d = z.shape
        rep = lambda t: None if t is None else t.repeat(k, *([1] * (t.dim() - 1)))  # noqa: E731
        logits = self.decoder_logits(z.reshape(k * b, d), rep(labels))
        if self.config.pixel_likelihood.binary and type(self).log_likelihood is VAEFamilyModel.log_likelihood:
            # The Bernoulli sum of pixel_log_likelihood, sum_p x_p l_p - softplus(l_p), without repeating x k times:
            # sum_p x_p l_p is one matrix-vector product per image, so the logits are read twice instead of four
            # times. softplus(l) < 2.1e-9 below l = -20, so clamping there moves an image's sum by < 1.7e-6 nats
            # (under float32 resolution at these magnitudes) and keeps log1p off arguments whose polynomial terms
            # are denormal floats (a trained decoder's background logits, -30 to -100; see benchmarks/README.md).
            logits = logits.view(k, b, -1)
            return torch.einsum("kbp,bp->kb", logits, x.flatten(1)) - F.softplus(logits.clamp_min(-20)).sum(-1)
        return self.log_likelihood(logits, rep(x)).view(k, b)


class GaussianEncoderMixin(GaussianProposalMixin):
    """Shared by the Gaussian-posterior models (VAE, DVAE, CVAE): encode, the per-image ELBO parts, the training loss
    on the bound, and q(z|x) as the proposal of the importance weights."""

    def encode(self, x: Tensor, labels: Tensor | None = None) -> EncoderOutput:
        mean, logvar = self.encoder(x, self.condition(labels)).chunk(2, dim=1)
        return EncoderOutput(z=reparameterize(mean, logvar), mean=mean, logvar=logvar)

    def condition(self, labels: Tensor | None) -> Tensor | None:
        return None

    def decoder_logits(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        c = self.condition(labels)
        return self.decoder(z if c is None else torch.cat([z, c], dim=1))

    def elbo_terms(self, encoder_input: Tensor, target: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor]:
        """(-log p(target|z), KL(q(z|encoder_input)||p(z))) per image, z a single reparameterised sample."""
        enc = self.encode(encoder_input, labels)
        reconstruction = -self.log_likelihood(self.decoder_logits(enc.z, labels), target)
        return reconstruction, kl_standard_normal(enc.mean, enc.logvar)

    def elbo(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Per-image ELBO log p(x|z) - KL(q(z|x) || N(0, I)) with the KL in closed form (Kingma & Welling 2013,
        eq. 10 and Appendix B), one reparameterised z; (B,) in nats."""
        reconstruction, kl = self.elbo_terms(x, x, labels)
        return -(reconstruction + kl)

    def negative_elbo(self, encoder_input: Tensor, target: Tensor, labels: Tensor | None = None) -> LossOutput:
        """The training loss: batch mean of -log p(target|z) + beta KL(q(z|encoder_input) || p(z)), the negated
        bound of Kingma & Welling 2013, eq. 10 (beta = 1; Higgins et al. 2017's beta-VAE otherwise). The VAE scores
        x from x, the DVAE x from its corruption, the CVAE x given its label (Sohn et al. 2015, eq. 4)."""
        reconstruction, kl = self.elbo_terms(encoder_input, target, labels)
        reconstruction, kl = reconstruction.mean(), kl.mean()
        return LossOutput(reconstruction + self.config.beta * kl, {"reconstruction": reconstruction, "kl": kl})

    def posterior_gaussian(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """q(z|x)'s own mean and log-variance."""
        enc = self.encode(x, labels)
        return enc.mean, enc.logvar


@register_model
class VAE(GaussianEncoderMixin, VAEFamilyModel):
    config_class = VAEConfig
    spec = ModelSpec(
        name="vae",
        description="a variational autoencoder trained on the evidence lower bound",
        paper=Paper("Auto-Encoding Variational Bayes", "Kingma & Welling", 2013, arxiv="1312.6114"),
        likelihood="bound",
        prior_matched=True,
        denoising=True,
        needs_ais=True,  # the plain-VAE baseline of the denoising comparison
    )

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        self.encoder = Encoder(config, 2 * config.latent_dim)
        self.decoder = Decoder(config, config.latent_dim)

    def loss(self, batch) -> LossOutput:
        x, _ = batch
        return self.negative_elbo(x, x)

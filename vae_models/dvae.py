"""Denoising variational autoencoder (Im, Ahn, Memisevic & Bengio 2017, "Denoising Criterion for Variational
Auto-Encoding Framework", AAAI; arXiv:1511.06406).

A corruption p(x~|x) (see `corruption.py`) is applied to the encoder's input only; the decoder still has to explain
the CLEAN image. The objective is the denoising variational lower bound of their Section 3,

    L_dvae(x) = E_{p(x~|x)} E_{q(z|x~)} [ log p(x|z) + log p(z) - log q(z|x~) ],

which they show satisfies log p(x) >= L_dvae (the encoder marginalised over the noise, q~(z|x) = E_{p(x~|x)} q(z|x~),
is a richer posterior family than q(z|x)). We minimise its one-sample Monte Carlo estimate, one corruption and one
reparameterised z per image per step, with the KL to N(0, I) in closed form:

    loss = -log p(x | z) + beta * KL( q(z|x~) || N(0, I) ),    x~ ~ p(x~|x),  z ~ q(z|x~)

(beta = 1 is the bound). `reconstruct(x)` is the denoiser: it encodes its input as given (already corrupted by the
caller) and decodes the posterior mean. `log_importance_weights` (from the mixin) uses q(z|x) on clean x as the
proposal, which is still a valid importance-sampling estimate of log p(x) for test likelihoods.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import LossOutput
from .blocks import ConfigError
from .corruption import check_corruption, corrupt
from .registry import ModelSpec, Paper, register_model
from .vae import VAE, VAEConfig


@dataclass
class DVAEConfig(VAEConfig):
    model_type: str = "dvae"
    corruption: str = "salt_and_pepper"  # p(x~|x): "salt_and_pepper" (the paper's MNIST choice), "gaussian" or "block"
    noise_level: float = 0.2  # salt_and_pepper: share of pixels set to 0/1; gaussian: noise std; block: side fraction

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            check_corruption(self.corruption, self.noise_level)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc


@register_model
class DVAE(VAE):
    config_class = DVAEConfig
    spec = ModelSpec(
        name="dvae",
        description="a denoising variational autoencoder trained on corrupted inputs",
        paper=Paper("Denoising Criterion for Variational Auto-Encoding Framework", "Im, Ahn, Memisevic & Bengio",
                    2015, arxiv="1511.06406"),
        likelihood="bound",
        prior_matched=True,
        denoising=True,
        needs_ais=True,
        baseline="vae",  # the same VAE trained on clean inputs: the app compares how the two clean a corrupted digit
    )

    def corrupt(self, x, generator=None):
        """x~ ~ p(x~|x) with this model's corruption."""
        return corrupt(x, self.config.corruption, self.config.noise_level, generator)

    def loss(self, batch) -> LossOutput:
        x, _ = batch
        # Encode the corrupted image, score the reconstruction against the clean one: the denoising criterion.
        return self.negative_elbo(self.corrupt(x), x)

"""Deterministic autoencoder: the baseline of the AE-vs-VAE argument.

Objective: reconstruction only, loss = -log p(x | z = f(x)) summed over pixels (cross-entropy for Bernoulli
pixels). Nothing shapes the code space, so an AE has no prior to sample from: `sample` decodes N(0, I) codes,
which is exactly what shows why an AE is not a generative model (holes between the codes of training digits).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import EncoderOutput, LossOutput, VAEFamilyModel
from .blocks import Decoder, Encoder, PixelLikelihoodConfig
from .registry import ModelSpec, Paper, register_model


@dataclass
class AEConfig(PixelLikelihoodConfig):  # its pixel likelihood is the reconstruction loss
    model_type: str = "ae"


@register_model
class AE(VAEFamilyModel):
    config_class = AEConfig
    spec = ModelSpec(
        name="ae",
        description="a deterministic autoencoder, the baseline that shows why an autoencoder is not a generative model",
        paper=Paper("Reducing the Dimensionality of Data with Neural Networks", "Hinton & Salakhutdinov", 2006,
                    venue="Science"),
        kind="generative",  # `sample` decodes N(0, I) codes: shown for contrast, there is no trained prior
        likelihood="none",
    )

    def __init__(self, config: AEConfig):
        super().__init__(config)
        self.encoder = Encoder(config, config.latent_dim)
        self.decoder = Decoder(config, config.latent_dim)

    def encode(self, x: Tensor, labels: Tensor | None = None) -> EncoderOutput:
        return EncoderOutput(z=self.encoder(x))

    def decoder_logits(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.decoder(z)

    def loss(self, batch) -> LossOutput:
        x, _ = batch
        reconstruction = -self.log_likelihood(self.decoder_logits(self.encode(x).z), x).mean()
        return LossOutput(reconstruction, {"reconstruction": reconstruction})

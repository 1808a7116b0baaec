"""Label-conditional VAE: q(z|x,c) and p(x|z,c) with c the one-hot digit label.

This is the conditional VAE of Sohn, Lee & Yan 2015 ("Learning Structured Output Representation using Deep
Conditional Generative Models", eq. 4) with the condition c = the label, the output = the image and the prior
p(z|c) fixed to N(0, I); equivalently the labelled bound of Kingma, Rezende, Mohamed & Welling 2014 ("Semi-supervised
Learning with Deep Generative Models", model M2, eq. 6) without its constant log p(y):

    log p(x|c) >= E_q(z|x,c)[ log p(x|z,c) ] - KL( q(z|x,c) || N(0, I) )

loss = the negative bound, one reparameterised z per image, KL in closed form; beta scales the KL as in the VAE.
Because z need not carry the digit's identity, it is free to encode its style: decoding one image's code with
every label gives "the same handwriting, all ten digits" (`same_style_all_digits`).
`log_importance_weights(x, k, labels)` gives the k-sample bound on log p(x|c) (Burda et al. 2015, eq. 8).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import LossOutput, VAEFamilyModel
from .blocks import ConfigError, Decoder, Encoder, one_hot
from .registry import SOHN_2015, ModelSpec, register_model
from .vae import GaussianEncoderMixin, VAEConfig


@dataclass
class CVAEConfig(VAEConfig):
    model_type: str = "cvae"
    num_classes: int = 10  # size of the one-hot condition (10 digits / Fashion-MNIST classes)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_classes < 2:
            raise ConfigError(f"num_classes must be >= 2, got {self.num_classes}")


@register_model
class CVAE(GaussianEncoderMixin, VAEFamilyModel):
    config_class = CVAEConfig
    spec = ModelSpec(
        name="cvae",
        description="a label-conditional variational autoencoder: q(z|x,c) and p(x|z,c) with c the digit",
        paper=SOHN_2015,
        label_conditional=True,
        likelihood="bound",  # on log p(x|c)
        needs_ais=True,
    )

    def __init__(self, config: CVAEConfig):
        super().__init__(config)
        self.encoder = Encoder(config, 2 * config.latent_dim, extra_features=config.num_classes)
        self.decoder = Decoder(config, config.latent_dim + config.num_classes)

    def check_labels(self, labels, n: int | None = None) -> Tensor:
        """labels as an int64 tensor on the model's device, or a ValueError saying what is wrong with them."""
        k = self.config.num_classes
        if labels is None:
            raise ValueError(f"CVAE is label-conditional: pass labels (integers in 0..{k - 1}), one per image")
        labels = torch.as_tensor(labels)
        if labels.dim() == 0:
            labels = labels.reshape(1)
        if labels.dim() != 1 or labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise ValueError(f"labels must be a 1-D sequence of integers, got {labels.dtype} of shape "
                             f"{tuple(labels.shape)}")
        if n is not None and len(labels) != n:
            raise ValueError(f"need one label per image: got {len(labels)} labels for {n} images")
        if len(labels) and (labels.min() < 0 or labels.max() >= k):
            low, high = labels.min().item(), labels.max().item()
            raise ValueError(f"labels must be in 0..{k - 1}, got values in {low}..{high}")
        return labels.long().to(self.device)

    def condition(self, labels) -> Tensor:
        return one_hot(self.check_labels(labels), self.config.num_classes)

    def encode(self, x: Tensor, labels=None):
        return super().encode(x, self.check_labels(labels, len(x)))

    def decoder_logits(self, z: Tensor, labels=None) -> Tensor:
        return super().decoder_logits(z, self.check_labels(labels, len(z)))

    def loss(self, batch) -> LossOutput:
        x, labels = batch
        return self.negative_elbo(x, x, labels)

    @torch.no_grad()
    def sample(self, n: int, labels=None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        """n images of the requested digits: labels[i] is the digit of image i (n labels, each in 0..num_classes-1)."""
        labels = self.check_labels(labels, n)
        return self.decode(self.prior_sample(n, generator) * temperature, labels)

    @torch.no_grad()
    def same_style_all_digits(self, image: Tensor, label: int) -> Tensor:
        """Encode one image with its label (or any label the caller chooses) and decode the posterior mean z with
        every label: (num_classes, 1, 28, 28), row d is digit d written in the image's style."""
        if image.dim() == 3:
            image = image.unsqueeze(0)
        if image.shape[0] != 1:
            raise ValueError(f"same_style_all_digits takes one image, got a batch of {image.shape[0]}")
        z = self.encode(image.to(self.device), self.check_labels([label], 1)).mean
        k = self.config.num_classes
        return self.decode(z.expand(k, -1), torch.arange(k, device=self.device))

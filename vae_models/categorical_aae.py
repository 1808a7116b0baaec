"""The categorical adversarial autoencoder (Makhzani et al. 2015, Fig. 8): clustering (Sec. 6) and semi-supervised
classification (Sec. 5).

The encoder has two heads: y = q(y|x), a softmax over K clusters, and a style code z (deterministic). The decoder
reconstructs x from (y, z). Two adversaries shape the aggregated posterior (Sec. 2, eq. 1, once per code):

    D_y(y) tells one-hot draws from Cat(K) (uniform) apart from the encoder's y, and
    D_z(z) tells draws from N(0, I) apart from the encoder's z.

The paper trains in phases on every minibatch: reconstruction (encoder and decoder minimise -log p(x|y, z)),
regularisation (each D minimises -[log D(prior draw) + log(1 - D(code))], then the encoder, the generator of both
codes, fools them) and, when labels are given, semi-supervised classification (the encoder's q(y|x) minimises the
cross-entropy on a labelled minibatch). With no labels the model is the clustering AAE of Sec. 6; with K = 10 and
labels it is the semi-supervised AAE of Sec. 5, whose cluster index is the digit.

The trainer runs the phases as separate optimiser steps, in this order: D_y and D_z together
(`discriminator_loss`), the reconstruction (`loss`: -log p(x|y, z), + classification_weight * cross-entropy on the
labelled minibatch), and, with `regularisation_phase`, the encoder's regularisation step (`regularisation_loss`:
adversarial_weight * (-log D_y(y) - log D_z(z)), the non-saturating generator loss of Goodfellow et al. 2014, Sec.
3). Without it the adversarial terms join `loss` in one Adam step, as aae.py does; the reconstruction's hundreds of
nats then dominate that step and the clusters do not fill (measured: benchmarks/README.md). The paper uses SGD with
momentum per phase; we use Adam per phase. The labelled minibatch is `loss`'s `labelled` argument (the trainer draws
it from the labelled digits, `TrainConfig.labelled_examples`); the unlabelled batch's labels are never read.

Why the y adversary fills every cluster: at its optimum D_y(e_k) = p_k / (p_k + q_k) (Goodfellow et al. 2014,
Prop. 1), so -log D_y(e_k) = log(1 + q_k / p_k) grows with cluster k's mass q_k, and the encoder moves digits out
of over-full clusters until every q_k = p_k = 1/K. tests/test_categorical_aae.py checks this with exact marginals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import EncoderOutput, LossOutput, VAEFamilyModel
from .blocks import ConfigError, Decoder, Encoder, PixelLikelihoodConfig, mlp, one_hot
from .registry import MAKHZANI_2015, ModelSpec, register_model

NUM_CLASSES = 10  # digits: a semi-supervised model has one cluster per class
# The plane picture of a 2-D style (Sec. 7, "dimensionality reduction": a cluster head per cluster plus the style):
# here the heads are fixed, evenly on a circle, not learned as in the paper.
PLANE_RADIUS = 4.0  # the heads' circle
PLANE_STYLE_SCALE = 0.5  # the style's share of the picture: N(0, I) styles spread 0.5 around their head


@dataclass
class CategoricalAAEConfig(PixelLikelihoodConfig):
    model_type: str = "categorical_aae"
    hidden_dims: tuple[int, ...] = (1000, 1000)  # encoder widths (the decoder mirrors them); the paper's Sec. 5 nets
    latent_dim: int = 10  # dimension of the style code z (the paper: 10 for semi-supervised MNIST, 5 for clustering)
    num_clusters: int = 16  # K, the categories of y; a semi-supervised model needs one per digit (10)
    semi_supervised: bool = False  # the classification phase: q(y|x) learns the labels of a labelled minibatch
    adversarial_weight: float = 1.0  # weight of the encoder's two adversarial terms in the generator loss (with
    #   regularisation_phase they are that phase's whole loss, stepped by its own Adam, which a loss's scale does
    #   not change up to Adam's epsilon: so the weight matters only without that phase)
    classification_weight: float = 1.0  # weight of the labelled minibatch's cross-entropy (semi_supervised only)
    discriminator_hidden_dims: tuple[int, ...] = (1000, 1000)  # widths of each adversary's MLP (D_y and D_z)
    regularisation_phase: bool = True  # the paper's separate regularisation step: the encoder fools both adversaries
    #   in its own optimiser step (`regularisation_loss`); False: the adversarial terms join `loss`, one step
    cluster_noise_std: float = 0.0  # instance noise (Sonderby et al. 2016): N(0, std^2) added to both inputs of D_y,
    #   so that it compares cluster masses instead of telling soft codes from one-hot ones (0: the paper's D_y)

    @property
    def code_dim(self) -> int:
        return self.num_clusters + self.latent_dim

    @property
    def pictured_in_2d(self) -> bool:
        """A 2-D style: the plane picture of Sec. 7 (plane_codes)."""
        return self.latent_dim == 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_clusters < 2:
            raise ConfigError(f"num_clusters must be >= 2, got {self.num_clusters}")
        if self.semi_supervised and self.num_clusters != NUM_CLASSES:
            raise ConfigError(f"a semi-supervised model has one cluster per digit: num_clusters must be "
                              f"{NUM_CLASSES}, got {self.num_clusters}")
        if self.adversarial_weight < 0 or self.classification_weight < 0 or self.cluster_noise_std < 0:
            raise ConfigError("adversarial_weight, classification_weight and cluster_noise_std must be >= 0")
        if not self.discriminator_hidden_dims or min(self.discriminator_hidden_dims) < 1:
            raise ConfigError(f"discriminator_hidden_dims must be positive, got {self.discriminator_hidden_dims}")


def discriminator_value(prior_logits: Tensor, code_logits: Tensor, prior_weights: Tensor | None = None,
                        code_weights: Tensor | None = None) -> Tensor:
    """The adversary's loss -[E_p log D + E_q log(1 - D)] of eq. 1, D = sigmoid(logit). Each expectation is the
    batch mean, or, with weights (probabilities summing to one), the exact sum over the rows given.
    -log sigmoid(t) = softplus(-t), -log(1 - sigmoid(t)) = softplus(t)."""
    return expectation(F.softplus(-prior_logits), prior_weights) + expectation(F.softplus(code_logits), code_weights)


def generator_value(code_logits: Tensor, code_weights: Tensor | None = None) -> Tensor:
    """The encoder's adversarial loss E_q[-log D(code)]: the non-saturating generator loss (batch mean, or exact with
    weights as in discriminator_value)."""
    return expectation(F.softplus(-code_logits), code_weights)


def expectation(values: Tensor, weights: Tensor | None) -> Tensor:
    return values.mean() if weights is None else (values * weights).sum()


@register_model
class CategoricalAAE(VAEFamilyModel):
    config_class = CategoricalAAEConfig
    spec = ModelSpec(
        name="categorical_aae",
        description="an autoencoder with a categorical and a style code, each matched to its prior by a GAN: it "
                    "clusters digits without labels, or classifies them from a few",
        paper=MAKHZANI_2015,
        adversarial=True,
        likelihood="none",
        prior_matched=True,
        clusters=True,
        # Grey levels in, grey levels reconstructed (the Bernoulli cross-entropy of grey pixels, the usual AE
        # cost; no likelihood is claimed): the encoder is also the classifier, scored on the grey test digits.
        default_binarize="none",
    )

    def __init__(self, config: CategoricalAAEConfig):
        super().__init__(config)
        k, d = config.num_clusters, config.latent_dim
        self.encoder = Encoder(config, k + d)  # the first k outputs are the logits of q(y|x), the rest z
        self.decoder = Decoder(config, k + d)
        self.cluster_discriminator = mlp(k, config.discriminator_hidden_dims, 1, config.activation)
        self.style_discriminator = mlp(d, config.discriminator_hidden_dims, 1, config.activation)

    # -- the two codes --------------------------------------------------------------------------------------------
    @property
    def num_clusters(self) -> int:
        return self.config.num_clusters

    def split_code(self, code: Tensor) -> tuple[Tensor, Tensor]:
        """(y (B, K), z (B, d)) of a joint code (B, K + d)."""
        return code[:, :self.num_clusters], code[:, self.num_clusters:]

    def cluster_logits(self, x: Tensor) -> Tensor:
        """The logits of q(y|x) (B, K)."""
        return self.encoder(x)[:, :self.num_clusters]

    def cluster_probabilities(self, x: Tensor) -> Tensor:
        """q(y|x) (B, K): each digit's probability of each cluster (for a semi-supervised model, of each digit)."""
        return self.cluster_logits(x).softmax(1)

    def encode(self, x: Tensor, labels: Tensor | None = None) -> EncoderOutput:
        """The joint code (q(y|x), z) (B, K + d) that the decoder reads."""
        h = self.encoder(x)
        y, z = self.split_code(h)
        return EncoderOutput(z=torch.cat([y.softmax(1), z], dim=1))

    def decoder_logits(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.decoder(z)

    def prior_sample(self, n: int, generator: torch.Generator | None = None, *, labels: Tensor | None = None) -> Tensor:
        """Joint codes (one-hot y, z) (n, K + d): y uniform over the clusters, or labels[i] when given (clusters
        hold digits only in a semi-supervised model, see sample()); z ~ N(0, I)."""
        if labels is None:
            labels = torch.randint(0, self.num_clusters, (n,), generator=generator)
        labels = torch.as_tensor(labels).detach().to("cpu").long()
        if labels.shape != (n,) or labels.min() < 0 or labels.max() >= self.num_clusters:
            raise ValueError(f"labels must be {n} integers in 0..{self.num_clusters - 1}, got {labels.tolist()}")
        z = torch.randn(n, self.config.latent_dim, generator=generator)
        return torch.cat([one_hot(labels, self.num_clusters), z], dim=1).to(self.device)

    def log_prior(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        raise ValueError("the categorical AAE's prior Cat(K) x N(0, I) has no density over the joint code")

    @property
    def samples_by_label(self) -> bool:
        return self.config.semi_supervised

    @property
    def prior_name(self) -> str:
        return f"categorical({self.num_clusters}) x gaussian"

    @property
    def learns_from_labelled_batch(self) -> bool:
        return self.config.semi_supervised

    @torch.no_grad()
    def sample_codes(self, n: int, labels: Tensor | None = None, temperature: float = 1.0,
                     generator: torch.Generator | None = None) -> Tensor:
        """n prior draws (y, z), the style z scaled by temperature, which `sample` decodes. With a semi-supervised
        model labels[i] picks digit labels[i]; a clustering model's clusters hold no particular digit, so labels are
        an error."""
        if labels is not None and not self.config.semi_supervised:
            raise ValueError("this categorical AAE learnt its clusters without labels (semi_supervised=False): no "
                             "cluster holds a particular digit, so sample() takes no labels")
        code = self.prior_sample(n, generator, labels=labels)
        y, z = self.split_code(code)
        return torch.cat([y, z * temperature], dim=1)

    # -- the plane picture (a 2-D style) --------------------------------------------------------------------------
    def cluster_heads(self) -> Tensor:
        """(K, 2): cluster k's head at angle 2 pi k / K on a circle of radius PLANE_RADIUS."""
        angle = 2 * torch.pi * torch.arange(self.num_clusters, device=self.device) / self.num_clusters
        return PLANE_RADIUS * torch.stack([angle.cos(), angle.sin()], dim=1)

    def _plane(self, code: Tensor) -> Tensor:
        if self.config.latent_dim != 2:
            raise ValueError(f"the plane picture needs a 2-D style; this model's style has {self.config.latent_dim}")
        y, z = self.split_code(code)
        return y @ self.cluster_heads() + PLANE_STYLE_SCALE * z

    def plane_codes(self, x: Tensor) -> Tensor:
        """(B, 2): q(y|x)'s average cluster head plus the scaled style (an unsure digit lies between heads)."""
        return self._plane(self.encode(x).z)

    def plane_prior_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, 2): prior draws in the plane picture, a petal of N(0, I) styles around each head."""
        return self._plane(self.prior_sample(n, generator))

    @torch.no_grad()
    def decode_clusters(self, styles: Tensor) -> Tensor:
        """Every cluster decoded with each style: (K, S, 1, 28, 28) for styles (S, d) (Fig. 9's rows and columns)."""
        k, s = self.num_clusters, len(styles)
        y = torch.eye(k, device=self.device).repeat_interleave(s, dim=0)
        code = torch.cat([y, styles.to(self.device).repeat(k, 1)], dim=1)
        return self.decode(code).view(k, s, 1, 28, 28)

    # -- the two players ------------------------------------------------------------------------------------------
    def cluster_critic(self, y: Tensor) -> Tensor:
        """D_y's logit (B,) for cluster codes y (B, K), with the config's instance noise added first."""
        if self.config.cluster_noise_std > 0:
            y = y + self.config.cluster_noise_std * torch.randn_like(y)
        return self.cluster_discriminator(y).squeeze(1)

    def discriminator_loss(self, batch) -> LossOutput:
        """Both adversaries' losses (eq. 1), summed: D_y on one-hot draws of Cat(K) against q(y|x), D_z on N(0, I)
        against z."""
        x, _ = batch
        with torch.no_grad():
            y, z = self.split_code(self.encode(x).z)
        y_prior, z_prior = self.split_code(self.prior_sample(len(x)))
        clusters = discriminator_value(self.cluster_critic(y_prior), self.cluster_critic(y))
        style = discriminator_value(self.style_discriminator(z_prior).squeeze(1), self.style_discriminator(z).squeeze(1))
        return LossOutput(clusters + style, {"clusters": clusters, "style": style})

    def loss(self, batch, labelled: tuple[Tensor, Tensor] | None = None) -> LossOutput:
        """Reconstruction and both adversarial terms on the batch (its labels unread); with `labelled` (images,
        labels), the cross-entropy of q(y|x) on those digits, a semi-supervised model only."""
        x, _ = batch
        y, z = self.split_code(self.encode(x).z)
        reconstruction = -self.log_likelihood(self.decoder_logits(torch.cat([y, z], dim=1)), x).mean()
        loss, terms = reconstruction, {"reconstruction": reconstruction}
        if not self.config.regularisation_phase:
            adversarial = self.regularisation_loss(batch, code=(y, z))
            loss = loss + adversarial.loss
            terms |= adversarial.terms
        if labelled is not None:
            if not self.config.semi_supervised:
                raise ValueError("a labelled minibatch needs a semi-supervised model (semi_supervised=True)")
            images, labels = labelled
            classification = F.cross_entropy(self.cluster_logits(images), labels.long())
            loss = loss + self.config.classification_weight * classification
            terms["classification"] = classification
        return LossOutput(loss, terms)

    def regularisation_loss(self, batch, code: tuple[Tensor, Tensor] | None = None) -> LossOutput:
        """The encoder's regularisation phase: adversarial_weight * (E_q[-log D_y(y)] + E_q[-log D_z(z)]) on the
        batch (its codes `code` = (y, z) when already computed)."""
        y, z = code if code is not None else self.split_code(self.encode(batch[0]).z)
        clusters = generator_value(self.cluster_critic(y))
        style = generator_value(self.style_discriminator(z).squeeze(1))
        return LossOutput(self.config.adversarial_weight * (clusters + style),
                          {"clusters_adversarial": clusters, "style_adversarial": style})

    def regularisation_parameters(self) -> Iterator[nn.Parameter]:
        """What the separate regularisation phase trains: the encoder (nothing without that phase)."""
        return self.encoder.parameters() if self.config.regularisation_phase else iter(())

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.cluster_discriminator.parameters()
        yield from self.style_discriminator.parameters()

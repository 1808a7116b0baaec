"""Adversarial autoencoder (Makhzani, Shlens, Jaitly, Goodfellow & Frey 2015, "Adversarial Autoencoders").

An autoencoder whose aggregated posterior q(z) = E_pD(x)[q(z|x)] is pushed to a chosen prior p(z) by a GAN on the
code space (Sec. 2). Training alternates two phases:

  reconstruction phase: encoder + decoder minimise -log p(x|z), z ~ q(z|x);
  regularisation phase: the discriminator D(z) minimises -[log D(z_p) + log(1 - D(z_q))], z_p ~ p(z), z_q ~ q(z)
  (the GAN game of eq. 1), then the encoder (the generator) minimises -log D(z_q).

Here the trainer's generator step on `loss(batch)` does the reconstruction phase and the encoder's adversarial step
together: loss = -log p(x|z) + adversarial_weight * (-log D(z_q)). This is the non-saturating generator loss
(Goodfellow et al. 2014, Sec. 3) instead of minimising log(1 - D(z_q)), whose gradient vanishes while D easily
rejects the codes; the decoder gets no gradient from the adversarial term, so the sum equals the two phases.
One difference remains: the paper gives the regularisation phase its own optimiser step, while here its O(1)
gradient shares one Adam step with a reconstruction term of hundreds of nats, so the prior is matched more slowly;
raise adversarial_weight for a tighter match.

Posteriors (Sec. 2.1): deterministic z = f(x); gaussian z ~ N(mu(x), sigma(x)^2) (reparameterised); universal
approximator z = f(x, eta), eta ~ N(0, I) concatenated to the encoder input. Priors: a standard Gaussian, a mixture
of 10 2-D Gaussians on a circle, or a 2-D swiss roll (Fig. 2). With `supervised_prior` (Sec. 2.3, Fig. 4) an image
of digit k is matched to prior component (or swiss-roll segment) k and the discriminator sees the label's one-hot
beside both real and fake codes, so the label decides where its digits live in code space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import EncoderOutput, LossOutput, VAEFamilyModel
from .blocks import ConfigError, Decoder, Encoder, PixelLikelihoodConfig, mlp, one_hot, reparameterize
from .registry import MAKHZANI_2015, ModelSpec, register_model

PRIORS = ("gaussian", "mixture10", "swiss_roll")
POSTERIORS = ("deterministic", "gaussian", "universal")
NUM_COMPONENTS = 10  # one mixture component / swiss-roll segment per digit
MIXTURE_RADIUS = 4.0  # component means sit on a circle of this radius, at angles 2*pi*k/10
MIXTURE_RADIAL_STD, MIXTURE_TANGENTIAL_STD = 0.5, 0.1  # elongated radially, like the petals of Fig. 2
SWISS_ROLL_RADII = (0.5, 4.0)  # the roll's radius grows linearly from the inner to the outer end
SWISS_ROLL_TURNS = 1.5  # turns of the spiral between the two ends
SWISS_ROLL_STD = 0.05  # isotropic noise around the spiral curve


@dataclass
class AAEConfig(PixelLikelihoodConfig):
    model_type: str = "aae"
    prior: str = "gaussian"  # gaussian (N(0, I)), mixture10 or swiss_roll (both 2-D: latent_dim must be 2)
    posterior: str = "deterministic"  # deterministic, gaussian or universal (noise fed to the encoder, Sec. 2.1)
    noise_dim: int = 8  # dimension of the universal posterior's input noise; unused otherwise
    supervised_prior: bool = False  # digit k's codes go to prior component k; D also sees the one-hot label
    adversarial_weight: float = 1.0  # weight of the encoder's adversarial term -log D(z_q) in the generator loss
    discriminator_hidden_dims: tuple[int, ...] = (512, 256)  # widths of D(z)'s MLP

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_choice("prior", PRIORS)
        self.check_choice("posterior", POSTERIORS)
        if self.prior != "gaussian" and self.latent_dim != 2:
            raise ConfigError(f"prior {self.prior!r} is 2-D: it needs latent_dim=2, got latent_dim={self.latent_dim}")
        if self.supervised_prior and self.prior == "gaussian":
            raise ConfigError("supervised_prior needs a prior with one part per digit: mixture10 or swiss_roll")
        if self.adversarial_weight < 0 or self.noise_dim < 1:
            raise ConfigError("adversarial_weight must be >= 0 and noise_dim >= 1")
        if not self.discriminator_hidden_dims or min(self.discriminator_hidden_dims) < 1:
            raise ConfigError(f"discriminator_hidden_dims must be positive, got {self.discriminator_hidden_dims}")


def mixture10_sample(labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One 2-D sample per label from mixture component `label` (means on a circle of radius MIXTURE_RADIUS)."""
    angle = 2 * math.pi * labels.float() / NUM_COMPONENTS
    radial = torch.stack([angle.cos(), angle.sin()], dim=1)
    tangential = torch.stack([-angle.sin(), angle.cos()], dim=1)
    noise = torch.randn(len(labels), 2, generator=generator)
    along, across = noise[:, :1], noise[:, 1:]
    return (MIXTURE_RADIUS + MIXTURE_RADIAL_STD * along) * radial + MIXTURE_TANGENTIAL_STD * across * tangential


def swiss_roll_sample(labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One 2-D sample per label from segment `label` of a swiss roll: position t ~ U(label/10, (label+1)/10) along
    the spiral, radius and angle both linear in t, plus small isotropic noise."""
    t = (labels.float() + torch.rand(len(labels), generator=generator)) / NUM_COMPONENTS
    inner, outer = SWISS_ROLL_RADII
    radius = inner + (outer - inner) * t
    angle = 2 * math.pi * SWISS_ROLL_TURNS * t
    curve = radius[:, None] * torch.stack([angle.cos(), angle.sin()], dim=1)
    return curve + SWISS_ROLL_STD * torch.randn(len(labels), 2, generator=generator)


def mixture10_log_density(z: Tensor, labels: Tensor | None = None) -> Tensor:
    """log p(z) of the 10-component mixture that `mixture10_sample` draws from (B,), differentiable in z: each
    component is a Gaussian with mean MIXTURE_RADIUS * (cos a_k, sin a_k), std MIXTURE_RADIAL_STD along that
    direction and MIXTURE_TANGENTIAL_STD across it; the components are equally likely. With labels, the density of
    component labels[i] alone (p(z|c) of the supervised prior)."""
    angles = 2 * math.pi * torch.arange(NUM_COMPONENTS, device=z.device, dtype=z.dtype) / NUM_COMPONENTS
    radial = torch.stack([angles.cos(), angles.sin()], dim=1)  # (K, 2)
    tangential = torch.stack([-angles.sin(), angles.cos()], dim=1)
    offset = z[:, None, :] - MIXTURE_RADIUS * radial  # (B, K, 2)
    along, across = (offset * radial).sum(-1), (offset * tangential).sum(-1)
    log_norm = math.log(2 * math.pi * MIXTURE_RADIAL_STD * MIXTURE_TANGENTIAL_STD)
    per_component = -0.5 * ((along / MIXTURE_RADIAL_STD) ** 2 + (across / MIXTURE_TANGENTIAL_STD) ** 2) - log_norm
    if labels is not None:
        return per_component.gather(1, labels.long().view(-1, 1)).squeeze(1)
    return torch.logsumexp(per_component, dim=1) - math.log(NUM_COMPONENTS)


SWISS_ROLL_NODES_PER_SEGMENT = 400  # quadrature nodes in t per segment (spacing along the curve <= 0.01 = STD / 5)


def swiss_roll_curve(t: Tensor) -> Tensor:
    """The spiral's centre line at positions t in [0, 1], shape (..., 2)."""
    inner, outer = SWISS_ROLL_RADII
    radius = inner + (outer - inner) * t
    angle = 2 * math.pi * SWISS_ROLL_TURNS * t
    return radius[..., None] * torch.stack([angle.cos(), angle.sin()], dim=-1)


def swiss_roll_log_density(z: Tensor, labels: Tensor | None = None) -> Tensor:
    """log p(z) of the swiss roll that `swiss_roll_sample` draws from (B,), differentiable in z:
    p(z) = int_0^1 N(z; curve(t), SWISS_ROLL_STD^2 I) dt (t uniform, segment c: t uniform on [c/10, (c+1)/10]),
    by the midpoint rule with SWISS_ROLL_NODES_PER_SEGMENT nodes per segment. The integrand is a Gaussian bump of
    width STD along a curve whose nodes are at most STD / 5 apart, so the rule's error is negligible (the tests
    integrate the result over the plane and compare its moments with samples)."""
    m = SWISS_ROLL_NODES_PER_SEGMENT
    t = (torch.arange(NUM_COMPONENTS * m, device=z.device, dtype=z.dtype) + 0.5) / (NUM_COMPONENTS * m)
    nodes = swiss_roll_curve(t)  # (K*m, 2)
    var = SWISS_ROLL_STD ** 2
    log_kernel = -0.5 * torch.cdist(z, nodes).pow(2) / var - math.log(2 * math.pi * var)  # (B, K*m)
    if labels is not None:
        log_kernel = log_kernel.view(len(z), NUM_COMPONENTS, m)
        log_kernel = log_kernel.gather(1, labels.long().view(-1, 1, 1).expand(-1, 1, m)).squeeze(1)
    return torch.logsumexp(log_kernel, dim=1) - math.log(log_kernel.shape[1])


@register_model
class AAE(VAEFamilyModel):
    config_class = AAEConfig
    spec = ModelSpec(
        name="aae",
        description="an autoencoder whose aggregated posterior is matched to the prior by a GAN on the codes",
        paper=MAKHZANI_2015,
        adversarial=True,
        likelihood="none",
        prior_matched=True,
        needs_ais=True,
    )

    def __init__(self, config: AAEConfig):
        super().__init__(config)
        d = config.latent_dim
        universal = config.posterior == "universal"
        self.encoder = Encoder(config, 2 * d if config.posterior == "gaussian" else d,
                               extra_features=config.noise_dim if universal else 0)
        self.decoder = Decoder(config, d)
        d_in = d + (NUM_COMPONENTS if config.supervised_prior else 0)
        self.discriminator = mlp(d_in, config.discriminator_hidden_dims, 1, config.activation)

    # -- prior ----------------------------------------------------------------------------------------------------
    def prior_sample(self, n: int, generator: torch.Generator | None = None, *, labels: Tensor | None = None) -> Tensor:
        """n samples of the configured prior. With labels (n,) in 0..9, the mixture10 / swiss_roll samples come from
        component / segment labels[i]; without, the component is uniform, i.e. the prior itself."""
        prior = self.config.prior
        if labels is not None:
            if prior == "gaussian":
                raise ValueError("labels select a prior component only for the mixture10 and swiss_roll priors")
            labels = labels.detach().to("cpu").long()
            if labels.shape != (n,) or labels.min() < 0 or labels.max() >= NUM_COMPONENTS:
                raise ValueError(f"labels must be {n} integers in 0..{NUM_COMPONENTS - 1}, got {labels.tolist()}")
        if prior == "gaussian":
            z = torch.randn(n, self.config.latent_dim, generator=generator)
        else:
            if labels is None:
                labels = torch.randint(0, NUM_COMPONENTS, (n,), generator=generator)
            z = (mixture10_sample if prior == "mixture10" else swiss_roll_sample)(labels, generator)
        return z.to(self.device)

    @property
    def samples_by_label(self) -> bool:
        return self.config.supervised_prior

    @property
    def prior_name(self) -> str:
        return self.config.prior

    @property
    def prior_components(self) -> int:
        return 0 if self.config.prior == "gaussian" else NUM_COMPONENTS

    def log_prior(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """log p(z) of the configured prior (B,), differentiable in z; with labels (mixture10 / swiss_roll), the
        density of component / segment labels[i] alone."""
        prior = self.config.prior
        if prior == "gaussian":
            if labels is not None:
                raise ValueError("labels select a prior component only for the mixture10 and swiss_roll priors")
            return super().log_prior(z)
        return (mixture10_log_density if prior == "mixture10" else swiss_roll_log_density)(z, labels)

    @torch.no_grad()
    def sample_codes(self, n: int, labels: Tensor | None = None, temperature: float = 1.0,
                     generator: torch.Generator | None = None) -> Tensor:
        """n prior samples (z scaled by temperature), which `sample` decodes. With a supervised prior (Sec. 2.3,
        Fig. 4), labels[i] picks component i, which holds that digit; without label supervision, labels are an
        error: the components of an unsupervised prior hold no particular digit."""
        if labels is not None and not self.config.supervised_prior:
            raise ValueError("this AAE was trained without label supervision (supervised_prior=False): its prior's "
                             "components hold no particular digit, so sample() takes no labels")
        if labels is not None:
            labels = torch.as_tensor(labels)
        return self.prior_sample(n, generator, labels=labels) * temperature

    # -- autoencoder ----------------------------------------------------------------------------------------------
    def encode(self, x: Tensor, labels: Tensor | None = None) -> EncoderOutput:
        posterior = self.config.posterior
        if posterior == "gaussian":
            mean, logvar = self.encoder(x).chunk(2, dim=1)
            return EncoderOutput(z=reparameterize(mean, logvar), mean=mean, logvar=logvar)
        if posterior == "universal":
            return EncoderOutput(z=self.encoder(x, torch.randn(len(x), self.config.noise_dim, device=x.device)))
        return EncoderOutput(z=self.encoder(x))

    def decoder_logits(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.decoder(z)

    def reconstruct(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Decodes the posterior mean: the code itself (deterministic), mu(x) (gaussian), or for the universal
        posterior the average of 16 draws of f(x, eta)."""
        if self.config.posterior == "universal":
            return self.decode(torch.stack([self.encode(x).z for _ in range(16)]).mean(0))
        return super().reconstruct(x)

    # -- the two players ------------------------------------------------------------------------------------------
    def critic(self, z: Tensor, labels: Tensor) -> Tensor:
        """D's logit for codes z, shape (B,); with a supervised prior D also sees the labels' one-hot."""
        if self.config.supervised_prior:
            z = torch.cat([z, one_hot(labels, NUM_COMPONENTS)], dim=1)
        return self.discriminator(z).squeeze(1)

    def discriminator_loss(self, batch) -> LossOutput:
        """-[log D(z_p) + log(1 - D(z_q))] (eq. 1), averaged over the batch; z_p from the label's component under a
        supervised prior. -log sigmoid(t) = softplus(-t), -log(1 - sigmoid(t)) = softplus(t)."""
        x, labels = batch
        with torch.no_grad():
            z_q = self.encode(x).z
        z_p = self.prior_sample(len(x), labels=labels if self.config.supervised_prior else None)
        prior = F.softplus(-self.critic(z_p, labels)).mean()
        posterior = F.softplus(self.critic(z_q, labels)).mean()
        return LossOutput(prior + posterior, {"prior_codes": prior, "posterior_codes": posterior})

    def loss(self, batch) -> LossOutput:
        x, labels = batch
        z = self.encode(x).z
        reconstruction = -self.log_likelihood(self.decoder_logits(z), x).mean()
        adversarial = F.softplus(-self.critic(z, labels)).mean()  # -log D(z_q): the non-saturating form
        loss = reconstruction + self.config.adversarial_weight * adversarial
        return LossOutput(loss, {"reconstruction": reconstruction, "adversarial": adversarial})

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        return self.discriminator.parameters()

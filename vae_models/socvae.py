"""Structured-output CVAE for MNIST quadrant completion (Sohn, Lee & Yan 2015, "Learning Structured Output
Representation using Deep Conditional Generative Models", Section 5.1 / Table 1), laid out as in Pyro's CVAE
tutorial, and the deterministic NN baseline of that table.

The input x is the image with only the given quadrants visible (the other pixels set to -1, so the nets can tell
"missing" from "black"); the output y is the remaining quadrants. Quadrants are revealed in the order bottom-left,
top-left, top-right: 1 given = bottom-left, 2 given = left half, 3 given = all but bottom-right (Pyro's layout).
`num_given_quadrants = 0` draws 1-3 per image during training, so one model serves all three settings.

Three networks: recognition q(z|x,y) (sees the full image and which quadrants are given), prior p(z|x) (sees the
masked image) and generation p(y|x,z) (Bernoulli pixels; only the missing quadrants are scored). Objectives, as
nats per image (one z sample per image, i.e. L = 1 in eq. 5):

    "cvae"   eq. (4)/(5):  KL( q(z|x,y) || p(z|x) ) + E_q(z|x,y)[ -log p(y|x,z) ]        (the negative CVAE bound)
    "gsnn"   eq. (8):      E_p(z|x)[ -log p(y|x,z) ]         (train as used at test time: z from the prior net)
    "hybrid" eq. (9):      alpha * L_CVAE + (1 - alpha) * L_GSNN

Evaluation is the conditional log-likelihood log p(y|x), importance-sampled with q(z|x,y) as the proposal
(Sohn et al. Section 4.1): log (1/k) sum_i p(y|x,z_i) p(z_i|x) / q(z_i|x,y), z_i ~ q(z|x,y).
This is a model of y given x, so it has no unconditional `sample`: use `complete`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import EncoderOutput, LossOutput, VAEFamilyModel
from .blocks import NUM_PIXELS, ConfigError, Encoder, ModelConfig, kl_normal, log_normal, reparameterize
from .errors import Unsupported
from .registry import SOHN_2015, ModelSpec, register_model

SIDE = 28
HALF = SIDE // 2
# (rows, columns) of each quadrant, in the order they are given: bottom-left, top-left, top-right, bottom-right.
QUADRANTS = (
    (slice(HALF, SIDE), slice(0, HALF)),
    (slice(0, HALF), slice(0, HALF)),
    (slice(0, HALF), slice(HALF, SIDE)),
    (slice(HALF, SIDE), slice(HALF, SIDE)),
)
MISSING = -1.0  # the value of hidden pixels in the network input x
OBJECTIVES = ("cvae", "gsnn", "hybrid")


def mask(num_given: int) -> Tensor:
    """(1, 28, 28) bool mask, True on the pixels of the `num_given` (1, 2 or 3) given quadrants."""
    if isinstance(num_given, bool) or not isinstance(num_given, int) or num_given not in (1, 2, 3):
        raise ValueError(f"num_given must be 1, 2 or 3 quadrants, got {num_given!r}")
    given = torch.zeros(1, SIDE, SIDE, dtype=torch.bool)
    for rows, cols in QUADRANTS[:num_given]:
        given[0, rows, cols] = True
    return given


def masked_input(images: Tensor, given: Tensor) -> Tensor:
    """The network input x: the given pixels, MISSING (-1) elsewhere."""
    return torch.where(given, images, torch.full_like(images, MISSING))


@dataclass
class QuadrantConfig(ModelConfig):
    num_given_quadrants: int = 0  # 1, 2 or 3 given quadrants during training; 0 = random 1-3 per image

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_given_quadrants not in (0, 1, 2, 3):
            raise ConfigError(f"num_given_quadrants must be 0 (random), 1, 2 or 3, got {self.num_given_quadrants}")


class QuadrantModel(VAEFamilyModel):
    """What the structured CVAE and the NN baseline share: masks, the missing-pixel likelihood, completion."""

    def given_counts(self, num_given, n: int) -> Tensor:
        """num_given (an int 1-3, or a (n,) tensor of them) as a (n,) int64 tensor on the model's device."""
        if torch.is_tensor(num_given):
            if num_given.shape != (n,) or num_given.is_floating_point() or ((num_given < 1) | (num_given > 3)).any():
                raise ValueError(f"num_given must be an int 1-3 or a ({n},) integer tensor of values 1-3")
            return num_given.long().to(self.device)
        mask(num_given)  # validates
        return torch.full((n,), num_given, dtype=torch.long, device=self.device)

    def training_counts(self, n: int) -> Tensor:
        k = self.config.num_given_quadrants
        if k:
            return torch.full((n,), k, dtype=torch.long, device=self.device)
        return torch.randint(1, 4, (n,)).to(self.device)

    @property
    def default_num_given(self) -> int:
        """The setting `reconstruct` shows: the trained one, or 2 (left half given) for a model trained on all."""
        return self.config.num_given_quadrants or 2

    def given_masks(self, counts: Tensor) -> Tensor:
        """(B, 1, 28, 28) masks, True on given pixels, for per-image counts 1-3."""
        masks = torch.stack([mask(k) for k in (1, 2, 3)]).to(counts.device)
        return masks[counts - 1]

    def check_images(self, images: Tensor) -> Tensor:
        if not torch.is_tensor(images) or images.dim() != 4 or tuple(images.shape[1:]) != (1, SIDE, SIDE):
            shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
            raise ValueError(f"images must be a (B, 1, 28, 28) tensor in [0, 1], got {shape}")
        return images.float().to(self.device)

    def prepare(self, images: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        """(x, given): the masked network input and the given-pixel masks."""
        given = self.given_masks(counts)
        return masked_input(images, given), given

    @staticmethod
    def missing_log_likelihood(logits: Tensor, images: Tensor, given: Tensor) -> Tensor:
        """log p(y | ...) = Bernoulli log-likelihood summed over the missing pixels only, shape (B,)."""
        ll = -F.binary_cross_entropy_with_logits(logits, images, reduction="none")
        return (ll * (~given)).flatten(1).sum(1)

    def completion_logits(self, images: Tensor, x: Tensor, counts: Tensor, n_samples: int,
                          generator: torch.Generator | None) -> Tensor:
        """(n_samples * B, 1, 28, 28) logits of the missing pixels, sample-major."""
        raise NotImplementedError

    @torch.no_grad()
    def complete(self, images: Tensor, num_given, n_samples: int = 1,
                 generator: torch.Generator | None = None) -> Tensor:
        """(n_samples, B, 1, 28, 28) completions: given pixels copied from `images`, missing ones the decoder's
        mean pixel values (each sample with its own z from the prior net for the structured CVAE)."""
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        images = self.check_images(images)
        counts = self.given_counts(num_given, len(images))
        x, given = self.prepare(images, counts)
        means = torch.sigmoid(self.completion_logits(images, x, counts, n_samples, generator))
        means = means.view(n_samples, *images.shape)
        return torch.where(given, images, means)

    def reconstruct(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.complete(x, self.default_num_given, 1)[0]

    def decoder_logits(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        raise Unsupported(f"{type(self).__name__} predicts missing quadrants from given ones: use complete(images, "
                         "num_given) instead of decoding a code alone")

    def sample(self, n: int, labels: Tensor | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        raise Unsupported(f"{type(self).__name__} is a conditional model of the missing quadrants given the others; "
                         "it has no unconditional samples: use complete(images, num_given, n_samples)")


@dataclass
class StructuredCVAEConfig(QuadrantConfig):
    model_type: str = "socvae"
    objective: str = "cvae"  # "cvae" (eq. 4/5), "gsnn" (eq. 8) or "hybrid" (eq. 9)
    alpha: float = 0.5  # hybrid only: weight of the CVAE bound, 1 - alpha on the GSNN loss

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_choice("objective", OBJECTIVES)
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha}")


@register_model
class StructuredCVAE(QuadrantModel):
    config_class = StructuredCVAEConfig
    spec = ModelSpec(
        name="socvae",
        description="a structured-output conditional VAE that completes missing quadrants of a digit",
        paper=SOHN_2015,
        kind="completion",
        likelihood="bound",  # on log p(y|x), importance-sampled with q(z|x,y)
        baseline="quadrant_nn",  # Sohn et al.'s deterministic baseline: one blurred average where this gives variety
    )

    def __init__(self, config: StructuredCVAEConfig):
        super().__init__(config)
        d = config.latent_dim
        self.recognition = Encoder(config, 2 * d, extra_features=4)  # full image + which quadrants are given
        self.prior_net = Encoder(config, 2 * d)  # masked image
        self.generation = Encoder(config, NUM_PIXELS, extra_features=d)  # masked image + z -> pixel logits

    @staticmethod
    def quadrant_code(counts: Tensor) -> Tensor:
        """(B, 4) indicator of the given quadrants: with the full image it says which pixels are x and which y."""
        return (torch.arange(4, device=counts.device) < counts[:, None]).float()

    def posterior(self, images: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        return self.recognition(images, self.quadrant_code(counts)).chunk(2, dim=1)

    def prior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.prior_net(x).chunk(2, dim=1)

    def generation_logits(self, x: Tensor, z: Tensor) -> Tensor:
        return self.generation(x, z).view(-1, 1, SIDE, SIDE)

    def encode(self, x: Tensor, labels: Tensor | None = None) -> EncoderOutput:
        """q(z|x,y) of the full image x, with the model's default number of given quadrants."""
        images = self.check_images(x)
        mean, logvar = self.posterior(images, self.given_counts(self.default_num_given, len(images)))
        return EncoderOutput(z=reparameterize(mean, logvar), mean=mean, logvar=logvar)

    def loss(self, batch) -> LossOutput:
        images, _ = batch
        counts = self.training_counts(len(images))
        x, given = self.prepare(images, counts)
        mean_p, logvar_p = self.prior(x)
        terms: dict[str, Tensor] = {}
        if self.config.objective in ("cvae", "hybrid"):
            mean_q, logvar_q = self.posterior(images, counts)
            z = reparameterize(mean_q, logvar_q)
            logits = self.generation_logits(x, z)
            terms["reconstruction"] = -self.missing_log_likelihood(logits, images, given).mean()
            terms["kl"] = kl_normal(mean_q, logvar_q, mean_p, logvar_p).mean()
        if self.config.objective in ("gsnn", "hybrid"):
            logits = self.generation_logits(x, reparameterize(mean_p, logvar_p))
            terms["gsnn_reconstruction"] = -self.missing_log_likelihood(logits, images, given).mean()
        if self.config.objective == "cvae":
            loss = terms["reconstruction"] + terms["kl"]
        elif self.config.objective == "gsnn":
            loss = terms["gsnn_reconstruction"]
        else:
            a = self.config.alpha
            loss = a * (terms["reconstruction"] + terms["kl"]) + (1 - a) * terms["gsnn_reconstruction"]
        return LossOutput(loss, terms)

    def completion_logits(self, images, x, counts, n_samples, generator):
        mean_p, logvar_p = self.prior(x)
        eps = torch.randn(n_samples, *mean_p.shape, generator=generator).to(self.device)
        z = mean_p + (0.5 * logvar_p).exp() * eps
        return self.generation_logits(x.repeat(n_samples, 1, 1, 1), z.flatten(0, 1))

    def reconstruct(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Complete the default missing quadrants from the posterior mean of q(z|x,y): y is seen, so this shows what
        the code captures, as a VAE reconstruction does."""
        with torch.no_grad():
            images = self.check_images(x)
            counts = self.given_counts(self.default_num_given, len(images))
            masked, given = self.prepare(images, counts)
            mean, _ = self.posterior(images, counts)
            return torch.where(given, images, torch.sigmoid(self.generation_logits(masked, mean)))

    @torch.no_grad()
    def conditional_log_weights(self, images: Tensor, num_given, num_samples: int = 100, max_rows: int = 10_000,
                                generator: torch.Generator | None = None) -> Tensor:
        """(num_samples, B) log weights log p(y|x,z) + log p(z|x) - log q(z|x,y), z ~ q(z|x,y); the generation
        net sees at most max_rows (sample, image) pairs at a time, so memory stays bounded for any k."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        images = self.check_images(images)
        counts = self.given_counts(num_given, len(images))
        x, given = self.prepare(images, counts)
        mean_p, logvar_p = self.prior(x)
        mean_q, logvar_q = self.posterior(images, counts)
        chunk = max(1, max_rows // max(1, len(images)))
        weights = []
        for start in range(0, num_samples, chunk):
            k = min(chunk, num_samples - start)
            eps = torch.randn(k, *mean_q.shape, generator=generator).to(self.device)
            z = mean_q + (0.5 * logvar_q).exp() * eps  # (k, B, d)
            logits = self.generation_logits(x.repeat(k, 1, 1, 1), z.flatten(0, 1))
            log_py = self.missing_log_likelihood(logits, images.repeat(k, 1, 1, 1), given.repeat(k, 1, 1, 1))
            weights.append(log_py.view(k, -1) + log_normal(z, mean_p, logvar_p) - log_normal(z, mean_q, logvar_q))
        return torch.cat(weights)

    def conditional_log_likelihood(self, images: Tensor, num_given, num_samples: int = 100, max_rows: int = 10_000,
                                   generator: torch.Generator | None = None) -> Tensor:
        """Per-image estimate of log p(y|x) in nats: logsumexp of the k log weights - log k (a stochastic lower
        bound whose expectation rises towards log p(y|x) as k grows, Burda et al. 2015 Theorem 1)."""
        w = self.conditional_log_weights(images, num_given, num_samples, max_rows, generator)
        return torch.logsumexp(w, dim=0) - math.log(num_samples)


@dataclass
class QuadrantBaselineConfig(QuadrantConfig):
    model_type: str = "quadrant_nn"
    # latent_dim (inherited) is unused: the baseline has no latent variable.
    # One network per setting (1, 2, 3 quadrants given), each trained on every image in its setting, as Pyro's
    # tutorial trains one BaselineNet per setting; False: one network for all three (the first bundled weights).
    net_per_setting: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.net_per_setting and self.num_given_quadrants:
            raise ConfigError("net_per_setting trains a network for each of 1, 2 and 3 given quadrants: it needs "
                              f"num_given_quadrants = 0, got {self.num_given_quadrants}")


@register_model
class QuadrantBaseline(QuadrantModel):
    """The deterministic baseline of Sohn et al. Table 1: y predicted from x alone by a network the size of the
    CVAE's generation net, trained on -log p(y|x) (Bernoulli, missing pixels only); its log p(y|x) is exact.
    With `net_per_setting`, one such network per number of given quadrants, as Pyro's tutorial trains its
    BaselineNet once per setting (the bundled weights); without it, one network serves all three settings."""

    config_class = QuadrantBaselineConfig
    spec = ModelSpec(
        name="quadrant_nn",
        description="the deterministic quadrant-completion baseline of the structured-output CVAE paper",
        paper=SOHN_2015,
        kind="completion",
        likelihood="exact",  # log p(y|x) of a deterministic prediction
    )

    def __init__(self, config: QuadrantBaselineConfig):
        super().__init__(config)
        if config.net_per_setting:
            self.nets = nn.ModuleList(Encoder(config, NUM_PIXELS) for _ in (1, 2, 3))  # nets[k - 1]: k given
        else:
            self.net = Encoder(config, NUM_PIXELS)

    def logits(self, x: Tensor, counts: Tensor) -> Tensor:
        """Pixel logits of the masked inputs x, each by the network of its number of given quadrants."""
        if not self.config.net_per_setting:
            return self.net(x).view(-1, 1, SIDE, SIDE)
        out = x.new_empty(len(x), NUM_PIXELS)
        for k, net in enumerate(self.nets, start=1):
            rows = counts == k
            if rows.any():
                out[rows] = net(x[rows])
        return out.view(-1, 1, SIDE, SIDE)

    def encode(self, x: Tensor, labels: Tensor | None = None) -> EncoderOutput:
        raise Unsupported("QuadrantBaseline is deterministic and has no latent code: use complete(images, num_given)")

    def loss(self, batch) -> LossOutput:
        """-log p(y|x) per image. With a network per setting, every image is scored in all three settings and the
        three means are summed: the networks share no weights, so each gets exactly the gradient of its own
        setting's loss, as if trained alone on every image (Pyro's three runs, in one)."""
        images, _ = batch
        settings = (1, 2, 3) if self.config.net_per_setting else (None,)
        reconstruction = 0
        for k in settings:
            counts = self.training_counts(len(images)) if k is None else self.given_counts(k, len(images))
            x, given = self.prepare(images, counts)
            reconstruction = reconstruction - self.missing_log_likelihood(self.logits(x, counts), images, given).mean()
        return LossOutput(reconstruction, {"reconstruction": reconstruction})

    def completion_logits(self, images, x, counts, n_samples, generator):
        # deterministic: every "sample" is the same prediction
        return self.logits(x, counts).repeat(n_samples, 1, 1, 1)

    @torch.no_grad()
    def conditional_log_likelihood(self, images: Tensor, num_given, num_samples: int = 1, max_rows: int = 10_000,
                                   generator: torch.Generator | None = None) -> Tensor:
        """Exact per-image log p(y|x) in nats. num_samples, max_rows and generator are accepted and unused (there
        is no z to sample), so that evaluation code can call both quadrant models the same way."""
        images = self.check_images(images)
        counts = self.given_counts(num_given, len(images))
        x, given = self.prepare(images, counts)
        return self.missing_log_likelihood(self.logits(x, counts), images, given)

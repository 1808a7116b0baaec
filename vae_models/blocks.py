"""Building blocks shared by every model: the config base class, encoder/decoder backbones, and the
probability helpers (pixel likelihoods, Gaussian KL, priors).

Images are always tensors of shape (B, 1, 28, 28) with values in [0, 1]. Decoders output one real number per
pixel (a logit); `pixel_log_likelihood` turns it into log p(x|z) summed over pixels, `pixel_mean` into the
image the user sees.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGE_SHAPE = (1, 28, 28)
NUM_PIXELS = 28 * 28
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "softplus": nn.Softplus}
LIKELIHOODS = ("bernoulli", "continuous_bernoulli", "gaussian")
BACKBONES = ("mlp", "conv")


class ConfigError(ValueError):
    """A config that cannot describe a model (unknown key, wrong type, value out of range)."""


@dataclass
class ModelConfig:
    """Fields every model shares. Subclasses add their own; every field is validated on construction, so a
    malformed config.json fails loudly instead of building a different model than the one that was saved."""

    model_type: str = ""  # which model this config builds; subclasses fix it (it is how load_model dispatches)
    backbone: str = "mlp"  # "mlp" (fully connected) or "conv" (two strided convolutions each way)
    hidden_dims: tuple[int, ...] = (512, 256)  # widths of the hidden layers, input side first
    activation: str = "relu"  # hidden non-linearity: relu, tanh, elu, leaky_relu, softplus
    latent_dim: int = 16  # dimension of z

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            expected = hints[f.name]
            if typing.get_origin(expected) is tuple:
                if not isinstance(value, (list, tuple)) or not all(_is_int(v) for v in value):
                    raise ConfigError(f"{f.name} must be a list of integers, got {value!r}")
                value = tuple(int(v) for v in value)
                setattr(self, f.name, value)
            elif expected is float:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ConfigError(f"{f.name} must be a finite number, got {value!r}")
                setattr(self, f.name, float(value))
            elif expected is int:
                if not _is_int(value):
                    raise ConfigError(f"{f.name} must be an integer, got {value!r}")
            elif expected in (str, bool) and not isinstance(value, expected):
                raise ConfigError(f"{f.name} must be a {expected.__name__}, got {value!r}")
        default_type = type(self).__dataclass_fields__["model_type"].default
        if self.model_type != default_type:
            raise ConfigError(f"config is for model_type {self.model_type!r}, expected {default_type!r}")
        self.check_choice("backbone", BACKBONES)
        self.check_choice("activation", tuple(ACTIVATIONS))
        if not self.hidden_dims or min(self.hidden_dims) < 1:
            raise ConfigError(f"hidden_dims must be non-empty positive widths, got {self.hidden_dims}")
        if self.latent_dim < 1:
            raise ConfigError(f"latent_dim must be >= 1, got {self.latent_dim}")

    def check_choice(self, name: str, choices: tuple) -> None:
        if getattr(self, name) not in choices:
            raise ConfigError(f"{name} must be one of {list(choices)}, got {getattr(self, name)!r}")

    @property
    def pixel_likelihood(self) -> "PixelLikelihood":
        """The likelihood the decoder puts on each pixel: Bernoulli, unless the config chooses one
        (PixelLikelihoodConfig)."""
        return PixelLikelihood("bernoulli")

    @property
    def code_dim(self) -> int:
        """The size of the code the decoder reads (`encode(x).z`, `decode(z)`): latent_dim, unless the model's code has
        other parts (the categorical AAE's cluster code beside its style)."""
        return self.latent_dim

    @property
    def pictured_in_2d(self) -> bool:
        """Whether the model draws its codes in a plane (`plane_codes`, `plane_prior_sample`): a 2-D code, or a
        picture the model defines (the categorical AAE's clusters with a 2-D style)."""
        return self.code_dim == 2

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        """Strict constructor for configs read from disk: unknown keys are an error, not silently dropped."""
        if not isinstance(data, dict):
            raise ConfigError(f"config must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown config keys for {cls.__name__}: {unknown}")
        return cls(**data)


@dataclass(frozen=True)
class PixelLikelihood:
    """A decoder's likelihood of one pixel (pixel_log_likelihood): its name and the gaussian one's pixel std."""

    name: str  # one of LIKELIHOODS
    gaussian_std: float | None = None  # the gaussian likelihood's fixed pixel std (None: a config without one)

    @property
    def binary(self) -> bool:
        """Bernoulli pixels are binary: the model trains and is scored on binarised digits, on grey levels otherwise."""
        return self.name == "bernoulli"


@dataclass
class PixelLikelihoodConfig(ModelConfig):
    """The config of a model that chooses its decoder's pixel likelihood (the AE, the VAEs, AVB, the AAE): the two
    fields, declared once for all of them."""

    likelihood: str = "bernoulli"  # bernoulli (binarised data), continuous_bernoulli or gaussian (grey levels)
    gaussian_std: float = 0.1  # fixed pixel std of the gaussian likelihood; unused otherwise

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_choice("likelihood", LIKELIHOODS)
        if self.gaussian_std <= 0:
            raise ConfigError(f"gaussian_std must be > 0, got {self.gaussian_std}")

    @property
    def pixel_likelihood(self) -> PixelLikelihood:
        return PixelLikelihood(self.likelihood, self.gaussian_std)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def mlp(in_features: int, hidden_dims: tuple[int, ...], out_features: int, activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden_dims:
        layers += [nn.Linear(in_features, width), ACTIVATIONS[activation]()]
        in_features = width
    layers.append(nn.Linear(in_features, out_features))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """x (B,1,28,28), optionally with an extra vector (a one-hot label, injected noise) -> (B, out_features).

    The conv backbone reduces 28x28 to 7x7 with two stride-2 convolutions, then joins the extra vector to the
    flattened features, so conditioning works the same way for both backbones.
    """

    def __init__(self, config: ModelConfig, out_features: int, extra_features: int = 0):
        super().__init__()
        act = config.activation
        if config.backbone == "conv":
            self.features = nn.Sequential(
                nn.Conv2d(1, 32, 4, 2, 1), ACTIVATIONS[act](), nn.Conv2d(32, 64, 4, 2, 1), ACTIVATIONS[act](),
                nn.Flatten(),
            )
            in_features = 64 * 7 * 7
        else:
            self.features = nn.Flatten()
            in_features = NUM_PIXELS
        self.head = mlp(in_features + extra_features, config.hidden_dims, out_features, act)

    def forward(self, x: Tensor, extra: Tensor | None = None) -> Tensor:
        h = self.features(x)
        if extra is not None:
            h = torch.cat([h, extra], dim=1)
        return self.head(h)


class Decoder(nn.Module):
    """z (B, in_features) -> one logit per pixel (B,1,28,28). Hidden widths mirror the encoder's."""

    def __init__(self, config: ModelConfig, in_features: int):
        super().__init__()
        act = config.activation
        hidden = tuple(reversed(config.hidden_dims))
        if config.backbone == "conv":
            self.head = nn.Sequential(mlp(in_features, hidden, 64 * 7 * 7, act), ACTIVATIONS[act]())
            self.body = nn.Sequential(
                nn.Unflatten(1, (64, 7, 7)),
                nn.ConvTranspose2d(64, 32, 4, 2, 1), ACTIVATIONS[act](), nn.ConvTranspose2d(32, 1, 4, 2, 1),
            )
        else:
            self.head = mlp(in_features, hidden, NUM_PIXELS, act)
            self.body = nn.Unflatten(1, IMAGE_SHAPE)

    def forward(self, z: Tensor) -> Tensor:
        return self.body(self.head(z))


# ---------------------------------------------------------------------------------------------------------
# Pixel likelihoods. All return log p(x|z) summed over pixels, shape (B,).


def pixel_log_likelihood(logits: Tensor, x: Tensor, likelihood: str, gaussian_std: float = 0.1) -> Tensor:
    """log p(x | decoder output) summed over pixels.

    bernoulli: for binary x (Kingma & Welling 2013, Appendix C.1).
    continuous_bernoulli: the normalised density on [0,1] for grey-level x (Loaiza-Ganem & Cunningham 2019, eq. 7);
      the plain Bernoulli "likelihood" of grey values is not a density, which is why it is a separate choice.
    gaussian: N(x; sigmoid(logits), gaussian_std^2) per pixel (Kingma & Welling 2013, Appendix C.2, fixed variance).
    """
    # x log sigmoid(l) + (1-x) log(1 - sigmoid(l)) = x l - softplus(l): the same value as the negated
    # binary_cross_entropy_with_logits in fewer passes over the logits, which matters for k=5000 importance sampling.
    if likelihood == "bernoulli":
        return (x * logits - F.softplus(logits)).flatten(1).sum(1)
    if likelihood == "continuous_bernoulli":
        return (x * logits - F.softplus(logits) + _cb_log_norm(logits)).flatten(1).sum(1)
    if likelihood == "gaussian":
        mean = torch.sigmoid(logits)
        ll = -0.5 * ((x - mean) / gaussian_std) ** 2 - math.log(gaussian_std) - 0.5 * math.log(2 * math.pi)
        return ll.flatten(1).sum(1)
    raise ValueError(f"unknown likelihood {likelihood!r}")


def _cb_log_norm(logits: Tensor) -> Tensor:
    """log C(lambda) of the continuous Bernoulli, lambda = sigmoid(logits). C = 2 atanh(1-2l) / (1-2l), -> 2 at l=1/2.
    Written in terms of logits for stability: atanh(1-2l) = -logits/2, 1-2l = -tanh(logits/2). Exact for any
    logit: beyond |t| ~ 20, tanh(t/2) = +-1 and C = |t|, which a trained decoder's background pixels reach."""
    t = logits
    small = t.abs() < 1e-3
    safe = torch.where(small, torch.ones_like(t), t)
    value = torch.log(safe / torch.tanh(safe / 2))  # = log( (t/2)*2 / tanh(t/2) )
    taylor = math.log(2.0) + t**2 / 12  # series of log(t / tanh(t/2)) around 0
    return torch.where(small, taylor, value)


def pixel_mean(logits: Tensor, likelihood: str) -> Tensor:
    """The expected image under the decoder distribution, in [0, 1]."""
    lam = torch.sigmoid(logits)
    if likelihood != "continuous_bernoulli":
        return lam
    # Mean of CB(lambda): lambda/(2 lambda - 1) + 1/(2 atanh(1 - 2 lambda)) = 1/(1 - e^-t) - 1/t; 1/2 at t = 0.
    t = logits
    small = t.abs() < 1e-3
    safe = torch.where(small, torch.ones_like(t), t)
    mean = lam / (2 * lam - 1 + small.float()) - 1 / safe
    return torch.where(small, 0.5 + t / 12, mean).clamp(0, 1)


# ---------------------------------------------------------------------------------------------------------
# Gaussians.


def reparameterize(mean: Tensor, logvar: Tensor) -> Tensor:
    """z = mean + sigma * eps, eps ~ N(0, I): the reparameterisation trick (Kingma & Welling 2013, eq. 10)."""
    return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)


def kl_standard_normal(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, diag exp(logvar)) || N(0, I)), summed over dimensions (Kingma & Welling 2013, Appendix B):
    -1/2 sum(1 + log sigma^2 - mu^2 - sigma^2)."""
    return -0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(-1)


def kl_normal(mean_q: Tensor, logvar_q: Tensor, mean_p: Tensor, logvar_p: Tensor) -> Tensor:
    """KL(N(mean_q, exp(logvar_q)) || N(mean_p, exp(logvar_p))), diagonal, summed over dimensions."""
    return 0.5 * (
        logvar_p - logvar_q + (logvar_q.exp() + (mean_q - mean_p).pow(2)) / logvar_p.exp() - 1
    ).sum(-1)


def log_normal(z: Tensor, mean: Tensor | None = None, logvar: Tensor | None = None) -> Tensor:
    """log N(z; mean, diag exp(logvar)) summed over the last dimension; standard normal when mean/logvar are None."""
    if mean is None:
        return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
    return -0.5 * ((z - mean).pow(2) / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)


def one_hot(labels: Tensor, num_classes: int) -> Tensor:
    return F.one_hot(labels.long(), num_classes).float()

"""The interface every model shares, and Hub (de)serialisation that only ever reads safetensors + strict JSON.

Every model is an `nn.Module` and a `huggingface_hub.PyTorchModelHubMixin`, built from one dataclass config:

    model.encode(x, labels=None)         -> EncoderOutput (a latent sample z, and mean/logvar when Gaussian)
    model.decode(z, labels=None)         -> images in [0, 1], (B, 1, 28, 28)
    model.reconstruct(x, labels=None)    -> decode(the posterior's mean code)
    model.sample(n, labels=None, temperature=1.0, generator=None) -> n images from the prior
    model.loss(batch)                    -> LossOutput: the objective to minimise and its named positive terms

A batch is the pair (images, labels) that the data loaders yield; models that do not use labels ignore them.
Loss convention: every term is summed over pixels / latent dimensions and averaged over the batch, so the
numbers are nats per image and comparable with the papers; any weight (beta, alpha, ...) is a config field.

What a model is and can do (adversarial, label-conditional, likelihood, ...) is declared once on its class as
`spec = ModelSpec(...)` (registry.py). Adversarial models (`spec.adversarial`) also provide
`discriminator_loss(batch)`, `generator_parameters()` and `discriminator_parameters()`; the trainer alternates
the two updates. A model asked for something it does not do raises `Unsupported`.

`HubModel` is the part every saved model shares, generative or not (the classifier too): a validated dataclass
config, the Hub mixin, and strict safetensors-only loading. `VAEFamilyModel` adds the generative interface.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar, Iterator

import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from safetensors.torch import load_model
from torch import Tensor, nn

from .blocks import ConfigError, ModelConfig, log_normal, pixel_log_likelihood, pixel_mean
from .errors import Unsupported
from .registry import ModelSpec

REPO_URL = "https://github.com/vae-family/vae-family"


@dataclass
class LossOutput:
    loss: Tensor  # the scalar the optimiser minimises
    terms: dict[str, Tensor] = field(default_factory=dict)  # named, positive parts for logging (nats per image)


@dataclass
class EncoderOutput:
    z: Tensor  # a sample from q(z|x) (or the deterministic code)
    mean: Tensor | None = None  # Gaussian posteriors only
    logvar: Tensor | None = None


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, incomplete, or does not match its config."""


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """`with evaluating(model):` runs the block in eval mode (no dropout), then puts back the mode the module was in,
    also when the block raises: measuring a model in the middle of its training leaves it training."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


class HubModel(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="vae-family",
    repo_url=REPO_URL,
    license="mit",
    tags=["vae-family", "mnist"],
):
    """A model saved as model.safetensors + config.json and loaded strictly; built from one validated config."""

    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    spec: ClassVar[ModelSpec]  # what the model is and can do (registry.py); set by every registered class

    def __init__(self, config: ModelConfig):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise ConfigError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def loss(self, batch) -> LossOutput:
        raise NotImplementedError

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        """What `loss` trains: every parameter but those of `discriminator_parameters()` (a two-player model's
        discriminator), in the order of `parameters()`."""
        theirs = {id(p) for p in self.discriminator_parameters()}
        return (p for p in self.parameters() if id(p) not in theirs)

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        """What `discriminator_loss` trains (two-player models, `spec.adversarial`); nothing otherwise."""
        return iter(())

    def regularisation_parameters(self) -> Iterator[nn.Parameter]:
        """What a separate regularisation phase trains with `regularisation_loss(batch)`, in its own optimiser step
        after `loss`'s (the AAE paper's phases, Makhzani et al. 2015, Sec. 2); nothing for models without one."""
        return iter(())

    # -- loading: safetensors + strictly validated config.json only -----------------------------------------
    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision, cache_dir, force_download, local_files_only, token,
                         map_location: str = "cpu", strict: bool = True, **model_kwargs):
        """Replaces the mixin's loader: it would fall back to unpickling `pytorch_model.bin` and load with
        strict=False. Here a checkpoint is a `model.safetensors` whose keys match the model exactly (`strict` is
        accepted and ignored: loading is always strict). The Hub options (revision, cache_dir, force_download,
        local_files_only, token) apply to both files; the model is built on the CPU, filled, then moved to
        `map_location`."""
        def fetch(name: str) -> str:
            if os.path.isdir(model_id):
                path = os.path.join(model_id, name)
                if not os.path.isfile(path):
                    raise CheckpointError(f"{model_id} has no {name}")
                return path
            return hf_hub_download(model_id, name, revision=revision, cache_dir=cache_dir,
                                   force_download=force_download, token=token, local_files_only=local_files_only)

        config = cls.config_class.from_dict(read_config(fetch("config.json")))
        model = cls(config)
        weights = fetch("model.safetensors")
        try:
            load_model(model, weights, strict=True)
        except Exception as exc:  # safetensors raises several types for bad headers, wrong keys or shapes
            raise CheckpointError(f"{weights} does not match {cls.__name__}({config}): {exc}") from exc
        return model.to(map_location).eval()


class VAEFamilyModel(HubModel):
    """The generative interface of the family (see the module docstring)."""

    def prior_sample(self, n: int, generator: torch.Generator | None = None, *, labels: Tensor | None = None) -> Tensor:
        """z ~ p(z); N(0, I) unless the model says otherwise. The labels of a label-conditional model do not change
        this prior (the CVAE's p(z|c) = N(0, I)); models whose prior depends on them override it."""
        return torch.randn(n, self.config.latent_dim, generator=generator, device="cpu").to(self.device)

    def log_prior(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """log p(z) (log p(z|c) with labels), summed over latent dimensions, differentiable in z (AIS needs it)."""
        return log_normal(z)

    @property
    def prior_name(self) -> str:
        """What p(z) is, as the records that measured it from the prior name it: "gaussian" (N(0, I)) unless the
        model says otherwise."""
        return "gaussian"

    @property
    def prior_components(self) -> int:
        """K > 0 if p(z) is an equal-weight mixture of K parts that log_prior / prior_sample select by label (AIS
        stratifies over them); 0 otherwise."""
        return 0

    @property
    def samples_by_label(self) -> bool:
        """Whether sample(n, labels=...) draws the requested digits (label-conditional or label-supervised prior)."""
        return self.spec.label_conditional

    @property
    def learns_from_labelled_batch(self) -> bool:
        """Whether `loss(batch, labelled=(images, labels))` takes a labelled minibatch beside each batch (the
        semi-supervised models): the trainer draws it from the labelled training digits."""
        return False

    def encode(self, x: Tensor, labels: Tensor | None = None) -> EncoderOutput:
        raise NotImplementedError

    def plane_codes(self, x: Tensor) -> Tensor:
        """(B, 2) codes drawn in a plane (config.pictured_in_2d): a 2-D code itself (the posterior mean, or the
        code of a deterministic encoder); models with another picture override it."""
        if self.config.code_dim != 2:
            raise Unsupported(f"{type(self).__name__} has a {self.config.code_dim}-D code: no plane picture")
        out = self.encode(x)
        return out.mean if out.mean is not None else out.z

    def plane_prior_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, 2) prior draws in the picture of `plane_codes`."""
        if self.config.code_dim != 2:
            raise Unsupported(f"{type(self).__name__} has a {self.config.code_dim}-D code: no plane picture")
        return self.prior_sample(n, generator)

    def decoder_logits(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return pixel_mean(self.decoder_logits(z, labels), self.config.pixel_likelihood.name)

    def reconstruct(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        out = self.encode(x, labels)
        return self.decode(out.mean if out.mean is not None else out.z, labels)

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        """n images decoded from prior samples; temperature scales z (1.0 = the prior itself). Labels are an error
        here: a model without label supervision has no way to honour them (label-conditional models override)."""
        return self.decode(self.sample_codes(n, labels, temperature, generator))

    @torch.no_grad()
    def sample_codes(self, n: int, labels: Tensor | None = None, temperature: float = 1.0,
                     generator: torch.Generator | None = None) -> Tensor:
        """The codes `sample` decodes: n prior draws, z scaled by temperature. Apart so that a server can decode
        many visitors' codes in one pass (demo/batching.py)."""
        if labels is not None:
            raise ValueError(f"{type(self).__name__} is not label-conditional: sample() takes no labels")
        return self.prior_sample(n, generator) * temperature

    def log_likelihood(self, logits: Tensor, x: Tensor) -> Tensor:
        """log p(x|z) summed over pixels, (B,), under the config's pixel likelihood (blocks.pixel_log_likelihood)."""
        pixels = self.config.pixel_likelihood
        return pixel_log_likelihood(logits, x, pixels.name, pixels.gaussian_std)

    def init_output_bias(self, pixel_means: Tensor) -> None:
        """Start the decoder's output bias at the logit of each pixel's mean over the training set, clipped to
        [0.001, 0.999], as Burda et al.'s IWAE code does (datasets.py, get_train_bias_np): a fresh decoder then
        predicts the average digit instead of grey everywhere. Needs a fully connected last layer, one unit a pixel."""
        decoder = getattr(self, "decoder", None)
        last = decoder.head[-1] if isinstance(getattr(decoder, "head", None), nn.Sequential) else None
        if not isinstance(last, nn.Linear) or last.out_features != pixel_means.numel():
            raise Unsupported(f"{type(self).__name__}'s decoder has no last layer with one output per pixel")
        with torch.no_grad():
            last.bias.copy_(torch.logit(pixel_means.flatten().clamp(0.001, 0.999)))

    def log_importance_weights(self, x: Tensor, num_samples: int, labels: Tensor | None = None) -> Tensor:
        """(num_samples, B) log w = log p(x, z) - log g(z|x), z ~ g: the terms of the importance-weighted bound
        (Burda et al. 2015, eq. 8). Models whose spec declares a likelihood implement it."""
        raise Unsupported(f"{type(self).__name__} has no likelihood to importance-sample (spec.likelihood = "
                          f"{self.spec.likelihood!r})")

    def elbo(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Per-image evidence lower bound (B,): by default the one-sample estimate log w_1 (the k = 1 case of Burda
        et al. 2015, eq. 8); Gaussian-posterior models override it with the closed-form KL (Kingma & Welling, eq. 10)."""
        return self.log_importance_weights(x, 1, labels)[0]


def read_config(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a JSON object")
    return data

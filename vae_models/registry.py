"""What each model is and what it can do, declared once on its class, and the registry that finds it by name.

Every model class carries a `spec = ModelSpec(...)`: its paper, a one-line description and what the class can do.
`@register_model` adds the class under `spec.name` (which is also its config's `model_type`, the key `load_model`
dispatches on). Its bundled checkpoints are declared by their recipes, not here (catalogue.py).

The trainer, the evaluation, the model card, the report and the app read these declarations and nothing else:
they never test a model's name, probe it with `hasattr`, or keep their own lists of models. Adding a model is
one new module with one decorated class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .blocks import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .base import HubModel

KINDS = ("generative", "completion", "classifier")
LIKELIHOODS = ("bound", "implicit", "exact", "none")
BINARIZE = ("dynamic", "fixed", "none")


@dataclass(frozen=True)
class Paper:
    title: str
    authors: str  # "Kingma & Welling"
    year: int
    venue: str = ""  # "NeurIPS", "Science"; empty for preprints
    arxiv: str | None = None  # "1312.6114"; None for papers that are not on arXiv

    @property
    def citation(self) -> str:
        """"Title (Authors, Venue Year)", the form the model cards use."""
        return f"{self.title} ({self.authors}, {f'{self.venue} ' if self.venue else ''}{self.year})"

    @property
    def url(self) -> str | None:
        return f"https://arxiv.org/abs/{self.arxiv}" if self.arxiv else None


# Cited by both AAEs (aae.py, categorical_aae.py).
MAKHZANI_2015 = Paper("Adversarial Autoencoders", "Makhzani, Shlens, Jaitly, Goodfellow & Frey", 2015,
                      arxiv="1511.05644")
# Cited by three models (the label-conditional CVAE, the structured-output CVAE and its quadrant baseline).
SOHN_2015 = Paper("Learning Structured Output Representation using Deep Conditional Generative Models",
                  "Sohn, Lee & Yan", 2015, venue="NeurIPS")


@dataclass(frozen=True)
class ModelSpec:
    """The declaration every registered model class carries as `spec`."""

    name: str  # registry name == config.model_type
    description: str  # one line: what it is ("a variational autoencoder trained on the evidence lower bound")
    paper: Paper | None = None
    kind: str = "generative"  # "generative": samples from a prior; "completion": predicts missing quadrants;
    #                           "classifier": labels images (not generative)
    adversarial: bool = False  # two players: also `discriminator_loss(batch)`, `generator_parameters()` and
    #                            `discriminator_parameters()`; the trainer alternates the updates
    label_conditional: bool = False  # sample/decode/encode need one label per image
    likelihood: str = "none"  # "bound": explicit q(z|x), so the importance-weighted bound is tractable;
    #                           "implicit": q(z|x) has no density: importance sampling needs a fitted proposal
    #                           (AIS is the faithful estimator); "exact": a deterministic model of log p(y|x);
    #                           "none": no likelihood (AE, AAE, the classifier)
    prior_matched: bool = False  # training pushes the codes' aggregate q(z) towards p(z) (a KL or an adversary):
    #                              the prior MMD of the codes is a meaningful number
    clusters: bool = False  # a categorical code q(y|x) over K clusters (`cluster_probabilities(x)`, `num_clusters`,
    #                         `decode_clusters(styles)`): scored by clustering error, and by test error when trained
    #                         on labels (`samples_by_label`: cluster k is digit k)
    denoising: bool = False  # scored on denoising corrupted digits (the denoising VAE and its plain-VAE baseline)
    needs_ais: bool = False  # decoder-based: log p(x) measured by annealed importance sampling (vae_models/ais.py)
    #                          from log_prior / prior_sample / decoder_logits / log_likelihood, with its BDMC gap
    learned_kl: bool = False  # the objective's KL is learned by a discriminator (AVB): `objective_elbo(x)` is checked
    #                           against the AIS log-likelihood
    default_binarize: str = "dynamic"  # data binarisation for the Bernoulli likelihood ("none" for grey levels)
    baseline: str | None = None  # the registered model this one improves on, which the app shows beside it on its
    #                              task (its default checkpoint, catalogue.py): the DVAE beside the plain VAE it
    #                              extends, the structured-output CVAE beside the deterministic quadrant predictor

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"{self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"{self.name}: likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        if self.default_binarize not in BINARIZE:
            raise ConfigError(f"{self.name}: default_binarize must be one of {BINARIZE}")
        if self.baseline == self.name:
            raise ConfigError(f"{self.name}: a model cannot be its own baseline")

    @property
    def generative(self) -> bool:
        """`sample(n, labels=None, ...)` decodes codes drawn from the prior."""
        return self.kind == "generative"

    @property
    def completes_quadrants(self) -> bool:
        """`complete(images, num_given, n)` and `conditional_log_likelihood` (Sohn et al. 2015's task)."""
        return self.kind == "completion"

    @property
    def classifies(self) -> bool:
        """`predict(images)` gives each image's digit label (the app uses it to label digits for conditional models)."""
        return self.kind == "classifier"

    @property
    def has_likelihood_bound(self) -> bool:
        """`log_importance_weights(x, k, labels)` gives an importance-sampled bound on log p(x) (or log p(x|c))."""
        return self.generative and self.likelihood in ("bound", "implicit")

    def binarize_for(self, config) -> str:
        """Binary data for Bernoulli pixels, grey levels for continuous likelihoods, unless the model says otherwise."""
        if not config.pixel_likelihood.binary:
            return "none"
        return self.default_binarize


MODELS: dict[str, type["HubModel"]] = {}


def register_model(cls):
    """Class decorator: add a model class (with a `spec` and a `config_class`) to the registry under spec.name."""
    spec = getattr(cls, "spec", None)
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"{cls.__name__} needs a class attribute `spec = ModelSpec(...)` to be registered")
    model_type = cls.config_class.__dataclass_fields__["model_type"].default
    if model_type != spec.name:
        raise TypeError(f"{cls.__name__}: spec.name {spec.name!r} differs from its config's model_type {model_type!r}")
    if spec.name in MODELS and MODELS[spec.name] is not cls:
        raise TypeError(f"model {spec.name!r} is already registered ({MODELS[spec.name].__name__})")
    MODELS[spec.name] = cls
    return cls


def unregister_model(name: str) -> None:
    """Remove a model (tests register toy models and take them out again)."""
    MODELS.pop(name, None)


def get_model_class(name: str):
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]


def get_spec(name: str) -> ModelSpec:
    return get_model_class(name).spec


def specs() -> list[ModelSpec]:
    """Every registered model's declaration, in registration order."""
    return [cls.spec for cls in MODELS.values()]

"""The VAE family on MNIST: AE, VAE, CVAE, DVAE, AVB and AAE behind one interface (see `base.py`)."""

import os

from huggingface_hub import hf_hub_download

from .aae import AAE, AAEConfig
from .ae import AE, AEConfig
from .avb import AVB, AVBConfig
from .base import CheckpointError, EncoderOutput, LossOutput, VAEFamilyModel, read_config
from .blocks import ConfigError, ModelConfig
from .classifier import ClassifierConfig, MNISTClassifier
from .corruption import CORRUPTIONS, corrupt
from .cvae import CVAE, CVAEConfig
from .data import DataError, MNISTDataset, load_mnist, make_loader
from .dvae import DVAE, DVAEConfig
from .socvae import QuadrantBaseline, QuadrantBaselineConfig, StructuredCVAE, StructuredCVAEConfig
from .vae import VAE, VAEConfig

MODELS: dict[str, type[VAEFamilyModel]] = {
    "ae": AE, "vae": VAE, "cvae": CVAE, "socvae": StructuredCVAE, "quadrant_nn": QuadrantBaseline, "dvae": DVAE,
    "avb": AVB, "aae": AAE,
    "classifier": MNISTClassifier,  # not a VAE: the judge of the sample-quality metrics (metrics.py)
}


def build_model(model_type: str, **config_fields) -> VAEFamilyModel:
    """Build a fresh model by name, e.g. build_model("vae", latent_dim=2)."""
    if model_type not in MODELS:
        raise ConfigError(f"unknown model {model_type!r}; choose one of {sorted(MODELS)}")
    cls = MODELS[model_type]
    return cls(cls.config_class.from_dict(config_fields))


def load_model(path_or_repo: str, revision: str | None = None, **hub_kwargs) -> VAEFamilyModel:
    """Load any model of the family from a local folder or a Hub repo, dispatching on config.json's model_type."""
    if os.path.isdir(path_or_repo):
        config_path = os.path.join(path_or_repo, "config.json")
        if not os.path.isfile(config_path):
            raise CheckpointError(f"{path_or_repo} has no config.json")
    else:
        config_path = hf_hub_download(path_or_repo, "config.json", revision=revision, **hub_kwargs)
    model_type = read_config(config_path).get("model_type")
    if model_type not in MODELS:
        raise ConfigError(f"{config_path}: unknown model_type {model_type!r}; known: {sorted(MODELS)}")
    return MODELS[model_type].from_pretrained(path_or_repo, revision=revision, **hub_kwargs)

"""The VAE family on MNIST: AE, VAE, CVAE, DVAE, AVB and AAE behind one interface (see `base.py`).

Each model class declares what it is and can do (`spec`, registry.py) and registers itself; `MODELS` maps every
registered name to its class, in the order of the imports below (the order the app lists them in). Each bundled
checkpoint is declared by its recipe, `recipes/<name>.json` (`checkpoints()`, catalogue.py).
"""

import os

from huggingface_hub import hf_hub_download

# Import order = registration order: the family's teaching order, then the classifier that judges it.
from .ae import AE, AEConfig
from .vae import VAE, VAEConfig
from .cvae import CVAE, CVAEConfig
from .socvae import QuadrantBaseline, QuadrantBaselineConfig, StructuredCVAE, StructuredCVAEConfig
from .dvae import DVAE, DVAEConfig
from .avb import AVB, AVBConfig
from .aae import AAE, AAEConfig
from .categorical_aae import CategoricalAAE, CategoricalAAEConfig
from .classifier import ClassifierConfig, MNISTClassifier
from .base import CheckpointError, EncoderOutput, HubModel, LossOutput, VAEFamilyModel, evaluating, read_config
from .blocks import ConfigError, ModelConfig, PixelLikelihoodConfig
from .corruption import CORRUPTIONS, corrupt
from .data import DataError, MNISTDataset, load_mnist, make_loader
from .errors import Unsupported
from .registry import MODELS, ModelSpec, Paper, get_model_class, get_spec, register_model, specs, unregister_model
from .catalogue import Checkpoint, RecipeError, add_checkpoint, checkpoints, judge_checkpoint, remove_checkpoint


def build_model(model_type: str, **config_fields) -> HubModel:
    """Build a fresh model by name, e.g. build_model("vae", latent_dim=2)."""
    cls = get_model_class(model_type)
    return cls(cls.config_class.from_dict(config_fields))


def load_model(path_or_repo: str, revision: str | None = None, **hub_kwargs) -> HubModel:
    """Load any registered model from a local folder or a Hub repo, dispatching on config.json's model_type."""
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

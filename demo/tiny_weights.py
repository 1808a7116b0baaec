"""Tiny random-weight checkpoints of every checkpoint in the catalogue, written with save_pretrained: the app's
tests and its latency benchmark run on them, and they let the app start where no trained weights exist. Each is its
recipe's model (recipes/<name>.json: the AAE's mixture prior, the DVAE's corruption, ...) at a tiny size, so a new
checkpoint gets one too, without an edit here."""

from __future__ import annotations

import zlib
from pathlib import Path

import torch

import vae_models
from vae_models.export import EvalResult, write_eval_results

from .weights import featured, latent_2d_checkpoints

# Sizes that make a model tiny, for whichever of these fields its config has (a 2-D latent space for all).
TINY = {"hidden_dims": [32], "latent_dim": 2, "discriminator_hidden_dims": [16], "noise_dim": 2, "proposal_samples": 4}
# A classifier's hidden_dims are convolution channels and its latent_dim the features of the classifier-feature FD.
TINY_CLASSIFIER = {"hidden_dims": [4], "latent_dim": 8}
# Made-up measurements for the prior-comparison table (written beside the featured 2-D checkpoint), so that its tests
# have numbers to find.
EVAL_RESULTS = [
    EvalResult("IS-NLL (k=5000)", "nll", 135.25),
    EvalResult("AIS-NLL", "nll", 133.5, details={"std_error": 1.25, "bdmc_gap": 0.31}),
    EvalResult("Classifier-feature FD", "classifier_fd", 12.5),
    EvalResult("Prior MMD", "mmd", 0.0123),
]


def tiny_configs() -> dict[str, tuple[str, dict]]:
    """checkpoint name -> (model_type, config fields) for every checkpoint in the catalogue, in its order: the
    recipe's model config with the tiny sizes over it."""
    configs = {}
    for name, (checkpoint, spec) in vae_models.checkpoints().items():
        has = vae_models.get_model_class(spec.name).config_class.__dataclass_fields__
        sizes = TINY_CLASSIFIER if spec.classifies else {key: value for key, value in TINY.items() if key in has}
        configs[name] = (spec.name, {**checkpoint.model_config, **sizes})
    return configs


def make_tiny_weights(root: Path, skip: tuple[str, ...] = (), seed: int = 0) -> Path:
    """Write every checkpoint in the catalogue (minus `skip`) under root/<name>/, random weights from `seed` and the
    checkpoint's name (adding a checkpoint changes no other one's weights); returns root."""
    root = Path(root)
    measured = featured(latent_2d_checkpoints(), "a checkpoint with latent_2d=True")
    for name, (model_type, fields) in tiny_configs().items():
        if name in skip:
            continue
        torch.manual_seed(zlib.crc32(f"{seed}:{name}".encode()))  # 32 bits: the CPU generator keeps no more
        model = vae_models.build_model(model_type, **fields)
        model.save_pretrained(root / name)
        if name == measured:
            write_eval_results(root / name, EVAL_RESULTS)
    return root

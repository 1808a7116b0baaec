"""Tiny checkpoints of every model the app uses, written with save_pretrained, for the demo tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import vae_models

TINY = {"hidden_dims": [32], "latent_dim": 2}
ADVERSARIAL = {"discriminator_hidden_dims": [16]}
CHECKPOINTS = {  # app name -> (model_type, config fields)
    "ae": ("ae", TINY),
    "vae": ("vae", TINY),
    "dvae": ("dvae", TINY),
    "avb": ("avb", {**TINY, **ADVERSARIAL, "noise_dim": 2, "proposal_samples": 4}),
    "aae": ("aae", {**TINY, **ADVERSARIAL}),
    "cvae": ("cvae", TINY),
    "socvae": ("socvae", TINY),
    "quadrant_nn": ("quadrant_nn", {"hidden_dims": [32]}),
    "classifier": ("classifier", {"hidden_dims": [4], "latent_dim": 8}),
    "vae-2d": ("vae", TINY),
    "aae-2d-gaussian": ("aae", {**TINY, **ADVERSARIAL}),
    "aae-2d-mixture": ("aae", {**TINY, **ADVERSARIAL, "prior": "mixture10"}),
    "aae-2d-supervised": ("aae", {**TINY, **ADVERSARIAL, "prior": "mixture10", "supervised_prior": True}),
    "avb-2d": ("avb", {**TINY, **ADVERSARIAL, "noise_dim": 2, "proposal_samples": 4}),
}
# In the format `python -m train.evaluate` writes (a list of entries), for the prior-comparison table.
EVAL_RESULTS = {"vae-2d": [
    {"name": "IS-NLL (k=5000)", "type": "nll", "value": 135.25, "dataset": "mnist", "split": "test"},
    {"name": "AIS-NLL", "type": "nll", "value": 133.5, "dataset": "mnist", "split": "test",
     "details": {"std_error": 1.25, "bdmc_gap": 0.31}},
    {"name": "Classifier-feature FD", "type": "classifier_fd", "value": 12.5, "dataset": "mnist", "split": "test"},
    {"name": "Prior MMD", "type": "mmd", "value": 0.0123, "dataset": "mnist", "split": "test"},
]}


def make_tiny_weights(root: Path, skip: tuple[str, ...] = (), seed: int = 0) -> Path:
    """Write CHECKPOINTS (minus `skip`) under root/<name>/, random weights from `seed`; returns root."""
    root = Path(root)
    for i, (name, (model_type, fields)) in enumerate(CHECKPOINTS.items()):
        if name in skip:
            continue
        torch.manual_seed(seed * 100 + i)
        model = vae_models.build_model(model_type, **fields)
        model.save_pretrained(root / name)
        if name in EVAL_RESULTS:
            (root / name / "eval_results.json").write_text(json.dumps(EVAL_RESULTS[name]))
    return root

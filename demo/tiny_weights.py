"""Tiny random-weight checkpoints of every model the app uses, written with save_pretrained: the app's tests and
its latency benchmark run on them, and they let the app start where no trained weights exist."""

from __future__ import annotations

from pathlib import Path

import torch

import vae_models
from vae_models.export import EvalResult, write_eval_results

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
# Made-up measurements for the prior-comparison table, so that its tests have numbers to find.
EVAL_RESULTS = {"vae-2d": [
    EvalResult("IS-NLL (k=5000)", "nll", 135.25),
    EvalResult("AIS-NLL", "nll", 133.5, details={"std_error": 1.25, "bdmc_gap": 0.31}),
    EvalResult("Classifier-feature FD", "classifier_fd", 12.5),
    EvalResult("Prior MMD", "mmd", 0.0123),
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
            write_eval_results(root / name, EVAL_RESULTS[name])
    return root

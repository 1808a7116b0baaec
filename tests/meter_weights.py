"""Tiny checkpoints with the meter's references (test_demo_explore.py, test_demo_browser.py): every likelihood model of
the every-model view gets both references, computed on the 20 bundled digits, so the app shows its one verdict."""

from __future__ import annotations

from pathlib import Path

from demo.common import test_digits as bundled_digits
from demo.explore import every_model_checkpoints
from demo.tiny_weights import make_tiny_weights
from vae_models import load_model, typicality


def tiny_weights_with_references(root: Path) -> Path:
    make_tiny_weights(root)
    digits = bundled_digits()[0]
    for name in every_model_checkpoints():
        model = load_model(str(root / name))
        if not typicality.has_likelihood(model):
            continue
        for ref in typicality.build_references(model, digits, typicality.file_sha256(root / name / "model.safetensors"),
                                               num_samples=8, num_quantiles=21):
            typicality.save_reference(ref, root / name)
    return root

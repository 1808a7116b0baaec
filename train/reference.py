"""Write each export's test-set references (see vae_models/typicality.py): the distributions over the MNIST test set
of log p(x) (`likelihood_reference.json`) and of the complexity-corrected score S(x) (`complexity_reference.json`)
that the app's "how digit-like is this" meter places a digit on.

    python -m train.reference pretrained/vae pretrained/dvae pretrained/avb pretrained/aae --data-dir ../shared/data/mnist

Only models with an unconditional likelihood get them (an AE folder is an error); the AAE's log p(x) is estimated by
AIS (`typicality.estimator`), ~10 min for the 10,000 test digits on one core, the others' by importance sampling.
Each file holds every test digit's value, which the meter's one verdict over all the models is calibrated on.
Rerun after retraining: the files record the SHA-256 of the weights they were computed with, and the app and the
tests refuse a reference of other weights.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from vae_models import CheckpointError, ConfigError, load_model
from vae_models.data import DataError, environment_options, load_mnist
from vae_models.typicality import (COMPLEXITY_FILE, NUM_QUANTILES, NUM_SAMPLES, REFERENCE_FILE, build_references,
                                   file_sha256, has_likelihood, save_reference)


def write_reference(folder: Path, images: torch.Tensor, dataset: str, num_samples: int, progress: bool) -> list[Path]:
    model = load_model(str(folder))
    if not has_likelihood(model) or model.spec.label_conditional:
        raise ValueError(f"{folder}: {model.config.model_type} defines no unconditional likelihood log p(x)")
    references = build_references(model, images, file_sha256(folder / "model.safetensors"), num_samples=num_samples,
                                  num_quantiles=NUM_QUANTILES, dataset=dataset, progress=progress)
    return [save_reference(reference, folder) for reference in references]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.reference", description=__doc__.split("\n\n")[0])
    p.add_argument("exports", nargs="+", type=Path, help="export folders (model.safetensors + config.json)")
    data = environment_options()
    p.add_argument("--data-dir", default=data["data_dir"], help="folder with the MNIST IDX files (default: "
                   "$VAE_FAMILY_DATA_DIR, else the download cache)")
    p.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist"))
    p.add_argument("--num-samples", type=int, default=NUM_SAMPLES, help="k of the importance-sampled estimate")
    p.add_argument("--limit", type=int, default=None, help="use only the first N test digits (quick checks)")
    args = p.parse_args(argv)
    torch.set_flush_denormal(True)  # trained decoders' background logits underflow into slow subnormals
    try:
        images, _ = load_mnist("test", data_dir=args.data_dir, dataset=args.dataset, source=data["source"])
        images = images[:args.limit].unsqueeze(1).float() / 255.0
        for folder in args.exports:
            start = time.perf_counter()
            paths = write_reference(folder, images, args.dataset, args.num_samples, progress=sys.stderr.isatty())
            print(f"{', '.join(map(str, paths))}: {len(images)} test digits, k={args.num_samples}, "
                  f"{time.perf_counter() - start:.1f} s")
    except (DataError, CheckpointError, ConfigError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["COMPLEXITY_FILE", "REFERENCE_FILE", "main", "write_reference"]

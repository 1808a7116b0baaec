"""Write each export's test-set likelihood reference (`likelihood_reference.json`, see vae_models/typicality.py):
the distribution of log p(x) over the MNIST test set that the app's "how digit-like is this" meter places a digit on.

    python -m train.reference pretrained/vae pretrained/dvae pretrained/avb --data-dir ../shared/data/mnist

Only models with a likelihood get one (an AE or AAE folder is an error). Rerun after retraining: the file records
the SHA-256 of the weights it was computed with, and the app and the tests refuse a reference of other weights.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from vae_models import CheckpointError, ConfigError, load_model
from vae_models.data import DataError, load_mnist
from vae_models.typicality import (NUM_QUANTILES, NUM_SAMPLES, REFERENCE_FILE, build_reference, file_sha256,
                                   has_likelihood, save_reference)


def write_reference(folder: Path, images: torch.Tensor, dataset: str, num_samples: int, progress: bool) -> Path:
    model = load_model(str(folder))
    if not has_likelihood(model) or model.spec.label_conditional:
        raise ValueError(f"{folder}: {model.config.model_type} defines no unconditional likelihood log p(x)")
    reference = build_reference(model, images, file_sha256(folder / "model.safetensors"), num_samples=num_samples,
                                num_quantiles=NUM_QUANTILES, dataset=dataset, progress=progress)
    return save_reference(reference, folder)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.reference", description=__doc__.split("\n\n")[0])
    p.add_argument("exports", nargs="+", type=Path, help="export folders (model.safetensors + config.json)")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (else the download cache)")
    p.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist"))
    p.add_argument("--num-samples", type=int, default=NUM_SAMPLES, help="k of the importance-sampled estimate")
    p.add_argument("--limit", type=int, default=None, help="use only the first N test digits (quick checks)")
    args = p.parse_args(argv)
    torch.set_flush_denormal(True)  # trained decoders' background logits underflow into slow subnormals
    try:
        images, _ = load_mnist("test", data_dir=args.data_dir, dataset=args.dataset)
        images = images[:args.limit].unsqueeze(1).float() / 255.0
        for folder in args.exports:
            start = time.perf_counter()
            path = write_reference(folder, images, args.dataset, args.num_samples, progress=sys.stderr.isatty())
            print(f"{path}: {len(images)} test digits, k={args.num_samples}, {time.perf_counter() - start:.1f} s")
    except (DataError, CheckpointError, ConfigError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["REFERENCE_FILE", "main", "write_reference"]

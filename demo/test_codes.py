"""The MNIST test set's codes under each 2-D checkpoint, stored beside its weights as `test_codes.safetensors`, so the
prior-comparison scatter shows the real test set in every mode (offline, Hub, a Space) without bundling the images.

The file holds `codes` (10000, 2) float32, the encoder's posterior mean (its code, for a deterministic encoder) of
every test digit in order, `labels` (10000,) uint8, and in its metadata the SHA-256 of the `model.safetensors` it was
computed from. A codes file whose digest does not match the weights beside it is stale and is ignored (the app then
encodes the test set itself when it can read it). It travels with the weights: `python -m train.publish` pushes it
into the model repo, and Hub mode downloads it with the weights at the same pinned revision.

    python -m demo.test_codes pretrained --data-dir ../shared/data/mnist     # write each 2-D export's file that is missing or stale
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import torch

FILENAME = "test_codes.safetensors"
WEIGHTS = "model.safetensors"
BATCH = 1000


def weights_digest(folder: Path) -> str:
    return hashlib.sha256((Path(folder) / WEIGHTS).read_bytes()).hexdigest()


@torch.no_grad()
def encode(model, images: torch.Tensor) -> torch.Tensor:
    """Codes (N, latent_dim) of uint8 (N, 28, 28) images: the posterior mean, or the code of a deterministic encoder.
    An implicit posterior (AVB) has no mean: its code is one draw z = f(x, eps), made with torch's RNG seeded 0 (in a
    forked RNG state, so callers' random streams are untouched) and in fixed batches, so the codes can be recomputed."""
    codes = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for start in range(0, len(images), BATCH):
            x = images[start:start + BATCH].unsqueeze(1).float().div(255.0).to(model.device)
            out = model.encode(x)
            codes.append((out.mean if out.mean is not None else out.z).float().cpu())
    return torch.cat(codes)


def write_test_codes(folder: str | Path, images: torch.Tensor, labels: torch.Tensor) -> Path:
    """Encode the test images with the checkpoint in `folder` and write folder/test_codes.safetensors."""
    from safetensors.torch import save_file

    from vae_models import load_model

    folder = Path(folder)
    model = load_model(str(folder)).eval()
    codes = encode(model, images)
    path = folder / FILENAME
    save_file({"codes": codes.contiguous(), "labels": labels.to(torch.uint8).contiguous()}, str(path),
              metadata={"weights_sha256": weights_digest(folder), "data": "mnist test split, in file order",
                        "codes": "posterior mean (the code, for a deterministic encoder)"})
    return path


def read_test_codes(folder: str | Path | None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(codes (N, d) float32, labels (N,) int64) from folder/test_codes.safetensors, or None when the file is
    absent, unreadable or was computed from other weights than folder/model.safetensors."""
    from safetensors import safe_open

    if folder is None or not (Path(folder) / FILENAME).is_file() or not (Path(folder) / WEIGHTS).is_file():
        return None
    try:
        with safe_open(str(Path(folder) / FILENAME), framework="pt") as f:
            if (f.metadata() or {}).get("weights_sha256") != weights_digest(folder):
                return None
            codes, labels = f.get_tensor("codes"), f.get_tensor("labels").long()
    except Exception:  # a corrupt file is as good as none: the scatter encodes the test set instead
        return None
    if codes.dim() != 2 or labels.shape != (len(codes),):
        return None
    return codes, labels


def is_two_dimensional(folder: Path) -> bool:
    """An export whose config declares a 2-D code (what the scatter shows: `code_dim`, so a categorical AAE's 2-D
    style with its cluster code is not one), read from config.json only."""
    import json

    from vae_models import MODELS

    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        return MODELS[data["model_type"]].config_class.from_dict(data).code_dim == 2
    except (OSError, ValueError, KeyError, TypeError):
        return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m demo.test_codes", description=__doc__.splitlines()[0])
    p.add_argument("root", help="folder of export folders (e.g. pretrained)")
    from vae_models.data import environment_options, load_mnist

    data = environment_options()
    p.add_argument("--data-dir", default=data["data_dir"], help="folder with the MNIST IDX files (default: "
                   "$VAE_FAMILY_DATA_DIR, else the download cache)")
    args = p.parse_args(argv)
    images, labels = load_mnist("test", data_dir=args.data_dir, source=data["source"])
    folders = [f for f in sorted(Path(args.root).iterdir()) if f.is_dir() and (f / WEIGHTS).is_file()
               and is_two_dimensional(f)]
    if not folders:
        print(f"error: no export with a 2-D code under {args.root}", file=sys.stderr)
        return 1
    for folder in folders:
        if read_test_codes(folder) is not None:  # computed from these very weights: rewriting changes nothing
            print(f"kept {folder / FILENAME} (in sync with its weights)")
        else:
            print(f"wrote {write_test_codes(folder, images, labels)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

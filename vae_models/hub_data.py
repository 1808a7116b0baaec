"""MNIST and Fashion-MNIST from their dataset repos on the Hugging Face Hub (`load_mnist(..., source="hub")`).

The repos hold one parquet file per split (`<config>/<split>-00000-of-00001.parquet`, the layout of ylecun/mnist
and zalando-datasets/fashion_mnist) with two columns: `image`, a struct of the PNG's `bytes` (and a `path`), and
`label`. huggingface_hub downloads the file at `revision` into its cache (HF_HOME; HF_ENDPOINT picks the server);
pyarrow reads it; PIL decodes the PNGs.

Checksums: the decoded images and labels, written as IDX bytes (header + pixels, exactly the official files'
layout), must have the SHA-256 of the official IDX files (vae_models.data.SHA256). So the check pins the data
itself, whatever parquet writer, compression or row-group layout the repo's file has, and a repo whose rows are
altered, reordered or re-encoded lossily is refused. `revision` pins the commit: HUB_REVISIONS holds the default
("main" until a commit sha is recorded there: this project's machines cannot reach the Hub to read one; the content
checksum is what guarantees the data), and `--hub-revision` / `revision=` take a sha.
"""

from __future__ import annotations

import hashlib
import io
import os

import numpy as np

HUB_REPOS = {"mnist": ("ylecun/mnist", "mnist"), "fashion_mnist": ("zalando-datasets/fashion_mnist", "fashion_mnist")}
HUB_REVISIONS = {"mnist": "main", "fashion_mnist": "main"}
REPO_ENV, REVISION_ENV = "VAE_FAMILY_HUB_DATASET", "VAE_FAMILY_HUB_DATASET_REVISION"


def parquet_path(dataset: str, split: str) -> str:
    return f"{HUB_REPOS[dataset][1]}/{split}-00000-of-00001.parquet"


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """The IDX file of a uint8 array: magic, one big-endian uint32 per dimension, the data."""
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def decode_parquet(path: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels uint8 (N,)) from a parquet file of PNG bytes + labels."""
    import pyarrow.parquet as pq
    from PIL import Image

    from .data import DataError

    try:
        table = pq.read_table(path, columns=["image", "label"])
        pngs = table.column("image").combine_chunks().field("bytes").to_pylist()
        labels = table.column("label").to_numpy()
    except Exception as exc:  # ArrowInvalid (not parquet, truncated), KeyError (missing column or field)
        raise DataError(f"{name}: not a parquet file of MNIST images and labels ({type(exc).__name__}: {exc})") from exc
    images = np.empty((len(pngs), 28, 28), dtype=np.uint8)
    for i, data in enumerate(pngs):
        try:
            with Image.open(io.BytesIO(data)) as image:
                if image.mode != "L" or image.size != (28, 28):
                    raise DataError(f"{name}: row {i} is a {image.mode} {image.size[0]}x{image.size[1]} image, "
                                    "expected a 28x28 grayscale PNG")
                images[i] = np.asarray(image)
        except (OSError, TypeError) as exc:  # not an image / None bytes
            raise DataError(f"{name}: row {i} holds no readable image ({exc})") from exc
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise DataError(f"{name}: labels out of range 0-9")
    return images, labels.astype(np.uint8)


def load_from_hub(split: str, dataset: str = "mnist", revision: str | None = None, repo_id: str | None = None):
    """One split from the Hub dataset repo -> (images uint8 (N,28,28) tensor, labels int64 (N,) tensor)."""
    import torch
    from huggingface_hub import hf_hub_download

    from .data import FILES, IMAGES_MAGIC, LABELS_MAGIC, SHA256, DataError

    repo_id = repo_id or os.environ.get(REPO_ENV) or HUB_REPOS[dataset][0]
    revision = revision or os.environ.get(REVISION_ENV) or HUB_REVISIONS[dataset]
    filename = parquet_path(dataset, split)
    name = f"{repo_id}@{revision}/{filename}"
    try:
        path = hf_hub_download(repo_id, filename, repo_type="dataset", revision=revision)
    except Exception as exc:  # unreachable Hub, missing repo / revision / file: one clear line, with the way out
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"cannot download {name} from the Hub ({type(exc).__name__}: {first}); offline, use the "
                        "IDX files (--data-source idx with --data-dir)") from exc
    images, labels = decode_parquet(path, name)
    for array, magic, stem in ((images, IMAGES_MAGIC, FILES[split][0]), (labels, LABELS_MAGIC, FILES[split][1])):
        digest = hashlib.sha256(idx_bytes(array, magic)).hexdigest()
        if digest != SHA256[dataset][stem]:
            raise DataError(f"{name}: its {'images' if magic == IMAGES_MAGIC else 'labels'} differ from the official "
                            f"{dataset} {stem} (SHA-256 {digest[:12]}…, expected {SHA256[dataset][stem][:12]}…)")
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))

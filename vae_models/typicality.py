"""How digit-like is an image? Its log-likelihood under a model, placed on the test set's distribution.

A likelihood model gives every image a number, log p(x), estimated here by importance sampling with a small k
(the k-sample bound of Burda et al. 2015, eq. 8, via `metrics.importance_sampled_nll`). Alone the number means
little (it depends on the model and on how much ink the digit has), so it is reported as a percentile of the same
estimate over the test set: the share of test digits the model finds *less* likely. Letters, scribbles and
near-blank images land in the low tail.

The test set's distribution ships beside the weights as `likelihood_reference.json` (`REFERENCE_FILE`): a few
hundred quantiles, the protocol (k, binarisation threshold, seed) and the SHA-256 of the `model.safetensors` it was
computed with, so a stale reference is detectable. `python -m train.reference EXPORT...` writes it.

Protocol, shared by the reference and the query so that they are comparable: the image is binarised by a fixed
threshold (the models are Bernoulli likelihoods trained on binary digits; a threshold is deterministic, unlike the
dynamic binarisation of training), and the k proposal draws come from a fixed seed in batches of `BATCH` images.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .metrics import importance_sampled_nll

REFERENCE_FILE = "likelihood_reference.json"
THRESHOLD = 0.5  # pixel >= THRESHOLD -> 1
NUM_SAMPLES = 100  # k of the importance-sampled estimate: ~ms per image for the bundled models
NUM_QUANTILES = 1001  # levels 0, 0.1, ..., 100 %: the tails are resolved to 0.1 %
BATCH = 10  # images per importance_sampled_nll batch; part of the protocol (it fixes which draws go to which image)
SEED = 0
FORMAT_VERSION = 1


class ReferenceError(ValueError):
    """A reference file that is missing, malformed, or was computed with other weights than these."""


def has_likelihood(model: nn.Module) -> bool:
    """Whether the model defines log p(x) through importance weights (VAE, DVAE, CVAE, AVB; not AE or AAE): what its
    declaration says (`spec.has_likelihood_bound`, registry.py)."""
    return model.spec.has_likelihood_bound


def binarize(images: Tensor) -> Tensor:
    """Images in [0, 1] -> {0, 1} by the fixed THRESHOLD (float, same shape)."""
    return (images >= THRESHOLD).to(images.dtype if images.is_floating_point() else torch.float32)


def log_likelihood(model: nn.Module, images: Tensor, num_samples: int = NUM_SAMPLES, seed: int = SEED,
                   labels: Tensor | None = None, progress: bool = False) -> Tensor:
    """Estimated log p(x) (N,) in nats, float64, of the binarised images, with k = num_samples importance samples
    from a fixed seed (the global RNG is left as it was). The first BATCH images get the same draws whatever
    follows them, so a prefix of a set reproduces its values."""
    if not has_likelihood(model):
        raise TypeError(f"{type(model).__name__} defines no likelihood (no importance weights)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        nll = importance_sampled_nll(model, binarize(images.float()), labels, num_samples=num_samples,
                                     batch_size=BATCH, chunk=min(num_samples, 500), progress=progress)
    return -nll


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class LikelihoodReference:
    """The distribution of log p(x) over a reference set (the test set), as quantiles."""

    quantiles: list[float]  # log p(x) at levels 0, 1/(m-1), ..., 1 (m = len), non-decreasing
    size: int  # number of reference images
    num_samples: int  # k of the estimate
    weights_sha256: str  # of the model.safetensors the values were computed with
    dataset: str = "mnist"
    split: str = "test"
    threshold: float = THRESHOLD
    seed: int = SEED
    check_values: list[float] = field(default_factory=list)  # log p(x) of the first reference images, in order
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        q = self.quantiles
        if len(q) < 2 or not all(math.isfinite(v) for v in q) or any(b < a for a, b in zip(q, q[1:])):
            raise ReferenceError("quantiles must be at least two finite, non-decreasing values")
        if self.size < 1 or self.num_samples < 1:
            raise ReferenceError(f"size and num_samples must be >= 1, got {self.size}, {self.num_samples}")

    def percentile(self, log_px: float) -> float:
        """Share (0-100 %) of the reference images whose log p(x) is below `log_px` (linear between quantiles;
        0 below the least likely reference image, 100 above the most likely)."""
        if not math.isfinite(log_px):
            raise ValueError(f"log-likelihood must be finite, got {log_px}")
        levels = np.linspace(0.0, 100.0, len(self.quantiles))
        q = np.asarray(self.quantiles, dtype=np.float64)
        # Ties (flat stretches of q) would make np.interp pick an arbitrary level: take the middle of the tie.
        lo, hi = np.searchsorted(q, log_px, side="left"), np.searchsorted(q, log_px, side="right")
        if hi > lo:
            return float((levels[lo] + levels[hi - 1]) / 2)
        return float(np.interp(log_px, q, levels))

    def median(self) -> float:
        return float(np.quantile(np.asarray(self.quantiles), 0.5))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "LikelihoodReference":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReferenceError(f"not JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise ReferenceError(f"expected a JSON object with format_version {FORMAT_VERSION}")
        known = set(cls.__dataclass_fields__)
        if not set(data) <= known or not {"quantiles", "size", "num_samples", "weights_sha256"} <= set(data):
            raise ReferenceError(f"unexpected or missing fields: {sorted(set(data) ^ known)}")
        return cls(**data)


def build_reference(model: nn.Module, images: Tensor, weights_sha256: str, num_samples: int = NUM_SAMPLES,
                    num_quantiles: int = NUM_QUANTILES, dataset: str = "mnist", split: str = "test",
                    labels: Tensor | None = None, num_check: int = BATCH, progress: bool = False) -> LikelihoodReference:
    """The reference distribution of `images` (N, 1, 28, 28) in [0, 1] under `model`."""
    values = log_likelihood(model, images, num_samples, SEED, labels, progress=progress)
    levels = np.linspace(0.0, 1.0, num_quantiles)
    quantiles = np.quantile(values.numpy(), levels)
    return LikelihoodReference(
        quantiles=[round(float(v), 3) for v in np.maximum.accumulate(quantiles)], size=len(images),
        num_samples=num_samples, weights_sha256=weights_sha256, dataset=dataset, split=split,
        check_values=[round(float(v), 4) for v in values[:num_check]])


def save_reference(reference: LikelihoodReference, folder: str | Path) -> Path:
    path = Path(folder) / REFERENCE_FILE
    path.write_text(reference.to_json() + "\n", encoding="utf-8")
    return path


def load_reference(folder: str | Path, check_weights: bool = True) -> LikelihoodReference:
    """The export folder's reference; ReferenceError if absent, malformed, or (check_weights) computed with
    another model.safetensors than the one in the folder."""
    folder = Path(folder)
    path = folder / REFERENCE_FILE
    if not path.is_file():
        raise ReferenceError(f"{folder} has no {REFERENCE_FILE} (write it with `python -m train.reference {folder}`)")
    try:
        reference = LikelihoodReference.from_json(path.read_text(encoding="utf-8"))
    except (ReferenceError, TypeError) as exc:
        raise ReferenceError(f"{path}: {exc}") from exc
    if check_weights:
        weights = folder / "model.safetensors"
        if not weights.is_file() or file_sha256(weights) != reference.weights_sha256:
            raise ReferenceError(f"{path} was computed with other weights than {weights}; recompute it with "
                                 f"`python -m train.reference {folder}`")
    return reference

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

Likelihood alone misses one kind of input: simple ones. A near-empty image, a dash or a faint line has *high*
likelihood under a Bernoulli VAE (few ink pixels to explain), so it lands in the middle or the top of the test
distribution (Nalisnick et al. 2019, "Do deep generative models know what they don't know?"). High likelihood is
not typicality. The meter therefore also corrects for input complexity (Serrà et al. 2020, "Input complexity and
out-of-distribution detection with likelihood-based generative models"): with the model's log-likelihood in bits
l_M(x) = log2 p(x) and the code length L(x) of a generic lossless compressor (vae_models/complexity.py),

    S(x) = -l_M(x) - L(x)  =  log2 [ p_0(x) / p(x) ],   p_0(x) = 2^-L(x),

a likelihood ratio between the model and a universal model of binary images. A digit is coded far more compactly by
the digit model than by the compressor (S very negative); a letter is not (its S is high: the model is surprised,
the compressor is not), and neither is a dash (the compressor codes it in a few dozen bits, the model needs
about as many as for a digit). S is placed on the test set's distribution of S (`ComplexityReference`, the file
`COMPLEXITY_FILE`), and an image is called typical when both tests pass: its log p(x) is inside the test digits'
band, neither in their bottom `LOW_TAIL` % (too unlikely) nor in their top `100 - HIGH_LIKELIHOOD_TAIL` % (too
likely), and its S is not in their top `100 - HIGH_TAIL` % (more likely than its simplicity warrants).

Why the likelihood test is two-sided: an atypically *high* log p(x) is as much a sign of a non-digit as a low one.
This is the typicality test of Nalisnick, Matsukawa, Teh & Lakshminarayanan 2019 ("Detecting out-of-distribution
inputs to deep generative models using typicality"): in-distribution inputs lie in a band of log p, not above a
floor. AVB's bundled model finds two specks on an empty canvas more likely than 99.8 % of the test digits, while
their S stays within the digits' (benchmarks/typicality.py). The likelihood test keeps the 1 % budget of test digits
it had when it was one-sided, split evenly between its two tails (0.5 % each), and S keeps its 1 %. Together they
flag 1.6-1.8 % of the 10,000 test digits under each bundled model (`Assessment.typical`).

One verdict over several models (`JointMeter`): the app asks every likelihood model of the family, and the models
disagree at the margins. The verdict takes the most extreme of all their tests, each weighted by its share of the
budget above, and flags the image when that is further out than `FLAG_RATE` % of the test digits' own most extreme
test. The threshold is measured on the test digits' values under all the models together (the references hold them
one by one), so the models' agreement is measured, not assumed; benchmarks/meter.py counts the false flags out of
sample and scores kinds of non-digits that the rule was not chosen on.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from . import ais, complexity
from .metrics import importance_sampled_nll

REFERENCE_FILE = "likelihood_reference.json"
COMPLEXITY_FILE = "complexity_reference.json"
LOW_TAIL = 0.5  # log p(x) below this percentile of the test digits': too unlikely
HIGH_LIKELIHOOD_TAIL = 99.5  # log p(x) above this percentile of the test digits': too likely (e.g. specks)
HIGH_TAIL = 99.0  # S(x) above this percentile of the test digits': too simple for how likely it is
THRESHOLD = 0.5  # pixel >= THRESHOLD -> 1
NUM_SAMPLES = 100  # k of the importance-sampled estimate: ~ms per image for the bundled models
# A model with a prior and a decoder but no encoder density (the AAE) has a log p(x) too, estimated by AIS
# (vae_models/ais.py) with this fixed, short schedule: ~0.3 s for one upload and ~50 ms per digit in batches on one
# core for the bundled AAE. It reads ~1.3 nats lower than T = 300 (a looser lower bound), the same for the reference
# and the query, so the percentiles compare like with like.
AIS_STEPS, AIS_CHAINS, AIS_LEAPFROG = 100, 4, 3
NUM_QUANTILES = 1001  # levels 0, 0.1, ..., 100 %: the tails are resolved to 0.1 %
BATCH = 10  # images per importance_sampled_nll batch; part of the protocol (it fixes which draws go to which image)
SEED = 0
FORMAT_VERSION = 1
ESTIMATORS = ("importance sampling", "ais")


class ReferenceError(ValueError):
    """A reference file that is missing, malformed, or was computed with other weights than these."""


def estimator(model: nn.Module) -> str | None:
    """How the meter estimates the model's log p(x), from its declaration (`spec`, registry.py): "importance
    sampling" with its own q(z|x) (VAE, DVAE, CVAE, AVB), "ais" for a generative model whose decoder and prior define
    p(x) without an encoder density (the AAE), None for a model with no p(x) (the AE)."""
    spec = model.spec
    if spec.has_likelihood_bound:
        return "importance sampling"
    return "ais" if spec.generative and spec.needs_ais else None


def has_likelihood(model: nn.Module) -> bool:
    """Whether the model defines a log p(x) the meter can estimate (every model but the AE and the classifiers)."""
    return estimator(model) is not None


def binarize(images: Tensor) -> Tensor:
    """Images in [0, 1] -> {0, 1} by the fixed THRESHOLD (float, same shape)."""
    return (images >= THRESHOLD).to(images.dtype if images.is_floating_point() else torch.float32)


def log_likelihood(model: nn.Module, images: Tensor, num_samples: int = NUM_SAMPLES, seed: int = SEED,
                   labels: Tensor | None = None, progress: bool = False) -> Tensor:
    """Estimated log p(x) (N,) in nats, float64, of the binarised images, from a fixed seed (the global RNG is left
    as it was): with k = num_samples importance samples, or, for a model without an encoder density, by AIS with
    the meter's schedule (AIS_STEPS, AIS_CHAINS; num_samples is then unused). The first BATCH images get the same
    draws whatever follows them, so a prefix of a set reproduces its values."""
    how = estimator(model)
    if how is None:
        raise TypeError(f"{type(model).__name__} defines no likelihood (no prior to integrate its decoder over)")
    x = binarize(images.float())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if how == "ais":
            result = ais.ais_log_likelihood(model, x, labels, num_steps=AIS_STEPS, num_chains=AIS_CHAINS,
                                            leapfrog_steps=AIS_LEAPFROG, batch_size=BATCH, progress=progress,
                                            generator=torch.Generator().manual_seed(seed))
            return result.log_px.double()
        nll = importance_sampled_nll(model, x, labels, num_samples=num_samples, batch_size=BATCH,
                                     chunk=min(num_samples, 500), progress=progress)
    return -nll


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def corrected_score(log_px: Tensor, bits: Tensor) -> Tensor:
    """S(x) = -l_M(x) - L(x) in bits (Serrà et al. 2020): minus the log-likelihood in bits (log p(x) is in nats)
    minus the compressor's code length L(x) in bits. Higher: less digit-like."""
    return -log_px.double() / math.log(2) - bits.double()


def complexity_corrected(model: nn.Module, images: Tensor, num_samples: int = NUM_SAMPLES, seed: int = SEED,
                         progress: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """(log p(x) in nats, L(x) in bits, S(x) in bits), each (N,) float64, of the binarised images."""
    log_px = log_likelihood(model, images, num_samples, seed, progress=progress)
    bits = complexity.code_length_bits(binarize(images.float()))
    return log_px, bits, corrected_score(log_px, bits)


@dataclass
class LikelihoodReference:
    """The distribution of log p(x) over a reference set (the test set), as quantiles."""

    FILE: ClassVar[str] = REFERENCE_FILE

    quantiles: list[float]  # log p(x) at levels 0, 1/(m-1), ..., 1 (m = len), non-decreasing
    size: int  # number of reference images
    num_samples: int  # k of the estimate (for estimator "ais", its chains, each of AIS_STEPS steps)
    weights_sha256: str  # of the model.safetensors the values were computed with
    dataset: str = "mnist"
    split: str = "test"
    threshold: float = THRESHOLD
    seed: int = SEED
    check_values: list[float] = field(default_factory=list)  # log p(x) of the first reference images, in order
    # The value of every reference image, in the reference set's order: what lets the meter calibrate one verdict
    # over several models (`JointMeter`), since that needs each test digit's values under all of them together.
    values: list[float] = field(default_factory=list)
    estimator: str = "importance sampling"  # or "ais" (`estimator(model)`): how log p(x) was estimated
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        q = self.quantiles
        if len(q) < 2 or not all(math.isfinite(v) for v in q) or any(b < a for a, b in zip(q, q[1:])):
            raise ReferenceError("quantiles must be at least two finite, non-decreasing values")
        if self.size < 1 or self.num_samples < 1:
            raise ReferenceError(f"size and num_samples must be >= 1, got {self.size}, {self.num_samples}")
        if self.values and (len(self.values) != self.size or not all(math.isfinite(v) for v in self.values)):
            raise ReferenceError(f"values must be {self.size} finite numbers (one per reference image)")
        if self.estimator not in ESTIMATORS:
            raise ReferenceError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")

    def percentile(self, log_px: float) -> float:
        """Share (0-100 %) of the reference images whose log p(x) is below `log_px` (linear between quantiles;
        0 below the least likely reference image, 100 above the most likely)."""
        if not math.isfinite(log_px):
            raise ValueError(f"log-likelihood must be finite, got {log_px}")
        return float(self.percentiles(np.array([log_px]))[0])

    def percentiles(self, values: np.ndarray) -> np.ndarray:
        """`percentile` of each of many finite values at once."""
        levels = np.linspace(0.0, 100.0, len(self.quantiles))
        q = np.asarray(self.quantiles, dtype=np.float64)
        # Ties (flat stretches of q) would make np.interp pick an arbitrary level: take the middle of the tie.
        lo, hi = np.searchsorted(q, values, side="left"), np.searchsorted(q, values, side="right")
        tied = levels[np.minimum(lo, len(q) - 1)] / 2 + levels[np.maximum(hi - 1, 0)] / 2
        return np.where(hi > lo, tied, np.interp(values, q, levels))

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


@dataclass
class ComplexityReference(LikelihoodReference):
    """The distribution of the complexity-corrected score S(x) (bits) over the test set, as quantiles; the
    likelihood protocol (k, seed, threshold) is the one its log p(x) values were computed with."""

    FILE: ClassVar[str] = COMPLEXITY_FILE
    compressor: str = complexity.NAME


def _reference_of(cls, values: Tensor, size: int, weights_sha256: str, num_samples: int, num_quantiles: int,
                  dataset: str, split: str, num_check: int, estimator: str):
    levels = np.linspace(0.0, 1.0, num_quantiles)
    quantiles = np.quantile(values.numpy(), levels)
    return cls(quantiles=[round(float(v), 3) for v in np.maximum.accumulate(quantiles)], size=size,
               num_samples=num_samples, weights_sha256=weights_sha256, dataset=dataset, split=split,
               check_values=[round(float(v), 4) for v in values[:num_check]],
               values=[round(float(v), 2) for v in values], estimator=estimator)


def build_reference(model: nn.Module, images: Tensor, weights_sha256: str, num_samples: int = NUM_SAMPLES,
                    num_quantiles: int = NUM_QUANTILES, dataset: str = "mnist", split: str = "test",
                    labels: Tensor | None = None, num_check: int = BATCH, progress: bool = False) -> LikelihoodReference:
    """The reference distribution of `images` (N, 1, 28, 28) in [0, 1] under `model`."""
    values = log_likelihood(model, images, num_samples, SEED, labels, progress=progress)
    return _reference_of(LikelihoodReference, values, len(images), weights_sha256, num_samples, num_quantiles,
                         dataset, split, num_check, estimator(model))


def build_references(model: nn.Module, images: Tensor, weights_sha256: str, num_samples: int = NUM_SAMPLES,
                     num_quantiles: int = NUM_QUANTILES, dataset: str = "mnist", split: str = "test",
                     num_check: int = BATCH, progress: bool = False) -> tuple[LikelihoodReference, ComplexityReference]:
    """Both references of `images` (N, 1, 28, 28) in [0, 1] under `model`, from one pass of log p(x)."""
    if estimator(model) == "ais":
        num_samples = AIS_CHAINS  # what the record's num_samples means for AIS: its chains (of AIS_STEPS steps)
    log_px, _, score = complexity_corrected(model, images, num_samples, SEED, progress=progress)
    args = (len(images), weights_sha256, num_samples, num_quantiles, dataset, split, num_check, estimator(model))
    return _reference_of(LikelihoodReference, log_px, *args), _reference_of(ComplexityReference, score, *args)


def save_reference(reference: LikelihoodReference, folder: str | Path) -> Path:
    """Writes the reference to the folder, as `reference.FILE` (likelihood or complexity reference)."""
    path = Path(folder) / reference.FILE
    path.write_text(reference.to_json() + "\n", encoding="utf-8")
    return path


def load_reference(folder: str | Path, check_weights: bool = True, kind: type = LikelihoodReference):
    """The export folder's reference of this kind (LikelihoodReference or ComplexityReference); ReferenceError if
    absent, malformed, or (check_weights) computed with another model.safetensors than the one in the folder."""
    folder = Path(folder)
    path = folder / kind.FILE
    if not path.is_file():
        raise ReferenceError(f"{folder} has no {kind.FILE} (write it with `python -m train.reference {folder}`)")
    try:
        reference = kind.from_json(path.read_text(encoding="utf-8"))
    except (ReferenceError, TypeError) as exc:
        raise ReferenceError(f"{path}: {exc}") from exc
    if check_weights:
        weights = folder / "model.safetensors"
        if not weights.is_file() or file_sha256(weights) != reference.weights_sha256:
            raise ReferenceError(f"{path} was computed with other weights than {weights}; recompute it with "
                                 f"`python -m train.reference {folder}`")
    return reference


@dataclass(frozen=True)
class Assessment:
    """How digit-like one image is under one model: both statistics and where they fall among the test digits'."""

    log_px: float  # nats
    bits: float  # L(x), the compressor's code length
    score: float  # S(x) = -log2 p(x) - L(x), bits
    likelihood_percentile: float  # share of test digits with a lower log p(x)
    score_percentile: float  # share of test digits with a lower S(x)

    @property
    def too_unlikely(self) -> bool:
        return self.likelihood_percentile < LOW_TAIL

    @property
    def too_likely(self) -> bool:
        return self.likelihood_percentile > HIGH_LIKELIHOOD_TAIL

    @property
    def too_simple(self) -> bool:
        return self.score_percentile > HIGH_TAIL

    @property
    def typical(self) -> bool:
        return not (self.too_unlikely or self.too_likely or self.too_simple)

    @property
    def verdict(self) -> str:
        """'typical', or which test flags the image first: 'too unlikely', 'too likely' or 'too simple'."""
        if self.too_unlikely:
            return "too unlikely"
        if self.too_likely:
            return "too likely"
        return "too simple" if self.too_simple else "typical"


def assess(model: nn.Module, images: Tensor, likelihood: LikelihoodReference,
           corrected: ComplexityReference) -> list[Assessment]:
    """Each image's Assessment against the two references (which must share the query's protocol)."""
    if not isinstance(corrected, ComplexityReference) or type(likelihood) is not LikelihoodReference:
        raise TypeError("assess needs a LikelihoodReference and a ComplexityReference")
    if likelihood.num_samples != corrected.num_samples or likelihood.seed != corrected.seed:
        raise ReferenceError("the two references were computed with different likelihood protocols")
    log_px, bits, score = complexity_corrected(model, images, likelihood.num_samples, likelihood.seed)
    return [Assessment(float(lp), float(b), float(s), likelihood.percentile(float(lp)), corrected.percentile(float(s)))
            for lp, b, s in zip(log_px, bits, score)]


# ------------------------------------------------------------------------------------------- one verdict

FLAG_RATE = 1.5  # % of the reference (test) digits the joint verdict flags: its threshold is set there
TAIL_SHARES = {"too unlikely": 1.0, "too likely": 1.0, "too simple": 2.0}  # each test's share of that budget


def tail_probabilities(a: Assessment) -> dict[str, float]:
    """How far out in each tail the image lies, as the share of test digits further out (0-1): the lower, the more
    extreme. Keys are the tests of `TAIL_SHARES`."""
    return {"too unlikely": a.likelihood_percentile / 100, "too likely": 1 - a.likelihood_percentile / 100,
            "too simple": 1 - a.score_percentile / 100}


def most_extreme_test(a: Assessment) -> tuple[float, int, str]:
    """The image's most extreme test, weighted by its share of the budget: (tail probability / share, the test's
    place in TAIL_SHARES, the test). A tie goes to the earlier test: a letter beyond every test digit on both
    counts is "too unlikely" before it is "too simple"."""
    tails = tail_probabilities(a)
    return min((tails[test] / share, i, test) for i, (test, share) in enumerate(TAIL_SHARES.items()))


@dataclass(frozen=True)
class JointVerdict:
    """One verdict from every likelihood model: flagged when the most extreme of all the models' tests is further
    out than the joint threshold allows."""

    flagged: bool
    model: str  # the model whose test is the most extreme
    test: str  # which test that is ("too unlikely", "too likely", "too simple")
    level: float  # its tail probability over its share of the budget (the joint statistic); flagged below threshold
    threshold: float

    @property
    def verdict(self) -> str:
        return self.test if self.flagged else "typical"


class JointMeter:
    """The meter over several likelihood models at once (issue: one verdict, not one per model).

    Each model tests an image three ways (log p(x) too low, too high, S(x) too high; `Assessment`). Over several
    models these tests are strongly correlated (the models agree on which digits are odd), so a union of the
    per-model verdicts flags more real digits than any one model does, and a Bonferroni split wastes the budget. The
    joint statistic is the min-p combination: an image's most extreme test over all models and tests, its tail
    probability divided by the test's share of the budget (`TAIL_SHARES`). Its threshold is the `FLAG_RATE`
    percentile of the same statistic over the reference digits themselves, which the references hold one by one
    (`values`): the dependence between the models is measured, not assumed. The threshold is fitted on the test
    digits; benchmarks/meter.py fits it on half of them and counts the false flags on the other half."""

    def __init__(self, references: dict[str, tuple[LikelihoodReference, ComplexityReference]]):
        if not references:
            raise ReferenceError("the joint meter needs at least one model's references")
        sizes = set()
        for name, (likelihood, corrected) in references.items():
            if not likelihood.values or not corrected.values:
                raise ReferenceError(f"{name}: its references hold no per-digit values (recompute them with "
                                     "`python -m train.reference`)")
            sizes.add((likelihood.dataset, likelihood.split, likelihood.size, corrected.size))
        if len(sizes) != 1:
            raise ReferenceError(f"the references are of different digit sets: {sorted(sizes)}")
        self.references = dict(references)
        self.reference_levels = self.levels({name: (np.asarray(likelihood.values), np.asarray(corrected.values))
                                             for name, (likelihood, corrected) in self.references.items()})
        self.threshold = float(np.quantile(self.reference_levels, FLAG_RATE / 100))

    def levels(self, values: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """The joint statistic of many images at once from each model's (log p(x), S(x)) arrays of them: per image,
        its most extreme test's tail probability over the test's share (flagged below `threshold`)."""
        levels = None
        for name, (likelihood, corrected) in self.references.items():
            lp = likelihood.percentiles(values[name][0]) / 100
            sp = corrected.percentiles(values[name][1]) / 100
            for tail, share in zip((lp, 1 - lp, 1 - sp), TAIL_SHARES.values()):
                levels = tail / share if levels is None else np.minimum(levels, tail / share)
        return levels

    def verdict(self, assessments: dict[str, Assessment]) -> JointVerdict:
        """The one verdict on an image from each model's Assessment of it (the models of the references)."""
        if set(assessments) != set(self.references):
            raise ValueError(f"need an assessment from each of {sorted(self.references)}, got {sorted(assessments)}")
        order = list(self.references)  # a tie between models goes to the first
        level, _, test, _, model = min((*most_extreme_test(a), order.index(name), name)
                                       for name, a in assessments.items())
        return JointVerdict(level < self.threshold, model, test, level, self.threshold)

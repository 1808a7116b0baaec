"""Evaluation metrics shared by the trainer, the app and the benchmarks.

Likelihoods are in nats per image; lower NLL is better. Sample-quality metrics judge images with the project's
own MNIST classifier (`classifier.py`), so the Fréchet distance here is a "classifier-feature FD", not FID.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .base import evaluating
from .errors import Unsupported

# torchmetrics is imported inside ssim / classifier_frechet_distance: importing it costs seconds (it pulls in
# matplotlib and more), and the demo imports this module for the likelihoods only (its cold start; benchmarks/).


def mmd_rbf(a: Tensor, b: Tensor, bandwidths: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0)) -> Tensor:
    """Unbiased estimate of the squared maximum mean discrepancy (Gretton et al. 2012, eq. 3) between the samples
    a (n, d) and b (m, d), with a sum of Gaussian kernels exp(-|u-v|^2 / (2 h^2)) over several bandwidths h, so
    that no single scale has to be tuned to the data. Zero in expectation when both come from one distribution."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    n, m = len(a), len(b)
    if n < 2 or m < 2:
        raise ValueError("mmd_rbf needs at least two samples on each side")

    def kernel(u: Tensor, v: Tensor) -> Tensor:
        d2 = torch.cdist(u, v).pow(2)
        return sum(torch.exp(-d2 / (2 * h * h)) for h in bandwidths)

    kaa, kbb, kab = kernel(a, a), kernel(b, b), kernel(a, b)
    term_a = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))
    term_b = (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    return (term_a + term_b - 2 * kab.mean()).float()


# ---------------------------------------------------------------------------------------------------------
# Likelihoods.


def _check_images(images: Tensor, labels: Tensor | None) -> None:
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28) or not images.is_floating_point():
        raise ValueError(f"images must be a float tensor (N, 1, 28, 28) in [0, 1], got {images.dtype} {tuple(images.shape)}")
    if labels is not None and labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")


def _batches(n: int, batch_size: int, progress: bool, desc: str):
    return tqdm(range(0, n, batch_size), desc=desc, unit="batch", disable=not progress, leave=False)


@torch.inference_mode()
def importance_sampled_nll(model: nn.Module, images: Tensor, labels: Tensor | None = None, num_samples: int = 5000,
                           batch_size: int = 10, chunk: int = 500, progress: bool = False) -> Tensor:
    """Per-image estimate of -log p(x) (N,) in nats, float64: minus the k-sample importance-weighted bound of
    Burda et al. 2015 (eq. 8), log p(x) >= E[ log (1/k) sum_i w_i ],  w_i = p(x, z_i) / q(z_i|x),  z_i ~ q(z|x),
    which tightens as k grows (Theorem 1); k = 5000 is the usual test protocol.

    The k log weights come from `model.log_importance_weights(x, chunk, labels)` in pieces of `chunk` samples,
    folded into a running logsumexp, so memory stays below ~ batch_size * chunk * 784 floats (~16 MB by default)
    whatever k is. Each call decodes batch_size * chunk latent samples (the Gaussian-posterior models in blocks
    of ~1000 rows that stay in cache, `GaussianEncoderMixin.ROWS_PER_STEP`) and re-encodes its images once,
    which costs 1/chunk of the decoding (0.2% at chunk=500), so no encoding cache is needed. The cost is
    dominated by the decoder matmuls and the pixel log-likelihood of the batch_size * k decoded images
    (benchmarks/eval_nll.py has the timings)."""
    _check_images(images, labels)
    if num_samples < 1 or batch_size < 1 or chunk < 1:
        raise ValueError(f"num_samples, batch_size and chunk must be >= 1, got {num_samples}, {batch_size}, {chunk}")
    if not model.spec.has_likelihood_bound:
        raise Unsupported(f"{type(model).__name__} has no importance-sampled likelihood (spec.likelihood = "
                          f"{model.spec.likelihood!r}, kind {model.spec.kind!r})")
    device = next(model.parameters()).device
    out = []
    with evaluating(model):
        for start in _batches(len(images), batch_size, progress, f"IS-NLL k={num_samples}"):
            x = images[start:start + batch_size].to(device)
            y = None if labels is None else labels[start:start + batch_size].to(device)
            total = torch.full((len(x),), -math.inf, dtype=torch.float64, device=device)
            for done in range(0, num_samples, chunk):
                k = min(chunk, num_samples - done)
                w = model.log_importance_weights(x, k, y)
                if w.shape != (k, len(x)):
                    raise RuntimeError(f"log_importance_weights returned {tuple(w.shape)}, expected {(k, len(x))}")
                # Streaming logsumexp: log(sum_old + sum_new) = logaddexp(old, logsumexp(new)), stable in float64.
                total = torch.logaddexp(total, torch.logsumexp(w.double(), dim=0))
            out.append((math.log(num_samples) - total).cpu())
    return torch.cat(out)


@torch.inference_mode()
def elbo(model: nn.Module, images: Tensor, labels: Tensor | None = None, batch_size: int = 500) -> Tensor:
    """Per-image evidence lower bound log p(x) >= E_q[log p(x|z)] - KL(q(z|x) || p(z)) (N,) in nats (Kingma &
    Welling 2013, eq. 3), from the model's own `elbo`: the KL in closed form for Gaussian-posterior models,
    otherwise the one-sample estimate log w_1 (the k = 1 case of Burda et al. 2015, eq. 8)."""
    _check_images(images, labels)
    if not model.spec.has_likelihood_bound:
        raise Unsupported(f"{type(model).__name__} has no likelihood bound (spec.likelihood = {model.spec.likelihood!r})")
    device = next(model.parameters()).device
    out = []
    with evaluating(model):
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(device)
            y = None if labels is None else labels[start:start + batch_size].to(device)
            out.append(model.elbo(x, y).double().cpu())
    return torch.cat(out)


@torch.inference_mode()
def conditional_nll_quadrants(model: nn.Module, images: Tensor, num_given: int, num_samples: int = 100,
                              batch_size: int = 100, generator: torch.Generator | None = None,
                              progress: bool = False) -> Tensor:
    """Per-image -log p(y|x) (N,) in nats for the quadrant-completion task of Sohn et al. 2015 (Section 5.1,
    Table 1): x = `num_given` (1-3) quadrants of a binarised digit, y = the missing ones. Thin wrapper over the
    models' `conditional_log_likelihood` (socvae: importance sampled with num_samples draws; quadrant_nn: exact)."""
    _check_images(images, None)
    if num_given not in (1, 2, 3):
        raise ValueError(f"num_given must be 1, 2 or 3 quadrants, got {num_given!r}")
    if not model.spec.completes_quadrants:
        raise Unsupported(f"{type(model).__name__} is not a quadrant-completion model")
    out = []
    with evaluating(model):
        for start in _batches(len(images), batch_size, progress, f"CLL {num_given} given"):
            x = images[start:start + batch_size].to(model.device)
            out.append(-model.conditional_log_likelihood(x, num_given, num_samples, generator=generator).double().cpu())
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------------------
# Reconstruction quality.


def _reduce(values: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return values
    if reduction == "mean":
        return values.mean()
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _check_pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"expected two image batches of the same shape (B, C, H, W), got {tuple(a.shape)} and {tuple(b.shape)}")
    return a.float(), b.float()


def psnr(a: Tensor, b: Tensor, reduction: str = "mean") -> Tensor:
    """Peak signal-to-noise ratio 10 log10(1 / MSE) in dB per image (images in [0, 1]), mean over the batch or
    per image ("none"); inf for identical images."""
    a, b = _check_pair(a, b)
    # torchmetrics' peak_signal_noise_ratio(data_range=1, dim=(1, 2, 3)), written out: the app computes it while
    # starting, and importing torchmetrics would add seconds to its cold start
    values = 10 * torch.log10(1.0 / ((a - b) ** 2).mean(dim=(1, 2, 3)))
    return _reduce(values, reduction)


def ssim(a: Tensor, b: Tensor, reduction: str = "mean") -> Tensor:
    """Structural similarity (Wang et al. 2004, eq. 13; 11x11 Gaussian window, sigma 1.5), 1 for identical
    images; mean over the batch or per image ("none")."""
    a, b = _check_pair(a, b)
    from torchmetrics.functional.image import structural_similarity_index_measure

    return _reduce(structural_similarity_index_measure(a, b, data_range=1.0, reduction="none"), reduction)


# ---------------------------------------------------------------------------------------------------------
# Sample quality, judged by a classifier.


class _Features(nn.Module):
    """Hands torchmetrics' Fréchet distance the classifier's penultimate features instead of Inception's."""

    def __init__(self, classifier: nn.Module, num_features: int):
        super().__init__()
        self.classifier = classifier
        self.num_features = num_features  # read by torchmetrics instead of probing with a 299x299 dummy image

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier.features(x)


@torch.inference_mode()
def classifier_frechet_distance(classifier: nn.Module, images_a: Tensor, images_b: Tensor,
                                batch_size: int = 1000) -> float:
    """Classifier-feature FD: the Fréchet distance between Gaussians fitted to the classifier's penultimate
    features of two image sets, |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) (Heusel et al. 2017, eq. 6;
    Dowson & Landau 1982). Computed by torchmetrics in float64 with the MNIST classifier as feature extractor, so
    it is NOT comparable with Inception FIDs. 0 for identical sets; grows as the sets drift apart."""
    if len(images_a) < 2 or len(images_b) < 2:
        raise ValueError("the Fréchet distance needs at least two images in each set")
    with evaluating(classifier):
        device = next(classifier.parameters(), torch.empty(0)).device
        num_features = classifier.features(images_a[:1].to(device)).shape[-1]
        from torchmetrics.image.fid import FrechetInceptionDistance

        fd = FrechetInceptionDistance(feature=_Features(classifier, num_features), normalize=True).to(device)
        for images, real in ((images_b, True), (images_a, False)):
            for start in range(0, len(images), batch_size):
                fd.update(images[start:start + batch_size].to(device), real=real)
        return float(fd.compute().clamp_min(0))  # tiny negatives are round-off of a zero distance


@torch.no_grad()
def conditional_accuracy(classifier: nn.Module, cvae: nn.Module, n_per_digit: int = 1000,
                         generator: torch.Generator | None = None, batch_size: int = 1000) -> float:
    """Share of the CVAE's samples asked for digit d (d = 0..9, n_per_digit each) that the classifier labels d:
    how well the label actually controls the generated class (Sohn et al. 2015 / Kingma et al. 2014 setting). Also
    for a label-supervised AAE, whose prior component d should hold digit d (Makhzani et al. 2015, Sec. 2.3)."""
    if not (cvae.spec.label_conditional or getattr(cvae, "samples_by_label", False)):
        raise Unsupported(f"{type(cvae).__name__} is not label-conditional: conditional accuracy needs a CVAE or a "
                          "label-supervised AAE")
    if n_per_digit < 1:
        raise ValueError(f"n_per_digit must be >= 1, got {n_per_digit}")
    labels = torch.arange(10).repeat_interleave(n_per_digit)
    correct = 0
    with evaluating(cvae):
        for start in range(0, len(labels), batch_size):
            y = labels[start:start + batch_size]
            images = cvae.sample(len(y), labels=y.to(cvae.device), generator=generator)
            correct += int((classifier.predict(images).cpu() == y).sum())
    return correct / len(labels)


@torch.no_grad()
def prior_mmd(model: nn.Module, images: Tensor, labels: Tensor | None = None, n: int = 1000,
              generator: torch.Generator | None = None) -> float:
    """MMD^2 (`mmd_rbf`) between codes of n test images (one sample of q(z|x) each, i.e. draws of the aggregate
    posterior q(z)) and n prior samples: how well the codes fill the prior that `sample` draws from, the quantity
    an AAE's adversary matches (Makhzani et al. 2015, eq. 1's regulariser) and a VAE's KL only encourages."""
    _check_images(images, labels)
    if n < 2:
        raise ValueError(f"prior_mmd needs n >= 2, got {n}")
    x = images[:n].to(model.device)
    y = None if labels is None else labels[:n].to(model.device)
    with evaluating(model):
        codes = model.encode(x, y).z
        prior = model.prior_sample(len(x), generator)
    return float(mmd_rbf(codes.cpu(), prior.cpu()))



# -- clusters (the categorical AAE, Makhzani et al. 2015, Secs. 5-6) -------------------------------------------------

@torch.no_grad()
def cluster_probabilities(model: nn.Module, images: Tensor, batch_size: int = 1000) -> Tensor:
    """q(y|x) (N, K) of a clustering model (spec.clusters) for grey images (N, 1, 28, 28), in eval mode."""
    with evaluating(model):
        return torch.cat([model.cluster_probabilities(images[i:i + batch_size].to(model.device)).cpu()
                          for i in range(0, len(images), batch_size)])


def best_example_cluster_labels(probabilities: Tensor, labels: Tensor) -> Tensor:
    """The AAE paper's rule (Sec. 6): cluster k takes the label of the digit x_n with the highest q(y = k | x_n).
    probabilities (N, K) of labelled (validation) digits with labels (N,); returns (K,)."""
    return labels[probabilities.argmax(0)]


def majority_cluster_labels(probabilities: Tensor, labels: Tensor, num_classes: int = 10) -> Tensor:
    """The usual rule: cluster k takes the most frequent label among the digits assigned to it (argmax q(y|x)), ties
    to the smaller label; a cluster no digit is assigned to falls back to the paper's rule. Returns (K,)."""
    assigned = probabilities.argmax(1)
    k = probabilities.shape[1]
    counts = torch.zeros(k, num_classes, dtype=torch.long)
    counts.index_put_((assigned, labels.long()), torch.ones_like(assigned), accumulate=True)
    majority = counts.argmax(1)  # the first maximum: ties go to the smaller label
    empty = counts.sum(1) == 0
    return torch.where(empty, best_example_cluster_labels(probabilities, labels), majority)


def clustering_error(probabilities: Tensor, labels: Tensor, cluster_labels: Tensor) -> float:
    """Share of digits whose cluster (argmax q(y|x)) is labelled other than their own label (the error of Table 3)."""
    return float((cluster_labels[probabilities.argmax(1)] != labels).float().mean())


def paper_rule_clustering(model: nn.Module, images: Tensor, labels: Tensor, validation_images: Tensor,
                          validation_labels: Tensor) -> tuple[Tensor, float]:
    """(each cluster's share of `images`, the clustering error on them), each cluster labelled by the paper's rule
    from the validation digits: the summary the live tab and its benchmark report."""
    probabilities = cluster_probabilities(model, images)
    cluster_labels = best_example_cluster_labels(cluster_probabilities(model, validation_images), validation_labels)
    return cluster_shares(probabilities), clustering_error(probabilities, labels, cluster_labels)


def cluster_shares(probabilities: Tensor) -> Tensor:
    """The share of the digits each cluster holds (argmax q(y|x)), (K,): 1/K each when the clusters fill evenly."""
    k = probabilities.shape[1]
    return torch.bincount(probabilities.argmax(1), minlength=k).float() / len(probabilities)

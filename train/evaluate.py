"""Evaluate exported models on their test set: from Python, `evaluate(...)` returns the records; the command line
writes them as `eval_results.json` into each checkpoint folder.

    python -m train.evaluate pretrained/vae pretrained/cvae --data-dir ../shared/data/mnist
    python -m train.evaluate --all pretrained/ --data-dir ../shared/data/mnist --limit 1000 --num-samples 500
    python -m train.evaluate pretrained/vae-2d --metrics exact ais --ais-start posterior --data-dir ../shared/data/mnist

    >>> from train.evaluate import EvalSettings, evaluate
    >>> evaluate("pretrained/vae-2d", metrics=["exact"], limit=200, data_dir="../shared/data/mnist")
    [EvalResult(name='Exact-NLL', ...)]

Each model is evaluated on the test split of the dataset it was trained on (its training_args.json; MNIST when
it has none). METRICS is the table of what can be measured; each metric names the capability it needs from what
the model declares (`model.spec`, vae_models/registry.py), and a model gets those that apply:

    name (--metrics)       needs                    record
    ais (opt-in: --ais)    needs_ais                AIS-NLL: -log p(x) by annealed importance sampling (ais.py)
                                                    from the model's prior, or (--ais-start posterior, models with a
                                                    Gaussian proposal q(z|x)) from the encoder's moment-matched
                                                    Gaussian, with the BDMC gap on digits simulated from the model;
                                                    learned_kl (AVB) also: the objective's ELBO estimate minus the
                                                    AIS log p(x); a 2-D code also: AIS-NLL minus the quadrature's
                                                    -log p(x) on the same digits (AIS's own error)
    exact (opt-in:         needs_ais and a 2-D      Exact-NLL: -log p(x) (label-conditional: -log p(x|y)) by quadrature
      --exact)             code                     on a grid over the prior's support (vae_models/quadrature.py), with
                                                    what halving the spacing and widening the support changed,
                                                    measured in the same pass
    elbo (opt-in)          a Gaussian q(z|x) or     Negative ELBO: -ELBO per digit (vae_models/posterior.py), beside
                           learned_kl; p(x) models  Exact-NLL the mean gap KL(q(z|x) || p(z|x)) of the 2-D models
    active_units (opt-in)  a Gaussian q(z|x), or    Active units: latent dimensions whose posterior mean varies over the
                           one matched to it        test digits by more than 0.01 (Burda et al. 2015, Sec. 5.2)
    conditional_accuracy   samples_by_label and     conditional accuracy: share of samples asked for digit d labelled d
                           a classifier             (CVAE, label-supervised AAE)
    is_nll                 likelihood "bound"       IS-NLL: -log p(x) (label-conditional: -log p(x|y)) by the k-sample
                                                    importance-weighted bound (Burda et al. 2015, eq. 8). Not for
                                                    "implicit" (AVB): a Gaussian fitted to its posterior made a bound
                                                    dominated by the proposal (207 nats where AIS gives ~102), so its
                                                    likelihood is AIS only
    cll                    completes_quadrants      CLL: -log p(y|x) of the missing quadrants given 1, 2 or 3 (Sohn et
                                                    al. 2015, Table 1)
    denoising              denoising                PSNR / SSIM of the clean test digits reconstructed from corrupted
                                                    ones
    classifier_fd          generative and a         classifier-feature FD (Fréchet distance of the classifier's
                           classifier               penultimate features, NOT Inception FID) between 10,000 prior
                                                    samples and the test set
    prior_mmd              prior_matched            prior MMD between codes of test digits and prior samples
    accuracy               kind "classifier"        test accuracy
    clustering             clusters, trained        Clustering error: each cluster takes the label of the held-out
                           without labels           validation digit it is surest of (the AAE paper's rule, Sec. 6),
                                                    and, beside it, the majority label of the validation digits it
                                                    holds; the error on the test digits, with the cluster shares
    semi_supervised        clusters, trained        Semi-supervised test error: argmax q(y|x) against the test labels
                           with labels              (Sec. 5, Table 2), with the number of labels it learnt from

Likelihoods are scored on the test set binarised once with a fixed seed (grey levels for continuous likelihoods).
The classifier metrics need a classifier trained on the same dataset; they are skipped otherwise (the command line
warns). The clustering metric needs validation digits held out from the training set (`--validation-examples` when
training, `validation_set`); it is skipped without them, so nothing is ever chosen on the test set. `EvalSettings` holds how the metrics are measured; the command line's options for it are generated from
its fields. `eval_results.json` holds `vae_models.export.EvalResult` records; the model card turns them into its
model-index. `--metrics NAME ...` computes just those, `--ais-only` just AIS (and the conditional accuracy),
`--exact-only` just the quadrature; all three merge their records into the existing file, replacing those of the
same name.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from vae_models import CheckpointError, ConfigError, judge_checkpoint, load_model
from vae_models.ais import SCHEDULES, STARTS, ais_log_likelihood, bdmc, simulate
from vae_models.corruption import corrupt
from vae_models.data import held_out_digits, load_mnist
from vae_models.latent import ACTIVITY_THRESHOLD, active_units
from vae_models.export import (EvalResult, ExportError, merge_eval_results, read_training_record, training_dataset,
                               write_eval_results)
from vae_models.metrics import (
    best_example_cluster_labels,
    classifier_frechet_distance,
    cluster_probabilities,
    cluster_shares,
    clustering_error,
    majority_cluster_labels,
    conditional_accuracy,
    conditional_nll_quadrants,
    importance_sampled_nll,
    prior_mmd,
    psnr,
    ssim,
)
from vae_models.posterior import ELBO_DRAWS, dataset_elbo, has_elbo
from vae_models.quadrature import NARROWER_BY, SPACING, latent_grid, quadrature_log_likelihood
from vae_models.vae import GaussianProposalMixin

from .options import add_data_options, add_field_options, choice, flag, invocation

CORRUPTIONS = (("gaussian", 0.25), ("gaussian", 0.5), ("salt_and_pepper", 0.1), ("salt_and_pepper", 0.3),
               ("block", 0.5))
FD_SAMPLES = 10_000
MMD_SAMPLES = 1_000


class EvalError(RuntimeError):
    """A checkpoint, metric or setting the evaluation cannot use; its message is one line for users."""


class SettingsError(EvalError):
    """Settings out of their range: `fields` (EvalSettings field names) break `rule`."""

    def __init__(self, fields: list[str], rule: str):
        self.fields, self.rule = fields, rule
        super().__init__(f"{', '.join(fields)} {rule}")


@dataclass(frozen=True)
class EvalSettings:
    """How the metrics are measured, the one place their defaults are declared: the command line's options are
    these fields (their help is each field's comment). The AIS defaults, 300 steps x 4 chains x 3 leapfrog steps
    (+2 pilot chains), took 2.9 CPU-min per 1000 digits on the bundled VAE, AIS at or above the k=5000 IS bound
    there (benchmarks/ais.py has the timings and the schedules compared)."""

    num_samples: int = 5000  # importance samples k per test image (IS-NLL)
    cll_samples: int = 100  # importance samples per image for the quadrant CLL
    seed: int = 0  # seed of the binarisation, the corruptions, the samples and the importance samples
    ais_steps: int = 300  # AIS: intermediate distributions T
    ais_chains: int = 4  # AIS: independent chains per digit
    ais_leapfrog: int = 3  # AIS: leapfrog steps per HMC transition
    ais_schedule: str = choice("sigmoid", SCHEDULES)  # AIS: how beta runs from 0 to 1 (ais.annealing_schedule)
    ais_start: str = choice("prior", STARTS)  # AIS: chains start from the model's prior p(z), or from the encoder's
    #                                           moment-matched Gaussian q(z|x) (models with a Gaussian proposal)
    ais_limit: int | None = None  # AIS: measure on the first M test digits only (default: all used)
    ais_batch: int = 100  # AIS: digits annealed together (x chains rows per decoder call): more is faster on a
    #                       GPU; memory grows with it
    bdmc_digits: int = 20  # AIS: digits simulated from the model for the BDMC gap
    exact_spacing: float = SPACING  # quadrature: cell side of the grid (the record says what doubling it changes)

    def __post_init__(self) -> None:
        counts = ("num_samples", "cll_samples", "ais_steps", "ais_chains", "ais_leapfrog", "ais_batch",
                  "bdmc_digits", "ais_limit")
        too_small = [name for name in counts if getattr(self, name) is not None and getattr(self, name) < 1]
        if too_small:
            raise SettingsError(too_small, "must be >= 1")
        if not self.exact_spacing > 0:
            raise SettingsError(["exact_spacing"], "must be > 0")
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise SettingsError([f.name], f"must be one of {list(choices)}")

    @property
    def ais(self) -> dict:
        """The keyword arguments of ais_log_likelihood / bdmc these settings choose."""
        return {"num_steps": self.ais_steps, "num_chains": self.ais_chains, "leapfrog_steps": self.ais_leapfrog,
                "schedule": self.ais_schedule, "start": self.ais_start}


def test_set(data_dir: str | None, limit: int | None, seed: int, dataset: str = "mnist",
             source: str = "idx"):
    """(grey images float (N,1,28,28) in [0,1], binarised images, labels) of `dataset`'s test split. The
    binarisation is drawn once with `seed`, so every model is scored on the same binary digits (the usual
    dynamically binarised protocol)."""
    images, labels = load_mnist("test", data_dir=data_dir, dataset=dataset, source=source)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    grey = images.float().div(255).unsqueeze(1)
    binary = torch.bernoulli(grey, generator=torch.Generator().manual_seed(seed))
    return grey, binary, labels


@torch.no_grad()
def sample_images(model, n: int, seed: int, batch_size: int = 1000) -> torch.Tensor:
    """n prior samples; label-conditional models get the digits 0..9 in turn."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, batch_size):
        count = min(batch_size, n - start)
        labels = (torch.arange(start, start + count) % 10).to(model.device) if model.spec.label_conditional else None
        out.append(model.sample(count, labels=labels, generator=g).cpu())
    return torch.cat(out)


@torch.no_grad()
def reconstruct(model, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    return torch.cat([model.reconstruct(images[i:i + batch_size].to(model.device)).cpu()
                      for i in range(0, len(images), batch_size)])


@dataclass(frozen=True)
class Scoring:
    """One model on one test set (test_set(...) of `dataset`): what every metric is computed from."""

    model: object
    grey: torch.Tensor
    binary: torch.Tensor
    labels: torch.Tensor
    settings: EvalSettings
    classifier: object | None  # trained on `dataset`, or None
    dataset: str
    command: str  # written into every record
    validation: tuple | None = None  # (grey images, labels) held out from the training set (validation_set), or None
    training_args: dict = dataclasses.field(default_factory=dict)  # the export's TrainConfig fields, when it has them

    @property
    def binarised(self) -> bool:
        """Scored on binary digits: what the model trains on (grey levels for a model whose spec says so)."""
        return self.model.spec.binarize_for(self.model.config) != "none"

    @property
    def scored(self) -> torch.Tensor:
        """The digits the likelihoods are of: binarised for Bernoulli pixels, grey levels otherwise."""
        return self.binary if self.binarised else self.grey

    @property
    def data_note(self) -> str:
        return f"test set binarised once (seed {self.settings.seed})" if self.binarised else "grey-level test set"

    @property
    def n(self) -> int:
        return len(self.grey)

    def result(self, name: str, kind: str, value: float, estimator: str, **details) -> EvalResult:
        """A record on this test set; its details start with the number of test images (a metric on fewer says so)."""
        return EvalResult(name, kind, round(float(value), 4), self.dataset, "test", estimator,
                          {"num_images": self.n, **details}, self.command)


def has_gaussian_proposal(model) -> bool:
    """A Gaussian q(z|x) to start AIS from and to take E_q[z|x] of (`posterior_gaussian`): the VAEs' encoders, AVB's
    moment-matched Gaussian."""
    return isinstance(model, GaussianProposalMixin)


def ais_entry(model, scored, labels, settings: EvalSettings) -> tuple[float, str, dict, torch.Tensor]:
    """(mean AIS-NLL, estimator text, details, per-digit NLL) on the first settings.ais_limit scored digits, with
    the BDMC gap on settings.bdmc_digits digits simulated from the model (same schedule and start). The labels are
    given to label-conditional models (cvae: -log p(x|y)); a label-supervised AAE is scored by its marginal p(x),
    like the unsupervised one."""
    m = len(scored) if settings.ais_limit is None else min(settings.ais_limit, len(scored))
    y = labels[:m] if model.spec.label_conditional else None
    result = ais_log_likelihood(model, scored[:m], y, generator=torch.Generator().manual_seed(settings.seed),
                                progress=True, batch_size=settings.ais_batch, **settings.ais)
    nll = -result.log_px
    g = torch.Generator().manual_seed(settings.seed + 1)
    # Label-conditional models, and priors made of components (whose AIS is stratified by component): the BDMC
    # sandwich is of log p(x|c), c the label / component that generated the digit.
    components = 10 if model.spec.label_conditional else model.prior_components
    sim_labels = (torch.arange(settings.bdmc_digits) % components).to(model.device) if components else None
    codes, images = simulate(model, settings.bdmc_digits, sim_labels, g)
    sandwich = bdmc(model, codes, images, sim_labels, generator=g, progress=True, batch_size=settings.ais_batch,
                    **settings.ais)
    what = "-log p(x|y)" if model.spec.label_conditional else "-log p(x)"
    start = (f"from the model's prior ({model.prior_name})" if settings.ais_start == "prior"
             else "from the encoder's moment-matched Gaussian q(z|x)")
    estimator = (f"{what} in nats by annealed importance sampling (Neal 2001; Wu et al. 2017) {start} with HMC "
                 f"transitions, {settings.ais_steps} steps ({settings.ais_schedule} schedule), {settings.ais_chains} "
                 f"chains per digit, {settings.ais_leapfrog} leapfrog steps; a stochastic lower bound on log p(x); "
                 f"BDMC gap (Grosse et al. 2015) on {settings.bdmc_digits} simulated digits"
                 + (f"; stratified over the prior's {model.prior_components} components (BDMC on log p(x|c))"
                    if model.prior_components else ""))
    details = {"num_images": m, "std_error": round(float(nll.std() / math.sqrt(m)), 4), "units": "nats",
               **settings.ais, "pilot_chains": result.settings["pilot_chains"],
               "acceptance": round(float(result.acceptance.mean()), 3),
               "stratified_components": model.prior_components,
               "bdmc_gap": round(sandwich.gap, 4), "bdmc_digits": settings.bdmc_digits,
               "bdmc_lower": round(float(sandwich.lower.mean()), 4),
               "bdmc_upper": round(float(sandwich.upper.mean()), 4)}
    return float(nll.mean()), estimator, details, nll


def ais_records(s: Scoring) -> list[EvalResult]:
    """AIS-NLL; for a learned KL (AVB) also whether the objective's ELBO estimate stays below the AIS log p(x); for
    a 2-D model, AIS's own error: its difference from the exact -log p(x) on the same digits."""
    model = s.model
    value, estimator, details, nll = ais_entry(model, s.scored, s.labels, s.settings)
    records = [s.result("AIS-NLL", "nll", value, f"{estimator}; {s.data_note}", **details)]
    if has_exact_likelihood(model):  # quadrature on the AIS digits costs seconds and measures AIS's error
        m = len(nll)
        y = s.labels[:m] if model.spec.label_conditional else None
        exact = -quadrature_log_likelihood(model, s.scored[:m], y,
                                           latent_grid(model, spacing=s.settings.exact_spacing)).log_px
        error = nll - exact
        records.append(s.result(
            "AIS-NLL minus Exact-NLL", "nll_difference", error.mean(),
            f"mean over the same {m} test digits of the AIS-NLL above minus -log p(x) by quadrature (spacing "
            f"{s.settings.exact_spacing:g}, Exact-NLL's grid); >= 0 up to noise, since AIS under-estimates log p(x) "
            f"in expectation; to compare with the BDMC gap; {s.data_note}",
            num_images=m, std_error=round(float(error.std() / math.sqrt(m)), 4), units="nats",
            exact_nll=round(float(exact.mean()), 4), bdmc_gap=details["bdmc_gap"],
            within_bdmc_gap=bool(abs(float(error.mean())) <= details["bdmc_gap"])))
    if model.spec.learned_kl:  # does the objective's learned KL agree with the likelihood measured by AIS?
        m = len(nll)
        with torch.no_grad():
            torch.manual_seed(s.settings.seed)
            objective = torch.cat([model.objective_elbo(s.scored[i:min(i + 100, m)].to(model.device)).cpu()
                                   for i in range(0, m, 100)])
        gap = objective + nll  # objective ELBO - AIS log p(x), per digit
        records.append(s.result(
            "Objective ELBO minus AIS log-likelihood", "elbo_gap", gap.mean(),
            "mean over test digits of the training objective's own ELBO estimate (-(reconstruction + T's KL "
            "estimate), 8 noise draws) minus the AIS estimate of log p(x); > 0 means T underestimates the KL "
            f"(the ELBO cannot exceed log p(x)); {s.data_note}",
            num_images=m, std_error=round(float(gap.std() / math.sqrt(m)), 4), units="nats",
            objective_elbo=round(float(objective.mean()), 4)))
    return records


def has_exact_likelihood(model) -> bool:
    """A 2-D code and the AIS interface (spec.needs_ais): log p(x) by quadrature is affordable and exact."""
    return model.spec.needs_ais and model.config.latent_dim == 2


def exact_entry(model, scored, labels, spacing: float = SPACING) -> tuple[float, str, dict]:
    """(mean -log p(x) by quadrature, estimator text, details) on every scored digit: the grid over the prior's
    support, and the changes from halving its spacing and widening its support (vae_models/quadrature.py)."""
    y = labels if model.spec.label_conditional else None
    grid = latent_grid(model, spacing=spacing)
    result = quadrature_log_likelihood(model, scored, y, grid, progress=True)
    nll = -result.log_px
    n, h = len(nll), grid.spacing
    what = "-log p(x|y)" if model.spec.label_conditional else "-log p(x)"
    estimator = (f"{what} in nats by quadrature: the midpoint rule on {len(grid.index)} cells of side {h} covering "
                 f"the prior's support (log p(z) within {grid.support:g} nats of its peak; vae_models/quadrature.py); "
                 f"halving the spacing from {2 * h:g} moved the mean by at most "
                 f"{result.mean_spacing_change:.2g}, widening the support by {NARROWER_BY:g} nats by "
                 f"{float(result.support_change.mean()):.2g}")
    details = {"num_images": n, "std_error": round(float(nll.std() / math.sqrt(n)), 4), "units": "nats",
               "spacing": h, "support_nats": grid.support, "grid_cells": len(grid.index),
               "extent": round(grid.half_cells * h, 4),
               "spacing_change_of_mean": round(result.mean_spacing_change, 5),
               "spacing_change_per_digit_mean": round(float(result.spacing_change.mean()), 5),
               "spacing_change_per_digit_max": round(float(result.spacing_change.max()), 4),
               "support_change_per_digit_max": float(f"{float(result.support_change.max()):.2g}")}
    return float(nll.mean()), estimator, details


def exact_records(s: Scoring) -> list[EvalResult]:
    value, estimator, details = exact_entry(s.model, s.scored, s.labels, s.settings.exact_spacing)
    return [s.result("Exact-NLL", "nll", value, f"{estimator}; {s.data_note}", **details)]


def conditional_accuracy_records(s: Scoring) -> list[EvalResult]:
    per_digit = max(1, min(FD_SAMPLES, s.n) // 10)
    value = conditional_accuracy(s.classifier, s.model, per_digit, torch.Generator().manual_seed(s.settings.seed))
    return [s.result("Conditional accuracy", "accuracy", value, f"share of {per_digit} samples per digit d that the "
                     "classifier labels d", num_samples=10 * per_digit)]


def gets_is_nll(spec) -> bool:
    """The importance-weighted bound is reported for explicit posteriors only ("bound"); see the docstring."""
    return spec.has_likelihood_bound and spec.likelihood == "bound"


def is_nll_records(s: Scoring) -> list[EvalResult]:
    spec, k = s.model.spec, s.settings.num_samples
    nll = importance_sampled_nll(s.model, s.scored, s.labels if spec.label_conditional else None, num_samples=k,
                                 progress=True)
    what = "-log p(x|y)" if spec.label_conditional else "-log p(x)"
    return [s.result(f"IS-NLL (k={k})", "nll", nll.mean(), f"{what} in nats, importance-weighted bound (Burda et al. "
                     f"2015, eq. 8) with k={k}; {s.data_note}", std_error=round(float(nll.std() / math.sqrt(s.n)), 4),
                     units="nats")]


def cll_records(s: Scoring) -> list[EvalResult]:
    records = []
    for given in (1, 2, 3):
        nll = conditional_nll_quadrants(s.model, s.binary, given, num_samples=s.settings.cll_samples, progress=True,
                                        generator=torch.Generator().manual_seed(s.settings.seed))
        estimator = ("exact" if s.model.spec.likelihood == "exact"
                     else f"importance sampled, {s.settings.cll_samples} samples")
        records.append(s.result(
            f"CLL ({given} quadrant{'s' if given > 1 else ''} given)", "cll", nll.mean(),
            f"-log p(y|x) of the missing quadrants in nats (Sohn et al. 2015, Table 1), {estimator}; {s.data_note}",
            std_error=round(float(nll.std() / math.sqrt(s.n)), 4), units="nats"))
    return records


def denoising_records(s: Scoring) -> list[EvalResult]:
    records = []
    for kind, level in tqdm(CORRUPTIONS, desc="denoising", leave=False):
        noisy = corrupt(s.grey, kind, level, generator=torch.Generator().manual_seed(s.settings.seed))
        clean = reconstruct(s.model, noisy)
        tag = f"{kind} {level}"
        records.append(s.result(
            f"Denoising PSNR ({tag})", "psnr", psnr(clean, s.grey), "PSNR in dB of the reconstruction of the "
            "corrupted grey-level test digits against the clean ones", input_psnr=round(float(psnr(noisy, s.grey)), 4),
            corruption=kind, level=level, units="dB"))
        records.append(s.result(
            f"Denoising SSIM ({tag})", "ssim", ssim(clean, s.grey), "SSIM of the reconstruction of the corrupted "
            "grey-level test digits against the clean ones", input_ssim=round(float(ssim(noisy, s.grey)), 4),
            corruption=kind, level=level))
    return records


def classifier_fd_records(s: Scoring) -> list[EvalResult]:
    samples = sample_images(s.model, min(FD_SAMPLES, s.n), s.settings.seed)
    value = classifier_frechet_distance(s.classifier, samples, s.grey)
    return [s.result("Classifier-feature FD", "classifier_fd", value,
                     "Fréchet distance between Gaussians fitted to the classifier's penultimate features of "
                     f"{len(samples)} prior samples (pixel means) and the grey-level test digits; not Inception FID",
                     num_samples=len(samples))]


def prior_mmd_records(s: Scoring) -> list[EvalResult]:
    m = min(MMD_SAMPLES, s.n)
    value = prior_mmd(s.model, s.scored, None, m, torch.Generator().manual_seed(s.settings.seed))
    return [s.result("Prior MMD", "mmd", value, f"unbiased MMD^2 (Gretton et al. 2012), sum of RBF kernels, between "
                     f"codes of {m} test digits (one posterior sample each) and {m} prior samples; {s.data_note}",
                     num_samples=m)]


def active_units_records(s: Scoring) -> list[EvalResult]:
    """Burda et al. 2015, Sec. 5.2: unit u is active if Cov_x(E_q[z_u|x]) > 1e-2, over the test digits."""
    means = []
    with torch.no_grad():
        for start in range(0, s.n, 1000):
            x = s.scored[start:start + 1000].to(s.model.device)
            y = s.labels[start:start + 1000].to(s.model.device) if s.model.spec.label_conditional else None
            means.append(s.model.posterior_gaussian(x, y)[0].double().cpu())
    activity = torch.cat(means).var(dim=0)
    return [s.result("Active units", "active_units", active_units(activity),
                     f"latent dimensions u with Cov_x(E_q[z_u|x]) > {ACTIVITY_THRESHOLD:g} over the {s.n} test digits "
                     f"(Burda et al. 2015, Sec. 5.2), E_q[z|x] the posterior's mean (an implicit posterior's from its "
                     f"moments); {s.data_note}",
                     latent_dim=len(activity), threshold=ACTIVITY_THRESHOLD,
                     activity=[round(float(a), 4) for a in activity.sort(descending=True).values])]


def has_variational_bound(model) -> bool:
    """An ELBO to measure (vae_models.posterior.has_elbo: a Gaussian q, or the objective's learned KL) of p(x)."""
    return not model.spec.label_conditional and has_elbo(model, torch.zeros(1, 1, 28, 28))


def elbo_records(s: Scoring) -> list[EvalResult]:
    elbo = dataset_elbo(s.model, s.scored, seed=s.settings.seed)
    negative = -elbo.values
    how = (f"the training objective's own estimate (KL learned by T) over {ELBO_DRAWS} noise draws per digit"
           if s.model.spec.learned_kl else "two draws of q(z|x) per digit, the KL to the prior in closed form "
           "where it is N(0, I)")
    return [s.result("Negative ELBO", "elbo", negative.mean(), f"-ELBO in nats per digit: {how} "
                     f"(vae_models.posterior.dataset_elbo); {s.data_note}",
                     std_error=round(float(negative.std() / math.sqrt(s.n)), 4), monte_carlo_error=round(elbo.error, 4),
                     units="nats")]


def accuracy_records(s: Scoring) -> list[EvalResult]:
    accuracy = (s.model.predict(s.grey) == s.labels).float().mean()
    return [s.result("Test accuracy", "accuracy", accuracy, "top-1 accuracy on the grey-level test digits")]


def binomial_error(percent: float, n: int) -> float:
    """The standard error of an error rate (in %) measured on n test digits: 100 sqrt(p (1 - p) / n)."""
    p = percent / 100
    return round(100 * math.sqrt(p * (1 - p) / n), 4)


def clustering_records(s: Scoring) -> list[EvalResult]:
    """The AAE paper's clustering error (Sec. 6, Table 3) and the majority-label rule, on the grey test digits; each
    cluster's label comes from the held-out validation digits, never from the test set."""
    val_grey, val_labels = s.validation
    val = cluster_probabilities(s.model, val_grey)
    test = cluster_probabilities(s.model, s.grey)
    shares = cluster_shares(test)
    k = test.shape[1]
    common = {"clusters": k, "validation_digits": len(val_labels), "units": "%",
              "smallest_cluster_share": round(float(shares.min()), 4),
              "largest_cluster_share": round(float(shares.max()), 4), "empty_clusters": int((shares == 0).sum())}
    records = []
    for rule, cluster_labels, how in (
            ("paper rule", best_example_cluster_labels(val, val_labels),
             "each cluster takes the label of the validation digit with the highest q(y = cluster | x) (Makhzani et "
             "al. 2015, Sec. 6)"),
            ("majority rule", majority_cluster_labels(val, val_labels),
             "each cluster takes the most frequent label of the validation digits assigned to it")):
        error = 100 * clustering_error(test, s.labels, cluster_labels)
        records.append(s.result(
            f"Clustering error ({rule})", "error", error,
            f"% of the grey-level test digits whose cluster (argmax q(y|x) of {k}) is labelled other than their own "
            f"label; {how}, from the {len(val_labels)} digits held out of the training set",
            **common, std_error=binomial_error(error, s.n), cluster_labels=cluster_labels.tolist(),
            cluster_shares=[round(v, 4) for v in shares.tolist()]))
    return records


def semi_supervised_records(s: Scoring) -> list[EvalResult]:
    test = cluster_probabilities(s.model, s.grey)
    error = 100 * float((test.argmax(1) != s.labels).float().mean())
    labelled = s.training_args.get("labelled_examples", "an unknown number of")
    labelled = "every training digit's" if labelled is None else labelled
    return [s.result("Semi-supervised test error", "error", error,
                     f"% of the grey-level test digits whose most probable class under q(y|x) is not their label; "
                     f"the model learnt from {labelled} labels (Makhzani et al. 2015, Sec. 5, Table 2)",
                     units="%", std_error=binomial_error(error, s.n),
                     labelled_examples=s.training_args.get("labelled_examples"),
                     label_draw_seed=s.training_args.get("seed"))]


@dataclass(frozen=True)
class Metric:
    """One row of the docstring's table."""

    name: str  # what users select it by (evaluate(metrics=[...]), --metrics)
    applies: Callable[[object], bool]  # the capability it needs, from what the model declares
    compute: Callable[[Scoring], list[EvalResult]]
    needs_classifier: bool = False  # skipped without a classifier trained on the model's dataset
    needs_validation: bool = False  # skipped without validation digits held out from the training set
    default: bool = True  # computed when no metrics are named; AIS and the quadrature are costly, so opt-in


# In the order they are computed and written. The IS-NLL draws its importance samples from torch's global generator,
# seeded by `evaluate`; AVB's objective check reseeds it, so the AIS records come first.
METRICS = {m.name: m for m in (
    Metric("ais", lambda model: model.spec.needs_ais, ais_records, default=False),
    Metric("exact", has_exact_likelihood, exact_records, default=False),
    Metric("elbo", has_variational_bound, elbo_records, default=False),
    Metric("active_units", has_gaussian_proposal, active_units_records, default=False),
    Metric("conditional_accuracy", lambda model: model.spec.generative and model.samples_by_label,
           conditional_accuracy_records, needs_classifier=True),
    Metric("is_nll", lambda model: gets_is_nll(model.spec), is_nll_records),
    Metric("cll", lambda model: model.spec.completes_quadrants, cll_records),
    Metric("denoising", lambda model: model.spec.denoising, denoising_records),
    Metric("classifier_fd", lambda model: model.spec.generative, classifier_fd_records, needs_classifier=True),
    Metric("prior_mmd", lambda model: model.spec.prior_matched, prior_mmd_records),
    Metric("accuracy", lambda model: model.spec.classifies, accuracy_records),
    Metric("clustering", lambda model: model.spec.clusters and not model.samples_by_label, clustering_records,
           needs_validation=True),
    Metric("semi_supervised", lambda model: model.spec.clusters and model.samples_by_label, semi_supervised_records),
)}
DEFAULT_METRICS = [m.name for m in METRICS.values() if m.default]
AIS_ONLY = ["ais", "conditional_accuracy"]  # what --ais-only has always computed (the bundled records' commands)


def select_metrics(model, names: list[str] | None = None, settings: EvalSettings = EvalSettings()) -> list[Metric]:
    """The metrics named (None: the default ones) that apply to `model`, in METRICS's order; the others named are
    skipped. Unknown names, and AIS from the posterior of a model without a Gaussian proposal, are EvalErrors."""
    unknown = sorted(set(names or ()) - set(METRICS))
    if unknown:
        raise EvalError(f"unknown metrics {unknown}; known: {list(METRICS)}")
    chosen = [m for m in METRICS.values() if (m.default if names is None else m.name in names) and m.applies(model)]
    if settings.ais_start == "posterior" and METRICS["ais"] in chosen and not has_gaussian_proposal(model):
        raise EvalError(f"AIS from the posterior (ais_start='posterior', --ais-start posterior) needs a model with a "
                        f"Gaussian proposal q(z|x) (posterior_gaussian: the VAEs, AVB); a "
                        f"{model.config.model_type!r} model has none: start from the prior")
    return chosen


def command_line(checkpoint: str, metrics: list[str] | None, settings: EvalSettings, *, data_dir: str | None = None,
                 data_source: str = "idx", limit: int | None = None, classifier: str | None = None) -> str:
    """The `python -m train.evaluate` command computing the records evaluate(...) computes with these arguments:
    what the records of a Python call name as their command. Settings appear where they differ from the defaults."""
    argv = [checkpoint] + (["--metrics", *metrics] if metrics is not None else [])
    for f in dataclasses.fields(EvalSettings):
        if getattr(settings, f.name) != f.default:
            argv += [flag(f.name), str(getattr(settings, f.name))]
    for option, value in (("--data-dir", data_dir), ("--data-source", None if data_source == "idx" else data_source),
                          ("--limit", limit), ("--classifier", classifier)):
        argv += [option, str(value)] if value is not None else []
    return shlex.join(["python", "-m", "train.evaluate", *argv])


def validation_set(folder: str | os.PathLike, data_dir: str | None = None, data_source: str = "idx"):
    """(grey images (n,1,28,28), labels) of the n training digits an export's run held out (the last n of the
    training split, TrainConfig.validation_examples), or None when it held none out or has no training record."""
    record = read_training_record(folder)
    n = record.args.get("validation_examples", 0) if record else 0
    return held_out_digits(n, data_dir, record.dataset, data_source) if n else None


def evaluate(model, metrics: list[str] | None = None, data=None, *, settings: EvalSettings = EvalSettings(),
             classifier=None, dataset: str | None = None, data_dir: str | None = None, data_source: str = "idx",
             limit: int | None = None, device: str | torch.device = "cpu", command: str | None = None,
             validation=None, training_args: dict | None = None) -> list[EvalResult]:
    """The records of `metrics` (names of METRICS; None: the default ones) that apply to `model`.

    model: an export folder (loaded with vae_models.load_model onto `device`; its dataset is the one it was trained
    on) or a loaded model (of `dataset`, MNIST unless told). data: test_set(...) of that dataset; None loads its
    first `limit` test digits from data_dir / data_source. classifier: a classifier trained on that dataset, or its
    export folder; None skips the classifier-judged metrics. command: written into each record; None: the
    equivalent command line (command_line). validation: (grey images, labels) held out of the training set; None:
    the export's own (validation_set), if any, else the metrics needing it are skipped. training_args: how the
    model was trained (an export's training record's args; read from the folder when None). torch's global
    generator is seeded with settings.seed first, so the records depend only on the arguments."""
    path = str(model) if isinstance(model, (str, os.PathLike)) else None
    if path is not None:
        dataset = dataset or training_dataset(path)
        model = load_model(path).to(device)
        if validation is None:
            validation = validation_set(path, data_dir, data_source)
        if training_args is None:
            record = read_training_record(path)
            training_args = record.args if record else {}
    dataset = dataset or "mnist"
    chosen = select_metrics(model, metrics, settings)
    classifier_path = str(classifier) if isinstance(classifier, (str, os.PathLike)) else None
    if classifier_path is not None:
        classifier, judged = load_classifier(classifier_path, device)
        classifier = classifier if judged == dataset else None
    if data is None:
        data = test_set(data_dir, limit, settings.seed, dataset, data_source)
    if command is None:
        command = command_line(path or "MODEL", metrics, settings, data_dir=data_dir, data_source=data_source,
                               limit=limit, classifier=classifier_path)
    torch.manual_seed(settings.seed)  # the importance samples themselves
    scoring = Scoring(model, *data, settings, classifier, dataset, command, validation, training_args or {})
    return [r for m in chosen if (classifier is not None or not m.needs_classifier)
            and (validation is not None or not m.needs_validation) for r in m.compute(scoring)]


def stale_for(spec):
    """Which of an export's existing records no longer hold for a model of `spec`, when new ones are merged: an IS-NLL
    record of a model that no longer gets one (avb)."""
    return lambda record: record.name.startswith("IS-NLL") and not gets_is_nll(spec)


def load_classifier(path: str, device: str | torch.device = "cpu"):
    """(classifier, the dataset it was trained on), or (None, None) when there is none at `path`."""
    if not os.path.isdir(path):
        print(f"warning: no classifier at {path}: skipping the classifier-feature FD and conditional accuracy "
              "(train one with `python -m train --model classifier ...` or pass --classifier)", file=sys.stderr)
        return None, None
    classifier = load_model(path).to(device)
    if not classifier.spec.classifies:
        raise EvalError(f"--classifier {path} holds a {classifier.config.model_type!r} model, not a classifier")
    return classifier, training_dataset(path)


SETTINGS = [f.name for f in dataclasses.fields(EvalSettings)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; `.settings` is their EvalSettings, `.metrics` the names to compute (None: the defaults) and
    `.merge` whether the records join the existing file."""
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="*", help="exported model folders (config.json + model.safetensors)")
    p.add_argument("--all", metavar="DIR", help="evaluate every model folder directly inside DIR")
    add_data_options(p)
    p.add_argument("--limit", type=int, help="use only the first N test images (quick checks)")
    p.add_argument("--classifier", default=f"pretrained/{judge_checkpoint()}",
                   help="the MNIST classifier for FD / conditional accuracy; skipped with a warning if missing")
    p.add_argument("--output", default="eval_results.json", help="file name written inside each checkpoint folder")
    p.add_argument("--device", default="cpu", help="torch device the models run on (cpu, cuda, cuda:1, ...); the "
                   "random draws come from CPU generators, so the estimates do not depend on it beyond rounding")
    p.add_argument("--metrics", nargs="+", choices=list(METRICS), metavar="NAME",
                   help=f"compute only these ({', '.join(METRICS)}) and merge them into the existing file")
    add_field_options(p, EvalSettings, [name for name in SETTINGS if not name.startswith(("ais_", "bdmc_", "exact_"))])
    ais = p.add_argument_group("annealed importance sampling (models whose spec declares needs_ais)")
    ais.add_argument("--ais", action="store_true", help="also measure AIS-NLL and its BDMC gap")
    ais.add_argument("--ais-only", action="store_true", help="measure only AIS-NLL (and the conditional accuracy); "
                     "merge them into the existing eval_results.json")
    add_field_options(ais, EvalSettings, [name for name in SETTINGS if name.startswith(("ais_", "bdmc_"))])
    exact = p.add_argument_group("quadrature (models with a 2-D code whose spec declares needs_ais)")
    exact.add_argument("--exact", action="store_true", help="also measure Exact-NLL by quadrature over the prior")
    exact.add_argument("--exact-only", action="store_true", help="measure only Exact-NLL; merge it into the existing "
                       "eval_results.json")
    add_field_options(exact, EvalSettings, [name for name in SETTINGS if name.startswith("exact_")])
    args = p.parse_args(argv)
    try:
        args.settings = EvalSettings(**{name: getattr(args, name) for name in SETTINGS})
    except SettingsError as exc:
        p.error(f"{', '.join(flag(name) for name in exc.fields)} {exc.rule}")
    only = (args.metrics or []) + (AIS_ONLY if args.ais_only else []) + (["exact"] if args.exact_only else [])
    args.merge = bool(only)
    extra = (["ais"] if args.ais else []) + (["exact"] if args.exact else [])
    args.metrics = list(dict.fromkeys(only)) if only else (DEFAULT_METRICS + extra if extra else None)
    if args.all:
        root = Path(args.all)
        if not root.is_dir():
            p.error(f"--all: {root} is not a folder")
        args.checkpoints += sorted(str(d) for d in root.iterdir() if (d / "config.json").is_file())
    if not args.checkpoints:
        p.error("give checkpoint folders or --all DIR")
    if args.limit is not None and args.limit < 10:
        p.error("--limit must be >= 10")
    try:
        args.device = torch.device(args.device)
        torch.empty(0, device=args.device)
    except (RuntimeError, AssertionError) as exc:  # an unknown device name, or one this machine lacks
        p.error(f"--device {args.device}: {str(exc).splitlines()[0]}")
    if os.sep in args.output or args.output in ("", ".", ".."):
        p.error("--output is a file name, written inside each checkpoint folder")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = invocation("train.evaluate", argv)
    try:
        models = {path: (load_model(path).to(args.device), training_dataset(path)) for path in args.checkpoints}
        for model, _ in models.values():  # refuse an impossible request before anything is computed
            select_metrics(model, args.metrics, args.settings)
        classifier, classifier_dataset = load_classifier(args.classifier, args.device)
        data = {dataset: test_set(args.data_dir, args.limit, args.settings.seed, dataset, args.data_source)
                for dataset in sorted({dataset for _, dataset in models.values()})}
    except (CheckpointError, ConfigError, EvalError, ExportError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = []
    for path, (model, dataset) in models.items():
        judge = classifier if dataset == classifier_dataset else None
        if classifier is not None and judge is None:
            print(f"warning: {path} was trained on {dataset}, the classifier on {classifier_dataset}: skipping "
                  "its classifier-judged metrics", file=sys.stderr)
        validation = validation_set(path, args.data_dir, args.data_source)
        if validation is None and any(m.needs_validation for m in select_metrics(model, args.metrics, args.settings)):
            print(f"warning: {path} held no validation digits out of its training set: skipping its clustering "
                  "error (train with --validation-examples N)", file=sys.stderr)
        record = read_training_record(path)
        results = evaluate(model, args.metrics, data[dataset], settings=args.settings, classifier=judge,
                           dataset=dataset, command=command, validation=validation,
                           training_args=record.args if record else {})
        if args.merge:
            merge_eval_results(path, results, args.output, stale=stale_for(model.spec))
        else:
            write_eval_results(path, results, args.output)
        rows += [(Path(path).name, model.config.model_type, r.name, r.value) for r in results]
        print(f"wrote {Path(path) / args.output} ({len(results)} results)", file=sys.stderr)
    widths = [max(len(str(row[i])) for row in rows + [("model", "type", "metric", "value")]) for i in range(4)]
    for row in [("model", "type", "metric", "value"), *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

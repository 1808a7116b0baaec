"""Evaluate exported models on their test set and write `eval_results.json` into each checkpoint folder.

    python -m train.evaluate pretrained/vae pretrained/cvae --data-dir ../shared/data/mnist
    python -m train.evaluate --all pretrained/ --data-dir ../shared/data/mnist --limit 1000 --num-samples 500

Each model is evaluated on the test split of the dataset it was trained on (its training_args.json; MNIST when
it has none), and gets the metrics its declaration (`model.spec`, vae_models/registry.py) says apply:

    likelihood "bound"                 IS-NLL: -log p(x) (label-conditional: -log p(x|y)) by the k-sample
    (generative models)                importance-weighted bound (Burda et al. 2015, eq. 8) on the test set
                                       binarised once with a fixed seed. Not for "implicit" (AVB): a Gaussian
                                       fitted to its posterior made a bound dominated by the proposal (207 nats
                                       where AIS gives ~102), so its likelihood is AIS only
    needs_ais, with --ais              AIS-NLL: -log p(x) by annealed importance sampling from the model's own prior
                                       (vae_models/ais.py) with the BDMC gap on digits simulated from the model;
                                       learned_kl (AVB) also: the objective's ELBO estimate minus the AIS log p(x)
    needs_ais and a 2-D code,          Exact-NLL: -log p(x) (label-conditional: -log p(x|y)) by quadrature on a grid
    with --exact                       over the prior's support (vae_models/quadrature.py), with what halving the
                                       spacing and widening the support changed, measured in the same pass
    completes_quadrants                CLL: -log p(y|x) of the missing quadrants given 1, 2 or 3 (Sohn et al.
                                       2015, Table 1)
    denoising                          PSNR / SSIM of the clean test digits reconstructed from corrupted ones
    generative                         classifier-feature FD (Fréchet distance of the classifier's penultimate
                                       features, NOT Inception FID) between 10,000 prior samples and the test set
    samples_by_label                   conditional accuracy: share of samples asked for digit d labelled d (CVAE,
                                       label-supervised AAE)
    prior_matched                      prior MMD between codes of test digits and prior samples
    kind "classifier"                  test accuracy

The classifier metrics need a classifier trained on the same dataset; they are skipped, with a warning, otherwise.
`eval_results.json` holds `vae_models.export.EvalResult` records; the model card turns them into its model-index.
`--ais-only` computes just the AIS entries (and the conditional accuracy), `--exact-only` just the quadrature entry,
and both merge them into the existing file, replacing entries of the same name.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from vae_models import CheckpointError, ConfigError, judge_checkpoint, load_model
from vae_models.corruption import corrupt
from vae_models.ais import SCHEDULES, ais_log_likelihood, bdmc, simulate
from vae_models.data import environment_options, load_mnist
from vae_models.export import EvalResult, ExportError, read_eval_results, training_dataset, write_eval_results
from vae_models.quadrature import NARROWER_BY, SPACING, latent_grid, quadrature_log_likelihood
from vae_models.metrics import (
    classifier_frechet_distance,
    conditional_accuracy,
    conditional_nll_quadrants,
    importance_sampled_nll,
    prior_mmd,
    psnr,
    ssim,
)

CORRUPTIONS = (("gaussian", 0.25), ("gaussian", 0.5), ("salt_and_pepper", 0.1), ("salt_and_pepper", 0.3),
               ("block", 0.5))
# 300 steps x 4 chains x 3 leapfrog steps (+2 pilot chains): 2.9 CPU-min per 1000 digits on the bundled VAE,
# AIS at or above the k=5000 IS bound there (benchmarks/ais.py has the timings and the schedules compared).
AIS_DEFAULTS = {"num_steps": 300, "num_chains": 4, "leapfrog_steps": 3}
FD_SAMPLES = 10_000
MMD_SAMPLES = 1_000


class EvalError(RuntimeError):
    """A checkpoint or option the evaluation cannot use; its message is one line for users."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="*", help="exported model folders (config.json + model.safetensors)")
    p.add_argument("--all", metavar="DIR", help="evaluate every model folder directly inside DIR")
    p.add_argument("--data-dir", default=environment_options()["data_dir"], help="folder with the MNIST IDX files "
                   "(default: $VAE_FAMILY_DATA_DIR, else the download cache)")
    p.add_argument("--data-source", default=environment_options()["source"], choices=["idx", "hub"],
                   help="idx: IDX files (--data-dir or the download cache); hub: the Hub's parquet dataset repo")
    p.add_argument("--num-samples", type=int, default=5000, help="importance samples k per test image (IS-NLL)")
    p.add_argument("--cll-samples", type=int, default=100, help="importance samples per image for the quadrant CLL")
    p.add_argument("--limit", type=int, help="use only the first N test images (quick checks)")
    p.add_argument("--classifier", default=f"pretrained/{judge_checkpoint()}",
                   help="the MNIST classifier for FD / conditional accuracy; skipped with a warning if missing")
    p.add_argument("--output", default="eval_results.json", help="file name written inside each checkpoint folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the binarisation, corruptions and samples")
    p.add_argument("--device", default="cpu", help="torch device the models run on (cpu, cuda, cuda:1, ...); the "
                   "random draws come from CPU generators, so the estimates do not depend on it beyond rounding")
    ais = p.add_argument_group("annealed importance sampling (models whose spec declares needs_ais)")
    ais.add_argument("--ais", action="store_true", help="also measure AIS-NLL and its BDMC gap")
    ais.add_argument("--ais-only", action="store_true", help="measure only AIS-NLL (and the conditional accuracy); "
                     "merge them into the existing eval_results.json")
    ais.add_argument("--ais-steps", type=int, default=AIS_DEFAULTS["num_steps"], help="intermediate distributions T")
    ais.add_argument("--ais-chains", type=int, default=AIS_DEFAULTS["num_chains"], help="independent chains per digit")
    ais.add_argument("--ais-leapfrog", type=int, default=AIS_DEFAULTS["leapfrog_steps"],
                     help="leapfrog steps per HMC transition")
    ais.add_argument("--ais-schedule", default="sigmoid", choices=SCHEDULES)
    ais.add_argument("--ais-limit", type=int, help="measure AIS on the first M test digits only (default: all used)")
    ais.add_argument("--ais-batch", type=int, default=100, help="digits annealed together (x chains rows per "
                     "decoder call): more is faster on a GPU; memory grows with it")
    ais.add_argument("--bdmc-digits", type=int, default=20, help="digits simulated from the model for the BDMC gap")
    exact = p.add_argument_group("quadrature (models with a 2-D code whose spec declares needs_ais)")
    exact.add_argument("--exact", action="store_true", help="also measure Exact-NLL by quadrature over the prior")
    exact.add_argument("--exact-only", action="store_true", help="measure only Exact-NLL; merge it into the existing "
                       "eval_results.json")
    exact.add_argument("--exact-spacing", type=float, default=SPACING, help="cell side of the quadrature grid")
    args = p.parse_args(argv)
    args.ais = args.ais or args.ais_only
    args.exact = args.exact or args.exact_only
    if args.all:
        root = Path(args.all)
        if not root.is_dir():
            p.error(f"--all: {root} is not a folder")
        args.checkpoints += sorted(str(d) for d in root.iterdir() if (d / "config.json").is_file())
    if not args.checkpoints:
        p.error("give checkpoint folders or --all DIR")
    if args.num_samples < 1 or args.cll_samples < 1 or (args.limit is not None and args.limit < 10):
        p.error("--num-samples and --cll-samples must be >= 1, --limit >= 10")
    if min(args.ais_steps, args.ais_chains, args.ais_leapfrog, args.bdmc_digits, args.ais_batch) < 1 or (
            args.ais_limit is not None and args.ais_limit < 1):
        p.error("--ais-steps, --ais-chains, --ais-leapfrog, --ais-batch, --bdmc-digits and --ais-limit must be >= 1")
    try:
        args.device = torch.device(args.device)
        torch.empty(0, device=args.device)
    except (RuntimeError, AssertionError) as exc:  # an unknown device name, or one this machine lacks
        p.error(f"--device {args.device}: {str(exc).splitlines()[0]}")
    if not args.exact_spacing > 0:
        p.error("--exact-spacing must be > 0")
    if os.sep in args.output or args.output in ("", ".", ".."):
        p.error("--output is a file name, written inside each checkpoint folder")
    return args


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


def ais_settings(args) -> dict:
    return {"num_steps": args.ais_steps, "num_chains": args.ais_chains, "leapfrog_steps": args.ais_leapfrog,
            "schedule": args.ais_schedule}


def ais_entry(model, scored, labels, args) -> tuple[float, str, dict, torch.Tensor]:
    """(mean AIS-NLL, estimator text, details) on the first --ais-limit scored digits, with the BDMC gap on
    --bdmc-digits digits simulated from the model (same schedule). The labels are given to label-conditional
    models (cvae: -log p(x|y)); a label-supervised AAE is scored by its marginal p(x), like the unsupervised one."""
    m = len(scored) if args.ais_limit is None else min(args.ais_limit, len(scored))
    y = labels[:m] if model.spec.label_conditional else None
    settings = ais_settings(args)
    result = ais_log_likelihood(model, scored[:m], y, generator=torch.Generator().manual_seed(args.seed),
                                progress=True, batch_size=args.ais_batch, **settings)
    nll = -result.log_px
    g = torch.Generator().manual_seed(args.seed + 1)
    # Label-conditional models, and priors made of components (whose AIS is stratified by component): the BDMC
    # sandwich is of log p(x|c), c the label / component that generated the digit.
    components = 10 if model.spec.label_conditional else model.prior_components
    sim_labels = (torch.arange(args.bdmc_digits) % components).to(model.device) if components else None
    codes, images = simulate(model, args.bdmc_digits, sim_labels, g)
    sandwich = bdmc(model, codes, images, sim_labels, generator=g, progress=True, batch_size=args.ais_batch,
                    **settings)
    what = "-log p(x|y)" if model.spec.label_conditional else "-log p(x)"
    prior = getattr(model.config, "prior", "gaussian")
    estimator = (f"{what} in nats by annealed importance sampling (Neal 2001; Wu et al. 2017) from the model's prior "
                 f"({prior}) with HMC transitions, {args.ais_steps} steps ({args.ais_schedule} schedule), "
                 f"{args.ais_chains} chains per digit, {args.ais_leapfrog} leapfrog steps; a stochastic lower bound "
                 f"on log p(x); BDMC gap (Grosse et al. 2015) on {args.bdmc_digits} simulated digits"
                 + (f"; stratified over the prior's {model.prior_components} components (BDMC on log p(x|c))"
                    if model.prior_components else ""))
    details = {"num_images": m, "std_error": round(float(nll.std() / math.sqrt(m)), 4), "units": "nats",
               **settings, "pilot_chains": result.settings["pilot_chains"],
               "acceptance": round(float(result.acceptance.mean()), 3),
               "stratified_components": model.prior_components,
               "bdmc_gap": round(sandwich.gap, 4), "bdmc_digits": args.bdmc_digits,
               "bdmc_lower": round(float(sandwich.lower.mean()), 4),
               "bdmc_upper": round(float(sandwich.upper.mean()), 4)}
    return float(nll.mean()), estimator, details, nll


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


def evaluate(model, data, args, classifier, command: str, dataset: str = "mnist") -> list[EvalResult]:
    """The metrics that `model.spec` says apply, as eval_results.json records; `data` is test_set(...) of
    `dataset`. `classifier`: None skips the classifier-judged metrics."""
    grey, binary, labels = data
    spec = model.spec
    binarised = model.config.pixel_likelihood.binary
    scored = binary if binarised else grey
    data_note = f"test set binarised once (seed {args.seed})" if binarised else "grey-level test set"
    n = len(grey)
    results: list[EvalResult] = []

    def add(name: str, kind: str, value: float, estimator: str, **details) -> None:
        results.append(EvalResult(name, kind, round(float(value), 4), dataset, "test", estimator,
                                  {"num_images": n, **details}, command))

    if args.ais and spec.needs_ais:
        value, estimator, details, nll = ais_entry(model, scored, labels, args)
        results.append(EvalResult("AIS-NLL", "nll", round(value, 4), dataset, "test", f"{estimator}; {data_note}",
                                  details, command))
        if spec.learned_kl:  # does the objective's learned KL agree with the likelihood measured by AIS?
            m = len(nll)
            with torch.no_grad():
                torch.manual_seed(args.seed)
                objective = torch.cat([model.objective_elbo(scored[i:min(i + 100, m)].to(model.device)).cpu()
                                       for i in range(0, m, 100)])
            gap = objective + nll  # objective ELBO - AIS log p(x), per digit
            results.append(EvalResult(
                "Objective ELBO minus AIS log-likelihood", "elbo_gap", round(float(gap.mean()), 4), dataset, "test",
                "mean over test digits of the training objective's own ELBO estimate (-(reconstruction + T's KL "
                "estimate), 8 noise draws) minus the AIS estimate of log p(x); > 0 means T underestimates the KL "
                f"(the ELBO cannot exceed log p(x)); {data_note}",
                {"num_images": m, "std_error": round(float(gap.std() / math.sqrt(m)), 4), "units": "nats",
                 "objective_elbo": round(float(objective.mean()), 4)}, command))
    if args.exact and has_exact_likelihood(model):
        value, estimator, details = exact_entry(model, scored, labels, args.exact_spacing)
        results.append(EvalResult("Exact-NLL", "nll", round(value, 4), dataset, "test", f"{estimator}; {data_note}",
                                  details, command))
    if args.exact_only and not args.ais_only:
        return results
    if classifier is not None and spec.generative and model.samples_by_label:
        per_digit = max(1, min(FD_SAMPLES, n) // 10)
        value = conditional_accuracy(classifier, model, per_digit, torch.Generator().manual_seed(args.seed))
        add("Conditional accuracy", "accuracy", value, f"share of {per_digit} samples per digit d that the "
            "classifier labels d", num_samples=10 * per_digit)
    if args.ais_only or args.exact_only:
        return results
    if gets_is_nll(spec):
        k = args.num_samples
        nll = importance_sampled_nll(model, scored, labels if spec.label_conditional else None, num_samples=k,
                                     progress=True)
        what = "-log p(x|y)" if spec.label_conditional else "-log p(x)"
        add(f"IS-NLL (k={k})", "nll", nll.mean(), f"{what} in nats, importance-weighted bound (Burda et al. 2015, "
            f"eq. 8) with k={k}; {data_note}", std_error=round(float(nll.std() / math.sqrt(n)), 4), units="nats")
    if spec.completes_quadrants:
        for given in (1, 2, 3):
            nll = conditional_nll_quadrants(model, binary, given, num_samples=args.cll_samples, progress=True,
                                            generator=torch.Generator().manual_seed(args.seed))
            estimator = ("exact" if spec.likelihood == "exact"
                         else f"importance sampled, {args.cll_samples} samples")
            add(f"CLL ({given} quadrant{'s' if given > 1 else ''} given)", "cll", nll.mean(),
                f"-log p(y|x) of the missing quadrants in nats (Sohn et al. 2015, Table 1), {estimator}; "
                f"{data_note}", std_error=round(float(nll.std() / math.sqrt(n)), 4), units="nats")
    if spec.denoising:
        for kind, level in tqdm(CORRUPTIONS, desc="denoising", leave=False):
            noisy = corrupt(grey, kind, level, generator=torch.Generator().manual_seed(args.seed))
            clean = reconstruct(model, noisy)
            tag = f"{kind} {level}"
            add(f"Denoising PSNR ({tag})", "psnr", psnr(clean, grey), "PSNR in dB of the reconstruction of the "
                "corrupted grey-level test digits against the clean ones", input_psnr=round(float(psnr(noisy, grey)), 4),
                corruption=kind, level=level, units="dB")
            add(f"Denoising SSIM ({tag})", "ssim", ssim(clean, grey), "SSIM of the reconstruction of the corrupted "
                "grey-level test digits against the clean ones", input_ssim=round(float(ssim(noisy, grey)), 4),
                corruption=kind, level=level)
    if classifier is not None and spec.generative:
        samples = sample_images(model, min(FD_SAMPLES, n), args.seed)
        add("Classifier-feature FD", "classifier_fd", classifier_frechet_distance(classifier, samples, grey),
            "Fréchet distance between Gaussians fitted to the classifier's penultimate features of "
            f"{len(samples)} prior samples (pixel means) and the grey-level test digits; not Inception FID",
            num_samples=len(samples))
    if spec.prior_matched:
        m = min(MMD_SAMPLES, n)
        value = prior_mmd(model, scored, None, m, torch.Generator().manual_seed(args.seed))
        add("Prior MMD", "mmd", value, f"unbiased MMD^2 (Gretton et al. 2012), sum of RBF kernels, between codes of "
            f"{m} test digits (one posterior sample each) and {m} prior samples; {data_note}", num_samples=m)
    if spec.classifies:
        accuracy = (model.predict(grey) == labels).float().mean()
        add("Test accuracy", "accuracy", accuracy, "top-1 accuracy on the grey-level test digits")
    return results


def gets_is_nll(spec) -> bool:
    """The importance-weighted bound is reported for explicit posteriors only ("bound"); see the docstring."""
    return spec.has_likelihood_bound and spec.likelihood == "bound"


def merged(folder: str, new: list[EvalResult], spec, filename: str) -> list[EvalResult]:
    """The existing records of `folder` with `new` in place of those of the same name; an IS-NLL record of a model
    that no longer gets one (avb) is dropped as stale."""
    old = read_eval_results(folder, filename) or []
    names = {r.name for r in new}
    keep = [r for r in old if r.name not in names and not (r.name.startswith("IS-NLL") and not gets_is_nll(spec))]
    return keep + new


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "train.evaluate", *(sys.argv[1:] if argv is None else argv)])
    torch.manual_seed(args.seed)  # the importance samples themselves
    try:
        models = {path: (load_model(path).to(args.device), training_dataset(path)) for path in args.checkpoints}
        classifier, classifier_dataset = load_classifier(args.classifier, args.device)
        data = {dataset: test_set(args.data_dir, args.limit, args.seed, dataset, args.data_source)
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
        results = evaluate(model, data[dataset], args, judge, command, dataset)
        if args.ais_only or args.exact_only:
            results = merged(path, results, model.spec, args.output)
        write_eval_results(path, results, args.output)
        rows += [(Path(path).name, model.config.model_type, r.name, r.value) for r in results]
        print(f"wrote {Path(path) / args.output} ({len(results)} results)", file=sys.stderr)
    widths = [max(len(str(row[i])) for row in rows + [("model", "type", "metric", "value")]) for i in range(4)]
    for row in [("model", "type", "metric", "value"), *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

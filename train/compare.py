"""Compare two exports' test likelihoods digit by digit: the mean difference of their IS-NLL (or of their ELBO) and
its paired standard error.

    python -m train.compare runs/reproduce/dvae-low-noise runs/reproduce/vae-dvae-budget --data-dir ../shared/data/mnist
    python -m train.compare ... --bound elbo --num-samples 10    # the variational bound itself, 10 draws per digit
    python -m train.compare runs/reproduce/avb-ac runs/reproduce/vae-avb-budget --bound ais --limit 1000

A claim such as "the denoising criterion improves the bound" (Im et al. 2017) or "AVB fits better than a VAE"
compares two models on the same test digits. Their own standard errors (~0.3 nats each on 10,000 digits) mostly
measure how hard the digits are, which both models share; the standard error of the per-digit difference,
sd(d) / sqrt(n) with d_i = NLL_A(x_i) - NLL_B(x_i), is the one that says whether the two differ. Both models are
scored by the same estimator, minus the k-sample importance-weighted bound (Burda et al. 2015, eq. 8, k = 5000 by
default), on the same digits, binarised once with one seed (train.evaluate's test set); a negative difference
means A gives the digits more likelihood. `--bound elbo` compares the evidence lower bounds instead (Kingma & Welling
2013, eq. 10: the KL in closed form, the reconstruction term averaged over `--num-samples` posterior draws): the
bound a paper's table may report, where the IS-NLL is closer to log p(x) itself. `--bound ais` compares -log p(x)
by annealed importance sampling (vae_models/ais.py, train.evaluate's AIS-NLL settings: 300 steps, 4 chains from the
prior, one generator seed for both models), the one estimator that also scores AVB, whose implicit posterior has no
density for an importance-weighted bound.

The result is written into A's eval_results.json (merged: a record of the same name is replaced) as
"IS-NLL minus <B's folder name> (k=K, paired)" with the difference as its value and the paired standard error, B's
own mean and the share of digits A scores better in its details, so A's card shows it.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from vae_models import CheckpointError, ConfigError, load_model
from vae_models.export import EvalResult, ExportError, merge_eval_results, training_dataset
from vae_models.ais import ais_log_likelihood
from vae_models.metrics import elbo, importance_sampled_nll

from .evaluate import EvalSettings, gets_is_nll, test_set
from .options import add_data_options, invocation


AIS = EvalSettings()  # --bound ais: the settings of train.evaluate's AIS-NLL record


def paired_difference(nll_a: torch.Tensor, nll_b: torch.Tensor) -> tuple[float, float]:
    """(mean of nll_a - nll_b, its standard error sd(d) / sqrt(n)) over paired per-digit values."""
    if nll_a.shape != nll_b.shape or nll_a.ndim != 1 or len(nll_a) < 2:
        raise ValueError(f"need two equal-length vectors of >= 2 paired values, got {tuple(nll_a.shape)} and "
                         f"{tuple(nll_b.shape)}")
    d = (nll_a - nll_b).double()
    return float(d.mean()), float(d.std() / math.sqrt(len(d)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.compare", description=__doc__.split("\n\n")[0])
    p.add_argument("first", help="export A (its eval_results.json receives the comparison)")
    p.add_argument("second", help="export B, the baseline")
    add_data_options(p)
    p.add_argument("--bound", choices=["is", "elbo", "ais"], default="is",
                   help="is: the k-sample importance-weighted bound (default); elbo: the evidence lower bound; ais: "
                   "annealed importance sampling with train.evaluate's settings (--num-samples is not used)")
    p.add_argument("--num-samples", type=int, default=5000, help="importance samples k per test digit (--bound elbo: "
                   "posterior draws averaged per digit)")
    p.add_argument("--limit", type=int, help="use only the first N test digits")
    p.add_argument("--seed", type=int, default=0, help="seed of the binarisation and of the importance samples")
    p.add_argument("--output", default="eval_results.json", help="file name inside A's folder")
    args = p.parse_args(argv)
    if args.num_samples < 1 or (args.limit is not None and args.limit < 2):
        p.error("--num-samples must be >= 1 and --limit >= 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = invocation("train.compare", argv)
    try:
        models = [load_model(path) for path in (args.first, args.second)]
        datasets = {training_dataset(path) for path in (args.first, args.second)}
        if len(datasets) != 1:
            raise ExportError(f"{args.first} and {args.second} were trained on different datasets {sorted(datasets)}")
        for path, model in zip((args.first, args.second), models):
            if args.bound == "ais" and not model.spec.needs_ais:
                raise ExportError(f"{path} ({model.config.model_type}) has no AIS estimate of log p(x)")
            if args.bound != "ais" and not gets_is_nll(model.spec):
                raise ExportError(f"{path} ({model.config.model_type}) has no importance-weighted bound")
            if model.spec.label_conditional:
                raise ExportError(f"{path} ({model.config.model_type}) is label-conditional: compare p(x) models")
        (dataset,) = datasets
        grey, binary, _ = test_set(args.data_dir, args.limit, args.seed, dataset, args.data_source)
    except (CheckpointError, ConfigError, ExportError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    nll = []
    for model in models:
        torch.manual_seed(args.seed)
        scored = binary if model.config.pixel_likelihood.binary else grey
        if args.bound == "is":
            nll.append(importance_sampled_nll(model, scored, num_samples=args.num_samples, progress=True))
        elif args.bound == "ais":
            nll.append(-ais_log_likelihood(model, scored, generator=torch.Generator().manual_seed(args.seed),
                                           progress=True, batch_size=AIS.ais_batch, **AIS.ais).log_px)
        else:
            nll.append(-torch.stack([elbo(model, scored) for _ in range(args.num_samples)]).mean(0))
    difference, std_error = paired_difference(*nll)
    k, n, other = args.num_samples, len(binary), Path(args.second).name
    if args.bound == "is":
        name = f"IS-NLL minus {other} (k={k}, paired)"
        what = (f"-log p(x) minus {other}'s, both by the importance-weighted bound (Burda et al. 2015, eq. 8) with "
                f"k={k}")
        better = "more likelihood"
    elif args.bound == "ais":
        k = AIS.ais_chains
        name = f"AIS-NLL minus {other} (paired)"
        what = (f"-log p(x) minus {other}'s, both by annealed importance sampling from the prior "
                f"({AIS.ais_steps} steps, {AIS.ais_chains} chains, {AIS.ais_leapfrog} leapfrog steps, one seed)")
        better = "more likelihood"
    else:
        name = f"Negative ELBO minus {other} ({k} draws, paired)"
        what = (f"negative ELBO minus {other}'s, both the evidence lower bound of Kingma & Welling 2013, eq. 10 (KL "
                f"in closed form where the posterior is Gaussian), each digit's reconstruction term averaged over {k} "
                "posterior draws")
        better = "the better bound"
    record = EvalResult(
        name, "nll_difference", round(difference, 4), dataset, "test",
        f"mean over the same test digits of this model's {what} on the test set binarised once (seed {args.seed}); "
        f"std_error is the paired one, sd of the per-digit differences / sqrt(n); < 0: this model gives the digits "
        f"{better}",
        {"num_images": n, "std_error": round(std_error, 4), "units": "nats", "baseline": other,
         "own_nll": round(float(nll[0].mean()), 4), "baseline_nll": round(float(nll[1].mean()), 4),
         "share_better": round(float((nll[0] < nll[1]).double().mean()), 4)}, command)
    merge_eval_results(args.first, [record], args.output)
    print(f"{Path(args.first).name}: {record.details['own_nll']:.2f}  {other}: {record.details['baseline_nll']:.2f}  "
          f"difference {difference:+.3f} ± {std_error:.3f} nats (paired s.e., {n} digits, {args.bound} k={k}); "
          f"{record.details['share_better']:.1%} of digits better; written to {Path(args.first) / args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

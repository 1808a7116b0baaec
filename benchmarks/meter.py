"""The meter's one verdict over every likelihood model (vae_models/typicality.py, `JointMeter`), held to images it
was not built on.

Prints, with the bundled weights and references:

1. the false-flag rate on real test digits, out of sample: the references and the joint threshold are fitted on one
   half of the 10,000 test digits (a random half, seed 0) and the other half is counted; then the same for each
   model alone with its own three tests at the budgets of its old per-model verdict (0.5 % + 0.5 % + 1 %);
2. the false-flag rate on test digits uploaded as pictures (they go through the app's preprocessing, as a visitor's
   would: re-centred, re-scaled), against the shipped references;
3. per kind of non-digit (benchmarks/ood_kinds.py), the share flagged by the joint verdict and by each model alone.
   `--kinds tuning` are the kinds the rule was chosen on; `--kinds held-out` the ones kept aside until it was fixed.

    python -m benchmarks.meter --kinds tuning              # ~2 min on one core
    python -m benchmarks.meter --kinds held-out --details  # ~2 min; lists every image's verdict
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python path/to/benchmarks/x.py), from any folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "benchmarks"

import numpy as np
import torch

from vae_models import load_model, typicality
from vae_models.data import load_mnist
from vae_models.preprocess import to_mnist

from . import ood_kinds

REPO = Path(__file__).resolve().parents[1]
MODELS = ("vae", "dvae", "avb", "aae")  # the app's "every model" models with a likelihood (demo/explore.py)
OLD_TAILS = (typicality.LOW_TAIL, 100 - typicality.HIGH_LIKELIHOOD_TAIL, 100 - typicality.HIGH_TAIL)  # per model, %


def reference_of(kind, values: np.ndarray):
    levels = np.linspace(0, 1, typicality.NUM_QUANTILES)
    return kind(quantiles=np.maximum.accumulate(np.quantile(values, levels)).tolist(), size=len(values),
                num_samples=1, weights_sha256="0" * 64, values=values.tolist())


def alone_flags(likelihood, corrected, log_px: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The old per-model verdict: each of the model's three tests at its own fixed budget."""
    lp, sp = likelihood.percentiles(log_px), corrected.percentiles(scores)
    return (lp < OLD_TAILS[0]) | (lp > 100 - OLD_TAILS[1]) | (sp > 100 - OLD_TAILS[2])


def joint_flags(meter: typicality.JointMeter, log_px: dict, scores: dict) -> np.ndarray:
    return meter.levels({name: (log_px[name], scores[name]) for name in meter.references}) < meter.threshold


def split_half(references: dict) -> list[str]:
    """False flags on one half of the test digits, everything fitted on the other."""
    size = next(iter(references.values()))[0].size
    order = np.random.default_rng(0).permutation(size)
    fit, count = order[: size // 2], order[size // 2:]
    half = {}
    log_px, scores = {}, {}
    for name, (likelihood, corrected) in references.items():
        lv, sv = np.asarray(likelihood.values), np.asarray(corrected.values)
        half[name] = (reference_of(typicality.LikelihoodReference, lv[fit]),
                      reference_of(typicality.ComplexityReference, sv[fit]))
        log_px[name], scores[name] = lv[count], sv[count]
    meter = typicality.JointMeter(half)
    flagged = joint_flags(meter, log_px, scores)
    rows = [f"| joint verdict, {len(references)} models | {flagged.sum()}/{len(count)} "
            f"({100 * flagged.mean():.2f} %) |"]
    union = np.zeros(len(count), bool)
    for name, (likelihood, corrected) in half.items():
        alone = alone_flags(likelihood, corrected, log_px[name], scores[name])
        union |= alone
        rows.append(f"| {name} alone | {alone.sum()}/{len(count)} ({100 * alone.mean():.2f} %) |")
    rows.append(f"| any model alone (the union) | {union.sum()}/{len(count)} ({100 * union.mean():.2f} %) |")
    return rows


def score(models: dict, images: torch.Tensor) -> tuple[dict, dict]:
    log_px, scores = {}, {}
    for name, model in models.items():
        lp, _, s = typicality.complexity_corrected(model, images)
        log_px[name], scores[name] = lp.numpy(), s.numpy()
    return log_px, scores


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=str(REPO / "pretrained"))
    p.add_argument("--data-dir", default=str(REPO.parent / "shared/data/mnist"))
    p.add_argument("--kinds", choices=("tuning", "held-out", "none"), default="tuning")
    p.add_argument("--uploaded", type=int, default=1000, help="test digits to upload as pictures (0: skip)")
    p.add_argument("--details", action="store_true", help="list every non-digit's verdict")
    args = p.parse_args(argv)
    torch.set_flush_denormal(True)
    folders = {name: Path(args.weights) / name for name in MODELS}
    models = {name: load_model(str(f)) for name, f in folders.items()}
    references = {name: (typicality.load_reference(f),
                         typicality.load_reference(f, kind=typicality.ComplexityReference)) for name, f in folders.items()}
    meter = typicality.JointMeter(references)
    print(f"### The meter's one verdict over {', '.join(MODELS)}: "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}\n")
    print(f"Joint threshold {meter.threshold:.5f} (flags {typicality.FLAG_RATE:g} % of the reference digits); each "
          f"model alone: {OLD_TAILS[0]:g} % + {OLD_TAILS[1]:g} % + {OLD_TAILS[2]:g} % per test.\n")
    print("**Real test digits, fitted on the other half** (out of sample)\n\n| verdict | flagged |\n|---|---|")
    print("\n".join(split_half(references)))
    if args.uploaded:
        raw = load_mnist("test", data_dir=args.data_dir)[0][: args.uploaded].numpy()
        log_px, scores = score(models, torch.stack([to_mnist(a) for a in raw]))
        flagged = joint_flags(meter, log_px, scores)
        print(f"\n**The first {len(raw)} test digits uploaded as pictures** (the app's preprocessing; shipped "
              f"references): joint verdict flags {flagged.sum()}/{len(raw)} ({100 * flagged.mean():.2f} %)")
    if args.kinds == "none":
        return 0
    kinds = ood_kinds.TUNING_KINDS if args.kinds == "tuning" else ood_kinds.HELD_OUT_KINDS
    print(f"\n**Non-digits, {args.kinds} kinds**\n\n| kind | images | joint verdict | "
          + " | ".join(f"{n} alone" for n in MODELS) + " |\n|---|---|---|" + "---|" * len(MODELS))
    total, hit, details = 0, 0, []
    for kind, make in kinds.items():
        images = make()
        log_px, scores = score(models, torch.stack([to_mnist(a) for a in images.values()]))
        flagged = joint_flags(meter, log_px, scores)
        alone = [alone_flags(*references[n], log_px[n], scores[n]) for n in MODELS]
        total, hit = total + len(images), hit + int(flagged.sum())
        print(f"| {kind} | {len(images)} | **{flagged.sum()}/{len(images)}** | "
              + " | ".join(f"{a.sum()}/{len(images)}" for a in alone) + " |")
        details += [f"| {label} | {'flagged' if f else 'typical'} |" for label, f in zip(images, flagged)]
    print(f"| all | {total} | **{hit}/{total} ({100 * hit / total:.1f} %)** |" + " |" * len(MODELS))
    if args.details:
        print("\n| image | joint verdict |\n|---|---|\n" + "\n".join(details))
    return 0


if __name__ == "__main__":
    sys.exit(main())

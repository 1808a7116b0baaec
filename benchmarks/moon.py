"""The lecture's moon example, measured: between two digits' codes, does the AE decode something that is no digit
and the VAE something in between?

For --pairs random pairs of test digits (seed 0) and each checkpoint declared `interpolation` (the AE and the VAE),
the path between the two codes is decoded at --steps frames (vae_models.latent.interpolation_frames, straight
line). Each frame is judged by two models that are on neither path:

  confidence   the bundled classifier's probability of its top class;
  percentile   the meter's log p(x) percentile (vae_models.typicality: k = 100 importance samples, the image
               binarised at 0.5, placed on the 10,000 test digits' distribution) under --judge, a likelihood model
               other than the two whose paths are judged (default: the DVAE).

Printed: each value's mean per frame, and the midpoint dip (mean of the two end frames minus the middle frame,
vae_models.latent.midpoint_dip) with its standard error over the pairs.

    python -m benchmarks.moon --data-dir ../shared/data/mnist                 # 500 pairs, ~3 min on one core
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python path/to/benchmarks/x.py), from any folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "benchmarks"

import torch

from vae_models import checkpoints, judge_checkpoint, load_model, typicality
from vae_models.data import load_mnist
from vae_models.latent import frame_measures, interpolation_frames, midpoint_dip

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=str(REPO.parent / "shared/data/mnist"))
    p.add_argument("--pairs", type=int, default=500)
    p.add_argument("--steps", type=int, default=9, help="frames per path, ends included (odd: a middle frame)")
    p.add_argument("--judge", default="dvae", help="the likelihood model whose meter percentile judges the frames")
    p.add_argument("--weights", default=str(REPO / "pretrained"))
    args = p.parse_args(argv)
    torch.set_flush_denormal(True)
    images, labels = load_mnist("test", data_dir=args.data_dir)
    pairs = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:2 * args.pairs].view(-1, 2)
    grey = images.float().div(255).unsqueeze(1)
    weights = Path(args.weights)
    classifier = load_model(str(weights / judge_checkpoint()))
    judge = load_model(str(weights / args.judge))
    reference = typicality.load_reference(weights / args.judge)
    rows = []
    for name in (n for n, (c, _) in checkpoints().items() if c.interpolation):
        model = load_model(str(weights / name))
        frames = torch.cat([interpolation_frames(model, grey[a:a + 1], grey[b:b + 1], args.steps) for a, b in pairs])
        measures = frame_measures(classifier, judge, reference, frames)
        confidence, percentile = (v.view(-1, args.steps) for v in measures)
        for what, values in (("classifier confidence", confidence), (f"{args.judge} meter percentile", percentile)):
            dip = midpoint_dip(values)
            means = " · ".join(f"{float(v):.2f}" if what.startswith("classifier") else f"{float(v):.0f}"
                               for v in values.mean(0))
            rows.append(f"| {name} | {what} | {means} | {float(dip.mean()):.3g} ± "
                        f"{float(dip.std() / math.sqrt(len(dip))):.2g} |")
        print(f"{name}: done", file=sys.stderr)
    print(f"\n### The moon, measured: {args.pairs} random test pairs, {args.steps} frames a path (straight line)\n")
    print("| path of | judged by | mean per frame, first to last | midpoint dip (ends − middle) ± s.e. |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How well does the app's "how digit-like is this" meter (vae_models/typicality.py) separate drawn non-digits from
real MNIST test digits, with the bundled weights and references?

Drawn inputs, made as the app's canvas makes them (black ink on a 280 px white canvas, then the app's MNIST-style
preprocessing): capital letters, random scribbles, and blank-ish images (near-empty canvases and single strokes
that are no digit). For each likelihood model it prints, against the first --limit test digits:

  - the share flagged by the meter's verdict (log p(x) outside the test digits' band from their 0.5th to their
    99.5th percentile, or the complexity-corrected score S(x) = -log2 p(x) - L(x) above their 99th) for the test
    digits and for each group;
  - AUROC of -log p(x) (likelihood alone) and of S(x) as scores of "not a digit", per group: the probability
    that a drawn image scores higher than a test digit.

Every drawn image is listed with its two percentiles (--details). The references are computed on all 10,000 test
digits, so the test digits' flagged share is ~2 % by construction; the question is where the drawn images land.

    python -m benchmarks.typicality --data-dir ../shared/data/mnist                # ~6 min on one loaded core
    python -m benchmarks.typicality --limit 1000 --models vae --details            # quicker look
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python path/to/benchmarks/x.py), from any folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "benchmarks"

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from vae_models import load_model, typicality
from vae_models.data import load_mnist
from vae_models.preprocess import to_mnist

REPO = Path(__file__).resolve().parents[1]
LETTERS = "KMWXHEFLNPTGVYZ"  # the tests use the first 11; G, V, Y, Z look more like digits (6, 7/1, 4, 2)


def canvas_image(draw) -> np.ndarray:
    """A drawing as the app's canvas makes it: black ink on 280 x 280 white paper."""
    image = Image.new("L", (280, 280), 255)
    draw(ImageDraw.Draw(image))
    return np.asarray(image)


def letter(ch: str) -> np.ndarray:
    font = ImageFont.load_default(size=220)
    return canvas_image(lambda d: d.text((40, 10), ch, fill=0, font=font))


def scribble(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = [tuple(rng.uniform(20, 260, 2)) for _ in range(12)]
    return canvas_image(lambda d: d.line(points, fill=0, width=18))


def blank_ish() -> dict[str, np.ndarray]:
    """Near-empty canvases and single strokes that are no digit. Not here: a vertical or steep stroke (that is a 1);
    a lone dot, which the preprocessing scales to a 20 px disk, is listed apart (`dots`)."""
    return {
        "dash": canvas_image(lambda d: d.line([(100, 140), (180, 140)], fill=0, width=18)),
        "long dash": canvas_image(lambda d: d.line([(40, 140), (240, 140)], fill=0, width=18)),
        "thin dash": canvas_image(lambda d: d.line([(60, 140), (220, 140)], fill=0, width=6)),
        "faint line": canvas_image(lambda d: d.line([(60, 140), (220, 140)], fill=200, width=10)),
        "two specks": canvas_image(lambda d: (d.ellipse((40, 40, 52, 52), fill=0),
                                              d.ellipse((220, 200, 232, 212), fill=0))),
        "short arc": canvas_image(lambda d: d.arc((80, 80, 200, 200), 200, 340, fill=0, width=18)),
        "shallow stroke": canvas_image(lambda d: d.line([(80, 160), (200, 120)], fill=0, width=18)),
    }


def dots() -> dict[str, np.ndarray]:
    return {"dot": canvas_image(lambda d: d.ellipse((130, 130, 150, 150), fill=0)),
            "dot in a corner": canvas_image(lambda d: d.ellipse((250, 250, 258, 258), fill=0))}


def drawn_groups() -> dict[str, dict[str, np.ndarray]]:
    return {"letters": {f"letter {c}": letter(c) for c in LETTERS},
            "scribbles": {f"scribble {s}": scribble(s) for s in range(8)},
            "blank-ish": blank_ish(), "dots (20 px disks)": dots()}


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores higher than a negative), ties counted half (the Mann-Whitney statistic)."""
    greater = (positive[:, None] > negative[None]).mean()
    ties = (positive[:, None] == negative[None]).mean()
    return float(greater + 0.5 * ties)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=str(REPO.parent / "shared/data/mnist"))
    p.add_argument("--models", nargs="+", default=["vae", "dvae", "avb"])
    p.add_argument("--limit", type=int, default=10_000, help="test digits to compare with")
    p.add_argument("--details", action="store_true", help="list every drawn image's percentiles")
    args = p.parse_args(argv)
    torch.set_flush_denormal(True)
    digits = load_mnist("test", data_dir=args.data_dir)[0][:args.limit].unsqueeze(1).float() / 255.0
    groups = drawn_groups()
    print(f"### Likelihood meter: drawn non-digits against {len(digits)} MNIST test digits, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}\n")
    print(f"Flagged: log p(x) in the test digits' bottom {typicality.LOW_TAIL:g} % or top "
          f"{100 - typicality.HIGH_LIKELIHOOD_TAIL:g} %, or S(x) in their top {100 - typicality.HIGH_TAIL:g} %.\n")
    print("| model | inputs | flagged | AUROC, −log p(x) alone | AUROC, S(x) |\n|---|---|---|---|---|")
    details = []
    for name in args.models:
        folder = REPO / "pretrained" / name
        model = load_model(str(folder))
        likelihood = typicality.load_reference(folder)
        corrected = typicality.load_reference(folder, kind=typicality.ComplexityReference)
        print(f"scoring {len(digits)} test digits under {name}", file=sys.stderr)
        test = typicality.assess(model, digits, likelihood, corrected)
        test_nll = -np.array([a.log_px for a in test])
        test_s = np.array([a.score for a in test])
        flagged = sum(not a.typical for a in test)
        print(f"| {name} | test digits | {flagged}/{len(test)} ({100 * flagged / len(test):.1f} %) | — | — |")
        for group, images in groups.items():
            drawn = typicality.assess(model, torch.stack([to_mnist(a) for a in images.values()]), likelihood,
                                      corrected)
            nll, score = -np.array([a.log_px for a in drawn]), np.array([a.score for a in drawn])
            hit = sum(not a.typical for a in drawn)
            print(f"| {name} | {group} | {hit}/{len(drawn)} | {auroc(nll, test_nll):.3f} | "
                  f"{auroc(score, test_s):.3f} |")
            details += [f"| {name} | {label} | {a.likelihood_percentile:.1f} | {a.score_percentile:.1f} | "
                        f"{a.verdict} |"
                        for label, a in zip(images, drawn)]
    if args.details:
        print("\n| model | drawn image | log p(x) percentile | S(x) percentile | verdict |\n|---|---|---|---|---|")
        print("\n".join(details))
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["auroc", "blank_ish", "canvas_image", "dots", "drawn_groups", "letter", "main", "scribble"]

"""What prior MMD does a 2-D mixture AAE need to "fill its mixture"? Reference values of the live tab's estimator.

The live-training benchmark (benchmarks/live_training.py) scores the mixture AAE by `metrics.prior_mmd`: MMD^2 with a
sum of RBF kernels (Gretton et al. 2012, eq. 3) between the codes of 3000 test digits and 3000 prior samples. A
threshold on that number means something only beside the values of distributions whose filling we know. This script
measures, with the same estimator, sample size and prior draws (generator seed 0):

  - the prior against itself: fresh prior draws (20 seeds) in place of the codes: the estimator's sampling noise;
  - the prior with one / two components emptied (their mass spread evenly over the others), each choice of
    component(s): distributions that visibly do NOT fill the mixture, with every other petal exactly right;
  - the bundled pretrained/aae-2d-mixture's test codes (15 epochs: the codes visibly fill the petals) and an
    untrained encoder's (all codes in one tiny cluster);
  - for each, the share of codes nearest each component by angle (the prior: 10 % each), as the min and max share.

    python -m benchmarks.mixture_fill --data-dir ../shared/data/mnist     # ~2 min on one core
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python path/to/benchmarks/x.py), from any folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "benchmarks"

import torch

from demo.live import live_models
from train.evaluate import test_set
from vae_models import build_model, load_model
from vae_models.aae import NUM_COMPONENTS, mixture10_sample
from vae_models.metrics import mmd_rbf

from .aae_mixture_steps import petal_shares
from .common import header

REPO = Path(__file__).resolve().parents[1]
CHOICE = "aae-2d-mixture"
POINTS = 3000  # as benchmarks/live_training.py's --mmd-points


def without_components(emptied: list[int], n: int, seed: int) -> torch.Tensor:
    """n draws of the mixture prior with the `emptied` components' mass spread evenly over the other ones."""
    g = torch.Generator().manual_seed(seed)
    kept = torch.tensor([c for c in range(NUM_COMPONENTS) if c not in emptied])
    labels = kept[torch.randint(0, len(kept), (n,), generator=g)]
    return mixture10_sample(labels, g)


def summary(values: list[float]) -> str:
    return f"{min(values):.4f} – {max(values):.4f} (mean {sum(values) / len(values):.4f}, {len(values)} draws)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=str(REPO.parent / "shared/data/mnist"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    grey, _, labels = test_set(args.data_dir, POINTS, 0)
    bundled = load_model(str(REPO / "pretrained" / CHOICE)).eval()
    prior = bundled.prior_sample(POINTS, torch.Generator().manual_seed(0))  # prior_mmd's draws with generator seed 0
    no_labels = torch.zeros(POINTS, dtype=torch.long)

    def row(name: str, codes: list[torch.Tensor]) -> str:
        mmd = [float(mmd_rbf(c, prior)) for c in codes]
        shares = [petal_shares(c, no_labels)[0] for c in codes]
        low, high = min(min(s) for s in shares), max(max(s) for s in shares)
        return f"| {name} | {summary(mmd) if len(mmd) > 1 else f'{mmd[0]:.4f}'} | {low:.1f} | {high:.1f} |"

    rows = [row("the prior itself (fresh draws, seeds 1–20)",
                [bundled.prior_sample(POINTS, torch.Generator().manual_seed(s)) for s in range(1, 21)])]
    rows.append(row("the prior, one component emptied (each of the 10)",
                    [without_components([c], POINTS, 100 + c) for c in range(NUM_COMPONENTS)]))
    pairs = [[c, (c + 1) % NUM_COMPONENTS] for c in range(NUM_COMPONENTS)]
    rows.append(row("the prior, two neighbouring components emptied (each of the 10 pairs)",
                    [without_components(pair, POINTS, 200 + pair[0]) for pair in pairs]))
    with torch.no_grad():
        rows.append(row(f"bundled `{CHOICE}` (15 epochs), test codes", [bundled.encode(grey).z]))
        recipe = live_models()[CHOICE]
        fresh = []
        for seed in range(5):
            torch.manual_seed(seed)
            fresh.append(build_model(recipe.model, **recipe.model_config).eval().encode(grey).z)
        rows.append(row("untrained encoders (seeds 0–4), test codes", fresh))
    print(header(f"Reference prior MMDs for the mixture AAE ({POINTS} codes vs {POINTS} prior draws, seed 0)"))
    print("\n| codes | prior MMD | min % per component | max % per component |\n|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

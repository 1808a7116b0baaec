"""The reference distributions of benchmarks/mixture_fill.py, which the live mixture AAE's stated MMD threshold rests
on: a prior with emptied components really is empty there and even elsewhere, and the share-per-component measure
reads the prior as 10 % each."""

import torch

from benchmarks.aae_mixture_steps import petal_shares
from benchmarks.mixture_fill import without_components
from vae_models.aae import NUM_COMPONENTS, mixture10_sample


def shares(codes: torch.Tensor) -> list[float]:
    return petal_shares(codes, torch.zeros(len(codes), dtype=torch.long))[0]


def test_the_prior_puts_a_tenth_of_its_codes_nearest_each_component():
    g = torch.Generator().manual_seed(0)
    codes = mixture10_sample(torch.arange(NUM_COMPONENTS).repeat(100), g)
    assert shares(codes) == [10.0] * NUM_COMPONENTS  # every draw lands nearest its own component


def test_emptied_components_get_no_codes_and_the_others_share_them_evenly():
    for emptied in ([3], [9, 0]):
        got = shares(without_components(emptied, 9000, seed=1))
        kept = [s for c, s in enumerate(got) if c not in emptied]
        assert [got[c] for c in emptied] == [0.0] * len(emptied)
        even = 100 / (NUM_COMPONENTS - len(emptied))
        assert all(abs(s - even) < 1.5 for s in kept), got
        assert abs(sum(got) - 100) < 1e-6

"""What the model suites share: a seeded tiny model, a batch of digit-like binary images, an encoder moved off the
prior, and grouped importance-sampling bounds (test_denoising_and_conditional_models.py, test_socvae.py)."""

import math

import torch

from vae_models import build_model

TINY = {"hidden_dims": [32], "latent_dim": 4}


def make(name, **fields):
    torch.manual_seed(0)
    return build_model(name, **{**TINY, **fields})


def digit_like_batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 28, 28, generator=g).pow(3).bernoulli(generator=g)
    return images, torch.arange(n) % 10


def move_posterior(encoder, latent_dim):
    """Shift an untrained Gaussian encoder's output (mean +1.5, log-variance -1), so that its KL to the prior is
    ~5 nats rather than ~0 and a bound that dropped or mis-signed a term would be caught."""
    with torch.no_grad():
        encoder.head[-1].bias[:latent_dim] += 1.5
        encoder.head[-1].bias[latent_dim:] -= 1.0


def grouped_bounds(log_w, ks):
    """For each k dividing len(log_w): the mean over disjoint groups of k weights of log((1/k) sum exp) - the
    k-sample importance-sampling estimate averaged over the groups. Nested groups make it non-decreasing in k
    (Jensen), so this checks the weights are used as an importance-sampling bound should be."""
    total = len(log_w)
    return [(torch.logsumexp(log_w.view(total // k, k, -1), dim=1) - math.log(k)).mean().item() for k in ks]

"""The deterministic quadrant baseline's conditional log-likelihood (Sohn et al. 2015, Table 1's "NN"), recomputed
here from the network's raw output with the quadrants written out by hand: bottom-left is given first, then
top-left, then top-right; hidden pixels enter the network as -1; the score is the Bernoulli log-likelihood of the
missing pixels only."""

import torch
import torch.nn.functional as F

from vae_models import build_model

# (rows, cols) of bottom-left, top-left, top-right, bottom-right, written independently of vae_models.socvae
HAND_QUADRANTS = [(slice(14, 28), slice(0, 14)), (slice(0, 14), slice(0, 14)), (slice(0, 14), slice(14, 28)),
                  (slice(14, 28), slice(14, 28))]


def test_quadrant_baseline_cll_is_the_bernoulli_likelihood_of_the_missing_quadrants():
    torch.manual_seed(0)
    model = build_model("quadrant_nn", hidden_dims=[16]).eval()
    g = torch.Generator().manual_seed(0)
    images = torch.rand(5, 1, 28, 28, generator=g).round()
    for given in (1, 2, 3):
        x = torch.full_like(images, -1.0)
        for rows, cols in HAND_QUADRANTS[:given]:
            x[:, :, rows, cols] = images[:, :, rows, cols]
        with torch.no_grad():
            logits = model.net(x).view(5, 1, 28, 28)
            expected = torch.zeros(5)
            for rows, cols in HAND_QUADRANTS[given:]:
                expected -= F.binary_cross_entropy_with_logits(
                    logits[:, :, rows, cols], images[:, :, rows, cols], reduction="none").flatten(1).sum(1)
            cll = model.conditional_log_likelihood(images, given)
        torch.testing.assert_close(cll, expected, rtol=1e-5, atol=1e-4)

        # what is hidden cannot leak into the prediction: changing a missing pixel changes only the target
        changed = images.clone()
        rows, cols = HAND_QUADRANTS[3]
        changed[:, :, rows, cols] = 1 - changed[:, :, rows, cols]
        with torch.no_grad():
            moved = model.conditional_log_likelihood(changed, given)
            flipped = -F.binary_cross_entropy_with_logits(logits[:, :, rows, cols], changed[:, :, rows, cols],
                                                          reduction="none").flatten(1).sum(1)
            kept = -F.binary_cross_entropy_with_logits(logits[:, :, rows, cols], images[:, :, rows, cols],
                                                       reduction="none").flatten(1).sum(1)
        torch.testing.assert_close(moved - cll, flipped - kept, rtol=1e-5, atol=1e-4)

"""The deterministic quadrant baseline's conditional log-likelihood (Sohn et al. 2015, Table 1's "NN"), recomputed
here from the network's raw output with the quadrants written out by hand: bottom-left is given first, then
top-left, then top-right; hidden pixels enter the network as -1; the score is the Bernoulli log-likelihood of the
missing pixels only."""

import pytest
import torch
import torch.nn.functional as F

from vae_models import ConfigError, build_model

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


def test_a_network_per_setting_scores_each_setting_with_its_own_network_and_trains_each_on_its_own_loss():
    """net_per_setting (Pyro's tutorial: one BaselineNet per number of given quadrants): setting k is predicted by
    nets[k - 1] alone, and the training loss is the sum of the three settings' losses on every image, so each
    network's gradient is exactly that of its own setting's -log p(y|x)."""
    torch.manual_seed(0)
    model = build_model("quadrant_nn", hidden_dims=[16], net_per_setting=True)
    g = torch.Generator().manual_seed(1)
    images = torch.rand(6, 1, 28, 28, generator=g).round()
    losses = []
    for given in (1, 2, 3):
        x = torch.full_like(images, -1.0)
        for rows, cols in HAND_QUADRANTS[:given]:
            x[:, :, rows, cols] = images[:, :, rows, cols]
        logits = model.nets[given - 1](x).view(6, 1, 28, 28)
        expected = torch.zeros(6)
        for rows, cols in HAND_QUADRANTS[given:]:
            expected = expected - F.binary_cross_entropy_with_logits(
                logits[:, :, rows, cols], images[:, :, rows, cols], reduction="none").flatten(1).sum(1)
        torch.testing.assert_close(model.conditional_log_likelihood(images, given), expected.detach(),
                                   rtol=1e-5, atol=1e-4)
        losses.append(-expected.mean())
    # one batch mixing the settings routes every image to its own setting's network
    mixed = torch.tensor([1, 2, 3, 3, 2, 1])
    by_setting = torch.stack([model.conditional_log_likelihood(images, k) for k in (1, 2, 3)])
    torch.testing.assert_close(model.conditional_log_likelihood(images, mixed), by_setting[mixed - 1, torch.arange(6)])

    loss = model.loss((images, None))
    torch.testing.assert_close(loss.loss, sum(losses))
    assert loss.terms.keys() == {"reconstruction"}
    loss.loss.backward()
    for k, net in enumerate(model.nets):
        own = torch.autograd.grad(losses[k], list(net.parameters()), retain_graph=True)
        for p, grad in zip(net.parameters(), own):
            torch.testing.assert_close(p.grad, grad)


def test_the_shared_network_stays_the_default_so_the_first_bundled_weights_still_load():
    model = build_model("quadrant_nn", hidden_dims=[16])
    assert model.config.net_per_setting is False
    assert {name.split(".")[0] for name in model.state_dict()} == {"net"}
    per_setting = build_model("quadrant_nn", hidden_dims=[16], net_per_setting=True)
    assert {name.split(".")[:2][1] for name in per_setting.state_dict()} == {"0", "1", "2"}


def test_a_network_per_setting_needs_all_three_settings_in_training():
    with pytest.raises(ConfigError, match="net_per_setting .* needs num_given_quadrants = 0"):
        build_model("quadrant_nn", net_per_setting=True, num_given_quadrants=2)

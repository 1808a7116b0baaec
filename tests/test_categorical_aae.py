"""The categorical AAE (vae_models/categorical_aae.py, Makhzani et al. 2015, Fig. 8): the two adversaries' value
functions (eq. 1) and the optimum of the categorical one with exact marginals; what each phase reads (the
classification phase only the labelled minibatch, the others never a label); the joint code, its prior and the
cluster decodings; the config's limits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vae_models import ConfigError, Unsupported, build_model
from vae_models.categorical_aae import discriminator_value, generator_value

TINY = {"hidden_dims": [8], "latent_dim": 3, "num_clusters": 4, "discriminator_hidden_dims": [8]}
SEMI = {**TINY, "num_clusters": 10, "semi_supervised": True}


def digits(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_value_functions_are_eq_1_with_the_non_saturating_generator():
    """D minimises -[E_p log D + E_q log(1 - D)], the encoder E_q[-log D]; with weights the expectations are exact."""
    prior, code = torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.0])
    sigmoid = torch.sigmoid
    expected = -(torch.log(sigmoid(prior)).mean() + torch.log(1 - sigmoid(code)).mean())
    assert discriminator_value(prior, code).item() == pytest.approx(expected.item(), rel=1e-6)
    assert generator_value(code).item() == pytest.approx(-torch.log(sigmoid(code)).mean().item(), rel=1e-6)
    w = torch.tensor([0.25, 0.75])
    weighted = -(0.25 * torch.log(sigmoid(code[0])) + 0.75 * torch.log(sigmoid(code[1])))
    assert generator_value(code, w).item() == pytest.approx(weighted.item(), rel=1e-6)


def train_cluster_adversary(model, masses: torch.Tensor, steps: int) -> torch.Tensor:
    """The model's D_y trained on the exact marginals: Cat(K) (1/K on each one-hot) against the encoder's y with
    cluster masses `masses`; returns D_y's logits on the K one-hot codes."""
    k = len(masses)
    one_hots = torch.eye(k)
    optimiser = torch.optim.Adam(model.cluster_discriminator.parameters(), lr=0.05)
    for _ in range(steps):
        logits = model.cluster_discriminator(one_hots).squeeze(1)
        loss = discriminator_value(logits, logits, torch.full((k,), 1 / k), masses)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.cluster_discriminator(one_hots).squeeze(1).detach()


def test_the_optimal_cluster_adversary_is_the_density_ratio():
    """For fixed masses q_k the optimum of eq. 1 is D*(e_k) = p_k / (p_k + q_k), i.e. logit log(p_k / q_k)
    (Goodfellow et al. 2014, Prop. 1)."""
    torch.manual_seed(0)
    model = build_model("categorical_aae", **TINY)
    masses = torch.tensor([0.1, 0.2, 0.3, 0.4])
    logits = train_cluster_adversary(model, masses, 1500)
    assert torch.allclose(logits, torch.log(0.25 / masses), atol=0.02)


def test_the_encoder_facing_the_optimal_adversary_fills_every_cluster_to_one_over_k():
    """Alternating the adversary's optimum with the encoder's non-saturating step on the cluster masses (exact
    marginals, no sampling) ends with each of the K clusters holding 1/K, from a start with one cluster holding
    70 %."""
    torch.manual_seed(0)
    model = build_model("categorical_aae", **TINY)
    theta = torch.tensor([2.0, 0.3, 0.0, -1.0], requires_grad=True)  # masses softmax(theta): 0.70, 0.13, ...
    assert F.softmax(theta, 0).max().item() > 0.69
    encoder = torch.optim.SGD([theta], lr=2.0)
    for _ in range(150):
        logits = train_cluster_adversary(model, F.softmax(theta, 0).detach(), 40)
        loss = generator_value(logits, F.softmax(theta, 0))
        encoder.zero_grad()
        loss.backward()
        encoder.step()
    assert torch.allclose(F.softmax(theta, 0), torch.full((4,), 0.25), atol=0.01)


def test_the_classification_phase_reads_only_the_labelled_minibatch():
    """The loss with a labelled minibatch is the loss without it plus classification_weight x the cross-entropy of
    q(y|x) on those digits alone; the unlabelled batch's labels are never read."""
    torch.manual_seed(0)
    model = build_model("categorical_aae", **{**SEMI, "classification_weight": 3.0})
    x = digits(6)
    labelled_x, labelled_y = digits(4, seed=1), torch.tensor([3, 1, 4, 1])
    torch.manual_seed(1)
    plain = model.loss((x, torch.zeros(6, dtype=torch.long))).loss
    torch.manual_seed(1)
    other_labels = model.loss((x, torch.arange(6))).loss
    torch.manual_seed(1)
    semi = model.loss((x, torch.arange(6)), labelled=(labelled_x, labelled_y))
    cross_entropy = F.cross_entropy(model.cluster_logits(labelled_x), labelled_y)
    assert other_labels.item() == plain.item()
    assert semi.terms["classification"].item() == pytest.approx(cross_entropy.item(), rel=1e-6)
    assert semi.loss.item() == pytest.approx(plain.item() + 3.0 * cross_entropy.item(), rel=1e-5)


def test_the_classification_gradient_reaches_only_the_encoder_through_the_labelled_digits():
    """The cross-entropy term changes with the labelled digits' images and not with the unlabelled batch's."""
    torch.manual_seed(0)
    model = build_model("categorical_aae", **SEMI)
    labelled = (digits(4, seed=1), torch.tensor([0, 1, 2, 3]))
    first = model.loss((digits(6, seed=2), torch.zeros(6, dtype=torch.long)), labelled=labelled)
    second = model.loss((digits(6, seed=3), torch.zeros(6, dtype=torch.long)), labelled=labelled)
    moved = model.loss((digits(6, seed=2), torch.zeros(6, dtype=torch.long)),
                       labelled=(digits(4, seed=4), labelled[1]))
    assert first.terms["classification"].item() == second.terms["classification"].item()
    assert moved.terms["classification"].item() != first.terms["classification"].item()
    model.zero_grad()
    first.terms["classification"].backward()
    assert all(p.grad is None for p in model.decoder.parameters())
    assert all(p.grad is None for p in model.discriminator_parameters())


def test_a_clustering_model_refuses_a_labelled_minibatch_and_labels_to_sample():
    model = build_model("categorical_aae", **TINY)
    with pytest.raises(ValueError, match="semi-supervised"):
        model.loss((digits(2), torch.zeros(2, dtype=torch.long)), labelled=(digits(2), torch.zeros(2).long()))
    with pytest.raises(ValueError, match="without labels"):
        model.sample(2, labels=torch.tensor([0, 1]))
    assert not model.learns_from_labelled_batch and not model.samples_by_label


def test_the_adversaries_see_prior_draws_against_the_two_heads():
    """D_y's prior codes are one-hot, D_z's prior codes Gaussian, and the codes they judge are the encoder's softmax
    and style outputs: with each D's logit t everywhere, both values are softplus(-t) + softplus(t)."""
    model = build_model("categorical_aae", **TINY)
    for net, logit in ((model.cluster_discriminator, 1.5), (model.style_discriminator, -0.5)):
        with torch.no_grad():
            net[-1].weight.zero_()
            net[-1].bias.fill_(logit)
    out = model.discriminator_loss((digits(5), torch.zeros(5, dtype=torch.long)))
    t = torch.tensor([1.5, -0.5])
    assert out.terms["clusters"].item() == pytest.approx((F.softplus(-t[0]) + F.softplus(t[0])).item(), rel=1e-6)
    assert out.terms["style"].item() == pytest.approx((F.softplus(-t[1]) + F.softplus(t[1])).item(), rel=1e-6)
    gen = model.regularisation_loss((digits(5), torch.zeros(5, dtype=torch.long)))
    assert gen.terms["clusters_adversarial"].item() == pytest.approx(F.softplus(-t[0]).item(), rel=1e-6)
    assert gen.terms["style_adversarial"].item() == pytest.approx(F.softplus(-t[1]).item(), rel=1e-6)
    assert gen.loss.item() == pytest.approx((F.softplus(-t[0]) + F.softplus(-t[1])).item(), rel=1e-6)


def test_the_regularisation_phase_is_its_own_step_on_the_encoder_or_joins_the_loss():
    """With regularisation_phase (the paper's), `loss` is the reconstruction alone and the encoder fools the
    adversaries in `regularisation_loss`; without it, `loss` is the sum and there is no separate phase."""
    batch = (digits(4), torch.zeros(4, dtype=torch.long))
    torch.manual_seed(0)
    phased = build_model("categorical_aae", **{**TINY, "adversarial_weight": 2.0})
    merged = build_model("categorical_aae", **{**TINY, "adversarial_weight": 2.0, "regularisation_phase": False})
    merged.load_state_dict(phased.state_dict())
    loss, regularisation = phased.loss(batch), phased.regularisation_loss(batch)
    assert set(loss.terms) == {"reconstruction"} and loss.loss.item() == loss.terms["reconstruction"].item()
    assert regularisation.loss.item() == pytest.approx(
        2.0 * (regularisation.terms["clusters_adversarial"] + regularisation.terms["style_adversarial"]).item())
    assert merged.loss(batch).loss.item() == pytest.approx(loss.loss.item() + regularisation.loss.item(), rel=1e-6)
    assert [id(p) for p in phased.regularisation_parameters()] == [id(p) for p in phased.encoder.parameters()]
    assert list(merged.regularisation_parameters()) == []


def test_instance_noise_reaches_both_inputs_of_the_cluster_adversary_only_when_asked():
    y = torch.eye(4)
    clean = build_model("categorical_aae", **TINY)
    noisy = build_model("categorical_aae", **{**TINY, "cluster_noise_std": 0.5})
    noisy.load_state_dict(clean.state_dict())
    assert torch.equal(clean.cluster_critic(y), clean.cluster_discriminator(y).squeeze(1))
    torch.manual_seed(3)
    noise = 0.5 * torch.randn_like(y)
    torch.manual_seed(3)
    assert torch.allclose(noisy.cluster_critic(y), clean.cluster_discriminator(y + noise).squeeze(1))


def test_the_joint_code_is_the_softmax_of_the_cluster_head_beside_the_style():
    model = build_model("categorical_aae", **TINY)
    x = digits(3)
    code = model.encode(x).z
    h = model.encoder(x)
    assert code.shape == (3, 4 + 3)
    assert torch.allclose(code[:, :4], h[:, :4].softmax(1)) and torch.allclose(code[:, 4:], h[:, 4:])
    assert torch.allclose(model.cluster_probabilities(x).sum(1), torch.ones(3))


def test_prior_draws_are_one_hot_clusters_with_gaussian_style():
    model = build_model("categorical_aae", **TINY)
    code = model.prior_sample(4000, torch.Generator().manual_seed(0))
    y, z = model.split_code(code)
    assert torch.equal(y.sum(1), torch.ones(4000)) and set(y.unique().tolist()) == {0.0, 1.0}
    assert (y.mean(0) - 0.25).abs().max() < 0.03  # uniform over the 4 clusters
    assert z.mean().abs() < 0.05 and (z.std() - 1).abs() < 0.05
    chosen = model.prior_sample(3, labels=torch.tensor([2, 0, 3]))
    assert chosen[:, :4].argmax(1).tolist() == [2, 0, 3]


def test_decode_clusters_puts_cluster_k_with_style_s_at_row_k_column_s():
    model = build_model("categorical_aae", **TINY)
    styles = torch.randn(2, 3)
    grid = model.decode_clusters(styles)
    assert grid.shape == (4, 2, 1, 28, 28)
    code = torch.cat([torch.eye(4)[2:3], styles[1:2]], dim=1)
    assert torch.allclose(grid[2, 1], model.decode(code)[0])


def test_a_semi_supervised_model_samples_the_digit_asked_for():
    """sample(labels=...) decodes cluster labels[i] (cluster k is digit k once trained on labels)."""
    model = build_model("categorical_aae", **SEMI)
    torch.manual_seed(0)
    images = model.sample(2, labels=torch.tensor([7, 2]), generator=torch.Generator().manual_seed(0))
    code = model.prior_sample(2, torch.Generator().manual_seed(0), labels=torch.tensor([7, 2]))
    assert torch.allclose(images, model.decode(code))


@pytest.mark.parametrize("fields, message", [
    ({"num_clusters": 1}, "num_clusters"),
    ({"semi_supervised": True, "num_clusters": 16}, "one cluster per digit"),
    ({"adversarial_weight": -1.0}, "adversarial_weight"),
    ({"classification_weight": -0.5}, "classification_weight"),
    ({"cluster_noise_std": -0.1}, "cluster_noise_std"),
    ({"discriminator_hidden_dims": []}, "discriminator_hidden_dims"),
])
def test_the_config_refuses_what_cannot_be_built(fields, message):
    with pytest.raises(ConfigError, match=message):
        build_model("categorical_aae", **{**TINY, **fields})


def test_the_paper_value_of_a_uniform_cluster_code_is_log_4():
    """At the game's equilibrium (q = p, D = 1/2 everywhere) the adversary's loss is 2 log 2 (Goodfellow et al.
    2014, Theorem 1: -log 4)."""
    logits = torch.zeros(4)
    assert discriminator_value(logits, logits, torch.full((4,), 0.25), torch.full((4,), 0.25)).item() == \
        pytest.approx(math.log(4))


def test_the_plane_picture_puts_each_cluster_at_its_head_plus_half_its_style():
    """With a 2-D style, plane_codes = q(y|x) @ heads + 0.5 z, the heads evenly on a circle of radius 4; prior draws
    in the picture are petals around the heads. Another style size has no picture."""
    model = build_model("categorical_aae", **{**TINY, "latent_dim": 2})
    heads = model.cluster_heads()
    assert torch.allclose(heads.norm(dim=1), torch.full((4,), 4.0))
    assert torch.allclose(heads[1], torch.tensor([0.0, 4.0]), atol=1e-6)
    x = digits(3)
    y, z = model.split_code(model.encode(x).z)
    assert torch.allclose(model.plane_codes(x), y @ heads + 0.5 * z)
    code = model.prior_sample(5, torch.Generator().manual_seed(2))
    y, z = model.split_code(code)
    assert torch.allclose(model.plane_prior_sample(5, torch.Generator().manual_seed(2)), y @ heads + 0.5 * z)
    assert model.config.pictured_in_2d and model.config.code_dim == 6
    with pytest.raises(ValueError, match="needs a 2-D style"):
        build_model("categorical_aae", **TINY).plane_codes(x)


def test_a_model_with_a_2d_code_is_its_own_plane_picture():
    vae = build_model("vae", hidden_dims=[8], latent_dim=2)
    x = digits(2)
    assert torch.equal(vae.plane_codes(x), vae.encode(x).mean)
    assert vae.config.pictured_in_2d and not build_model("vae", hidden_dims=[8], latent_dim=3).config.pictured_in_2d
    with pytest.raises(Unsupported, match="3-D code"):
        build_model("vae", hidden_dims=[8], latent_dim=3).plane_codes(x)

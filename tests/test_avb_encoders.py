"""AVB's noise encoders and its authors' adversary (vae_models/avb.py), each computed by hand from its own parameters
and the equation in its docstring (Mescheder et al. 2017, Sec. 4 and Appendix; the authors' code,
LMescheder/AdversarialVariationalBayes: full0 / full0_ac / conv0_ac encoders, conv0 adversary):

    every_layer_noise:  h_l = act(W_l h_{l-1} + U_l eps + b_l),  z = W_out h_L + U_out eps + b_out
    noise_basis:        z = z0(x) + sum_i a_i(x) * v_i(eps_i),  a_i(x) = elu(l_i(x) - 5) + 1,
                        E[z|x] = z0 + sum_i a_i E[v_i],  Var[z|x] = sum_i a_i^2 Var[v_i]
    inner_product T:    T(x, z) = <elu(theta(x)), s(z)> + T_x(x) + T_z(z) [+ |z|^2 / 2]

the authors' initialisation, and the bounds of AVB's settings.
"""

import pytest
import torch
import torch.nn.functional as F

from vae_models import ConfigError, build_model

G = torch.Generator().manual_seed(0)
X = torch.rand(5, 1, 28, 28, generator=G)
SMALL = dict(hidden_dims=[12, 10], latent_dim=3, noise_dim=4, activation="tanh")


def test_every_layer_noise_adds_a_linear_map_of_the_noise_before_every_layer():
    encoder = build_model("avb", encoder_type="every_layer_noise", **SMALL).encoder
    eps = torch.randn(5, 4, generator=G)
    h = X.flatten(1)
    for i, (layer, noise) in enumerate(zip(encoder.layers, encoder.noise)):
        assert noise.bias is None  # the layer's own bias b_l is the only one
        h = h @ layer.weight.T + eps @ noise.weight.T + layer.bias
        h = torch.tanh(h) if i < 2 else h  # two hidden layers, then the linear output
    with torch.no_grad():
        torch.testing.assert_close(encoder(X, eps), h.detach())
    assert len(encoder.layers) == 3


def basis_by_hand(encoder, eps):
    """v_i(eps_i) for each i with its own MLP (elu between layers), eps (m, N, noise_dim) -> (m, N, d)."""
    out = []
    for i in range(encoder.num_basis):
        h = eps[i]
        for layer, (w, b) in enumerate(zip(encoder.weights, encoder.biases)):
            h = h @ w[i] + b[i]
            h = F.elu(h) if layer < len(encoder.weights) - 1 else h
        out.append(h)
    return torch.stack(out)


def basis_model(**overrides):
    config = dict(SMALL, encoder_type="noise_basis", num_basis=3, basis_hidden_dims=[6, 5]) | overrides
    model = build_model("avb", **config)
    with torch.no_grad():  # distinct biases per basis vector, so that sharing one would show
        for b in model.encoder.biases:
            b.copy_(torch.randn(b.shape, generator=G))
    return model.encoder


def test_noise_basis_encoder_is_z0_plus_positive_coefficients_times_basis_vectors():
    encoder = basis_model()
    eps = torch.randn(5, 3 * 4, generator=G)
    trunk = [m for m in encoder.trunk if isinstance(m, torch.nn.Linear)]
    assert len(trunk) == 2  # the hidden layers only: z0 and the coefficients are the heads
    h = X.flatten(1)
    for layer in trunk:
        h = torch.tanh(h @ layer.weight.T + layer.bias)
    z0 = h @ encoder.z0.weight.T + encoder.z0.bias
    a = F.elu((h @ encoder.scales.weight.T + encoder.scales.bias).view(5, 3, 3) - 5.0) + 1.0  # (B, m, d)
    v = basis_by_hand(encoder, eps.view(5, 3, 4).transpose(0, 1))  # (m, B, d)
    expected = z0 + (a.transpose(0, 1) * v).sum(0)
    with torch.no_grad():
        torch.testing.assert_close(encoder(X, eps), expected.detach())
        got_z0, got_a = encoder.coefficients(X)
        torch.testing.assert_close(got_a, a.transpose(0, 1).detach())
        assert (got_a > 0).all()
        torch.testing.assert_close(got_z0, z0.detach())
        noise = torch.randn(3, 7, 4, generator=G)
        torch.testing.assert_close(encoder.basis(noise), basis_by_hand(encoder, noise).detach())


def test_noise_basis_moments_are_those_of_the_encoders_draws():
    encoder = basis_model(moment_samples=40_000)
    torch.manual_seed(0)
    with torch.no_grad():
        mean, var = encoder.moments(X[:2])
        draws = encoder(X[:2].repeat(20_000, 1, 1, 1), torch.randn(40_000, 3 * 4)).view(20_000, 2, 3)
    torch.testing.assert_close(mean, draws.mean(0), atol=0.03 * draws.std(0).max().item(), rtol=0)
    torch.testing.assert_close(var, draws.var(0), rtol=0.05, atol=0)


def test_batch_moments_are_the_mean_and_population_variance_of_the_batchs_own_basis_draws():
    """basis_moments="batch" (the authors' tf.nn.moments(v, [0])): E[v_i] and Var[v_i] over the B draws that make
    the batch's z, the variance divided by B, combined as E[z|x] = z0 + sum_i a_i E[v_i], Var = sum_i a_i^2 Var[v_i]."""
    encoder = basis_model()
    eps = torch.randn(5, 3 * 4, generator=G)
    with torch.no_grad():
        z0, a = encoder.coefficients(X)
        v = basis_by_hand(encoder, eps.view(5, 3, 4).transpose(0, 1))  # (m, B, d)
        mean_v = v.sum(1, keepdim=True) / 5
        var_v = (v - mean_v).pow(2).sum(1, keepdim=True) / 5
        z, mean, var = encoder.sample_with_moments(X, eps)
    torch.testing.assert_close(z, z0 + (a * v).sum(0))
    torch.testing.assert_close(mean, z0 + (a * mean_v).sum(0))
    torch.testing.assert_close(var, (a.pow(2) * var_v).sum(0))


def test_basis_weights_start_with_variance_one_over_fan_in():
    """LeCun initialisation, so each basis layer starts variance-preserving."""
    encoder = basis_model(num_basis=16, basis_hidden_dims=[64, 64], noise_dim=16)
    for w in encoder.weights:
        fan_in = w.shape[1]
        assert abs(w.detach().var().item() * fan_in - 1) < 0.15, (w.shape, w.var().item())


def test_a_collapsed_posterior_gets_the_floor_std_not_nan():
    """A basis that ignores its noise (the last layer's weights zero) gives Var[z|x] = 0: the contrast's std is then
    the floor sqrt(1e-6), so z~ = (z - mean) / std stays finite."""
    model = build_model("avb", **SMALL, encoder_type="noise_basis", num_basis=3, basis_hidden_dims=[6],
                        adaptive_contrast=True)
    with torch.no_grad():
        model.encoder.weights[-1].zero_()
        mean, std = model.moments(X, 8)
    torch.testing.assert_close(std, torch.full_like(std, 1e-3))
    assert torch.isfinite(mean).all()


SMALLEST_VALID = dict(noise_dim=1, discriminator_hidden_dims=[1], contrast_samples=2, proposal_samples=2,
                      num_basis=1, moment_samples=2, basis_hidden_dims=[1], gaussian_std=1e-3,
                      discriminator_features=1)
JUST_INVALID = [dict(noise_dim=0), dict(discriminator_hidden_dims=[]), dict(discriminator_hidden_dims=[0]),
                dict(contrast_samples=1), dict(proposal_samples=1), dict(num_basis=0), dict(moment_samples=1),
                dict(basis_hidden_dims=[]), dict(basis_hidden_dims=[4, 0]), dict(gaussian_std=0.0),
                dict(gaussian_std=-0.1), dict(encoder_type="noise_basis", backbone="conv"),
                dict(discriminator_type="conv"), dict(discriminator_features=0), dict(basis_moments="exact"),
                dict(basis_moments="batch"), dict(basis_moments="batch", encoder_type="every_layer_noise"),
                dict(weight_init="xavier")]


def test_avb_settings_accept_their_smallest_valid_values():
    for encoder_type in ("input_noise", "every_layer_noise", "noise_basis"):
        for discriminator_type in ("joint", "inner_product"):
            build_model("avb", hidden_dims=[8], latent_dim=2, likelihood="gaussian", encoder_type=encoder_type,
                        discriminator_type=discriminator_type, weight_init="authors", **SMALLEST_VALID)
    build_model("avb", hidden_dims=[8], latent_dim=2, encoder_type="noise_basis", basis_moments="batch")


@pytest.mark.parametrize("bad", JUST_INVALID, ids=lambda bad: ",".join(f"{k}={v}" for k, v in bad.items()))
def test_avb_settings_refuse_values_just_past_their_bounds(bad):
    with pytest.raises(ConfigError):
        build_model("avb", hidden_dims=[8], latent_dim=2, **bad)


def test_the_discriminator_adds_no_prior_term_unless_asked():
    from vae_models.avb import JointDiscriminator

    x, z = torch.rand(4, 3, generator=G), torch.randn(4, 2, generator=G)
    plain = JointDiscriminator(3, 2, (5,), "relu")
    with torch.no_grad():
        torch.testing.assert_close(plain(x, z), plain.net(torch.cat([x, z], 1)).squeeze(1))
        with_term = JointDiscriminator(3, 2, (5,), "relu", prior_term=True)
        with_term.load_state_dict(plain.state_dict())
        torch.testing.assert_close(with_term(x, z), plain(x, z) + 0.5 * z.pow(2).sum(1))


def leaky(h):
    return torch.where(h > 0, h, 0.2 * h)  # the authors' lrelu: max(h, 0.2 h)


def mlp_by_hand(layers, h):
    """The Linear layers of a leaky_mlp, applied with explicit matrix products."""
    linear = [m for m in layers if isinstance(m, torch.nn.Linear)]
    for i, layer in enumerate(linear):
        h = h @ layer.weight.T + layer.bias
        h = leaky(h) if i < len(linear) - 1 else h
    return h


@pytest.mark.parametrize("prior_term", [False, True])
def test_inner_product_discriminator_is_the_authors_form(prior_term):
    """T(x, z) = sum_k elu(theta_k(x)) s_k(z) + T_x(x) + T_z(z) (+ |z|^2 / 2), x flattened as it is in [0, 1]."""
    model = build_model("avb", hidden_dims=[8], latent_dim=3, discriminator_type="inner_product",
                        discriminator_hidden_dims=[7, 6], discriminator_features=5, discriminator_prior_term=prior_term)
    T = model.discriminator
    with torch.no_grad():  # biases away from zero, so that dropping one would show
        for p in T.parameters():
            if p.dim() == 1:
                p.copy_(torch.randn(p.shape, generator=G))
    z = torch.randn(5, 3, generator=G)
    x = X.flatten(1)
    theta, s = mlp_by_hand(T.theta, x), mlp_by_hand(T.s, z)
    assert theta.shape == s.shape == (5, 5) and len([m for m in T.theta if isinstance(m, torch.nn.Linear)]) == 3
    expected = (F.elu(theta) * s).sum(1) + mlp_by_hand(T.x_only, x)[:, 0] + mlp_by_hand(T.z_only, z)[:, 0]
    if prior_term:
        expected = expected + 0.5 * z.pow(2).sum(1)
    with torch.no_grad():
        torch.testing.assert_close(T(X, z), expected.detach())
    assert {id(p) for p in model.discriminator_parameters()} == {id(p) for p in T.parameters()}


def test_the_authors_initialisation_is_tf_slims_with_near_zero_heads():
    """weight_init="authors": every weight Xavier-uniform (|w| <= sqrt(6 / (fan_in + fan_out)), variance a third of
    that squared) and every bias zero, the noise basis included; z0, T's theta, T_x and T_z weights ~ N(0, 1e-5^2)
    truncated at 2 std, so at the start T(x, z) is its |z|^2 / 2 term and z is z0 ~ 0 plus the scaled basis."""
    torch.manual_seed(0)
    model = build_model("avb", hidden_dims=[64, 48], latent_dim=3, noise_dim=8, encoder_type="noise_basis",
                        num_basis=4, basis_hidden_dims=[32], discriminator_type="inner_product",
                        discriminator_hidden_dims=[64], discriminator_features=32, discriminator_prior_term=True,
                        weight_init="authors")
    heads = {id(m.weight) for m in (model.encoder.z0, *model.discriminator.near_zero_heads())}
    assert len(heads) == 4
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            assert module.bias is None or not module.bias.any()
            w = module.weight.detach()
            if id(module.weight) in heads:
                assert 0 < w.abs().max() <= 2e-5
                continue
            bound = (6 / sum(w.shape)) ** 0.5
            assert w.abs().max() <= bound
            assert abs(w.var().item() / (bound ** 2 / 3) - 1) < 0.35, (w.shape, w.var().item())
    for w, b in zip(model.encoder.weights, model.encoder.biases):
        bound = (6 / (w.shape[1] + w.shape[2])) ** 0.5
        assert not b.any() and w.abs().max() <= bound and w.abs().max() > 0.8 * bound
    z = torch.randn(5, 3, generator=G)
    with torch.no_grad():
        torch.testing.assert_close(model.discriminator(X, z), 0.5 * z.pow(2).sum(1), atol=1e-3, rtol=0)
        z0, _ = model.encoder.coefficients(X)
    assert z0.abs().max() < 1e-3
    every_layer = build_model("avb", **SMALL, encoder_type="every_layer_noise", weight_init="authors").encoder
    assert 0 < every_layer.layers[-1].weight.abs().max() <= 2e-5  # full0's output layer `z`
    assert every_layer.layers[0].weight.abs().max() > 1e-2 and every_layer.noise[0].bias is None
    pytorch = build_model("avb", hidden_dims=[8], latent_dim=2)  # the default keeps torch's initialisation
    assert pytorch.decoder.head[0].bias.abs().sum() > 0

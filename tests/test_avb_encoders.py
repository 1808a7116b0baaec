"""AVB's two noise encoders (vae_models/avb.py), each computed by hand from its own parameters and the equation in
its docstring (Mescheder et al. 2017, Sec. 3.3 and Appendix: the authors' full0 and full0_ac encoders):

    every_layer_noise:  h_l = act(W_l h_{l-1} + U_l eps + b_l),  z = W_out h_L + U_out eps + b_out
    noise_basis:        z = z0(x) + sum_i a_i(x) * v_i(eps_i),  a_i(x) = elu(l_i(x) - 5) + 1,
                        E[z|x] = z0 + sum_i a_i E[v_i],  Var[z|x] = sum_i a_i^2 Var[v_i]

and the bounds of AVB's noise and pixel-std settings.
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
                      num_basis=1, moment_samples=2, basis_hidden_dims=[1], gaussian_std=1e-3)
JUST_INVALID = [dict(noise_dim=0), dict(discriminator_hidden_dims=[]), dict(discriminator_hidden_dims=[0]),
                dict(contrast_samples=1), dict(proposal_samples=1), dict(num_basis=0), dict(moment_samples=1),
                dict(basis_hidden_dims=[]), dict(basis_hidden_dims=[4, 0]), dict(gaussian_std=0.0),
                dict(gaussian_std=-0.1), dict(encoder_type="noise_basis", backbone="conv")]


def test_avb_settings_accept_their_smallest_valid_values():
    for encoder_type in ("input_noise", "every_layer_noise", "noise_basis"):
        build_model("avb", hidden_dims=[8], latent_dim=2, likelihood="gaussian", encoder_type=encoder_type,
                    **SMALLEST_VALID)


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

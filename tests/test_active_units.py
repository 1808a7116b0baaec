"""train.evaluate's "Active units" (Burda et al. 2015, Sec. 5.2): a latent dimension counts when its posterior mean
varies over the test digits, Cov_x(E_q[z_u|x]) > 0.01; for AVB the mean is that of its moment-matched Gaussian."""

import torch

from train import evaluate as evaluation
from vae_models import build_model


def test_dimensions_whose_mean_is_constant_are_inactive_and_the_others_count(mnist_dir):
    torch.manual_seed(0)
    model = build_model("vae", hidden_dims=[16], latent_dim=6).eval()
    head = model.encoder.head[-1]  # outputs (mean, logvar) stacked: rows 0..5 are the means
    with torch.no_grad():
        head.weight[:6] *= 20  # spread the means well past the 0.01 threshold ...
        head.weight[[1, 4]] = 0  # ... except dimensions 1 and 4, whose mean is the bias whatever the digit
    data = evaluation.test_set(str(mnist_dir), 200, seed=0)
    (record,) = evaluation.evaluate(model, ["active_units"], data, command="cmd")
    means = model.encode(data[1]).mean.detach().double()
    expected = means.var(0)
    assert expected[[1, 4]].max() == 0 and expected[[0, 2, 3, 5]].min() > 0.01
    assert (record.name, record.type, record.value) == ("Active units", "active_units", 4)
    assert record.details["latent_dim"] == 6 and record.details["threshold"] == 0.01
    assert record.details["activity"] == [round(float(a), 4) for a in expected.sort(descending=True).values]


def test_an_implicit_posterior_counts_the_mean_of_its_moment_matched_gaussian(mnist_dir):
    torch.manual_seed(0)
    model = build_model("avb", hidden_dims=[16], latent_dim=4, encoder_type="noise_basis", num_basis=2,
                        basis_hidden_dims=[8], discriminator_hidden_dims=[8]).eval()
    with torch.no_grad():
        model.encoder.z0.weight[:2] *= 10  # z0(x) moves with x in dimensions 0 and 1 only
    data = evaluation.test_set(str(mnist_dir), 100, seed=0)
    (record,) = evaluation.evaluate(model, ["active_units"], data, command="cmd")
    torch.manual_seed(0)  # evaluate seeds torch's generator with the settings' seed: the same basis draws
    mean, _ = model.encoder.moments(data[1])  # E[z|x] = z0(x) + sum_i a_i(x) E[v_i], from the basis moments
    activity = mean.detach().double().var(0)
    assert record.value == int((activity > 0.01).sum()) == 2
    assert record.details["activity"] == [round(float(a), 4) for a in activity.sort(descending=True).values]


def test_models_without_a_posterior_mean_get_no_record(mnist_dir):
    model = build_model("aae", hidden_dims=[16], latent_dim=2).eval()
    assert not evaluation.has_gaussian_proposal(model)
    assert evaluation.evaluate(model, ["active_units"], evaluation.test_set(str(mnist_dir), 20, seed=0),
                               command="cmd") == []

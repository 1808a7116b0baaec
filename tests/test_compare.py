"""train.compare: the paired difference of two exports' per-digit IS-NLL on the same test digits."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from train import compare
from train import evaluate as evaluation
from vae_models import load_model
from vae_models.ais import ais_log_likelihood
from vae_models.metrics import elbo, importance_sampled_nll
from tests.paths import MNIST_DIR

ROOT = Path(__file__).resolve().parents[1]


def test_the_paired_standard_error_is_that_of_the_per_digit_differences():
    a, b = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.0, 2.0, 2.0, 2.0])  # d = 1, 0, 1, 2
    mean, std_error = compare.paired_difference(a, b)
    assert mean == 1.0
    assert std_error == pytest.approx(math.sqrt(2 / 3) / 2, rel=1e-12)


def test_unpaired_vectors_are_refused():
    with pytest.raises(ValueError, match="equal-length"):
        compare.paired_difference(torch.ones(3), torch.ones(4))


def test_the_comparison_record_is_the_difference_of_the_two_models_bounds_on_the_same_digits(tmp_path):
    first, second = tmp_path / "dvae", tmp_path / "vae"
    shutil.copytree(ROOT / "pretrained/dvae", first)
    shutil.copytree(ROOT / "pretrained/vae", second)
    before = json.loads((first / "eval_results.json").read_text())["results"]
    assert compare.main([str(first), str(second), "--data-dir", str(MNIST_DIR), "--limit", "12",
                         "--num-samples", "7", "--seed", "3"]) == 0
    _, binary, _ = evaluation.test_set(str(MNIST_DIR), 12, 3)
    nll = []
    for model in (load_model(first), load_model(second)):  # built before seeding: init draws from the global RNG
        torch.manual_seed(3)
        nll.append(importance_sampled_nll(model, binary, num_samples=7))
    difference, std_error = compare.paired_difference(*nll)
    after = json.loads((first / "eval_results.json").read_text())["results"]
    assert after[:-1] == before  # merged: the earlier records stay
    record = after[-1]
    assert (record["name"], record["type"], record["value"]) == ("IS-NLL minus vae (k=7, paired)", "nll_difference",
                                                                 round(difference, 4))
    assert record["details"]["std_error"] == round(std_error, 4)
    assert record["details"]["share_better"] == round(float((nll[0] < nll[1]).double().mean()), 4)


def test_the_elbo_comparison_is_the_difference_of_the_two_models_bounds_averaged_over_draws(tmp_path):
    first, second = tmp_path / "dvae", tmp_path / "vae"
    shutil.copytree(ROOT / "pretrained/dvae", first)
    shutil.copytree(ROOT / "pretrained/vae", second)
    assert compare.main([str(first), str(second), "--data-dir", str(MNIST_DIR), "--limit", "12", "--bound", "elbo",
                         "--num-samples", "3", "--seed", "3"]) == 0
    _, binary, _ = evaluation.test_set(str(MNIST_DIR), 12, 3)
    negative_elbo = []
    for model in (load_model(first), load_model(second)):
        torch.manual_seed(3)
        negative_elbo.append(-torch.stack([elbo(model, binary) for _ in range(3)]).mean(0))
    difference, std_error = compare.paired_difference(*negative_elbo)
    record = json.loads((first / "eval_results.json").read_text())["results"][-1]
    assert (record["name"], record["value"]) == ("Negative ELBO minus vae (3 draws, paired)", round(difference, 4))
    assert record["details"]["std_error"] == round(std_error, 4)
    assert record["details"]["own_nll"] == round(float(negative_elbo[0].mean()), 4)
    assert "--bound elbo" in record["command"]


def test_a_model_without_an_importance_weighted_bound_is_refused(capsys):
    assert compare.main([str(ROOT / "pretrained/avb"), str(ROOT / "pretrained/vae"), "--limit", "12"]) == 2
    assert "has no importance-weighted bound" in capsys.readouterr().err


def test_the_ais_comparison_scores_an_implicit_posterior_model_by_annealed_importance_sampling(tmp_path):
    first, second = tmp_path / "avb", tmp_path / "vae"
    shutil.copytree(ROOT / "pretrained/avb", first)
    shutil.copytree(ROOT / "pretrained/vae", second)
    assert compare.main([str(first), str(second), "--data-dir", str(MNIST_DIR), "--limit", "4", "--bound", "ais",
                         "--seed", "3"]) == 0
    _, binary, _ = evaluation.test_set(str(MNIST_DIR), 4, 3)
    settings = evaluation.EvalSettings()
    nll = [-ais_log_likelihood(load_model(path), binary, generator=torch.Generator().manual_seed(3),
                               batch_size=settings.ais_batch, **settings.ais).log_px for path in (first, second)]
    difference, std_error = compare.paired_difference(*nll)
    record = json.loads((first / "eval_results.json").read_text())["results"][-1]
    assert (record["name"], record["value"]) == ("AIS-NLL minus vae (paired)", round(difference, 4))
    assert record["details"]["std_error"] == round(std_error, 4)
    assert record["details"]["baseline_nll"] == round(float(nll[1].mean()), 4)


def test_a_model_without_an_ais_estimate_is_refused(capsys):
    assert compare.main([str(ROOT / "pretrained/ae"), str(ROOT / "pretrained/vae"), "--limit", "4",
                         "--bound", "ais"]) == 2
    assert "has no AIS estimate of log p(x)" in capsys.readouterr().err

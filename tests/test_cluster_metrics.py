"""Clustering and semi-supervised errors (vae_models/metrics.py; train.evaluate's clustering and semi_supervised
records): the AAE paper's labelling rule and the majority rule on hand-made cluster probabilities, and the records
of a model, each cluster labelled from the validation digits only."""

from __future__ import annotations

import pytest
import torch

from train import evaluate as evaluation
from train.evaluate import evaluate
from vae_models import build_model
from vae_models.metrics import (best_example_cluster_labels, cluster_probabilities, cluster_shares, clustering_error,
                                majority_cluster_labels, paper_rule_clustering)

# Five validation digits over three clusters: cluster 0 is surest of digit 2 (0.9) but holds mostly 7s.
VALIDATION = torch.tensor([[0.9, 0.1, 0.0],
                           [0.6, 0.4, 0.0],
                           [0.7, 0.2, 0.1],
                           [0.1, 0.8, 0.1],
                           [0.2, 0.3, 0.5]])
VALIDATION_LABELS = torch.tensor([2, 7, 7, 1, 4])


def test_the_papers_rule_labels_each_cluster_by_the_digit_it_is_surest_of():
    assert best_example_cluster_labels(VALIDATION, VALIDATION_LABELS).tolist() == [2, 1, 4]


def test_the_majority_rule_labels_each_cluster_by_its_most_frequent_digit():
    assert majority_cluster_labels(VALIDATION, VALIDATION_LABELS).tolist() == [7, 1, 4]


def test_a_cluster_no_digit_is_assigned_to_falls_back_to_the_papers_rule():
    probabilities = torch.tensor([[0.6, 0.4], [0.7, 0.3]])  # cluster 1 holds nothing; it is surest of digit 0
    assert majority_cluster_labels(probabilities, torch.tensor([5, 3])).tolist() == [3, 5]


def test_the_clustering_error_counts_digits_whose_cluster_carries_another_label():
    test = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.0, 0.1, 0.9], [0.5, 0.4, 0.1]])
    labels = torch.tensor([7, 1, 3, 2])
    assert clustering_error(test, labels, torch.tensor([7, 1, 4])) == pytest.approx(0.5)  # digits 2 and 3 wrong
    assert cluster_shares(test).tolist() == [0.5, 0.25, 0.25]


def test_the_records_label_clusters_from_the_validation_digits_and_score_the_test_digits(mnist_dir):
    """A model whose q(y|x) depends on nothing but the digit's ink: the records' errors equal the rules applied by
    hand, and changing the validation labels changes the cluster labels (never read from the test set)."""
    torch.manual_seed(0)
    model = build_model("categorical_aae", hidden_dims=[8], latent_dim=2, num_clusters=4,
                        discriminator_hidden_dims=[4]).eval()
    grey, binary, labels = evaluation.test_set(str(mnist_dir), 300, 0)
    validation = (grey[:100].clone(), (torch.arange(100) % 10))
    records = {r.name: r for r in evaluate(model, ["clustering"], (grey, binary, labels), validation=validation)}
    with torch.no_grad():
        val, test = model.cluster_probabilities(validation[0]), model.cluster_probabilities(grey)
    paper = best_example_cluster_labels(val, validation[1])
    assert records["Clustering error (paper rule)"].value == pytest.approx(
        100 * clustering_error(test, labels, paper), abs=1e-4)
    assert records["Clustering error (paper rule)"].details["cluster_labels"] == paper.tolist()
    majority = majority_cluster_labels(val, validation[1])
    assert records["Clustering error (majority rule)"].details["cluster_labels"] == majority.tolist()
    relabelled = (validation[0], (validation[1] + 3) % 10)
    moved = {r.name: r for r in evaluate(model, ["clustering"], (grey, binary, labels), validation=relabelled)}
    assert moved["Clustering error (paper rule)"].details["cluster_labels"] == ((paper + 3) % 10).tolist()


def test_without_validation_digits_the_clustering_error_is_skipped(mnist_dir):
    model = build_model("categorical_aae", hidden_dims=[8], latent_dim=2, num_clusters=4,
                        discriminator_hidden_dims=[4])
    assert evaluate(model, ["clustering"], evaluation.test_set(str(mnist_dir), 50, 0)) == []


def test_the_semi_supervised_error_is_the_share_of_test_digits_whose_likeliest_class_is_wrong(mnist_dir):
    torch.manual_seed(0)
    model = build_model("categorical_aae", hidden_dims=[8], latent_dim=2, num_clusters=10, semi_supervised=True,
                        discriminator_hidden_dims=[4]).eval()
    grey, binary, labels = evaluation.test_set(str(mnist_dir), 200, 0)
    (record,) = evaluate(model, ["semi_supervised"], (grey, binary, labels),
                         training_args={"labelled_examples": 100, "seed": 3})
    with torch.no_grad():
        expected = 100 * (model.cluster_probabilities(grey).argmax(1) != labels).float().mean().item()
    assert record.value == pytest.approx(expected, abs=1e-4)
    assert record.details["labelled_examples"] == 100 and record.details["label_draw_seed"] == 3
    p = expected / 100
    assert record.details["std_error"] == pytest.approx(100 * (p * (1 - p) / 200) ** 0.5, abs=1e-4)
    assert "100 labels" in record.estimator


def test_the_paper_rule_summary_is_the_shares_and_error_of_the_rules_above():
    torch.manual_seed(0)
    model = build_model("categorical_aae", hidden_dims=[8], latent_dim=2, num_clusters=4,
                        discriminator_hidden_dims=[4]).eval()
    images, validation = torch.rand(30, 1, 28, 28), torch.rand(20, 1, 28, 28)
    labels, validation_labels = torch.arange(30) % 10, torch.arange(20) % 10
    shares, error = paper_rule_clustering(model, images, labels, validation, validation_labels)
    test = cluster_probabilities(model, images)
    cluster_labels = best_example_cluster_labels(cluster_probabilities(model, validation), validation_labels)
    assert torch.equal(shares, cluster_shares(test)) and error == clustering_error(test, labels, cluster_labels)

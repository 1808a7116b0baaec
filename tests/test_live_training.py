"""The "Train one yourself" tab's training loop (demo/live.py) in this process, on real MNIST: a run stops at the
time budget the visitor chose (counted from its first step), not at the tab's hard cap."""

import re
import time

from demo import live
from vae_models import get_spec

BUDGET_S = 3  # a short budget, far below the cap
LATE_S = 1  # how far past its budget the loop may stop: the step that crosses it finishes first


def test_a_short_run_stops_at_its_time_budget_not_at_the_cap(mnist_dir, tmp_path):
    assert BUDGET_S + LATE_S < live.MAX_SECONDS / 10
    training = live.LiveTraining(str(mnist_dir), tmp_path / "work")
    called = time.monotonic()
    updates = training.train("vae-2d", BUDGET_S, 0, "visitor")
    next(updates)  # the first step has run: the budget counts from here
    first_step = time.monotonic()
    *_, (_, _, status, zipped) = updates
    done = time.monotonic()
    reported = re.search(r"steps \([\d.]+ epochs\) in (\d+) s, stopped by time budget", status)
    assert reported, status
    assert BUDGET_S <= int(reported.group(1)) <= BUDGET_S + LATE_S  # the loop's own clock, as the visitor reads it
    assert done - first_step >= BUDGET_S - LATE_S  # not stopped early (the first update is sent a moment after the step)
    assert done - called < live.MAX_SECONDS / 2  # setup, the budget and the export: nowhere near the 90 s cap
    assert zipped.endswith(".zip")


def test_a_clustering_run_reports_its_cluster_shares_and_error_from_held_out_labels(mnist_dir, tmp_path):
    """The live categorical AAE's summary: each cluster's share of the scatter's test digits and the clustering
    error, the clusters labelled from the training digits its recipe holds out; its scatter is the plane picture."""
    training = live.LiveTraining(str(mnist_dir), tmp_path / "work")
    clustering = [name for name, m in training.models.items() if get_spec(m.model).clusters]
    assert clustering and training.models[clustering[0]].validation_examples > 0
    *_, (_, scatter, status, zipped) = training.train(clustering[0], BUDGET_S, 0, "visitor")
    shares = re.search(r"Cluster shares of the 1000 test digits: ([\d.]+) % to ([\d.]+) % \(1/10 = 10.0 %", status)
    assert shares and 0 <= float(shares.group(1)) <= 10 <= float(shares.group(2)) <= 100, status
    assert re.search(r"Clustering error [\d.]+ % \(each cluster labelled by its surest digit of the 10,000 held out",
                     status), status
    assert scatter is not None and zipped.endswith(".zip")

"""The interpolation view measures the lecture's moon example: each frame of the AE's and the VAE's paths is judged
by the classifier and by the meter of a likelihood model on neither path (bundled weights)."""

import re
import shutil

import pytest

from demo import sampling
from demo.common import example_choices, read_digit
from demo.weights import ModelStore, interpolation_checkpoints, label_judge, path_judge, reference_for
from tests.paths import REPO
from vae_models import typicality
from vae_models.latent import interpolation_frames

ZERO, THIRTEEN = example_choices()[0], example_choices()[13]
STEPS = 7


@pytest.fixture(scope="module")
def store():
    return ModelStore(REPO / "pretrained", hub=False)


@pytest.fixture(scope="module")
def table(store):
    """{(path title, measure): [value per frame as shown], midpoint dip as shown} from the view's note."""
    *_, chart, note = sampling.interpolate(store, None, None, ZERO, None, None, THIRTEEN, STEPS)
    assert chart is not None
    rows = {}
    for line in note.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == STEPS + 3 and cells[1] in (sampling.CONFIDENCE, sampling.PERCENTILE):
            rows[cells[0], cells[1]] = [float(c) for c in cells[2:-1]], float(cells[-1])
    return rows


def frames_of(store, name):
    x_a, _, _ = read_digit(None, None, ZERO)
    x_b, _, _ = read_digit(None, None, THIRTEEN)
    return interpolation_frames(store.get(name), x_a, x_b, STEPS)


def test_the_judge_of_the_paths_is_on_neither_path(store):
    judge = path_judge()
    assert judge not in interpolation_checkpoints() and store.get(judge).spec.has_likelihood_bound


def test_each_frame_shows_the_classifiers_top_class_probability(store, table):
    for name, checkpoint in interpolation_checkpoints().items():
        expected = store.get(label_judge())(frames_of(store, name)).softmax(1).max(1).values
        shown, _ = table[checkpoint.title, sampling.CONFIDENCE]
        assert shown == pytest.approx(expected.tolist(), abs=0.005)


def test_each_frame_shows_its_log_likelihood_percentile_under_the_judges_meter(store, table):
    reference = reference_for(store, path_judge())
    for name, checkpoint in interpolation_checkpoints().items():
        log_px = typicality.log_likelihood(store.get(path_judge()), frames_of(store, name))
        shown, _ = table[checkpoint.title, sampling.PERCENTILE]
        assert shown == pytest.approx([reference.percentile(float(v)) for v in log_px], abs=0.5)


def test_the_midpoint_dip_is_the_ends_mean_minus_the_middle_frame(table):
    assert len(table) == 2 * len(interpolation_checkpoints())
    for (_, measure), (values, dip) in table.items():
        tolerance = 0.011 if measure == sampling.CONFIDENCE else 1.01  # from the rounded values shown
        assert dip == pytest.approx((values[0] + values[-1]) / 2 - values[STEPS // 2], abs=tolerance)


def test_without_a_meter_reference_the_paths_are_drawn_and_the_note_says_why(tmp_path):
    weights = tmp_path / "weights"
    for name in [*interpolation_checkpoints(), label_judge(), path_judge()]:  # what the view reads
        shutil.copytree(REPO / "pretrained" / name, weights / name,
                        ignore=shutil.ignore_patterns(typicality.REFERENCE_FILE))
    _, ae_row, vae_row, chart, note = sampling.interpolate(ModelStore(weights, hub=False), None, None, ZERO, None,
                                                           None, THIRTEEN, STEPS)
    assert ae_row is not None and vae_row is not None and chart is None
    assert "not judged" in note and typicality.REFERENCE_FILE in note

"""The bundled weights and what the docs say about them agree: every `pretrained/*` export loads strictly (its
safetensors keys and shapes are exactly its config's model) and carries an evaluation record, the model card
reports the same numbers, the bundled CVAE draws the digit it is asked for (read back by the bundled classifier), and
every results table in README.md and docs/results.md is exactly what the `python -m train.report ...` command in its
marker prints from those records. Generic over the folder, so it keeps holding when exports are re-evaluated or
added."""

import contextlib
import io
import math
import re
import shlex
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors import safe_open

from train import report
from vae_models import load_model
from vae_models.export import read_eval_results

REPO = Path(__file__).resolve().parents[1]
PRETRAINED = REPO / "pretrained"
EXPORTS = sorted(p.name for p in PRETRAINED.iterdir() if (p / "config.json").is_file())
# A results table: its command in the opening marker, then exactly that command's output, then the closing marker.
RESULTS_TABLE = re.compile(r"<!-- results-table: (python -m train\.report [^\n]*?) -->\n(.*?)\n<!-- /results-table -->", re.S)


def test_there_are_bundled_exports():
    assert {"vae", "cvae", "classifier"} <= set(EXPORTS)


@pytest.mark.parametrize("name", EXPORTS)
def test_export_loads_strictly_and_has_its_evaluation(name):
    folder = PRETRAINED / name
    model = load_model(str(folder))  # strict: a missing, extra or reshaped tensor raises CheckpointError
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert set(f.keys()) == set(model.state_dict())
    entries = read_eval_results(folder)  # the schema's reader: types, required fields
    assert entries, f"{name}: no or empty eval_results.json"
    for entry in entries:
        assert entry.dataset and entry.split and entry.type, entry
        assert math.isfinite(entry.value) and entry.command.startswith(
            ("python -m train.evaluate", "python -m train.compare", "python -m train.convergence"))
    card = ModelCard.load(folder / "README.md")
    reported = {(r.metric_name, r.metric_value) for r in card.data.eval_results or []}
    assert reported == {(e.name, e.value) for e in entries}, f"{name}: card and eval_results.json differ"


def results_tables(name: str) -> list[tuple[str, str]]:
    """(command, table) of every results table in the markdown file `name`."""
    return RESULTS_TABLE.findall((REPO / name).read_text(encoding="utf-8"))


def report_prints(command: str) -> str:
    """What `command` (python -m train.report FOLDER [options]) prints, FOLDER taken from the repository root."""
    folder, *options = shlex.split(command)[3:]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert report.main([str(REPO / folder), *options]) == 0
    return out.getvalue().strip("\n")


def test_results_tables_are_what_the_report_prints():
    tables = {name: results_tables(name) for name in ("README.md", "docs/results.md")}
    full = "python -m train.report pretrained"
    assert [command for command, _ in tables["docs/results.md"]] == [full], "docs/results.md holds the full table"
    assert len(tables["README.md"]) == 1, "README needs one results table between the markers"
    assert len(report_prints(full).splitlines()) > 2 + len(EXPORTS)  # a header and every export's metrics
    for name, found in tables.items():
        for command, table in found:
            assert table == report_prints(command), f"re-run `{command}` into {name}"


def test_serving_docs_say_where_the_hub_pins_come_from():
    from demo.weights import REVISIONS_FILE, hub_revisions

    serving = (REPO / "docs/serving.md").read_text(encoding="utf-8")
    assert f"`demo/{REVISIONS_FILE.name}`" in serving and "python -m train.publish" in serving
    # unpinned models are not downloaded (never the moving branch "main"), and the docs say so
    assert all(entry["revision"] != "main" for entry in hub_revisions(pins_file=REVISIONS_FILE).values())
    assert "a model without a pin is not downloaded" in serving


def test_cvae_samples_follow_the_label_by_the_bundled_classifier():
    """sample(n, labels=y) on the bundled CVAE: the bundled classifier reads back y for nearly every sample, for
    every digit (the README reports 96.95 % over 10,000 samples; 20 per digit here)."""
    cvae, classifier = load_model(str(PRETRAINED / "cvae")), load_model(str(PRETRAINED / "classifier"))
    labels = torch.arange(10).repeat_interleave(20)
    images = cvae.sample(len(labels), labels=labels, generator=torch.Generator().manual_seed(0))
    predicted = classifier.predict(images)
    per_digit = (predicted == labels).float().view(10, 20).mean(1)
    assert per_digit.mean() > 0.9 and per_digit.min() >= 0.7, per_digit

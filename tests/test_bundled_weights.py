"""The bundled weights and what the README says about them agree: every `pretrained/*` export loads strictly (its
safetensors keys and shapes are exactly its config's model) and carries an evaluation record, the model card
reports the same numbers, and the README Results table is exactly what `python -m train.report pretrained`
prints from those records. Generic over the folder, so it keeps holding when exports are re-evaluated or added."""

import contextlib
import io
import math
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from safetensors import safe_open

from train import report
from vae_models import load_model
from vae_models.export import read_eval_results

REPO = Path(__file__).resolve().parents[1]
PRETRAINED = REPO / "pretrained"
EXPORTS = sorted(p.name for p in PRETRAINED.iterdir() if (p / "config.json").is_file())
BEGIN, END = "<!-- results-table: python -m train.report pretrained -->", "<!-- /results-table -->"


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
        assert math.isfinite(entry.value) and entry.command.startswith("python -m train.evaluate")
    card = ModelCard.load(folder / "README.md")
    reported = {(r.metric_name, r.metric_value) for r in card.data.eval_results or []}
    assert reported == {(e.name, e.value) for e in entries}, f"{name}: card and eval_results.json differ"


def readme_results_table() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "README needs one results table between the markers"
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip("\n")


def test_readme_results_table_is_what_the_report_prints():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert report.main([str(PRETRAINED)]) == 0
    printed = out.getvalue().strip("\n")
    assert len(printed.splitlines()) > 2 + len(EXPORTS)  # a header and every export's metrics
    assert readme_results_table() == printed, "re-run `python -m train.report pretrained` into README.md"


def test_readme_says_whether_the_hub_revisions_are_pinned():
    from demo.weights import hub_table

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    floating = all(entry["revision"] == "main" for entry in hub_table().values())
    assert ("currently the branch `main`" in readme) == floating

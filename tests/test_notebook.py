"""examples/quickstart.ipynb runs top to bottom in a fresh kernel, offline, opened from examples/ as Jupyter opens
it: every code cell executes without an error, the sampling and the app's /sample cells show images, and the
notebook is stored without outputs."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "quickstart.ipynb"


def code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def shows_image(cell) -> bool:
    return any("image/png" in output.get("data", {}) for output in cell.outputs)


def test_notebook_is_stored_without_outputs():
    cells = code_cells(nbformat.read(NOTEBOOK, as_version=4))
    assert cells and all(cell.outputs == [] and cell.execution_count is None for cell in cells)


def test_quickstart_runs_every_cell_offline(monkeypatch, mnist_dir):
    # The kernel inherits this environment: MNIST from the env var, one thread, and no Hub access at all.
    monkeypatch.setenv("VAE_FAMILY_DATA_DIR", str(mnist_dir))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # timeout: a guard against a hang, not a speed check (the notebook takes about a minute on one thread)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
                   ).execute()  # raises CellExecutionError at the first cell that fails
    cells = code_cells(nb)
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1))
    assert not [o for cell in cells for o in cell.outputs if o.output_type == "error"]
    sampling = [cell for cell in cells if "model.sample(" in cell.source]
    served = [cell for cell in cells if 'api_name="/sample"' in cell.source]
    assert len(sampling) == len(served) == 1 and shows_image(sampling[0]) and shows_image(served[0])

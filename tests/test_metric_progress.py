"""The metrics' progress bar: shown on stderr only when asked, naming what it measures and counting batches."""

import pytest
import torch
from tqdm.auto import tqdm

from vae_models import build_model, metrics
from vae_models.metrics import importance_sampled_nll

IMAGES = (torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()


@pytest.fixture
def bars(monkeypatch):
    """The progress bars the metrics make, in order (real tqdm bars, kept for reading after they finish)."""
    made = []

    class KeptBar(tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(metrics, "tqdm", KeptBar)
    return made


def test_the_progress_bar_is_shown_only_when_asked(capsys):
    model = build_model("vae", hidden_dims=[8], latent_dim=2).eval()
    importance_sampled_nll(model, IMAGES, num_samples=2, batch_size=2)
    assert capsys.readouterr().err == ""
    importance_sampled_nll(model, IMAGES, num_samples=2, batch_size=2, progress=True)
    assert capsys.readouterr().err.strip()


def test_the_progress_bar_names_its_measurement_and_counts_batches(bars):
    model = build_model("vae", hidden_dims=[8], latent_dim=2).eval()
    importance_sampled_nll(model, IMAGES, num_samples=2, batch_size=2, progress=True)
    (bar,) = bars
    assert (bar.desc, bar.unit, bar.n, bar.total) == ("IS-NLL k=2", "batch", 2, 2)

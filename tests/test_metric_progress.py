"""The metrics' progress bar: shown on stderr only when asked, naming what it measures and counting batches."""

import torch

from vae_models import build_model
from vae_models.metrics import importance_sampled_nll

IMAGES = (torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()


def test_the_progress_bar_is_shown_only_when_asked(capsys):
    model = build_model("vae", hidden_dims=[8], latent_dim=2).eval()
    importance_sampled_nll(model, IMAGES, num_samples=2, batch_size=2)
    assert capsys.readouterr().err == ""
    importance_sampled_nll(model, IMAGES, num_samples=2, batch_size=2, progress=True)
    err = capsys.readouterr().err
    assert "IS-NLL k=2:" in err and "/2 [" in err and "batch/s" in err, err

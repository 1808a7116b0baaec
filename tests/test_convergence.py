"""train.convergence: a run's validation NLL at each kept checkpoint, scored as the export would be, and the change
over the last 10 % of the run."""

import json
import shutil

import pytest
import torch

from train import checkpoint as ckpt
from train import convergence
from train.trainer import train
from vae_models import load_model
from vae_models.data import held_out_digits
from vae_models.quadrature import quadrature_log_likelihood

from .tiny_runs import MNIST_DIR, restore_denormals, tiny_vae_config  # noqa: F401  (autouse)


@pytest.fixture(scope="module")
def averaged_run(tmp_path_factory):
    """A tiny 2-D VAE run: 13 steps, a checkpoint every 4, the moving average kept, 40 digits held out."""
    root = tmp_path_factory.mktemp("converging")
    config = tiny_vae_config(root / "run", max_steps=13, checkpoint_every=4, keep_checkpoints=5, ema_decay=0.5,
                             validation_examples=40, save_pretrained=str(root / "export"))
    train(config)
    torch.set_flush_denormal(False)
    return root / "run", root / "export"


def test_a_checkpoint_is_loaded_as_the_export_holds_it_the_moving_average(averaged_run):
    run, export = averaged_run
    final = ckpt.checkpoint_folders(run)[-1]
    model = load_model(str(export))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    assert ckpt.load_weights(final, model) == 13  # the trainer checkpoints its last step
    exported = load_model(str(export)).state_dict()
    assert all(torch.equal(v, exported[k]) for k, v in model.state_dict().items())
    raw = ckpt._tensors(final / "model.safetensors")
    assert any(not torch.equal(raw[k], exported[k]) for k in raw)  # the average, not the last weights


def test_the_record_is_the_exact_validation_nll_change_from_the_checkpoint_nearest_90_percent_to_the_end(averaged_run):
    run, export = averaged_run
    assert convergence.main([str(run), str(export), "--data-dir", str(MNIST_DIR), "--seed", "2"]) == 0
    grey, _ = held_out_digits(40, str(MNIST_DIR))
    binary = torch.bernoulli(grey, generator=torch.Generator().manual_seed(2))
    at_12 = load_model(str(export))  # 12 is nearest 90 % of 13 steps (11.7), nearer than 8, the last before it
    assert ckpt.load_weights(run / "checkpoints" / "step_0000012", at_12) == 12
    nll_12 = -quadrature_log_likelihood(at_12, binary).log_px
    nll_end = -quadrature_log_likelihood(load_model(str(export)), binary).log_px
    change, std_error = convergence.paired_difference(nll_end, nll_12)
    record = json.loads((export / "eval_results.json").read_text())["results"][-1]
    assert (record["name"], record["split"]) == ("Validation NLL change over the last 10% of the run", "validation")
    assert record["value"] == round(change, 4) and record["details"]["std_error"] == round(std_error, 4)
    assert (record["details"]["from_step"], record["details"]["to_step"]) == (12, 13)
    assert record["details"]["flat"] == (abs(change) < convergence.FLAT_TOLERANCE)
    assert list(record["details"]["curve"]) == ["4", "8", "12", "13"]
    assert record["details"]["curve"]["12"] == round(float(nll_12.mean()), 4)


def test_a_run_that_held_no_digits_out_is_refused(tmp_path, capsys):
    train(tiny_vae_config(tmp_path / "run", max_steps=2, save_pretrained=str(tmp_path / "export")))
    torch.set_flush_denormal(False)
    assert convergence.main([str(tmp_path / "run"), str(tmp_path / "export"), "--data-dir", str(MNIST_DIR)]) == 2
    assert "names no validation digits" in capsys.readouterr().err


def test_a_tampered_checkpoint_is_refused_with_its_path(averaged_run, tmp_path, capsys):
    run, export = averaged_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "checkpoints" / "step_0000008" / "model.safetensors").write_bytes(b"not safetensors")
    assert convergence.main([str(copy), str(export), "--data-dir", str(MNIST_DIR), "--limit", "4"]) == 2
    assert "step_0000008/model.safetensors is not a readable safetensors file" in capsys.readouterr().err

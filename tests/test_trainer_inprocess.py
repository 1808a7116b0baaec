"""The trainer's checkpoint and resume paths run in this process on a tiny VAE (test_train.py runs the real command
line in subprocesses; these are the fast, fine-grained checks of the same code): where checkpoints go and how many
are kept, what `latest` points at, when a run refuses to start or to resume, and that a resumed run continues."""

import json
from pathlib import Path

import pytest
import torch

from train.trainer import CHECKPOINTS, LATEST, TrainConfig, Trainer, TrainError, latest_checkpoint, train

from .tiny_runs import restore_denormals, tiny_vae_config  # noqa: F401  (autouse)


def config(run: Path, **changes) -> TrainConfig:
    return tiny_vae_config(run, **{"progress_bar": True, **changes})


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    train(config(run))
    torch.set_flush_denormal(False)
    return run


def test_checkpoints_every_n_steps_keeping_the_last_ones(finished):
    root = finished / CHECKPOINTS
    assert sorted(p.name for p in root.iterdir()) == [LATEST, "step_0000004", "step_0000006"]
    assert (root / LATEST).read_text().strip() == "step_0000006" and latest_checkpoint(finished) == root / "step_0000006"
    state = json.loads((root / "step_0000006" / "trainer_state.json").read_text())
    assert state["step"] == 6 and state["settings"]["lr"] == 1e-3 and state["settings"]["binarize"] == "fixed"
    steps = [json.loads(line)["step"] for line in (finished / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_a_run_is_not_overwritten_and_different_settings_are_refused(finished):
    with pytest.raises(TrainError, match="already holds a run .*step_0000006.*--resume"):
        Trainer(config(finished))
    for change, key in (({"lr": 2e-3}, "'lr': (0.001, 0.002)"), ({"seed": 2}, "'seed': (1, 2)"),
                        ({"binarize": "dynamic"}, "'binarize': ('fixed', 'dynamic')"),
                        ({"model_config": {"hidden_dims": [8], "latent_dim": 3}}, "'model_config'")):
        with pytest.raises(TrainError, match="cannot resume .*settings differ") as err:
            Trainer(config(finished, resume=True, **change))
        assert key in str(err.value)
    assert latest_checkpoint(finished).name == "step_0000006"  # nothing written


def test_resume_continues_from_the_latest_checkpoint(finished, tmp_path, capsys):
    run = tmp_path / "run"
    train(config(run, max_steps=4))
    capsys.readouterr()
    train(config(run, max_steps=6, resume=True))
    out = capsys.readouterr().out
    assert "resumed from" in out and "at step 4" in out
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # continued, not restarted
    assert latest_checkpoint(run).name == "step_0000006"
    from safetensors.torch import load_file  # same data, seed, order and RNG state: the uninterrupted run's weights

    resumed = load_file(str(latest_checkpoint(run) / "model.safetensors"))
    uninterrupted = load_file(str(latest_checkpoint(finished) / "model.safetensors"))
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)


def test_a_latest_pointer_to_a_missing_checkpoint_is_an_error(tmp_path):
    (tmp_path / CHECKPOINTS).mkdir()
    (tmp_path / CHECKPOINTS / LATEST).write_text("step_0000002")
    with pytest.raises(TrainError, match="names step_0000002, which is missing or incomplete"):
        latest_checkpoint(tmp_path)
    assert latest_checkpoint(tmp_path / "nothing") is None

"""The trainer's checkpoint writing and its divergence stop, in this process on a tiny VAE: what a checkpoint holds,
that no half-written one is ever named `latest`, and that a run whose weights stop being finite names the last
good checkpoint (or says there is none)."""

import json
from pathlib import Path

import pytest
import torch

from train.trainer import CHECKPOINTS, LATEST, Diverged, TrainConfig, Trainer, latest_checkpoint

from .tiny_runs import restore_denormals, tiny_vae_config  # noqa: F401  (autouse)


def config(run: Path, **changes) -> TrainConfig:
    return tiny_vae_config(run, **{"max_steps": 4, "keep_checkpoints": 5, **changes})


def poison(trainer: Trainer) -> None:
    with torch.no_grad():
        next(trainer.model.parameters())[0] = float("nan")


def test_a_diverged_run_stops_naming_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(config(tmp_path))
    steps = trainer.steps()
    next(steps), next(steps)  # step 2: checkpointed
    poison(trainer)
    with pytest.raises(Diverged) as err:
        trainer.checkpoint(3)  # non-finite weights are never saved
    assert str(err.value) == "weights are not finite at step 3; training stopped, latest good checkpoint: step_0000002"
    with pytest.raises(Diverged) as err:
        next(steps)  # the loss of step 3 is not finite
    assert str(err.value).startswith("loss is not finite at step 3 (loss=nan, ")
    assert str(err.value).endswith("training stopped, latest good checkpoint: step_0000002 (try a lower --lr)")
    assert latest_checkpoint(tmp_path).name == "step_0000002"
    assert sorted(p.name for p in (tmp_path / CHECKPOINTS).iterdir()) == [LATEST, "step_0000002"]


def test_without_a_checkpoint_the_refusal_says_so(tmp_path):
    trainer = Trainer(config(tmp_path, checkpoint_every=0))
    poison(trainer)
    with pytest.raises(Diverged, match=r"^weights are not finite at step 1; training stopped, no checkpoint saved$"):
        trainer.checkpoint(1)


def test_a_checkpoint_holds_the_weights_and_the_settings_and_latest_names_it(tmp_path):
    trainer = Trainer(config(tmp_path, max_steps=2))
    for _ in trainer.steps():
        pass
    folder = tmp_path / CHECKPOINTS / "step_0000002"
    assert (tmp_path / CHECKPOINTS / LATEST).read_text() == "step_0000002"
    state = json.loads((folder / "trainer_state.json").read_text())
    assert state == {"settings": trainer.settings, "step": 2}
    from safetensors.torch import load_file

    saved = load_file(str(folder / "model.safetensors"))
    assert all(torch.equal(saved[f"model.{k}"] if f"model.{k}" in saved else saved[k], v)
               for k, v in trainer.model.state_dict().items())
    assert not list((tmp_path / CHECKPOINTS).glob(".tmp_*")) and not list((tmp_path / CHECKPOINTS).glob(".*.tmp"))
    assert (tmp_path / "samples" / "step_0000002.png").is_file()  # the run's end gets a preview, mid-epoch too
    assert trainer.preview_x.shape == (len(trainer.preview_y), 1, 28, 28)


def test_the_settings_a_resume_must_share():
    from train.trainer import settings

    cfg = config(Path("unused"))
    model = __import__("vae_models").build_model("vae", hidden_dims=[8], latent_dim=2)
    assert set(settings(cfg, model, "fixed", 1)) == {
        "model", "model_config", "dataset", "binarize", "batch_size", "lr", "optimizer", "seed", "num_processes",
        "init_from", "lr_decay_to"}


def test_a_checkpoint_from_before_the_optimizer_setting_resumes_as_pytorchs_default_adam(tmp_path):
    trainer = Trainer(config(tmp_path, max_steps=2, optimizer="adam"))
    for _ in trainer.steps():
        pass
    state_file = latest_checkpoint(tmp_path) / "trainer_state.json"
    state = json.loads(state_file.read_text())
    del state["settings"]["optimizer"]
    state_file.write_text(json.dumps(state))
    assert Trainer(config(tmp_path, max_steps=4, optimizer="adam", resume=True)).start_step == 2
    from train.trainer import TrainError

    with pytest.raises(TrainError, match=r"'optimizer': \('adam', 'adam-fused'\)"):
        Trainer(config(tmp_path, max_steps=4, optimizer="adam-fused", resume=True))


def test_an_epoch_is_the_whole_batches_of_the_training_set(tmp_path):
    steps = Trainer(config(tmp_path, batch_size=7, max_steps=None, epochs=1, checkpoint_every=0)).steps()
    assert next(steps)["total"] == 60_000 // 7  # the last, partial batch is dropped
    steps.close()


def test_an_adversarial_model_steps_its_discriminator_first(tmp_path):
    trainer = Trainer(config(tmp_path, model="aae", max_steps=1, checkpoint_every=0))
    record = next(trainer.steps())
    assert list(record)[:3] == ["step", "epoch", "total"]
    assert list(record)[3].startswith("train/discriminator/") and "train/loss" in record
    assert len(trainer.optimizers) == 2

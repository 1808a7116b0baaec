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
    assert str(err.value).endswith("training stopped, the weights are those of step 2, latest good checkpoint: "
                                   "step_0000002 (try a lower --lr)")
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
    assert state["settings"] == trainer.settings and state["step"] == 2 and state["format"] == 2
    from safetensors.torch import load_file

    saved = load_file(str(folder / "model.safetensors"))
    assert sorted(saved) == sorted(trainer.model.state_dict())
    assert all(torch.equal(saved[k], v) for k, v in trainer.model.state_dict().items())
    adam = load_file(str(folder / "optimizer_0.safetensors"))  # Adam's moments and step count, per parameter
    live = trainer.optimizers[0].optimizer.state_dict()["state"]
    assert all(torch.equal(adam[f"{i}/{name}"], value) for i, entries in live.items() for name, value in entries.items())
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors", "optimizer_0.safetensors",
                                                        "rng_0.safetensors", "trainer_state.json"]
    assert not list((tmp_path / CHECKPOINTS).glob(".tmp_*")) and not list((tmp_path / CHECKPOINTS).glob(".*.tmp"))
    assert (tmp_path / "samples" / "step_0000002.png").is_file()  # the run's end gets a preview, mid-epoch too
    assert trainer.preview_x.shape == (len(trainer.preview_y), 1, 28, 28)


def test_the_settings_a_resume_must_share():
    from train.trainer import settings

    cfg = config(Path("unused"))
    model = __import__("vae_models").build_model("vae", hidden_dims=[8], latent_dim=2)
    assert set(settings(cfg, model, "fixed", 1)) == {
        "model", "model_config", "dataset", "binarize", "batch_size", "lr", "optimizer", "seed", "num_processes",
        "init_from", "lr_schedule", "lr_decay_to", "discriminator_lr", "adam_beta1", "adversarial_updates",
        "ema_decay", "init_output_bias", "labelled_examples", "validation_examples"}


def test_a_checkpoint_of_another_format_is_refused_with_a_clear_error(tmp_path):
    trainer = Trainer(config(tmp_path, max_steps=2))
    for _ in trainer.steps():
        pass
    state_file = latest_checkpoint(tmp_path) / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({"settings": state["settings"], "step": 2}))  # Accelerate's save_state era
    from train.trainer import TrainError

    with pytest.raises(TrainError, match="not a checkpoint of this trainer .*start the run afresh"):
        Trainer(config(tmp_path, max_steps=4, resume=True))


@pytest.mark.parametrize("damage", ["truncate", "drop"])
def test_a_tampered_checkpoint_is_refused_with_a_clear_error(tmp_path, damage):
    trainer = Trainer(config(tmp_path, max_steps=2))
    for _ in trainer.steps():
        pass
    weights = latest_checkpoint(tmp_path) / "optimizer_0.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
    else:
        weights.unlink()
    from train.trainer import TrainError

    resumed = Trainer(config(tmp_path, max_steps=4, resume=True))
    with pytest.raises(TrainError, match="cannot resume: .*optimizer_0.safetensors (is not a readable|is missing)"):
        next(resumed.steps())


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

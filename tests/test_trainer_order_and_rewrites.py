"""What a resumed or repeated run relies on, in this process on a tiny VAE: the training batches come in the
order the run's seed shuffles them, the optimiser has the configured settings, and a checkpoint is written cleanly
over what a killed run left (a stale temporary folder, or a finished checkpoint of the same step)."""

import json
import os
from pathlib import Path

import pytest
import torch

from train import checkpoint
from train.trainer import CHECKPOINTS, LATEST, Trainer, TrainError

from .tiny_runs import restore_denormals, tiny_vae_config  # noqa: F401  (autouse)


def first_batches(run: Path, **changes) -> tuple[torch.Tensor, torch.Tensor, Trainer]:
    """The images and labels the trainer trains on in its first 2 steps, and the trainer."""
    trainer = Trainer(tiny_vae_config(run, max_steps=2, checkpoint_every=0, **changes))
    seen, train_step = [], trainer.train_step

    def recording(images, labels, step):
        seen.append((images.clone(), labels.clone()))
        return train_step(images, labels, step)

    trainer.train_step = recording
    for _ in trainer.steps():
        pass
    return torch.cat([i for i, _ in seen]), torch.cat([label for _, label in seen]), trainer


def first_batches_labels(run: Path, **changes) -> tuple[torch.Tensor, Trainer]:
    _, labels, trainer = first_batches(run, **changes)
    return labels, trainer


def test_training_batches_are_shuffled_by_the_runs_seed(tmp_path):
    labels, trainer = first_batches_labels(tmp_path / "a", seed=3)
    assert len(labels) == 32
    assert not torch.equal(labels, trainer.labels[:32])  # not the files' order
    again, _ = first_batches_labels(tmp_path / "b", seed=3)
    torch.testing.assert_close(again, labels, rtol=0, atol=0)
    other, _ = first_batches_labels(tmp_path / "c", seed=4)
    assert not torch.equal(other, labels)


def test_the_fixed_binarisation_is_drawn_from_the_runs_seed(tmp_path):
    images, _, trainer = first_batches(tmp_path, seed=3)
    drawn = torch.bernoulli(trainer.images.float() / 255, generator=torch.Generator().manual_seed(3))
    rows = {bytes(row) for row in drawn.to(torch.uint8).flatten(1).numpy()}
    assert all(bytes(image) in rows for image in images.to(torch.uint8).flatten(1).numpy())


def test_the_optimiser_has_the_configured_learning_rate_and_variant(tmp_path):
    run = tmp_path / "runs" / "new"  # the trainer makes the folder and its parents
    _, trainer = first_batches_labels(run, lr=0.00123, optimizer="adam-foreach")
    assert run.is_dir()
    (optimizer,) = trainer.optimizers
    assert [group["lr"] for group in optimizer.param_groups] == [0.00123]
    assert optimizer.param_groups[0]["foreach"] is True


def test_a_checkpoint_is_written_cleanly_over_what_a_killed_run_left(tmp_path):
    trainer = Trainer(tiny_vae_config(tmp_path / "run", max_steps=1, checkpoint_every=0))
    for _ in trainer.steps():
        pass
    root = tmp_path / CHECKPOINTS
    stale = root / ".tmp_step_0000005"
    stale.mkdir(parents=True)
    (stale / "half_written.bin").write_bytes(b"from a run killed while saving")

    def save(seed):
        return checkpoint.save(tmp_path, 5, {"settings": {"seed": seed}}, trainer.model, trainer.optimizers, None, keep=3)

    first = save(1)
    assert first == root / "step_0000005" and not (first / "half_written.bin").exists() and not stale.exists()
    # killed after the rename but before `latest` moved on: the same step is saved again, replacing it
    again = save(2)
    assert again == first and checkpoint.read_state(first)["settings"] == {"seed": 2}
    assert (root / LATEST).read_text() == "step_0000005"
    assert sorted(p.name for p in root.iterdir()) == [LATEST, "step_0000005"]


def test_an_adversarial_model_gets_one_configured_optimiser_per_player_discriminator_first(tmp_path):
    _, _, trainer = first_batches(tmp_path, model="aae", lr=0.00123)
    d_opt, g_opt = trainer.optimizers

    def params(optimizer):
        return {id(p) for group in optimizer.param_groups for p in group["params"]}

    assert params(d_opt) == {id(p) for p in trainer.model.discriminator_parameters()}
    assert params(g_opt) == {id(p) for p in trainer.model.generator_parameters()}
    assert [group["lr"] for opt in (d_opt, g_opt) for group in opt.param_groups] == [0.00123, 0.00123]


def test_a_batch_larger_than_the_training_set_is_refused_and_one_batch_per_epoch_is_not(tmp_path):
    with pytest.raises(TrainError, match="--batch-size 60001 is larger than the training set"):
        next(Trainer(tiny_vae_config(tmp_path / "a", batch_size=60_001, checkpoint_every=0)).steps())
    steps = Trainer(tiny_vae_config(tmp_path / "b", batch_size=60_000, max_steps=None, epochs=1,
                                    checkpoint_every=0)).steps()
    assert next(steps)["total"] == 1
    steps.close()


def test_a_new_run_clears_the_temporary_checkpoints_a_killed_run_left(tmp_path):
    stale = tmp_path / CHECKPOINTS / ".tmp_step_0000099"
    stale.mkdir(parents=True)
    (stale / "half_written.bin").write_bytes(b"from a run killed while saving")
    first_batches(tmp_path)
    assert not stale.exists()


def test_folders_that_cannot_be_removed_do_not_stop_a_run(tmp_path, monkeypatch):
    """Clearing a killed run's temporary checkpoint and pruning old checkpoints are housekeeping: a folder the file
    system refuses to remove (a file held open on a network drive, say) stays behind and the run goes on."""
    root = tmp_path / CHECKPOINTS
    (root / ".tmp_step_0000099").mkdir(parents=True)
    rmdir = os.rmdir

    def refuse(path, *args, **kwargs):
        if os.path.basename(os.fsdecode(path)) in (".tmp_step_0000099", "step_0000002"):
            raise PermissionError(13, "held open", os.fsdecode(path))
        return rmdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "rmdir", refuse)
    steps = [record["step"] for record in Trainer(tiny_vae_config(tmp_path)).steps()]  # 6 steps, keep 2
    assert steps == [1, 2, 3, 4, 5, 6]
    assert (root / LATEST).read_text().strip() == "step_0000006"
    assert sorted(p.name for p in root.iterdir()) == [".tmp_step_0000099", LATEST, "step_0000002", "step_0000004",
                                                     "step_0000006"]


def test_resuming_a_finished_run_trains_nothing_and_rewrites_nothing(tmp_path):
    for _ in Trainer(tiny_vae_config(tmp_path, max_steps=2)).steps():
        pass
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}
    assert list(Trainer(tiny_vae_config(tmp_path, max_steps=2, resume=True)).steps()) == []
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files} == before
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == files


def test_tensorboard_gets_the_runs_settings_and_each_steps_named_terms(tmp_path):
    """--log-with tensorboard: under OUTPUT/train, the run's settings (flattened: model_config.latent_dim, ...) and
    its length as hyperparameters, and every step's loss terms under their names, at their step numbers."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    trainer = Trainer(tiny_vae_config(tmp_path, log_with="tensorboard", max_steps=3, checkpoint_every=0))
    for _ in trainer.steps():
        pass
    trainer.accelerator.end_training()
    scalars = EventAccumulator(str(tmp_path / "train")).Reload()
    assert sorted(scalars.Tags()["scalars"]) == ["train/kl", "train/loss", "train/reconstruction"]
    assert [event.step for event in scalars.Scalars("train/kl")] == [1, 2, 3]
    (events,) = (tmp_path / "train").glob("*/events.out.tfevents.*")  # the hyperparameters' sub-run
    blob = EventAccumulator(str(events.parent)).Reload().PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(blob).session_start_info.hparams
    assert hparams["total_steps"].number_value == 3 and hparams["model_config.latent_dim"].number_value == 2
    assert hparams["lr"].number_value == 1e-3 and hparams["binarize"].string_value == "fixed"
    assert hparams["model_config.hidden_dims"].string_value == "[8]"


def finished_bar(run: Path, **changes):
    """The progress bar of a tiny run of 12 steps (a checkpoint every 4) with `changes`, after its last step."""
    trainer = Trainer(tiny_vae_config(run, **{"max_steps": 12, "checkpoint_every": 4, **changes}))
    for _ in trainer.steps():
        pass
    return trainer.bar


def shown_terms(bar) -> set[str]:
    """The names of the loss terms the bar shows after its count (its postfix, "name=value, ...")."""
    return {item.split("=")[0] for item in bar.postfix.split(", ")}


def test_the_progress_bar_counts_the_runs_steps_from_where_it_resumed_and_shows_the_named_terms(tmp_path, capsys):
    first = finished_bar(tmp_path, progress_bar=True)
    assert (first.desc, first.initial, first.n, first.total) == ("vae", 0, 12, 12)
    assert {"loss", "reconstruction", "kl"} <= shown_terms(first)
    assert capsys.readouterr().err.strip()  # drawn on stderr
    resumed = finished_bar(tmp_path, progress_bar=True, max_steps=14, resume=True)
    assert (resumed.initial, resumed.n, resumed.total) == (12, 14, 14)
    capsys.readouterr()
    finished_bar(tmp_path, progress_bar=False, max_steps=16, resume=True)
    assert capsys.readouterr().err.strip() == ""  # no bar asked for, none drawn
    two_players = finished_bar(tmp_path / "aae", progress_bar=True, model="aae",
                               model_config={"hidden_dims": [8], "latent_dim": 2, "discriminator_hidden_dims": [8]})
    assert two_players.desc == "aae"
    assert {"prior_codes", "posterior_codes"} <= shown_terms(two_players)  # each player's terms by their last name


def test_each_epoch_ends_with_a_preview_and_each_step_logs_its_epoch(tmp_path):
    """Two epochs of two 30 000-digit batches: previews after steps 2 and 4, metrics.jsonl's epochs 0, 0, 1, 1."""
    for _ in Trainer(tiny_vae_config(tmp_path, batch_size=30_000, max_steps=None, epochs=2, checkpoint_every=0)).steps():
        pass
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_0000002.png", "step_0000004.png"]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(row["step"], row["epoch"]) for row in rows] == [(1, 0), (2, 0), (3, 1), (4, 1)]


def test_a_run_ending_on_a_checkpoint_step_saves_it_once(tmp_path):
    trainer = Trainer(tiny_vae_config(tmp_path))  # 6 steps, a checkpoint every 2
    saved, checkpoint = [], trainer.checkpoint
    trainer.checkpoint = lambda step: saved.append(step) or checkpoint(step)
    for _ in trainer.steps():
        pass
    assert saved == [2, 4, 6]

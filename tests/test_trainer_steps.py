"""Trainer.steps, the training loop as a generator (what the app's live training drives): the same updates as
run(), one record per step, and a caller that stops early gets a clean end and an export of the model so far."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from train.trainer import TrainConfig, Trainer
from vae_models import build_model, load_model
from vae_models.data import MNISTDataset, load_mnist
from tests.paths import MNIST_DIR



def config(tmp_path: Path, name: str, **kw) -> TrainConfig:
    return TrainConfig(model="aae", model_config={"hidden_dims": [16], "latent_dim": 2,
                                                  "discriminator_hidden_dims": [8]},
                       data_dir=str(MNIST_DIR), batch_size=16, max_steps=6, checkpoint_every=0, seed=3,
                       output_dir=str(tmp_path / name / "run"), save_pretrained=str(tmp_path / name / "export"),
                       progress_bar=False, **{"sync_every": 1, **kw})


def test_steps_yields_every_step_and_matches_run(tmp_path):
    stepped = Trainer(config(tmp_path, "stepped"))
    records = list(stepped.steps())
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6] and all(r["total"] == 6 for r in records)
    assert {"train/loss", "train/reconstruction", "train/adversarial", "train/discriminator/loss"} <= set(records[0])
    ran = Trainer(config(tmp_path, "ran"))
    ran.run()
    a, b = stepped.model.state_dict(), ran.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the generator is the loop, not a copy of it
    assert (tmp_path / "stepped/run/checkpoints/latest").read_text().strip() == "step_0000006"


def test_stopping_early_ends_the_run_and_exports_the_model_so_far(tmp_path):
    trainer = Trainer(config(tmp_path, "early"))
    steps = trainer.steps()
    for record in steps:
        if record["step"] == 2:
            break
    steps.close()
    lines = (tmp_path / "early/run/metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]
    assert not (tmp_path / "early/run/checkpoints").exists()  # the final checkpoint belongs to a completed loop
    folder = trainer.export(2)
    exported = load_model(str(folder)).state_dict()
    assert all(torch.equal(exported[k], v) for k, v in trainer.model.state_dict().items())
    assert json.loads((folder / "training_args.json").read_text())["steps"] == 2


TWO_PLAYERS = {"aae": {"hidden_dims": [16], "latent_dim": 2, "discriminator_hidden_dims": [8]},
               "avb": {"hidden_dims": [16], "latent_dim": 2, "noise_dim": 4, "discriminator_hidden_dims": [8]}}


@pytest.mark.parametrize("name", TWO_PLAYERS)
def test_the_updates_are_a_plain_two_player_loop(tmp_path, name, mnist_dir):
    """What the trainer does to the weights is exactly what a plain PyTorch loop does (discriminator step, then the
    model's; each player's gradients zeroed before its own backward, the other player's weight gradients computed
    and thrown away), whatever it does around that: the same batches, initialisation and Adam give bitwise the same
    weights. AVB's generator loss goes through T(x, z), whose weight gradients the trainer does not compute."""
    cfg = config(tmp_path, "trainer", binarize="fixed")
    cfg.model, cfg.model_config = name, TWO_PLAYERS[name]
    trainer = Trainer(cfg)
    trainer.run()

    images, labels = load_mnist("train", data_dir=mnist_dir)
    data = MNISTDataset(images, labels, binarize="fixed", seed=cfg.seed)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed))  # the trainer's epoch 0
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, **cfg.model_config)
    d_opt = torch.optim.Adam(model.discriminator_parameters(), lr=cfg.lr, fused=True)
    g_opt = torch.optim.Adam(model.generator_parameters(), lr=cfg.lr, fused=True)
    for step in range(cfg.max_steps):
        batch = data.__getitems__(order[step * cfg.batch_size:(step + 1) * cfg.batch_size])
        d_opt.zero_grad()
        model.discriminator_loss(batch).loss.backward()
        d_opt.step()
        g_opt.zero_grad()
        model.loss(batch).loss.backward()
        g_opt.step()
    ours, plain = trainer.model.state_dict(), model.state_dict()
    assert all(torch.equal(ours[k], plain[k]) for k in plain)


class ThroughAcceleratesLoader(Trainer):
    """The path several processes take: batches from Accelerate's prepared DataLoader, not the resident data."""
    fast = False


def test_the_resident_batches_are_accelerates_loader_in_the_same_random_order(tmp_path):
    """One process slices the epoch's permutation of the resident training set and binarises on the device, one batch
    ahead as Accelerate's loader reads them: across an epoch boundary, with the random binarisation drawn per
    batch, the weights are bitwise those of the DataLoader path."""
    def run(name: str, trainer_class):
        cfg = config(tmp_path, name)
        cfg.model, cfg.model_config = "vae", {"hidden_dims": [16], "latent_dim": 2}
        cfg.batch_size, cfg.max_steps = 8192, 9  # 7 batches per epoch: a second epoch starts
        trainer = trainer_class(cfg)
        trainer.run()
        return trainer.model.state_dict()

    resident, loader = run("resident", Trainer), run("loader", ThroughAcceleratesLoader)
    assert all(torch.equal(resident[k], loader[k]) for k in loader)


def test_each_update_computes_only_its_own_players_gradients_and_then_unfreezes_the_other(tmp_path):
    """During one player's update the other player's parameters do not train and backward leaves their gradients as
    they were (None, or the values of their own last update); after every step both players train again."""
    trainer = Trainer(config(tmp_path, "frozen"))
    seen = []
    original = trainer._gradients

    def gradients(optimizer, images, labels, discriminator, prefix, **phase):
        model = trainer.model
        other = list(model.generator_parameters() if discriminator else model.discriminator_parameters())
        own = list(model.discriminator_parameters() if discriminator else model.generator_parameters())
        before = [None if p.grad is None else p.grad.clone() for p in other]
        out = original(optimizer, images, labels, discriminator, prefix, **phase)
        kept = all((b is None and p.grad is None) or (b is not None and torch.equal(b, p.grad))
                   for b, p in zip(before, other))
        seen.append((discriminator, kept, all(p.grad is not None for p in own)))
        return out

    trainer._gradients = gradients
    for record in trainer.steps():
        assert all(p.requires_grad for p in trainer.model.parameters())
    assert seen == [(True, True, True), (False, True, True)] * 6


def test_a_diverged_update_leaves_both_players_trainable(tmp_path):
    trainer = Trainer(config(tmp_path, "diverged", lr=1e30))
    with pytest.raises(Exception, match="not finite"):
        trainer.run()
    assert all(p.requires_grad for p in trainer.model.parameters())

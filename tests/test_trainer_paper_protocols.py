"""The trainer's paper-scale settings, in this process on tiny models: the loss terms read every `sync_every` steps
(same weights, windowed logs, a roll-back on a non-finite loss), the learning-rate schedules (the IWAE paper's
stages exactly), Polyak averaging, the decoder's output bias at the data's mean logit, AVB's simultaneous updates
with their own Adam settings, and a resume that continues all of it bit for bit."""

import json
import math
from pathlib import Path

import pytest
import torch

from train.trainer import Diverged, Trainer, TrainError, lr_factor, train
from vae_models.export import TrainingRecord, read_training_record
from vae_models import build_model, load_model
from vae_models.data import MNISTDataset, load_mnist

from .tiny_runs import MNIST_DIR, restore_denormals, tiny_vae_config  # noqa: F401  (autouse)


def run(config, **changes) -> Trainer:
    trainer = Trainer(config)
    for _ in trainer.steps():
        pass
    return trainer


def equal(a: dict, b: dict) -> bool:
    return sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_reading_the_terms_every_few_steps_changes_no_weight_and_logs_each_windows_mean(tmp_path):
    each = run(tiny_vae_config(tmp_path / "each", max_steps=6, checkpoint_every=0, sync_every=1))
    window = run(tiny_vae_config(tmp_path / "window", max_steps=6, checkpoint_every=0, sync_every=3))
    assert equal(each.model.state_dict(), window.model.state_dict())
    per_step = [json.loads(line) for line in (tmp_path / "each/metrics.jsonl").read_text().splitlines()]
    windows = [json.loads(line) for line in (tmp_path / "window/metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in windows] == [3, 6]
    for row, steps in zip(windows, (per_step[:3], per_step[3:])):
        for term in ("train/loss", "train/reconstruction", "train/kl"):
            assert row[term] == pytest.approx(sum(s[term] for s in steps) / 3, rel=1e-6)


def test_a_non_finite_loss_between_reads_puts_back_the_last_checked_weights_and_stops(tmp_path):
    trainer = Trainer(tiny_vae_config(tmp_path / "run", max_steps=12, checkpoint_every=0, sync_every=4))
    steps = trainer.steps()
    for record in steps:
        if record["step"] == 4:  # read and checked: the state to come back to
            break
    checked = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    adam = trainer.optimizers[0].optimizer.state_dict()["state"]
    checked_adam = {i: {n: v.clone() for n, v in entries.items()} for i, entries in adam.items()}
    with torch.no_grad():
        trainer.model.decoder.head[0].weight[0, 0] = float("nan")  # poisons steps 5 to 8
    with pytest.raises(Diverged, match=r"^loss is not finite at step 5 \(loss=nan, .*the weights are those of step 4"):
        next(steps)
        next(steps), next(steps), next(steps)
    assert equal(trainer.model.state_dict(), checked)
    restored = trainer.optimizers[0].optimizer.state_dict()["state"]
    assert all(torch.equal(restored[i][n], v) for i, entries in checked_adam.items() for n, v in entries.items())


IWAE_RATES = [1.0, 0.72, 0.52, 0.37, 0.27, 0.19, 0.14, 0.1]  # experiments.py: 1e-4 * round(10 ** (1 - i / 7), 1)


def test_the_iwae_schedule_is_the_papers_eight_stages_of_3_to_the_i_epochs():
    total = 3280 * 10  # 3,280 epochs of 10 steps
    starts = [(3**i - 1) // 2 for i in range(8)]  # first epoch of each stage: 0, 1, 4, 13, 40, 121, 364, 1093
    for i, start in enumerate(starts):
        assert lr_factor("iwae", start * 10, total, 1e-3, None) == pytest.approx(IWAE_RATES[i], abs=1e-12)
        if i:
            assert lr_factor("iwae", start * 10 - 1, total, 1e-3, None) == pytest.approx(IWAE_RATES[i - 1], abs=1e-12)
    assert lr_factor("iwae", total - 1, total, 1e-3, None) == pytest.approx(0.1)


def test_the_exponential_schedule_runs_from_lr_at_the_first_step_to_lr_decay_to_at_the_last():
    assert lr_factor("exponential", 0, 101, 1e-3, 1e-5) == 1.0
    assert lr_factor("exponential", 50, 101, 1e-3, 1e-5) == pytest.approx(0.1)
    assert lr_factor("exponential", 100, 101, 1e-3, 1e-5) == pytest.approx(0.01)
    assert lr_factor("constant", 77, 101, 1e-3, None) == 1.0


def test_each_step_trains_at_its_scheduled_rate_and_logs_it(tmp_path):
    cfg = tiny_vae_config(tmp_path, max_steps=5, checkpoint_every=0, lr=2e-3, lr_schedule="exponential",
                          lr_decay_to=2e-5)
    trainer = Trainer(cfg)
    seen, train_step = [], trainer.train_step

    def recording(images, labels, step):
        out = train_step(images, labels, step)
        seen.append(trainer.optimizers[0].param_groups[0]["lr"])
        return out

    trainer.train_step = recording
    records = list(trainer.steps())
    expected = [2e-3 * 0.01 ** (s / 4) for s in range(5)]
    assert seen == pytest.approx(expected, rel=1e-12)
    assert [r["train/lr"] for r in records] == pytest.approx(expected, rel=1e-12)


def test_the_lr_schedule_and_its_final_rate_go_together(tmp_path):
    with pytest.raises(TrainError, match="--lr-decay-to goes with --lr-schedule exponential"):
        Trainer(tiny_vae_config(tmp_path / "a", lr_schedule="exponential"))
    with pytest.raises(TrainError, match="--lr-decay-to goes with --lr-schedule exponential"):
        Trainer(tiny_vae_config(tmp_path / "b", lr_decay_to=1e-5))
    with pytest.raises(TrainError, match="--lr-schedule must be one of"):
        Trainer(tiny_vae_config(tmp_path / "c", lr_schedule="cosine"))


def test_the_export_holds_the_moving_average_of_the_weights_and_the_run_keeps_its_own(tmp_path):
    decay = 0.8
    trainer = Trainer(tiny_vae_config(tmp_path / "run", max_steps=5, checkpoint_every=0, ema_decay=decay,
                                      save_pretrained=str(tmp_path / "export")))
    average = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    for _ in trainer.steps():  # average <- decay * average + (1 - decay) * weights, after every step
        for k, v in trainer.model.state_dict().items():
            average[k] = decay * average[k] + (1 - decay) * v
    last = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.export(5)
    exported = load_model(str(tmp_path / "export")).state_dict()
    assert all(torch.allclose(exported[k], average[k], atol=1e-6, rtol=1e-5) for k in average)
    assert not all(torch.allclose(exported[k], last[k]) for k in last)  # i.e. the average is not the last weights
    assert equal(trainer.model.state_dict(), last)  # exporting put the run's own weights back


def test_the_decoders_output_bias_starts_at_the_logit_of_the_training_sets_mean_pixel(tmp_path):
    trainer = Trainer(tiny_vae_config(tmp_path / "a", init_output_bias=True))
    images, _ = load_mnist("train", data_dir=MNIST_DIR)
    mean = images.double().mean(0).flatten() / 255
    expected = torch.log(mean.clamp(0.001, 0.999) / (1 - mean.clamp(0.001, 0.999)))
    assert torch.allclose(trainer.model.decoder.head[-1].bias.double(), expected, atol=1e-5)
    assert trainer.model.decoder.head[-1].bias[0].item() == pytest.approx(math.log(0.001 / 0.999), abs=1e-5)
    plain = Trainer(tiny_vae_config(tmp_path / "b"))
    assert not torch.allclose(plain.model.decoder.head[-1].bias, trainer.model.decoder.head[-1].bias)
    with pytest.raises(TrainError, match="--init-output-bias: .*no last layer with one output per pixel"):
        Trainer(tiny_vae_config(tmp_path / "c", init_output_bias=True,
                                model_config={"backbone": "conv", "hidden_dims": [8], "latent_dim": 2}))


AVB = {"hidden_dims": [16], "latent_dim": 2, "noise_dim": 4, "discriminator_hidden_dims": [8]}


def test_simultaneous_updates_take_both_players_gradients_at_the_same_weights(tmp_path):
    """AVB's authors' train.py: both players' gradients from one batch and one set of weights, then both applied,
    with Adam beta1 = 0.5 and the adversary's own learning rate."""
    cfg = tiny_vae_config(tmp_path, model="avb", model_config=AVB, max_steps=4, checkpoint_every=0, lr=1e-3,
                          discriminator_lr=2e-3, adam_beta1=0.5, adversarial_updates="simultaneous", optimizer="adam")
    trainer = run(cfg)
    d_opt, g_opt = (o.optimizer for o in trainer.optimizers)
    assert [d_opt.param_groups[0]["lr"], g_opt.param_groups[0]["lr"]] == [2e-3, 1e-3]
    assert d_opt.param_groups[0]["betas"] == g_opt.param_groups[0]["betas"] == (0.5, 0.999)

    images, labels = load_mnist("train", data_dir=MNIST_DIR)
    data = MNISTDataset(images, labels, binarize="fixed", seed=cfg.seed)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed))
    torch.manual_seed(cfg.seed)
    model = build_model("avb", **AVB)
    d_params, g_params = list(model.discriminator_parameters()), list(model.generator_parameters())
    plain_d = torch.optim.Adam(d_params, lr=2e-3, betas=(0.5, 0.999))
    plain_g = torch.optim.Adam(g_params, lr=1e-3, betas=(0.5, 0.999))
    for step in range(cfg.max_steps):
        batch = data.__getitems__(order[step * cfg.batch_size:(step + 1) * cfg.batch_size])
        d_grads = torch.autograd.grad(model.discriminator_loss(batch).loss, d_params, allow_unused=True)
        g_grads = torch.autograd.grad(model.loss(batch).loss, g_params, allow_unused=True)
        for p, g in [*zip(d_params, d_grads), *zip(g_params, g_grads)]:
            p.grad = g
        plain_d.step()
        plain_g.step()
    ours, plain = trainer.model.state_dict(), model.state_dict()
    assert all(torch.allclose(ours[k], plain[k], atol=1e-6) for k in plain)
    alternating = run(tiny_vae_config(tmp_path / "alt", model="avb", model_config=AVB, max_steps=4,
                                      checkpoint_every=0, lr=1e-3, discriminator_lr=2e-3, adam_beta1=0.5,
                                      optimizer="adam"))
    assert not all(torch.allclose(ours[k], alternating.model.state_dict()[k]) for k in plain)


def test_a_resumed_run_continues_its_schedule_average_and_optimiser_bit_for_bit(tmp_path):
    settings = dict(max_steps=12, checkpoint_every=4, keep_checkpoints=1, ema_decay=0.9, lr_schedule="exponential",
                    lr_decay_to=1e-4, sync_every=2)
    whole = run(tiny_vae_config(tmp_path / "whole", **settings))
    cut = Trainer(tiny_vae_config(tmp_path / "cut", **settings))
    steps = cut.steps()
    for record in steps:
        if record["step"] == 7:  # killed after the checkpoint of step 4 and three more steps
            break
    steps.close()
    resumed = run(tiny_vae_config(tmp_path / "cut", resume=True, **settings))
    assert equal(resumed.model.state_dict(), whole.model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(resumed.ema, whole.ema))
    moved = tmp_path / "moved"  # a run folder copied elsewhere (another machine, a repository) resumes there too
    Path(tmp_path / "cut").rename(moved)
    assert Trainer(tiny_vae_config(moved, resume=True, **{**settings, "max_steps": 14})).start_step == 12
    with pytest.raises(TrainError, match="settings differ .*ema_decay"):
        Trainer(tiny_vae_config(moved, resume=True, **{**settings, "ema_decay": 0.5}))


def test_the_export_records_the_training_loops_wall_time_summed_over_resumed_segments(tmp_path):
    run = tmp_path / "run"
    train(tiny_vae_config(run, max_steps=4, save_pretrained=str(tmp_path / "first")))
    first = read_training_record(tmp_path / "first").compute
    state_file = run / "checkpoints" / "step_0000004" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    assert 0 < state["compute"]["wall_seconds"] <= first["wall_seconds"]  # the export comes after the checkpoint
    assert (first["threads"], first["device"]) == (torch.get_num_threads(), "cpu")
    state["compute"]["wall_seconds"] = 1000.0  # as if the first segment had run for 1000 s
    state_file.write_text(json.dumps(state))
    train(tiny_vae_config(run, max_steps=6, resume=True, save_pretrained=str(tmp_path / "second")))
    second = read_training_record(tmp_path / "second").compute["wall_seconds"]
    assert 1000.0 < second < 1000.0 + 60  # the resumed segment adds its own few seconds to the first's


def test_the_card_states_the_cpu_hours_of_the_training():
    record = TrainingRecord(command="python -m train", args={}, num_processes=2,
                            compute={"wall_seconds": 5400.0, "threads": 2, "device": "cpu"})
    assert record.compute_text == "6 CPU-hours (4 threads)"
    gpu = TrainingRecord(command="python -m train", args={}, compute={"wall_seconds": 90.0, "threads": 8,
                                                                       "device": "NVIDIA H200"})
    assert gpu.compute_text == "1.5 GPU-minutes (1 x NVIDIA H200)"
    assert TrainingRecord(command="python -m train", args={}).compute_text == ""
    noted = TrainingRecord(command="python -m train", args={}, compute={"wall_seconds": 3600.0, "threads": 1,
                                                                         "device": "cpu", "note": "estimated"})
    assert noted.compute_text == "1 CPU-hours (1 thread; estimated)"

"""The trainer end to end on real MNIST: export, determinism, resume after SIGKILL, NaN stop, bad input, and
two-process DDP (identical weights across ranks for a VAE and for the adversarial AVB and AAE)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.paths import MNIST_DIR

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False",
       "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
TINY = ["--set", "hidden_dims=[32]", "--set", "latent_dim=2", "--batch-size", "32", "--sync-every", "1"]
# The reference run: 24 steps, a checkpoint every 4. Fixed binarisation, so that a resumed run can be compared
# bit for bit: with dynamic binarisation the Bernoulli draws of the one batch accelerate's loader prefetches
# across a checkpoint boundary come from a different point of the RNG stream (statistically the same, not bitwise).
RUN = ["--model", "vae", *TINY, "--data-dir", str(MNIST_DIR), "--max-steps", "24", "--checkpoint-every", "4",
       "--seed", "3", "--binarize", "fixed"]


def train(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "train", *args], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def latest(run: Path) -> Path:
    return run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()


def assert_one_error_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("reference")
    train(*RUN, "--output-dir", str(run), "--save-pretrained", str(run / "export"), "--log-with", "tensorboard")
    return run


def test_export_logs_and_card(reference):
    from vae_models import load_model

    export = reference / "export"
    for name in ("model.safetensors", "config.json", "README.md", "samples.png", "training_args.json"):
        assert (export / name).is_file(), name
    model = load_model(str(export))
    assert model.config.latent_dim == 2 and model.config.hidden_dims == (32,)
    record = json.loads((export / "training_args.json").read_text())
    assert record["command"].startswith("python -m train --model vae") and record["steps"] == 24
    card = (export / "README.md").read_text()
    assert "library_name: vae-family" in card and "arXiv:1312.6114" in card and record["command"] in card
    assert "model-index" not in card  # no eval_results.json yet: no invented numbers

    rows = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 25))
    for row in rows:  # every named term, positive, every step
        assert row["train/reconstruction"] > 0 and row["train/kl"] >= 0
        assert row["train/loss"] == pytest.approx(row["train/reconstruction"] + row["train/kl"], rel=1e-5)
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]
    assert list(reference.glob("train/events.out.tfevents.*")), "tensorboard logs"
    assert (reference / "samples" / "step_0000024.png").is_file()
    # keep_checkpoints=3: the last three of six remain; latest is the final step.
    assert sorted(p.name for p in (reference / "checkpoints").glob("step_*")) == [
        "step_0000016", "step_0000020", "step_0000024"]
    assert latest(reference).name == "step_0000024"


def test_same_seed_same_weights(tmp_path, mnist_dir):
    """Default (dynamic) binarisation: data order, Bernoulli draws, init and sampling noise all follow the seed."""
    short = ["--model", "vae", *TINY, "--data-dir", str(mnist_dir), "--max-steps", "6", "--checkpoint-every", "3"]
    for name in ("a", "b"):
        train(*short, "--output-dir", str(tmp_path / name), "--save-pretrained", str(tmp_path / name / "export"))
    a, b = weights(tmp_path / "a/export"), weights(tmp_path / "b/export")
    assert json.loads((tmp_path / "a/export/training_args.json").read_text())["binarize"] == "dynamic"  # the default
    assert all(torch.equal(a[k], b[k]) for k in a)
    earlier = weights(tmp_path / "a/checkpoints/step_0000003")
    assert not all(torch.equal(earlier[k], a[k]) for k in a)  # i.e. the equality is not trivial


# `python -m train` that SIGKILLs itself after KILL_AT_STEP updates: a kill at a known point, with no timing race.
KILLED_AT = r"""
import os, signal, sys
from train import trainer
from train.__main__ import main

kill_at, train_step = int(os.environ["KILL_AT_STEP"]), trainer.Trainer.train_step

def train_step_or_die(self, images, labels, step):
    if step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return train_step(self, images, labels, step)

trainer.Trainer.train_step = train_step_or_die
sys.exit(main(sys.argv[1:]))
"""


def test_resume_after_sigkill_continues_and_matches(reference, tmp_path):
    run = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", KILLED_AT, *RUN, "--output-dir", str(run)], cwd=REPO,
                          env={**ENV, "KILL_AT_STEP": "10"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    saved = json.loads((latest(run) / "trainer_state.json").read_text())["step"]
    assert saved == 8  # the last checkpoint (every 4 steps) before the kill after step 10

    out = train(*RUN, "--output-dir", str(run), "--resume", "--save-pretrained", str(run / "export"))
    assert f"at step {saved}" in out.stdout + out.stderr
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    # the killed run's steps up to its last checkpoint (the log is written with every checkpoint; the lines of steps 9
    # and 10 were still in memory), then the resumed run's, continued from that checkpoint, not from zero
    assert steps == list(range(1, saved + 1)) + list(range(saved + 1, 25))
    assert json.loads((latest(run) / "trainer_state.json").read_text())["step"] == 24
    # Model, optimiser, RNG and data position were all restored: the same weights as the uninterrupted run.
    resumed, uninterrupted = weights(run / "export"), weights(reference / "export")
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)


def test_the_adam_implementation_is_a_recorded_setting_a_resume_must_keep(reference, tmp_path):
    record = json.loads((reference / "export" / "training_args.json").read_text())
    assert record["args"]["optimizer"] == "adam-fused"  # the default, recorded with the export
    run = tmp_path / "copy"
    shutil.copytree(reference / "checkpoints", run / "checkpoints")
    refused = train(*RUN, "--output-dir", str(run), "--resume", "--max-steps", "26", "--optimizer", "adam", check=False)
    assert refused.returncode == 2
    assert_one_error_line(refused, "'optimizer': ('adam-fused', 'adam')")
    resumed = train(*RUN, "--output-dir", str(run), "--resume", "--max-steps", "26")
    assert "at step 24" in resumed.stdout + resumed.stderr and latest(run).name == "step_0000026"


def test_existing_run_needs_resume(reference):
    proc = train(*RUN, "--output-dir", str(reference), check=False)
    assert proc.returncode == 2
    assert_one_error_line(proc, "--resume")


def test_resume_with_different_settings_is_refused(reference):
    before = latest(reference).name
    proc = train(*RUN, "--lr", "0.002", "--output-dir", str(reference), "--resume", check=False)
    assert proc.returncode == 2
    assert_one_error_line(proc, "cannot resume", "settings differ", "'lr': (0.001, 0.002)")
    assert latest(reference).name == before  # nothing was trained or written


def test_resume_settings_name_everything_a_resumed_run_must_share():
    from train.trainer import TrainConfig, settings
    from vae_models import build_model

    base = TrainConfig(model="vae", model_config={"latent_dim": 2})
    model = build_model("vae", latent_dim=2)
    reference = settings(base, model, "dynamic", 1)
    changed = {
        "lr": settings(TrainConfig(**{**base.__dict__, "lr": 0.5}), model, "dynamic", 1),
        "optimizer": settings(TrainConfig(**{**base.__dict__, "optimizer": "adam"}), model, "dynamic", 1),
        "seed": settings(TrainConfig(**{**base.__dict__, "seed": 9}), model, "dynamic", 1),
        "batch_size": settings(TrainConfig(**{**base.__dict__, "batch_size": 7}), model, "dynamic", 1),
        "dataset": settings(TrainConfig(**{**base.__dict__, "dataset": "fashion_mnist"}), model, "dynamic", 1),
        "init_from": settings(TrainConfig(**{**base.__dict__, "init_from": "x"}), model, "dynamic", 1),
        "lr_decay_to": settings(TrainConfig(**{**base.__dict__, "lr_decay_to": 1e-4}), model, "dynamic", 1),
        "model": settings(TrainConfig(**{**base.__dict__, "model": "dvae"}), model, "dynamic", 1),
        "model_config": settings(base, build_model("vae", latent_dim=3), "dynamic", 1),
        "binarize": settings(base, model, "fixed", 1),
        "num_processes": settings(base, model, "dynamic", 2),
    }
    for key, other in changed.items():
        assert {k for k in reference if reference[k] != other[k]} == {key}, key
    # what may change on resume: the length of the run, where it is exported, how often it checkpoints
    longer = TrainConfig(**{**base.__dict__, "max_steps": 99, "epochs": 3, "checkpoint_every": 7, "save_pretrained": "e"})
    assert settings(longer, model, "dynamic", 1) == reference


def test_diverging_loss_stops_and_keeps_last_good_checkpoint(tmp_path, mnist_dir):
    run = tmp_path / "nan"
    proc = train("--model", "vae", *TINY, "--data-dir", str(mnist_dir), "--max-steps", "30", "--lr", "1e30",
                 "--checkpoint-every", "1", "--output-dir", str(run), check=False)
    assert proc.returncode == 1
    line = assert_one_error_line(proc, "not finite", "latest good checkpoint: step_")
    good = latest(run)
    assert good.name in line and not list((run / "checkpoints").glob(".tmp_*"))
    step = json.loads((good / "trainer_state.json").read_text())["step"]
    assert 1 <= step < 30
    assert all(torch.isfinite(t).all() for t in weights(good).values())


def _corrupt_dir(tmp_path: Path) -> Path:
    bad = tmp_path / "corrupt"
    bad.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (bad / name).write_bytes(b"\x1f\x8b not really gzip")
    return bad


@pytest.mark.parametrize("args, needle", [
    (["--model", "nope"], "unknown model 'nope'"),
    (["--model", "vae", "--set", "latent_dim=0"], "latent_dim"),
    (["--model", "vae", "--set", "colour=1"], "colour"),
    (["--model", "aae", "--set", "prior=\"mixture10\"", "--set", "latent_dim=5"], "mixture10"),
    (["--model", "vae", "--set", "latent_dim"], "key=value"),
    (["--model", "vae", "--config", "/nonexistent/config.json"], "--config"),
    (["--model", "vae", "--data-dir", "/nonexistent/mnist"], "does not exist"),
    (["--model", "vae", "--data-dir", "CORRUPT"], "corrupt"),
])
def test_bad_input_one_clear_line(tmp_path, args, needle, mnist_dir):
    args = [str(_corrupt_dir(tmp_path)) if a == "CORRUPT" else a for a in args]
    if "--data-dir" not in args:
        args += ["--data-dir", str(mnist_dir)]
    run = tmp_path / "run"
    proc = train(*args, "--max-steps", "2", "--output-dir", str(run), check=False)
    assert proc.returncode == 2
    assert_one_error_line(proc, needle)
    assert not (run / "checkpoints" / "latest").exists()


# ------------------------------------------------------------------------------------------- DDP


def _ddp_worker(out_dir: str, model: str, fields: dict) -> None:
    """Runs in each of the two processes of accelerate.debug_launcher: train a few steps, then gather a hash of
    every rank's weights (before DDP wrapped the model and after training) on rank 0."""
    from train.trainer import Trainer, TrainConfig

    cfg = TrainConfig(model=model, model_config=fields, data_dir=str(MNIST_DIR), batch_size=16, max_steps=3,
                      checkpoint_every=0, output_dir=out_dir, seed=1)
    trainer = Trainer(cfg)
    acc = trainer.accelerator

    def digest(module) -> torch.Tensor:
        h = hashlib.sha256(b"".join(t.detach().cpu().numpy().tobytes() for t in module.state_dict().values()))
        return torch.tensor(list(h.digest()[:8]), dtype=torch.int64)

    before = digest(trainer.model)
    trainer.run()
    after = digest(trainer.model)
    gathered = acc.gather(torch.stack([before, after])[None]).tolist()  # (ranks, 2, 8)
    if acc.is_main_process:
        (Path(out_dir) / "ddp.json").write_text(json.dumps({"num_processes": acc.num_processes, "hashes": gathered}))
    acc.end_training()


def test_ddp_two_processes_identical_weights(tmp_path):
    cases = {
        "vae": {"hidden_dims": [32], "latent_dim": 2},
        "avb": {"hidden_dims": [32], "latent_dim": 2, "discriminator_hidden_dims": [32], "noise_dim": 4},
        "aae": {"hidden_dims": [32], "latent_dim": 2, "discriminator_hidden_dims": [32]},
    }
    # A fresh interpreter: accelerate's process state is a singleton, and debug_launcher forks.
    code = ("import sys; from accelerate import debug_launcher; from tests.test_train import _ddp_worker\n"
            f"for name, fields in {cases!r}.items():\n"
            f"    debug_launcher(_ddp_worker, args=({str(tmp_path)!r} + '/' + name, name, fields), num_processes=2)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in cases:
        result = json.loads((tmp_path / name / "ddp.json").read_text())
        assert result["num_processes"] == 2
        (before0, after0), (before1, after1) = result["hashes"]
        assert before0 != before1, f"{name}: ranks start from different seeds, so DDP's broadcast matters"
        assert after0 == after1, f"{name}: ranks diverged"
        assert after0 != before0, f"{name}: training changed the weights"


def test_trackio_tracker_records_every_loss_term(tmp_path, mnist_dir):
    """--log-with trackio runs offline: the terms land in trackio's local database."""
    import sqlite3

    store = tmp_path / "trackio"
    args = ["--model", "vae", *TINY, "--data-dir", str(mnist_dir), "--max-steps", "3", "--checkpoint-every", "0",
            "--output-dir", str(tmp_path / "run"), "--log-with", "trackio"]
    proc = subprocess.run([sys.executable, "-m", "train", *args], cwd=REPO, env={**ENV, "TRACKIO_DIR": str(store)},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (database,) = store.glob("*.db")
    rows = [(step, json.loads(m)) for step, m in sqlite3.connect(database).execute("select step, metrics from metrics")]
    losses = {step: m for step, m in rows if "train/loss" in m}
    assert sorted(losses) == [1, 2, 3]
    assert all({"train/reconstruction", "train/kl"} <= set(m) for m in losses.values())
    assert any(m.get("samples", {}).get("_type") == "trackio.image" for _, m in rows), "the sample grid is logged"

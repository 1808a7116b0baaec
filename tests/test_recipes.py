"""Recipes (recipes/*.json) rebuild the bundled weights: each one reads back as exactly the training settings its
pretrained/ export recorded, `python -m train --config` takes them (command-line options win), and
`python -m train.reproduce --quick` trains, evaluates and cards one end to end without touching what exists."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import vae_models
from train.__main__ import config_from_args
from train.reproduce import recipe_names
from train.trainer import TrainConfig, TrainError
from vae_models.export import read_eval_results, read_training_record

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
# Where a run writes and what it records about itself: not part of what the weights are.
NOT_SETTINGS = {"data_dir", "output_dir", "save_pretrained", "push_to_hub", "revision", "private", "resume", "command",
                "progress_bar"}
# Settings added after the bundled weights were trained, with the value every earlier run had.
EARLIER = {"optimizer": "adam", "init_from": None, "lr_decay_to": None, "data_source": "idx", "hub_revision": None,
           "lr_schedule": "constant", "discriminator_lr": None, "adam_beta1": 0.9, "adversarial_updates": "alternating",
           "ema_decay": None, "init_output_bias": False, "sync_every": 50, "labelled_examples": None,
           "validation_examples": 0}


def test_reproduce_rebuilds_the_judge_of_the_others_evaluation_first():
    assert recipe_names(RECIPES) == ["classifier", *(name for name in vae_models.checkpoints() if name != "classifier")]


@pytest.mark.parametrize("name", sorted(p.stem for p in RECIPES.glob("*.json")))
def test_recipe_reproduces_the_recorded_training_settings(name):
    record = read_training_record(REPO / "pretrained" / name)
    cfg = config_from_args(["--config", str(RECIPES / f"{name}.json")])
    recorded = {**EARLIER, **record.args}
    for field in dataclasses.fields(TrainConfig):
        if field.name not in NOT_SETTINGS:
            assert getattr(cfg, field.name) == recorded[field.name], (name, field.name)
    assert record.binarize == vae_models.get_spec(cfg.model).binarize_for(
        vae_models.build_model(cfg.model, **cfg.model_config).config)


def test_command_line_options_override_the_recipe_and_bad_recipes_are_refused(tmp_path):
    recipe = str(RECIPES / "aae.json")
    cfg = config_from_args(["--config", recipe, "--epochs", "2", "--set", "latent_dim=3", "--optimizer", "adam-fused"])
    assert (cfg.model, cfg.epochs, cfg.model_config["latent_dim"], cfg.optimizer) == ("aae", 2, 3, "adam-fused")
    assert cfg.model_config["adversarial_weight"] == 5.0 and cfg.batch_size == 128 and cfg.lr == 1e-3
    assert config_from_args(["--model", "vae"]).optimizer == "adam-fused"  # the default outside the recipes

    bad = tmp_path / "bad.json"
    for content, needle in [
        ({"model": "vae", "model_config": {}, "train": {"epochz": 3}}, "unknown trainer settings ['epochz']"),
        ({"model": "vae", "model_config": {}, "evaluate": "--limit 10"}, "list of command-line arguments"),
        ({"model": "vae", "model_config": [], "train": {}}, "must be objects"),
        ({"model": "vae", "model_config": {}, "checkpoint": {"titel": "VAE"}}, "unknown checkpoint keys ['titel']"),
    ]:
        bad.write_text(json.dumps(content))
        with pytest.raises(TrainError, match=needle.replace("[", r"\[").replace("]", r"\]")):
            config_from_args(["--config", str(bad)])


def test_reproduce_quick_trains_evaluates_and_cards_without_overwriting(tmp_path, mnist_dir):
    out, runs = tmp_path / "out", tmp_path / "runs"
    cmd = [sys.executable, "-m", "train.reproduce", "vae-2d", "--quick", "--data-dir", str(mnist_dir),
           "--output-root", str(out), "--runs-root", str(runs)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "PYTHONPATH": str(REPO)}  # run from another folder: only the package has to be importable
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    export = out / "vae-2d"
    record = read_training_record(export)
    assert record.command.startswith("python -m train --config recipes/vae-2d.json ") and record.steps == 200
    assert record.args["optimizer"] == "adam-fused" and record.args["model_config"] == {"hidden_dims": [400, 200],
                                                                                  "latent_dim": 2}
    results = {r.type: r for r in read_eval_results(export)}
    assert {"nll", "psnr", "classifier_fd", "mmd"} <= set(results) and results["nll"].details["num_images"] == 100
    card = (export / "README.md").read_text()
    assert "vae-family/mnist-vae-2d" in card and record.command in card and "model-index" in card

    before = (export / "model.safetensors").stat().st_mtime_ns
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already holds an export" in again.stderr and "--overwrite" in again.stderr
    assert (export / "model.safetensors").stat().st_mtime_ns == before
    unknown = subprocess.run([*cmd[:3], "nope"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "no recipe for ['nope']" in unknown.stderr

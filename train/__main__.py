"""Command line: `python -m train --model vae --data-dir ../shared/data/mnist --max-steps 2000 --save-pretrained out/vae`,
or from a recipe: `python -m train --config recipes/vae.json --data-dir ../shared/data/mnist --save-pretrained out/vae`.

Also runs under DDP: `accelerate launch --multi_gpu --num_processes 2 -m train ...` (on CPU add ACCELERATE_USE_CPU=true).
Bad input ends with one `error: ...` line on stderr and exit status 2; a diverged loss or a failed push with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys

from vae_models import ConfigError, read_config

from .hub import PushError
from .recipe import RecipeError, check_recipe, is_recipe
from .trainer import DEFAULT_OPTIMIZER, OPTIMIZERS, Diverged, TrainConfig, TrainError, train

# Options a recipe's "train" object may set (its keys are these options' names with "_" for "-").
RECIPE_OPTIONS = {"dataset", "binarize", "batch_size", "lr", "optimizer", "epochs", "max_steps", "lr_decay_to",
                  "init_from", "seed", "checkpoint_every", "keep_checkpoints", "log_with", "mixed_precision"}


def parse_set(items: list[str]) -> dict:
    """--set key=value pairs; values are JSON (latent_dim=2, hidden_dims=[64,32], beta=0.5), else plain strings."""
    fields = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise TrainError(f"--set expects key=value, got {item!r}")
        try:
            fields[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            fields[key.strip()] = raw
    return fields


def read_config_file(path: str) -> tuple[dict, str | None, dict]:
    """(model config fields, model name or None, trainer settings) from a model config (an export's config.json
    works) or a recipe (recipe.py)."""
    try:
        data = read_config(path)
        if not is_recipe(data):
            return data, data.get("model_type"), {}
        recipe = check_recipe(data, path)
    except (ConfigError, RecipeError) as exc:
        raise TrainError(f"--config: {exc}") from exc
    unknown = sorted(set(recipe.get("train", {})) - RECIPE_OPTIONS)
    if unknown:
        raise TrainError(f"--config {path}: unknown trainer settings {unknown}; known: {sorted(RECIPE_OPTIONS)}")
    return dict(recipe["model_config"]), recipe["model"], dict(recipe.get("train", {}))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train", description="Train a model of the VAE family on MNIST.")
    p.add_argument("--model", help="model name (vae_models.MODELS); optional when --config names the model")
    p.add_argument("--config", help="a recipe (recipes/NAME.json: model, model config and trainer settings) or a "
                   "JSON file of model config fields (an exported config.json works too)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a model config field, JSON value (repeatable; overrides --config)")
    p.add_argument("--data-dir", help="folder with the MNIST IDX files (default: download to the cache)")
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    p.add_argument("--binarize", choices=["dynamic", "fixed", "none"], help="default: the model's choice")
    p.add_argument("--batch-size", type=int, default=128, help="per process")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), default=DEFAULT_OPTIMIZER,
                   help="Adam implementation (same update, different speed); recorded in training_args.json")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--max-steps", type=int, help="total optimisation steps (overrides --epochs)")
    p.add_argument("--lr-decay-to", type=float, metavar="LR",
                   help="decay the learning rate exponentially to LR at the last step (default: constant)")
    p.add_argument("--init-from", metavar="DIR", help="start from this export's weights (same model config)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output-dir", default=None, help="run folder (default: runs/MODEL)")
    p.add_argument("--checkpoint-every", type=int, default=500, metavar="N", help="steps between checkpoints")
    p.add_argument("--keep-checkpoints", type=int, default=3)
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoints/latest")
    p.add_argument("--log-with", choices=["tensorboard", "trackio"])
    p.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"])
    p.add_argument("--save-pretrained", metavar="DIR", help="export the final model, samples and card here")
    p.add_argument("--push-to-hub", metavar="ORG/NAME", help="upload the export to this Hub repo")
    p.add_argument("--revision", help="Hub branch for --push-to-hub (created if missing)")
    p.add_argument("--private", action="store_true", help="create the Hub repo as private")
    return p


def config_from_args(argv: list[str]) -> TrainConfig:
    p = parser()
    config_path = p.parse_known_args(argv)[0].config
    fields, named, settings = read_config_file(config_path) if config_path else ({}, None, {})
    p.set_defaults(**settings)  # the recipe's trainer settings; options on the command line win
    args = p.parse_args(argv)
    fields |= parse_set(args.set)
    model = args.model or named
    if not model:
        raise TrainError("--model is required (or a --config that names the model)")
    fields.pop("model_type", None) if fields.get("model_type") == model else None
    return TrainConfig(
        model=model, model_config=fields, data_dir=args.data_dir, dataset=args.dataset, binarize=args.binarize,
        batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, epochs=args.epochs,
        max_steps=args.max_steps, seed=args.seed,
        output_dir=args.output_dir or f"runs/{model}", checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints, resume=args.resume, log_with=args.log_with,
        mixed_precision=args.mixed_precision, save_pretrained=args.save_pretrained, push_to_hub=args.push_to_hub,
        revision=args.revision, private=args.private, init_from=args.init_from, lr_decay_to=args.lr_decay_to,
        command=list(argv),
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        train(config_from_args(argv))
    except TrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, Diverged) else 2
    except PushError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

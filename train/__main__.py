"""Command line: `python -m train --model vae --data-dir ../shared/data/mnist --max-steps 2000 --save-pretrained out/vae`,
or from a recipe: `python -m train --config recipes/vae.json --data-dir ../shared/data/mnist --save-pretrained out/vae`.

Every option but --config and --set is a `TrainConfig` field: its name with "-" for "_", its default, its choices
and its help (the field's comment) come from the dataclass, so a setting is declared once. A recipe's "train"
object may set every field that is not run_only.

Also runs under DDP: `accelerate launch --multi_gpu --num_processes 2 -m train ...` (on CPU add ACCELERATE_USE_CPU=true).
Bad input ends with one `error: ...` line on stderr and exit status 2; a diverged loss or a failed push with status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from vae_models import ConfigError, read_config
from vae_models.data import environment_options

from .hub import PushError
from .options import add_field_options
from .recipe import RecipeError, check_recipe, is_recipe
from .trainer import Diverged, TrainConfig, TrainError, train

FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
# The trainer settings a recipe's "train" object may set (its keys are these fields' names).
RECIPE_OPTIONS = {name for name, f in FIELDS.items() if not f.metadata.get("run_only")}


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
    p.add_argument("--config", help="a recipe (recipes/NAME.json: model, model config and trainer settings) or a "
                   "JSON file of model config fields (an exported config.json works too)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a model config field, JSON value (repeatable; overrides --config)")
    # every field but those --set / --config fill and the command line itself
    add_field_options(p, TrainConfig, [name for name in FIELDS if name not in ("model_config", "command")])
    # runs/MODEL; and the data options the environment sets (VAE_FAMILY_DATA_DIR / _SOURCE), read here where the
    # command starts: a recipe or the command line still wins
    env = environment_options()
    p.set_defaults(output_dir=None, data_dir=env["data_dir"], data_source=env["source"])
    return p


def config_from_args(argv: list[str]) -> TrainConfig:
    p = parser()
    config_path = p.parse_known_args(argv)[0].config
    fields, named, settings = read_config_file(config_path) if config_path else ({}, None, {})
    p.set_defaults(**settings)  # the recipe's trainer settings; options on the command line win
    args = vars(p.parse_args(argv))
    fields |= parse_set(args.pop("set"))
    args.pop("config")
    model = args["model"] or named
    if not model:
        raise TrainError("--model is required (or a --config that names the model)")
    fields.pop("model_type", None) if fields.get("model_type") == model else None
    args["model"] = model
    args["output_dir"] = args["output_dir"] or f"runs/{model}"
    return TrainConfig(**args, model_config=fields, command=list(argv))


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

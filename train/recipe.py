"""Recipes: one JSON file per bundled weight in recipes/, everything `python -m train --config` needs to rebuild it.

    {"model": "vae",                                      the registry name
     "checkpoint": {"title": "VAE", ...},                 how a bundled checkpoint is shown (vae_models/catalogue.py)
     "model_config": {"hidden_dims": [200, 200], ...},    model config fields (the rest keep their defaults)
     "train": {"epochs": 200, "optimizer": "adam", ...},  trainer settings: TrainConfig fields / `--` options
     "evaluate": ["--num-samples", "1000"]}               extra `python -m train.evaluate` arguments (reproduce)

Options given on the command line override the recipe's "train" values.
"""

from __future__ import annotations

import json
from pathlib import Path

from vae_models.catalogue import KEYS, RECIPES_DIR, RecipeError, check_checkpoint  # noqa: F401 (RECIPES_DIR)


def is_recipe(data) -> bool:
    """A recipe (rather than a plain model config such as an export's config.json) has a model_config object."""
    return isinstance(data, dict) and "model_config" in data


def check_recipe(data, source: str) -> dict:
    if not is_recipe(data) or "model" not in data or set(data) - KEYS:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise RecipeError(f"recipe {source} must have 'model' and 'model_config', and optionally 'checkpoint', "
                          f"'train' and 'evaluate'; got {keys}")
    if not isinstance(data["model_config"], dict) or not isinstance(data.get("train", {}), dict):
        raise RecipeError(f"recipe {source}: 'model_config' and 'train' must be objects")
    if "checkpoint" in data:
        check_checkpoint(data["checkpoint"], source)
    evaluate = data.get("evaluate", [])
    if not isinstance(evaluate, list) or not all(isinstance(a, str) for a in evaluate):
        raise RecipeError(f"recipe {source}: 'evaluate' must be a list of command-line arguments (strings)")
    return data


def read_recipe(path: str | Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc}") from exc
    return check_recipe(data, str(path))

"""The checkpoint catalogue: every bundled checkpoint is one recipe file, `recipes/<name>.json`, read here.

A recipe is the one declaration of a checkpoint: its model and model config, the trainer's settings (train/ reads
those), the extra evaluation arguments, and under "checkpoint" how the app, the model card and the report present it:

    {"model": "vae",                                        the registry name
     "checkpoint": {"title": "VAE (2-D)",                   the app's short label (required)
                    "caption": "VAE: KL to N(0, I)",        longer, where the app compares checkpoints (else title)
                    "featured": true,                       where a view offers several it opens on this one
                    "interpolation": true,                  the latent-interpolation view decodes a path with it
                    "traversal": true,                      the latent-traversal view sweeps its code
                    "anchors": {"IS-NLL": "86.76 (...)"},   metric-name prefix -> the published number beside it
                    "purpose": "...",                       what it is for (its model card says it)
                    "in_app": false},                       kept out of the app's views (default true)
     "model_config": {"latent_dim": 2, ...}, "train": {...}, "evaluate": [...]}

What follows from the config is derived, not declared: a checkpoint whose model config has latent_dim 2 is
`latent_2d` (the manifold view, the prior comparison and live training show it). The checkpoint named like its
model is that model's default one (the baseline a view shows beside another model). Adding a checkpoint is adding
its recipe; its weights go to `pretrained/<name>/` and the Hub repo `vae-family/mnist-<name>`.

The catalogue lists its checkpoints in the registration order of their models, by name within a model. A model's
package (or a test) adds checkpoints of its own with `add_checkpoint`. Reading is strict: an unknown key, a value
of the wrong type or a model config its model refuses is a `RecipeError` naming the file.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path

from .blocks import ConfigError, ModelConfig
from .registry import MODELS, ModelSpec

# The keys of a recipe; "train" and "evaluate" are the trainer's and the evaluation's (train/recipe.py checks them).
KEYS = {"model", "checkpoint", "model_config", "train", "evaluate"}
# recipes/ beside the packages (the repository, the Space); an installed wheel holds them as vae_models/recipes/.
_HERE = Path(__file__).resolve().parent
RECIPES_DIR = _HERE / "recipes" if (_HERE / "recipes").is_dir() else _HERE.parent / "recipes"


class RecipeError(ConfigError):
    """A recipe that cannot be read or is not shaped like one; one line for users."""


@dataclass(frozen=True)
class Checkpoint:
    """A bundled checkpoint, as its recipe declares it."""

    name: str  # the recipe's file name: "vae-2d"
    model: str  # its model's registry name: "vae"
    model_config: dict  # the recipe's model config fields (the others keep the model's defaults)
    # The fields from here on are the keys of the recipe's "checkpoint" object.
    title: str  # short label the app shows: "VAE (2-D)"
    caption: str = ""  # longer label where the app compares checkpoints ("VAE: KL to N(0, I)"); default: title
    featured: bool = False  # where a view offers several checkpoints it opens on this one, and where it shows one
    #                         of several that qualify it shows this one (else the first in the catalogue)
    interpolation: bool = False  # the latent-interpolation view decodes a path between two digits' codes with it
    #                              (`encode`, `decode`); the AE beside the VAE: no prior against a KL-shaped one
    traversal: bool = False  # the latent-traversal view sweeps its code one dimension at a time: needs a Gaussian
    #                          q(z|x) (its mean is swept, in prior standard deviations; rows are ordered by average KL)
    anchors: tuple[tuple[str, str], ...] = ()  # (metric-name prefix, the published number it is compared with)
    purpose: str = ""  # what this checkpoint is for, where a model has several: its model card says it
    in_app: bool = True  # the app's model views offer it; false for one bundled to measure a claim beside another
    #                      (train.compare: the DVAE against a VAE of its budget)
    train: dict = field(default_factory=dict)  # the recipe's trainer settings (not a "checkpoint" key)

    @property
    def label(self) -> str:
        return self.caption or self.title

    @cached_property
    def config(self) -> ModelConfig:
        """The model config the recipe builds (its fields over the model's defaults)."""
        return MODELS[self.model].config_class.from_dict(self.model_config)

    @property
    def latent_2d(self) -> bool:
        """A 2-D code: the app's manifold view, prior comparison and posterior use it (live training takes every
        checkpoint whose config is pictured_in_2d)."""
        return self.config.code_dim == 2


# The keys a recipe's "checkpoint" object may have, with their types: the Checkpoint fields that do not come from
# the rest of the recipe.
_FROM_RECIPE = ("name", "model", "model_config", "train")
DECLARED = {f.name: typing.get_type_hints(Checkpoint)[f.name] for f in fields(Checkpoint) if f.name not in _FROM_RECIPE}


def check_checkpoint(data, source: str) -> dict:
    """A recipe's "checkpoint" object, checked key by key (unknown keys and wrong types are errors)."""
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {source}: 'checkpoint' must be an object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(DECLARED))
    if unknown:
        raise RecipeError(f"recipe {source}: unknown checkpoint keys {unknown}; known: {list(DECLARED)}")
    if not data.get("title"):
        raise RecipeError(f"recipe {source}: 'checkpoint' needs a 'title' (the label the app shows)")
    for key, value in data.items():
        if key == "anchors":
            if not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
                raise RecipeError(f"recipe {source}: checkpoint 'anchors' must be an object of metric-name prefix -> "
                                  f"anchor text, got {value!r}")
        elif not isinstance(value, DECLARED[key]):
            raise RecipeError(f"recipe {source}: checkpoint {key!r} must be a {DECLARED[key].__name__}, got {value!r}")
    return data


def entry(name: str, recipe, source: str) -> Checkpoint:
    """The catalogue entry a recipe declares, or RecipeError saying what is wrong with it."""
    if not isinstance(recipe, dict) or not {"model", "model_config", "checkpoint"} <= set(recipe):
        keys = sorted(recipe) if isinstance(recipe, dict) else type(recipe).__name__
        raise RecipeError(f"recipe {source} must have 'model', 'checkpoint' and 'model_config'; got {keys}")
    unknown = sorted(set(recipe) - set(KEYS))
    if unknown:
        raise RecipeError(f"recipe {source}: unknown keys {unknown}; known: {sorted(KEYS)}")
    if recipe["model"] not in MODELS:
        raise RecipeError(f"recipe {source}: unknown model {recipe['model']!r}; choose one of {sorted(MODELS)}")
    if not isinstance(recipe["model_config"], dict) or not isinstance(recipe.get("train", {}), dict):
        raise RecipeError(f"recipe {source}: 'model_config' and 'train' must be objects")
    declared = dict(check_checkpoint(recipe["checkpoint"], source))
    declared["anchors"] = tuple(declared.get("anchors", {}).items())
    checkpoint = Checkpoint(name, recipe["model"], dict(recipe["model_config"]), train=dict(recipe.get("train", {})),
                            **declared)
    try:
        checkpoint.config  # noqa: B018 (builds and validates the model config)
    except ConfigError as exc:
        raise RecipeError(f"recipe {source}: model_config: {exc}") from exc
    return checkpoint


def read_catalogue(directory: str | Path) -> dict[str, Checkpoint]:
    """Every recipe in `directory` (one `<name>.json` per checkpoint) as catalogue entries, by name."""
    found = {}
    for path in sorted(Path(directory).glob("*.json")):
        try:
            recipe = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RecipeError(f"cannot read recipe {path}: {exc}") from exc
        found[path.stem] = entry(path.stem, recipe, str(path))
    return found


_CATALOGUE: dict[str, Checkpoint] = {}  # filled from RECIPES_DIR on first use, then by add_checkpoint


def _catalogue() -> dict[str, Checkpoint]:
    if not _CATALOGUE:
        _CATALOGUE.update(read_catalogue(RECIPES_DIR))
    return _CATALOGUE


def add_checkpoint(name: str, recipe: dict) -> Checkpoint:
    """Add a checkpoint declared by a recipe (a dict shaped like a recipe file) to the catalogue."""
    if name in _catalogue():
        raise RecipeError(f"checkpoint {name!r} is already in the catalogue ({_catalogue()[name].model})")
    _CATALOGUE[name] = entry(name, recipe, repr(name))
    return _CATALOGUE[name]


def remove_checkpoint(name: str) -> None:
    """Take a checkpoint out of the catalogue (tests add checkpoints of toy models and remove them again)."""
    _catalogue().pop(name, None)


def checkpoints(directory: str | Path | None = None) -> dict[str, tuple[Checkpoint, ModelSpec]]:
    """The catalogue's checkpoints by name, with the declaration of their model, in the registration order of the
    models and by name within a model; only those of registered models. `directory`: the recipes in that folder
    instead (in the same order)."""
    entries = read_catalogue(directory) if directory is not None else _catalogue()
    order = list(MODELS)
    ranked = sorted((c for c in entries.values() if c.model in MODELS), key=lambda c: (order.index(c.model), c.name))
    return {c.name: (c, MODELS[c.model].spec) for c in ranked}


def judge_checkpoint() -> str:
    """The bundled checkpoint that labels digits: the first one of a model that `classifies`. Evaluation uses it as
    the judge of conditional accuracy and the feature network of the Fréchet distance."""
    for name, (_, spec) in checkpoints().items():
        if spec.classifies:
            return name
    raise ConfigError("no registered model classifies digits (a spec with kind='classifier')")

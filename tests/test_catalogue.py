"""The checkpoint catalogue (vae_models/catalogue.py): each recipe in recipes/ declares one checkpoint, in the
registration order of the models; what follows from its config is derived; a malformed recipe is refused with a
message naming the file and the key."""

from __future__ import annotations

import json

import pytest

import vae_models
from vae_models import RecipeError, add_checkpoint, checkpoints, remove_checkpoint
from vae_models.catalogue import RECIPES_DIR

VAE_2D = {"model": "vae", "checkpoint": {"title": "VAE (2-D)"}, "model_config": {"latent_dim": 2}}


def test_the_catalogue_is_the_recipes_in_the_registration_order_of_their_models():
    assert sorted(checkpoints()) == sorted(p.stem for p in RECIPES_DIR.glob("*.json"))
    assert list(checkpoints()) == ["ae", "vae", "vae-2d", "vae-avb-budget", "vae-dvae-budget", "cvae", "socvae",
                                   "quadrant_nn", "dvae", "dvae-low-noise", "avb", "avb-2d", "avb-ac",
                                   "aae", "aae-2d-gaussian", "aae-2d-mixture", "aae-2d-posterior-gaussian",
                                   "aae-2d-posterior-universal", "aae-2d-supervised", "aae-2d-clusters",
                                   "aae-clusters-16", "aae-clusters-30", "aae-semi-100", "aae-semi-100-seed1",
                                   "aae-semi-100-seed2", "aae-semi-1000", "aae-semi-all", "classifier"]
    for name, (checkpoint, spec) in checkpoints().items():
        assert checkpoint.name == name and checkpoint.model == spec.name == vae_models.MODELS[spec.name].spec.name


def test_an_entry_carries_its_recipe_and_its_declarations():
    vae, _ = checkpoints()["vae"]
    recipe = json.loads((RECIPES_DIR / "vae.json").read_text())
    assert (vae.model_config, vae.train) == (recipe["model_config"], recipe["train"])
    assert (vae.title, vae.label, vae.featured, vae.interpolation, vae.traversal) == ("VAE", "VAE", True, True, True)
    assert vae.anchors == (("IS-NLL", recipe["checkpoint"]["anchors"]["IS-NLL"]),)
    socvae, _ = checkpoints()["socvae"]  # anchors keep the recipe's order: the report takes the first prefix match
    assert [prefix for prefix, _ in socvae.anchors] == ["CLL (1", "CLL (2", "CLL (3"]
    ae, _ = checkpoints()["ae"]
    assert (ae.title, ae.label, ae.featured, ae.traversal, ae.anchors) == ("AE", "plain autoencoder", False, False, ())


def test_a_2d_code_follows_from_the_model_config_with_the_models_defaults(tmp_path):
    assert [name for name, (c, _) in checkpoints().items() if c.latent_2d] == [
        "vae-2d", "avb-2d", "aae-2d-gaussian", "aae-2d-mixture", "aae-2d-posterior-gaussian",
        "aae-2d-posterior-universal", "aae-2d-supervised"]  # not aae-2d-clusters: its code is 10 + 2 numbers
    assert checkpoints()["aae-2d-clusters"][0].config.pictured_in_2d
    for name, latent in (("two", {"latent_dim": 2}), ("three", {"latent_dim": 3}), ("default", {})):
        (tmp_path / f"{name}.json").write_text(json.dumps({**VAE_2D, "model_config": latent}))
    found = {name: c.latent_2d for name, (c, _) in checkpoints(tmp_path).items()}
    assert found == {"two": True, "three": False, "default": False}  # the VAE's default latent_dim is 16
    assert checkpoints(tmp_path)["default"][0].config == vae_models.VAEConfig()


@pytest.mark.parametrize("recipe, needle", [
    ({**VAE_2D, "colour": "red"}, "unknown keys ['colour']"),
    ({"model": "vae", "model_config": {}}, "must have 'model', 'checkpoint' and 'model_config'"),
    ({**VAE_2D, "checkpoint": {"title": "x", "titel": "y"}}, "unknown checkpoint keys ['titel']"),
    ({**VAE_2D, "checkpoint": {"caption": "no title"}}, "'checkpoint' needs a 'title'"),
    ({**VAE_2D, "checkpoint": "VAE"}, "'checkpoint' must be an object, got str"),
    ({**VAE_2D, "checkpoint": {"title": "x", "featured": "yes"}}, "checkpoint 'featured' must be a bool, got 'yes'"),
    ({**VAE_2D, "checkpoint": {"title": "x", "caption": 2}}, "checkpoint 'caption' must be a str, got 2"),
    ({**VAE_2D, "checkpoint": {"title": "x", "anchors": [["IS-NLL", "86"]]}}, "'anchors' must be an object"),
    ({**VAE_2D, "checkpoint": {"title": "x", "anchors": {"IS-NLL": 86}}}, "'anchors' must be an object"),
    ({**VAE_2D, "model": "nope"}, "unknown model 'nope'"),
    ({**VAE_2D, "model_config": [2]}, "'model_config' and 'train' must be objects"),
    ({**VAE_2D, "train": ["--epochs", "2"]}, "'model_config' and 'train' must be objects"),
    ({**VAE_2D, "model_config": {"latent_dim": 0}}, "model_config: latent_dim must be >= 1"),
    ({**VAE_2D, "model_config": {"latent_dims": 2}}, "model_config: unknown config keys for VAEConfig: ['latent_dims"),
])
def test_a_malformed_recipe_is_refused_naming_the_file_and_the_key(tmp_path, recipe, needle):
    (tmp_path / "bad.json").write_text(json.dumps(recipe))
    with pytest.raises(RecipeError) as info:
        checkpoints(tmp_path)
    assert str(tmp_path / "bad.json") in str(info.value) and needle in str(info.value)


def test_an_unreadable_recipe_is_refused_naming_the_file(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(RecipeError, match="cannot read recipe .*broken.json"):
        checkpoints(tmp_path)


def test_added_checkpoints_join_the_catalogue_in_order_and_names_are_unique():
    add_checkpoint("zz-vae", VAE_2D)
    try:
        names = list(checkpoints())
        assert names.index("vae-2d") < names.index("zz-vae") < names.index("cvae")  # with its model, by name
        assert checkpoints()["zz-vae"][0].latent_2d
        with pytest.raises(RecipeError, match="checkpoint 'vae-2d' is already in the catalogue"):
            add_checkpoint("vae-2d", VAE_2D)
        with pytest.raises(RecipeError, match="'nothing'.*unknown model 'toy'"):
            add_checkpoint("nothing", {**VAE_2D, "model": "toy"})
    finally:
        remove_checkpoint("zz-vae")
    assert "zz-vae" not in checkpoints() and "nothing" not in checkpoints()


def test_checkpoints_of_a_model_taken_out_of_the_registry_are_not_listed(monkeypatch):
    monkeypatch.delitem(vae_models.MODELS, "aae")
    assert not any(c.model == "aae" for c, _ in checkpoints().values()) and "vae" in checkpoints()
    assert "aae-2d-mixture" not in checkpoints() and "aae-semi-100" in checkpoints()  # another model's

"""One suite over every model of the family at a tiny config: builds, finite named positive loss terms, a few
optimiser steps lower the loss on a fixed batch, and a save/load round trip through real safetensors files with
strict key matching and identical outputs. Bad checkpoints and configs fail loudly."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from vae_models import MODELS, VAE, CheckpointError, ConfigError, build_model, load_model

from .model_variants import TINY, VARIANTS

CASES = [(name, fields) for name in sorted(MODELS) for fields in VARIANTS.get(name, [{}])]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in fields.items()) or 'default'}" for name, fields in CASES]


def test_every_registered_model_has_variants():
    assert set(MODELS) <= set(VARIANTS), f"add tiny configs for {set(MODELS) - set(VARIANTS)} to model_variants.py"


def make(name, fields):
    torch.manual_seed(0)
    return build_model(name, **{**TINY, **fields})


def fixed_batch(n=16):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, 28, 28, generator=g).pow(3).bernoulli(generator=g)  # sparse, digit-like
    return images, torch.arange(n) % 10


def seeded_loss(model, batch, seed=123):
    torch.manual_seed(seed)  # same noise (z samples, corruption) before and after the step
    return model.loss(batch)


@pytest.mark.parametrize("name,fields", CASES, ids=IDS)
def test_loss_is_finite_positive_and_decreases(name, fields):
    model, batch = make(name, fields), fixed_batch()
    out = seeded_loss(model, batch)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert out.terms, "loss terms must be named"
    for term, value in out.terms.items():
        assert value.dim() == 0 and torch.isfinite(value), term
    if model.spec.adversarial:
        d = model.discriminator_loss(batch)
        assert torch.isfinite(d.loss) and d.terms
        gen, disc = {id(p) for p in model.generator_parameters()}, {id(p) for p in model.discriminator_parameters()}
        assert gen and disc and not gen & disc and gen | disc == {id(p) for p in model.parameters()}
    optimizer = torch.optim.Adam(model.generator_parameters(), lr=1e-3)
    before = out.loss.item()
    for _ in range(5):
        optimizer.zero_grad()
        seeded_loss(model, batch).loss.backward()
        optimizer.step()
    assert seeded_loss(model, batch).loss.item() < before


def outputs(model, batch):
    """Everything a model computes from fixed inputs and fixed noise."""
    images, labels = batch
    torch.manual_seed(7)
    result = {"loss": model.loss(batch).loss}
    if model.spec.kind != "classifier":
        torch.manual_seed(7)
        result["reconstruction"] = model.reconstruct(images, labels)
    return result


@pytest.mark.parametrize("name,fields", CASES, ids=IDS)
def test_save_load_round_trip_is_exact(name, fields, tmp_path):
    model, batch = make(name, fields).eval(), fixed_batch()
    model.save_pretrained(tmp_path)
    assert {"model.safetensors", "config.json"} <= {p.name for p in tmp_path.iterdir()}
    loaded = load_model(str(tmp_path))
    assert type(loaded) is type(model) and loaded.config == model.config
    saved = load_file(tmp_path / "model.safetensors")
    assert set(saved) == set(model.state_dict())
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key
    for key, value in outputs(model, batch).items():
        assert torch.equal(outputs(loaded, batch)[key], value), key


def test_sample_shapes_and_range():
    for name in ("ae", "vae"):
        images = make(name, {}).sample(6, temperature=0.5, generator=torch.Generator().manual_seed(0))
        assert images.shape == (6, 1, 28, 28) and images.min() >= 0 and images.max() <= 1


@pytest.fixture
def saved_vae(tmp_path):
    make("vae", {}).save_pretrained(tmp_path)
    return tmp_path


def test_checkpoint_with_renamed_tensor_is_refused(saved_vae):
    tensors = load_file(saved_vae / "model.safetensors")
    key = next(iter(tensors))
    tensors["renamed." + key] = tensors.pop(key)
    save_file(tensors, saved_vae / "model.safetensors")
    with pytest.raises(CheckpointError, match="does not match"):
        load_model(str(saved_vae))


def test_checkpoint_that_does_not_fit_its_config_is_refused(saved_vae):
    config = json.loads((saved_vae / "config.json").read_text())
    (saved_vae / "config.json").write_text(json.dumps({**config, "latent_dim": 5}))
    with pytest.raises(CheckpointError):
        load_model(str(saved_vae))


def test_truncated_weights_file_is_refused(saved_vae):
    data = (saved_vae / "model.safetensors").read_bytes()
    (saved_vae / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_model(str(saved_vae))


def test_missing_weights_file_is_reported(saved_vae):
    (saved_vae / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_model(str(saved_vae))


@pytest.mark.parametrize("edit,message", [
    ({"latent_dim": "four"}, "latent_dim must be an integer"),
    ({"latent_dim": 0}, "latent_dim must be >= 1"),
    ({"backbone": "transformer"}, "backbone must be one of"),
    ({"surprise": 1}, "unknown config keys"),
    ({"model_type": "ae"}, "config is for model_type"),
    ({"hidden_dims": [32, "x"]}, "hidden_dims must be a list of integers"),
    ({"beta": float("nan")}, "beta must be a finite number"),
])
def test_malformed_config_gets_a_clear_error(saved_vae, edit, message):
    config = json.loads((saved_vae / "config.json").read_text())
    (saved_vae / "config.json").write_text(json.dumps({**config, **edit}))
    with pytest.raises(ConfigError, match=message):
        VAE.from_pretrained(str(saved_vae))


def test_unknown_model_type_in_config(saved_vae):
    config = json.loads((saved_vae / "config.json").read_text())
    (saved_vae / "config.json").write_text(json.dumps({**config, "model_type": "vqvae"}))
    with pytest.raises(ConfigError, match="unknown model_type 'vqvae'"):
        load_model(str(saved_vae))


def test_config_that_is_not_json_gets_a_clear_error(saved_vae):
    (saved_vae / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_model(str(saved_vae))


def test_unknown_model_name():
    with pytest.raises(ConfigError, match="unknown model 'vqvae'"):
        build_model("vqvae")

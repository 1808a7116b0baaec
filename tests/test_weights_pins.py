"""The demo's Hub revision table (`demo.weights.hub_revisions`): a pins file is read in full, its exports that the
app does not show are skipped (and only those), and an override updates the pinned entries it names."""

import json
from pathlib import Path

import pytest

from demo.weights import REVISIONS_ENV, hub_revisions


def test_a_pins_file_is_read_past_unshown_exports_and_overrides_update_it(tmp_path, monkeypatch):
    monkeypatch.delenv(REVISIONS_ENV, raising=False)
    pins = tmp_path / "pins.json"
    pins.write_text(json.dumps({"vae": {"repo_id": "org/vae", "revision": "abc"},
                                "not-shown": {"repo_id": "org/x", "revision": "x"},  # bundled, not in the app
                                "ae": {"revision": "def"}}))
    table = hub_revisions(pins_file=pins)
    assert table["vae"] == {"repo_id": "org/vae", "revision": "abc"} and table["ae"]["revision"] == "def"
    assert "not-shown" not in table
    table = hub_revisions({"vae": {"revision": "newer"}}, pins_file=pins)
    assert table["vae"] == {"repo_id": "org/vae", "revision": "newer"} and table["ae"]["revision"] == "def"
    with pytest.raises(ValueError, match="bad hub revision entry 'not-shown'"):
        hub_revisions({"not-shown": {"revision": "x"}}, pins_file=pins)  # an override must name a model the app shows


def test_a_model_is_loaded_once_and_a_failure_is_remembered(tmp_path):
    import vae_models
    from demo.tiny_weights import make_tiny_weights
    from demo.weights import ModelStore, ModelUnavailable

    root = make_tiny_weights(tmp_path, skip=tuple(name for name in vae_models.checkpoints() if name != "vae"))
    store = ModelStore(root, hub=False)
    assert store.get("vae") is store.get("vae")  # the memo, not a second load
    (root / "vae" / "config.json").unlink()  # gone after loading: the loaded model stays
    assert store.get("vae") is not None
    with pytest.raises(ModelUnavailable) as first:
        store.get("ae")
    (root / "ae").mkdir()
    (root / "ae" / "config.json").write_text("{}")  # appears later: the recorded failure stands until a restart
    with pytest.raises(ModelUnavailable) as again:
        store.get("ae")
    assert str(again.value) == str(first.value)


def test_the_hub_banners_word_for_word(monkeypatch, tmp_path):
    """What a Space visitor reads: an unreachable Hub with or without bundled weights to fall back on, and the
    models that no pin names (those alone use the bundled weights), in one banner."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    from demo.weights import ModelStore, checkpoint_names

    def unreachable(repo_id, **kwargs):
        raise LocalEntryNotFoundError("no connection\ndetails")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    pins = {name: {"revision": "0123abc"} for name in checkpoint_names()} | {"vae": {"revision": None},
                                                                              "ae": {"revision": None}}
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    store = ModelStore(bundled, hub=True, revisions=pins)
    assert store.notice == (
        "**The Hugging Face Hub could not be reached** (no connection); showing the bundled weights from `bundled/` "
        "instead. **No pinned Hub revision** for ae, vae (`hub_revisions.json` lacks them; `python -m train.publish` "
        "writes it): using the bundled weights for those.")
    assert store.names() == checkpoint_names()
    store = ModelStore(tmp_path / "no-weights-here", hub=True, revisions={name: {"revision": "0123abc"}
                                                                           for name in checkpoint_names()})
    assert store.notice == ("**The Hugging Face Hub could not be reached** (no connection); their features are "
                            "unavailable until it can be reached (reload the Space later).")


def test_each_view_says_which_declaration_it_found_no_model_for(monkeypatch):
    from demo import weights
    from vae_models import ConfigError

    monkeypatch.setattr(weights, "checkpoints", lambda: {})
    for choose, what in ((weights.label_judge, "a classifier kind (a model that labels digits)"),
                         (weights.conditional_sampler, "label_conditional=True with a generative kind"),
                         (weights.denoising_pair, "denoising=True with a baseline"),
                         (weights.completion_pair, 'kind="completion" with a baseline')):
        with pytest.raises(ConfigError) as refused:
            choose()
        assert str(refused.value) == f"no registered model declares {what}"


def test_a_baseline_that_is_not_a_registered_model_is_a_config_error():
    import dataclasses

    from demo.weights import baseline_of
    from vae_models import ConfigError, get_spec

    spec = dataclasses.replace(get_spec("dvae"), baseline="vqvae")
    with pytest.raises(ConfigError, match="dvae declares baseline='vqvae', which is not a registered model"):
        baseline_of(spec)


def test_the_store_reads_its_folders_from_the_arguments_else_the_environment_else_the_defaults(monkeypatch, tmp_path):
    from demo.weights import DEFAULT_WEIGHTS_DIR, WEIGHTS_ENV, ModelStore
    from vae_models.data import DATA_DIR_ENV as DATA_ENV

    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.delenv(DATA_ENV, raising=False)
    store = ModelStore(hub=False)
    assert (store.weights_dir, store.data_dir, store.notice) == (Path(DEFAULT_WEIGHTS_DIR), None, "")
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "weights"))
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "data"))
    store = ModelStore(hub=False)
    assert (store.weights_dir, store.data_dir) == (tmp_path / "weights", str(tmp_path / "data"))
    store = ModelStore(tmp_path / "given", hub=False, data_dir="mnist-here")
    assert (store.weights_dir, store.data_dir) == (tmp_path / "given", "mnist-here")


def test_the_store_computes_each_memo_once(tmp_path):
    from demo.weights import ModelStore

    store, calls = ModelStore(tmp_path, hub=False), []
    assert store.memo("codes", lambda: calls.append("codes") or 1) == 1
    assert store.memo("codes", lambda: calls.append("again") or 2) == 1
    assert store.memo("other", lambda: calls.append("other") or 3) == 3
    assert calls == ["codes", "other"]


@pytest.mark.parametrize("error", ["LocalEntryNotFoundError", "ConnectionError"])
def test_the_banner_shows_at_most_200_characters_of_the_hubs_error(monkeypatch, tmp_path, error):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    from demo.weights import ModelStore, checkpoint_names

    exc = (LocalEntryNotFoundError if error == "LocalEntryNotFoundError" else ConnectionError)("x" * 300 + "\nmore")

    def unreachable(repo_id, **kwargs):
        raise exc

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    store = ModelStore(tmp_path, hub=True, revisions={name: {"revision": "0123abc"} for name in checkpoint_names()})
    prefix = "ConnectionError: " if error == "ConnectionError" else ""
    assert f"could not be reached** ({prefix}{'x' * 200});" in store.notice

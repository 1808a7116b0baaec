"""The demo's Hub revision table (`demo.weights.hub_revisions`): a pins file is read in full, its exports that the
app does not show are skipped (and only those), and an override updates the pinned entries it names."""

import json

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

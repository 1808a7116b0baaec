"""The app's weight loading (demo/weights.py), local and Hub: the Hub revision table (inline JSON, a pins file read
in full past the exports the app does not show, the environment, overrides); Hub mode's switch, its downloads (only
safe file types, each at its pinned revision, never an unpinned "main") and its fall-backs per model or entirely,
with the banners a visitor reads; the store's folders, memo and loaded-once models; what each tab says is
unavailable; and the declarations each view picks its models by."""

import json
from pathlib import Path

import pytest

from demo.tiny_weights import make_tiny_weights
from demo.weights import ALLOW_PATTERNS, REVISIONS_ENV, ModelStore, hub_revisions


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ModelStore(make_tiny_weights(tmp_path_factory.mktemp("weights")), hub=False)


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


def test_the_hub_banners_say_why_what_is_shown_instead_and_which_models_are_unpinned(monkeypatch, tmp_path):
    """What a Space visitor reads: an unreachable Hub (and its reason) with or without bundled weights to fall back
    on, and the models that no pin names (those alone use the bundled weights, and the command that pins them), in
    one banner."""
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
    unreached, unpinned = store.notice.split(" **No pinned Hub revision** ")
    assert unreached.startswith("**The Hugging Face Hub could not be reached** (no connection);")
    assert "details" not in store.notice and "the bundled weights from `bundled/`" in unreached
    assert unpinned.startswith("for ae, vae (") and "`python -m train.publish`" in unpinned
    assert unpinned.endswith("using the bundled weights for those.")
    assert store.names() == checkpoint_names()
    store = ModelStore(tmp_path / "no-weights-here", hub=True, revisions={name: {"revision": "0123abc"}
                                                                           for name in checkpoint_names()})
    assert store.notice.startswith("**The Hugging Face Hub could not be reached** (no connection);")
    assert "unavailable until it can be reached" in store.notice and "bundled" not in store.notice


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


UNSAFE_FILES = {"pytorch_model.bin": b"\x80\x04pickle", "optimizer.pt": b"\x80\x04pickle", "extra.pkl": b"\x80\x04",
                "setup.py": b"import os", "model.ckpt": b"x"}


HUB_DOWNLOAD = """
import json, os
from huggingface_hub import HfApi
from demo.weights import ModelStore
api = HfApi()
api.create_repo("tester/mnist-vae")
api.upload_folder(folder_path=os.environ["REPO_FOLDER"], repo_id="tester/mnist-vae")
store = ModelStore(os.environ["BUNDLED"], hub=True, revisions={"vae": {"repo_id": "tester/mnist-vae", "revision": "main"}})
folder = store.folder("vae")
print(json.dumps({"source": store.source("vae"), "files": sorted(os.listdir(folder)),
                  "model": type(store.get("vae")).__name__}))
"""


def test_hub_mode_downloads_only_safe_file_types(hub_server, hub_run, tmp_path):
    """A repo that also holds pickles and code: the app's snapshot holds (and the Hub served) only safetensors,
    JSON, Markdown and PNG files."""
    assert set(ALLOW_PATTERNS) == {"*.safetensors", "*.json", "*.md", "*.png"}
    weights = make_tiny_weights(tmp_path / "weights")
    repo = weights / "vae"
    for name, data in UNSAFE_FILES.items():
        (repo / name).write_bytes(data)
    proc = hub_run(HUB_DOWNLOAD, REPO_FOLDER=str(repo), BUNDLED=str(tmp_path / "nothing"),
                   GRADIO_TEMP_DIR=str(tmp_path / "gradio"))
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["source"].startswith("hub tester/mnist-vae@") and result["model"] == "VAE"
    assert "model.safetensors" in result["files"] and "config.json" in result["files"]
    assert not set(UNSAFE_FILES) & set(result["files"])
    served = [r for r in hub_server.requests if "/resolve/" in r[1]]
    assert served and not [r for r in served if any(name in r[1] for name in UNSAFE_FILES)], served


class FakeHub:
    """Stands in for huggingface_hub.snapshot_download in this process (the real client over HTTP is tested above
    and in test_demo_server.py): records each call and answers from `answers` (repo_id -> folder or exception)."""

    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def __call__(self, repo_id, **kwargs):
        self.calls.append((repo_id, kwargs))
        answer = self.answers(repo_id)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)


def repo_not_found(repo_id):
    import httpx
    from huggingface_hub.errors import RepositoryNotFoundError

    return RepositoryNotFoundError(f"{repo_id} not found", response=httpx.Response(
        404, request=httpx.Request("GET", f"http://hub/api/models/{repo_id}")))


PIN = "0123456789abcdef0123456789abcdef01234567"


def pinned_everywhere() -> dict:
    """Every model pinned (as the pins file `python -m train.publish` writes pins them), at PIN."""
    from demo.weights import checkpoint_names

    return {name: {"revision": PIN} for name in checkpoint_names()}


def test_hub_mode_asks_for_safe_files_at_each_pinned_revision(monkeypatch, tmp_path):
    import huggingface_hub

    from demo.weights import checkpoint_names

    weights = make_tiny_weights(tmp_path / "hub")
    fake = FakeHub(lambda repo_id: weights / repo_id.split("/mnist-")[1])
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    revisions = {**pinned_everywhere(), "vae": {"repo_id": "me/mnist-vae", "revision": "abc123"}}
    store = ModelStore(tmp_path / "bundled", hub=True, revisions=revisions)
    assert store.notice == "" and len(fake.calls) == len(checkpoint_names())
    for repo_id, kwargs in fake.calls:
        assert kwargs == {"revision": "abc123" if repo_id == "me/mnist-vae" else PIN,
                          "allow_patterns": ["*.safetensors", "*.json", "*.md", "*.png"]}, (repo_id, kwargs)
    assert store.source("vae") == "hub me/mnist-vae@abc123" and store.folder("vae") == weights / "vae"
    assert store.source("aae") == f"hub vae-family/mnist-aae@{PIN}"
    assert type(store.get("vae")).__name__ == "VAE"

    # a model without a pin is never fetched at "main" (whatever was pushed last): the banner says it is unpinned
    fake.calls.clear()
    unpinned = {name: {"revision": None} for name in checkpoint_names()}
    store = ModelStore(tmp_path / "bundled", hub=True, revisions=unpinned)
    assert not fake.calls and "No pinned Hub revision" in store.notice and store.source("vae") == "bundled"


def test_hub_mode_falls_back_per_model_or_entirely(monkeypatch, tmp_path):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    weights = make_tiny_weights(tmp_path / "hub")
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    missing = FakeHub(lambda repo_id: repo_not_found(repo_id) if repo_id.endswith("-vae") else weights / "ae")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", missing)
    store = ModelStore(bundled, hub=True, revisions=pinned_everywhere())
    assert "Some models could not be downloaded" in store.notice and "vae (RepositoryNotFoundError)" in store.notice
    assert store.source("vae") == "bundled" and store.folder("vae") == bundled / "vae"
    assert store.source("ae").startswith("hub ")
    assert store.source("classifier").startswith("hub ") and store.source("avb-2d").startswith("hub ")  # went on

    for error, reason in ((LocalEntryNotFoundError("no connection"), "(no connection)"),
                          (ConnectionError("refused\nmore"), "(ConnectionError: refused)"),
                          (ConnectionError(), "(ConnectionError: )")):
        offline = FakeHub(lambda repo_id, error=error: error)
        monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
        store = ModelStore(bundled, hub=True, revisions=pinned_everywhere())
        assert len(offline.calls) == 1  # the first failure marks the Hub unreachable: no more attempts
        assert "could not be reached" in store.notice and "`bundled/`" in store.notice
        assert reason in store.notice  # the reason is shown (its first line)
        assert all(store.source(name) == "bundled" for name in ("vae", "ae", "classifier"))


def test_hub_revision_overrides_from_inline_json_file_or_environment(monkeypatch, tmp_path):
    from demo.weights import REVISIONS_ENV, hub_revisions

    pinned = {"repo_id": "me/mnist-vae", "revision": "0123abc"}
    assert hub_revisions(' \n{"vae": %s}' % json.dumps(pinned))["vae"] == pinned  # inline JSON, leading blanks
    path = tmp_path / "pins.json"
    path.write_text(json.dumps({"vae": pinned}), encoding="utf-8")
    monkeypatch.setenv(REVISIONS_ENV, str(path))
    table = hub_revisions()
    assert table["vae"] == pinned and table["ae"] == {"repo_id": "vae-family/mnist-ae", "revision": None}  # unpinned
    assert hub_revisions({"ae": {"revision": "v2"}})["vae"]["revision"] is None  # an argument beats the variable
    for bad in ({"vae": {"repo": "typo"}}, {"vae": "main"}, {"vqvae": {"revision": "x"}}):
        with pytest.raises(ValueError, match="bad hub revision entry"):
            hub_revisions(bad)


def test_missing_message_lists_only_what_is_unavailable(store, tmp_path):
    assert store.missing_message(["vae", "dvae", "classifier"]) == ""
    partial = ModelStore(make_tiny_weights(tmp_path / "w", skip=("vae", "cvae")), hub=False)
    message = partial.missing_message(["vae", "dvae", "cvae"])
    assert message.startswith("**Unavailable here** (the rest of the tab works):\n- ")
    assert "'vae'" in message and "'cvae'" in message and "'dvae'" not in message and message.count("\n- ") == 2


def test_hub_notice_names_every_missing_repo(monkeypatch, tmp_path):
    import huggingface_hub

    weights = make_tiny_weights(tmp_path / "hub")
    fake = FakeHub(lambda repo_id: repo_not_found(repo_id) if repo_id.endswith(("-vae", "-ae")) else weights / "ae")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    store = ModelStore(tmp_path / "bundled", hub=True, revisions=pinned_everywhere())
    assert store.notice == ("**Some models could not be downloaded from the Hub**: ae (RepositoryNotFoundError), "
                            "vae (RepositoryNotFoundError); using the bundled weights for those.")


def test_hub_mode_switch(monkeypatch):
    """--hub / --no flag wins; else VAE_FAMILY_HUB (1/true/yes/on, any case and blanks); else on a Space (SPACE_ID)."""
    from demo.weights import HUB_ENV, hub_requested

    monkeypatch.delenv(HUB_ENV, raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert hub_requested(True) is True and hub_requested(False) is False and hub_requested() is False
    monkeypatch.setenv("SPACE_ID", "org/space")
    assert hub_requested() is True and hub_requested(False) is False
    for value, expected in (("1", True), (" TRUE ", True), ("Yes", True), ("on", True), ("0", False),
                            ("false", False), ("off", False), ("", False)):
        monkeypatch.setenv(HUB_ENV, value)
        assert hub_requested() is expected, value  # the variable beats SPACE_ID

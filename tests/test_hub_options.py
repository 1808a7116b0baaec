"""The Hub download options of `HubModel._from_pretrained` (and `load_model`), one behaviour per test, with the real
huggingface_hub client over real HTTP against the loopback Hub (tests/hub_server.py).

These run the client in this process, unlike tests/test_hub.py: the mutation run (tests/mutation/) can only see code
reached in-process. `hub` points the client at the loopback server the way `HF_ENDPOINT` would at import time (the
two module constants that setting becomes), with its cache and token file under the test's tmp_path and no token in
the environment.
"""

import pickle

import pytest
import torch
from huggingface_hub import constants
from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

import vae_models
from vae_models import VAE, load_model
from tests.hub_server import start_hub_server

TINY = dict(hidden_dims=[8], latent_dim=2)


@pytest.fixture
def hub_with_token(monkeypatch, tmp_path):
    """`hub_with_token(token=None) -> HubServer`: a loopback Hub that this process's huggingface_hub talks to."""
    servers = []

    def start(token=None):
        server = start_hub_server(token)
        servers.append(server)
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        resolve_url = server.url + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", resolve_url)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "default_cache"))
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_token_file"))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def hub(hub_with_token):
    return hub_with_token()


def tiny_vae(seed: int) -> VAE:
    torch.manual_seed(seed)
    return vae_models.build_model("vae", **TINY).eval()


def publish(server, repo_id: str, model, folder, extra: dict[str, bytes] | None = None) -> str:
    """Commit model's config.json and model.safetensors (and `extra` files) to repo_id's main; the last commit's sha."""
    model.save_pretrained(folder)
    if ("model", repo_id) not in server.repos:
        server.create_repo(repo_id)
    files = {name: (folder / name).read_bytes() for name in ("config.json", "model.safetensors")} | (extra or {})
    return [server.put_file(repo_id, name, data) for name, data in files.items()][-1].sha


def assert_same_weights(loaded, expected) -> None:
    got, want = loaded.state_dict(), expected.state_dict()
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0, msg=key)


def resolved(server, method: str | None = None) -> list[str]:
    """The file paths (after /resolve/REV/) that the client asked for, in order."""
    return [path.split("/resolve/", 1)[1].split("/", 1)[1] for path in server.requested(method) if "/resolve/" in path]


def test_a_pinned_revision_loads_that_revisions_weights_not_mains(hub, tmp_path):
    first, second = tiny_vae(0), tiny_vae(1)
    pinned = publish(hub, "org/m", first, tmp_path / "v0")
    publish(hub, "org/m", second, tmp_path / "v1")  # main moves on; config.json is unchanged, only the weights differ
    assert_same_weights(load_model("org/m", revision=pinned), first)
    assert_same_weights(VAE.from_pretrained("org/m", revision=pinned), first)
    assert_same_weights(load_model("org/m"), second)


def test_only_the_config_and_the_safetensors_are_fetched_never_a_pickle(hub, tmp_path):
    """A repo that also holds the pickled weights the mixin would fall back to, and code: neither is requested."""
    model = tiny_vae(0)
    pickled = pickle.dumps({k: v.numpy() for k, v in model.state_dict().items()})
    publish(hub, "org/m", model, tmp_path / "v0",
            extra={"pytorch_model.bin": pickled, "model.pkl": pickled, "modeling.py": b"print('never run')\n"})
    assert_same_weights(load_model("org/m"), model)
    assert set(resolved(hub)) == {"config.json", "model.safetensors"}


def test_cache_dir_receives_the_downloads_and_the_default_cache_none(hub, tmp_path):
    publish(hub, "org/m", tiny_vae(0), tmp_path / "v0")
    VAE.from_pretrained("org/m", cache_dir=tmp_path / "mine")
    assert sorted(p.name for p in (tmp_path / "mine").rglob("*") if p.is_file() and "snapshots" in p.parts) == [
        "config.json", "model.safetensors"]
    default = tmp_path / "default_cache"
    assert not default.exists() or not [p for p in default.rglob("*") if p.is_file()]


def test_local_files_only_loads_the_cached_revision_without_asking_the_hub(hub, tmp_path):
    first = tiny_vae(0)
    publish(hub, "org/m", first, tmp_path / "v0")
    load_model("org/m")  # fills the cache with main = first
    publish(hub, "org/m", tiny_vae(1), tmp_path / "v1")  # main moves on, on the Hub only
    hub.requests.clear()
    assert_same_weights(load_model("org/m", local_files_only=True), first)
    assert_same_weights(VAE.from_pretrained("org/m", local_files_only=True), first)
    assert hub.requests == []


def test_local_files_only_with_an_empty_cache_raises_without_a_request(hub, tmp_path):
    publish(hub, "org/m", tiny_vae(0), tmp_path / "v0")
    with pytest.raises(LocalEntryNotFoundError, match="outgoing traffic has been disabled"):
        load_model("org/m", local_files_only=True)
    assert hub.requests == []


def test_force_download_fetches_the_weights_again(hub, tmp_path):
    publish(hub, "org/m", tiny_vae(0), tmp_path / "v0")
    VAE.from_pretrained("org/m")
    assert resolved(hub, "GET") == ["config.json", "model.safetensors"]
    hub.requests.clear()
    VAE.from_pretrained("org/m")  # cached: the client only checks the ETags
    assert resolved(hub, "GET") == []
    VAE.from_pretrained("org/m", force_download=True)
    assert resolved(hub, "GET").count("model.safetensors") == 1


def test_the_token_given_is_sent_for_every_file_of_a_private_repo(hub_with_token, tmp_path):
    server = hub_with_token(token="hf_the_right_one")
    model = tiny_vae(0)
    model.save_pretrained(tmp_path / "v0")
    server.create_repo("org/private", private=True)
    for name in ("config.json", "model.safetensors"):
        server.put_file("org/private", name, (tmp_path / "v0" / name).read_bytes())
    with pytest.raises(RepositoryNotFoundError):
        load_model("org/private")  # no token in the environment or on disk
    server.requests.clear(), server.authorizations.clear()
    assert_same_weights(VAE.from_pretrained("org/private", token="hf_the_right_one"), model)
    assert set(resolved(server)) == {"config.json", "model.safetensors"}
    assert set(server.authorizations) == {"Bearer hf_the_right_one"}


def test_map_location_is_where_the_loaded_model_lives(tmp_path):
    """The model is built on the CPU, filled from the file, then moved; "meta" stands for any other device here."""
    tiny_vae(0).save_pretrained(tmp_path)
    assert {p.device.type for p in VAE.from_pretrained(tmp_path, map_location="meta").parameters()} == {"meta"}
    assert {p.device.type for p in VAE.from_pretrained(tmp_path).parameters()} == {"cpu"}

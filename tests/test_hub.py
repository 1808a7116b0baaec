"""Hub round trips with the real huggingface_hub client over real HTTP, against the loopback Hub (hub_server.py).

The client runs in subprocesses (`hub_run`) because HF_ENDPOINT is read when huggingface_hub is imported; each
subprocess batches several checks to pay the torch import once.
"""

import json
import urllib.error
import urllib.request

from safetensors.torch import load_file, save

import vae_models
from tests.hub_server import run_with_hub

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
TINY = dict(hidden_dims=[32], latent_dim=4)

# Shared by the subprocesses: a fixed input, and "same model" = identical state dicts and identical outputs on it.
PRELUDE = r'''
import json, os, time
from pathlib import Path
import torch
import vae_models
out = Path(os.environ["OUT"])
x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))

def outputs(model):
    with torch.no_grad():
        enc = model.encode(x)
        return torch.cat([enc.mean.flatten(), enc.logvar.flatten(), model.reconstruct(x).flatten()])

def same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa) and torch.equal(outputs(a), outputs(b))

def tiny_vae(seed):
    torch.manual_seed(seed)
    return vae_models.build_model("vae", hidden_dims=[32], latent_dim=4).eval()

def outcome(load):
    """'ok' or 'ErrorType: message' (one line), so the parent can assert on how a load failed."""
    try:
        load()
        return "ok"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".replace(chr(10), " ")
'''


def assert_no_pickle_requested(hub_server):
    pickles = [p for p in hub_server.requested() if p.endswith(PICKLE_SUFFIXES)]
    assert not pickles, f"the client asked for pickle files: {pickles}"


def test_push_download_load_and_pin_revisions(hub_server, hub_run, tmp_path):
    code = PRELUDE + r'''
from huggingface_hub import snapshot_download
from vae_models import VAE, load_model

first, second = tiny_vae(0), tiny_vae(1)
shas = []
for i, model in enumerate((first, second)):
    model.save_pretrained(out / f"local{i}")
    shas.append(model.push_to_hub("org/tiny-vae", commit_message=f"version {i}").oid)

snapshot = snapshot_download("org/tiny-vae", revision=shas[0], cache_dir=out / "fresh_cache")
assert same(load_model(snapshot), first), "load_model(snapshot folder) differs from the pushed model"
assert same(load_model("org/tiny-vae", revision=shas[0]), first), "pinning the first commit must give version 0"
assert same(VAE.from_pretrained("org/tiny-vae", revision=shas[0]), first)
assert same(load_model("org/tiny-vae"), second), "main must give the latest push"
assert same(VAE.from_pretrained("org/tiny-vae", revision="main"), second)
assert not same(first, second)
print(json.dumps({"shas": shas, "snapshot": snapshot}))
'''
    result = json.loads(hub_run(code, OUT=str(tmp_path)).stdout.splitlines()[-1])
    shas = result["shas"]
    assert all(len(sha) == 40 and int(sha, 16) >= 0 for sha in shas) and shas[0] != shas[1]

    # Each push is ONE commit: the first adds the whole checkpoint; the second (same config and card) only
    # changes the weights, because preupload reports the remote blob ids and the client skips unchanged files.
    initial, push1, push2 = hub_server.commits("org/tiny-vae")
    assert (push1.sha, push2.sha) == tuple(shas) and push2.parent == push1.sha and push1.parent == initial.sha
    assert push1.changed == ["README.md", "config.json", "model.safetensors"] and push1.summary == "version 0"
    assert push2.changed == ["model.safetensors"]
    assert len([p for p in hub_server.requested("POST") if "/commit/" in p]) == 2

    # What the server stores and what snapshot_download wrote are byte-for-byte the local save_pretrained files.
    local = tmp_path / "local0"
    for name in ("config.json", "model.safetensors", "README.md"):
        assert hub_server.file("org/tiny-vae", name, revision=shas[0]) == (local / name).read_bytes()
    downloaded = load_file(f"{result['snapshot']}/model.safetensors")
    expected = load_file(local / "model.safetensors")
    assert downloaded.keys() == expected.keys() and all((downloaded[k] == expected[k]).all() for k in expected)
    assert hub_server.file("org/tiny-vae", "model.safetensors") == (tmp_path / "local1/model.safetensors").read_bytes()
    assert_no_pickle_requested(hub_server)


def test_push_to_branch_and_private_repo(hub_server, hub_run, tmp_path):
    code = PRELUDE + r'''
from huggingface_hub import HfApi
from vae_models import load_model

main_model, dev_model = tiny_vae(0), tiny_vae(1)
main_sha = main_model.push_to_hub("org/branchy").oid
HfApi().create_branch("org/branchy", branch="dev")
dev_sha = dev_model.push_to_hub("org/branchy", branch="dev", commit_message="dev weights").oid
assert same(load_model("org/branchy", revision="dev"), dev_model)
assert same(load_model("org/branchy"), main_model), "a push to a branch must leave main alone"
HfApi().delete_file("README.md", "org/branchy", revision="dev")

main_model.push_to_hub("org/secret", private=True)
print(json.dumps({
    "main_sha": main_sha, "dev_sha": dev_sha,
    "secret_with_token": outcome(lambda: load_model("org/secret")),
    "secret_without_token": outcome(lambda: load_model("org/secret", token=False, cache_dir=str(out / "anon"))),
}))
'''
    result = json.loads(hub_run(code, OUT=str(tmp_path)).stdout.splitlines()[-1])
    repo = hub_server.repos[("model", "org/branchy")]
    assert repo.branches["main"] == result["main_sha"]
    *_, dev_push, deletion = hub_server.commits("org/branchy")
    assert dev_push.sha == result["dev_sha"] and dev_push.parent == result["main_sha"]  # dev branched off main
    assert repo.branches["dev"] == deletion.sha and deletion.deleted == ["README.md"]
    assert "README.md" not in deletion.files and "README.md" in hub_server.commits("org/branchy")[1].files
    assert ("POST", "/api/models/org/branchy/branch/dev") in hub_server.requests
    assert hub_server.repos[("model", "org/secret")].private
    assert result["secret_with_token"] == "ok"
    assert result["secret_without_token"].startswith("RepositoryNotFoundError")
    assert_no_pickle_requested(hub_server)


def test_bad_repos_revisions_and_tampered_weights_raise(hub_server, hub_run, tmp_path):
    # Put checkpoints on the server directly (as a careless or malicious uploader would), then load them.
    model = vae_models.build_model("vae", **TINY)
    model.save_pretrained(tmp_path / "good")
    config = (tmp_path / "good/config.json").read_bytes()
    weights = (tmp_path / "good/model.safetensors").read_bytes()
    header_len = int.from_bytes(weights[:8], "little")
    flipped = weights[:8] + bytes(b ^ 0xFF for b in weights[8:40]) + weights[40:]  # corrupt the JSON header
    tensors = load_file(tmp_path / "good/model.safetensors")
    renamed = save({("renamed." + k if i == 0 else k): v for i, (k, v) in enumerate(tensors.items())})
    variants = {
        "org/good": weights,
        "org/flipped-header": flipped,
        "org/truncated": weights[: 8 + header_len + 100],
        "org/renamed-key": renamed,
        "org/no-weights": None,
    }
    for repo_id, data in variants.items():
        hub_server.create_repo(repo_id)
        hub_server.put_file(repo_id, "config.json", config)
        if data is not None:
            hub_server.put_file(repo_id, "model.safetensors", data)

    code = PRELUDE + r'''
from vae_models import load_model
names = ["org/good", "org/flipped-header", "org/truncated", "org/renamed-key", "org/no-weights", "org/missing"]
result = {name: outcome(lambda: load_model(name)) for name in names}
result["bad revision"] = outcome(lambda: load_model("org/good", revision="0" * 40))
result["bad branch"] = outcome(lambda: load_model("org/good", revision="no-such-branch"))
print(json.dumps(result))
'''
    result = json.loads(hub_run(code, OUT=str(tmp_path)).stdout.splitlines()[-1])
    assert result["org/good"] == "ok"
    for name in ("org/flipped-header", "org/truncated", "org/renamed-key"):
        assert result[name].startswith("CheckpointError"), (name, result[name])
    assert "renamed." in result["org/renamed-key"]  # the message names the offending key
    assert "EntryNotFoundError" in result["org/no-weights"].split(":")[0], result["org/no-weights"]
    assert result["org/missing"].startswith("RepositoryNotFoundError"), result["org/missing"]
    assert result["bad revision"].startswith("RevisionNotFoundError"), result["bad revision"]
    assert result["bad branch"].startswith("RevisionNotFoundError"), result["bad branch"]
    assert_no_pickle_requested(hub_server)  # in particular no fallback to pytorch_model.bin for org/no-weights


def test_unreachable_hub_fails_clearly(tmp_path, refused_url):
    """Nothing cached + connection refused: huggingface_hub retries the HEAD with backoff (1+2+4+8+8 s, not
    configurable) and then raises LocalEntryNotFoundError naming the connection problem."""
    code = PRELUDE + r'''
print(json.dumps({"error": outcome(lambda: vae_models.load_model("org/anything"))}))
'''
    result = json.loads(run_with_hub(code, refused_url, tmp_path, OUT=str(tmp_path), timeout=120).stdout.splitlines()[-1])
    assert result["error"].startswith("LocalEntryNotFoundError") and "connection" in result["error"], result


def test_server_speaks_the_hub_error_protocol(hub_server):
    """The server itself, without the client: status codes and X-Error-Code values the client maps to errors."""
    hub_server.create_repo("org/r")
    hub_server.put_file("org/r", "sub/dir/a.txt", b"hello")

    def request(method, path):
        try:
            with urllib.request.urlopen(urllib.request.Request(hub_server.url + path, method=method)) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    sha = hub_server.commits("org/r")[-1].sha
    status, headers, body = request("GET", "/org/r/resolve/main/sub/dir/a.txt")
    assert (status, body, headers["X-Repo-Commit"]) == (200, b"hello", sha)
    assert headers["ETag"] == '"b6fc4c620b67d95f953a5c1c1230aaab5db5a1b0"'  # `git hash-object` of "hello"
    status, headers, body = request("HEAD", "/org/r/resolve/main/sub/dir/a.txt")
    assert (status, headers["Content-Length"], body) == (200, "5", b"")
    assert request("HEAD", "/org/r/resolve/main/nope.txt")[1]["X-Error-Code"] == "EntryNotFound"
    assert request("HEAD", "/org/r/resolve/nope/sub/dir/a.txt")[1]["X-Error-Code"] == "RevisionNotFound"
    assert request("GET", "/api/models/org/none/revision/main")[:2][0] == 404
    assert request("GET", "/api/models/org/none/revision/main")[1]["X-Error-Code"] == "RepoNotFound"
    status, _, body = request("GET", f"/api/models/org/r/tree/{sha}")
    assert [(e["type"], e["path"]) for e in json.loads(body)] == [("directory", "sub"), ("file", ".gitattributes")]
    status, _, body = request("GET", "/api/models/org/r/tree/main/sub?recursive=true")
    assert [(e["type"], e["path"]) for e in json.loads(body)] == [("directory", "sub/dir"), ("file", "sub/dir/a.txt")]
    assert json.loads(request("GET", "/api/models/org/r/revision/main")[2])["sha"] == sha

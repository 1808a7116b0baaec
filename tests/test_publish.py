"""`python -m train.publish` against the loopback Hub (tests/hub_server.py), end to end: every bundled export to its
model repo in one commit, the pins file, the Space; a re-run pushes nothing, a changed export only itself; then the
Space's own files, started as on a Space (SPACE_ID, Hub mode from the written pins, a fresh HF cache, no pretrained/
folder), answer every endpoint exactly as the app on the bundled weights does. And the refusals: no token, no
permission, a read-only token, a taken name, a dry run that changes nothing."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from demo.tiny_weights import make_tiny_weights
from .hub_server import hub_env, start_hub_server

REPO_ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = REPO_ROOT / "pretrained"
ORG = "vae-lab"
WRITER, READER, OUTSIDER = "hf_alice_write", "hf_alice_read", "hf_bob_write"
USERS = {WRITER: {"name": "alice", "orgs": [ORG], "role": "write"},
         READER: {"name": "alice", "orgs": [ORG], "role": "read"},
         OUTSIDER: {"name": "bob", "orgs": [], "role": "write"}}


def publish(hub, tmp: Path, *args: str, token: str | None = WRITER) -> subprocess.CompletedProcess:
    env = hub_env(hub.url, tmp, HF_TOKEN=token or "")
    return subprocess.run([sys.executable, "-m", "train.publish", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def heads(hub) -> dict[tuple[str, str], str]:
    return {key: repo.branches["main"] for key, repo in hub.repos.items()}


@pytest.fixture
def hub():
    server = start_hub_server(users=USERS)
    yield server
    server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listens_on_all_interfaces(port: int) -> bool:
    """Whether a socket listens on 0.0.0.0:port (IPv4 table of the kernel; state 0A is LISTEN)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A" and local == f"00000000:{port:04X}":
            return True
    return False


# (api_name, args) with the UI's default inputs, one call per endpoint
def endpoint_calls():
    from demo.common import example_choices

    zero, six = example_choices()[0], example_choices()[13]
    return [("/sample", ("vae", 36, 1.0, 0)), ("/interpolate", (None, None, zero, None, None, six, 10)),
            ("/manifold", ("aae-2d-mixture", 15)), ("/cvae_samples", (3, 0, 16)),
            ("/same_style", (None, None, zero, "predicted by the classifier")),
            ("/complete_quadrants", (None, None, zero, 2, 8, 0)),
            ("/denoise", (None, None, zero, "salt_and_pepper", 0.3, 0)), ("/latent_scatter", (2000, 0)),
            ("/prior_samples", (25, 0)), ("/prior_metrics", ())]


def outputs(client, api_name, args) -> list:
    """An endpoint's outputs with images as pixel arrays (their file names differ between servers)."""
    result = client.predict(*args, api_name=api_name)
    result = list(result) if isinstance(result, (list, tuple)) else [result]
    return [np.asarray(Image.open(r)) if isinstance(r, str) and os.path.isfile(r) else r for r in result]


def test_publish_then_the_space_serves_exactly_what_the_bundled_weights_serve(hub, tmp_path):
    pretrained = tmp_path / "pretrained"  # a copy, so one export can be changed below
    shutil.copytree(PRETRAINED, pretrained, ignore=shutil.ignore_patterns("*.sh"))
    pins_file = tmp_path / "pins.json"
    args = ["--org", ORG, "--pretrained", str(pretrained), "--pins-file", str(pins_file)]
    first = publish(hub, tmp_path, *args)
    assert first.returncode == 0, first.stderr[-3000:]

    names = sorted(p.name for p in pretrained.iterdir())
    space = ("space", f"{ORG}/vae-family")
    assert set(hub.repos) == {("model", f"{ORG}/mnist-{n}") for n in names} | {space}
    pins = json.loads(pins_file.read_text())
    for name in names:
        commits = hub.commits(f"{ORG}/mnist-{name}")
        assert len(commits) == 2  # the Hub's initial commit + exactly one upload
        assert pins[name] == {"repo_id": f"{ORG}/mnist-{name}", "revision": commits[-1].sha}
        files = commits[-1].files
        assert files["model.safetensors"] == (pretrained / name / "model.safetensors").read_bytes()
        card = files["README.md"].decode()
        assert f'load_model("{ORG}/mnist-{name}")' in card and "model-index" in card  # eval results -> model-index
    assert "test_codes.safetensors" in hub.commits(f"{ORG}/mnist-vae-2d")[-1].files

    space_files = hub.commits(space[1], "space")[-1].files
    assert {"app.py", "requirements.txt", "README.md", "demo/hub_revisions.json", "demo/weights.py",
            "vae_models/base.py", "demo/assets/test_digits.png", "recipes/vae-2d.json"} <= set(space_files)
    assert not [p for p in space_files if p.endswith(".safetensors") or p.startswith(("pretrained/", "tests/"))]
    assert json.loads(space_files["demo/hub_revisions.json"]) == pins
    front = space_files["README.md"].decode().split("---")[1]
    assert "sdk: gradio" in front and f"{ORG}/mnist-vae" in front and hub.repos[space].sdk == "gradio"

    # again: nothing changed, so no commit anywhere and the same pins
    before = heads(hub)
    again = publish(hub, tmp_path, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert heads(hub) == before and json.loads(pins_file.read_text()) == pins
    assert "up to date" in again.stdout and "none (up to date)" in again.stdout

    # one export changes: one commit on its repo (only that file) and one on the Space (its pins)
    results = json.loads((pretrained / "ae" / "eval_results.json").read_text())
    results[0]["value"] = results[0]["value"] + 1
    (pretrained / "ae" / "eval_results.json").write_text(json.dumps(results))
    third = publish(hub, tmp_path, *args)
    assert third.returncode == 0, third.stderr[-3000:]
    changed = {key for key, sha in heads(hub).items() if before[key] != sha}
    assert changed == {("model", f"{ORG}/mnist-ae"), space}
    assert set(hub.commits(f"{ORG}/mnist-ae")[-1].changed) == {"eval_results.json", "README.md"}
    new_pins = json.loads(pins_file.read_text())
    assert {n for n in names if new_pins[n] != pins[n]} == {"ae"}
    assert set(hub.commits(space[1], "space")[-1].changed) == {"demo/hub_revisions.json"}

    # the Space as the Hub runs it: its files only, SPACE_ID set, a fresh HF cache, weights from the pinned repos
    # (the bundled-weights check below uses the original pretrained/, so ae's eval change does not matter there)
    space_dir = tmp_path / "space"
    for path, data in hub.commits(space[1], "space")[-1].files.items():
        (space_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (space_dir / path).write_bytes(data)
    port = free_port()
    # What the Space runtime sets: SYSTEM and SPACE_ID, and for `hf_oauth: true` (the live tab's sign-in) the OAuth
    # client settings (only read at a sign-in). Server-side rendering needs Node.js, which this machine lacks.
    oauth = {"OAUTH_CLIENT_ID": "test-client", "OAUTH_CLIENT_SECRET": "test-secret", "OAUTH_SCOPES": "openid profile",
             "OPENID_PROVIDER_URL": hub.url}
    env = {**hub_env(hub.url, tmp_path, HF_HOME=str(tmp_path / "fresh_hf_home"), SPACE_ID=space[1], SYSTEM="spaces",
                     GRADIO_SERVER_PORT=str(port), GRADIO_TEMP_DIR=str(tmp_path / "gradio_space"),
                     GRADIO_SSR_MODE="false", **oauth),
           "PYTHONPATH": "", "HF_TOKEN": ""}  # import only what the Space holds; public repos need no token
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=space_dir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    from gradio_client import Client

    from demo import build_app

    bundled = build_app(weights_dir=PRETRAINED, hub=False)
    try:
        _, bundled_url, _ = bundled.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
        space_url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            try:
                with urllib.request.urlopen(space_url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "the Space served no page in 120 s"
                time.sleep(0.2)
        assert listens_on_all_interfaces(port)
        with urllib.request.urlopen(space_url + "config", timeout=10) as response:
            config = json.loads(response.read())
        assert not [c for c in config["components"] if c.get("props", {}).get("elem_id") == "weights-notice"]
        downloaded = {p.parts[-1] for p in (tmp_path / "fresh_hf_home" / "hub").iterdir()}
        assert {f"models--{ORG}--mnist-{n}" for n in names} <= downloaded
        space_client, bundled_client = Client(space_url, verbose=False), Client(bundled_url, verbose=False)
        for api_name, call in endpoint_calls():
            got, want = outputs(space_client, api_name, call), outputs(bundled_client, api_name, call)
            assert len(got) == len(want), api_name
            for g, w in zip(got, want):
                if isinstance(w, np.ndarray):
                    assert isinstance(g, np.ndarray) and np.array_equal(g, w), api_name
                else:
                    assert g == w, api_name
    finally:
        bundled.close()
        proc.terminate()
        proc.wait(timeout=20)


def small_exports(tmp: Path, names=("vae", "ae")) -> Path:
    tiny = make_tiny_weights(tmp / "tiny")
    root = tmp / "exports"
    for name in names:
        shutil.copytree(tiny / name, root / name)
    return root


def test_refusals_are_clear_and_change_nothing(hub, tmp_path):
    exports = small_exports(tmp_path)
    pins_file = tmp_path / "pins.json"
    args = ["--org", ORG, "--pretrained", str(exports), "--pins-file", str(pins_file)]

    no_token = publish(hub, tmp_path, *args, token=None)
    assert no_token.returncode == 1 and "error: no Hugging Face token" in no_token.stderr
    outsider = publish(hub, tmp_path, *args, token=OUTSIDER)
    assert outsider.returncode == 1 and f"no permission: the token of bob cannot write to '{ORG}'" in outsider.stderr
    reader = publish(hub, tmp_path, *args, token=READER)
    assert reader.returncode == 1 and "read-only" in reader.stderr
    assert not hub.repos and not pins_file.exists()

    dry = publish(hub, tmp_path, *args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"model {ORG}/mnist-vae: new repo" in dry.stdout and f"space {ORG}/vae-family: new repo" in dry.stdout
    assert not hub.repos and not pins_file.exists()

    hub.create_repo(f"{ORG}/mnist-vae")  # taken: an unrelated model under the name of the last export
    hub.put_file(f"{ORG}/mnist-vae", "config.json", json.dumps({"model_type": "bert"}).encode())
    taken = publish(hub, tmp_path, *args)
    assert taken.returncode == 1 and f"the name {ORG}/mnist-vae is taken" in taken.stderr and "'bert'" in taken.stderr
    assert len(hub.commits(f"{ORG}/mnist-vae")) == 2 and not pins_file.exists()
    assert ("model", f"{ORG}/mnist-ae") not in hub.repos  # checked before anything was pushed

    other = tmp_path / "other"
    shutil.copytree(exports / "vae", other / "vae")
    hub.create_repo(f"{ORG}/demo", repo_type="space")  # taken: a Space that is not this app
    hub.put_file(f"{ORG}/demo", "README.md", b"---\nsdk: docker\n---\n", repo_type="space")
    space_taken = publish(hub, tmp_path, "--org", ORG, "--space", f"{ORG}/demo", "--pretrained", str(other),
                          "--pins-file", str(pins_file))
    assert space_taken.returncode == 1 and f"the name {ORG}/demo is taken" in space_taken.stderr
    assert len(hub.commits(f"{ORG}/demo", "space")) == 2 and len(hub.commits(f"{ORG}/mnist-vae")) == 2


def test_a_rerun_on_unchanged_exports_reports_nothing_changed_and_uploads_nothing(hub, tmp_path):
    """The second run compares each file with the remote's and finds them all equal: every repo is reported up to
    date, and the Hub gets no write request at all (no repo creation, no pre-upload of file contents, no commit),
    so nothing is uploaded even for the huggingface_hub client to drop as unchanged."""
    exports = small_exports(tmp_path)
    pins_file = tmp_path / "pins.json"
    args = ["--org", ORG, "--pretrained", str(exports), "--pins-file", str(pins_file)]
    first = publish(hub, tmp_path, *args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "file(s) to upload" in first.stdout and hub.requested("POST")  # the first run did upload
    hub.requests.clear()
    again = publish(hub, tmp_path, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    reported = [line for line in again.stdout.splitlines() if line.startswith(("model ", "space "))]
    assert sorted(line.split(":")[0] for line in reported) == [
        f"model {ORG}/mnist-ae", f"model {ORG}/mnist-vae", f"space {ORG}/vae-family"]
    assert all(": up to date at " in line for line in reported), reported
    assert again.stdout.strip().endswith("published 0 commit(s): none (up to date)")
    assert hub.requested("POST") == []  # neither pre-upload nor commit requests: no file content left this machine


def test_the_app_reads_its_pins_from_the_file_publish_writes(tmp_path, monkeypatch):
    from demo import weights
    from train.publish import DEFAULT_PINS

    assert DEFAULT_PINS == weights.REVISIONS_FILE
    pins = tmp_path / "hub_revisions.json"
    pins.write_text(json.dumps({"vae": {"repo_id": f"{ORG}/mnist-vae", "revision": "b" * 40},
                                "some-future-model": {"repo_id": f"{ORG}/mnist-x", "revision": "c" * 40}}))
    monkeypatch.setattr(weights, "REVISIONS_FILE", pins)
    monkeypatch.delenv(weights.REVISIONS_ENV, raising=False)
    table = weights.hub_revisions()
    assert table["vae"] == {"repo_id": f"{ORG}/mnist-vae", "revision": "b" * 40}
    assert table["ae"]["revision"] is None and "some-future-model" not in table  # unpinned is never "main"
    assert weights.hub_revisions({"ae": {"revision": "d" * 40}})["ae"]["revision"] == "d" * 40

    # hub mode without pins downloads nothing (no request is made) and says why in the banner
    monkeypatch.setattr(weights, "REVISIONS_FILE", tmp_path / "absent.json")
    store = weights.ModelStore(make_tiny_weights(tmp_path / "bundled"), hub=True)
    assert "No pinned Hub revision" in store.notice and store.source("vae") == "bundled"

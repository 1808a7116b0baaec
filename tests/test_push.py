"""Publishing: train a tiny model, push it to a loopback Hub (tests/hub_server.py) in one commit, download it into a
fresh cache and load it back bit for bit; the card's model-index; branches; an unreachable Hub."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .hub_server import hub_env
from tests.paths import MNIST_DIR

REPO = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, "-m", "train", "--model", "vae", "--set", "hidden_dims=[32]", "--set", "latent_dim=2",
         "--batch-size", "32", "--max-steps", "3", "--checkpoint-every", "0", "--data-dir", str(MNIST_DIR)]
EXPORT_FILES = {"model.safetensors", "config.json", "README.md", "samples.png", "training_args.json"}
EVAL_RESULTS = [{"name": "Test NLL (IWAE, k=5000)", "type": "nll", "value": 99.5, "dataset": "mnist",
                 "split": "test", "estimator": "iwae-5000", "command": "python -m train.evaluate EXPORT --iwae 5000"}]

# Runs in a fresh process and HF cache: download the repo, load it with vae_models.load_model (from the snapshot
# folder and from the repo id) and compare every tensor and the decoded images with the local export.
CHECK_DOWNLOAD = """
import sys, torch
from huggingface_hub import snapshot_download
from vae_models import load_model
repo_id, revision, local = sys.argv[1], sys.argv[2], sys.argv[3]
snapshot = snapshot_download(repo_id, revision=revision)
mine = load_model(local)
for loaded in (load_model(snapshot), load_model(repo_id, revision=revision)):
    a, b = mine.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    z = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(mine.decode(z), loaded.decode(z))
print(snapshot)
"""


def run(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trained") / "export"
    env = hub_env("http://127.0.0.1:9", folder.parent)
    proc = run([*TRAIN, "--output-dir", str(folder.parent / "run"), "--save-pretrained", str(folder)], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder


def check_download(hub_server, tmp_path, repo_id: str, revision: str, local: Path) -> Path:
    env = hub_env(hub_server.url, tmp_path, HF_HOME=str(tmp_path / "fresh_hf_home"))
    proc = run([sys.executable, "-c", CHECK_DOWNLOAD, repo_id, revision, str(local)], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Path(proc.stdout.strip().splitlines()[-1])


def test_push_cli_one_commit_card_and_round_trip(export, hub_server, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(export, folder)
    (folder / "eval_results.json").write_text(json.dumps(EVAL_RESULTS))
    env = hub_env(hub_server.url, tmp_path)
    proc = run([sys.executable, "-m", "train.push", str(folder), "--repo-id", "team/vae-tiny"], env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    commits = hub_server.commits("team/vae-tiny")
    assert len(commits) == 2  # the Hub's initial commit, then the whole export as ONE commit
    assert set(commits[-1].changed) == EXPORT_FILES | {"eval_results.json"}
    card = hub_server.file("team/vae-tiny", "README.md").decode()
    assert "library_name: vae-family" in card and "license: mit" in card and "- mnist" in card
    assert "model-index:" in card and "value: 99.5" in card and "iwae-5000" in card
    assert 'load_model("team/vae-tiny")' in card and "python -m train.evaluate" in card
    assert "python -m train --model vae" in card and "![samples from the model](samples.png)" in card

    snapshot = check_download(hub_server, tmp_path, "team/vae-tiny", "main", export)
    assert digest(snapshot)["model.safetensors"] == digest(export)["model.safetensors"]


def test_trainer_pushes_to_a_new_branch_of_a_private_repo(hub_server, tmp_path):
    env = hub_env(hub_server.url, tmp_path)
    folder = tmp_path / "export"
    proc = run([*TRAIN, "--output-dir", str(tmp_path / "run"), "--save-pretrained", str(folder),
                "--push-to-hub", "team/vae-branch", "--revision", "dev", "--private"], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert hub_server.repos[("model", "team/vae-branch")].private
    main, dev = (hub_server._resolve(hub_server.repos[("model", "team/vae-branch")], rev) for rev in ("main", "dev"))
    assert set(main.files) == {".gitattributes"} and set(dev.files) == EXPORT_FILES | {".gitattributes"}
    check_download(hub_server, tmp_path, "team/vae-branch", "dev", folder)


def test_unreachable_hub_clear_error_export_intact(export, tmp_path):
    closed = "http://127.0.0.1:9"  # discard port: nothing listens there
    env = hub_env(closed, tmp_path)
    folder = tmp_path / "export"
    proc = run([*TRAIN, "--output-dir", str(tmp_path / "run"), "--save-pretrained", str(folder),
                "--push-to-hub", "team/vae-offline"], env)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "cannot reach the Hub" in errors[0] and closed in errors[0]
    assert EXPORT_FILES <= set(digest(folder))
    from vae_models import load_model

    load_model(str(folder))  # the local export is whole and loadable

    before = digest(export)  # the push CLI too: one line, nothing in the folder touched
    proc = run([sys.executable, "-m", "train.push", str(export), "--repo-id", "team/x", "--no-card"], env)
    assert proc.returncode == 1 and proc.stderr.count("error:") == 1 and "Traceback" not in proc.stderr
    assert digest(export) == before


def test_card_only_rewrites_the_card_with_the_model_index_and_pushes_nothing(export, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(export, folder)
    (folder / "eval_results.json").write_text(json.dumps(EVAL_RESULTS))
    env = hub_env("http://127.0.0.1:9", tmp_path)  # nothing listens there: a push would fail
    proc = run([sys.executable, "-m", "train.push", str(folder), "--repo-id", "org/vae-tiny", "--card-only"], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = (folder / "README.md").read_text()
    assert 'load_model("org/vae-tiny")' in card and "model-index" in card and "99.5" in card

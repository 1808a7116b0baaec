"""Promises the README makes that one-line bugs used to break silently: which binarisation training uses by default,
label-conditional sampling that actually follows the label (judged on the bundled weights), the denoising tab's
outputs in the right places, and Hub downloads restricted to safe file types."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from demo import common, denoising
from demo.weights import ALLOW_PATTERNS, ModelStore
from train.trainer import default_binarize
from vae_models import build_model, load_model
from vae_models.corruption import corrupt
from vae_models.data import make_loader
from vae_models.metrics import psnr

from demo.tiny_weights import make_tiny_weights

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"


@pytest.mark.parametrize("name,fields,expected", [
    ("vae", {}, "dynamic"), ("cvae", {}, "dynamic"), ("dvae", {}, "dynamic"), ("avb", {}, "dynamic"),
    ("aae", {}, "dynamic"), ("socvae", {}, "dynamic"), ("quadrant_nn", {}, "dynamic"), ("ae", {}, "dynamic"),
    ("vae", {"likelihood": "gaussian"}, "none"), ("vae", {"likelihood": "continuous_bernoulli"}, "none"),
    ("classifier", {"backbone": "conv", "hidden_dims": [4, 8], "latent_dim": 8}, "none"),
])
def test_default_binarisation(name, fields, expected):
    """README, Data: likelihood models train on dynamically binarised digits (the IWAE protocol); grey-level
    likelihoods and the classifier on grey levels."""
    assert default_binarize(build_model(name, **{"hidden_dims": [8], "latent_dim": 2, **fields})) == expected


def test_dynamic_binarisation_redraws_every_time_an_image_is_used():
    images = torch.full((64, 28, 28), 128, dtype=torch.uint8)  # every pixel is 1 with probability 128/255
    loader = make_loader(images, torch.zeros(64, dtype=torch.int64), batch_size=64, shuffle=False, binarize="dynamic")
    torch.manual_seed(0)
    first, second = (next(iter(loader))[0] for _ in range(2))
    assert set(first.unique().tolist()) == {0.0, 1.0} and not torch.equal(first, second)
    assert abs(first.mean().item() - 128 / 255) < 0.01
    fixed = make_loader(images, torch.zeros(64, dtype=torch.int64), batch_size=64, shuffle=False, binarize="fixed")
    assert torch.equal(next(iter(fixed))[0], next(iter(fixed))[0])
    assert make_loader(images, torch.zeros(64, dtype=torch.int64), batch_size=64).dataset.binarize == "dynamic"


def test_cvae_samples_follow_the_label_by_the_bundled_classifier():
    """sample(n, labels=y) on the bundled CVAE: the bundled classifier reads back y for nearly every sample, for
    every digit (the README reports 96.95 % over 10,000 samples; 20 per digit here)."""
    cvae, classifier = load_model(str(PRETRAINED / "cvae")), load_model(str(PRETRAINED / "classifier"))
    labels = torch.arange(10).repeat_interleave(20)
    images = cvae.sample(len(labels), labels=labels, generator=torch.Generator().manual_seed(0))
    predicted = classifier.predict(images)
    per_digit = (predicted == labels).float().view(10, 20).mean(1)
    assert per_digit.mean() > 0.9 and per_digit.min() >= 0.7, per_digit


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ModelStore(make_tiny_weights(tmp_path_factory.mktemp("weights")), hub=False)


def test_denoising_tab_shows_each_models_own_reconstruction(store):
    """The DVAE row and the DVAE image are the DVAE's (not the VAE's), each PSNR is of its own output."""
    clean_image, noisy_image, dvae_image, vae_image, table = denoising.denoise(
        store, None, None, common.example_choices()[0], "salt_and_pepper", 0.3, 0)
    x = common.read_digit(None, None, common.example_choices()[0])[0]
    noisy = corrupt(x, "salt_and_pepper", 0.3, generator=common.generator(0))
    with torch.no_grad():
        outputs = {name: store.get(name).reconstruct(noisy) for name in ("dvae", "vae")}
    expected = {name: np.asarray(common.to_image(out)) for name, out in outputs.items()}
    assert not np.array_equal(expected["dvae"], expected["vae"])  # the two tiny models differ, so a swap shows
    assert np.array_equal(np.asarray(dvae_image), expected["dvae"])
    assert np.array_equal(np.asarray(vae_image), expected["vae"])
    assert np.array_equal(np.asarray(noisy_image), np.asarray(common.to_image(noisy)))
    assert np.array_equal(np.asarray(clean_image), np.asarray(common.to_image(x)))
    rows = dict(line.strip("|").split(" | ") for line in table.splitlines()[4:])
    rows = {k.strip(): float(v.strip(" |")) for k, v in rows.items()}
    assert rows["DVAE"] == pytest.approx(float(psnr(outputs["dvae"], x)), abs=0.006)
    assert rows["plain VAE"] == pytest.approx(float(psnr(outputs["vae"], x)), abs=0.006)
    assert rows["corrupted input"] == pytest.approx(float(psnr(noisy, x)), abs=0.006)
    assert rows["DVAE"] != rows["plain VAE"]


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

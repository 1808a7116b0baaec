"""The bundled test codes of the 2-D checkpoints (demo/test_codes.py): in sync with the weights beside them, ignored
when stale, and the scatter they feed is the same picture as encoding the real test set."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from demo import priors  # noqa: E402
from demo.test_codes import FILENAME, encode, is_two_dimensional, read_test_codes, weights_digest  # noqa: E402
from demo.weights import ModelStore  # noqa: E402
from vae_models import load_model  # noqa: E402
from vae_models.data import load_mnist  # noqa: E402

from demo.tiny_weights import make_tiny_weights  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = REPO_ROOT / "pretrained"
TWO_D = [f for f in sorted(PRETRAINED.iterdir()) if f.is_dir() and is_two_dimensional(f)]


@pytest.fixture(scope="module")
def test_set(mnist_dir):
    return load_mnist("test", data_dir=mnist_dir)


def test_every_bundled_2d_checkpoint_ships_the_whole_test_set_encoded_by_its_own_weights(test_set):
    images, labels = test_set
    assert len(TWO_D) >= 4, [f.name for f in TWO_D]
    for folder in TWO_D:
        stored = read_test_codes(folder)
        assert stored is not None, f"{folder.name}: {FILENAME} missing or stale: run python -m demo.test_codes"
        codes, stored_labels = stored
        assert codes.shape == (10_000, 2) and torch.equal(stored_labels, labels)
        model = load_model(str(folder)).eval()
        # the first batch of the deterministic encoding (seeded for AVB's implicit posterior) is reproduced exactly
        assert torch.allclose(codes[:1000], encode(model, images[:1000]), atol=1e-5), folder.name
        assert (folder / FILENAME).stat().st_size < 100_000  # compact: codes, not images


def test_codes_of_other_weights_are_ignored(tmp_path):
    folder = tmp_path / "vae-2d"
    shutil.copytree(PRETRAINED / "vae-2d", folder)
    assert read_test_codes(folder) is not None
    tiny = make_tiny_weights(tmp_path / "tiny")
    shutil.copy(tiny / "vae-2d" / "model.safetensors", folder / "model.safetensors")
    shutil.copy(tiny / "vae-2d" / "config.json", folder / "config.json")
    assert weights_digest(folder) != weights_digest(PRETRAINED / "vae-2d")
    assert read_test_codes(folder) is None
    (folder / FILENAME).write_bytes(b"not safetensors")
    assert read_test_codes(folder) is None


def test_scatter_from_stored_codes_equals_scatter_from_the_encoded_test_set(tmp_path, mnist_dir):
    with_codes = tmp_path / "with"
    without = tmp_path / "without"
    for folder in TWO_D:
        shutil.copytree(folder, with_codes / folder.name)
        shutil.copytree(folder, without / folder.name, ignore=shutil.ignore_patterns(FILENAME))
    stored = priors.latent_scatter(ModelStore(with_codes, hub=False, data_dir=str(tmp_path / "nowhere")), 2000, 3)
    encoded = priors.latent_scatter(ModelStore(without, hub=False, data_dir=str(mnist_dir)), 2000, 3)
    assert "2000 of the MNIST test digits (codes stored with the weights)" in stored[-1]
    assert "2000 of the MNIST test digits." in encoded[-1]
    for a, b in zip(stored[:-1], encoded[:-1]):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    # without codes and without the test set, only the 20 bundled digits remain, and the note says so
    bare = priors.latent_scatter(ModelStore(without, hub=False, data_dir=str(tmp_path / "nowhere")), 2000, 3)
    assert "20 of the 20 bundled test digits" in bare[-1]


def test_rerunning_the_writer_keeps_codes_in_sync_and_rewrites_stale_ones(tmp_path, mnist_dir):
    from demo.test_codes import main

    shutil.copytree(PRETRAINED / "vae-2d", tmp_path / "vae-2d")
    shutil.copytree(PRETRAINED / "aae-2d-gaussian", tmp_path / "aae-2d-gaussian")
    stale = tmp_path / "aae-2d-gaussian"
    tiny = make_tiny_weights(tmp_path / "tiny")
    for name in ("model.safetensors", "config.json"):
        shutil.copy(tiny / "aae-2d-gaussian" / name, stale / name)
    kept = (tmp_path / "vae-2d" / FILENAME).read_bytes()
    os.utime(tmp_path / "vae-2d" / FILENAME, ns=(0, 0))
    assert main([str(tmp_path), "--data-dir", str(mnist_dir)]) == 0
    in_sync = tmp_path / "vae-2d" / FILENAME
    assert in_sync.stat().st_mtime_ns == 0 and in_sync.read_bytes() == kept  # not rewritten
    assert read_test_codes(stale) is not None  # the stale one was recomputed from its new weights

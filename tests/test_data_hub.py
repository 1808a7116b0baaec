"""MNIST from the Hub's dataset repo (vae_models/hub_data.py) with the real huggingface_hub over HTTP against the
loopback Hub: parquet files built here from the real MNIST test files in ylecun/mnist's layout (PNG bytes + label)
load to exactly the IDX data; a pinned revision is honoured; altered rows, a missing split and a file that is not
parquet are refused with clear errors."""

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vae_models.data import load_mnist
from vae_models.hub_data import decode_parquet, parquet_path

REPO = "ylecun/mnist"


def parquet_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """A parquet file as the Hub's datasets hold MNIST: image = {bytes: PNG, path: null}, label = int64."""
    pngs = []
    for image in images:
        buf = io.BytesIO()
        Image.fromarray(image, mode="L").save(buf, "PNG")
        pngs.append(buf.getvalue())
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({"image": pa.array([{"bytes": b, "path": None} for b in pngs], type=image_type),
                      "label": pa.array(labels.astype(np.int64))})
    out = pa.BufferOutputStream()
    pq.write_table(table, out)
    return out.getvalue().to_pybytes()


@pytest.fixture(scope="module")
def test_split(mnist_dir):
    images, labels = load_mnist("test", data_dir=mnist_dir)
    return images.numpy(), labels.numpy()


LOAD = """
import json, os, torch
from vae_models.data import DataError, environment_options, load_mnist
reference = load_mnist("test", data_dir=os.environ["MNIST_DIR"])
answers = {}
for revision in (os.environ["GOOD"], os.environ["BAD"], None):
    try:
        images, labels = load_mnist("test", source="hub", revision=revision)
        answers[str(revision)] = {"equal": torch.equal(images, reference[0]) and torch.equal(labels, reference[1]),
                                  "dtypes": [str(images.dtype), str(labels.dtype)]}
    except DataError as exc:
        answers[str(revision)] = {"error": str(exc)}
os.environ["VAE_FAMILY_DATA_SOURCE"] = "hub"  # the option as an environment variable: the train split is absent
try:
    load_mnist("train", **environment_options())
except DataError as exc:
    answers["train"] = {"error": str(exc)}
print(json.dumps(answers))
"""


def test_mnist_from_the_hub_equals_the_idx_files_and_honours_the_pinned_revision(hub_server, hub_run, test_split,
                                                                                     mnist_dir):
    images, labels = test_split
    hub_server.create_repo(REPO, repo_type="dataset")
    good = hub_server.put_file(REPO, parquet_path("mnist", "test"), parquet_bytes(images, labels),
                               repo_type="dataset").sha
    altered = labels.copy()
    altered[[0, 1]] = altered[[1, 0]]  # two rows' labels swapped: same label counts, different data
    bad = hub_server.put_file(REPO, parquet_path("mnist", "test"), parquet_bytes(images, altered),
                              repo_type="dataset").sha
    proc = hub_run(LOAD, timeout=180, MNIST_DIR=str(mnist_dir), GOOD=good, BAD=bad)
    answers = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answers[good] == {"equal": True, "dtypes": ["torch.uint8", "torch.int64"]}
    assert "labels differ from the official mnist t10k-labels-idx1-ubyte" in answers[bad]["error"]
    assert "ylecun/mnist@main/" in answers["None"]["error"]  # the default revision resolves to main: the altered file
    assert "cannot download ylecun/mnist@main/mnist/train-00000-of-00001.parquet" in answers["train"]["error"]
    # only the parquet file was asked for, at the pinned commit
    assert f"/datasets/{REPO}/resolve/{good}/mnist/test-00000-of-00001.parquet" in hub_server.requested("GET")


def test_decoding_refuses_what_is_not_mnist(tmp_path, test_split):
    from vae_models.data import DataError

    images, labels = test_split
    path = tmp_path / "test.parquet"
    path.write_bytes(parquet_bytes(images[:5], labels[:5]))
    decoded, decoded_labels = decode_parquet(str(path), "x")
    assert np.array_equal(decoded, images[:5]) and np.array_equal(decoded_labels, labels[:5])
    (tmp_path / "text.parquet").write_bytes(b"PAR1 but not really")
    with pytest.raises(DataError, match="not a parquet file of MNIST images"):
        decode_parquet(str(tmp_path / "text.parquet"), "text.parquet")
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    buf = io.BytesIO()
    Image.new("RGB", (28, 28)).save(buf, "PNG")
    table = pa.table({"image": pa.array([{"bytes": buf.getvalue(), "path": None}], type=image_type),
                      "label": pa.array([3], type=pa.int64())})
    pq.write_table(table, str(tmp_path / "rgb.parquet"))
    with pytest.raises(DataError, match="row 0 is a RGB 28x28 image"):
        decode_parquet(str(tmp_path / "rgb.parquet"), "rgb.parquet")

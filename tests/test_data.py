"""vae_models.data on the genuine MNIST files, malformed IDX files, and downloads from real loopback HTTP mirrors."""

import functools
import gzip
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from vae_models.data import (
    SHA256,
    DataError,
    MNISTDataset,
    default_cache_dir,
    environment_options,
    load_mnist,
    make_loader,
    read_idx_pair,
)

from tests.paths import MNIST_DIR

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist (installed by CI)
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    # The team's shells may point these at real folders; every test states its own sources.
    for name in ("VAE_FAMILY_DATA_DIR", "VAE_FAMILY_DATA_SOURCE", "VAE_FAMILY_MIRRORS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VAE_FAMILY_CACHE", str(tmp_path / "default-cache"))


@pytest.fixture(scope="module")
def mnist_test():
    return load_mnist("test", data_dir=MNIST_DIR)


def official_sha256(name: str) -> str:
    lines = (MNIST_DIR / "SHA256SUMS").read_text().split("\n")
    return dict(reversed(line.split()) for line in lines if line.strip())[name]


def idx_bytes(magic: int, shape: tuple, data: bytes) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape) + data


def write_pair(directory: Path, images: bytes, labels: bytes) -> None:
    directory.mkdir(exist_ok=True)
    (directory / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
    (directory / "t10k-labels-idx1-ubyte").write_bytes(labels)  # uncompressed names are accepted too


# ------------------------------------------------------------------------------------------------ real files


def test_real_mnist_shapes_dtypes_and_label_histogram(mnist_test):
    images, labels = mnist_test
    assert images.shape == (10_000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (10_000,) and labels.dtype == torch.int64
    assert torch.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert images.min() == 0 and images.max() == 255
    train_images, train_labels = load_mnist("train", data_dir=MNIST_DIR)
    assert train_images.shape == (60_000, 28, 28)
    assert torch.bincount(train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_fashion_mnist_loads_from_data_dir():
    assert FASHION_DIR.is_dir(), "CI must `apt-get install -y dataset-fashion-mnist`"
    images, labels = load_mnist("test", data_dir=FASHION_DIR, dataset="fashion_mnist")
    assert images.shape == (10_000, 28, 28) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [1000] * 10
    # The genuine files of the other dataset are recognised by their checksum, not silently used.
    with pytest.raises(DataError, match="is the fashion_mnist file"):
        load_mnist("test", data_dir=FASHION_DIR, dataset="mnist")


def test_uncompressed_copies_in_the_unzip_tools_spelling_are_read(tmp_path, mnist_test):
    for name in TEST_FILES:  # the form users get after unzipping, with the unzip tools' dotted spelling
        raw = gzip.decompress((MNIST_DIR / name).read_bytes())
        (tmp_path / name.removesuffix(".gz").replace("-idx", ".idx")).write_bytes(raw)
    images, labels = load_mnist("test", data_dir=tmp_path)
    assert torch.equal(images, mnist_test[0]) and torch.equal(labels, mnist_test[1])


def test_the_environment_gives_the_commands_data_options_and_load_mnist_reads_none(tmp_path, monkeypatch):
    assert environment_options({}) == {"data_dir": None, "source": "idx"}
    assert environment_options({"VAE_FAMILY_DATA_DIR": "", "VAE_FAMILY_DATA_SOURCE": ""}) == {"data_dir": None,
                                                                                               "source": "idx"}
    monkeypatch.setenv("VAE_FAMILY_DATA_DIR", str(MNIST_DIR))
    monkeypatch.setenv("VAE_FAMILY_DATA_SOURCE", "hub")
    assert environment_options() == {"data_dir": str(MNIST_DIR), "source": "hub"}
    from train.evaluate import parse_args

    args = parse_args(["pretrained/vae"])  # a command reads them where it starts, as its options' defaults
    assert (args.data_dir, args.data_source) == (str(MNIST_DIR), "hub")
    # The library call reads neither: not the folder, not the Hub, but the (empty) download cache.
    with pytest.raises(DataError, match="default-cache/mnist has no t10k-images-idx3-ubyte.gz or t10k-images-idx3-ubyte "
                                        "and download=False"):
        load_mnist("test", download=False)


def test_private_copy_with_other_checksum_is_used_with_a_warning(tmp_path, mnist_test):
    images, labels = mnist_test
    write_pair(tmp_path, idx_bytes(0x803, (3, 28, 28), images[:3].numpy().tobytes()),
               idx_bytes(0x801, (3,), labels[:3].numpy().astype(np.uint8).tobytes()))
    with pytest.warns(UserWarning, match="checksum"):
        got_images, got_labels = load_mnist("test", data_dir=tmp_path)
    assert torch.equal(got_images, images[:3]) and torch.equal(got_labels, labels[:3])


# ------------------------------------------------------------------------------------------------ malformed files

GOOD_IMAGES = idx_bytes(0x803, (2, 28, 28), bytes(2 * 784))
GOOD_LABELS = idx_bytes(0x801, (2,), bytes([3, 7]))


@pytest.mark.parametrize(
    "images, labels, bad_file, message",
    [
        (GOOD_IMAGES[:-100], GOOD_LABELS, "t10k-images", "truncated"),
        (GOOD_IMAGES + b"\0", GOOD_LABELS, "t10k-images", "trailing bytes"),
        (GOOD_IMAGES, b"PK\3\4" + GOOD_LABELS[4:], "t10k-labels", "bad magic number"),
        (GOOD_IMAGES, idx_bytes(0x802, (2, 1), bytes([3, 7])), "t10k-labels", "declares 2 dimensions, expected 1"),
        (idx_bytes(0x803, (2, 28, 27), bytes(2 * 28 * 27)), GOOD_LABELS, "t10k-images", "28x27, expected 28x28"),
        (GOOD_IMAGES, idx_bytes(0x801, (3,), bytes([3, 7, 1])), "t10k-labels", "holds 2 images but"),
        (GOOD_IMAGES, idx_bytes(0x801, (2,), bytes([3, 17])), "t10k-labels", "label 17 out of range"),
        (GOOD_IMAGES[:10], GOOD_LABELS, "t10k-images", "truncated header"),
    ],
)
def test_malformed_idx_is_rejected_naming_the_file(tmp_path, images, labels, bad_file, message):
    write_pair(tmp_path, images, labels)
    with pytest.raises(DataError, match=message) as error:
        load_mnist("test", data_dir=tmp_path)
    assert bad_file in str(error.value)


def test_corrupt_gzip_and_missing_files(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(GOOD_IMAGES)[:-20])
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(GOOD_LABELS)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: corrupt or truncated gzip"):
        read_idx_pair(tmp_path / "t10k-images-idx3-ubyte.gz", tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(DataError, match="has no train-images-idx3-ubyte"):
        load_mnist("train", data_dir=tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_mnist("test", data_dir=tmp_path / "nowhere")
    with pytest.raises(DataError, match="download=False"):
        load_mnist("test", cache_dir=tmp_path / "empty-cache", download=False)
    with pytest.raises(ValueError, match="split must be one of"):
        load_mnist("validation", data_dir=MNIST_DIR)


# ------------------------------------------------------------------------------------------------ downloads


@pytest.fixture(scope="module")
def mirror_url(tmp_path_factory):
    """A real HTTP server on 127.0.0.1 with good/ (copies of the MNIST test files) and corrupt/ (valid gzip of
    altered IDX content, so only the checksum can tell). Any other path answers 404."""
    root = tmp_path_factory.mktemp("mirror")
    (root / "good").mkdir()
    (root / "corrupt").mkdir()
    for name in TEST_FILES:
        shutil.copy(MNIST_DIR / name, root / "good" / name)
        content = bytearray(gzip.decompress((MNIST_DIR / name).read_bytes()))
        content[-1] ^= 1
        (root / "corrupt" / name).write_bytes(gzip.compress(bytes(content), compresslevel=1))

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_fills_the_cache_with_verified_files(tmp_path, mirror_url, mnist_test):
    images, labels = load_mnist("test", cache_dir=tmp_path, mirrors=[f"{mirror_url}/good"])
    assert torch.equal(images, mnist_test[0]) and torch.equal(labels, mnist_test[1])
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(TEST_FILES)
    for name in TEST_FILES:
        assert hashlib.sha256((tmp_path / "mnist" / name).read_bytes()).hexdigest() == official_sha256(name)
    # Second call reads the cache: no mirror needed.
    again, _ = load_mnist("test", cache_dir=tmp_path, mirrors=["http://127.0.0.1:1/"])
    assert torch.equal(again, images)


def test_failover_to_the_next_mirror(tmp_path, monkeypatch, mirror_url):
    monkeypatch.setenv("VAE_FAMILY_MIRRORS", f"{mirror_url}/missing/,{mirror_url}/good/")
    images, _ = load_mnist("test")  # default cache root comes from VAE_FAMILY_CACHE (set by the fixture)
    assert images.shape == (10_000, 28, 28)
    assert (default_cache_dir("mnist") / "t10k-images-idx3-ubyte.gz").is_file()


def test_corrupt_download_is_rejected_and_leaves_nothing(tmp_path, mirror_url):
    url = f"{mirror_url}/corrupt/"
    with pytest.raises(DataError, match="SHA-256 checksum mismatch") as error:
        load_mnist("test", cache_dir=tmp_path, mirrors=[url])
    assert url + "t10k-images-idx3-ubyte.gz" in str(error.value)
    assert list((tmp_path / "mnist").iterdir()) == []


def test_unreachable_mirror_lists_the_urls_and_the_offline_way(tmp_path, mirror_url):
    with socket.socket() as s:  # a port that was free a moment ago: connections are refused
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/mnist/"
    with pytest.raises(DataError) as error:
        load_mnist("test", cache_dir=tmp_path, mirrors=[closed, f"{mirror_url}/missing/"])
    message = str(error.value)
    assert closed + "t10k-images-idx3-ubyte.gz: unreachable" in message
    assert f"{mirror_url}/missing/t10k-images-idx3-ubyte.gz: HTTP 404" in message
    assert "--data-dir" in message and "VAE_FAMILY_DATA_DIR" in message
    assert list((tmp_path / "mnist").iterdir()) == []


def test_tampered_cache_file_is_an_error(tmp_path, mirror_url):
    load_mnist("test", cache_dir=tmp_path, mirrors=[f"{mirror_url}/good/"])
    cached = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    tampered = bytearray(gzip.decompress(cached.read_bytes()))
    tampered[-1] = (tampered[-1] + 1) % 10  # still a valid label file: only the checksum can tell
    cached.write_bytes(gzip.compress(bytes(tampered)))
    with pytest.raises(DataError, match="delete it to download it again"):
        load_mnist("test", cache_dir=tmp_path, download=False)


def test_checksum_table_matches_the_official_files():
    for name in TEST_FILES + ("train-labels-idx1-ubyte.gz",):
        digest = hashlib.sha256(gzip.decompress((MNIST_DIR / name).read_bytes())).hexdigest()
        assert SHA256["mnist"][name.removesuffix(".gz")] == digest


# ------------------------------------------------------------------------------------------------ dataset / loader


def test_dynamic_binarisation_resamples_and_fixed_does_not(mnist_test):
    images, labels = images_labels = (mnist_test[0][:64], mnist_test[1][:64])
    dynamic = MNISTDataset(*images_labels, binarize="dynamic")
    a, _ = dynamic.__getitems__([5, 6])
    b, _ = dynamic.__getitems__([5, 6])
    assert a.shape == (2, 1, 28, 28) and a.dtype == torch.float32
    assert set(a.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(a, b)
    torch.manual_seed(3)
    c, _ = dynamic.__getitems__([5, 6])
    torch.manual_seed(3)
    assert torch.equal(c, dynamic.__getitems__([5, 6])[0])  # the global RNG makes seeded runs repeat

    fixed = MNISTDataset(*images_labels, binarize="fixed", seed=1)
    f1, y1 = fixed.__getitems__([5, 6])
    assert set(f1.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(f1, fixed.__getitems__([5, 6])[0])
    assert torch.equal(f1, MNISTDataset(*images_labels, binarize="fixed", seed=1).__getitems__([5, 6])[0])
    assert not torch.equal(f1, MNISTDataset(*images_labels, binarize="fixed", seed=2).__getitems__([5, 6])[0])
    assert torch.equal(y1, labels[[5, 6]])

    grey, _ = MNISTDataset(*images_labels, binarize="none")[7]
    assert torch.equal(grey, images[7].float().unsqueeze(0) / 255)
    # Ink pixels are on roughly as often as their grey level says.
    mean_over_draws = torch.stack([dynamic[7][0] for _ in range(400)]).mean(0)
    assert (mean_over_draws - grey).abs().max() < 0.15


def test_dataset_rejects_bad_input(mnist_test):
    images, labels = mnist_test
    with pytest.raises(ValueError, match="binarize must be one of"):
        MNISTDataset(images, labels, binarize="otsu")
    with pytest.raises(ValueError, match="uint8 tensor"):
        MNISTDataset(images.float(), labels)
    with pytest.raises(ValueError, match="labels must be an int64 tensor of shape"):
        MNISTDataset(images, labels[:5])
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(images, labels, 0)


def test_loader_batches_and_seeded_order(mnist_test):
    images, labels = mnist_test[0][:100], mnist_test[1][:100]
    loader = make_loader(images, labels, batch_size=32, binarize="none", seed=4)
    batches = list(loader)
    assert [len(x) for x, _ in batches] == [32, 32, 32, 4]
    x, y = batches[0]
    assert x.shape == (32, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    order = torch.cat([y for _, y in batches])
    assert sorted(order.tolist()) == sorted(labels.tolist())
    again = torch.cat([y for _, y in make_loader(images, labels, 32, binarize="none", seed=4)])
    assert torch.equal(order, again)
    assert len(make_loader(images, labels, 32, drop_last=True)) == 3
    plain = next(iter(make_loader(images, labels, 10, shuffle=False, binarize="none")))
    assert torch.equal(plain[1], labels[:10]) and torch.equal(plain[0][:, 0] * 255, images[:10].float())


def test_loader_works_with_accelerate_prepare_and_two_process_sharding(mnist_test):
    from accelerate import Accelerator
    from accelerate.data_loader import prepare_data_loader

    images, labels = mnist_test[0][:64], mnist_test[1][:64]
    prepared = Accelerator(cpu=True).prepare(make_loader(images, labels, 16))
    shapes = [(tuple(x.shape), tuple(y.shape)) for x, y in prepared]
    assert shapes == [((16, 1, 28, 28), (16,))] * 4

    # The sharding Accelerator.prepare does with 2 processes, one shard per process index: each process gets
    # whole batches of the same shape, and together they cover every image exactly once.
    seen = []
    for rank in range(2):
        loader = make_loader(images, labels, 8, binarize="none", seed=7)  # same seed = the same shuffled order
        shard = prepare_data_loader(loader, num_processes=2, process_index=rank, put_on_device=False)
        batches = list(shard)
        assert [tuple(x.shape) for x, _ in batches] == [(8, 1, 28, 28)] * 4
        seen += [bytes((img * 255).round().to(torch.uint8).numpy()) for x, _ in batches for img in x]
    assert sorted(seen) == sorted(bytes(img.numpy()) for img in images.unsqueeze(1))



def two_process_worker(out_dir: str) -> None:
    """Run by torchrun (see below): each process loads, prepares and iterates the loader, and records what it saw."""
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    images, labels = load_mnist("test", data_dir=MNIST_DIR)
    loader = accelerator.prepare(make_loader(images[:100], labels[:100], 16, binarize="none", seed=5))
    batches = list(loader)
    record = {
        "num_processes": accelerator.num_processes,
        "shapes": [[list(x.shape), list(y.shape)] for x, y in batches],
        "labels": [y.tolist() for _, y in batches],
    }
    Path(out_dir, f"rank{accelerator.process_index}.json").write_text(json.dumps(record))
    # Tear the gloo process group down before the interpreter exits, as the trainer does: left to exit-time
    # destructors, its threads can abort a rank ("terminate called without an active exception").
    accelerator.wait_for_everyone()
    accelerator.end_training()


def test_loader_in_real_two_process_accelerate_run(tmp_path):
    # A fresh torchrun job (gloo on CPU, a free port via --standalone) rather than a fork of this pytest process,
    # whose OpenMP threads would deadlock the children.
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += [__file__, str(tmp_path)]
    result = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    # 100 images = 7 batches of 16 (the last of 4); accelerate's even_batches pads to 8 whole batches, 4 per process.
    for record in records:
        assert record["num_processes"] == 2
        assert record["shapes"] == [[[16, 1, 28, 28], [16]]] * 4
    assert records[0]["labels"] != records[1]["labels"]


if __name__ == "__main__":
    two_process_worker(sys.argv[1])

"""MNIST and Fashion-MNIST: a validating IDX reader, a checksummed downloader and a batched, binarising loader.

Where the files come from, first match wins:
1. `data_dir=` (the commands' `--data-dir`): a folder holding the four IDX files, gzipped or not;
2. a per-dataset cache, `~/.cache/vae-family/<dataset>` (root overridable with VAE_FAMILY_CACHE or
   `cache_dir=`), filled from the standard mirrors when files are missing (mirrors overridable with
   `mirrors=` or VAE_FAMILY_MIRRORS, comma separated base URLs).
Or, with `source="hub"` (the commands' `--data-source hub`), the dataset repo on the Hugging Face Hub
(ylecun/mnist's parquet files; see vae_models/hub_data.py), checked against the same digests.
The commands (train, evaluate, the app, ...) default `--data-dir` and `--data-source` to the environment variables
VAE_FAMILY_DATA_DIR and VAE_FAMILY_DATA_SOURCE (`environment_options`), read where each command starts;
`load_mnist` itself reads neither.

Checksums are SHA-256 digests of the *decompressed* IDX bytes, not of the .gz files: the same data is published
in differently gzipped files (the Debian package of Fashion-MNIST strips the file name from the gzip header of the
upstream files, so every .gz digest differs while the content is identical), and a user may hold uncompressed
copies. A download must match; a file the user points us at is only warned about, since a user may have
their own copy, but every file, whatever its origin, must be a well-formed IDX file of the right shape.

Binarisation follows the IWAE paper protocol (Burda et al., 2016, "Importance Weighted Autoencoders", sec. 5.2):
"dynamic" resamples every pixel as a Bernoulli draw with the grey level as probability each time an image is used,
which prevents the overfitting a single fixed binarisation causes for likelihood models.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

DATASETS = ("mnist", "fashion_mnist")
SOURCES = ("idx", "hub")  # IDX files (data_dir / cache / mirrors), or the Hub's parquet dataset repo
DATA_DIR_ENV, SOURCE_ENV = "VAE_FAMILY_DATA_DIR", "VAE_FAMILY_DATA_SOURCE"  # the commands' defaults (see above)
SPLITS = ("train", "test")
BINARIZE = ("dynamic", "fixed", "none")

# File stems per split (the standard names; a data_dir may hold them as .gz or uncompressed).
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLIT_SIZES = {"train": 60_000, "test": 10_000}

MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

# SHA-256 of the decompressed IDX files (see the module docstring for why not of the .gz). MNIST: computed from the
# official gz files (whose own digests are 440fcabf…, 3552534a…, 8d422c7b…, f7ae60f9…); Fashion-MNIST: computed from
# the Debian package dataset-fashion-mnist (git snapshot 55506a9 of zalandoresearch/fashion-mnist).
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

CLASS_NAMES = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion_mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
}

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (count)
DOWNLOAD_TIMEOUT = 60.0  # seconds without data before a mirror is given up


class DataError(ValueError):
    """A data file that is missing, malformed, truncated, or fails its checksum, or a download that failed."""


def environment_options(environ=os.environ) -> dict:
    """The data options a command takes from the environment where its user gives none, as `load_mnist` keywords:
    data_dir = $VAE_FAMILY_DATA_DIR (else None: the download cache), source = $VAE_FAMILY_DATA_SOURCE (else "idx").
    The commands call it where they start, for the defaults of their --data-dir / --data-source."""
    return {"data_dir": environ.get(DATA_DIR_ENV) or None, "source": environ.get(SOURCE_ENV) or SOURCES[0]}


def default_cache_dir(dataset: str = "mnist") -> Path:
    """Where downloads for `dataset` go: $VAE_FAMILY_CACHE/<dataset>, else ~/.cache/vae-family/<dataset>."""
    _check_choice("dataset", dataset, DATASETS)
    root = os.environ.get("VAE_FAMILY_CACHE") or Path.home() / ".cache" / "vae-family"
    return Path(root).expanduser() / dataset


# --------------------------------------------------------------------------------------------- IDX reading


def read_idx_bytes(path: str | os.PathLike) -> bytes:
    """The decompressed content of an IDX file (gzip detected by its magic bytes, not by the file name)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; a cut-off stream is an EOFError
        raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from e


def parse_idx(content: bytes, magic: int, name: str) -> np.ndarray:
    """Parse IDX bytes into a uint8 array, checking the magic number, the dimension count and that the data size
    declared by the header is exactly what follows it. `name` is the file named in every error."""
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(content) < 4:
        raise DataError(f"{name}: file is {len(content)} bytes, too short for an IDX header")
    found = int.from_bytes(content[:4], "big")
    if found >> 8 != magic >> 8:  # zero bytes + type code 0x08 (unsigned byte)
        raise DataError(f"{name}: bad magic number 0x{found:08x}, expected 0x{magic:08x}; not an IDX file of bytes")
    if found != magic:
        raise DataError(
            f"{name}: header declares {found & 0xFF} dimensions, expected {ndim} (magic 0x{found:08x}, "
            f"expected 0x{magic:08x}); is this the {'labels' if ndim == 3 else 'images'} file?"
        )
    if len(content) < header_size:
        raise DataError(f"{name}: truncated header ({len(content)} bytes, need {header_size})")
    shape = tuple(int(d) for d in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    actual = len(content) - header_size
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing bytes"
        raise DataError(
            f"{name}: {what}: header declares shape {shape} = {expected} data bytes, file holds {actual}"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape)


def read_idx_pair(images_path: str | os.PathLike, labels_path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Read and validate an images/labels IDX pair -> (uint8 (N,28,28), int64 (N,))."""
    images = parse_idx(read_idx_bytes(images_path), IMAGES_MAGIC, str(images_path))
    labels = parse_idx(read_idx_bytes(labels_path), LABELS_MAGIC, str(labels_path))
    return _to_tensors(images, labels, str(images_path), str(labels_path))


def _to_tensors(images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str):
    if images.shape[1:] != (28, 28):
        raise DataError(f"{images_name}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    if len(images) != len(labels):
        raise DataError(f"{images_name} holds {len(images)} images but {labels_name} holds {len(labels)} labels")
    if len(labels) and labels.max() > 9:
        raise DataError(f"{labels_name}: label {int(labels.max())} out of range 0-9")
    # frombuffer arrays are read-only views of `bytes`; copy once into tensors torch may write to.
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


# --------------------------------------------------------------------------------------------- locating and downloading


def _find_file(directory: Path, stem: str) -> Path | None:
    # .gz first (the distributed form), then uncompressed, incl. the "train-images.idx3-ubyte" spelling of unzip tools.
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (directory / name).is_file():
            return directory / name
    return None


def _parse_mirrors(mirrors, dataset: str) -> list[str]:
    if mirrors is None:
        env = os.environ.get("VAE_FAMILY_MIRRORS", "")
        mirrors = [m for m in env.split(",") if m.strip()] or MIRRORS[dataset]
    elif isinstance(mirrors, str):
        mirrors = mirrors.split(",")
    bases = [m.strip() for m in mirrors if m.strip()]
    if not bases:
        raise ValueError("mirrors must name at least one base URL")
    return [b if b.endswith("/") else b + "/" for b in bases]


def _download(stem: str, target: Path, dataset: str, mirrors: list[str]) -> None:
    """Fetch `stem`.gz from the first mirror that serves it with the right checksum; write `target` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for base in mirrors:
        url = base + stem + ".gz"
        # A temp file in the same directory, renamed only once verified: an interrupted or corrupt download
        # never leaves a file that a later run would mistake for a good one.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{stem}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
            digest = hashlib.sha256(read_idx_bytes(tmp)).hexdigest()
            expected = SHA256[dataset][stem]
            if digest != expected:
                raise DataError(f"SHA-256 checksum mismatch (got {digest[:12]}…, expected {expected[:12]}…)")
            os.replace(tmp, target)
            return
        # URLError, HTTPError, timeouts and refused connections are OSErrors; a connection cut mid-body raises
        # http.client.IncompleteRead; a malformed mirror URL a ValueError (as is our DataError).
        except (OSError, ValueError, http.client.HTTPException) as e:
            failures.append(f"  {url}: {_describe(e)}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DataError(
        f"could not download {stem}.gz for {dataset}; tried:\n" + "\n".join(failures) + "\n"
        "Offline? Pass a directory holding the IDX files with --data-dir (data_dir=) or set VAE_FAMILY_DATA_DIR."
    )


def _describe(e: Exception) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return f"unreachable ({e.reason})"
    return str(e)


def load_mnist(
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    dataset: str = "mnist",
    download: bool = True,
    mirrors: list[str] | str | None = None,
    cache_dir: str | os.PathLike | None = None,
    source: str = "idx",
    revision: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of MNIST or Fashion-MNIST -> (images uint8 (N,28,28), labels int64 (N,)).

    `source`: "idx" reads the IDX files as described below; "hub" reads the Hub's dataset repo at `revision`
    (vae_models.hub_data), checked against the official files' digests.

    `data_dir` is used as is and never downloaded into; otherwise (None) the files come from the cache root
    `cache_dir` (else default_cache_dir's root) under a `<dataset>` folder, downloaded there first when missing and
    `download` is true."""
    _check_choice("split", split, SPLITS)
    _check_choice("dataset", dataset, DATASETS)
    _check_choice("source", source, SOURCES)
    if source == "hub":
        from .hub_data import load_from_hub

        return load_from_hub(split, dataset, revision=revision)
    if data_dir is not None:
        directory, from_user = Path(data_dir).expanduser(), True
        if not directory.is_dir():
            raise DataError(f"data directory {directory} does not exist")
    else:
        directory = Path(cache_dir).expanduser() / dataset if cache_dir is not None else default_cache_dir(dataset)
        from_user = False

    arrays, paths, contents = [], [], []
    for stem, magic in zip(FILES[split], (IMAGES_MAGIC, LABELS_MAGIC)):
        path = _find_file(directory, stem)
        if path is None and not from_user and download:
            path = directory / (stem + ".gz")
            _download(stem, path, dataset, _parse_mirrors(mirrors, dataset))
        if path is None:
            hint = "" if from_user else " and download=False"
            raise DataError(f"{directory} has no {stem}.gz or {stem}{hint}")
        content = read_idx_bytes(path)
        arrays.append(parse_idx(content, magic, str(path)))
        paths.append(path)
        contents.append(content)
    images, labels = _to_tensors(*arrays, *map(str, paths))  # malformed is an error whatever the checksum says
    for stem, path, content in zip(FILES[split], paths, contents):
        _check_digest(content, path, stem, dataset, strict=not from_user)
    return images, labels


def _check_digest(content: bytes, path: Path, stem: str, dataset: str, strict: bool) -> None:
    digest = hashlib.sha256(content).hexdigest()
    if digest == SHA256[dataset][stem]:
        return
    for other in DATASETS:  # the genuine file of the other dataset is certainly a mistake, not a private copy
        if other != dataset and digest == SHA256[other][stem]:
            raise DataError(f"{path} is the {other} file, but dataset={dataset!r} was requested")
    message = f"{path}: SHA-256 checksum {digest[:12]}… differs from the official {dataset} file"
    if strict:  # our own cache: only verified downloads are written there, so this file was altered
        raise DataError(message + "; delete it to download it again")
    warnings.warn(message + "; using it anyway", stacklevel=3)


def _check_choice(name: str, value, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


# --------------------------------------------------------------------------------------------- dataset and loader


class MNISTDataset(Dataset):
    """Images as (1,28,28) floats in [0,1] with their labels, binarised per `binarize`.

    `__getitems__` fetches a whole batch with one tensor index (the DataLoader calls it instead of indexing sample
    by sample when it exists), which is what makes an epoch over MNIST take well under a second of data work."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, binarize: str = "dynamic", seed: int = 0):
        _check_choice("binarize", binarize, BINARIZE)
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.shape[1:] != (28, 28):
            raise ValueError(f"images must be a uint8 tensor of shape (N,28,28), got {_describe_tensor(images)}")
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.shape != (len(images),):
            raise ValueError(
                f"labels must be an int64 tensor of shape ({len(images)},), got {_describe_tensor(labels)}"
            )
        self.binarize = binarize
        self.labels = labels
        if binarize == "fixed":
            # One draw, made once from its own seeded generator, so it is the same whatever else used the RNG.
            generator = torch.Generator().manual_seed(seed)
            self.pixels = torch.bernoulli(images.float() / 255, generator=generator).to(torch.uint8)
            self.levels = 1.0
        else:
            self.pixels, self.levels = images, 255.0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.__getitems__([index])
        return x[0], y[0]

    def __getitems__(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        x = self.pixels[index].unsqueeze(1).float() / self.levels  # grey level / 255, exactly as float32 rounds it
        if self.binarize == "dynamic":
            # P(u < p) = p for u ~ U[0, 1): the same Bernoulli draw as torch.bernoulli, 3x faster on CPU (10 vs 3 ms
            # for a batch of 1024), which matters once the model step is fast (large batches, a GPU). The global
            # RNG: torch.manual_seed / accelerate.utils.set_seed make runs repeat.
            x = (torch.rand_like(x) < x).float()
        return x, self.labels[index]


def held_out_digits(n: int, data_dir: str | None = None, dataset: str = "mnist", source: str = "idx"):
    """(grey images (n, 1, 28, 28) in [0, 1], labels) of the last n digits of the training split: the ones a run
    with `validation_examples` n never trains on (train.trainer), which label a clustering model's clusters."""
    images, labels = load_mnist("train", data_dir=data_dir, dataset=dataset, source=source)
    return images[-n:].float().div(255).unsqueeze(1), labels[-n:]


def _pass_batch(batch):
    """collate_fn: MNISTDataset.__getitems__ already returns a stacked (x, labels) batch."""
    return batch


def make_loader(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    shuffle: bool = True,
    binarize: str = "dynamic",
    drop_last: bool = False,
    seed: int = 0,
) -> DataLoader:
    """A DataLoader over (images, labels) yielding (x float (B,1,28,28) in [0,1], labels int64 (B,)).

    `seed` fixes the shuffling order (its own generator, advanced each epoch) and the "fixed" binarisation.
    Works with `accelerate.Accelerator.prepare`, which re-wraps the batch sampler to shard batches over processes."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    dataset = MNISTDataset(images, labels, binarize=binarize, seed=seed)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=0,  # the batch is one tensor index: worker processes would only add pickling overhead
        collate_fn=_pass_batch,
        generator=generator,
    )


def _describe_tensor(t) -> str:
    if isinstance(t, torch.Tensor):
        return f"{t.dtype} tensor of shape {tuple(t.shape)}"
    return type(t).__name__

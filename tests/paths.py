"""Where the tests find what lies outside the package: the repository root and the MNIST IDX files.

MNIST is read from `../shared/data/mnist` next to the repository (the four IDX files of the official release, as
vae_models.data.load_mnist reads them). Import MNIST_DIR where a path is needed at import time (a parametrize
list, a helper module); in a test take the `mnist_dir` fixture of tests/conftest.py, which fails the test with
`missing_mnist()`'s message when the files are not there."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


def missing_mnist() -> str:
    """'' when every MNIST file is in MNIST_DIR (plain or .gz), else what is missing and how to provide it."""
    missing = [name for name in MNIST_FILES
               if not (MNIST_DIR / name).is_file() and not (MNIST_DIR / f"{name}.gz").is_file()]
    if not missing:
        return ""
    download = (f"from vae_models.data import load_mnist; "
                f"[load_mnist(s, cache_dir='{MNIST_DIR.parent}') for s in ('train', 'test')]")
    return (f"the tests read MNIST from {MNIST_DIR}, which lacks {', '.join(missing)} (plain or .gz): put the official "
            f"IDX files there, or download them there with `python -c \"{download}\"`")

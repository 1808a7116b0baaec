"""Regenerate test_digits.png / test_digits.json: the first two digits of each class from the MNIST test set,
bundled so the app offers real test digits without the dataset (one 28x560 grayscale PNG, ~4 KB).

    python -m demo.assets.make_test_digits --data-dir ../shared/data/mnist
"""

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from vae_models.data import environment_options, load_mnist

HERE = Path(__file__).resolve().parent
PER_CLASS = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = environment_options()
    parser.add_argument("--data-dir", default=data["data_dir"], help="folder with the MNIST IDX files (default: "
                        "$VAE_FAMILY_DATA_DIR, else download)")
    args = parser.parse_args()
    images, labels = load_mnist("test", data_dir=args.data_dir, source=data["source"])
    indices = [int(i) for digit in range(10) for i in np.flatnonzero(labels.numpy() == digit)[:PER_CLASS]]
    strip = np.concatenate([images[i].numpy() for i in indices], axis=1)  # (28, 28 * 20) uint8
    Image.fromarray(strip).save(HERE / "test_digits.png", optimize=True)
    meta = {"source": "MNIST t10k (test set)", "indices": indices, "labels": [int(labels[i]) for i in indices]}
    (HERE / "test_digits.json").write_text(json.dumps(meta) + "\n")


if __name__ == "__main__":
    main()

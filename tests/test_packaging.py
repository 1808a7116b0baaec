"""pyproject.toml builds a wheel of the library, the trainer and the app (with the app's assets, without tests or
benchmarks), and the installed wheel works outside the repository: it loads a bundled checkpoint and renders the
app's bundled test digits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("vae_models", "train", "demo")

USE_INSTALLED = """
import sys
import vae_models, train.trainer, demo.common
assert all(m.__file__.startswith(sys.argv[1]) for m in (vae_models, train.trainer, demo.common)), "not the wheel"
model = vae_models.load_model(sys.argv[2])
images, labels = demo.common.test_digits()
print(type(model).__name__, tuple(images.shape), sorted(vae_models.MODELS)[:2])
import train.recipe, demo.live  # the catalogue and the live-training tab read the recipes the wheel carries
assert train.recipe.RECIPES_DIR.is_relative_to(sys.argv[1]), train.recipe.RECIPES_DIR
assert vae_models.checkpoints()["vae"][0].title == "VAE"
print(list(demo.live.live_models()))
"""


def test_wheel_holds_the_three_packages_and_works_outside_the_repository(tmp_path):
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the working tree
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for package in (*PACKAGES, "recipes"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    # --no-build-isolation: build with this environment's setuptools (pinned in requirements-dev.txt), offline.
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("vae_family-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.startswith("vae_family-")} == set(PACKAGES)
    assert {"demo/assets/test_digits.png", "demo/assets/test_digits.json", "vae_models/registry.py",
            "train/reproduce.py", "vae_models/recipes/vae.json"} <= set(names)

    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    run = subprocess.run([sys.executable, "-c", USE_INSTALLED, str(site), str(REPO / "pretrained" / "vae")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    first, live = run.stdout.splitlines()
    assert first.split() == ["VAE", "(20,", "1,", "28,", "28)", "['aae',", "'ae']"]
    assert live == str(["vae-2d", "avb-2d", "aae-2d-gaussian", "aae-2d-mixture", "aae-2d-posterior-gaussian",
                        "aae-2d-posterior-universal", "aae-2d-supervised", "aae-2d-clusters"])

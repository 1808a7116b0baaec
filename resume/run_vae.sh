#!/usr/bin/env bash
# Starts or continues the paper-scale VAE run (resume/vae/run is committed while it runs; see resume/README.md).
cd "$(dirname "$0")/.."
exec nice -n 10 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python -m train --config resume/vae/recipe.json \
  --data-dir ../shared/data/mnist --output-dir resume/vae/run --save-pretrained runs/paper/vae --resume --no-progress-bar

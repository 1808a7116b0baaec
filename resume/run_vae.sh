#!/usr/bin/env bash
# Starts or continues the paper-scale VAE run committed in resume/runs/vae (see resume/README.md): one thread, low
# priority; when the schedule is done, the export (runs/reproduce/vae) is evaluated and carded.
cd "$(dirname "$0")/.."
exec nice -n 10 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TQDM_MININTERVAL=60 .venv/bin/python -m train.reproduce vae \
  --recipes resume/recipes --runs-root resume/runs --resume --data-dir ../shared/data/mnist

#!/usr/bin/env bash
# Starts or continues the runs committed here (see README.md), one after another: one thread, low priority; when a
# schedule is done its export (runs/reproduce/NAME) is evaluated and carded. Usage: bash resume/run.sh NAME...
cd "$(dirname "$0")/.."
exec nice -n 10 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TQDM_MININTERVAL=60 .venv/bin/python -m train.reproduce "$@" \
  --recipes resume/recipes --runs-root resume/runs --resume --data-dir ../shared/data/mnist

#!/usr/bin/env bash
# The exact commands that produced the bundled weights in pretrained/ (CPU, this repo's trainer), then their
# evaluation and cards. Usage: bash pretrained/train_all.sh [DATA_DIR] [NAME ...]   (default: ../shared/data/mnist, all)
# Each model trains in its own run folder under runs/; the export lands in pretrained/<name>/.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/mnist}; shift || true
declare -A RECIPES=(
  [classifier]="--model classifier --epochs 4 --batch-size 128"
  [vae]="--model vae --set hidden_dims=[200,200] --set latent_dim=50 --epochs 200 --batch-size 128"
  [ae]="--model ae --set hidden_dims=[200,200] --set latent_dim=50 --epochs 20 --batch-size 128"
  [cvae]="--model cvae --set hidden_dims=[400,200] --set latent_dim=8 --epochs 30 --batch-size 128"
  [dvae]="--model dvae --set hidden_dims=[200,200] --set latent_dim=50 --set corruption=salt_and_pepper --set noise_level=0.2 --epochs 40 --batch-size 128"
  [socvae]="--model socvae --set hidden_dims=[500,500] --set latent_dim=32 --set objective=cvae --epochs 20 --batch-size 128"
  [quadrant_nn]="--model quadrant_nn --set hidden_dims=[500,500] --epochs 20 --batch-size 128"
  [avb]="--model avb --set hidden_dims=[200,200] --set latent_dim=32 --set discriminator_hidden_dims=[256,256] --epochs 30 --batch-size 128"
  [aae]="--model aae --set hidden_dims=[400,200] --set latent_dim=8 --set posterior=deterministic --set adversarial_weight=5.0 --set discriminator_hidden_dims=[256,256] --epochs 25 --batch-size 128"
  [vae-2d]="--model vae --set hidden_dims=[400,200] --set latent_dim=2 --epochs 15 --batch-size 128"
  [aae-2d-gaussian]="--model aae --set hidden_dims=[400,200] --set latent_dim=2 --set adversarial_weight=5.0 --set discriminator_hidden_dims=[256,256] --epochs 15 --batch-size 128"
  [aae-2d-mixture]="--model aae --set hidden_dims=[400,200] --set latent_dim=2 --set prior=mixture10 --set adversarial_weight=5.0 --set discriminator_hidden_dims=[256,256] --epochs 15 --batch-size 128"
  [aae-2d-supervised]="--model aae --set hidden_dims=[400,200] --set latent_dim=2 --set prior=mixture10 --set supervised_prior=true --set adversarial_weight=5.0 --set discriminator_hidden_dims=[256,256] --epochs 15 --batch-size 128"
  [avb-2d]="--model avb --set hidden_dims=[400,200] --set latent_dim=2 --set discriminator_hidden_dims=[256,256] --epochs 15 --batch-size 128"
)
ORDER=(classifier vae ae cvae dvae socvae quadrant_nn avb aae vae-2d aae-2d-gaussian aae-2d-mixture aae-2d-supervised avb-2d)
NAMES=("$@"); [ ${#NAMES[@]} -gt 0 ] || NAMES=("${ORDER[@]}")
for name in "${NAMES[@]}"; do
  [ -n "${RECIPES[$name]:-}" ] || { echo "unknown recipe $name" >&2; exit 2; }
  # shellcheck disable=SC2086
  python -m train ${RECIPES[$name]} --data-dir "$DATA" --seed 0 --output-dir "runs/$name" \
    --checkpoint-every 2000 --save-pretrained "pretrained/$name"
done

# Evaluation (what produced each eval_results.json) and the model cards, when all models were (re)trained.
if [ $# -eq 0 ]; then
  EVAL=(python -m train.evaluate --data-dir "$DATA" --classifier pretrained/classifier)
  "${EVAL[@]}" pretrained/classifier pretrained/ae pretrained/aae pretrained/cvae pretrained/dvae pretrained/vae \
    pretrained/socvae pretrained/quadrant_nn pretrained/vae-2d
  # AVB's Gaussian-proposal estimator refits per chunk; k=1000 kept its evaluation within CPU budget.
  "${EVAL[@]}" --num-samples 1000 pretrained/avb pretrained/avb-2d pretrained/aae-2d-gaussian pretrained/aae-2d-mixture \
    pretrained/aae-2d-supervised
  # AIS-NLL with its BDMC gap for every decoder-based model (merged into the files above; one thread, CPU-bound).
  "${EVAL[@]}" --ais-only --ais-limit 200 pretrained/avb pretrained/aae pretrained/vae pretrained/cvae pretrained/dvae \
    pretrained/vae-2d pretrained/aae-2d-gaussian pretrained/aae-2d-mixture pretrained/avb-2d pretrained/aae-2d-supervised
  for dir in pretrained/*/; do python -m train.push "$dir" --repo-id "vae-family/mnist-$(basename "$dir")" --card-only; done
fi

#!/usr/bin/env bash
# Every benchmark, in order; the tables go to runs/benchmarks/<date>.md (git-ignored) (progress lines to the terminal).
# Usage: bash benchmarks/run_all.sh  (from anywhere; ~30 min on 2 idle cores). Needs `pip install -r
# benchmarks/requirements.txt` for the Pythae comparison (it is skipped with a note if Pythae is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1
mkdir -p runs/benchmarks
out="runs/benchmarks/$(date +%Y-%m-%d_%H%M).md"
for bench in train_throughput eval_nll app_latency live_training soak; do
  echo "== $bench" >&2
  python -m "benchmarks.$bench" 2> >(grep -v -E "it/s\]|s/it\]|batch/s\]" >&2) | tee -a "$out"
done
echo "tables written to $out" >&2

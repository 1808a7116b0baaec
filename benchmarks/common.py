"""What every benchmark prints with its tables: the machine, its load, the command and the date."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO_ROOT.parent / "shared" / "data" / "mnist"

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def recipe_config(name: str) -> dict:
    """The model config fields of recipes/<name>.json: the benchmarks time the models the bundled weights are."""
    return json.loads((REPO_ROOT / "recipes" / f"{name}.json").read_text())["model_config"]


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def training_jobs() -> list[str]:
    """Other `python -m train ...` processes (training, evaluation) on the machine: they share the cores."""
    out = subprocess.run(["pgrep", "-af", "python -m train"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(os.getpid()) != line.split(" ", 1)[0]]


def header(title: str) -> str:
    """Markdown lines naming the machine, its load when the run started, the command, the date and versions."""
    import torch

    load = os.getloadavg()[0]
    jobs = training_jobs()
    names = sorted({" ".join(j.split()[1:4]) for j in jobs})
    busy = f"; running beside it: {', '.join(names)}" if jobs else "; no other `python -m train` job running"
    command = "python -m " + Path(sys.argv[0]).with_suffix("").relative_to(REPO_ROOT).as_posix().replace("/", ".") \
        if Path(sys.argv[0]).resolve().is_relative_to(REPO_ROOT) else sys.argv[0]
    return "\n".join([
        f"### {title}",
        "",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores; 1-min load average at start {load:.2f}{busy}",
        f"- torch {torch.__version__}, {torch.get_num_threads()} intra-op threads; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
        f"- command: `{' '.join([command, *sys.argv[1:]])}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        "",
    ])


def table(headers: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def median(values) -> float:
    return statistics.median(values)


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of a sample."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"

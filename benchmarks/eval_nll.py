"""Time and peak memory of the k=5000 importance-sampled test NLL (Burda et al. 2015, eq. 8) of the 784-200-200-50
VAE, how both grow with k, batch size and chunk, and how `importance_sampled_nll` compares with the code one would
write without thinking about speed.

    python -m benchmarks.eval_nll                     # all tables, incl. one full 10,000-digit run (~5 min)
    python -m benchmarks.eval_nll --no-full --subset 200   # quick look

Every setting runs in a fresh subprocess, so its peak resident memory is its own: Linux's VmHWM (which sees
torch's allocations, unlike tracemalloc), reset through /proc/self/clear_refs once the model and the test set are
loaded; "extra" is that peak minus the resident memory just before the NLL started (interpreter, torch, data). The weights are pretrained/vae when present, else a fresh VAE of the same
architecture: the time does not depend on the weights. Digits are the test set binarised once (seed 0), as
`python -m train.evaluate` scores them.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python path/to/benchmarks/x.py), from any folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "benchmarks"

from .common import MNIST_DIR, REPO_ROOT, header, median, recipe_config, table, verdict

TARGET_S = 120.0  # full 10,000-digit k=5000 run
ARCH = recipe_config("vae")  # the 784-200-200-50 VAE of the bundled weights


def load(num_digits: int):
    import torch

    from vae_models import build_model, load_model
    from vae_models.data import load_mnist

    path = REPO_ROOT / "pretrained" / "vae"
    if (path / "model.safetensors").is_file():
        model, source = load_model(path), "pretrained/vae"
    else:
        torch.manual_seed(0)
        model, source = build_model("vae", **ARCH), "fresh 784-200-200-50 VAE"
    grey, _ = load_mnist("test", data_dir=MNIST_DIR)
    binary = torch.bernoulli(grey.float().div(255).unsqueeze(1), generator=torch.Generator().manual_seed(0))
    return model.eval(), binary[:num_digits], source


# --------------------------------------------------------------------------------------------- baselines


def previous_nll(model, images, num_samples: int, batch_size: int = 10, chunk: int = 500):
    """`importance_sampled_nll` as it was before commits 2304ca9, df8be3d and 5dd8e5f: the same streaming, but all
    batch * chunk samples decoded at once and the Bernoulli likelihood taken against x repeated k times."""
    import torch

    from vae_models.blocks import log_normal

    def weights(x, k):
        enc = model.encode(x)
        b, d = enc.mean.shape
        z = enc.mean + (0.5 * enc.logvar).exp() * torch.randn(k, b, d)
        logits = model.decoder_logits(z.reshape(k * b, d))
        log_px = model.log_likelihood(logits, x.repeat(k, 1, 1, 1)).view(k, b)
        return log_px + log_normal(z) - log_normal(z, enc.mean, enc.logvar)

    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size]
            total = torch.full((len(x),), -math.inf, dtype=torch.float64)
            for done in range(0, num_samples, chunk):
                w = weights(x, min(chunk, num_samples - done))
                total = torch.logaddexp(total, torch.logsumexp(w.double(), dim=0))
            out.append(math.log(num_samples) - total)
    return torch.cat(out)


def naive_nll(model, images, num_samples: int):
    """What one writes first: image by image, all k samples at once, the textbook BCE-with-logits likelihood on x
    repeated k times, under no_grad (not inference_mode)."""
    import torch
    import torch.nn.functional as F

    out = []
    with torch.no_grad():
        for x in images:
            mean, logvar = model.encoder(x[None]).chunk(2, dim=1)
            std = torch.exp(0.5 * logvar)
            z = mean + std * torch.randn(num_samples, mean.shape[1])
            logits = model.decoder(z).flatten(1)
            log_px = -F.binary_cross_entropy_with_logits(logits, x.flatten().expand(num_samples, -1),
                                                         reduction="none").sum(1)
            log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
            log_qz = torch.distributions.Normal(mean, std).log_prob(z).sum(1)
            out.append(math.log(num_samples) - torch.logsumexp(log_px + log_pz - log_qz, 0))
    return torch.stack(out)


def decoder_only(model, images, num_samples: int, rows: int = 1024):
    """A floor, not an estimate: only the decoder forward passes the NLL needs (its matmuls, biases and ReLUs on
    num_samples latent codes per image, `rows` at a time), no likelihood, no encoder, no reduction."""
    import torch

    total = len(images) * num_samples
    d = model.config.latent_dim
    with torch.inference_mode():
        for start in range(0, total, rows):
            model.decoder(torch.randn(min(rows, total - start), d))
    return torch.full((len(images),), float("nan"))


# --------------------------------------------------------------------------------------------- one setting


def memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def run_one(impl: str, num_digits: int, num_samples: int, batch_size: int, chunk: int, rows: int = 0) -> dict:
    """Runs in a fresh subprocess: one NLL computation; returns seconds, peak and pre-run RSS (MB), mean NLL.
    rows: GaussianEncoderMixin.ROWS_PER_STEP for this run (0: the library's value)."""
    import torch

    from vae_models.metrics import importance_sampled_nll
    from vae_models.vae import GaussianEncoderMixin

    if rows:
        GaussianEncoderMixin.ROWS_PER_STEP = rows
    model, images, source = load(num_digits)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS: the peak below is the computation's own
    before = memory_mb("VmRSS")
    torch.manual_seed(0)
    start = time.perf_counter()
    if impl == "ours":
        nll = importance_sampled_nll(model, images, num_samples=num_samples, batch_size=batch_size, chunk=chunk)
    elif impl == "previous":
        nll = previous_nll(model, images, num_samples, batch_size, chunk)
    elif impl == "decoder_only":
        nll = decoder_only(model, images, num_samples)
    else:
        nll = naive_nll(model, images, num_samples)
    seconds = time.perf_counter() - start
    peak = memory_mb("VmHWM")
    return {"seconds": seconds, "peak_mb": peak, "base_mb": before, "nll": nll.mean().item(), "source": source,
            "threads": torch.get_num_threads()}


def measure(impl: str, num_digits: int, num_samples: int, batch_size: int = 10, chunk: int = 500,
            rows: int = 0) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.eval_nll", "--one", json.dumps(
        {"impl": impl, "num_digits": num_digits, "num_samples": num_samples, "batch_size": batch_size,
         "chunk": chunk, "rows": rows})]
    out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{cmd} failed ({out.returncode}): {out.stderr[-2000:]}")
    result = json.loads(lines[-1][7:])
    print(f"{impl} n={num_digits} k={num_samples} batch={batch_size} chunk={chunk} rows={rows or 'default'}: "
          f"{result['seconds']:.2f} s, "
          f"peak {result['peak_mb']:.0f} MB", file=sys.stderr, flush=True)
    return result


# --------------------------------------------------------------------------------------------- main


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subset", type=int, default=500, help="digits for the k and batch/chunk sweeps")
    p.add_argument("--ks", type=int, nargs="+", default=[100, 500, 1000, 5000])
    p.add_argument("--compare-digits", type=int, default=100, help="digits for ours vs naive/previous")
    p.add_argument("--compare-repeats", type=int, default=3)
    p.add_argument("--no-full", action="store_true", help="skip the full 10,000-digit k=5000 run")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(run_one(**json.loads(args.one))), flush=True)
        return

    out = [header("Importance-sampled test NLL (784-200-200-50 VAE)")]

    # 1. growth with k, default batch 10 / chunk 500.
    rows, source = [], None
    for k in args.ks:
        r = measure("ours", args.subset, k)
        source = r["source"]
        full = r["seconds"] * 10_000 / args.subset
        rows.append([k, f"{r['seconds']:.2f}", f"{r['seconds'] / (args.subset * k) * 1e6:.2f}", f"{full:,.0f}",
                     f"{r['peak_mb']:.0f}", f"{r['peak_mb'] - r['base_mb']:.0f}", f"{r['nll']:.2f}"])
    out += [f"Weights: {source}; {r['threads']} threads. Growth with k on {args.subset} test digits "
            "(batch 10, chunk 500, the defaults):", "",
            table(["k", "seconds", "µs per sample", "extrapolated to 10,000 digits (s)", "peak RSS (MB)",
                   "extra RSS (MB)", "mean NLL"], rows), ""]

    # 2. batch size, chunk and decoder block at k=5000 (memory ~ batch * chunk * (d + 2) floats for z and the
    # weights, plus a block of rows * 784 logits).
    rows = []
    from vae_models.vae import GaussianEncoderMixin

    default_rows = GaussianEncoderMixin.ROWS_PER_STEP
    settings = [(1, 5000, 0), (10, 100, 0), (10, 500, 0), (10, 1000, 0), (100, 500, 0),
                (10, 500, 256), (10, 500, 4096), (10, 500, 10**9)]
    for batch, chunk, block in settings:
        r = measure("ours", args.subset, 5000, batch, chunk, block)
        shown = "all (batch × chunk)" if block >= batch * chunk else f"{block or default_rows}"
        if not block:
            shown += " (default)"
        rows.append([batch, chunk, shown, f"{r['seconds']:.2f}", f"{r['seconds'] * 10_000 / args.subset:,.0f}",
                     f"{r['peak_mb']:.0f}", f"{r['peak_mb'] - r['base_mb']:.0f}"])
    out += [f"Batch size, chunk and decoder rows per step (`GaussianEncoderMixin.ROWS_PER_STEP`) at k=5000 on "
            f"{args.subset} test digits:", "",
            table(["batch", "chunk", "decoder rows per step", "seconds", "extrapolated to 10,000 (s)",
                   "peak RSS (MB)", "extra RSS (MB)"], rows), ""]

    # 3. ours vs the previous implementation and a naive one, interleaved.
    impls = ("ours", "previous", "naive", "decoder_only")
    times = {i: [] for i in impls}
    results = {}
    for rep in range(args.compare_repeats):
        for impl in impls[rep % len(impls):] + impls[:rep % len(impls)]:
            results[impl] = measure(impl, args.compare_digits, 5000)
            times[impl].append(results[impl]["seconds"])
    labels = {"ours": "`importance_sampled_nll` (batch 10, chunk 500)",
              "previous": "before commits 2304ca9, df8be3d, 5dd8e5f: one decoder call per chunk, x repeated k times",
              "naive": "naive: per image, all k at once, BCE-with-logits, torch.distributions",
              "decoder_only": "floor: the decoder forward passes alone (1024 rows each), nothing else"}
    rows = [[labels[i], f"{median(times[i]):.2f}", f"{median([t / o for t, o in zip(times[i], times['ours'])]):.2f}×",
             f"{results[i]['peak_mb']:.0f}", f"{results[i]['nll']:.2f}"] for i in impls]
    out += [f"k=5000 on {args.compare_digits} test digits, {args.compare_repeats} interleaved repeats "
            "(median time; ratio = median of per-repeat time / ours):", "",
            table(["implementation", "seconds", "time vs ours", "peak RSS (MB)", "mean NLL"], rows), ""]

    # 4. the real thing.
    if not args.no_full:
        r = measure("ours", 10_000, 5000)
        out += ["Full test set, k=5000, batch 10, chunk 500 (one run):", "",
                table(["digits", "k", "seconds", "target", "", "peak RSS (MB)", "extra RSS (MB)", "mean NLL"],
                      [[10_000, 5000, f"{r['seconds']:.1f}", f"≤ {TARGET_S:.0f} s",
                        verdict(r["seconds"] <= TARGET_S), f"{r['peak_mb']:.0f}",
                        f"{r['peak_mb'] - r['base_mb']:.0f}", f"{r['nll']:.2f}"]]), ""]
    print("\n".join(out), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()

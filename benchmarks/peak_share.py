"""Training throughput against the machine's physical limit: images/s of the trainer's fast path and their share of
the fp32 matrix-multiply peak measured in the same run, for each recipe, at batch 128 and at the recipe's batch.

    OMP_NUM_THREADS=2 python -m benchmarks.peak_share                       # every one-process recipe, CPU
    OMP_NUM_THREADS=1 python -m benchmarks.peak_share --recipes vae avb --steps 300
    python -m benchmarks.peak_share --device cuda --recipes vae            # on a GPU: also steps/s

Method. FLOPs per image are counted from the layer shapes: torch.utils.flop_counter counts every matmul and
convolution of one whole training step (forward and backward of every player, as the trainer runs it), divided
by the batch size; elementwise work and Adam are not counted, so the share is of useful matrix work. The peak is
the best of several timed fp32 matmuls of a square size large enough to saturate the cores (`--peak-size`),
measured right before and right after the training, at the same thread count; the table gives the share of the
mean of the two. Throughput is timed over `--steps` steps after `--warmup` steps of `Trainer.steps()` (data
resident, loss terms read every sync_every steps), so it includes everything the loop does per step.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "benchmarks"

import torch
from torch.utils.flop_counter import FlopCounterMode

from .common import MNIST_DIR, REPO_ROOT, header, table

DEFAULT_RECIPES = ("ae", "vae", "cvae", "dvae", "avb", "aae")


def matmul_peak(size: int, device: str, repeats: int = 5) -> float:
    """The best fp32 FLOP/s of `repeats` timed (size x size) @ (size x size) products."""
    a, b = (torch.randn(size, size, device=device) for _ in range(2))
    best = float("inf")
    for _ in range(repeats + 1):  # the first is a warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - start) / 4)
    return 2 * size**3 / best


def flops_per_image(trainer, batch: tuple[torch.Tensor, torch.Tensor], batch_size: int) -> float:
    """Matmul and convolution FLOPs of one training step of `trainer` (every player, forward and backward)."""
    counter = FlopCounterMode(display=False)
    with counter:
        trainer.train_step(*batch, 0)
    return counter.get_total_flops() / batch_size


def matmul_shapes(shapes: list) -> tuple[int, int, int] | None:
    """(m, k, n) of a profiled aten::mm ([[m, k], [k, n]]) or aten::addmm ([bias, [m, k], [k, n], ...]) call."""
    pair = [s for s in shapes if len(s) == 2][:2]
    if len(pair) == 2 and pair[0][1] == pair[1][0]:
        return pair[0][0], pair[0][1], pair[1][1]
    return None


def time_by_operation(profiler, steps: int, rows: int = 12) -> tuple[list[list], float]:
    """The operations that take a training step's time, from torch.profiler averages grouped by input shape: rows
    [operation, input shapes, calls per step, us per call, GFLOP/s for the matrix products, share of the step] for
    the `rows` largest by self time, and the share of the step's time spent in matrix products."""
    events = [e for e in profiler.key_averages(group_by_input_shape=True) if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    products = 0.0
    out = []
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total):
        mkn = matmul_shapes(e.input_shapes) if e.key in ("aten::mm", "aten::addmm") else None
        per_call = e.self_cpu_time_total / e.count  # microseconds
        if mkn:
            products += e.self_cpu_time_total
        if len(out) < rows:
            rate = f"{2 * mkn[0] * mkn[1] * mkn[2] / per_call / 1e3:.0f}" if mkn else ""
            shapes = " ".join("x".join(map(str, s)) for s in e.input_shapes if s)
            out.append([e.key, shapes, f"{e.count / steps:g}", f"{per_call:.0f}", rate,
                        f"{100 * e.self_cpu_time_total / total:.1f} %"])
    return out, products / total


def measure(name: str, batch_size: int | None, steps: int, warmup: int, device: str, profile: int = 0) -> dict:
    from train.__main__ import config_from_args
    from train.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        args = ["--config", str(REPO_ROOT / "recipes" / f"{name}.json"), "--data-dir", str(MNIST_DIR),
                "--output-dir", tmp, "--checkpoint-every", "0", "--no-progress-bar",
                "--max-steps", str(warmup + steps + profile)]
        if batch_size:
            args += ["--batch-size", str(batch_size)]
        cfg = config_from_args(args)
        if device == "cuda":
            import os
            os.environ["ACCELERATE_USE_CPU"] = "false"
        trainer = Trainer(cfg)
        loop = trainer.steps()
        times = []
        for record in loop:
            if device == "cuda" and record["step"] in (warmup, warmup + steps):
                torch.cuda.synchronize()
            if record["step"] in (warmup, warmup + steps):
                times.append(time.perf_counter())
            if record["step"] == warmup + steps:
                break
        elapsed = times[-1] - times[0]
        breakdown = None
        if profile:  # the next `profile` steps of the same loop, under torch.profiler
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as profiler

            with profiler(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                for _ in loop:
                    pass
            breakdown = time_by_operation(prof, profile)
        images, labels = next(trainer._batches(0, 0))
        flops = flops_per_image(trainer, (images, labels), cfg.batch_size)
        return {"recipe": name, "batch": cfg.batch_size, "steps_per_s": steps / elapsed,
                "images_per_s": steps * cfg.batch_size / elapsed, "flops_per_image": flops, "breakdown": breakdown}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peak_share", description=__doc__.splitlines()[0])
    p.add_argument("--recipes", nargs="*", default=list(DEFAULT_RECIPES))
    p.add_argument("--batches", nargs="*", default=["128", "recipe"], help="batch sizes; 'recipe': the recipe's")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--peak-size", type=int, default=2048)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--profile", type=int, default=0, metavar="STEPS", help="then profile this many more steps and "
                   "print where a step's time goes, by operation and input shape (the matrix products with their "
                   "GFLOP/s)")
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)
    torch.set_flush_denormal(True)
    rows = []
    for name in args.recipes:
        recipe_batch = json.loads((REPO_ROOT / "recipes" / f"{name}.json").read_text())["train"].get("batch_size", 128)
        batches = sorted({recipe_batch if b == "recipe" else int(b) for b in args.batches})
        for batch in batches:
            before = matmul_peak(args.peak_size, args.device)
            row = measure(name, batch, args.steps, args.warmup, args.device, args.profile)
            after = matmul_peak(args.peak_size, args.device)
            peak = (before + after) / 2
            row |= {"peak_gflops": peak / 1e9, "peak_spread": abs(before - after) / peak,
                    "share_of_peak": row["images_per_s"] * row["flops_per_image"] / peak}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "breakdown"}), file=sys.stderr, flush=True)
    print(header("Training throughput against the fp32 matmul peak"))
    print(table(["recipe", "batch", "MFLOP / image", "images/s", "steps/s", "peak GFLOP/s (spread)", "share of peak"],
                [[r["recipe"], r["batch"], f"{r['flops_per_image'] / 1e6:.2f}", f"{r['images_per_s']:,.0f}",
                  f"{r['steps_per_s']:,.0f}", f"{r['peak_gflops']:.0f} ({100 * r['peak_spread']:.0f} %)",
                  f"{100 * r['share_of_peak']:.0f} %"] for r in rows]))
    for r in rows:
        if r["breakdown"]:
            ops, share = r["breakdown"]
            print(f"\n#### Where a step of {r['recipe']} at batch {r['batch']} goes ({args.profile} steps profiled; "
                  f"matrix products: {100 * share:.0f} % of the time)\n")
            print(table(["operation", "input shapes", "calls / step", "us / call", "GFLOP/s", "share of the step"],
                        ops))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

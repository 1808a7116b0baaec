"""Time per digit of AIS (vae_models/ais.py) on one thread, the accuracy each schedule buys (BDMC gap on digits
simulated from the model, and the estimate beside the k-sample IS bound on test digits), and the schedule that
measures >= 1000 test digits in <= 30 CPU-minutes per model.

    OMP_NUM_THREADS=1 python -m benchmarks.ais                      # pretrained/vae, the schedule grid
    OMP_NUM_THREADS=1 python -m benchmarks.ais --model aae-2d-mixture --digits 20 --bdmc-digits 10

The time per digit scales with steps x (chains + 2 pilot chains) x leapfrog steps decoder forward+backward passes,
so the 1000-digit cost is extrapolated from `--digits` test digits (the chains of a batch run together).
"""

from __future__ import annotations

import argparse
import time

import torch

from .common import MNIST_DIR, REPO_ROOT, header, table

BUDGET_S = 30 * 60  # CPU seconds per model for >= 1000 digits
SCHEDULES = [(100, 4, 3), (300, 4, 3), (300, 8, 3), (500, 8, 3), (1000, 4, 2)]  # (steps, chains, leapfrog)


def main(argv: list[str] | None = None) -> int:
    from vae_models import load_model
    from vae_models.ais import ais_log_likelihood, bdmc, simulate
    from vae_models.data import load_mnist
    from vae_models.metrics import importance_sampled_nll

    p = argparse.ArgumentParser(prog="python -m benchmarks.ais", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vae", help="export folder under pretrained/")
    p.add_argument("--digits", type=int, default=20, help="test digits timed per schedule")
    p.add_argument("--bdmc-digits", type=int, default=10)
    p.add_argument("--is-samples", type=int, default=5000)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = load_model(REPO_ROOT / "pretrained" / args.model)
    images, labels = load_mnist("test", data_dir=MNIST_DIR)
    x = torch.bernoulli(images[:args.digits].float().div(255).unsqueeze(1), generator=torch.Generator().manual_seed(0))
    y = labels[:args.digits] if model.spec.label_conditional else None
    rows = []
    is_line = ""
    if hasattr(model, "log_importance_weights") and model.config.model_type != "avb":
        start = time.process_time()
        torch.manual_seed(0)
        is_log_px = -importance_sampled_nll(model, x, y, num_samples=args.is_samples)
        is_line = (f"k={args.is_samples} IS bound on the same digits: {float(-is_log_px.mean()):.2f} nats "
                   f"({(time.process_time() - start) / args.digits:.2f} CPU-s/digit)")
    components = 10 if model.spec.label_conditional else model.prior_components
    sim_labels = (torch.arange(args.bdmc_digits) % components) if components else None
    codes, simulated = simulate(model, args.bdmc_digits, sim_labels, torch.Generator().manual_seed(1))
    for steps, chains, leapfrog in SCHEDULES:
        settings = {"num_steps": steps, "num_chains": chains, "leapfrog_steps": leapfrog}
        start = time.process_time()
        result = ais_log_likelihood(model, x, y, generator=torch.Generator().manual_seed(0), **settings)
        per_digit = (time.process_time() - start) / args.digits
        sandwich = bdmc(model, codes, simulated, sim_labels, generator=torch.Generator().manual_seed(2), **settings)
        nll = -result.log_px
        rows.append([steps, chains, leapfrog, per_digit, per_digit * 1000 / 60, float(nll.mean()),
                     float(nll.std() / len(nll) ** 0.5), float(result.acceptance.mean()), sandwich.gap,
                     "yes" if per_digit * 1000 <= BUDGET_S else "no"])
        print(rows[-1], flush=True)
    print(header(f"AIS on pretrained/{args.model}: {args.digits} test digits (seed-0 binarisation), BDMC on "
                 f"{args.bdmc_digits} simulated digits"))
    if is_line:
        print(f"- {is_line}\n")
    print(table(["steps", "chains", "leapfrog", "CPU-s/digit", "CPU-min/1000 digits", "AIS-NLL", "std err",
                 "acceptance", "BDMC gap", "fits 30 min"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

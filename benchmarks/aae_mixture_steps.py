"""Why does the live mixture AAE sometimes miss prior MMD < 0.1? Its MMD along training, at equal steps, per seed.

Runs the project's trainer (`Trainer.steps`, one torch thread, as the app's live training) on the live tab's 2-D
mixture AAE (demo/live.py `live_models()["aae-2d-mixture"]`, from its recipe), with optional config overrides (`--set key=json`), learning rate and batch
size, and every --every steps measures the prior MMD of 3000 test codes against 3000 prior samples (the same
estimator as benchmarks/live_training.py). Counting steps rather than seconds takes the machine's load out of the
comparison; `cpu s/step` converts steps to a time budget. With --petals, the final codes are also assigned to the
nearest mixture component by angle: the share of codes per component (1/10 each under the prior) and the digit
classes in each, which is where the misses come from.

    python -m benchmarks.aae_mixture_steps --seeds 0 1 2 3 --steps 1800 --every 300
    python -m benchmarks.aae_mixture_steps --set posterior='"gaussian"' --set adversarial_weight=10 --seeds 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python path/to/benchmarks/x.py), from any folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "benchmarks"

import torch

from demo.live import live_models
from train.evaluate import test_set
from train.trainer import TrainConfig, Trainer
from vae_models.aae import NUM_COMPONENTS
from vae_models.metrics import prior_mmd

REPO = Path(__file__).resolve().parents[1]
CHOICE = "aae-2d-mixture"


def petal_shares(codes: torch.Tensor, labels: torch.Tensor) -> tuple[list[float], list[list[int]]]:
    """(share of codes nearest each component by angle, in %; per class, how many of its codes each component got)."""
    angle = torch.atan2(codes[:, 1], codes[:, 0]) % (2 * math.pi)
    petal = torch.round(angle / (2 * math.pi / NUM_COMPONENTS)).long() % NUM_COMPONENTS
    shares = (torch.bincount(petal, minlength=NUM_COMPONENTS).float() * 100 / len(codes)).tolist()
    per_class = [torch.bincount(petal[labels == c], minlength=NUM_COMPONENTS).tolist() for c in range(10)]
    return shares, per_class


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=str(REPO.parent / "shared/data/mnist"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override a model config field")
    p.add_argument("--lr", type=float, default=None, help="default: the live preset's")
    p.add_argument("--batch-size", type=int, default=None, help="default: the live preset's")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--every", type=int, default=300)
    p.add_argument("--petals", action="store_true", help="print the final codes' share per mixture component")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    live = live_models()[CHOICE]
    model_type, fields, lr = live.model, dict(live.model_config), live.lr
    args.batch_size = args.batch_size or live.batch_size
    for item in args.set:
        key, _, value = item.partition("=")
        fields[key] = json.loads(value)
    lr = args.lr or lr
    grey, _, labels = test_set(args.data_dir, 3000, 0)
    checkpoints = list(range(args.every, args.steps + 1, args.every))
    print(f"### Mixture AAE, prior MMD (3000 test codes) by step: {json.dumps(fields)}, lr {lr:g}, batch "
          f"{args.batch_size}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| seed | " + " | ".join(f"step {s}" for s in checkpoints) + " | cpu s/step |")
    print("|---" * (len(checkpoints) + 2) + "|")
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as run:
            cfg = TrainConfig(model=model_type, model_config=fields, data_dir=args.data_dir,
                              batch_size=args.batch_size, lr=lr, max_steps=args.steps, seed=seed, output_dir=run,
                              checkpoint_every=0, progress_bar=False)
            trainer = Trainer(cfg)
            values, cpu, start = [], 0.0, time.process_time()
            steps = trainer.steps()
            for record in steps:
                if record["step"] in checkpoints:
                    cpu += time.process_time() - start
                    values.append(prior_mmd(trainer.model, grey, n=len(grey), generator=torch.Generator().manual_seed(0)))
                    trainer.model.train()
                    start = time.process_time()
                if record["step"] >= args.steps:
                    break
            steps.close()
        print(f"| {seed} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {cpu / args.steps:.4f} |", flush=True)
        if args.petals:
            model = trainer.model.eval()
            with torch.no_grad():
                shares, per_class = petal_shares(model.encode(grey).z, labels)
            print(f"\nseed {seed}: % of codes per component: {[round(s) for s in shares]}; per class: {per_class}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

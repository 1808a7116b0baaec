"""Why a quadrant NN baseline scores what it does: -log p(y|x) per epoch on a validation split held out from the
training set (never the test set), for the choices where our `quadrant_nn` and Pyro's CVAE tutorial differ.

    OMP_NUM_THREADS=1 python -m benchmarks.quadrant_validation --epochs 20                      # one shared net
    OMP_NUM_THREADS=1 python -m benchmarks.quadrant_validation --given 1 --epochs 20            # a net per setting
    OMP_NUM_THREADS=1 python -m benchmarks.quadrant_validation --given 1 --inputs grey          # Pyro's grey inputs
    OMP_NUM_THREADS=1 python -m benchmarks.quadrant_validation --given 1 --grey-targets         # Pyro's grey targets
    OMP_NUM_THREADS=1 python -m benchmarks.quadrant_validation --net-per-setting                # the bundled design
    OMP_NUM_THREADS=1 python -m benchmarks.quadrant_validation --given 1 --inputs grey --test   # + the test set once

Training digits 0-49,999, each batch binarised afresh (dynamic binarisation), Adam, batch 128 (the recipe's
settings); validation digits 50,000-59,999 binarised once with seed 0, as `train.evaluate` binarises the test set.
Validation targets are always the binary digits, so every column is on `train.evaluate`'s scale. `--inputs grey`
feeds the grey digits to the network, in training and validation, as Pyro's tutorial does (it scores its baseline
on grey inputs, with grey-level targets whose cross-entropy equals the expected binary one). `--grey-targets` trains
on grey-level targets behind binary inputs: the same expected loss with less noise.
"""

from __future__ import annotations

import argparse
import time

import torch

from .common import MNIST_DIR, header

TRAIN_DIGITS = 50_000


def main(argv: list[str] | None = None) -> int:
    from vae_models import build_model
    from vae_models.data import load_mnist

    p = argparse.ArgumentParser(prog="python -m benchmarks.quadrant_validation", description=__doc__.splitlines()[0])
    p.add_argument("--given", type=int, default=0, choices=(0, 1, 2, 3),
                   help="train in this setting only (one network per setting, as Pyro); 0: 1-3 at random")
    p.add_argument("--net-per-setting", action="store_true", help="the model's net_per_setting (needs --given 0)")
    p.add_argument("--hidden", default="500,500", help="hidden widths")
    p.add_argument("--inputs", default="binary", choices=("binary", "grey"), help="what the network sees")
    p.add_argument("--grey-targets", action="store_true", help="train on grey-level targets")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=str(MNIST_DIR))
    p.add_argument("--test", action="store_true", help="after training, score the test set once (train.evaluate's "
                   "seed-0 binarised targets; the inputs per --inputs), to compare with Pyro's numbers: not for tuning")
    args = p.parse_args(argv)
    if args.net_per_setting and args.given:
        p.error("--net-per-setting trains every setting: leave --given at 0")
    print(header("Quadrant baseline on a validation split"), flush=True)

    torch.manual_seed(args.seed)
    images, _ = load_mnist("train", data_dir=args.data_dir)
    grey = images.float().div(255).unsqueeze(1)
    train, val = grey[:TRAIN_DIGITS], grey[TRAIN_DIGITS:]
    val_binary = torch.bernoulli(val, generator=torch.Generator().manual_seed(0))
    model = build_model("quadrant_nn", hidden_dims=[int(h) for h in args.hidden.split(",")],
                        num_given_quadrants=args.given, net_per_setting=args.net_per_setting)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    order = torch.Generator().manual_seed(args.seed)

    @torch.no_grad()
    def nll(given: int, grey_digits, binary_digits) -> float:
        counts = model.given_counts(given, len(grey_digits))
        x, mask = model.prepare(grey_digits if args.inputs == "grey" else binary_digits, counts)
        return -model.missing_log_likelihood(model.logits(x, counts), binary_digits, mask).mean().item()

    print("\n| epoch | 1 given | 2 given | 3 given | seconds |\n|---|---|---|---|---|", flush=True)
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        for rows in torch.randperm(len(train), generator=order).split(args.batch_size):
            batch = train[rows]
            binary = torch.bernoulli(batch, generator=order)
            inputs = batch if args.inputs == "grey" else binary
            targets = batch if args.grey_targets else binary
            if args.net_per_setting:
                loss = model.loss((binary, None)).loss
            else:
                counts = model.training_counts(len(batch))
                x, mask = model.prepare(inputs, counts)
                loss = -model.missing_log_likelihood(model.logits(x, counts), targets, mask).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        scores = [nll(k, val, val_binary) for k in (1, 2, 3)]
        print(f"| {epoch} | {scores[0]:.2f} | {scores[1]:.2f} | {scores[2]:.2f} | {time.perf_counter() - start:.0f} |",
              flush=True)
    if args.test:
        from train.evaluate import test_set

        grey_test, binary_test, _ = test_set(args.data_dir, None, seed=0)
        scores = [nll(k, grey_test, binary_test) for k in (1, 2, 3)]
        print(f"| test set | {scores[0]:.2f} | {scores[1]:.2f} | {scores[2]:.2f} | |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

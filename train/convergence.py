"""Has a run converged? Its validation NLL at every checkpoint it kept, and the change over the last 10 % of it.

    python -m train.convergence resume/runs/vae-2d runs/reproduce/vae-2d --data-dir ../shared/data/mnist

RUN is the run folder (its checkpoints/, written every `checkpoint_every` steps; keep them all with
`keep_checkpoints`), EXPORT the weights the run ended with (`--save-pretrained`), whose training record names the
validation digits: the last `validation_examples` training digits, which the run never trained on. Each checkpoint
is scored as its export would be (the moving average of the weights where the run keeps one), on those digits
binarised once with `--seed`:
- a 2-D model with the AIS interface: -log p(x) exactly, by quadrature (train.evaluate's Exact-NLL);
- another model with an importance-weighted bound: its k-sample bound (Burda et al. 2015, eq. 8).

The record written into EXPORT's eval_results.json (merged) is the change of the mean validation NLL from the
checkpoint nearest 90 % of the run to its end, with the paired standard error over the same digits and the whole
curve in its details. "Flat" means the change is under FLAT_TOLERANCE nats, a tolerance and not a significance
test: on the same digits the paired standard error is a few hundredths of a nat, so any last improvement, however
small, is significant. With a learning rate that decays to nearly nothing, flatness says the optimiser has settled on
this schedule, not that a longer one could not do better.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from vae_models import CheckpointError, ConfigError, load_model
from vae_models.export import EvalResult, ExportError, merge_eval_results, read_training_record
from vae_models.metrics import importance_sampled_nll
from vae_models.quadrature import quadrature_log_likelihood

from . import checkpoint as ckpt
from .compare import paired_difference
from .evaluate import gets_is_nll, has_exact_likelihood, validation_set
from .options import add_data_options, invocation

LAST_SHARE = 0.1  # "the last 10 % of the run"
FLAT_TOLERANCE = 0.1  # nats: a change of the mean validation NLL below this over the last 10 % is "flat"


def validation_nll(model, images: torch.Tensor, labels: torch.Tensor, num_samples: int, seed: int) -> torch.Tensor:
    """Per-digit -log p(x) (N,) float64: exact for 2-D models with the AIS interface, else the k-sample bound."""
    y = labels if model.spec.label_conditional else None
    if has_exact_likelihood(model):
        return -quadrature_log_likelihood(model, images, y).log_px
    if not gets_is_nll(model.spec):
        raise ExportError(f"{model.config.model_type} has neither a 2-D code for quadrature nor an importance-weighted "
                          "bound: no affordable validation likelihood")
    torch.manual_seed(seed)
    return importance_sampled_nll(model, images, y, num_samples=num_samples)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.convergence", description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="the run folder (its checkpoints/)")
    p.add_argument("export", help="the export the run ended with (receives the record)")
    add_data_options(p)
    p.add_argument("--num-samples", type=int, default=1000, help="importance samples k per digit (models scored "
                   "by their bound)")
    p.add_argument("--limit", type=int, help="use only the first N validation digits")
    p.add_argument("--seed", type=int, default=0, help="seed of the binarisation and of the importance samples")
    p.add_argument("--output", default="eval_results.json", help="file name inside EXPORT")
    args = p.parse_args(argv)
    if args.num_samples < 1 or (args.limit is not None and args.limit < 2):
        p.error("--num-samples must be >= 1 and --limit >= 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = invocation("train.convergence", argv)
    try:
        model = load_model(args.export)
        record = read_training_record(args.export)
        validation = validation_set(args.export, args.data_dir, args.data_source)
        if record is None or validation is None:
            raise ExportError(f"{args.export} names no validation digits (its run held none out: "
                              "--validation-examples)")
        folders = ckpt.checkpoint_folders(Path(args.run))
        total = record.steps
        if not folders or not total:
            raise ExportError(f"{args.run} keeps no checkpoints, or {args.export} records no step count")
        grey, labels = validation
        if args.limit is not None:
            grey, labels = grey[:args.limit], labels[:args.limit]
        scored = grey if not model.config.pixel_likelihood.binary else \
            torch.bernoulli(grey, generator=torch.Generator().manual_seed(args.seed))
        curve = [(ckpt.read_state(folder)["step"], folder) for folder in folders]
        if not any(step < total for step, _ in curve):
            raise ExportError(f"{args.run} keeps no checkpoint before the end of the run")
        nll = {}
        for step, folder in curve:
            ckpt.load_weights(folder, model)
            nll[step] = validation_nll(model, scored, labels, args.num_samples, args.seed)
            print(f"step {step:>9,} ({step / total:6.1%}): validation NLL {float(nll[step].mean()):.3f}", flush=True)
    except (CheckpointError, ConfigError, ExportError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    final = load_model(args.export)
    nll[total] = validation_nll(final, scored, labels, args.num_samples, args.seed)
    print(f"step {total:>9,} (export): validation NLL {float(nll[total].mean()):.3f}")
    start = min((step for step in nll if step < total), key=lambda step: abs(step - (1 - LAST_SHARE) * total))
    change, std_error = paired_difference(nll[total], nll[start])
    how = ("-log p(x) by quadrature (train.evaluate's Exact-NLL)" if has_exact_likelihood(final) else
           f"the importance-weighted bound, k={args.num_samples}")
    result = EvalResult(
        f"Validation NLL change over the last {LAST_SHARE:.0%} of the run", "convergence", round(change, 4),
        record.dataset, "validation",
        f"mean change of {how} on the {len(scored)} held-out training digits (the run's validation_examples, "
        f"binarised once with seed {args.seed}) from step {start} ({start / total:.1%} of the run, the checkpoint "
        f"nearest {1 - LAST_SHARE:.0%}) to the end (step {total}, the export); std_error is the paired one; flat: "
        f"|change| < {FLAT_TOLERANCE:g} nats; the curve is in the details",
        {"num_images": len(scored), "std_error": round(std_error, 4), "units": "nats", "from_step": start,
         "to_step": total, "flat": abs(change) < FLAT_TOLERANCE,
         "curve": {str(step): round(float(v.mean()), 4) for step, v in sorted(nll.items())}}, command)
    merge_eval_results(args.export, [result], args.output)
    print(f"change over the last {1 - start / total:.1%} of the run: {change:+.4f} ± {std_error:.4f} nats (paired "
          f"s.e.); {'flat' if result.details['flat'] else 'NOT flat'} (tolerance {FLAT_TOLERANCE:g} nats); written to "
          f"{Path(args.export) / args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

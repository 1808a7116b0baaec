"""The README's results table from the exports' eval_results.json files, each row beside the paper's anchor:
`python -m train.report pretrained`. Numbers come only from the evaluation files (written by `train.evaluate`); the
anchors are declared with each bundled checkpoint (the "anchors" of its recipe, vae_models/catalogue.py). The
README's Results table is this output verbatim (tests/test_bundled_weights.py checks it), so regenerate it with this
command after re-evaluating.

`--spread` summarises repeated runs instead (a folder holding one export per seed or label draw): per metric, the
mean and sample standard deviation over the exports that have it, and how many there are."""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from vae_models import checkpoints
from vae_models.export import EvalResult, ExportError, read_eval_results


def anchor(export: str, metric: str) -> str:
    """The published number a checkpoint's metric is compared with ("" when none is declared)."""
    declared = checkpoints().get(export)
    anchors = declared[0].anchors if declared else ()
    return next((text for prefix, text in anchors if metric.startswith(prefix)), "")


def measured(entry: EvalResult) -> str:
    """The value to 4 significant digits, with its standard error when the evaluation recorded one."""
    error = entry.details.get("std_error")
    return f"{entry.value:.4g}" + (f" ± {error:.2g} (s.e.)" if error is not None else "")


def rows(folder: Path):
    for export in sorted(p for p in folder.iterdir() if p.is_dir()):
        for entry in read_eval_results(export) or []:
            yield export.name, entry.name, measured(entry), anchor(export.name, entry.name)


def spread(folder: Path) -> list[tuple[str, int, float, float]]:
    """(metric, number of exports, mean, sample s.d.; 0 for one export) over the exports in `folder`, in the order
    the metrics first appear."""
    values: dict[str, list[float]] = {}
    for export in sorted(p for p in folder.iterdir() if p.is_dir()):
        for entry in read_eval_results(export) or []:
            values.setdefault(entry.name, []).append(entry.value)
    return [(name, len(v), statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0)
            for name, v in values.items()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.report", description=__doc__.splitlines()[0])
    p.add_argument("folder", help="a folder of exports, e.g. pretrained")
    p.add_argument("--only", nargs="*", help="metric name prefixes to keep (default: all)")
    p.add_argument("--spread", action="store_true", help="mean ± s.d. of each metric over the folder's exports "
                   "(repeated runs: seeds, label draws)")
    args = p.parse_args(argv)
    folder = Path(args.folder)
    try:  # (metric, table line) pairs
        if args.spread:
            header = "| metric | runs | mean ± s.d. |\n|---|---|---|"
            lines = [(m, f"| {m} | {n} | {mean:.4g} ± {sd:.2g} |") for m, n, mean, sd in spread(folder)]
        else:
            header = "| model | metric | measured | anchor |\n|---|---|---|---|"
            lines = [(m, f"| `{model}` | {m} | {value} | {text} |") for model, m, value, text in rows(folder)]
    except (ExportError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(header)
    for metric, line in lines:
        if not args.only or any(metric.startswith(prefix) for prefix in args.only):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

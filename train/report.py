"""The README's results table from the exports' eval_results.json files, each row beside the paper's anchor:
`python -m train.report pretrained`. Numbers come only from the evaluation files (written by `train.evaluate`); the
README's Results table is this output verbatim (tests/test_bundled_weights.py checks it), so regenerate it with
this command after re-evaluating."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# (export folder, metric name) -> the published number it is compared with.
ANCHORS = {
    ("vae", "IS-NLL"): "86.76 (IWAE paper, same 784-200-200-50 VAE, k=5000); 89.78 (Pythae's VAE); our target <= 88",
    ("avb", "AIS-NLL"): "80.2 (AVB paper, conv, AIS; its VAE: 81.9)",
    ("socvae", "CLL (1"): "71.8 (Pyro's CVAE reproduction)",
    ("socvae", "CLL (2"): "51.0 (Pyro's CVAE)",
    ("socvae", "CLL (3"): "24.2 (Pyro's CVAE)",
    ("quadrant_nn", "CLL (1"): "100.4 (Pyro's NN baseline)",
    ("quadrant_nn", "CLL (2"): "61.9 (Pyro's NN baseline)",
    ("quadrant_nn", "CLL (3"): "25.4 (Pyro's NN baseline)",
    ("cvae", "Conditional accuracy"): "target >= 0.95",
    ("aae-2d-supervised", "Conditional accuracy"): "target >= 0.95 (component c classified as c)",
    ("classifier", "Test accuracy"): "target >= 0.990",
}


def rows(folder: Path):
    for export in sorted(p for p in folder.iterdir() if (p / "eval_results.json").is_file()):
        for entry in json.loads((export / "eval_results.json").read_text()):
            anchor = next((a for (name, prefix), a in ANCHORS.items()
                           if name == export.name and entry["name"].startswith(prefix)), "")
            yield export.name, entry["name"], measured(entry), anchor


def measured(entry: dict) -> str:
    """The value to 4 significant digits, with its standard error when the evaluation recorded one."""
    error = (entry.get("details") or {}).get("std_error")
    return f"{entry['value']:.4g}" + (f" ± {error:.2g} (s.e.)" if error is not None else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.report", description=__doc__.splitlines()[0])
    p.add_argument("folder", help="a folder of exports, e.g. pretrained")
    p.add_argument("--only", nargs="*", help="metric name prefixes to keep (default: all)")
    args = p.parse_args(argv)
    print("| model | metric | measured | anchor |\n|---|---|---|---|")
    for model, metric, value, anchor in rows(Path(args.folder)):
        if not args.only or any(metric.startswith(prefix) for prefix in args.only):
            print(f"| `{model}` | {metric} | {value} | {anchor} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

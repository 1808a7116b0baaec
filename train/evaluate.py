"""Evaluate exported models on their test set and write `eval_results.json` into each checkpoint folder.

    python -m train.evaluate pretrained/vae pretrained/cvae --data-dir ../shared/data/mnist
    python -m train.evaluate --all pretrained/ --data-dir ../shared/data/mnist --limit 1000 --num-samples 500

Each model is evaluated on the test split of the dataset it was trained on (its training_args.json; MNIST when
it has none), and gets the metrics its declaration (`model.spec`, vae_models/registry.py) says apply:

    likelihood "bound" or "implicit"   IS-NLL: -log p(x) (label-conditional: -log p(x|y)) by the k-sample
    (generative models)                importance-weighted bound (Burda et al. 2015, eq. 8) on the test set
                                       binarised once with a fixed seed
    completes_quadrants                CLL: -log p(y|x) of the missing quadrants given 1, 2 or 3 (Sohn et al.
                                       2015, Table 1)
    denoising                          PSNR / SSIM of the clean test digits reconstructed from corrupted ones
    generative                         classifier-feature FD (Fréchet distance of the classifier's penultimate
                                       features, NOT Inception FID) between 10,000 prior samples and the test set
    label_conditional                  conditional accuracy: share of samples asked for digit d labelled d
    prior_matched                      prior MMD between codes of test digits and prior samples
    kind "classifier"                  test accuracy

The classifier metrics need a classifier trained on the same dataset; they are skipped, with a warning, otherwise.
`eval_results.json` holds `vae_models.export.EvalResult` records; the model card turns them into its model-index.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from vae_models import CheckpointError, ConfigError, load_model
from vae_models.corruption import corrupt
from vae_models.data import load_mnist
from vae_models.export import EvalResult, ExportError, training_dataset, write_eval_results
from vae_models.metrics import (
    classifier_frechet_distance,
    conditional_accuracy,
    conditional_nll_quadrants,
    importance_sampled_nll,
    prior_mmd,
    psnr,
    ssim,
)

CORRUPTIONS = (("gaussian", 0.25), ("gaussian", 0.5), ("salt_and_pepper", 0.1), ("salt_and_pepper", 0.3),
               ("block", 0.5))
FD_SAMPLES = 10_000
MMD_SAMPLES = 1_000


class EvalError(RuntimeError):
    """A checkpoint or option the evaluation cannot use; its message is one line for users."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="*", help="exported model folders (config.json + model.safetensors)")
    p.add_argument("--all", metavar="DIR", help="evaluate every model folder directly inside DIR")
    p.add_argument("--data-dir", help="folder with the MNIST IDX files (default: the download cache)")
    p.add_argument("--num-samples", type=int, default=5000, help="importance samples k per test image (IS-NLL)")
    p.add_argument("--cll-samples", type=int, default=100, help="importance samples per image for the quadrant CLL")
    p.add_argument("--limit", type=int, help="use only the first N test images (quick checks)")
    p.add_argument("--classifier", default="pretrained/classifier",
                   help="the MNIST classifier for FD / conditional accuracy; skipped with a warning if missing")
    p.add_argument("--output", default="eval_results.json", help="file name written inside each checkpoint folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the binarisation, corruptions and samples")
    args = p.parse_args(argv)
    if args.all:
        root = Path(args.all)
        if not root.is_dir():
            p.error(f"--all: {root} is not a folder")
        args.checkpoints += sorted(str(d) for d in root.iterdir() if (d / "config.json").is_file())
    if not args.checkpoints:
        p.error("give checkpoint folders or --all DIR")
    if args.num_samples < 1 or args.cll_samples < 1 or (args.limit is not None and args.limit < 10):
        p.error("--num-samples and --cll-samples must be >= 1, --limit >= 10")
    if os.sep in args.output or args.output in ("", ".", ".."):
        p.error("--output is a file name, written inside each checkpoint folder")
    return args


def test_set(data_dir: str | None, limit: int | None, seed: int, dataset: str = "mnist"):
    """(grey images float (N,1,28,28) in [0,1], binarised images, labels) of `dataset`'s test split. The
    binarisation is drawn once with `seed`, so every model is scored on the same binary digits (the usual
    dynamically binarised protocol)."""
    images, labels = load_mnist("test", data_dir=data_dir, dataset=dataset)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    grey = images.float().div(255).unsqueeze(1)
    binary = torch.bernoulli(grey, generator=torch.Generator().manual_seed(seed))
    return grey, binary, labels


@torch.no_grad()
def sample_images(model, n: int, seed: int, batch_size: int = 1000) -> torch.Tensor:
    """n prior samples; label-conditional models get the digits 0..9 in turn."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, batch_size):
        count = min(batch_size, n - start)
        labels = (torch.arange(start, start + count) % 10).to(model.device) if model.spec.label_conditional else None
        out.append(model.sample(count, labels=labels, generator=g).cpu())
    return torch.cat(out)


@torch.no_grad()
def reconstruct(model, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    return torch.cat([model.reconstruct(images[i:i + batch_size].to(model.device)).cpu()
                      for i in range(0, len(images), batch_size)])


def evaluate(model, data, args, classifier, command: str, dataset: str = "mnist") -> list[EvalResult]:
    """The metrics that `model.spec` says apply, as eval_results.json records; `data` is test_set(...) of
    `dataset`. `classifier`: None skips the classifier-judged metrics."""
    grey, binary, labels = data
    spec = model.spec
    binarised = getattr(model.config, "likelihood", "bernoulli") == "bernoulli"
    scored = binary if binarised else grey
    data_note = f"test set binarised once (seed {args.seed})" if binarised else "grey-level test set"
    n = len(grey)
    results: list[EvalResult] = []

    def add(name: str, kind: str, value: float, estimator: str, **details) -> None:
        results.append(EvalResult(name, kind, round(float(value), 4), dataset, "test", estimator,
                                  {"num_images": n, **details}, command))

    if spec.has_likelihood_bound:
        k = args.num_samples
        nll = importance_sampled_nll(model, scored, labels if spec.label_conditional else None, num_samples=k,
                                     progress=True)
        what = "-log p(x|y)" if spec.label_conditional else "-log p(x)"
        add(f"IS-NLL (k={k})", "nll", nll.mean(), f"{what} in nats, importance-weighted bound (Burda et al. 2015, "
            f"eq. 8) with k={k}; {data_note}", std_error=round(float(nll.std() / math.sqrt(n)), 4), units="nats")
    if spec.completes_quadrants:
        for given in (1, 2, 3):
            nll = conditional_nll_quadrants(model, binary, given, num_samples=args.cll_samples, progress=True,
                                            generator=torch.Generator().manual_seed(args.seed))
            estimator = ("exact" if spec.likelihood == "exact"
                         else f"importance sampled, {args.cll_samples} samples")
            add(f"CLL ({given} quadrant{'s' if given > 1 else ''} given)", "cll", nll.mean(),
                f"-log p(y|x) of the missing quadrants in nats (Sohn et al. 2015, Table 1), {estimator}; "
                f"{data_note}", std_error=round(float(nll.std() / math.sqrt(n)), 4), units="nats")
    if spec.denoising:
        for kind, level in tqdm(CORRUPTIONS, desc="denoising", leave=False):
            noisy = corrupt(grey, kind, level, generator=torch.Generator().manual_seed(args.seed))
            clean = reconstruct(model, noisy)
            tag = f"{kind} {level}"
            add(f"Denoising PSNR ({tag})", "psnr", psnr(clean, grey), "PSNR in dB of the reconstruction of the "
                "corrupted grey-level test digits against the clean ones", input_psnr=round(float(psnr(noisy, grey)), 4),
                corruption=kind, level=level, units="dB")
            add(f"Denoising SSIM ({tag})", "ssim", ssim(clean, grey), "SSIM of the reconstruction of the corrupted "
                "grey-level test digits against the clean ones", input_ssim=round(float(ssim(noisy, grey)), 4),
                corruption=kind, level=level)
    if classifier is not None and spec.generative:
        samples = sample_images(model, min(FD_SAMPLES, n), args.seed)
        add("Classifier-feature FD", "classifier_fd", classifier_frechet_distance(classifier, samples, grey),
            "Fréchet distance between Gaussians fitted to the classifier's penultimate features of "
            f"{len(samples)} prior samples (pixel means) and the grey-level test digits; not Inception FID",
            num_samples=len(samples))
    if classifier is not None and spec.generative and spec.label_conditional:
        per_digit = max(1, min(FD_SAMPLES, n) // 10)
        value = conditional_accuracy(classifier, model, per_digit, torch.Generator().manual_seed(args.seed))
        add("Conditional accuracy", "accuracy", value, f"share of {per_digit} samples per digit d that the "
            "classifier labels d", num_samples=10 * per_digit)
    if spec.prior_matched:
        m = min(MMD_SAMPLES, n)
        value = prior_mmd(model, scored, None, m, torch.Generator().manual_seed(args.seed))
        add("Prior MMD", "mmd", value, f"unbiased MMD^2 (Gretton et al. 2012), sum of RBF kernels, between codes of "
            f"{m} test digits (one posterior sample each) and {m} prior samples; {data_note}", num_samples=m)
    if spec.kind == "classifier":
        accuracy = (model.predict(grey) == labels).float().mean()
        add("Test accuracy", "accuracy", accuracy, "top-1 accuracy on the grey-level test digits")
    return results


def load_classifier(path: str):
    """(classifier, the dataset it was trained on), or (None, None) when there is none at `path`."""
    if not os.path.isdir(path):
        print(f"warning: no classifier at {path}: skipping the classifier-feature FD and conditional accuracy "
              "(train one with `python -m train --model classifier ...` or pass --classifier)", file=sys.stderr)
        return None, None
    classifier = load_model(path)
    if classifier.spec.kind != "classifier":
        raise EvalError(f"--classifier {path} holds a {classifier.config.model_type!r} model, not a classifier")
    return classifier, training_dataset(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "train.evaluate", *(sys.argv[1:] if argv is None else argv)])
    torch.manual_seed(args.seed)  # the importance samples themselves
    try:
        models = {path: (load_model(path), training_dataset(path)) for path in args.checkpoints}
        classifier, classifier_dataset = load_classifier(args.classifier)
        data = {dataset: test_set(args.data_dir, args.limit, args.seed, dataset)
                for dataset in sorted({dataset for _, dataset in models.values()})}
    except (CheckpointError, ConfigError, EvalError, ExportError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = []
    for path, (model, dataset) in models.items():
        judge = classifier if dataset == classifier_dataset else None
        if classifier is not None and judge is None:
            print(f"warning: {path} was trained on {dataset}, the classifier on {classifier_dataset}: skipping "
                  "its classifier-judged metrics", file=sys.stderr)
        results = evaluate(model, data[dataset], args, judge, command, dataset)
        write_eval_results(path, results, args.output)
        rows += [(Path(path).name, model.config.model_type, r.name, r.value) for r in results]
        print(f"wrote {Path(path) / args.output} ({len(results)} results)", file=sys.stderr)
    widths = [max(len(str(row[i])) for row in rows + [("model", "type", "metric", "value")]) for i in range(4)]
    for row in [("model", "type", "metric", "value"), *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Model cards for exported models, built with huggingface_hub's ModelCard / ModelCardData / EvalResult.

Inputs, all from the export folder: config.json (what the model is), training_args.json (the exact training
command, written by the trainer), samples.png (the sample grid), and eval_results.json when `python -m
train.evaluate` has written it: a list of {"name", "type", "value", "dataset", "split", "estimator", "command"}
entries, which become the card's model-index. Without it the card has no model-index (no invented numbers).
"""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

# model_type -> (what it is, paper title, arXiv id or None for papers that are not on arXiv).
PAPERS = {
    "ae": ("a deterministic autoencoder, the baseline that shows why an autoencoder is not a generative model",
           "Reducing the Dimensionality of Data with Neural Networks (Hinton & Salakhutdinov, Science 2006)", None),
    "vae": ("a variational autoencoder trained on the evidence lower bound",
            "Auto-Encoding Variational Bayes (Kingma & Welling, 2013)", "1312.6114"),
    "cvae": ("a label-conditional variational autoencoder: q(z|x,c) and p(x|z,c) with c the digit",
             "Learning Structured Output Representation using Deep Conditional Generative Models "
             "(Sohn, Lee & Yan, NeurIPS 2015)", None),
    "socvae": ("a structured-output conditional VAE that completes missing quadrants of a digit",
               "Learning Structured Output Representation using Deep Conditional Generative Models "
               "(Sohn, Lee & Yan, NeurIPS 2015)", None),
    "quadrant_nn": ("the deterministic quadrant-completion baseline of the structured-output CVAE paper",
                    "Learning Structured Output Representation using Deep Conditional Generative Models "
                    "(Sohn, Lee & Yan, NeurIPS 2015)", None),
    "dvae": ("a denoising variational autoencoder trained on corrupted inputs",
             "Denoising Criterion for Variational Auto-Encoding Framework (Im, Ahn, Memisevic & Bengio, 2015)",
             "1511.06406"),
    "avb": ("a VAE with an implicit posterior whose KL term is estimated by a discriminator",
            "Adversarial Variational Bayes (Mescheder, Nowozin & Geiger, 2017)", "1701.04722"),
    "aae": ("an autoencoder whose aggregated posterior is matched to the prior by a GAN on the codes",
            "Adversarial Autoencoders (Makhzani, Shlens, Jaitly, Goodfellow & Frey, 2015)", "1511.05644"),
    "classifier": ("a small convolutional MNIST classifier, the judge of the sample-quality metrics",
                   "Gradient-Based Learning Applied to Document Recognition (LeCun, Bottou, Bengio & Haffner, 1998)",
                   None),
}
DATASET_IDS = {"mnist": "mnist", "fashion_mnist": "fashion_mnist"}
EVAL_KEYS = ("name", "type", "value", "dataset", "split")


class CardError(ValueError):
    """An export folder the card cannot describe (missing or malformed config.json / eval_results.json)."""


def _read_json(path: Path, required: bool):
    if not path.is_file():
        if required:
            raise CardError(f"{path.parent} has no {path.name}")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CardError(f"cannot read {path}: {exc}") from exc


def eval_results(entries, model_type: str) -> list[EvalResult]:
    if not isinstance(entries, list):
        raise CardError("eval_results.json must hold a list of results")
    task = "image-classification" if model_type == "classifier" else "unconditional-image-generation"
    results = []
    for entry in entries:
        if not isinstance(entry, dict) or any(k not in entry for k in EVAL_KEYS):
            raise CardError(f"each eval result needs the keys {list(EVAL_KEYS)}, got {entry!r}")
        results.append(EvalResult(
            task_type=entry.get("task", task), dataset_type=DATASET_IDS.get(entry["dataset"], entry["dataset"]),
            dataset_name=entry["dataset"].replace("_", "-").upper() if entry["dataset"] in DATASET_IDS
            else entry["dataset"], dataset_split=entry["split"], metric_type=entry["type"],
            metric_name=entry["name"], metric_value=entry["value"],
        ))
    return results


def build_card(folder: str | Path, repo_id: str | None = None) -> ModelCard:
    folder = Path(folder)
    config = _read_json(folder / "config.json", required=True)
    if not isinstance(config, dict) or "model_type" not in config:
        raise CardError(f"{folder / 'config.json'} has no model_type")
    model_type = config["model_type"]
    training = _read_json(folder / "training_args.json", required=False) or {}
    evals = _read_json(folder / "eval_results.json", required=False)
    dataset = training.get("args", {}).get("dataset", "mnist")
    name = repo_id.split("/")[-1] if repo_id else f"{model_type}-{dataset}"

    data = ModelCardData(
        library_name="vae-family", license="mit", datasets=[DATASET_IDS.get(dataset, dataset)],
        tags=["vae-family", model_type, dataset, "pytorch", "model_hub_mixin"],
        model_name=name if evals else None, eval_results=eval_results(evals, model_type) if evals else None,
    )
    what, paper, arxiv = PAPERS.get(model_type, (f"a {model_type} model of the vae-family library", None, None))
    lines = [f"# {name}", "", f"A `{model_type}` trained on {dataset.replace('_', '-').upper()}: {what}.", ""]
    if paper:
        link = f" ([arXiv:{arxiv}](https://arxiv.org/abs/{arxiv}))" if arxiv else ""
        lines += [f"Paper: {paper}{link}.", ""]
    if (folder / "samples.png").is_file():
        lines += ["## Samples", "", "![samples from the model](samples.png)", ""]
    load = repo_id or "path/to/this/folder"
    lines += ["## Usage", "", "```python", "from vae_models import load_model", "",
              f'model = load_model("{load}")', "```", "",
              "Weights are `model.safetensors`; `config.json` holds every model field:", "", "```json",
              json.dumps(config, indent=2), "```", ""]
    if training:
        lines += ["## Training", "", "```bash", training.get("command", ""), "```", ""]
        details = {k: training[k] for k in ("steps", "num_processes", "mixed_precision", "binarize") if k in training}
        lines += [f"- {k}: {v}" for k, v in details.items()] + [""]
    if evals:
        lines += ["## Evaluation", "", "| metric | value | split | estimator |", "|---|---|---|---|"]
        lines += [f"| {e['name']} | {e['value']} | {e['split']} | {e.get('estimator', '')} |" for e in evals]
        commands = list(dict.fromkeys(e["command"] for e in evals if e.get("command")))
        lines += ["", "```bash", *commands, "```", ""] if commands else [""]
    else:
        lines += ["## Evaluation", "", "Not evaluated yet: `python -m train.evaluate` writes `eval_results.json`; "
                  "`python -m train.push` then adds the results to this card.", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def write_card(folder: str | Path, repo_id: str | None = None) -> Path:
    """(Re)write folder/README.md from the folder's contents."""
    path = Path(folder) / "README.md"
    build_card(folder, repo_id).save(path)
    return path

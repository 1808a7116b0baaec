"""Model cards for exported models, built with huggingface_hub's ModelCard / ModelCardData / EvalResult.

Inputs, all from the export folder (vae_models/export.py reads them): config.json (which model: its declaration,
`spec`, gives the description and the paper), training_args.json (the exact training command), samples.png, and
eval_results.json when `python -m train.evaluate` has written it, whose entries become the card's model-index.
Without it the card has no model-index (no invented numbers).
"""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import EvalResult as HubEvalResult
from huggingface_hub import ModelCard, ModelCardData

from vae_models import ConfigError, checkpoints, get_spec, read_config
from vae_models.export import DATASETS, EvalResult, ExportError, read_eval_results, read_training_record


class CardError(ValueError):
    """An export folder the card cannot describe (missing or malformed config.json / eval_results.json)."""


def hub_eval_results(entries: list[EvalResult], task: str) -> list[HubEvalResult]:
    return [HubEvalResult(
        task_type=task, dataset_type=entry.dataset, dataset_name=DATASETS.get(entry.dataset, entry.dataset),
        dataset_split=entry.split, metric_type=entry.type, metric_name=entry.name, metric_value=entry.value,
    ) for entry in entries]


def declared_checkpoint(folder: Path, repo_id: str | None, model_type: str):
    """The catalogue's checkpoint this export is (named by its Hub repo `ORG/mnist-<name>`, else by its folder), when
    one of that name and model is declared; else None."""
    name = repo_id.split("/")[-1].removeprefix("mnist-") if repo_id else folder.name
    entry = checkpoints().get(name)
    return entry[0] if entry and entry[0].model == model_type else None


def build_card(folder: str | Path, repo_id: str | None = None) -> ModelCard:
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise CardError(f"{folder} has no config.json")
    try:
        config = read_config(str(folder / "config.json"))
        spec = get_spec(config.get("model_type"))
        training = read_training_record(folder)
        evals = read_eval_results(folder)
    except (ConfigError, ExportError) as exc:
        raise CardError(str(exc)) from exc
    model_type = spec.name
    dataset = training.dataset if training else "mnist"
    name = repo_id.split("/")[-1] if repo_id else f"{model_type}-{dataset}"
    task = "image-classification" if spec.classifies else "unconditional-image-generation"

    data = ModelCardData(
        library_name="vae-family", license="mit", datasets=[dataset],
        tags=["vae-family", model_type, dataset, "pytorch", "model_hub_mixin"],
        model_name=name if evals else None, eval_results=hub_eval_results(evals, task) if evals else None,
    )
    what, paper = spec.description, spec.paper
    lines = [f"# {name}", "", f"A `{model_type}` trained on {DATASETS.get(dataset, dataset)}: {what}.", ""]
    declared = declared_checkpoint(folder, repo_id, model_type)
    if declared is not None and declared.purpose:
        lines += [f"This checkpoint (`{declared.name}`): {declared.purpose}", ""]
    if paper:
        link = f" ([arXiv:{paper.arxiv}]({paper.url}))" if paper.arxiv else ""
        lines += [f"Paper: {paper.citation}{link}.", ""]
    if (folder / "samples.png").is_file():
        lines += ["## Samples", "", "![samples from the model](samples.png)", ""]
    load = repo_id or "path/to/this/folder"
    lines += ["## Usage", "", "```python", "from vae_models import load_model", "",
              f'model = load_model("{load}")', "```", "",
              "Weights are `model.safetensors`; `config.json` holds every model field:", "", "```json",
              json.dumps(config, indent=2), "```", ""]
    if training:
        lines += ["## Training", "", "```bash", training.command, "```", ""]
        details = {"steps": training.steps, "num_processes": training.num_processes,
                   "mixed_precision": training.mixed_precision, "binarize": training.binarize}
        if training.compute_text:
            details["compute"] = training.compute_text
        lines += [f"- {k}: {v}" for k, v in details.items()] + [""]
    if evals:
        lines += ["## Evaluation", "", "| metric | value | split | estimator |", "|---|---|---|---|"]
        lines += [f"| {e.name} | {e.value} | {e.split} | {e.estimator} |" for e in evals]
        commands = list(dict.fromkeys(e.command for e in evals if e.command))
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

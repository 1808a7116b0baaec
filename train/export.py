"""Write a finished run's export folder (the layout of vae_models/export.py) and publish it.

    model.safetensors + config.json   the weights and config (save_pretrained)
    samples.png                       a sample grid (previews.preview_images, enlarged)
    training_args.json                the TrainingRecord: command, every setting, steps, versions
    README.md                         the model card (card.py)
"""

from __future__ import annotations

import dataclasses
import shlex
import time
from importlib.metadata import version
from pathlib import Path

import torch

from vae_models.export import TrainingRecord, write_training_record

from .card import write_card
from .previews import preview_images, save_preview


def training_command(argv: list[str], num_processes: int) -> str:
    """The command line that reruns this training, with the launcher it ran under."""
    launcher = "python -m train" if num_processes == 1 else (
        f"accelerate launch --multi_gpu --num_processes {num_processes} -m train")
    return f"{launcher} {shlex.join(argv)}".strip()


def training_record(cfg, steps: int, num_processes: int, mixed_precision: str, binarize: str,
                    compute: dict | None = None) -> TrainingRecord:
    """What training_args.json holds: every TrainConfig field except the command line, which becomes `command`;
    `compute` is what the steps cost (TrainingRecord.compute)."""
    args = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "command"}
    return TrainingRecord(
        command=training_command(cfg.command, num_processes), args=args, argv=list(cfg.command), steps=steps,
        num_processes=num_processes, mixed_precision=mixed_precision, binarize=binarize,
        versions={"torch": torch.__version__, "accelerate": version("accelerate")}, date=time.strftime("%Y-%m-%d"),
        compute=compute or {})


def write_export(model, folder: Path, record: TrainingRecord, preview_x: torch.Tensor, preview_y: torch.Tensor,
                 seed: int, repo_id: str | None = None) -> Path:
    """Weights, config, sample grid, training record and card into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    images = preview_images(model, preview_x, preview_y, seed)
    if images is not None:
        save_preview(images, folder / "samples.png", scale=2)
    write_training_record(folder, record)
    write_card(folder, repo_id=repo_id)
    return folder

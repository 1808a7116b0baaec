"""The export folder: what `python -m train --save-pretrained DIR` writes and everything downstream reads.

    DIR/model.safetensors     the weights (base.HubModel.save_pretrained)
    DIR/config.json           the model config, model_type first among equals (load_model dispatches on it)
    DIR/training_args.json    how it was trained: `TrainingRecord` (the trainer writes it)
    DIR/eval_results.json     what it measured: a list of `EvalResult` (`python -m train.evaluate` writes it)
    DIR/samples.png           a sample grid;  DIR/README.md  the model card (train/card.py)

This module owns the two JSON records: their types, a schema version, and reading and writing them. The
trainer, the evaluation, the model card, the report and the app all go through it.

Schema history: version 1 wraps each record in {"schema_version": 1, ...}. Files written before (a bare list of
results; a training record without a version) are read as version 0, which has the same fields.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

SCHEMA_VERSION = 1
EVAL_RESULTS = "eval_results.json"
TRAINING_ARGS = "training_args.json"
DATASETS = {"mnist": "MNIST", "fashion_mnist": "FASHION-MNIST"}  # dataset id -> the name cards show


class ExportError(ValueError):
    """An export file that is missing where required, unreadable, or not in the schema; one line for users."""


@dataclass(frozen=True)
class EvalResult:
    """One measured number, in the shape of huggingface_hub's EvalResult (the card's model-index)."""

    name: str  # "IS-NLL (k=5000)": what the README and card show
    type: str  # metric family: "nll", "cll", "psnr", "ssim", "classifier_fd", "accuracy", "mmd", ...
    value: float
    dataset: str = "mnist"  # "mnist" or "fashion_mnist"
    split: str = "test"
    estimator: str = ""  # how it was computed, in words (bound, k, binarisation, ...)
    details: dict = field(default_factory=dict)  # num_images, std_error, units, corruption, ...
    command: str = ""  # the command that measured it

    def __post_init__(self) -> None:
        for name in ("name", "type", "dataset", "split", "estimator", "command"):
            if not isinstance(getattr(self, name), str):
                raise ExportError(f"eval result field {name!r} must be a string, got {getattr(self, name)!r}")
        if not self.name or not self.type:
            raise ExportError("an eval result needs a name and a type")
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)) or math.isnan(self.value):
            raise ExportError(f"eval result {self.name!r}: value must be a number, got {self.value!r}")
        if not isinstance(self.details, dict):
            raise ExportError(f"eval result {self.name!r}: details must be an object, got {self.details!r}")

    @classmethod
    def from_dict(cls, data) -> "EvalResult":
        if not isinstance(data, dict):
            raise ExportError(f"an eval result must be an object, got {data!r}")
        missing = [k for k in ("name", "type", "value") if k not in data]
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if missing or unknown:
            raise ExportError(f"eval result {data.get('name', data)!r}: missing keys {missing}, unknown keys {unknown}")
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainingRecord:
    """How an export was trained: enough to rerun it (`command`) and to check a recipe against it (`args`)."""

    command: str  # the command line, with its launcher ("python -m train ...")
    args: dict  # every TrainConfig field except the command (model, model_config, dataset, lr, optimizer, ...)
    argv: list = field(default_factory=list)  # the arguments as given
    steps: int = 0  # optimisation steps taken
    num_processes: int = 1
    mixed_precision: str = "no"
    binarize: str = "dynamic"  # the binarisation actually used (args.binarize may be None: the model's default)
    versions: dict = field(default_factory=dict)  # torch, accelerate
    date: str = ""
    # What the weights cost: {"wall_seconds" (of training steps, summed over resumed segments), "threads" (torch's
    # intra-op threads per process), "device" ("cpu", or the GPU's name), optionally "note" (how it was obtained
    # where the trainer did not measure it)}; empty for records written before.
    compute: dict = field(default_factory=dict)

    @property
    def compute_text(self) -> str:
        """'3.2 CPU-hours (1 thread)' / '4.1 GPU-minutes (NVIDIA H200)'; '' when the record has no compute."""
        seconds, device = self.compute.get("wall_seconds"), self.compute.get("device", "cpu")
        if not isinstance(seconds, (int, float)):
            return ""
        note = f"; {self.compute['note']}" if self.compute.get("note") else ""
        if device != "cpu":
            return f"{seconds * self.num_processes / 60:.1f} GPU-minutes ({self.num_processes} x {device}{note})"
        threads = int(self.compute.get("threads", 1)) * self.num_processes
        return f"{seconds * threads / 3600:.2g} CPU-hours ({threads} thread{'s' if threads > 1 else ''}{note})"

    @classmethod
    def from_dict(cls, data) -> "TrainingRecord":
        if not isinstance(data, dict):
            raise ExportError(f"a training record must be an object, got {type(data).__name__}")
        data = {k: v for k, v in data.items() if k != "schema_version"}
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if "command" not in data or not isinstance(data.get("args"), dict) or unknown:
            raise ExportError(f"a training record needs 'command' and an 'args' object (unknown keys: {unknown})")
        return cls(**data)

    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}

    @property
    def dataset(self) -> str:
        """The dataset the model was trained on (records written before the option existed: MNIST)."""
        return self.args.get("dataset") or "mnist"


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"cannot read {path}: {exc}") from exc


def _write_json(path: Path, data) -> Path:
    """Write via a temporary file and rename, so a reader (the app) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def write_eval_results(folder: str | os.PathLike, results: list[EvalResult], filename: str = EVAL_RESULTS) -> Path:
    return _write_json(Path(folder) / filename,
                       {"schema_version": SCHEMA_VERSION, "results": [r.to_dict() for r in results]})


def merge_eval_results(folder: str | os.PathLike, new: list[EvalResult], filename: str = EVAL_RESULTS,
                       stale=None) -> Path:
    """Write `new` into the folder's results file in place of its records of the same names, keeping the others
    (but those `stale(record)` marks as no longer true); the file is created when there is none."""
    names = {r.name for r in new}
    kept = [r for r in read_eval_results(folder, filename) or []
            if r.name not in names and not (stale and stale(r))]
    return write_eval_results(folder, kept + new, filename)


def read_eval_results(folder: str | os.PathLike, filename: str = EVAL_RESULTS) -> list[EvalResult] | None:
    """The folder's results, None when it has no results file; ExportError when the file is malformed."""
    path = Path(folder) / filename
    if not path.is_file():
        return None
    data = _read_json(path)
    if isinstance(data, dict):
        version = data.get("schema_version")
        if version != SCHEMA_VERSION or not isinstance(data.get("results"), list):
            raise ExportError(f"{path}: expected schema_version {SCHEMA_VERSION} with a 'results' list, "
                              f"got schema_version {version!r}")
        data = data["results"]
    elif not isinstance(data, list):  # version 0 is a bare list
        raise ExportError(f"{path} must hold a list of results")
    try:
        return [EvalResult.from_dict(entry) for entry in data]
    except (ExportError, TypeError) as exc:
        raise ExportError(f"{path}: {exc}") from exc


def write_training_record(folder: str | os.PathLike, record: TrainingRecord) -> Path:
    return _write_json(Path(folder) / TRAINING_ARGS, record.to_dict())


def read_training_record(folder: str | os.PathLike) -> TrainingRecord | None:
    """The folder's training record, None when it has none; ExportError when it is malformed."""
    path = Path(folder) / TRAINING_ARGS
    if not path.is_file():
        return None
    data = _read_json(path)
    if isinstance(data, dict) and data.get("schema_version", 0) not in (0, SCHEMA_VERSION):
        raise ExportError(f"{path}: unknown schema_version {data.get('schema_version')!r}")
    try:
        return TrainingRecord.from_dict(data)
    except (ExportError, TypeError) as exc:
        raise ExportError(f"{path}: {exc}") from exc


def training_dataset(folder: str | os.PathLike) -> str:
    """The dataset an export was trained on: from its training record, MNIST when it has none."""
    record = read_training_record(folder)
    return record.dataset if record else "mnist"

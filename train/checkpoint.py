"""A training checkpoint in safetensors + JSON only: a run folder can be copied to another machine, committed to a
repository while the run goes on, and resumed there, and reading it never unpickles anything.

    output_dir/checkpoints/step_0001000/
        trainer_state.json        {"format", "step", "settings", "optimizers": [param_groups and scalar state]}
        model.safetensors         the model's state_dict (its own keys)
        optimizer_0.safetensors   each optimiser's tensor state, keys "<param index>/<name>" (exp_avg, exp_avg_sq, step)
        ema.safetensors           the moving average of the weights, when the run keeps one
        rng_0.safetensors         each process's torch RNG states (CPU, and CUDA on a GPU)
    output_dir/checkpoints/latest the name of the newest complete checkpoint

Each checkpoint is written into a hidden temp folder, renamed into place when complete, and only then named by
`latest` (replaced atomically), so a run killed at any moment leaves `latest` naming a whole checkpoint.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vae_models import CheckpointError

CHECKPOINTS = "checkpoints"
LATEST = "latest"
FORMAT = 2  # 1: Accelerate's save_state (pickled optimiser and RNG states), which this reader refuses
STATE = "trainer_state.json"


def latest(output_dir: Path) -> Path | None:
    """The checkpoint `latest` names, or None when the run has none."""
    pointer = Path(output_dir) / CHECKPOINTS / LATEST
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    if not (path / STATE).is_file():
        raise CheckpointError(f"{pointer} names {path.name}, which is missing or incomplete")
    return path


def read_state(folder: Path) -> dict:
    try:
        state = json.loads((folder / STATE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {folder / STATE}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT or not isinstance(state.get("settings"), dict) \
            or not isinstance(state.get("step"), int):
        raise CheckpointError(f"{folder} is not a checkpoint of this trainer (format {FORMAT}: safetensors + JSON); "
                              "checkpoints of earlier versions cannot be resumed, start the run afresh")
    return state


def clone_optimizer_state(state: dict) -> dict:
    return copy.deepcopy(state)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _split_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimiser's state_dict as (tensors for safetensors, the JSON rest)."""
    tensors, scalars = {}, {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{index}/{name}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{index}/{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in [*tensors.items(), *rest["scalars"].items()]:
        index, _, name = key.partition("/")
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": rest["param_groups"]}


def save(output_dir: Path, step: int, state: dict, model, optimizers, ema, keep: int, rank: int = 0,
         is_main: bool = True, barrier=lambda: None) -> Path:
    """Every process calls this (each writes its own RNG state); only the main process writes the rest and renames."""
    root = Path(output_dir) / CHECKPOINTS
    name = f"step_{step:07d}"
    tmp, final = root / f".tmp_{name}", root / name
    if is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state()
    save_file(rng, str(tmp / f"rng_{rank}.safetensors"))
    if is_main:
        save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()},
                  str(tmp / "model.safetensors"))
        rests = []
        for i, optimizer in enumerate(optimizers):
            tensors, rest = _split_optimizer(optimizer.optimizer.state_dict())
            save_file(tensors, str(tmp / f"optimizer_{i}.safetensors"))
            rests.append(rest)
        if ema is not None:
            save_file({str(i): t.detach().contiguous().cpu() for i, t in enumerate(ema)}, str(tmp / "ema.safetensors"))
        (tmp / STATE).write_text(json.dumps({**state, "format": FORMAT, "step": step, "optimizers": rests}, indent=2))
    barrier()
    if is_main:
        if final.exists():  # left by a run killed after the rename but before `latest` moved on
            shutil.rmtree(final)
        os.replace(tmp, final)
        _write_atomic(root / LATEST, name)
        for old in sorted(p for p in root.glob("step_*") if p.is_dir())[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from exc


def _load_model_weights(folder: Path, model) -> None:
    try:
        model.load_state_dict(_tensors(folder / "model.safetensors"), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{folder / 'model.safetensors'} does not fit the model: {exc}") from exc


def load(folder: Path, model, optimizers, rank: int = 0) -> list[torch.Tensor] | None:
    """Puts the checkpoint's weights, optimiser states and this process's RNG state back; returns the moving average
    (None when the run keeps none). Anything missing, tampered or shaped for another model is a CheckpointError."""
    state = read_state(folder)
    device = next(model.parameters()).device
    _load_model_weights(folder, model)
    rests = state.get("optimizers")
    if not isinstance(rests, list) or len(rests) != len(optimizers):
        raise CheckpointError(f"{folder / STATE} holds {len(rests or [])} optimiser states, the run has {len(optimizers)}")
    for i, (optimizer, rest) in enumerate(zip(optimizers, rests)):
        saved = _join_optimizer(_tensors(folder / f"optimizer_{i}.safetensors"), rest)
        try:
            optimizer.optimizer.load_state_dict(saved)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"{folder / f'optimizer_{i}.safetensors'} does not fit the optimiser: {exc}") from exc
    rng = _tensors(folder / f"rng_{rank}.safetensors")
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    return _moving_average(folder, model, device)


def _moving_average(folder: Path, model, device) -> list[torch.Tensor] | None:
    """The checkpoint's moving average, one tensor per floating-point entry of the model's state_dict in order (the
    trainer's `averaged` weights), or None when the run keeps none."""
    if not (folder / "ema.safetensors").is_file():
        return None
    ema = _tensors(folder / "ema.safetensors")
    weights = [t for t in model.state_dict().values() if t.is_floating_point()]
    if sorted(ema) != sorted(map(str, range(len(weights)))) or any(
            ema[str(i)].shape != w.shape for i, w in enumerate(weights)):
        raise CheckpointError(f"{folder / 'ema.safetensors'} does not fit the model's weights")
    return [ema[str(i)].to(device) for i in range(len(weights))]


def checkpoint_folders(output_dir: Path) -> list[Path]:
    """Every complete checkpoint the run keeps, oldest first."""
    root = Path(output_dir) / CHECKPOINTS
    return sorted(p for p in root.glob("step_*") if p.is_dir() and (p / STATE).is_file())


def load_weights(folder: Path, model) -> int:
    """Load a checkpoint's weights into `model` as its export would hold them: the moving average where the run
    keeps one, else the weights themselves (no optimiser or RNG state). Returns the checkpoint's step."""
    state = read_state(folder)
    _load_model_weights(folder, model)
    ema = _moving_average(folder, model, next(model.parameters()).device)
    if ema is not None:
        weights = [t for t in model.state_dict().values() if t.is_floating_point()]
        torch._foreach_copy_(weights, ema)
    return state["step"]

"""One Accelerate training loop for every model of the family.

The trainer owns devices, processes, optimisers, checkpoints and per-step logging; each model owns its objective
(`model.loss(batch)`, and `model.discriminator_loss(batch)` for two-player models, `spec.adversarial`). Sample
grids live in previews.py, the export folder and the card in export.py and card.py, the Hub push in hub.py. The
same code runs as a plain `python -m train ...` and under `accelerate launch` (DDP, any number of processes,
mixed precision).

DDP and two losses on one module: DDP only all-reduces gradients of a backward pass that follows a forward pass
*of the wrapped module*. Calling `unwrap_model(model).discriminator_loss(...)` would silently skip that sync and
the ranks would drift apart. So both objectives go through `LossModule.forward`, and the adversarial case turns
on `find_unused_parameters` (the discriminator step does not touch the generator, and vice versa for some models).

Checkpoints: `output_dir/checkpoints/step_XXXXXXX` (accelerator.save_state + trainer_state.json), written into a
hidden temp folder and renamed into place only when complete; `checkpoints/latest` names the newest one and is
replaced atomically. A run killed at any moment therefore leaves `latest` pointing at a whole checkpoint.

Speed: the step does what a plain PyTorch loop does and little more (benchmarks/train_throughput.py compares
them). Adam's implementation is a setting (`optimizer`, recorded in training_args.json): "adam-fused" by default,
"adam" (PyTorch's per-parameter loop) for the runs that made the weights bundled before the setting existed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.utils import DistributedType, set_seed
from torch import nn
from tqdm.auto import tqdm

import vae_models
from vae_models import CheckpointError, ConfigError, build_model
from vae_models.data import load_mnist, make_loader

from .export import training_record, write_export
from .hub import push_folder
from .previews import PREVIEW_COUNT, log_to_trackers, preview_images, save_preview

CHECKPOINTS = "checkpoints"
LATEST = "latest"
# Adam implementations (torch.optim.Adam keyword arguments). On CPU "fused" updates all of a parameter's state in one
# kernel: the fastest (benchmarks/README.md); "adam" is PyTorch's default per-parameter loop on CPU, which trained
# every weight bundled before this setting existed, so their recipes name it to stay reproducible.
OPTIMIZERS = {"adam": {}, "adam-foreach": {"foreach": True}, "adam-fused": {"fused": True}}
DEFAULT_OPTIMIZER = "adam-fused"
# Per-step bookkeeping is batched: on a busy CPU, whose caches the model's maths keeps flushing, each Python-level
# call of the loop costs several times what it costs in isolation (benchmarks/README.md, *Where a trainer step goes*).
BAR_EVERY, BAR_REDRAW_S = 10, 1.0  # steps between updates of the progress bar's count and loss display; seconds
#                                    between its redraws (tqdm's default, 0.1 s, redraws after almost every update)
METRICS_EVERY = 50  # steps of metrics.jsonl lines kept in memory before they are written; also written at checkpoints


class TrainError(RuntimeError):
    """A run that cannot start or continue: bad input or inconsistent settings. Its message is one line for users."""


class Diverged(TrainError):
    """The loss (or the weights) stopped being finite; the latest checkpoint is the last good one."""


@dataclass
class TrainConfig:
    model: str  # registry name, a key of vae_models.MODELS ("vae", "aae", ...)
    model_config: dict = field(default_factory=dict)  # the model's config fields; the rest keep their defaults
    data_dir: str | None = None  # folder with the MNIST IDX files; None: vae_models.data's cache / download
    dataset: str = "mnist"  # "mnist" or "fashion_mnist"
    data_source: str = "idx"  # "idx" (data_dir / cache / mirrors) or "hub" (the Hub's parquet dataset repo)
    hub_revision: str | None = None  # commit of the Hub dataset repo (data_source "hub"); None: the library's pin
    binarize: str | None = None  # "dynamic", "fixed" or "none"; None: the model's default (see default_binarize)
    batch_size: int = 128  # per process: the global batch is batch_size * number of processes
    lr: float = 1e-3  # Adam learning rate (both players of an adversarial model)
    optimizer: str = DEFAULT_OPTIMIZER  # Adam implementation, a key of OPTIMIZERS (same maths, different speed)
    epochs: int = 10  # passes over the training set, unless max_steps is given
    max_steps: int | None = None  # total optimisation steps; overrides epochs
    seed: int = 0  # seeds model init, data order, binarisation and sampling noise: same seed, same weights
    output_dir: str = "runs/run"  # run folder: checkpoints/, metrics.jsonl, samples/, tracker logs
    checkpoint_every: int = 500  # save a checkpoint every this many steps (0: only at the end)
    keep_checkpoints: int = 3  # how many recent checkpoints to keep
    resume: bool = False  # continue from output_dir/checkpoints/latest (a fresh start if there is none)
    log_with: str | None = None  # experiment tracker: "tensorboard", "trackio" or None (metrics.jsonl only)
    mixed_precision: str | None = None  # "no", "fp16", "bf16"; None: whatever `accelerate launch` configured
    save_pretrained: str | None = None  # export folder: model.safetensors, config.json, samples.png, README.md
    push_to_hub: str | None = None  # Hub repo id ORG/NAME to upload the export to (one commit)
    revision: str | None = None  # Hub branch to push to (created if missing); None: main
    private: bool = False  # create the Hub repo as private
    init_from: str | None = None  # export folder whose weights start the run (a warm start; same model config)
    lr_decay_to: float | None = None  # decay the lr exponentially to this value at the last step; None: constant
    progress_bar: bool = True  # a tqdm bar on stderr (the app's live training turns it off)
    command: list[str] = field(default_factory=list)  # the command line, recorded in the export


class MetricsLog:
    """metrics.jsonl: one JSON line per step ({"step", "epoch", **logs}), written every METRICS_EVERY steps, at every
    checkpoint and when the loop ends or stops (`tail -f` follows a run, at most METRICS_EVERY steps behind). A run killed
    outright loses only lines of steps after its last checkpoint, which a resume trains (and logs) again."""

    def __init__(self, path: Path):
        self.file = open(path, "a", encoding="utf-8")
        self.pending: list[tuple[int, int, dict]] = []

    def add(self, step: int, epoch: int, logs: dict) -> None:
        self.pending.append((step, epoch, logs))
        if len(self.pending) >= METRICS_EVERY:
            self.write()

    def write(self) -> None:
        if self.pending:
            self.file.write("".join(json.dumps({"step": s, "epoch": e, **logs}) + "\n" for s, e, logs in self.pending))
            self.file.flush()
            self.pending.clear()

    def close(self) -> None:
        self.write()
        self.file.close()


class LossModule(nn.Module):
    """Routes both objectives through forward(), so that DDP sees (and syncs) every backward pass."""

    def __init__(self, model: vae_models.HubModel):
        super().__init__()
        self.model = model

    def forward(self, images, labels, discriminator: bool = False):
        batch = (images, labels)
        out = self.model.discriminator_loss(batch) if discriminator else self.model.loss(batch)
        return out.loss, out.terms  # plain tuple/dict: what DDP and autocast output conversion traverse


def default_binarize(model: vae_models.HubModel) -> str:
    """Binary data for Bernoulli likelihoods, grey levels for continuous ones, unless the model's spec says otherwise."""
    return model.spec.binarize_for(model.config)


def build(cfg: TrainConfig) -> vae_models.HubModel:
    try:
        return build_model(cfg.model, **cfg.model_config)
    except (ConfigError, ValueError, TypeError) as exc:  # configs raise ValueError for out-of-range fields
        raise TrainError(f"invalid config for model {cfg.model!r}: {exc}") from exc


def load_data(cfg: TrainConfig, split: str = "train"):
    try:
        return load_mnist(split, data_dir=cfg.data_dir, dataset=cfg.dataset, source=cfg.data_source,
                          revision=cfg.hub_revision)
    except (ValueError, OSError) as exc:  # DataError is a ValueError
        raise TrainError(f"cannot load {cfg.dataset} {split} data: {exc}") from exc


# ------------------------------------------------------------------------------------------- checkpoints


def latest_checkpoint(output_dir: Path) -> Path | None:
    pointer = output_dir / CHECKPOINTS / LATEST
    if not pointer.is_file():
        return None
    path = output_dir / CHECKPOINTS / pointer.read_text().strip()
    if not (path / "trainer_state.json").is_file():
        raise TrainError(f"{pointer} names {path.name}, which is missing or incomplete")
    return path


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(accelerator: Accelerator, output_dir: Path, step: int, state: dict, keep: int) -> Path:
    """Every process calls this (save_state writes each rank's RNG state); only the main process renames."""
    root = output_dir / CHECKPOINTS
    name = f"step_{step:07d}"
    tmp, final = root / f".tmp_{name}", root / name
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "trainer_state.json").write_text(json.dumps({**state, "step": step}, indent=2))
        if final.exists():  # left by a run killed after the rename but before `latest` moved on
            shutil.rmtree(final)
        os.replace(tmp, final)
        _write_atomic(root / LATEST, name)
        for old in sorted(p for p in root.glob("step_*") if p.is_dir())[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


# ------------------------------------------------------------------------------------------- the loop


def settings(cfg: TrainConfig, model, binarize: str, num_processes: int) -> dict:
    """What a resumed run must share with the run it continues (the rest, e.g. max_steps, may change)."""
    return json.loads(json.dumps({  # JSON round trip: compared with the copy read back from trainer_state.json
        "model": cfg.model, "model_config": dataclasses.asdict(model.config), "dataset": cfg.dataset,
        "binarize": binarize, "batch_size": cfg.batch_size, "lr": cfg.lr, "optimizer": cfg.optimizer, "seed": cfg.seed,
        "num_processes": num_processes, "init_from": cfg.init_from, "lr_decay_to": cfg.lr_decay_to,
    }))


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.output_dir = Path(cfg.output_dir)
        # Everything that can be wrong with the input is checked before anything is written.
        self._check_args()
        existing = latest_checkpoint(self.output_dir)
        if existing is not None and not cfg.resume:
            raise TrainError(f"{self.output_dir} already holds a run (at {existing.name}); "
                             "pass --resume to continue it or choose another --output-dir")
        probe = build(cfg)
        self.binarize = cfg.binarize or default_binarize(probe)
        self.images, self.labels = load_data(cfg, "train")
        self.preview_x, self.preview_y = load_data(cfg, "test")
        self.preview_x = self.preview_x[:PREVIEW_COUNT].float().div(255).unsqueeze(1)
        self.preview_y = self.preview_y[:PREVIEW_COUNT]

        self.accelerator = Accelerator(
            mixed_precision=cfg.mixed_precision,
            log_with=cfg.log_with,
            project_dir=str(self.output_dir),
            # The sampler reseeds itself with data_seed + epoch: the data order of any epoch is known on resume.
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=cfg.seed),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=probe.spec.adversarial)],
        )
        self.settings = settings(cfg, probe, self.binarize, self.accelerator.num_processes)
        self.resume_from = existing if cfg.resume else None
        if self.resume_from is not None:
            saved = json.loads((self.resume_from / "trainer_state.json").read_text())["settings"]
            saved.setdefault("optimizer", "adam")  # checkpoints from before the setting: PyTorch's default Adam
            diff = {k: (saved.get(k), v) for k, v in self.settings.items() if saved.get(k) != v}
            if diff:
                raise TrainError(f"cannot resume {self.resume_from}: settings differ (saved, now): {diff}")

        # Trained decoders push background logits far negative; the float32 subnormals that follow make CPU maths
        # several times slower (benchmarks/README.md: trained vs fresh). Flush them to zero.
        torch.set_flush_denormal(True)
        # Seeded per process (process_index added): ranks see different noise, while DDP copies rank 0's weights.
        set_seed(cfg.seed, device_specific=True)
        self.model = build(cfg)
        if cfg.init_from is not None:
            self._warm_start(cfg.init_from)

    def _warm_start(self, folder: str) -> None:
        """Copy an export's weights into the fresh model; its config must be the one this run builds."""
        try:
            source = vae_models.load_model(folder)
        except (CheckpointError, ConfigError) as exc:
            raise TrainError(f"--init-from {folder}: {exc}") from exc
        if dataclasses.asdict(source.config) != dataclasses.asdict(self.model.config):
            raise TrainError(f"--init-from {folder}: its config {source.config} differs from this run's "
                             f"{self.model.config} (pass --config {folder}/config.json)")
        self.model.load_state_dict(source.state_dict())

    def _check_args(self) -> None:
        cfg = self.cfg
        for name in ("batch_size", "epochs"):
            if not isinstance(getattr(cfg, name), int) or getattr(cfg, name) < 1:
                raise TrainError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(cfg, name)!r}")
        if cfg.max_steps is not None and cfg.max_steps < 1:
            raise TrainError(f"--max-steps must be a positive integer, got {cfg.max_steps}")
        if cfg.checkpoint_every < 0 or cfg.keep_checkpoints < 1:
            raise TrainError("--checkpoint-every must be >= 0 and --keep-checkpoints >= 1")
        if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
            raise TrainError(f"--lr must be a positive number, got {cfg.lr}")
        if cfg.lr_decay_to is not None and not (0 < cfg.lr_decay_to <= cfg.lr):
            raise TrainError(f"--lr-decay-to must be in (0, --lr], got {cfg.lr_decay_to}")
        if cfg.init_from is not None and not (Path(cfg.init_from) / "model.safetensors").is_file():
            raise TrainError(f"--init-from {cfg.init_from} is not an export folder (no model.safetensors)")
        if cfg.optimizer not in OPTIMIZERS:
            raise TrainError(f"--optimizer must be one of {list(OPTIMIZERS)}, got {cfg.optimizer!r}")
        if cfg.binarize not in (None, "dynamic", "fixed", "none"):
            raise TrainError(f"--binarize must be dynamic, fixed or none, got {cfg.binarize!r}")

    # -- main entry ------------------------------------------------------------------------------------------
    def run(self) -> Path | None:
        """Train to the end (`steps` run to completion), then export when asked to."""
        step = self.start_step
        for record in self.steps():
            step = record["step"]
        return self.export(step) if self.cfg.save_pretrained or self.cfg.push_to_hub else None

    @property
    def start_step(self) -> int:
        if self.resume_from is None:
            return 0
        return json.loads((self.resume_from / "trainer_state.json").read_text())["step"]

    def steps(self) -> Iterator[dict]:
        """The training loop as a generator: after every optimisation step it yields {"step", "epoch", "total",
        **logs}. `run` consumes it to the end; an interactive caller (the app's live training) looks at the model
        between steps and may simply stop iterating: closing the generator ends the run at that step (metrics and
        progress bar closed; the final checkpoint is written only when the loop completes), and `export(step)`
        still writes the model as it is."""
        cfg, acc, model = self.cfg, self.accelerator, self.model
        loader = make_loader(self.images, self.labels, cfg.batch_size, shuffle=True, binarize=self.binarize,
                             drop_last=True, seed=cfg.seed)
        adam = {"lr": cfg.lr, **OPTIMIZERS[cfg.optimizer]}
        optimizers = [torch.optim.Adam(model.generator_parameters(), **adam)]
        if model.spec.adversarial:  # the discriminator steps first (train_step)
            optimizers.insert(0, torch.optim.Adam(model.discriminator_parameters(), **adam))
        wrapped, *prepared = acc.prepare(LossModule(model), *optimizers, loader)
        *optimizers, loader = prepared
        if acc.device.type == "cpu":  # the batches are made on the CPU: Accelerate's per-batch send_to_device is a no-op
            loader.device = None
        self.wrapped, self.optimizers = wrapped, optimizers
        if model.spec.adversarial:  # each update's other player (only parameters that train: they are re-enabled)
            self.other_player = {True: [p for p in model.generator_parameters() if p.requires_grad],
                                 False: [p for p in model.discriminator_parameters() if p.requires_grad]}
        # Accelerate's optimizer wrapper and `backward` exist for loss scaling (fp16), gradient accumulation and
        # XLA/DeepSpeed; without those they only add Python work to every step (import probes, a division by 1).
        # Then the step calls torch directly, as a plain loop does; DDP's gradient sync lives in backward() itself.
        self.direct = (acc.scaler is None and acc.gradient_accumulation_steps == 1 and acc.distributed_type in
                       (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU))

        steps_per_epoch = len(loader)
        if steps_per_epoch == 0:
            raise TrainError(f"--batch-size {cfg.batch_size} is larger than the training set per process")
        total = self.total = cfg.max_steps or cfg.epochs * steps_per_epoch
        step = self.start_step
        if self.resume_from is not None:
            acc.load_state(str(self.resume_from))
            acc.print(f"resumed from {self.resume_from} at step {step}")
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            for stale in (self.output_dir / CHECKPOINTS).glob(".tmp_*"):
                shutil.rmtree(stale, ignore_errors=True)
        acc.init_trackers("train", config=_flat(self.settings | {"total_steps": total}))
        metrics = MetricsLog(self.output_dir / "metrics.jsonl") if acc.is_main_process else None
        bar = tqdm(total=total, initial=step, disable=not acc.is_local_main_process or not cfg.progress_bar,
                   dynamic_ncols=True, desc=cfg.model, mininterval=BAR_REDRAW_S)
        last_saved = step
        try:
            while step < total:
                epoch, offset = divmod(step, steps_per_epoch)
                loader.set_epoch(epoch)
                # Resuming mid-epoch: skip the batches already seen, at the sampler level (no data is loaded).
                batches = acc.skip_first_batches(loader, offset) if offset else loader
                for images, labels in self._batches(batches):
                    logs = self.train_step(images, labels, step)
                    step += 1
                    if step % BAR_EVERY == 0:
                        bar.update(step - bar.n)
                        bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in logs.items()}, refresh=False)
                    if acc.trackers:
                        acc.log(logs, step=step)
                    if metrics:
                        metrics.add(step, epoch, logs)
                    if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                        if metrics:
                            metrics.write()  # the log holds at least every step that a resume will not redo
                        self.checkpoint(step)
                        last_saved = step
                    yield {"step": step, "epoch": epoch, "total": total, **logs}
                    if step >= total:
                        break
                if step % steps_per_epoch == 0 or step >= total:  # an epoch finished, or the run did
                    self.log_preview(step)
            if last_saved != step:
                self.checkpoint(step)
        finally:
            bar.update(step - bar.n)
            bar.close()
            if metrics:
                metrics.close()

    def _batches(self, loader):
        """The prepared loader's batches. One CPU process with the direct step reads them itself: the index lists of
        the torch DataLoader's batch sampler (Accelerate's seeded shuffle, and on resume its skip of the batches
        already seen) handed to the dataset's `__getitems__`, as the DataLoader's own fetch does, and one batch ahead
        as Accelerate's wrapper reads them (so the random binarisation draws come in the same order and runs repeat
        the wrapper's). The wrapper's per-batch device move, state snapshot and end-of-data flag serve device
        placement, DDP and gradient accumulation, which this case does not have; they and the DataLoader's iterator
        cost the data step about 8 % more on a busy CPU (about 20 us per batch on an idle one)."""
        acc = self.accelerator
        if not (self.direct and acc.num_processes == 1 and acc.device.type == "cpu"):
            yield from loader
            return
        base = loader.base_dataloader
        fetch = base.dataset.__getitems__  # MNISTDataset serves a whole batch from one tensor index
        batches = (base.collate_fn(fetch(indices)) for indices in base.batch_sampler)
        ahead = next(batches, None)
        while ahead is not None:
            current, ahead = ahead, next(batches, None)
            yield current

    def train_step(self, images, labels, step: int) -> dict[str, float]:
        """One update: the discriminator first (adversarial models), then the model's own loss."""
        logs = {}
        if self.cfg.lr_decay_to is not None:  # lr(step) = lr * (lr_decay_to / lr) ** (step / total): no state to resume
            lr = self.cfg.lr * (self.cfg.lr_decay_to / self.cfg.lr) ** (step / max(1, self.total - 1))
            for optimizer in self.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = lr
            logs["train/lr"] = lr
        if self.model.spec.adversarial:
            d_opt, g_opt = self.optimizers
            logs |= self._update(d_opt, images, labels, step, discriminator=True, prefix="train/discriminator/")
        else:
            (g_opt,) = self.optimizers
        logs |= self._update(g_opt, images, labels, step, discriminator=False, prefix="train/")
        return logs

    def _update(self, optimizer, images, labels, step, discriminator: bool, prefix: str) -> dict[str, float]:
        acc = self.accelerator
        # This player's gradients, as a plain loop zeroes them: the other player's loss may have left some on these
        # parameters, and what this loss leaves on the other player's is zeroed before that player's own update.
        # The torch optimizer itself: AcceleratedOptimizer.zero_grad inspects its signature on every call.
        optimizer.optimizer.zero_grad(set_to_none=True)
        frozen = self._freeze_other_player(discriminator)
        try:
            loss, terms = self.wrapped(images, labels, discriminator=discriminator)
            return self._apply(optimizer, loss, terms, step, discriminator, prefix)
        finally:
            for p in frozen:
                p.requires_grad_(True)

    def _freeze_other_player(self, discriminator: bool) -> list[nn.Parameter]:
        """Two players in one process: the other player's parameters stop requiring gradients for this player's
        update, so backward computes only the gradients this update uses. The generator's loss goes through the
        discriminator (a plain loop, as pytorch/examples' dcgan, also computes the discriminator's weight gradients
        there and throws them away); this player's gradients are bitwise the same. DDP's reducer waits for the
        gradient of every parameter it was built with, so several processes keep both players trainable."""
        if not (self.model.spec.adversarial and self.accelerator.num_processes == 1):
            return []
        other = self.other_player[discriminator]
        for p in other:
            p.requires_grad_(False)
        return other

    def _apply(self, optimizer, loss, terms, step: int, discriminator: bool, prefix: str) -> dict[str, float]:
        acc = self.accelerator
        names = ["loss", *terms]
        if acc.num_processes > 1:  # all ranks decide together whether to stop; the logs are global means
            stats = torch.stack([loss.detach().float(), *(t.detach().float().reshape(()) for t in terms.values())])
            values = acc.gather(stats[None]).mean(0).tolist()
        else:  # a few scalar reads cost less than building and gathering a tensor of them
            values = [loss.item(), *(t.item() for t in terms.values())]
        if not all(map(math.isfinite, values)):
            bad = ", ".join(f"{n}={v:g}" for n, v in zip(names, values) if not math.isfinite(v))
            raise Diverged(
                f"{'discriminator ' if discriminator else ''}loss is not finite at step {step + 1} ({bad}); "
                f"training stopped, {self._latest_text()} (try a lower --lr)")
        if self.direct:
            loss.backward()
            optimizer.optimizer.step()
        else:
            acc.backward(loss)
            optimizer.step()
        return {prefix + n: v for n, v in zip(names, values)}

    def _latest_text(self) -> str:
        pointer = self.output_dir / CHECKPOINTS / LATEST
        return f"latest good checkpoint: {pointer.read_text().strip()}" if pointer.is_file() else "no checkpoint saved"

    def checkpoint(self, step: int) -> None:
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise Diverged(f"weights are not finite at step {step}; training stopped, {self._latest_text()}")
        save_checkpoint(self.accelerator, self.output_dir, step, {"settings": self.settings},
                        self.cfg.keep_checkpoints)

    def log_preview(self, step: int) -> None:
        acc = self.accelerator
        if not acc.is_main_process:
            return
        images = preview_images(acc.unwrap_model(self.wrapped).model, self.preview_x, self.preview_y, self.cfg.seed)
        if images is not None:
            grid = save_preview(images, self.output_dir / "samples" / f"step_{step:07d}.png")
            log_to_trackers(acc.trackers, grid, step)

    def export(self, step: int) -> Path:
        acc, cfg = self.accelerator, self.cfg
        folder = Path(cfg.save_pretrained or self.output_dir / "export")
        if acc.is_main_process:
            record = training_record(cfg, step, acc.num_processes, acc.mixed_precision, self.binarize)
            write_export(acc.unwrap_model(self.wrapped).model, folder, record, self.preview_x, self.preview_y,
                         cfg.seed, repo_id=cfg.push_to_hub)
            acc.print(f"exported to {folder}")
        acc.wait_for_everyone()
        if cfg.push_to_hub and acc.is_main_process:
            url = push_folder(folder, cfg.push_to_hub, revision=cfg.revision, private=cfg.private)
            acc.print(f"pushed to {url}")
        return folder


def _flat(d: dict) -> dict:
    """Tracker hyperparameters must be scalars (TensorBoard's hparams reject lists and None)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= {f"{k}.{kk}": vv for kk, vv in _flat(v).items()}
        else:
            out[k] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


def train(cfg: TrainConfig) -> Path | None:
    """Train (or resume) per `cfg`; returns the export folder when one was written."""
    trainer = Trainer(cfg)
    try:
        return trainer.run()
    finally:
        trainer.accelerator.end_training()  # flushes the trackers; ends the process group under DDP

"""One Accelerate training loop for every model of the family.

The trainer owns devices, processes, optimisers, checkpoints and per-step logging; each model owns its objective
(`model.loss(batch)`, and `model.discriminator_loss(batch)` for two-player models, `spec.adversarial`). Sample
grids live in previews.py, the export folder and the card in export.py and card.py, the Hub push in hub.py. The
same code runs as a plain `python -m train ...` and under `accelerate launch` (DDP, any number of processes,
mixed precision).

The fast path (one process, CPU or CUDA): the training set lives on the device as uint8 and each batch is a slice
of the epoch's permutation, binarised on the device (`vae_models.data.MNISTDataset` with its tensors moved there);
the loss terms stay on the device and are read every `sync_every` steps, which is also when the finite-loss check
runs: a non-finite loss restores the weights and optimiser state of the last check that passed, then stops the
run. Several processes (DDP) read the batches through Accelerate's prepared DataLoader instead, in the same order.

DDP and two losses on one module: DDP only all-reduces gradients of a backward pass that follows a forward pass
*of the wrapped module*. Calling `unwrap_model(model).discriminator_loss(...)` would silently skip that sync and
the ranks would drift apart. So both objectives go through `LossModule.forward`, and the adversarial case turns
on `find_unused_parameters` (the discriminator step does not touch the generator, and vice versa for some models).

Checkpoints: `output_dir/checkpoints/step_XXXXXXX`, written into a hidden temp folder and renamed into place only
when complete; `checkpoints/latest` names the newest one and is replaced atomically. A run killed at any moment
therefore leaves `latest` pointing at a whole checkpoint. A checkpoint is safetensors + JSON only (checkpoint.py),
so a run folder can be copied to another machine, committed to a repository and resumed there.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from contextlib import contextmanager
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
from vae_models.data import BINARIZE, DATASETS, SOURCES, MNISTDataset, load_mnist, make_loader

from . import checkpoint as ckpt
from .export import training_record, write_export
from .hub import push_folder
from .options import choice
from .previews import PREVIEW_COUNT, log_to_trackers, preview_images, save_preview

CHECKPOINTS = ckpt.CHECKPOINTS
LATEST = ckpt.LATEST
# Adam implementations (torch.optim.Adam keyword arguments). "fused" updates all of a parameter's state in one
# kernel: the fastest (benchmarks/README.md); "adam" is PyTorch's default per-parameter loop on CPU, which trained
# every weight bundled before this setting existed, so their recipes name it to stay reproducible.
OPTIMIZERS = {"adam": {}, "adam-foreach": {"foreach": True}, "adam-fused": {"fused": True}}
# Learning-rate schedules, as a factor of each optimiser's base rate at `step` of `total` (see lr_factor).
LR_SCHEDULES = ("constant", "exponential", "iwae")
ADVERSARIAL_UPDATES = ("alternating", "simultaneous")
TRACKERS = ("tensorboard", "trackio")
MIXED_PRECISION = ("no", "fp16", "bf16")
IWAE_STAGES = 8  # Burda et al. 2015, Sec. 5: 3^i epochs at lr 1e-3 * 10^(-i/7), i = 0..7 (3,280 epochs in all)
BAR_REDRAW_S = 1.0  # seconds between redraws of the progress bar (tqdm's default, 0.1 s, costs a busy CPU)
METRICS_EVERY = 50  # metrics.jsonl lines kept in memory before they are written; also written at checkpoints


class TrainError(RuntimeError):
    """A run that cannot start or continue: bad input or inconsistent settings. Its message is one line for users."""


class Diverged(TrainError):
    """The loss (or the weights) stopped being finite; the latest checkpoint is the last good one."""


def run_only(default=None, **kw):
    """A field that describes this run (where it writes, whether it resumes), not how the weights are made: a recipe
    cannot set it and a resumed run may change it."""
    if callable(default):
        return field(default_factory=default, metadata={"run_only": True, **kw})
    return field(default=default, metadata={"run_only": True, **kw})


@dataclass
class TrainConfig:
    model: str = run_only(None)  # registry name, a key of vae_models.MODELS ("vae", "aae", ...)
    model_config: dict = run_only(dict)  # the model's config fields; the rest keep their defaults
    data_dir: str | None = run_only(None)  # folder with the MNIST IDX files; None: the download cache
    dataset: str = choice("mnist", DATASETS)  # which dataset to train on
    data_source: str = choice("idx", SOURCES)  # idx: IDX files (data_dir, cache, mirrors); hub: the Hub dataset repo
    hub_revision: str | None = None  # commit of the Hub dataset repo (data_source hub); None: the library's pin
    binarize: str | None = choice(None, BINARIZE)  # dynamic, fixed or none; None: the model's default
    batch_size: int = 128  # per process: the global batch is batch_size * number of processes
    lr: float = 1e-3  # Adam learning rate (both players of an adversarial model unless discriminator_lr is set)
    discriminator_lr: float | None = None  # the adversary's Adam learning rate; None: lr
    adam_beta1: float = 0.9  # Adam's beta1 (beta2 is 0.999); GAN-style codes, AVB's among them, use 0.5
    optimizer: str = choice("adam-fused", tuple(OPTIMIZERS))  # Adam implementation (same maths, different speed)
    lr_schedule: str = choice("constant", LR_SCHEDULES)  # constant; exponential: to lr_decay_to at the last step;
    #   iwae: Burda et al. 2015's 8 stages, stage i taking 3^i/3280 of the run at lr * 10^(-i/7) (rounded as theirs)
    lr_decay_to: float | None = None  # the last step's learning rate of the exponential schedule
    epochs: int = 10  # passes over the training set, unless max_steps is given
    max_steps: int | None = None  # total optimisation steps; overrides epochs
    adversarial_updates: str = choice("alternating", ADVERSARIAL_UPDATES)  # two-player models. alternating: the
    #   discriminator steps, then the model's loss uses the updated one; simultaneous: both players' gradients from
    #   the same batch and weights, then both applied (Mescheder et al.'s AVB code)
    ema_decay: float | None = None  # Polyak averaging: an exponential moving average of the weights with this
    #   per-step decay (e.g. 0.999) is what the export and the previews hold; None: the last weights
    init_output_bias: bool = False  # start the decoder's output bias at the logit of the training set's mean pixel
    #   (Burda et al.'s IWAE code does), instead of zero
    seed: int = 0  # seeds model init, data order, binarisation and sampling noise: same seed, same weights
    labelled_examples: int | None = None  # models that learn from a labelled minibatch (semi-supervised): how many
    #   training digits keep their labels, labelled_examples/10 of each digit drawn with the seed (the seed is the
    #   label draw); None: every training digit. Each step's labelled minibatch is batch_size of them, drawn anew
    validation_examples: int = 0  # the last n training digits are held out: never trained on, recorded in the
    #   export, and what evaluation reads where a protocol needs labelled digits that are not the test set
    init_from: str | None = None  # export folder whose weights start the run (a warm start; same model config)
    sync_every: int = 50  # steps between reads of the loss terms from the device (one transfer): the logs (each
    #   term's mean over those steps), the progress bar and the finite-loss check
    output_dir: str = run_only("runs/run")  # run folder: checkpoints/, metrics.jsonl, samples/, tracker logs
    checkpoint_every: int = 500  # save a checkpoint every this many steps (0: only at the end)
    keep_checkpoints: int = 3  # how many recent checkpoints to keep
    resume: bool = run_only(False)  # continue from output_dir/checkpoints/latest (a fresh start if there is none)
    log_with: str | None = choice(None, TRACKERS)  # experiment tracker; None: metrics.jsonl only
    mixed_precision: str | None = choice(None, MIXED_PRECISION)  # None: whatever `accelerate launch` configured
    save_pretrained: str | None = run_only(None)  # export folder: model.safetensors, config.json, samples.png, card
    push_to_hub: str | None = run_only(None)  # Hub repo id ORG/NAME to upload the export to (one commit)
    revision: str | None = run_only(None)  # Hub branch to push to (created if missing); None: main
    private: bool = run_only(False)  # create the Hub repo as private
    progress_bar: bool = run_only(True)  # a tqdm bar on stderr (the app's live training turns it off)
    command: list[str] = run_only(list)  # the command line, recorded in the export


# What a resumed run may change: the length of the run and everything about where and how it reports.
RESUMABLE = {"epochs", "max_steps", "sync_every", "mixed_precision", "hub_revision", "data_source", "checkpoint_every",
             "keep_checkpoints", "log_with"}


class MetricsLog:
    """metrics.jsonl: one JSON line per read of the loss terms ({"step", "epoch", **logs}: each term's mean over the
    steps since the line before; one line a step with sync_every 1), written every METRICS_EVERY lines, at every
    checkpoint and when the loop ends or stops. A run killed outright loses only lines of steps after its last
    checkpoint, which a resume trains (and logs) again."""

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

    def forward(self, images, labels, discriminator: bool = False, labelled=None, regularisation: bool = False):
        batch = (images, labels)
        if discriminator:
            out = self.model.discriminator_loss(batch)
        elif regularisation:  # a separate regularisation phase (model.regularisation_parameters())
            out = self.model.regularisation_loss(batch)
        else:  # a semi-supervised model's labelled minibatch (Trainer._labelled_batch) goes to its loss
            out = self.model.loss(batch) if labelled is None else self.model.loss(batch, labelled=labelled)
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


def latest_checkpoint(output_dir: Path) -> Path | None:
    try:
        return ckpt.latest(output_dir)
    except CheckpointError as exc:
        raise TrainError(str(exc)) from exc


def read_state(folder: Path) -> dict:
    try:
        return ckpt.read_state(folder)
    except CheckpointError as exc:
        raise TrainError(f"cannot resume: {exc}") from exc


def labelled_digits(labels: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Indices of the training digits whose labels a semi-supervised run keeps: cfg.labelled_examples / 10 of each
    digit, the first of each class in a permutation seeded by cfg.seed; every digit when it is None."""
    if cfg.labelled_examples is None:
        return torch.arange(len(labels))
    per_class = cfg.labelled_examples // 10
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(cfg.seed))
    chosen = [order[labels[order] == digit][:per_class] for digit in range(10)]
    if min(len(c) for c in chosen) < per_class:
        raise TrainError(f"--labelled-examples {cfg.labelled_examples}: the training set has fewer than "
                         f"{per_class} digits of some class")
    return torch.cat(chosen).sort().values


def lr_factor(schedule: str, step: int, total: int, lr: float, decay_to: float | None) -> float:
    """The learning rate of `step` (0-based) of `total` as a factor of the base rate; a function of the step alone,
    so a resumed run needs no schedule state."""
    if schedule == "exponential":  # lr * (decay_to / lr) ** (step / (total - 1)): lr at the first step, decay_to at the last
        return (decay_to / lr) ** (step / max(1, total - 1))
    if schedule == "iwae":  # stage i covers epochs [(3^i - 1)/2, (3^(i+1) - 1)/2) of 3,280, scaled to the run's length
        epoch = step * ((3**IWAE_STAGES - 1) // 2) / total
        stage = min(IWAE_STAGES - 1, int(math.log(2 * epoch + 1, 3) + 1e-9))
        return round(10 ** (1 - stage / 7), 1) / 10  # the authors' experiments.py: 1e-4 * round(10^(1 - i/7), 1)
    return 1.0


def settings(cfg: TrainConfig, model, binarize: str, num_processes: int) -> dict:
    """What a resumed run must share with the run it continues: every setting that shapes the weights."""
    shared = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
              if not f.metadata.get("run_only") and f.name not in RESUMABLE}
    return json.loads(json.dumps({  # JSON round trip: compared with the copy read back from trainer_state.json
        **shared, "model": cfg.model, "model_config": dataclasses.asdict(model.config), "binarize": binarize,
        "num_processes": num_processes,
    }))


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.output_dir = Path(cfg.output_dir)
        # The wall time of the training loop, summed over the segments of a resumed run (checkpoints carry it).
        self.earlier_seconds, self.started = 0.0, None
        # Everything that can be wrong with the input is checked before anything is written.
        self._check_args()
        existing = latest_checkpoint(self.output_dir)
        if existing is not None and not cfg.resume:
            raise TrainError(f"{self.output_dir} already holds a run (at {existing.name}); "
                             "pass --resume to continue it or choose another --output-dir")
        probe = build(cfg)
        self.binarize = cfg.binarize or default_binarize(probe)
        self.images, self.labels = load_data(cfg, "train")
        if cfg.validation_examples:  # held out: evaluation's validation split (train.evaluate.validation_set)
            self.images, self.labels = self.images[:-cfg.validation_examples], self.labels[:-cfg.validation_examples]
        self.labelled_index = labelled_digits(self.labels, cfg) if probe.learns_from_labelled_batch else None
        if cfg.labelled_examples is not None and self.labelled_index is None:
            raise TrainError(f"--labelled-examples: {cfg.model} does not learn from a labelled minibatch")
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
            saved = read_state(self.resume_from)["settings"]
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
        elif cfg.init_output_bias:
            try:  # the mean of the grey levels is the mean of the dynamically binarised pixels too
                self.model.init_output_bias(self.images.float().mean(0) / 255)
            except vae_models.Unsupported as exc:
                raise TrainError(f"--init-output-bias: {exc}") from exc

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
        for f in dataclasses.fields(cfg):
            choices, value = f.metadata.get("choices"), getattr(cfg, f.name)
            if choices and value not in choices and not (value is None and f.default is None):
                raise TrainError(f"--{f.name.replace('_', '-')} must be one of {list(choices)}, got {value!r}")
        for name in ("batch_size", "epochs", "sync_every"):
            if not isinstance(getattr(cfg, name), int) or getattr(cfg, name) < 1:
                raise TrainError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(cfg, name)!r}")
        if cfg.max_steps is not None and cfg.max_steps < 1:
            raise TrainError(f"--max-steps must be a positive integer, got {cfg.max_steps}")
        if cfg.checkpoint_every < 0 or cfg.keep_checkpoints < 1:
            raise TrainError("--checkpoint-every must be >= 0 and --keep-checkpoints >= 1")
        for name in ("lr", "discriminator_lr"):
            value = getattr(cfg, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise TrainError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
        if not 0 <= cfg.adam_beta1 < 1:
            raise TrainError(f"--adam-beta1 must be in [0, 1), got {cfg.adam_beta1}")
        if cfg.ema_decay is not None and not 0 < cfg.ema_decay < 1:
            raise TrainError(f"--ema-decay must be in (0, 1), got {cfg.ema_decay}")
        if (cfg.lr_schedule == "exponential") != (cfg.lr_decay_to is not None):
            raise TrainError("--lr-decay-to goes with --lr-schedule exponential, and only with it")
        if cfg.lr_decay_to is not None and not (0 < cfg.lr_decay_to <= cfg.lr):
            raise TrainError(f"--lr-decay-to must be in (0, --lr], got {cfg.lr_decay_to}")
        if cfg.labelled_examples is not None and (cfg.labelled_examples < 10 or cfg.labelled_examples % 10):
            raise TrainError(f"--labelled-examples must be a positive multiple of 10 (as many of each digit), got "
                             f"{cfg.labelled_examples}")
        if not isinstance(cfg.validation_examples, int) or cfg.validation_examples < 0:
            raise TrainError(f"--validation-examples must be >= 0, got {cfg.validation_examples!r}")
        if cfg.init_from is not None and not (Path(cfg.init_from) / "model.safetensors").is_file():
            raise TrainError(f"--init-from {cfg.init_from} is not an export folder (no model.safetensors)")

    # -- main entry ------------------------------------------------------------------------------------------
    def run(self) -> Path | None:
        """Train to the end (`steps` run to completion), then export when asked to."""
        step = self.start_step
        for record in self.steps():
            step = record["step"]
        return self.export(step) if self.cfg.save_pretrained or self.cfg.push_to_hub else None

    @property
    def start_step(self) -> int:
        return 0 if self.resume_from is None else read_state(self.resume_from)["step"]

    @property
    def fast(self) -> bool:
        """One process: batches are slices of the resident training set (the DDP path reads Accelerate's loader)."""
        return self.accelerator.num_processes == 1

    def steps(self) -> Iterator[dict]:
        """The training loop as a generator: after every optimisation step it yields {"step", "epoch", "total"}, with
        the step's named loss terms ("train/...") on the steps whose terms were read (every `sync_every` steps, and at
        checkpoints, epoch ends and the last step). `run` consumes it to the end; an interactive caller (the app's
        live training) looks at the model between steps and may simply stop iterating: closing the generator ends
        the run at that step (metrics and progress bar closed; the final checkpoint is written only when the loop
        completes), and `export(step)` still writes the model as it is."""
        cfg, acc, model = self.cfg, self.accelerator, self.model
        self._prepare()
        steps_per_epoch = self.steps_per_epoch
        total = self.total = cfg.max_steps or cfg.epochs * steps_per_epoch
        step = self.start_step
        if self.resume_from is not None:
            self._load(self.resume_from)
            self.earlier_seconds = float(read_state(self.resume_from).get("compute", {}).get("wall_seconds", 0.0))
            acc.print(f"resumed from {self.resume_from} at step {step}")
        self.started = time.perf_counter()
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            for stale in (self.output_dir / CHECKPOINTS).glob(".tmp_*"):
                shutil.rmtree(stale, ignore_errors=True)
        acc.init_trackers("train", config=_flat(self.settings | {"total_steps": total}))
        self.metrics = MetricsLog(self.output_dir / "metrics.jsonl") if acc.is_main_process else None
        self.bar = tqdm(total=total, initial=step, disable=not acc.is_local_main_process or not cfg.progress_bar,
                        dynamic_ncols=True, desc=cfg.model, mininterval=BAR_REDRAW_S)
        self.unread: list[tuple[int, int, dict]] = []  # (step, epoch, terms on the device) not yet read
        self.good = (step, self._state_copy())  # the last state whose losses were all finite
        last_saved = step
        try:
            while step < total:
                epoch, offset = divmod(step, steps_per_epoch)
                for images, labels in self._batches(epoch, offset):
                    self.unread.append((step + 1, epoch, self.train_step(images, labels, step)))
                    step += 1
                    save = cfg.checkpoint_every and step % cfg.checkpoint_every == 0
                    logs = {}
                    if save or step % cfg.sync_every == 0 or step % steps_per_epoch == 0 or step >= total:
                        logs = self._read_terms()
                    if save:
                        if self.metrics:
                            self.metrics.write()  # the log holds at least every step that a resume will not redo
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
            self.bar.update(step - self.bar.n)
            self.bar.close()
            if self.metrics:
                self.metrics.close()

    def _prepare(self) -> None:
        """Optimisers, the prepared model and the batch source (the fast path's resident data or the DDP loader)."""
        cfg, acc, model = self.cfg, self.accelerator, self.model
        adam = {"betas": (cfg.adam_beta1, 0.999), **OPTIMIZERS[cfg.optimizer]}
        if acc.device.type == "cpu" and cfg.optimizer == "adam-fused" and acc.mixed_precision == "fp16":
            adam.pop("fused")  # no fused fp16 Adam on CPU
        self.base_lrs = [cfg.lr]
        optimizers = [torch.optim.Adam(model.generator_parameters(), lr=cfg.lr, **adam)]
        if model.spec.adversarial:  # the discriminator first (train_step)
            d_lr = cfg.discriminator_lr or cfg.lr
            optimizers.insert(0, torch.optim.Adam(model.discriminator_parameters(), lr=d_lr, **adam))
            self.base_lrs.insert(0, d_lr)
        regularised = list(model.regularisation_parameters())
        self.regularising = bool(regularised)
        if self.regularising:  # the model's own regularisation phase last (train_step), at the model's rate
            optimizers.append(torch.optim.Adam(regularised, lr=cfg.lr, **adam))
            self.base_lrs.append(cfg.lr)
        loader = make_loader(self.images, self.labels, cfg.batch_size, shuffle=True, binarize=self.binarize,
                             drop_last=True, seed=cfg.seed)
        if self.fast:
            wrapped, *optimizers = acc.prepare(LossModule(model), *optimizers)
            data = loader.dataset  # resident on the device; a batch is one index into it (MNISTDataset.__getitems__)
            data.pixels, data.labels = data.pixels.to(acc.device), data.labels.to(acc.device)
            self.data, self.steps_per_epoch = data, len(data) // cfg.batch_size
        else:
            wrapped, *optimizers, self.loader = acc.prepare(LossModule(model), *optimizers, loader)
            self.steps_per_epoch = len(self.loader)
        if self.steps_per_epoch == 0:
            raise TrainError(f"--batch-size {cfg.batch_size} is larger than the training set per process")
        self.labelled = None
        if self.labelled_index is not None:  # on the device, binarised as the batches are
            index = self.labelled_index
            self.labelled = MNISTDataset(self.images[index], self.labels[index], binarize=self.binarize, seed=cfg.seed)
            self.labelled.pixels = self.labelled.pixels.to(acc.device)
            self.labelled.labels = self.labelled.labels.to(acc.device)
        self.wrapped, self.optimizers = wrapped, optimizers
        self.averaged = self._averaged()
        self.ema = [t.clone() for t in self.averaged] if cfg.ema_decay else None
        if model.spec.adversarial:  # each update's other player (only parameters that train: they are re-enabled)
            self.other_player = {True: [p for p in model.generator_parameters() if p.requires_grad],
                                 False: [p for p in model.discriminator_parameters() if p.requires_grad]}
        if self.regularising:  # the regularisation phase trains its parameters only
            mine = {id(p) for p in regularised}
            self.other_player["regularisation"] = [p for p in model.parameters() if p.requires_grad and id(p) not in mine]
        # Accelerate's optimizer wrapper and `backward` exist for loss scaling (fp16), gradient accumulation and
        # XLA/DeepSpeed; without those they only add Python work to every step (import probes, a division by 1).
        # Then the step calls torch directly, as a plain loop does; DDP's gradient sync lives in backward() itself.
        self.direct = (acc.scaler is None and acc.gradient_accumulation_steps == 1 and acc.distributed_type in
                       (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU))

    def _batches(self, epoch: int, offset: int):
        """The batches of `epoch` from its `offset`-th on. Epoch e's order is randperm(n) from a generator seeded with
        seed + e, the order Accelerate's seedable sampler gives the DDP path. Each batch is made one ahead, as
        Accelerate's loader reads them, so the random binarisation draws come in the same order on either path."""
        if not self.fast:
            self.loader.set_epoch(epoch)
            # Resuming mid-epoch: skip the batches already seen, at the sampler level (no data is loaded).
            yield from self.accelerator.skip_first_batches(self.loader, offset) if offset else self.loader
            return
        size = self.cfg.batch_size
        order = torch.randperm(len(self.data), generator=torch.Generator().manual_seed(self.cfg.seed + epoch))
        order = order[:self.steps_per_epoch * size].to(self.accelerator.device).view(-1, size)
        batches = (self.data.__getitems__(index) for index in order[offset:])
        ahead = next(batches, None)
        while ahead is not None:
            current, ahead = ahead, next(batches, None)
            yield current

    def train_step(self, images, labels, step: int) -> dict[str, torch.Tensor]:
        """One update of every player; returns its named loss terms as tensors on the device (not read here)."""
        factor = lr_factor(self.cfg.lr_schedule, step, self.total, self.cfg.lr, self.cfg.lr_decay_to)
        for optimizer, base in zip(self.optimizers, self.base_lrs):
            for group in optimizer.param_groups:
                group["lr"] = base * factor
        labelled = self._labelled_batch(step, len(images))
        optimizers = self.optimizers[:-1] if self.regularising else self.optimizers
        if not self.model.spec.adversarial:
            (g_opt,) = optimizers
            terms = self._gradients(g_opt, images, labels, discriminator=False, prefix="train/", labelled=labelled)
            self._step(g_opt)
        elif self.cfg.adversarial_updates == "alternating":  # the discriminator steps first; the model sees the new one
            d_opt, g_opt = optimizers
            terms = self._gradients(d_opt, images, labels, discriminator=True, prefix="train/discriminator/")
            self._step(d_opt)
            terms |= self._gradients(g_opt, images, labels, discriminator=False, prefix="train/", labelled=labelled)
            self._step(g_opt)
        else:  # simultaneous: both players' gradients at the same weights, then both updates
            d_opt, g_opt = optimizers
            terms = self._gradients(d_opt, images, labels, discriminator=True, prefix="train/discriminator/")
            kept = self._keep_gradients(d_opt)
            terms |= self._gradients(g_opt, images, labels, discriminator=False, prefix="train/", labelled=labelled)
            self._restore_gradients(d_opt, kept)
            self._step(d_opt)
            self._step(g_opt)
        if self.regularising:  # the model's regularisation phase, after its loss's step (Makhzani et al., Sec. 2)
            r_opt = self.optimizers[-1]
            terms |= self._gradients(r_opt, images, labels, discriminator=False, prefix="train/regularisation/",
                                     regularisation=True)
            self._step(r_opt)
        if self.ema is not None:  # ema <- decay * ema + (1 - decay) * weights
            torch._foreach_lerp_(self.ema, self.averaged, 1 - self.cfg.ema_decay)
        return terms

    def _labelled_batch(self, step: int, size: int):
        """Step `step`'s labelled minibatch (semi-supervised models; None otherwise): `size` labelled digits drawn
        with replacement from a generator seeded by (seed, step), so a resumed run draws the same ones."""
        if self.labelled is None:
            return None
        generator = torch.Generator().manual_seed(self.cfg.seed * 2**32 + step)
        index = torch.randint(len(self.labelled), (size,), generator=generator)
        return self.labelled.__getitems__(index.to(self.accelerator.device))

    def _gradients(self, optimizer, images, labels, discriminator: bool, prefix: str,
                   labelled=None, regularisation: bool = False) -> dict[str, torch.Tensor]:
        """This player's loss and its gradients, as a plain loop makes them: the other player's loss may have left
        gradients on these parameters, so they are zeroed first (the torch optimizer itself:
        AcceleratedOptimizer.zero_grad inspects its signature on every call)."""
        optimizer.optimizer.zero_grad(set_to_none=True)
        frozen = self._freeze_other_player("regularisation" if regularisation else discriminator)
        try:
            loss, terms = self.wrapped(images, labels, discriminator=discriminator, labelled=labelled,
                                       regularisation=regularisation)
            if self.direct:
                loss.backward()
            else:
                self.accelerator.backward(loss)
        finally:
            for p in frozen:
                p.requires_grad_(True)
        return {prefix + "loss": loss.detach(), **{prefix + k: t.detach().reshape(()) for k, t in terms.items()}}

    def _keep_gradients(self, optimizer) -> list:
        """Simultaneous updates under DDP: the next player's backward also reaches these parameters (none of them is
        frozen there), so their gradients are kept aside until it is done. One process freezes them instead."""
        if not self.model.spec.adversarial or self.accelerator.num_processes == 1:
            return []
        return [p.grad.clone() if p.grad is not None else None
                for group in optimizer.param_groups for p in group["params"]]

    def _restore_gradients(self, optimizer, kept: list) -> None:
        if kept:
            for p, g in zip((p for group in optimizer.param_groups for p in group["params"]), kept):
                p.grad = g

    def _step(self, optimizer) -> None:
        if self.direct:
            optimizer.optimizer.step()
        else:
            optimizer.step()

    def _freeze_other_player(self, discriminator) -> list[nn.Parameter]:
        """`discriminator`: True for the discriminator's update, False for the model's, "regularisation" for a
        separate regularisation phase (which trains only model.regularisation_parameters()). Two players in one process: the other player's parameters stop requiring gradients for this player's
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

    # -- reading the loss terms: one device sync per call ----------------------------------------------------
    def _read_terms(self) -> dict[str, float]:
        """Reads the terms of the steps since the last read in one transfer (several processes: the mean over all
        ranks) and checks them: a non-finite loss puts back the last checked state and stops the run. The logs
        (metrics.jsonl, trackers, progress bar and the returned dict) are each term's mean over those steps."""
        acc, unread = self.accelerator, self.unread
        names = list(unread[-1][2])
        stacked = torch.stack([torch.stack([terms[n].float() for n in names]) for _, _, terms in unread])
        if acc.num_processes > 1:  # all ranks decide together whether to stop; the logs are global means
            stacked = acc.gather(stacked[None]).mean(0)
        for (step, _, _), values in zip(unread, stacked.tolist()):
            if not all(map(math.isfinite, values)):
                bad = [(n, v) for n, v in zip(names, values) if not math.isfinite(v)]
                who = "discriminator " if any("/discriminator/" in n for n, _ in bad) else ""
                good_step, state = self.good
                self._put_state(state)
                raise Diverged(f"{who}loss is not finite at step {step} ("
                               + ", ".join(f"{n.split('/')[-1]}={v:g}" for n, v in bad)
                               + f"); training stopped, the weights are those of step {good_step}, "
                               f"{self._latest_text()} (try a lower --lr)")
        step, epoch, _ = unread[-1]
        logs = dict(zip(names, stacked.mean(0).tolist()))
        if self.cfg.lr_schedule != "constant":  # the model's own learning rate, known without reading anything
            logs["train/lr"] = self.base_lrs[-1] * lr_factor(self.cfg.lr_schedule, step - 1, self.total, self.cfg.lr,
                                                             self.cfg.lr_decay_to)
        if acc.trackers:
            acc.log(logs, step=step)
        if self.metrics:
            self.metrics.add(step, epoch, logs)
        self.unread = []
        self.good = (step, self._state_copy())
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix({n.split("/")[-1]: f"{v:.3g}" for n, v in logs.items()}, refresh=False)
        return logs

    def _averaged(self) -> list[torch.Tensor]:
        """The tensors the moving average follows: every floating-point entry of the model's state (views of the
        parameters themselves: copying into them sets the weights)."""
        return [t for t in self.model.state_dict().values() if t.is_floating_point()]

    def _state_copy(self) -> dict:
        return {"model": {k: v.clone() for k, v in self.model.state_dict().items()},
                "optimizers": [ckpt.clone_optimizer_state(o.optimizer.state_dict()) for o in self.optimizers],
                "ema": None if self.ema is None else [t.clone() for t in self.ema]}

    def _put_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        for optimizer, saved in zip(self.optimizers, state["optimizers"]):
            optimizer.optimizer.load_state_dict(saved)
        if state["ema"] is not None:
            torch._foreach_copy_(self.ema, state["ema"])

    def _latest_text(self) -> str:
        pointer = self.output_dir / CHECKPOINTS / LATEST
        return f"latest good checkpoint: {pointer.read_text().strip()}" if pointer.is_file() else "no checkpoint saved"

    # -- checkpoints, previews, export -----------------------------------------------------------------------
    def checkpoint(self, step: int) -> None:
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise Diverged(f"weights are not finite at step {step}; training stopped, {self._latest_text()}")
        acc = self.accelerator
        state = {"settings": self.settings, "compute": self.compute()}
        ckpt.save(self.output_dir, step, state, self.model, self.optimizers, self.ema,
                  self.cfg.keep_checkpoints, rank=acc.process_index, is_main=acc.is_main_process,
                  barrier=acc.wait_for_everyone)

    def _load(self, folder: Path) -> None:
        try:
            ema = ckpt.load(folder, self.model, self.optimizers, rank=self.accelerator.process_index)
        except CheckpointError as exc:
            raise TrainError(f"cannot resume: {exc}") from exc
        if (ema is None) != (self.ema is None):
            raise TrainError(f"cannot resume {folder}: it {'lacks' if ema is None else 'has'} the moving average")
        if ema is not None:
            torch._foreach_copy_(self.ema, ema)

    def compute(self) -> dict:
        """What the steps so far cost: TrainingRecord.compute."""
        device = self.accelerator.device
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
        running = 0.0 if self.started is None else time.perf_counter() - self.started
        seconds = self.earlier_seconds + running
        return {"wall_seconds": round(seconds, 4), "threads": torch.get_num_threads(), "device": name}

    @contextmanager
    def averaged_weights(self):
        """The model holds the moving average of its weights inside the block (when the run keeps one)."""
        if self.ema is None:
            yield self.model
            return
        current = [t.clone() for t in self.averaged]
        torch._foreach_copy_(self.averaged, self.ema)
        try:
            yield self.model
        finally:
            torch._foreach_copy_(self.averaged, current)

    def log_preview(self, step: int) -> None:
        acc = self.accelerator
        if not acc.is_main_process:
            return
        with self.averaged_weights() as model:
            images = preview_images(model, self.preview_x, self.preview_y, self.cfg.seed)
        if images is not None:
            grid = save_preview(images, self.output_dir / "samples" / f"step_{step:07d}.png")
            log_to_trackers(acc.trackers, grid, step)

    def export(self, step: int) -> Path:
        acc, cfg = self.accelerator, self.cfg
        folder = Path(cfg.save_pretrained or self.output_dir / "export")
        if acc.is_main_process:
            record = training_record(cfg, step, acc.num_processes, acc.mixed_precision, self.binarize, self.compute())
            with self.averaged_weights() as model:
                write_export(model, folder, record, self.preview_x, self.preview_y, cfg.seed, repo_id=cfg.push_to_hub)
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

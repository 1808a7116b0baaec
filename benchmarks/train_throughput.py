"""Training throughput (images/s): our Accelerate trainer vs a plain PyTorch loop, vs Pythae's BaseTrainer, and
2-process DDP on CPU vs 1 process. Also Pythae's `get_nll` vs our `importance_sampled_nll` on the same digits.

    python -m benchmarks.train_throughput                      # everything (~8 min on 2 idle cores)
    python -m benchmarks.train_throughput --models vae --repeats 3 --no-ddp --no-pythae   # quick look
    OMP_NUM_THREADS=1 python -m benchmarks.train_throughput --in-process --clock cpu   # one process per model (~6 min)

Method: every variant trains the same model (the model config of its recipe, recipes/<name>.json, seed 0) on the
same MNIST training images at the same batch size and learning rate. A timestamp is taken after every optimisation
step; throughput is (steps after warm-up) * batch size / (time between the warm-up step and the last step), so
process start-up, data loading and the final checkpoint are excluded but everything a training step costs (the
loader, logging, progress bar, metrics file) is included. Each run is a fresh Python process (as `python -m train` is:
no state left over from an earlier run in the same interpreter), the variants of one model run in interleaved
order, `--repeats` times, and the table reports the median of the per-repeat ratios, which a shared, noisy machine
disturbs much less than absolute numbers.

The plain loop is the pytorch/examples (vae/main.py, dcgan/main.py) style: the same `make_loader`, the same Adam
as the trainer's default (`train.trainer.DEFAULT_OPTIMIZER`), `zero_grad(); model.loss(batch).loss.backward();
step()`, `loss.item()` accumulated each step; adversarial models take the discriminator step first, as the trainer
does. A second plain loop with PyTorch's default Adam shows what the Adam implementation alone is worth. Its data
pipeline is the trainer's: the same MNISTDataset batches (one tensor index per batch, dynamic binarisation by
`rand_like(x) < x`), so the comparison is of what each does around the model's step; what the trainer adds is
Accelerate's loader wrapper (a seedable sampler, one batch of look-ahead), the NaN check on every loss term, the
progress bar, metrics.jsonl, the epoch-end preview grid and the checkpoints. What it saves: in two-player models the
other player's parameters do not require gradients during each update (the plain loop, like pytorch/examples'
dcgan, computes the discriminator's weight gradients in the generator's backward pass and zeroes them unused).

`--in-process` runs the trainer (`Trainer.steps`), the plain loop and the trainer started from the trained
pretrained/<model> in one process, alternating blocks of steps: all three then share every moment of the machine's
load, which on a shared machine gives much tighter ratios than separate processes (see `in_process`).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python path/to/benchmarks/x.py), from any folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "benchmarks"

from .common import MNIST_DIR, REPO_ROOT, header, median, recipe_config, table, verdict

MODELS = ("ae", "vae", "cvae", "dvae", "avb", "aae")  # the recipes whose training speed is compared
CONFIGS = {name: recipe_config(name) for name in MODELS}  # the bundled weights' model configs
# --tiny: a 784-16-2 network, whose maths is so cheap that the per-step bookkeeping around it shows
TINY = {"hidden_dims": [16], "latent_dim": 2}
LR = 1e-3
# What a step's time is measured with: wall time (perf_counter), or with --clock cpu the CPU time of this process
# (process_time), which on a machine shared with other jobs counts the work a step does and not the time it waited
# for a core. Training runs on this one thread (OMP_NUM_THREADS=1, no loader workers), so the two agree when idle.
CLOCK = time.perf_counter


def images_per_second(stamps: list[float], warmup: int, batch_size: int) -> float:
    """Steady-state throughput from per-step end times, skipping the first `warmup` steps."""
    if len(stamps) <= warmup + 1:
        raise ValueError(f"need more than {warmup + 1} steps, got {len(stamps)}")
    return (len(stamps) - 1 - warmup) * batch_size / (stamps[-1] - stamps[warmup])


# --------------------------------------------------------------------------------------------- our trainer


def run_trainer(model: str, steps: int, batch_size: int, data_dir: str, output_dir: str,
                init_from: Path | None = None) -> list[float]:
    """Our trainer as `python -m train` runs it (tqdm bar, metrics.jsonl, a checkpoint at the end), timestamped,
    with its default optimizer; init_from: start from these trained weights (`--init-from`)."""
    from train.trainer import TrainConfig, Trainer

    class TimedTrainer(Trainer):
        stamps: list[float] = []

        def train_step(self, images, labels, step):
            logs = super().train_step(images, labels, step)
            self.stamps.append(CLOCK())
            return logs

    cfg = TrainConfig(model=model, model_config=CONFIGS[model], data_dir=data_dir, batch_size=batch_size, lr=LR,
                      max_steps=steps, seed=0, output_dir=output_dir, checkpoint_every=0,
                      init_from=str(init_from) if init_from else None)
    trainer = TimedTrainer(cfg)
    trainer.stamps = []
    try:
        trainer.run()
    finally:
        trainer.accelerator.end_training()
    return trainer.stamps


# --------------------------------------------------------------------------------------------- plain PyTorch


def plain_steps(model_name: str, batch_size: int, images, labels, optimizer: str, init: Path | None = None):
    """The plain loop as a generator that yields after every optimisation step, forever (epoch after epoch).
    optimizer: a key of train.trainer.OPTIMIZERS ("adam": PyTorch's default; "adam-fused": one kernel per tensor).
    init: start from these trained weights (a save_pretrained folder) instead of a fresh initialisation."""
    import torch

    from train.trainer import OPTIMIZERS, default_binarize
    from vae_models import build_model, load_model
    from vae_models.data import make_loader

    torch.manual_seed(0)
    model = load_model(init) if init else build_model(model_name, **CONFIGS[model_name])
    loader = make_loader(images, labels, batch_size, shuffle=True, binarize=default_binarize(model),
                         drop_last=True, seed=0)
    adam = {"lr": LR, **OPTIMIZERS[optimizer]}
    if model.spec.adversarial:
        d_opt = torch.optim.Adam(model.discriminator_parameters(), **adam)
        g_opt = torch.optim.Adam(model.generator_parameters(), **adam)
    else:
        g_opt = torch.optim.Adam(model.parameters(), **adam)
    model.train()
    train_loss = 0.0
    while True:
        for x, y in loader:
            if model.spec.adversarial:
                d_opt.zero_grad()
                model.discriminator_loss((x, y)).loss.backward()
                d_opt.step()
            g_opt.zero_grad()
            loss = model.loss((x, y)).loss
            loss.backward()
            g_opt.step()
            train_loss += loss.item()
            yield


def run_plain(model_name: str, steps: int, batch_size: int, images, labels, optimizer: str,
              init: Path | None = None) -> list[float]:
    stamps = []
    for _ in plain_steps(model_name, batch_size, images, labels, optimizer, init):
        stamps.append(CLOCK())
        if len(stamps) == steps:
            break
    return stamps


# --------------------------------------------------------------------------------------------- one process


def in_process(model: str, args) -> dict[str, list[float]]:
    """ms per step of our trainer (`Trainer.steps`, with its progress bar and metrics.jsonl), the plain loop and,
    where pretrained/<model> exists, the trainer started from those weights, all in this one process: blocks of
    `args.block_steps` steps of each in turn (rotating who goes first), `args.blocks` times, timed by CLOCK. Whatever
    else the machine runs slows all of them alike; the per-block ratios are the comparison."""
    from train.trainer import DEFAULT_OPTIMIZER, TrainConfig, Trainer
    from vae_models.data import load_mnist

    images, labels = load_mnist("train", data_dir=args.data_dir)
    trained = REPO_ROOT / "pretrained" / model
    if args.tiny:
        CONFIGS[model] = {**CONFIGS[model], **TINY}
    with tempfile.TemporaryDirectory() as tmp:
        def trainer(name: str, init: Path | None):
            cfg = TrainConfig(model=model, model_config=CONFIGS[model], data_dir=str(args.data_dir),
                              batch_size=args.batch_size, lr=LR, max_steps=10**9, seed=0, output_dir=f"{tmp}/{name}",
                              checkpoint_every=0, init_from=str(init) if init else None)
            return Trainer(cfg).steps()

        loops = {"trainer": trainer("fresh", None),
                 "plain": plain_steps(model, args.batch_size, images, labels, DEFAULT_OPTIMIZER)}
        if (trained / "model.safetensors").is_file() and not args.tiny:
            loops["trainer-trained"] = trainer("trained", trained)
        try:
            for loop in loops.values():
                for _ in range(args.warmup):
                    next(loop)
            ms = {name: [] for name in loops}
            names = list(loops)
            for block in range(args.blocks):
                for name in names[block % len(names):] + names[:block % len(names)]:
                    loop, start = loops[name], CLOCK()
                    for _ in range(args.block_steps):
                        next(loop)
                    ms[name].append((CLOCK() - start) / args.block_steps * 1e3)
        finally:
            for loop in loops.values():
                loop.close()
    return ms


# --------------------------------------------------------------------------------------------- Pythae


def pythae_vae(our_model):
    """Pythae's VAE with encoder/decoder modules that are copies of ours (784-200-200-50 MLP), so the network and
    its initial weights are identical; Pythae's own loss (BCE on sigmoid outputs + closed-form KL)."""
    import torch
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            mean, logvar = self.net(x).chunk(2, dim=1)
            return ModelOutput(embedding=mean, log_covariance=logvar)

    class Decoder(BaseDecoder):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=our_model.config.latent_dim, reconstruction_loss="bce")
    return VAE(config, encoder=Encoder(copy.deepcopy(our_model.encoder)),
               decoder=Decoder(copy.deepcopy(our_model.decoder)))


def run_pythae(steps: int, batch_size: int, images, output_dir: str) -> list[float]:
    """Pythae's BaseTrainer, one epoch over exactly `steps` batches. Pythae has no dynamic binarisation, so it
    gets the training digits binarised once (its usual input: a tensor)."""
    import torch
    from pythae.data.datasets import BaseDataset
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback

    from vae_models import build_model

    class Stamps(TrainingCallback):
        def __init__(self):
            self.stamps = []

        def on_train_step_end(self, training_config, **kwargs):
            self.stamps.append(CLOCK())

    torch.manual_seed(0)
    model = pythae_vae(build_model("vae", **CONFIGS["vae"]))
    n = steps * batch_size
    x = torch.bernoulli(images[:n].float().div(255).unsqueeze(1), generator=torch.Generator().manual_seed(0))
    config = BaseTrainerConfig(output_dir=output_dir, per_device_train_batch_size=batch_size, num_epochs=1,
                               learning_rate=LR, optimizer_cls="Adam", no_cuda=True, seed=0)
    stamps = Stamps()
    trainer = BaseTrainer(model, BaseDataset(x, torch.zeros(n)), training_config=config, callbacks=[stamps])
    trainer.train()
    return stamps.stamps


def nll_comparison(num_digits: int, num_samples: int, pythae_batch: int) -> list[list]:
    """Pythae's VAE.get_nll vs our importance_sampled_nll: the same weights, the same binarised test digits."""
    import torch

    from vae_models import build_model, load_model
    from vae_models.data import load_mnist
    from vae_models.metrics import importance_sampled_nll

    source = REPO_ROOT / "pretrained" / "vae"
    if (source / "model.safetensors").is_file():
        ours, weights = load_model(source).eval(), "pretrained/vae"
    else:
        torch.manual_seed(0)
        ours, weights = build_model("vae", **CONFIGS["vae"]).eval(), "untrained 784-200-200-50 VAE"
    theirs = pythae_vae(ours).eval()
    grey, _ = load_mnist("test", data_dir=MNIST_DIR)
    x = torch.bernoulli(grey[:num_digits].float().div(255).unsqueeze(1), generator=torch.Generator().manual_seed(0))

    torch.manual_seed(0)
    start = time.perf_counter()
    our_nll = importance_sampled_nll(ours, x, num_samples=num_samples).mean().item()
    our_s = time.perf_counter() - start
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.no_grad():  # get_nll itself does not turn autograd off; a careful user would
        their_nll = -float(theirs.get_nll(x, n_samples=num_samples, batch_size=pythae_batch))
    their_s = time.perf_counter() - start
    note = f"{num_digits} test digits, k={num_samples}, {weights}"
    return [
        [f"ours: `importance_sampled_nll` (batch 10, chunk 500)", note, f"{our_s:.1f}", f"{our_nll:.2f}", "1.00×"],
        [f"Pythae 0.1.2: `VAE.get_nll` (batch_size={pythae_batch})", note, f"{their_s:.1f}", f"{their_nll:.2f}",
         f"{their_s / our_s:.2f}×"],
    ]


# --------------------------------------------------------------------------------------------- one run per process


def run_variant(variant: str, model: str, steps: int, batch_size: int, data_dir: str) -> list[float]:
    """One timed run of a variant in this process: "trainer", "trainer-trained" (--init-from pretrained/vae),
    "plain" (the trainer's default Adam), "plain-adam" (PyTorch's default Adam) or "pythae"."""
    from train.trainer import DEFAULT_OPTIMIZER
    from vae_models.data import load_mnist

    with tempfile.TemporaryDirectory() as tmp:
        if variant in ("trainer", "trainer-trained"):
            init = REPO_ROOT / "pretrained" / model if variant == "trainer-trained" else None
            return run_trainer(model, steps, batch_size, data_dir, str(Path(tmp) / "run"), init_from=init)
        images, labels = load_mnist("train", data_dir=data_dir)
        if variant in ("plain", "plain-adam"):
            optimizer = DEFAULT_OPTIMIZER if variant == "plain" else "adam"
            return run_plain(model, steps, batch_size, images, labels, optimizer)
        return run_pythae(steps, batch_size, images, tmp)


def isolated(variant: str, model: str, args) -> float:
    """images/s of one run of `variant` in a fresh `python -m benchmarks.train_throughput --worker` process."""
    cmd = [sys.executable, "-m", "benchmarks.train_throughput", "--worker", variant, "--models", model,
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
           "--data-dir", str(args.data_dir), "--clock", args.clock]
    out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    results = [json.loads(line[7:]) for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or len(results) != 1:
        raise RuntimeError(f"{variant} run failed ({out.returncode}): {out.stderr[-2000:]}")
    return results[0]["images_per_s"]


def speed_row(name: str, fresh: list[float], trained: list[float]) -> list:
    """fresh / trained: images/s (higher is faster) of paired runs."""
    ratios = [t / f for f, t in zip(fresh, trained)]
    return [name, f"{median(fresh):,.0f}", f"{median(trained):,.0f}",
            f"{median(ratios):.3f}× ({min(ratios):.3f}–{max(ratios):.3f})", "≥ 0.95×", verdict(median(ratios) >= 0.95)]


def in_process_tables(args) -> list[str]:
    rows, trained_rows = [], []
    for name in args.models:
        ms = in_process(name, args)
        ips = {v: [args.batch_size / t * 1e3 for t in times] for v, times in ms.items()}
        ratios = [t / p for t, p in zip(ips["trainer"], ips["plain"])]
        print(f"{name}: " + ", ".join(f"{v} {median(t):.3f} ms/step" for v, t in ms.items()), file=sys.stderr,
              flush=True)
        extra_us = median([(t - p) * 1e3 for t, p in zip(ms["trainer"], ms["plain"])])
        rows.append([name, f"{median(ms['trainer']):.2f}", f"{median(ms['plain']):.2f}", f"{extra_us:+.0f}",
                     f"{median(ratios):.3f}× ({min(ratios):.3f}–{max(ratios):.3f})", "≥ 1.0×",
                     verdict(median(ratios) >= 1.0)])
        if "trainer-trained" in ips:
            trained_rows.append(speed_row(name, ips["trainer"], ips["trainer-trained"]))
    out = [f"{'Tiny 784-16-2 networks (--tiny). ' if args.tiny else ''}One process per model: {args.blocks} blocks of {args.block_steps} steps of each variant in turn after "
           f"{args.warmup} warm-up steps each, batch {args.batch_size}; median (min–max) of the per-block speed "
           f"ratios and of the per-block differences in time per step; "
           f"{'CPU time of the process' if args.clock == 'cpu' else 'wall time'}.", "",
           table(["model", "trainer ms/step", "plain loop ms/step", "trainer − plain µs/step", "trainer / plain (speed)",
                  "target", ""], rows), ""]
    if trained_rows:
        out += ["#### The trainer from a fresh initialisation vs from the trained pretrained/<model> (--init-from), "
                "same process", "",
                table(["model", "fresh images/s", "trained images/s", "trained / fresh", "target", ""], trained_rows),
                ""]
    return out


# --------------------------------------------------------------------------------------------- DDP


def ddp_worker(args) -> None:
    """Runs under `accelerate launch` (or plain python for 1 process); the main process prints one RESULT line."""
    import torch

    stamps = run_trainer(args.models[0], args.warmup + args.steps, args.batch_size, str(args.data_dir),
                         args.output_dir)
    from accelerate import PartialState

    state = PartialState()
    if state.is_main_process:
        ips = images_per_second(stamps, args.warmup, args.batch_size * state.num_processes)
        print("RESULT " + json.dumps({"num_processes": state.num_processes, "images_per_s": ips,
                                      "threads": torch.get_num_threads()}), flush=True)


def run_ddp(model: str, processes: int, batch_size: int, steps: int, warmup: int, data_dir: str) -> dict:
    worker = ["-m", "benchmarks.train_throughput", "--ddp-worker", "--models", model, "--steps", str(steps),
              "--warmup", str(warmup), "--batch-size", str(batch_size), "--data-dir", data_dir]
    with tempfile.TemporaryDirectory() as tmp:
        worker += ["--output-dir", str(Path(tmp) / "run")]
        if processes == 1:
            cmd, env = [sys.executable, *worker], dict(os.environ)
        else:
            cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                   str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   *worker]
            env = {**os.environ, "ACCELERATE_USE_CPU": "true"}
        out = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    results = [json.loads(line[7:]) for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or len(results) != 1 or results[0]["num_processes"] != processes:
        raise RuntimeError(f"DDP run failed ({out.returncode}): {out.stderr[-2000:]}")
    return results[0]


# --------------------------------------------------------------------------------------------- main


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--steps", type=int, default=200, help="timed steps per run (after the warm-up)")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps at the start of each run")
    p.add_argument("--repeats", type=int, default=5, help="interleaved runs of each variant")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--data-dir", default=str(MNIST_DIR))
    p.add_argument("--no-pythae", action="store_true", help="skip the Pythae comparisons")
    p.add_argument("--no-ddp", action="store_true", help="skip the 2-process DDP comparison")
    p.add_argument("--ddp-models", nargs="+", default=["vae", "aae"], choices=list(MODELS))
    p.add_argument("--ddp-repeats", type=int, default=3)
    p.add_argument("--nll-digits", type=int, default=1000, help="test digits for the get_nll comparison (0: skip)")
    p.add_argument("--nll-samples", type=int, default=5000)
    p.add_argument("--pythae-nll-batch", type=int, default=100, help="get_nll's batch_size (its default, 100)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="time steps by wall clock, or by this process's CPU time (for a loaded machine)")
    p.add_argument("--no-adam-compare", action="store_true", help="skip the plain loop with PyTorch's default Adam")
    p.add_argument("--in-process", action="store_true",
                   help="instead: trainer, plain loop and trainer from trained weights in one process, interleaved "
                        "blocks of steps (see in_process)")
    p.add_argument("--blocks", type=int, default=30, help="--in-process: blocks of each variant")
    p.add_argument("--block-steps", type=int, default=25, help="--in-process: steps per block")
    p.add_argument("--tiny", action="store_true",
                   help="--in-process: 784-16-2 networks instead of the recipes', to expose the per-step bookkeeping")
    p.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--output-dir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.ddp_worker:
        return ddp_worker(args)
    if args.worker:
        stamps = run_variant(args.worker, args.models[0], args.warmup + args.steps, args.batch_size, str(args.data_dir))
        print("RESULT " + json.dumps({"images_per_s": images_per_second(stamps, args.warmup, args.batch_size)}))
        return None

    from train.trainer import DEFAULT_OPTIMIZER

    pythae_error = None
    if not args.no_pythae:
        try:
            import pythae  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - reported in the table instead
            pythae_error = f"{type(exc).__name__}: {exc}"
    out = [header("Training throughput")]
    if args.in_process:
        out += in_process_tables(args)
        print("\n".join(out), flush=True)
        return None
    rows, trained_rows, pythae_rows = [], [], []
    for name in args.models:
        with_pythae = name == "vae" and not args.no_pythae and not pythae_error
        has_trained = (REPO_ROOT / "pretrained" / name / "model.safetensors").is_file()
        variants = ["trainer", "plain"] + (["trainer-trained"] if has_trained else []) + \
            ([] if args.no_adam_compare else ["plain-adam"]) + (["pythae"] if with_pythae else [])
        ips = {v: [] for v in variants}
        for r in range(args.repeats):
            order = variants[r % len(variants):] + variants[:r % len(variants)]  # rotate who goes first
            for variant in order:
                ips[variant].append(isolated(variant, name, args))
            print(f"{name} repeat {r + 1}: " + ", ".join(f"{v} {ips[v][-1]:.0f}/s" for v in variants),
                  file=sys.stderr, flush=True)
        ratios = [t / p for t, p in zip(ips["trainer"], ips["plain"])]
        fused = [p / a for p, a in zip(ips["plain"], ips.get("plain-adam", []))]
        rows.append([name, f"{median(ips['trainer']):,.0f}", f"{median(ips['plain']):,.0f}",
                     f"{median(ratios):.3f}× ({min(ratios):.3f}–{max(ratios):.3f})", "≥ 1.0×",
                     verdict(median(ratios) >= 1.0), f"{median(fused):.3f}×" if fused else "not measured"])
        if has_trained:
            # A trained decoder's confident background logits (-30 to -100) make float32 denormals in the
            # likelihood's maths, a slow path on CPUs; a fresh decoder's logits are near 0. The trainer flushes them.
            trained_rows.append(speed_row(name, ips["trainer"], ips["trainer-trained"]))
        if "pythae" in ips:
            vs_trainer = [p / t for p, t in zip(ips["pythae"], ips["trainer"])]
            vs_plain = [p / q for p, q in zip(ips["pythae"], ips["plain"])]
            pythae_rows.append(["vae (784-200-200-50)", f"{median(ips['pythae']):,.0f}",
                                f"{median(ips['trainer']):,.0f}", f"{median(ips['plain']):,.0f}",
                                f"{median(vs_trainer):.3f}×", f"{median(vs_plain):.3f}×"])
    out += [f"Batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up steps, each run a fresh "
            f"process, {args.repeats} interleaved repeats; median (min–max) of the per-repeat ratios; "
            f"{'CPU time of the process' if args.clock == 'cpu' else 'wall time'}.", "",
            table(["model", "trainer images/s", "plain loop images/s", "trainer / plain", "target", "",
                   f"plain loop: {DEFAULT_OPTIMIZER} / PyTorch's default adam"], rows), ""]
    if trained_rows:
        out += ["#### The trainer from a fresh initialisation vs from the trained pretrained/<model> (--init-from)", "",
                table(["model", "fresh images/s", "trained images/s", "trained / fresh", "target", ""], trained_rows),
                ""]
    if pythae_error:
        out += [f"Pythae could not be imported, so it was not measured: `{pythae_error}`", ""]
    elif pythae_rows:
        out += ["#### Pythae 0.1.2 BaseTrainer, same architecture, data, batch size and lr, same run", "",
                table(["model", "Pythae images/s", "our trainer images/s", "plain loop images/s",
                       "Pythae / our trainer", "Pythae / plain"], pythae_rows), ""]
    if not args.no_pythae and not pythae_error and args.nll_digits:
        out += ["#### Importance-sampled NLL: Pythae `get_nll` vs ours (one run each, back to back)", "",
                table(["implementation", "data", "seconds", "mean NLL (nats)", "time vs ours"],
                      nll_comparison(args.nll_digits, args.nll_samples, args.pythae_nll_batch)), ""]
    print("\n".join(out), flush=True)

    if not args.no_ddp:
        ddp_rows = []
        for name in args.ddp_models:
            single, double = [], []
            for r in range(args.ddp_repeats):
                for processes in ((1, 2) if r % 2 == 0 else (2, 1)):
                    result = run_ddp(name, processes, args.batch_size, args.steps, args.warmup, args.data_dir)
                    (single if processes == 1 else double).append(result)
                print(f"ddp {name} repeat {r + 1}: 1 process {single[-1]['images_per_s']:.0f}/s, "
                      f"2 processes {double[-1]['images_per_s']:.0f}/s", file=sys.stderr, flush=True)
            ratios = [d["images_per_s"] / s["images_per_s"] for s, d in zip(single, double)]
            ddp_rows.append([name, f"{median([s['images_per_s'] for s in single]):,.0f} "
                                   f"({single[0]['threads']} threads)",
                             f"{median([d['images_per_s'] for d in double]):,.0f} "
                             f"(2 × {double[0]['threads']} thread{'s' if double[0]['threads'] > 1 else ''})",
                             f"{median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"])
        print("\n".join([
            "#### 2-process DDP on CPU (gloo) vs 1 process", "",
            f"`ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 ... -m train`-style runs of "
            f"our trainer, batch {args.batch_size} per process (global {2 * args.batch_size} under DDP), "
            f"{args.steps} timed steps, {args.ddp_repeats} interleaved repeats; images/s counts all processes.", "",
            table(["model", "1 process images/s", "2-process DDP images/s", "DDP / 1 process"], ddp_rows), ""]),
            flush=True)


if __name__ == "__main__":
    main()

"""Tab "Train one yourself": a 2-D model trained on MNIST in the page, by the project's trainer (train.trainer's
step generator, `Trainer.steps`), with the loss curves and the latent scatter over the prior's density updating as
it trains, a Stop button and a hard time budget. One training runs at a time per server (the event's
concurrency_limit is 1: others wait in the queue and see their position); it trains on TRAIN_THREADS torch threads
so that the other tabs stay responsive. The result downloads as a zip in the layout of `pretrained/`, and a visitor
signed in with Hugging Face (OAuth, on a Space) can push it to a model repo of their own.

This module is the one place where the app uses train/ (the trainer and the Hub push); train/ never imports demo/.

Where MNIST comes from: the app's data folder (`--data-dir` / VAE_FAMILY_DATA_DIR), else vae_models.data's cache,
which downloads the four IDX files from the standard mirrors (checksums verified) on first use. Without either
the tab says so, and training is refused with that reason.
"""

import json
import os
import re
import shutil
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr
import pandas as pd
import torch

from vae_models import CheckpointError, ConfigError, checkpoints, evaluating, load_model
from vae_models.data import DataError, held_out_digits, load_mnist
from vae_models.metrics import (cluster_probabilities, cluster_shares, importance_sampled_nll, paper_rule_clustering,
                                prior_mmd)

from .common import generator

if TYPE_CHECKING:  # train.trainer (accelerate) is imported when a training starts, not with the app
    from train.trainer import TrainConfig, Trainer
from .priors import render_scatter

# What a visitor can train: the bundled checkpoints with a 2-D latent space (the scatter draws their codes), each
# from its own recipe (recipes/<name>.json: model, model config, batch size, learning rate). The catalogue declares
# them (vae_models/catalogue.py); this module names none.
# Learning rate for a ~1500-step run, measured at equal steps on this machine (benchmarks/README.md): a model trained
# on its own bound gains from 3x the recipes' 1e-3 (2-D VAE: test NLL 146.0 vs 150.0 nats after 1488 steps); the
# two-player models (spec.adversarial) do not (mixture AAE prior MMD 0.125 at 3e-3 vs 0.082 at 1e-3 after ~1400
# steps: the adversary oscillates), so they keep their recipe's.
SHORT_RUN_LR_GAIN = 3.0


@dataclass(frozen=True)
class LiveModel:
    name: str  # the checkpoint (and recipe) name: "vae-2d"; the API's value
    title: str  # what the page shows: "VAE (2-D)"
    model: str  # registry name
    model_config: dict
    batch_size: int
    lr: float
    validation_examples: int = 0  # training digits the recipe holds out (they label a clustering model's clusters)
    adam_beta1: float = 0.9  # the recipe's Adam beta1 (a two-player recipe may choose GAN-style 0.5)


def live_models(recipes_dir: Path | None = None) -> dict[str, LiveModel]:
    """The catalogue's checkpoints of generative models whose codes are drawn in a plane (a 2-D code, or a clustering
    AAE's 2-D style: config.pictured_in_2d), those of the recipes in `recipes_dir` instead when given, by
    checkpoint name, in the catalogue's order."""
    found = {}
    for name, (checkpoint, spec) in checkpoints(recipes_dir).items():
        if not (checkpoint.config.pictured_in_2d and spec.generative):
            continue
        train = checkpoint.train
        lr = train.get("lr", 1e-3) * (1.0 if spec.adversarial else SHORT_RUN_LR_GAIN)
        found[name] = LiveModel(name, checkpoint.title, checkpoint.model, dict(checkpoint.model_config),
                                train.get("batch_size", BATCH_SIZE), lr, train.get("validation_examples", 0),
                                train.get("adam_beta1", 0.9))
    return found


MAX_SECONDS = 90  # the hard budget of one training's steps (setup before and export after take a few seconds)
TRAIN_THREADS = 1  # torch threads while training: the other core(s) stay free for the other tabs' requests
BATCH_SIZE = 128  # when a recipe does not say
REFRESH_S, SCATTER_EVERY_S = 1.0, 3.0  # how often the curves / the scatter are sent
SCATTER_POINTS, EVAL_POINTS, EVAL_K = 1000, 500, 100
KEEP_RESULTS = 8  # finished zips kept on disk for download / push
REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
EXPORT_NAMES = {"model.safetensors", "config.json", "README.md", "samples.png", "training_args.json",
                "eval_results.json"}

INTRO = """### Train one yourself
Pick a model with a 2-D code and train it on MNIST right here, for up to {max_s} s. Watch the loss fall and the
codes of 1000 test digits (coloured by digit) spread over the prior's density (grey): the VAE's KL term and the
AAE's and AVB's adversaries pull them there in different ways. One training runs at a time on this server; if
someone else is training, you wait in the queue and see your position. The result downloads as a zip with the same
files as the app's bundled models (load it with `vae_models.load_model(folder)`).

{data_note}"""


def data_note(data_dir) -> str:
    """Where the training data comes from, or why there is none: read once when the tab is built."""
    try:
        load_mnist("test", data_dir=data_dir, download=False)
        where = f"the folder `{data_dir}`" if data_dir else "this server's download cache"
        return f"Training data: MNIST from {where}."
    except (DataError, OSError) as exc:
        if data_dir:
            return (f"**MNIST is not available on this server** ({exc}), so training is disabled here. Start the "
                    "app with `--data-dir` pointing at the four MNIST IDX files.")
        return ("Training data: MNIST, downloaded from the standard mirrors on the first training (about 12 MB, "
                "checksums verified). If this server cannot reach them, training says so.")


class LiveTraining:
    """Server-wide state of the tab: the running session, who asked to stop, where finished runs are kept."""

    def __init__(self, data_dir=None, workdir=None, recipes_dir=None):
        self.data_dir = data_dir
        self.models = live_models(recipes_dir)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="vae-family-live-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.stop_requests: set[str] = set()
        self.lock = threading.Lock()
        self.running: str | None = None

    # -- training ---------------------------------------------------------------------------------------------
    def config(self, choice: str, seconds, seed) -> "tuple[TrainConfig, float]":
        from train.trainer import TrainConfig  # imported on first use: accelerate costs the app's cold start
        if choice not in self.models:
            raise gr.Error(f"unknown model {choice!r}; choose one of {list(self.models)}", print_exception=False)
        try:
            seconds, seed = float(seconds), int(seed)
        except (TypeError, ValueError):
            raise gr.Error("the time budget and the seed must be numbers", print_exception=False) from None
        if not 1 <= seconds <= MAX_SECONDS:
            raise gr.Error(f"the time budget must be 1-{MAX_SECONDS} s, got {seconds:g}", print_exception=False)
        if not 0 <= seed < 2**31:
            raise gr.Error(f"the seed must be 0-{2**31 - 1}, got {seed}", print_exception=False)
        live = self.models[choice]
        run = Path(tempfile.mkdtemp(prefix="run-", dir=self.workdir))
        cfg = TrainConfig(model=live.model, model_config=dict(live.model_config), data_dir=self.data_dir,
                          batch_size=live.batch_size, lr=live.lr, max_steps=10**9, seed=seed,
                          validation_examples=live.validation_examples, adam_beta1=live.adam_beta1,
                          output_dir=str(run / "run"), checkpoint_every=0,
                          save_pretrained=str(run / "export" / f"live-{live.name}"), progress_bar=False)
        return cfg, seconds

    def train(self, choice: str, seconds, seed, session: str):
        """Generator of (loss curves, latent scatter, status, zip or None); the last one carries the zip."""
        from train.trainer import Trainer, TrainError

        cfg, budget = self.config(choice, seconds, seed)
        with self.lock:
            self.stop_requests.discard(session)
            self.running = session
        threads = torch.get_num_threads()
        torch.set_num_threads(TRAIN_THREADS)
        try:
            try:
                trainer = Trainer(cfg)
            except TrainError as exc:
                if "cannot load" in str(exc):
                    raise gr.Error(f"MNIST is not available on this server: {exc}", print_exception=False) from exc
                raise gr.Error(str(exc), print_exception=False) from exc
            test_x, test_y = self.test_digits()
            yield from self._loop(trainer, self.models[choice].title, budget, session, test_x, test_y)
        finally:
            torch.set_num_threads(threads)
            with self.lock:
                self.running = None
                self.stop_requests.discard(session)
            shutil.rmtree(Path(cfg.output_dir), ignore_errors=True)  # checkpoints and logs; the zip stays

    def test_digits(self) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = load_mnist("test", data_dir=self.data_dir)  # already read (and fetched) by the trainer
        pick = torch.randperm(len(images), generator=generator(0))[:SCATTER_POINTS]
        return images[pick].unsqueeze(1).float() / 255.0, labels[pick]

    def _loop(self, trainer: "Trainer", title: str, budget: float, session: str, test_x, test_y):
        curves: list[dict] = []
        pending: dict[str, list[float]] = {}
        scatter, stopped_by = None, "time budget"
        start = None  # the budget counts training steps: it starts at the first one (setup comes before it)
        last_sent = last_scatter = -float("inf")
        steps = trainer.steps()
        step = 0
        try:
            for record in steps:
                step = record["step"]
                if start is None:
                    start = time.monotonic()
                for key, value in record.items():
                    if key.startswith("train/") and key != "train/lr":
                        pending.setdefault(key.removeprefix("train/"), []).append(value)
                now = time.monotonic()
                if session in self.stop_requests:
                    stopped_by = "your Stop"
                    break
                if now - start >= budget:
                    break
                if now - last_sent >= REFRESH_S:
                    curves += [{"step": step, "loss": sum(v) / len(v), "term": k} for k, v in pending.items()]
                    pending.clear()
                    if now - last_scatter >= SCATTER_EVERY_S:
                        scatter, last_scatter = self.scatter(trainer, title, test_x, test_y, step), now
                    last_sent = now
                    yield (pd.DataFrame(curves), scatter,
                           f"Training **{title}**: step {step}, {now - start:.0f} of {budget:.0f} s.", None)
        finally:
            steps.close()  # ends the trainer's loop at this step (its files are closed)
        if pending:
            curves += [{"step": step, "loss": sum(v) / len(v), "term": k} for k, v in pending.items()]
        elapsed = time.monotonic() - start if start is not None else 0.0
        scatter = self.scatter(trainer, title, test_x, test_y, step)
        summary = self.evaluate(trainer, test_x, test_y)
        zipped = self.export(trainer, step)
        status = (f"**Done**: {title}, {step} steps ({step * trainer.cfg.batch_size / 60000:.2f} epochs) in {elapsed:.0f} s, "
                  f"stopped by {stopped_by}. {summary} Download the zip below.")
        yield pd.DataFrame(curves), scatter, status, str(zipped)

    @torch.no_grad()
    def scatter(self, trainer: "Trainer", title: str, x, y, step: int):
        model = trainer.model
        with evaluating(model):
            prior = model.plane_prior_sample(20_000, generator(0)).cpu()
            return render_scatter(model.plane_codes(x.to(model.device)).cpu(), y, prior, f"{title}, step {step}")

    @torch.no_grad()
    def evaluate(self, trainer: "Trainer", x, y) -> str:
        """Quick numbers on held-out digits: prior MMD of the codes, and an IS-NLL estimate where there is one (both
        measured in eval mode; the model is left training)."""
        model = trainer.model
        parts = [f"Prior MMD of {len(x)} test codes: {prior_mmd(model, x, n=len(x), generator=generator(1)):.4f}."]
        if model.spec.clusters:
            parts.append(clusters_summary(trainer, x, y))
        if model.spec.has_likelihood_bound:
            binary = torch.bernoulli(x[:EVAL_POINTS], generator=generator(0))
            nll = importance_sampled_nll(model, binary, num_samples=EVAL_K).mean()
            parts.append(f"Test NLL ≈ {float(nll):.1f} nats (k = {EVAL_K}, {len(binary)} digits; quick estimate).")
        return " ".join(parts)

    def export(self, trainer: "Trainer", step: int) -> Path:
        """The trainer's export (model.safetensors, config.json, card, samples, training_args.json) as a zip whose
        one folder is laid out like pretrained/<name>/; the recorded command reproduces the run offline."""
        cfg = trainer.cfg
        cfg.max_steps = step
        cfg.command = ["--model", cfg.model, *[a for k, v in cfg.model_config.items()
                                               for a in ("--set", f"{k}={json.dumps(v, separators=(',', ':'))}")],
                       "--max-steps", str(step), "--batch-size", str(cfg.batch_size), "--lr", f"{cfg.lr:g}",
                       "--seed", str(cfg.seed)]
        folder = trainer.export(step)
        trainer.accelerator.end_training()
        zipped = folder.parent.parent / f"{folder.name}-{step}-steps.zip"
        with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(folder.iterdir()):
                z.write(path, f"{folder.name}/{path.name}")
        shutil.rmtree(folder.parent, ignore_errors=True)  # the zip holds it
        self._prune()
        return zipped

    def _prune(self) -> None:
        runs = sorted((p for p in self.workdir.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        for old in runs[:-KEEP_RESULTS]:
            shutil.rmtree(old, ignore_errors=True)

    def stop(self, session: str) -> str:
        with self.lock:
            if self.running != session:
                return "Nothing of yours is training right now."
            self.stop_requests.add(session)
        return "Stopping after the current step; the model trained so far is exported."


# ------------------------------------------------------------------------------------------- push


@torch.no_grad()
def clusters_summary(trainer: "Trainer", x, y) -> str:
    """A clustering model's cluster shares of the test digits `x` and its clustering error on them, each cluster
    labelled by the paper's rule from the digits the run held out of training (vae_models.metrics)."""
    model, held_out = trainer.model, trainer.cfg.validation_examples
    if not held_out:
        shares = cluster_shares(cluster_probabilities(model, x))
    else:
        shares, error = paper_rule_clustering(model, x, y, *held_out_digits(held_out, trainer.cfg.data_dir))
    text = (f"Cluster shares of the {len(x)} test digits: {100 * float(shares.min()):.1f} % to "
            f"{100 * float(shares.max()):.1f} % (1/{len(shares)} = {100 / len(shares):.1f} % each when they fill "
            "evenly).")
    if held_out:
        text += (f" Clustering error {100 * error:.1f} % (each cluster labelled by its surest digit of the "
                 f"{held_out:,} held out of training, the paper's rule).")
    return text


def unpack_export(zip_path) -> Path:
    """Unzip a live-training export into a fresh folder after checking it holds one export folder and nothing else,
    and that the weights load (strict safetensors, validated config)."""
    if not zip_path:
        raise gr.Error("train a model first: there is no zip to push", print_exception=False)
    try:
        with zipfile.ZipFile(zip_path) as z:
            names = z.namelist()
            folders = {n.split("/")[0] for n in names}
            if len(folders) != 1 or any(n.count("/") != 1 or n.split("/")[1] not in EXPORT_NAMES for n in names):
                raise gr.Error(f"not an export zip: expected one folder with {sorted(EXPORT_NAMES)}",
                               print_exception=False)
            target = Path(tempfile.mkdtemp(prefix="push-"))
            z.extractall(target)
    except (zipfile.BadZipFile, OSError) as exc:
        raise gr.Error(f"not a zip file: {exc}", print_exception=False) from exc
    folder = target / folders.pop()
    try:
        load_model(str(folder))
    except (CheckpointError, ConfigError, ValueError) as exc:
        raise gr.Error(f"the zip's model does not load: {exc}", print_exception=False) from exc
    return folder


def push(zip_path, repo_name: str, token: str | None) -> str:
    """Push the export to <the token's user>/<repo_name> on the Hub (HF_ENDPOINT); Markdown with the commit link."""
    from huggingface_hub import HfApi

    from train.hub import PushError, push_folder

    if not token:
        raise gr.Error("sign in with Hugging Face first (the button above; on the Space)", print_exception=False)
    repo_name = (repo_name or "").strip()
    if not REPO_NAME.match(repo_name) or ".." in repo_name or repo_name.endswith((".git", ".")):
        raise gr.Error(f"invalid repo name {repo_name!r}: letters, digits, '.', '_' and '-', at most 96",
                       print_exception=False)
    folder = unpack_export(zip_path)
    try:
        user = HfApi().whoami(token=token)["name"]
        url = push_folder(folder, f"{user}/{repo_name}", token=token,
                          commit_message=f"Upload {folder.name}, trained live in the VAE-family app")
    except PushError as exc:
        raise gr.Error(str(exc), print_exception=False) from exc
    except Exception as exc:  # whoami: refused token or unreachable Hub
        raise gr.Error(f"the Hub did not accept the token: {type(exc).__name__}: {str(exc)[:200]}",
                       print_exception=False) from exc
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)
    return f"Pushed to **{user}/{repo_name}**: {url}"


def oauth_requested(flag: bool | None = None) -> bool:
    """Show the Hugging Face sign-in: on a Space (SPACE_ID) unless told otherwise. Locally gradio mocks the sign-in
    with the machine's own HF token, which it then requires at launch, so it is off by default there."""
    if flag is not None:
        return flag
    return bool(os.environ.get("SPACE_ID"))


def build(store, oauth: bool | None = None) -> LiveTraining:
    live = LiveTraining(store.data_dir)
    gr.Markdown(INTRO.format(max_s=MAX_SECONDS, data_note=data_note(store.data_dir)))
    with gr.Row():
        with gr.Column(scale=1):
            offered = [(m.title, name) for name, m in live.models.items()]
            choice = gr.Radio(offered, value=offered[0][1] if offered else None, label="2-D model")
            seconds = gr.Slider(1, MAX_SECONDS, value=MAX_SECONDS, step=1, label="Time budget (s)")
            seed = gr.Number(0, precision=0, label="Seed")
            with gr.Row():
                start_btn = gr.Button("Train", variant="primary")
                stop_btn = gr.Button("Stop", variant="stop")
            status = gr.Markdown(elem_id="live-status")
            download = gr.DownloadButton("Download the trained model (zip)", value=None, elem_id="live-download")
        with gr.Column(scale=2):
            curves = gr.LinePlot(x="step", y="loss", color="term", title="Training loss terms (nats per image)",
                                 height=260, elem_id="live-curves")
            scatter = gr.Image(type="pil", label="Codes of 1000 test digits over the prior's density",
                               format="png", elem_id="live-scatter")

    def train_live(model: str, budget_s: float, seed_value: float, request: gr.Request):
        yield from live.train(model, budget_s, seed_value, request.session_hash or "")

    def stop_live(request: gr.Request) -> str:
        return live.stop(request.session_hash or "")

    start_btn.click(train_live, [choice, seconds, seed], [curves, scatter, status, download], api_name="train_live",
                    concurrency_limit=1, concurrency_id="live-training")
    stop_btn.click(stop_live, None, status, api_name="stop_live")

    gr.Markdown("#### Push it to your Hugging Face account")
    if oauth_requested(oauth):
        gr.LoginButton()
    else:
        gr.Markdown("On the Space, sign in with Hugging Face to push the trained model to a repo of your own. "
                    "Here, API callers can pass a token: `Client(url, oauth_token=...)`.")
    with gr.Row():
        repo = gr.Textbox("vae-family-live", label="Repo name (under your user name)")
        push_btn = gr.Button("Push to my namespace")
    pushed = gr.Markdown(elem_id="live-pushed")

    def push_live(zip_path, repo_name: str, oauth_token: gr.OAuthToken | None):
        return push(zip_path, repo_name, oauth_token.token if oauth_token else None)

    push_btn.click(push_live, [download, repo], pushed, api_name="push_live")
    return live

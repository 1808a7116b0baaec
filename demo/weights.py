"""Where the app's models come from: the bundled `pretrained/` folder (default, offline) or the Hugging Face Hub.

Local mode reads `pretrained/<name>/` (a `save_pretrained` folder: model.safetensors + config.json). Hub mode
(`python app.py --hub` or `VAE_FAMILY_HUB=1`, the default on a Space) downloads each model with
`snapshot_download` at the pinned revision of HUB_REVISIONS, safetensors/json/md/png only (never pickles), then
loads it from the local snapshot; huggingface_hub caches the snapshot. When the Hub cannot be reached, or a repo
or revision is missing, the bundled weights are used instead and `ModelStore.notice` says so (the app shows it
as a banner). A model that is missing or does not match its config disables only the features that need it:
`ModelStore.get` raises `ModelUnavailable` with the reason, and each tab lists what it cannot do.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS_DIR = REPO_ROOT / "pretrained"

# name -> what the app uses it for (shown when the model is missing)
MODEL_NAMES = {
    "ae": "plain autoencoder (sampling, interpolation)",
    "vae": "VAE (sampling, interpolation, denoising baseline)",
    "dvae": "denoising VAE (sampling, denoising)",
    "avb": "adversarial variational Bayes (sampling)",
    "aae": "adversarial autoencoder (sampling)",
    "cvae": "conditional VAE (conditional digits, same style)",
    "socvae": "structured-output CVAE (quadrant completion)",
    "quadrant_nn": "deterministic quadrant baseline (quadrant completion)",
    "classifier": "MNIST classifier (labels of drawn digits)",
    "vae-2d": "2-D VAE (manifold, prior comparison)",
    "aae-2d-gaussian": "2-D AAE, Gaussian prior (manifold, prior comparison)",
    "aae-2d-mixture": "2-D AAE, 10-Gaussian mixture prior (manifold, prior comparison)",
    "aae-2d-supervised": "2-D AAE, label-supervised mixture prior (prior comparison)",
    "avb-2d": "2-D AVB (manifold, prior comparison)",
}

# The Hub repos the app pulls in hub mode, pinned by revision (a commit sha or tag) so a Space always shows the
# weights it was checked with. Override any entry with VAE_FAMILY_HUB_REVISIONS: a JSON file path or inline JSON
# {name: {"repo_id": ..., "revision": ...}}.
HUB_REVISIONS: dict[str, dict[str, str]] = {
    name: {"repo_id": f"vae-family/mnist-{name}", "revision": "main"} for name in MODEL_NAMES
}
HUB_ENV, REVISIONS_ENV, WEIGHTS_ENV = "VAE_FAMILY_HUB", "VAE_FAMILY_HUB_REVISIONS", "VAE_FAMILY_WEIGHTS"
DATA_ENV = "VAE_FAMILY_DATA_DIR"  # MNIST folder for the latent scatters (else the standard cache / the bundled digits)
ALLOW_PATTERNS = ["*.safetensors", "*.json", "*.md", "*.png"]


class ModelUnavailable(RuntimeError):
    """A model the feature needs is missing or broken; the message says which and why."""


def hub_requested(flag: bool | None = None) -> bool:
    """--hub, else VAE_FAMILY_HUB=1, else on a Hugging Face Space (SPACE_ID is set there)."""
    if flag is not None:
        return flag
    value = os.environ.get(HUB_ENV)
    if value is not None:
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(os.environ.get("SPACE_ID"))


def hub_revisions(overrides: dict | str | None = None) -> dict[str, dict[str, str]]:
    """HUB_REVISIONS updated from `overrides` (a dict, a JSON string or a JSON file path) or VAE_FAMILY_HUB_REVISIONS."""
    table = {name: dict(entry) for name, entry in HUB_REVISIONS.items()}
    source = overrides if overrides is not None else os.environ.get(REVISIONS_ENV)
    if source:
        if isinstance(source, str):
            text = Path(source).read_text(encoding="utf-8") if not source.lstrip().startswith("{") else source
            source = json.loads(text)
        for name, entry in source.items():
            if name not in MODEL_NAMES or not isinstance(entry, dict) or not set(entry) <= {"repo_id", "revision"}:
                raise ValueError(f"bad hub revision entry {name!r}: {entry!r} (known models: {sorted(MODEL_NAMES)})")
            table[name].update(entry)
    return table


@dataclass
class Entry:
    folder: Path | None = None  # the checkpoint folder used (bundled or a Hub snapshot)
    source: str = ""  # "bundled" or "hub <repo>@<revision>"
    model: object = None
    error: str | None = None  # why the model is unavailable


class ModelStore:
    """Loads each model once, lazily, from the chosen folders; thread-safe (Gradio runs handlers in threads)."""

    def __init__(self, weights_dir: str | Path | None = None, hub: bool | None = None,
                 revisions: dict | str | None = None, data_dir: str | None = None):
        self.weights_dir = Path(weights_dir or os.environ.get(WEIGHTS_ENV) or DEFAULT_WEIGHTS_DIR)
        self.data_dir = data_dir or os.environ.get(DATA_ENV)
        self.hub = hub_requested(hub)
        self.notice = ""
        self._lock = threading.Lock()
        self._entries = {name: Entry(self.weights_dir / name, "bundled") for name in MODEL_NAMES}
        if self.hub:
            self._download(hub_revisions(revisions))

    def _download(self, table: dict[str, dict[str, str]]) -> None:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                            RevisionNotFoundError)

        failed: list[str] = []
        unreachable: str | None = None
        for name, entry in table.items():
            if unreachable:
                failed.append(name)
                continue
            try:
                folder = snapshot_download(entry["repo_id"], revision=entry["revision"], allow_patterns=ALLOW_PATTERNS)
            except LocalEntryNotFoundError as exc:  # no connection and nothing cached: the Hub is unreachable
                unreachable = str(exc).splitlines()[0][:200]
                failed.append(name)
                continue
            except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
                failed.append(f"{name} ({type(exc).__name__})")
                continue
            except Exception as exc:  # connection refused, timeouts, offline mode, 5xx: the Hub is unreachable
                unreachable = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                failed.append(name)
                continue
            self._entries[name] = Entry(Path(folder), f"hub {entry['repo_id']}@{entry['revision']}")
        if unreachable:
            self.notice = (f"**The Hugging Face Hub could not be reached** ({unreachable}); showing the bundled "
                           f"weights from `{self.weights_dir.name}/` instead.")
        elif failed:
            self.notice = (f"**Some models could not be downloaded from the Hub**: {', '.join(failed)}; "
                           "using the bundled weights for those.")

    def get(self, name: str):
        """The loaded model, or ModelUnavailable saying why not."""
        from vae_models import load_model

        entry = self._entries[name]
        with self._lock:
            if entry.model is None and entry.error is None:
                try:
                    if entry.folder is None or not (entry.folder / "config.json").is_file():
                        raise FileNotFoundError(f"no checkpoint at {entry.folder}")
                    entry.model = load_model(str(entry.folder)).eval()
                except Exception as exc:  # missing files, unknown model_type, mismatched weights: disable, don't crash
                    entry.error = f"{type(exc).__name__}: {exc}"
        if entry.error:
            raise ModelUnavailable(f"The {MODEL_NAMES[name]} model '{name}' is unavailable: {entry.error}")
        return entry.model

    def available(self, name: str) -> bool:
        try:
            self.get(name)
        except ModelUnavailable:
            return False
        return True

    def folder(self, name: str) -> Path | None:
        return self._entries[name].folder

    def source(self, name: str) -> str:
        return self._entries[name].source

    def missing_message(self, names) -> str:
        """Markdown listing which of `names` cannot be loaded and why ("" when all load)."""
        lines = []
        for name in names:
            try:
                self.get(name)
            except ModelUnavailable as exc:
                lines.append(f"- {exc}")
        return ("**Unavailable here** (the rest of the tab works):\n" + "\n".join(lines)) if lines else ""

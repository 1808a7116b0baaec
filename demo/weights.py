"""Where the app's models come from: the bundled `pretrained/` folder (default, offline) or the Hugging Face Hub.

Local mode reads `pretrained/<name>/` (a `save_pretrained` folder: model.safetensors + config.json). Hub mode
(`python app.py --hub` or `VAE_FAMILY_HUB=1`, the default on a Space) downloads each model with
`snapshot_download` at the revision pinned in PINNED_REVISIONS ("main" otherwise), safetensors/json/md/png only
(never pickles), then loads it from the local snapshot; huggingface_hub caches the snapshot. When the Hub cannot be
reached, or a repo or revision is missing, the bundled weights are used instead and `ModelStore.notice` says so
(the app shows it as a banner). A model that is missing or does not match its config disables only the features that need it:
`ModelStore.get` raises `ModelUnavailable` with the reason, and each tab lists what it cannot do.

Which checkpoints exist is declared by the models themselves (`spec.checkpoints`, vae_models/registry.py): the
store holds every checkpoint of every registered model, and the tabs pick theirs by what the declarations say.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from vae_models import Checkpoint, Unsupported, checkpoints

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS_DIR = REPO_ROOT / "pretrained"
HUB_ORG = "vae-family"

# The revision (a commit sha or tag) the app pulls of each checkpoint's Hub repo in hub mode, so a Space always shows
# the weights it was checked with; checkpoints not listed use "main". Override any entry with
# VAE_FAMILY_HUB_REVISIONS: a JSON file path or inline JSON {name: {"repo_id": ..., "revision": ...}}.
PINNED_REVISIONS: dict[str, str] = {}
HUB_ENV, REVISIONS_ENV, WEIGHTS_ENV = "VAE_FAMILY_HUB", "VAE_FAMILY_HUB_REVISIONS", "VAE_FAMILY_WEIGHTS"
DATA_ENV = "VAE_FAMILY_DATA_DIR"  # MNIST folder for the latent scatters (else the standard cache / the bundled digits)
ALLOW_PATTERNS = ["*.safetensors", "*.json", "*.md", "*.png"]


class ModelUnavailable(RuntimeError):
    """A model the feature needs is missing or broken; the message says which and why."""


def checkpoint_names() -> list[str]:
    """Every checkpoint the registered models declare, in registration order."""
    return list(checkpoints())


def sampler_checkpoints() -> dict[str, Checkpoint]:
    """The checkpoints that sample without a condition (generative, not label-conditional; the 2-D ones have their
    own views), by name."""
    return {name: c for name, (c, spec) in checkpoints().items()
            if spec.generative and not spec.label_conditional and not c.latent_2d}


def latent_2d_checkpoints() -> dict[str, Checkpoint]:
    """The checkpoints with a 2-D latent space, by name: the manifold view and the prior comparison show them."""
    return {name: c for name, (c, _) in checkpoints().items() if c.latent_2d}


def hub_table() -> dict[str, dict[str, str]]:
    """name -> {"repo_id", "revision"} of every declared checkpoint: the Hub repo `vae-family/mnist-<name>`."""
    return {name: {"repo_id": f"{HUB_ORG}/mnist-{name}", "revision": PINNED_REVISIONS.get(name, "main")}
            for name in checkpoint_names()}


def hub_requested(flag: bool | None = None) -> bool:
    """--hub, else VAE_FAMILY_HUB=1, else on a Hugging Face Space (SPACE_ID is set there)."""
    if flag is not None:
        return flag
    value = os.environ.get(HUB_ENV)
    if value is not None:
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(os.environ.get("SPACE_ID"))


def hub_revisions(overrides: dict | str | None = None) -> dict[str, dict[str, str]]:
    """hub_table() updated from `overrides` (a dict, a JSON string or a JSON file path) or VAE_FAMILY_HUB_REVISIONS."""
    table = hub_table()
    source = overrides if overrides is not None else os.environ.get(REVISIONS_ENV)
    if source:
        if isinstance(source, str):
            text = Path(source).read_text(encoding="utf-8") if not source.lstrip().startswith("{") else source
            source = json.loads(text)
        for name, entry in source.items():
            if name not in table or not isinstance(entry, dict) or not set(entry) <= {"repo_id", "revision"}:
                raise ValueError(f"bad hub revision entry {name!r}: {entry!r} (known models: {sorted(table)})")
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
        self._entries = {name: Entry(self.weights_dir / name, "bundled") for name in checkpoint_names()}
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

    def names(self) -> list[str]:
        return list(self._entries)

    def title(self, name: str) -> str:
        return checkpoints()[name][0].title

    def get(self, name: str):
        """The loaded model, or ModelUnavailable saying why not."""
        from vae_models import CheckpointError, ConfigError, load_model

        if name not in self._entries:
            raise ModelUnavailable(f"no model declares a checkpoint named {name!r}")
        entry = self._entries[name]
        with self._lock:
            if entry.model is None and entry.error is None:
                try:
                    if entry.folder is None or not (entry.folder / "config.json").is_file():
                        raise FileNotFoundError(f"no checkpoint at {entry.folder}")
                    entry.model = load_model(str(entry.folder)).eval()
                except (OSError, CheckpointError, ConfigError) as exc:  # missing, unknown type, mismatched weights
                    entry.error = f"{type(exc).__name__}: {exc}"
        if entry.error:
            raise ModelUnavailable(f"The {self.title(name)} model '{name}' is unavailable: {entry.error}")
        return entry.model

    def use(self, name: str, action):
        """(action(model), None), or (None, why not) when the model is missing or does not support the action:
        the one place the tabs turn "this model can't do that here" into a message."""
        try:
            return action(self.get(name)), None
        except (ModelUnavailable, Unsupported) as exc:
            return None, str(exc)

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

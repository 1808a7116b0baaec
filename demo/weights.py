"""Where the app's models come from: the bundled `pretrained/` folder (default, offline) or the Hugging Face Hub.

Local mode reads `pretrained/<name>/` (a `save_pretrained` folder: model.safetensors + config.json). Hub mode
(`python app.py --hub` or `VAE_FAMILY_HUB=1`, the default on a Space) downloads each model with
`snapshot_download` at the commit pinned in hub_revisions.json (written by `python -m train.publish`; a model
without a pin is not downloaded, never "main"), safetensors/json/md/png only (never pickles), then loads it from
the local snapshot; huggingface_hub caches the snapshot. When the Hub cannot be reached, or a repo
or revision is missing, the bundled weights are used instead and `ModelStore.notice` says so (the app shows it
as a banner). A model that is missing or does not match its config disables only the features that need it:
`ModelStore.get` raises `ModelUnavailable` with the reason, and each tab lists what it cannot do.

Which checkpoints exist is declared by their recipes (the catalogue, vae_models/catalogue.py): the store holds
every checkpoint of every registered model, and the tabs pick theirs by what the declarations say.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from vae_models import Checkpoint, ConfigError, ModelSpec, Unsupported, checkpoints, typicality
from vae_models.data import environment_options

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS_DIR = REPO_ROOT / "pretrained"
HUB_ORG = "vae-family"

# The Hub repos the app pulls in hub mode, pinned by commit sha so a Space always shows the weights it was checked
# with. `python -m train.publish` pushes the models and writes the pins it got into REVISIONS_FILE (shipped with the
# Space); a model without a pin is not downloaded (the bundled weights stand in, and the banner says so). Override
# any entry with VAE_FAMILY_HUB_REVISIONS: a JSON file path or inline JSON {name: {"repo_id": ..., "revision": ...}}.
REVISIONS_FILE = Path(__file__).resolve().parent / "hub_revisions.json"
HUB_ENV, REVISIONS_ENV, WEIGHTS_ENV = "VAE_FAMILY_HUB", "VAE_FAMILY_HUB_REVISIONS", "VAE_FAMILY_WEIGHTS"
ALLOW_PATTERNS = ["*.safetensors", "*.json", "*.md", "*.png"]


class ModelUnavailable(RuntimeError):
    """A model the feature needs is missing or broken; the message says which and why."""


def checkpoint_names() -> list[str]:
    """Every checkpoint in the catalogue, in its order (the registration order of the models)."""
    return list(checkpoints())


def sampler_checkpoints() -> dict[str, Checkpoint]:
    """The checkpoints that sample without a condition (generative, not label-conditional; the 2-D ones and those
    with a cluster code, `spec.clusters`, have their own views), by name."""
    return {name: c for name, (c, spec) in checkpoints().items()
            if c.in_app and spec.generative and not spec.label_conditional and not c.latent_2d and not spec.clusters}


def latent_2d_checkpoints() -> dict[str, Checkpoint]:
    """The checkpoints with a 2-D latent space, by name: the manifold view and the prior comparison show them."""
    return {name: c for name, (c, _) in checkpoints().items() if c.in_app and c.latent_2d}


def interpolation_checkpoints() -> dict[str, Checkpoint]:
    """The checkpoints the latent-interpolation view compares (declared `interpolation`), by name."""
    return {name: c for name, (c, _) in checkpoints().items() if c.interpolation}


def traversal_checkpoints() -> dict[str, Checkpoint]:
    """The checkpoints the latent-traversal view offers (declared `traversal`), by name."""
    return {name: c for name, (c, _) in checkpoints().items() if c.traversal}


def featured(names, what: str) -> str:
    """The one of `names` (checkpoint names, in registration order) a view opens on or shows: the first declared
    `featured`, else the first. ConfigError when no registered model qualifies (`what` says for what)."""
    names = list(names)
    if not names:
        raise ConfigError(f"no registered model declares {what}")
    return next((name for name in names if checkpoints()[name][0].featured), names[0])


def label_judge() -> str:
    """The checkpoint that labels digits (a model that `classifies`): it predicts the label a conditional model is
    given when the visitor does not choose one."""
    return featured((name for name, (_, spec) in checkpoints().items() if spec.classifies),
                    "a classifier kind (a model that labels digits)")


def path_judge() -> str:
    """The likelihood checkpoint that judges the interpolation paths' frames with its meter: an unconditional
    model with a likelihood that is on none of the paths, so that no path is judged by its own model."""
    return featured((name for name, c in sampler_checkpoints().items()
                     if checkpoints()[name][1].has_likelihood_bound and not c.interpolation),
                    "a likelihood model that is not declared interpolation=True")


def conditional_sampler() -> str:
    """The label-conditional generative checkpoint the conditional-digits view samples and re-styles with."""
    return featured((name for name, (_, spec) in checkpoints().items() if spec.generative and spec.label_conditional),
                    "label_conditional=True with a generative kind")


def baseline_of(spec: ModelSpec) -> str:
    """The default checkpoint of the model `spec` declares as its baseline, or ConfigError saying what is wrong."""
    declared = checkpoints().get(spec.baseline)
    if declared is None or declared[0].model != spec.baseline:
        raise ConfigError(f"{spec.name} declares baseline={spec.baseline!r}, which is not a registered model with a "
                          "default checkpoint")
    return spec.baseline


def _with_baseline(qualifies, what: str) -> tuple[str, str]:
    name = featured((name for name, (c, spec) in checkpoints().items()
                     if qualifies(spec) and spec.baseline and c.name == spec.name), what)
    return name, baseline_of(checkpoints()[name][1])


def denoising_pair() -> tuple[str, str]:
    """(the denoiser, the model it extends, trained on clean digits): the denoising view compares the two. The
    denoiser is a model scored on denoising (`denoising=True`) that declares a `baseline`."""
    return _with_baseline(lambda spec: spec.denoising, "denoising=True with a baseline")


def completion_pair() -> tuple[str, str]:
    """(the quadrant-completion model, its deterministic baseline): the completion view shows the two side by side."""
    return _with_baseline(lambda spec: spec.completes_quadrants, 'kind="completion" with a baseline')


def hub_table() -> dict[str, dict[str, str | None]]:
    """name -> {"repo_id", "revision"} of every declared checkpoint: the Hub repo `vae-family/mnist-<name>`, not
    pinned (revision None) until the pins file or an override says which commit."""
    return {name: {"repo_id": f"{HUB_ORG}/mnist-{name}", "revision": None} for name in checkpoint_names()}


def hub_requested(flag: bool | None = None) -> bool:
    """--hub, else VAE_FAMILY_HUB=1, else on a Hugging Face Space (SPACE_ID is set there)."""
    if flag is not None:
        return flag
    value = os.environ.get(HUB_ENV)
    if value is not None:
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(os.environ.get("SPACE_ID"))


def _read_table(source: dict | str | os.PathLike) -> dict:
    if isinstance(source, dict):
        return source
    text = str(source)
    if not text.lstrip().startswith("{"):
        text = Path(text).read_text(encoding="utf-8")
    table = json.loads(text)
    if not isinstance(table, dict):
        raise ValueError(f"hub revisions must be a JSON object {{name: {{repo_id, revision}}}}, got {type(table)}")
    return table


def hub_revisions(overrides: dict | str | None = None, pins_file: str | os.PathLike | None = None
                  ) -> dict[str, dict[str, str | None]]:
    """{name: {"repo_id", "revision"}} for every model the app uses: the pins in `pins_file` (default
    REVISIONS_FILE, written by `python -m train.publish`), updated from `overrides` (a dict, a JSON string or a JSON
    file path) or VAE_FAMILY_HUB_REVISIONS. A model with no pin has revision None (never "main": an unpinned app
    would show whatever was pushed last)."""
    table = hub_table()
    pins_path = Path(pins_file) if pins_file is not None else REVISIONS_FILE
    extra = overrides if overrides is not None else os.environ.get(REVISIONS_ENV)
    sources = [(_read_table(pins_path), True)] if pins_path.is_file() else []
    sources += [(_read_table(extra), False)] if extra else []
    for source, from_pins_file in sources:
        for name, entry in source.items():
            if name not in table and from_pins_file:
                continue  # publish pins every bundled export, also those this app does not show
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
        # MNIST folder for the latent scatters and live training (else the standard cache / the bundled digits)
        self.data_dir = data_dir or environment_options()["data_dir"]
        self.hub = hub_requested(hub)
        self.notice = ""
        self._lock = threading.Lock()
        self._memo: dict = {}
        self._memo_lock = threading.Lock()
        self._entries = {name: Entry(self.weights_dir / name, "bundled") for name in checkpoint_names()}
        if self.hub:
            self._download(hub_revisions(revisions))

    def _download(self, table: dict[str, dict[str, str]]) -> None:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                            RevisionNotFoundError)

        failed: list[str] = []
        unpinned = [name for name, entry in table.items() if not entry.get("revision")]
        pinned = [name for name in table if name not in unpinned]
        unreachable: str | None = None

        def fetch(name: str) -> tuple[str, str | None, str | None]:
            """(name, folder or None, "unreachable: why" / "missing: why" / None)."""
            entry = table[name]
            try:
                return name, snapshot_download(entry["repo_id"], revision=entry["revision"],
                                               allow_patterns=ALLOW_PATTERNS), None
            except LocalEntryNotFoundError as exc:  # no connection and nothing cached: the Hub is unreachable
                return name, None, "unreachable: " + str(exc).splitlines()[0][:200]
            except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
                return name, None, f"missing: {type(exc).__name__}"
            except Exception as exc:  # connection refused, timeouts, offline mode, 5xx: the Hub is unreachable
                return name, None, f"unreachable: {type(exc).__name__}: " + \
                    (str(exc).splitlines()[0][:200] if str(exc) else "")

        # The first model alone: when the Hub is unreachable that is one failed connection, not one per model.
        # Then the rest in parallel (each snapshot is a few small HTTP requests: latency, not bandwidth, dominates
        # a Space's first start).
        results = [fetch(pinned[0])] if pinned else []
        if results and not (results[0][2] or "").startswith("unreachable"):
            with ThreadPoolExecutor(max_workers=8) as pool:
                results += list(pool.map(fetch, pinned[1:]))
        else:
            results += [(name, None, results[0][2]) for name in pinned[1:]]
        for name, folder, problem in results:
            entry = table[name]
            if problem is None:
                self._entries[name] = Entry(Path(folder), f"hub {entry['repo_id']}@{entry['revision']}")
            elif problem.startswith("unreachable"):
                unreachable = unreachable or problem[len("unreachable: "):]
                failed.append(name)
            else:
                failed.append(f"{name} ({problem[len('missing: '):]})")
        instead = (f"showing the bundled weights from `{self.weights_dir.name}/` instead" if self.weights_dir.is_dir()
                   else "their features are unavailable until it can be reached (reload the Space later)")
        notices = []
        if unreachable:
            notices.append(f"**The Hugging Face Hub could not be reached** ({unreachable}); {instead}.")
        elif failed:
            notices.append(f"**Some models could not be downloaded from the Hub**: {', '.join(failed)}; "
                           "using the bundled weights for those.")
        if unpinned:
            notices.append(f"**No pinned Hub revision** for {', '.join(unpinned)} (`{REVISIONS_FILE.name}` lacks "
                           "them; `python -m train.publish` writes it): using the bundled weights for those.")
        self.notice = " ".join(notices)

    @functools.cached_property
    def revision(self) -> str:
        """What the results of this store's models depend on, as one SHA-256 (the result cache's key, demo/cache.py):
        each checkpoint's source and the SHA-256 of every file in its folder (a Hub snapshot's too: a pin can be a
        tag): the weights, and what is read beside them (the meter's references, eval_results.json, the test
        codes); and the MNIST folder the latent scatters may encode. Other weights or references, other key."""
        h = hashlib.sha256(f"data_dir={self.data_dir}".encode())
        for name, entry in sorted(self._entries.items()):
            h.update(f"\n{name} {entry.source} ".encode())
            folder = entry.folder if entry.folder is not None and entry.folder.is_dir() else None
            for path in sorted(folder.iterdir()) if folder else ():  # a missing folder: its features raise
                if path.is_file():
                    with open(path, "rb") as f:
                        h.update(f"{path.name} ".encode() + hashlib.file_digest(f, "sha256").digest())
        return h.hexdigest()

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

    def memo(self, key, compute):
        """compute() once per key for this store (e.g. a checkpoint's codes of the test set), then the kept result."""
        with self._memo_lock:
            if key not in self._memo:
                self._memo[key] = compute()
            return self._memo[key]

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


@functools.lru_cache(maxsize=32)
def _reference(folder: str, mtime: float, kind: type) -> typicality.LikelihoodReference:
    return typicality.load_reference(folder, kind=kind)  # mtime in the key: a replaced file is read again


def reference_for(store: "ModelStore", name: str, kind: type = typicality.LikelihoodReference):
    """The model's test-set reference of this kind (log p(x) or S(x)), or ReferenceError saying why there is none
    (or why it is stale)."""
    folder = store.folder(name)
    path = Path(folder or "") / kind.FILE
    if folder is None or not path.is_file():
        raise typicality.ReferenceError(f"no {kind.FILE} beside the weights")
    return _reference(str(folder), path.stat().st_mtime, kind)

"""Publishing an export folder (what `--save-pretrained` writes) to the Hugging Face Hub as one commit.

The token comes from HF_TOKEN or `hf auth login` (huggingface_hub resolves it); HF_ENDPOINT picks the server.
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import HfHubHTTPError, HFValidationError

try:  # huggingface_hub 2.x talks through httpx2 (a fork of httpx), 1.x through httpx: catch whichever it uses
    from httpx2 import HTTPError as TransportError
except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
    from httpx import HTTPError as TransportError

# What the Hub repo holds: exactly the export layout; run bookkeeping (training_args.json) travels too, so the
# card's training command can be checked against the recorded arguments.
# test_codes.safetensors (2-D models only) holds the test set's codes the app's latent scatter shows (demo/test_codes.py).
EXPORT_FILES = ("model.safetensors", "config.json", "README.md", "samples.png", "eval_results.json",
                "training_args.json", "likelihood_reference.json", "complexity_reference.json",  # the app's meter
                "test_codes.safetensors")


class PushError(RuntimeError):
    """The upload failed (unreachable Hub, refused credentials, bad repo id); the local export is untouched."""


def push_folder(folder: str | os.PathLike, repo_id: str, revision: str | None = None, private: bool = False,
                token: str | None = None, commit_message: str | None = None) -> str:
    """create_repo(exist_ok) + create_branch(revision) + one upload_folder commit. Returns the commit URL."""
    folder = Path(folder)
    for required in ("model.safetensors", "config.json"):
        if not (folder / required).is_file():
            raise PushError(f"{folder} is not an export folder: it has no {required}")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        commit = api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type="model", revision=revision,
            allow_patterns=list(EXPORT_FILES), commit_message=commit_message or f"Upload {folder.name}",
        )
    except HFValidationError as exc:
        raise PushError(f"invalid Hub repo id {repo_id!r}: {exc}") from exc
    except HfHubHTTPError as exc:
        reason = str(exc).splitlines()[0]
        raise PushError(f"Hub at {constants.ENDPOINT} refused the push to {repo_id}: {reason}") from exc
    except (TransportError, OSError) as exc:  # connection refused, DNS, timeouts
        raise PushError(f"cannot reach the Hub at {constants.ENDPOINT} to push {repo_id} "
                        f"({type(exc).__name__}: {exc}); the export in {folder} is intact") from exc
    return commit.commit_url

"""Publish everything: `python -m train.publish --org ORG [--space ORG/NAME] [--private] [--dry-run]`.

1. Every bundled export (each folder of `pretrained/` holding model.safetensors + config.json) goes to the model repo
   ORG/mnist-<folder name>, in one commit, with its model card (model-index from eval_results.json) generated for
   that repo id (the local card is not rewritten).
2. The commit shas are written to the pinned-revisions file the app reads in Hub mode (demo/hub_revisions.json).
3. The Space (repo_type="space", gradio SDK; default ORG/vae-family) gets app.py, the packages the app imports
   (demo/, vae_models/, and train/ for the live-training tab), requirements.txt, the pins file and a README with the Space's front matter. The weights
   stay in the model repos: the Space downloads them at the pinned revisions.

Re-running pushes only what changed: each file's content is compared with the remote's (git blob id, or the LFS
sha256 for large files) at the head of main; a repo with nothing to change gets no commit and keeps its pin.
Errors that end the run with one `error:` line: no token, a token that may not write to ORG, a repo name that is
taken by something else (a model repo that is not this export's model type, a Space that is not a gradio app).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, SpaceCard, get_token
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from .card import CardError, build_card
from .hub import EXPORT_FILES, TransportError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PRETRAINED = REPO_ROOT / "pretrained"
DEFAULT_PINS = REPO_ROOT / "demo" / "hub_revisions.json"
PINS_IN_SPACE = "demo/hub_revisions.json"  # where the app looks for its pins (demo.weights.REVISIONS_FILE)
# What app.py imports or reads (train/ and recipes/: the live-training tab trains the 2-D models' recipes), and docs/
# (the Space card's screenshot and links are the README's); not tests/ or weights
SPACE_PACKAGES = ("demo", "vae_models", "train", "recipes", "docs")
SPACE_FILES = ("app.py", "requirements.txt")
SKIP_PARTS = ("__pycache__",)
SKIP_SUFFIXES = (".pyc", ".pyo")
KEEP_REMOTE = (".gitattributes",)  # the Hub's own file; never deleted


class PublishError(RuntimeError):
    """What stops a publish, said so the user can fix it."""


@dataclass
class RepoPlan:
    repo_id: str
    repo_type: str
    files: dict[str, bytes]  # path in repo -> content, everything the repo should hold
    exists: bool = False
    head: str | None = None  # the remote main's commit sha
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return self.exists and not self.changed and not self.deleted


def git_blob_id(data: bytes) -> str:
    """The id git (and the Hub's tree listing) gives a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def model_files(folder: Path, repo_id: str) -> dict[str, bytes]:
    """The export's files as the model repo holds them, README.md being the card generated for `repo_id`."""
    files = {name: (folder / name).read_bytes() for name in EXPORT_FILES if (folder / name).is_file()}
    files["README.md"] = str(build_card(folder, repo_id)).encode("utf-8")
    return files


def space_files(pins: dict, org_models: list[str], root: Path = REPO_ROOT) -> dict[str, bytes]:
    """What the Space holds: the app, its packages (sources and assets), requirements.txt, the new pins file, and
    the README with front matter (the repo's own, its `models:` listing the pushed repos)."""
    files = {name: (root / name).read_bytes() for name in SPACE_FILES}
    for package in SPACE_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and not set(path.parts) & set(SKIP_PARTS) and not path.name.endswith(SKIP_SUFFIXES):
                files[rel] = path.read_bytes()
    files[PINS_IN_SPACE] = pins_json(pins).encode("utf-8")
    card = SpaceCard.load(root / "README.md")
    if card.data.get("sdk") != "gradio":
        raise PublishError(f"{root / 'README.md'}'s front matter must declare `sdk: gradio` for the Space")
    card.data.models = org_models
    files["README.md"] = str(card).encode("utf-8")
    return files


def pins_json(pins: dict) -> str:
    return json.dumps(pins, indent=2, sort_keys=True) + "\n"


def exports(pretrained: Path) -> dict[str, Path]:
    found = {f.name: f for f in sorted(Path(pretrained).iterdir())
             if f.is_dir() and (f / "model.safetensors").is_file() and (f / "config.json").is_file()}
    if not found:
        raise PublishError(f"no export folders (model.safetensors + config.json) under {pretrained}")
    return found


def _remote(api: HfApi, plan: RepoPlan) -> dict[str, tuple[str, str | None]]:
    """Fill plan.exists/head; return {path: (git blob id, LFS sha256 or None)} of the remote main."""
    try:
        info = api.repo_info(plan.repo_id, repo_type=plan.repo_type, revision="main")
    except RepositoryNotFoundError:
        return {}
    plan.exists, plan.head = True, info.sha
    entries = api.list_repo_tree(plan.repo_id, repo_type=plan.repo_type, revision=info.sha, recursive=True)
    return {e.path: (e.blob_id, e.lfs.sha256 if e.lfs else None) for e in entries if hasattr(e, "blob_id")}


def _same(data: bytes, remote: tuple[str, str | None]) -> bool:
    blob_id, lfs_sha256 = remote
    if lfs_sha256:
        return hashlib.sha256(data).hexdigest() == lfs_sha256
    return git_blob_id(data) == blob_id


def _check_not_taken(api: HfApi, plan: RepoPlan, remote: dict, model_type: str | None) -> None:
    """A name in ORG that holds something else is not ours to overwrite."""
    if not plan.exists or set(remote) <= set(KEEP_REMOTE):
        return
    if plan.repo_type == "model":
        theirs = _remote_json(api, plan, "config.json") if "config.json" in remote else None
        if not isinstance(theirs, dict) or theirs.get("model_type") != model_type:
            what = f"a {theirs.get('model_type')!r} model" if isinstance(theirs, dict) else "no vae-family config.json"
            raise PublishError(f"the name {plan.repo_id} is taken: that repo holds {what}, not this {model_type!r} "
                               "export; publish to another --org or delete that repo first")
    else:
        readme = _remote_text(api, plan, "README.md") if "README.md" in remote else ""
        card = SpaceCard(readme) if readme.startswith("---") else None
        if "app.py" not in remote or card is None or card.data.get("sdk") != "gradio":
            raise PublishError(f"the name {plan.repo_id} is taken: that Space is not this gradio app (no app.py "
                               "or another sdk); choose another --space or delete it first")


def _remote_text(api: HfApi, plan: RepoPlan, path: str) -> str:
    local = api.hf_hub_download(plan.repo_id, path, repo_type=plan.repo_type, revision=plan.head)
    return Path(local).read_text(encoding="utf-8", errors="replace")


def _remote_json(api: HfApi, plan: RepoPlan, path: str):
    try:
        return json.loads(_remote_text(api, plan, path))
    except ValueError:
        return None


def diff(api: HfApi, plan: RepoPlan, model_type: str | None = None) -> RepoPlan:
    remote = _remote(api, plan)
    _check_not_taken(api, plan, remote, model_type)
    plan.changed = [p for p, data in plan.files.items() if p not in remote or not _same(data, remote[p])]
    plan.deleted = sorted(p for p in remote if p not in plan.files and p not in KEEP_REMOTE)
    return plan


def push(api: HfApi, plan: RepoPlan, private: bool, message: str) -> str:
    """Create the repo if needed and make one commit of what changed; the commit sha (the head if nothing did)."""
    if plan.up_to_date:
        return plan.head
    api.create_repo(plan.repo_id, repo_type=plan.repo_type, private=private, exist_ok=True,
                    space_sdk="gradio" if plan.repo_type == "space" else None)
    if not plan.exists:  # a new repo starts with the Hub's initial commit; compare against that
        diff(api, plan)
    operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=plan.files[p]) for p in plan.changed]
    operations += [CommitOperationDelete(path_in_repo=p) for p in plan.deleted]
    if not operations:
        return plan.head
    info = api.create_commit(plan.repo_id, operations, commit_message=message, repo_type=plan.repo_type,
                             parent_commit=plan.head)
    return info.oid


def check_token(api: HfApi, org: str, dry_run: bool) -> None:
    """A token that may write to ORG (a dry run only reads, and may go without one)."""
    token = api.token or get_token()
    if token is None:
        if dry_run:
            return
        raise PublishError("no Hugging Face token: set HF_TOKEN or run `hf auth login` with a token that can write "
                           f"to {org}")
    try:
        me = api.whoami(token=token)
    except HfHubHTTPError as exc:
        raise PublishError(f"the Hub refused the token: {str(exc).splitlines()[0]} (set a valid HF_TOKEN or run "
                           "`hf auth login`)") from exc
    namespaces = [me.get("name"), *(o.get("name") for o in me.get("orgs", []))]
    role = me.get("auth", {}).get("accessToken", {}).get("role")
    if role == "read" and not dry_run:
        raise PublishError(f"the token of {me.get('name')} is read-only; publishing needs a write token")
    if org not in namespaces:
        raise PublishError(f"no permission: the token of {me.get('name')} cannot write to {org!r} (it may write to: "
                           f"{', '.join(n for n in namespaces if n)}); pass one of those as --org")


def publish(org: str, space: str | None = None, private: bool = False, dry_run: bool = False,
            pretrained: Path = DEFAULT_PRETRAINED, pins_file: Path = DEFAULT_PINS, token: str | None = None,
            log=print) -> dict:
    """Push the models, write the pins, push the Space. Returns {"pins", "space", "commits": [repo ids committed]}."""
    space = space or f"{org}/vae-family"
    if "/" in org or not org:
        raise PublishError(f"--org must be a user or organisation name, got {org!r}")
    if space.count("/") != 1:
        raise PublishError(f"--space must be ORG/NAME, got {space!r}")
    api = HfApi(token=token)
    committed: list[str] = []
    try:
        check_token(api, org, dry_run)
        if space.split("/")[0] != org:
            check_token(api, space.split("/")[0], dry_run)
        found = exports(Path(pretrained))
        early = RepoPlan(space, "space", {})  # a taken Space name stops the run before any model is pushed
        _check_not_taken(api, early, _remote(api, early), None)
        plans = {}  # every name is checked (taken?) before anything is pushed
        for name, folder in found.items():
            repo_id = f"{org}/mnist-{name}"
            model_type = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
            plans[name] = diff(api, RepoPlan(repo_id, "model", model_files(folder, repo_id)), model_type)
        pins = {}
        for name, plan in plans.items():
            repo_id = plan.repo_id
            log(_describe(plan))
            if dry_run:
                pins[name] = {"repo_id": repo_id, "revision": plan.head if plan.up_to_date else "<new commit>"}
                continue
            sha = push(api, plan, private, f"Upload {name} (python -m train.publish)")
            if sha != plan.head:
                committed.append(repo_id)
            pins[name] = {"repo_id": repo_id, "revision": sha}
        if not dry_run:
            _write_if_changed(Path(pins_file), pins_json(pins))
            log(f"pins: {pins_file}")
        files = space_files(pins, [p["repo_id"] for p in pins.values()])
        plan = diff(api, RepoPlan(space, "space", files))
        log(_describe(plan))
        if not dry_run:
            sha = push(api, plan, private, "Update the app (python -m train.publish)")
            if sha != plan.head:
                committed.append(space)
    except RepositoryNotFoundError as exc:
        raise PublishError(f"the Hub says a repo does not exist or is not yours: {str(exc).splitlines()[0]}") from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        reason = str(exc).splitlines()[0]
        if status == 403:
            raise PublishError(f"no permission: {reason}") from exc
        if status == 409:
            raise PublishError(f"the name is taken: {reason}") from exc
        raise PublishError(f"the Hub refused: {reason}") from exc
    except (TransportError, OSError) as exc:
        raise PublishError(f"cannot reach the Hub ({type(exc).__name__}: {exc})") from exc
    except CardError as exc:
        raise PublishError(str(exc)) from exc
    return {"pins": pins, "space": space, "commits": committed}


def _describe(plan: RepoPlan) -> str:
    where = f"{plan.repo_type} {plan.repo_id}"
    if plan.up_to_date:
        return f"{where}: up to date at {plan.head}"
    parts = [f"{len(plan.changed)} file(s) to upload ({', '.join(plan.changed)})"] if plan.changed else []
    parts += [f"{len(plan.deleted)} to delete ({', '.join(plan.deleted)})"] if plan.deleted else []
    return f"{where}: {'new repo, ' if not plan.exists else ''}{'; '.join(parts)}"


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.publish", description=__doc__.splitlines()[0],
                                epilog="The token comes from HF_TOKEN or `hf auth login`; HF_ENDPOINT picks the server.")
    p.add_argument("--org", required=True, help="user or organisation that gets the model repos ORG/mnist-<name>")
    p.add_argument("--space", metavar="ORG/NAME", help="the Space to upload the app to (default ORG/vae-family)")
    p.add_argument("--private", action="store_true", help="create new repos as private")
    p.add_argument("--dry-run", action="store_true", help="say what would be pushed; change nothing")
    p.add_argument("--pretrained", type=Path, default=DEFAULT_PRETRAINED, help="folder of export folders")
    p.add_argument("--pins-file", type=Path, default=DEFAULT_PINS,
                   help="where to write the pinned revisions (default demo/hub_revisions.json, which the app reads)")
    args = p.parse_args(argv)
    try:
        result = publish(args.org, args.space, args.private, args.dry_run, args.pretrained, args.pins_file)
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.dry_run:
        print("dry run: nothing was pushed or written")
    else:
        print(f"published {len(result['commits'])} commit(s): {', '.join(result['commits']) or 'none (up to date)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

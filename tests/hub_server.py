"""A loopback Hugging Face Hub for tests: the HTTP calls huggingface_hub 2.4 makes, answered from memory.

Tests drive the real client over real HTTP: point `HF_ENDPOINT` at `start_hub_server().url` (in a subprocess,
because huggingface_hub reads it at import; see `hub_env` / `run_with_hub`). Implemented: create_repo,
validate-yaml, whoami-v2, preupload (every file "regular", so no LFS/Xet), ndjson commits (file / deletedFile /
deletedFolder), create_branch, refs, repo_info by revision, tree listing, and HEAD/GET of resolve URLs, with the
Hub's error codes (RepoNotFound, RevisionNotFound, EntryNotFound in `X-Error-Code`). Commit and blob ids are
content-derived SHA-1s like git's, so pinning a revision is meaningful. Every request is recorded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"
API_VERBS = ("revision", "tree", "preupload", "commit", "branch", "refs")


def git_blob_oid(data: bytes) -> str:
    """The git blob id the Hub reports (and the client compares) for a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    sha: str  # 40 hex chars, derived from the tree, the parent and the message
    parent: str | None
    summary: str
    files: dict[str, bytes]  # the whole tree at this commit
    changed: list[str]  # paths added or modified by this commit
    deleted: list[str]


@dataclass
class Repo:
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # branch name -> commit sha
    commits: list[Commit] = field(default_factory=list)  # oldest first, all branches


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class HubServer:
    """State plus a ThreadingHTTPServer on 127.0.0.1 (a free port). Use `start_hub_server()`."""

    def __init__(self, token: str | None = None):
        self.token = token  # None: any Bearer token is accepted
        self.username = "visitor"  # whom /api/whoami-v2 says an accepted token belongs to
        self.repos: dict[tuple[str, str], Repo] = {}  # (repo type "model"/"dataset"/"space", "ns/name") -> Repo
        self.requests: list[tuple[str, str]] = []  # (method, decoded URL path without the query), in order
        self.authorizations: list[str | None] = []  # each request's Authorization header, in the same order
        self.lock = threading.RLock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.hub = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- helpers for tests ----------------------------------------------------------------------------------
    def commits(self, repo_id: str, repo_type: str = "model") -> list[Commit]:
        """All commits of a repo, oldest first (the first is the Hub's "initial commit" with .gitattributes)."""
        with self.lock:
            return list(self._repo(repo_type, repo_id).commits)

    def create_repo(self, repo_id: str, private: bool = False, repo_type: str = "model") -> Repo:
        """Create a repo directly on the server, with the Hub's "initial commit" of a .gitattributes on main."""
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise ValueError(f"{repo_type} repo {repo_id} already exists")
            repo = self.repos[(repo_type, repo_id)] = Repo(private=private)
            self._commit(repo, "main", "initial commit", {".gitattributes": GITATTRIBUTES}, [])
            return repo

    def file(self, repo_id: str, path: str, revision: str = "main", repo_type: str = "model") -> bytes:
        with self.lock:
            return self._resolve(self._repo(repo_type, repo_id), revision).files[path]

    def put_file(self, repo_id: str, path: str, data: bytes, revision: str = "main", repo_type: str = "model",
                 message: str = "Server-side edit") -> Commit:
        """Commit a file directly on the server (e.g. to simulate a tampered upload); not a recorded request."""
        with self.lock:
            return self._commit(self._repo(repo_type, repo_id), revision, message, {path: data}, [])

    def requested(self, method: str | None = None) -> list[str]:
        """The paths requested so far (optionally only for one HTTP method)."""
        return [p for m, p in list(self.requests) if method is None or m == method]

    # -- state ----------------------------------------------------------------------------------------------
    def _repo(self, repo_type: str, repo_id: str, auth: str | None = None, check_auth: bool = False) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (check_auth and repo.private and not self._authorized(auth)):
            raise HubError(404 if repo is None else 401, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def _authorized(self, auth: str | None) -> bool:
        return bool(auth) and auth.startswith("Bearer ") and (self.token is None or auth == f"Bearer {self.token}")

    def _resolve(self, repo: Repo, revision: str) -> Commit:
        sha = repo.branches.get(revision, revision)
        for commit in repo.commits:
            if commit.sha == sha:
                return commit
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def _commit(self, repo: Repo, branch: str, summary: str, added: dict[str, bytes], deleted: list[str]) -> Commit:
        parent = self._resolve(repo, branch) if repo.commits else None
        if parent is not None and branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch} is not a branch", "RevisionNotFound")
        files = dict(parent.files) if parent else {}
        gone = []
        for path in deleted:
            matches = [p for p in files if p == path or p.startswith(path.rstrip("/") + "/")]
            if not matches:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            gone += matches
        for path in gone:
            del files[path]
        files.update(added)
        tree = hashlib.sha1("".join(f"{p}\0{git_blob_oid(d)}\n" for p, d in sorted(files.items())).encode())
        text = f"tree {tree.hexdigest()}\nparent {parent.sha if parent else ''}\n\n{summary}\n"
        commit = Commit(hashlib.sha1(text.encode()).hexdigest(), parent.sha if parent else None, summary,
                        files, sorted(added), sorted(gone))
        repo.commits.append(commit)
        repo.branches[branch] = commit.sha
        return commit


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects; every answer carries Content-Length

    def log_message(self, *args) -> None:  # quiet: tests read `HubServer.requests` instead
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        hub: HubServer = self.server.hub
        url = urlsplit(self.path)
        segments = [unquote(s) for s in url.path.strip("/").split("/")]
        hub.requests.append((self.command, unquote(url.path)))
        hub.authorizations.append(self.headers.get("Authorization"))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            with hub.lock:
                status, payload, headers = self._route(hub, segments, parse_qs(url.query), body)
        except HubError as err:
            headers = {"X-Error-Message": err.message, **({"X-Error-Code": err.code} if err.code else {})}
            return self._send(err.status, json.dumps({"error": err.message}).encode(), headers)
        if isinstance(payload, bytes):
            return self._send(status, payload, headers, "application/octet-stream")
        self._send(status, json.dumps(payload).encode(), headers)

    def _route(self, hub: HubServer, seg: list[str], query: dict, body: bytes):
        auth = self.headers.get("Authorization")
        method = self.command
        if seg[0] == "api" and method == "GET" and seg[1:] == ["whoami-v2"]:
            if not hub._authorized(auth):
                raise HubError(401, "Invalid credentials in Authorization header")
            return 200, {"type": "user", "name": hub.username, "fullname": hub.username.title(), "avatarUrl": "",
                         "orgs": [], "auth": {"type": "access_token"}}, {}
        if seg[0] == "api" and method == "POST" and seg[1:] == ["validate-yaml"]:
            return 200, {"errors": [], "warnings": []}, {}
        if method == "POST" and seg[0] == "api" and seg[1:3] == ["repos", "create"]:
            return self._create_repo(hub, json.loads(body), auth)
        if seg[0] == "api" and len(seg) >= 4 and seg[1] in ("models", "datasets", "spaces"):
            repo_type, repo_id, rest = seg[1][:-1], "/".join(seg[2:4]), seg[4:]
            repo = hub._repo(repo_type, repo_id, auth, check_auth=True)
            if method == "GET" and (not rest or rest[0] == "revision"):
                commit = hub._resolve(repo, "/".join(rest[1:]) or "main")
                siblings = [{"rfilename": p} for p in sorted(commit.files)]
                return 200, {"id": repo_id, "sha": commit.sha, "private": repo.private, "siblings": siblings}, {}
            if method == "GET" and rest[:1] == ["tree"]:
                return 200, self._tree(hub._resolve(repo, rest[1]), "/".join(rest[2:]), query), {}
            if method == "GET" and rest == ["refs"]:
                refs = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": s} for b, s in repo.branches.items()]
                return 200, {"branches": refs, "converts": [], "tags": []}, {}
            if method == "POST":
                if not hub._authorized(auth):
                    raise HubError(401, "Invalid credentials in Authorization header")
                if rest[:1] == ["preupload"]:
                    files = hub._resolve(repo, "/".join(rest[1:])).files
                    answer = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                               "oid": git_blob_oid(files[f["path"]]) if f["path"] in files else None}
                              for f in json.loads(body)["files"]]
                    return 200, {"files": answer}, {}
                if rest[:1] == ["commit"]:
                    return self._commit(hub, repo, repo_type, repo_id, "/".join(rest[1:]), body)
                if rest[:1] == ["branch"]:
                    branch = "/".join(rest[1:])
                    if branch in repo.branches:
                        raise HubError(409, f"Reference {branch} already exists")
                    start = (json.loads(body) if body else {}).get("startingPoint") or "main"
                    repo.branches[branch] = hub._resolve(repo, start).sha
                    return 200, {}, {}
        if method in ("GET", "HEAD") and "resolve" in seg:
            return self._resolve_file(hub, seg, auth)
        raise HubError(404, f"The loopback Hub does not implement {method} /{'/'.join(seg)}")

    def _create_repo(self, hub: HubServer, payload: dict, auth: str | None):
        if not hub._authorized(auth):
            raise HubError(401, "Invalid credentials in Authorization header")
        repo_id = f"{payload.get('organization') or 'user'}/{payload['name']}"
        repo_type = payload.get("type") or "model"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        answer = {"url": f"{hub.url}/{prefix}{repo_id}", "name": repo_id}
        if (repo_type, repo_id) in hub.repos:
            return 409, {"error": "You already created this repo", **answer}, {}
        hub.create_repo(repo_id, private=payload.get("visibility") == "private", repo_type=repo_type)
        return 200, answer, {}

    def _commit(self, hub: HubServer, repo: Repo, repo_type: str, repo_id: str, branch: str, body: bytes):
        summary, added, deleted = "", {}, []
        for line in body.decode().splitlines():
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                summary = value.get("summary", "")
                parent = value.get("parentCommit")
                if parent and hub._resolve(repo, branch).sha != parent:
                    raise HubError(412, f"{branch} does not point to parentCommit {parent}")
            elif key == "file":
                added[value["path"]] = base64.b64decode(value["content"])
            elif key in ("deletedFile", "deletedFolder"):
                deleted.append(value["path"])
            else:
                raise HubError(400, f"The loopback Hub does not support {key!r} commit operations (LFS/Xet)")
        commit = hub._commit(repo, branch, summary, added, deleted)
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        return 200, {"commitUrl": f"{hub.url}/{prefix}{repo_id}/commit/{commit.sha}", "commitOid": commit.sha}, {}

    @staticmethod
    def _tree(commit: Commit, path: str, query: dict) -> list[dict]:
        recursive = query.get("recursive", ["false"])[0].lower() in ("true", "1")
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        entries, folders = [], set()
        for name, data in sorted(commit.files.items()):
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix):].split("/")
            for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
                folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                entries.append({"type": "file", "path": name, "size": len(data), "oid": git_blob_oid(data)})
        if not entries and not folders:
            raise HubError(404, f"{path} does not exist at {commit.sha}", "EntryNotFound")
        oid = hashlib.sha1(commit.sha.encode())
        return [{"type": "directory", "path": d, "oid": oid.hexdigest(), "size": 0} for d in sorted(folders)] + entries

    def _resolve_file(self, hub: HubServer, seg: list[str], auth: str | None):
        at = seg.index("resolve")
        repo_type = {"datasets": "dataset", "spaces": "space"}.get(seg[0], "model")
        repo_id = "/".join(seg[at - 2:at])
        repo = hub._repo(repo_type, repo_id, auth, check_auth=True)
        commit = hub._resolve(repo, seg[at + 1])
        path = "/".join(seg[at + 2:])
        if path not in commit.files:
            raise HubError(404, f"Entry {path} not found at {commit.sha}", "EntryNotFound")
        data = commit.files[path]
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{git_blob_oid(data)}"'}
        if self.command == "GET" and (rng := self.headers.get("Range", "")).startswith("bytes="):
            start = int(rng[6:].split("-")[0] or 0)  # resumed download: the client only asks "bytes=N-"
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return 206, data[start:], headers
        return 200, data, headers


def start_hub_server(token: str | None = None) -> HubServer:
    """Start a loopback Hub on 127.0.0.1 (a free port) in a daemon thread; call `.stop()` when done."""
    server = HubServer(token)
    server._thread.start()
    return server


def hub_env(hub_url: str, tmp_path: Path, **env: str) -> dict[str, str]:
    """os.environ plus what points huggingface_hub at `hub_url` with a private cache under `tmp_path`."""
    base = {
        "HF_ENDPOINT": hub_url,
        "HF_HOME": str(Path(tmp_path) / "hf_home"),
        "HF_TOKEN": "hf_loopback_test_token",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_ETAG_TIMEOUT": "3",
        "HF_HUB_DOWNLOAD_TIMEOUT": "3",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    return {**os.environ, **base, **{k: str(v) for k, v in env.items()}}


def run_with_hub(code: str, hub_url: str, tmp_path: Path, *, timeout: float = 120, check: bool = True,
                 **env: str) -> subprocess.CompletedProcess:
    """Run `code` with this Python in a subprocess (cwd = the repo root) whose huggingface_hub talks to `hub_url`.

    Extra keyword arguments override environment variables (e.g. HF_HOME=... for a fresh cache). With
    check=True a non-zero exit raises AssertionError showing stdout and stderr."""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=hub_env(hub_url, tmp_path, **env),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"subprocess exited {proc.returncode}\n--- stdout ---\n{proc.stdout}"
                             f"\n--- stderr ---\n{proc.stderr}")
    return proc

"""Shared pytest fixtures.

Hub tests: `hub_server` is a fresh loopback Hugging Face Hub (tests/hub_server.py) per test; `hub_run(code, **env)`
runs Python code in a subprocess whose huggingface_hub talks to it (HF_ENDPOINT is read at import time, so a
subprocess is the honest way to point the real client at it), with its cache under the test's tmp_path.
"""

import functools

import pytest

from .hub_server import HubServer, hub_env, run_with_hub, start_hub_server  # noqa: F401  (re-exported helpers)


@pytest.fixture
def hub_server():
    """A loopback Hub on 127.0.0.1 with no repos; see HubServer for .url, .requests, .commits(repo_id), ..."""
    server = start_hub_server()
    yield server
    server.stop()


@pytest.fixture
def hub_run(hub_server, tmp_path):
    """`hub_run(code, *, timeout=120, check=True, **env) -> CompletedProcess`: run_with_hub bound to hub_server."""
    return functools.partial(run_with_hub, hub_url=hub_server.url, tmp_path=tmp_path)

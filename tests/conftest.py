"""Shared pytest set-up and fixtures.

Environment, once per session and before any test module is imported (`pytest_configure`): gradio reads
GRADIO_TEMP_DIR and huggingface_hub its settings when they are imported, so setting them later, in a fixture or a
module, would be too late or would depend on which module ran first. Everything tests write goes under pytest's
tmp folder: gradio's uploads and outputs, gradio_client's downloads, hypothesis's files.

MNIST: `mnist_dir` is the folder of the MNIST IDX files (tests/paths.py says where); a test that takes it fails, with
what is missing and how to get it, when the files are not there (never skipped).

Hub tests: `hub_server` is a fresh loopback Hugging Face Hub (tests/hub_server.py) per test; `hub_run(code, **env)`
runs Python code in a subprocess whose huggingface_hub talks to it (HF_ENDPOINT is read at import time, so a
subprocess is the honest way to point the real client at it), with its cache under the test's tmp_path.
"""

import functools
import os
import sys

import pytest
from hypothesis import settings

from .hub_server import HubServer, hub_env, run_with_hub, start_hub_server  # noqa: F401  (re-exported helpers)
from .paths import MNIST_DIR, missing_mnist

# Property tests (test_preprocess_properties.py): the same examples every run (derandomize), nothing written into the
# repository (no example database), and no per-example time limit (this machine's load varies; timings belong in
# benchmarks/). HYPOTHESIS_PROFILE=explore searches afresh with more examples.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("explore", database=None, deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.hookimpl(trylast=True)  # after pytest's tmp_path plugin has set up its factory
def pytest_configure(config):
    from hypothesis.configuration import set_hypothesis_home_dir

    assert "gradio" not in sys.modules, "gradio was imported before the test environment was set"
    factory = getattr(config, "_tmp_path_factory", None) or pytest.TempPathFactory.from_config(config, _ispytest=True)
    os.environ.update({
        "GRADIO_ANALYTICS_ENABLED": "False",  # no background calls to the internet (they fail here anyway)
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "GRADIO_TEMP_DIR": str(factory.mktemp("gradio")),  # uploads, cached outputs and gradio_client downloads
    })
    set_hypothesis_home_dir(factory.mktemp("hypothesis"))  # not ./.hypothesis: importing @given tests writes there
    # Playwright's expect() waits 5 s by default, apart from the page's timeout: too short on a loaded CI machine.
    # Only a guard against a hang (speed is measured in benchmarks/), set once for every browser test.
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)


@pytest.fixture(autouse=True)
def restore_denormals_after_training():
    """Training flushes float32 denormals to zero for speed, a process-wide switch (a live-training test trains in
    this process too): undo it after every test, so later ones (hypothesis's float strategies) see IEEE floats."""
    yield
    import torch

    torch.set_flush_denormal(False)


@pytest.fixture(scope="session")
def mnist_dir():
    """tests.paths.MNIST_DIR, after checking that the four MNIST files are in it."""
    problem = missing_mnist()
    if problem:
        pytest.fail(problem, pytrace=False)
    return MNIST_DIR


@pytest.fixture
def one_thread():
    """Tests that train on tiny matrices: one thread is faster than fighting over shared cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


@pytest.fixture
def refused_url():
    """http://127.0.0.1:PORT where every connection is refused: the port stays bound (not listening) for the whole
    test, so no other process can take it in the meantime (a port freed and reused later could be)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"

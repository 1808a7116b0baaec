"""The real app server, launched in-process on 127.0.0.1 and driven over HTTP by gradio_client: every named endpoint,
bad uploads (clear messages, server keeps serving), Hub loading from a loopback Hub, app.py serving offline."""

import io
import json
import os
import queue
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from demo import build_app
from demo import common
from demo.common import example_choices

from demo.tiny_weights import make_tiny_weights

REPO_ROOT = Path(__file__).resolve().parents[1]
ENDPOINTS = {"/sample", "/interpolate", "/manifold", "/cvae_samples", "/same_style", "/complete_quadrants",
             "/denoise", "/latent_scatter", "/prior_samples", "/prior_metrics"}
ZERO, SIX = example_choices()[0], example_choices()[13]
# gradio_client's default 20 s HTTP timeout fails calls on a loaded CI machine; a test waits for the answer instead
# (speed is measured in benchmarks/app_latency.py).
PATIENT = {"timeout": 300}


@pytest.fixture(scope="module")
def server(tmp_path_factory, mnist_dir):
    app = build_app(weights_dir=make_tiny_weights(tmp_path_factory.mktemp("weights")), hub=False, data_dir=mnist_dir)
    _, url, _ = app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    yield url, Client(url, verbose=False, httpx_kwargs=PATIENT)
    app.close()


def image(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32)


def test_every_endpoint_over_http(server, tmp_path):
    _, client = server
    assert ENDPOINTS <= set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])

    a = image(client.predict("vae", 16, 1.0, 0, api_name="/sample"))
    b = image(client.predict("vae", 16, 1.0, 1, api_name="/sample"))
    assert a.shape == (488, 488) and np.abs(a - b).mean() > 0.1

    pair, ae_row, vae_row, _, note = client.predict(None, None, ZERO, None, None, SIX, 5, api_name="/interpolate")
    assert image(ae_row).shape == image(vae_row).shape == (128, 4 * 152) and "test digit 13" in note
    assert image(client.predict("avb-2d", 4, api_name="/manifold")).shape == (244, 244)

    three = image(client.predict(3, 0, 8, api_name="/cvae_samples"))
    seven = image(client.predict(7, 0, 8, api_name="/cvae_samples"))
    assert three.shape == (128, 968) and np.abs(three - seven).mean() > 0.1

    upload = tmp_path / "six.png"  # a dark-on-light RGB photo-like upload of a bundled 6
    Image.fromarray(255 - (common.test_digits()[0][13, 0].numpy() * 255).astype(np.uint8)).convert("RGB").resize(
        (140, 140)).save(upload)
    seen, row, note = client.predict(None, handle_file(upload), ZERO, "6", api_name="/same_style")
    assert image(row).shape == (128, 1208) and "your upload" in note and "**6**" in note

    truth, completions, baseline, note = client.predict(None, None, ZERO, 3, 4, 0, api_name="/complete_quadrants")
    assert image(completions).shape == (128, 488) and image(baseline).shape == (128, 128)

    clean, noisy, dvae, vae, table = client.predict(None, None, ZERO, "gaussian", 0.4, 0, api_name="/denoise")
    assert all(image(p).shape == (128, 128) for p in (clean, noisy, dvae, vae)) and "PSNR" in table

    *scatters, note = client.predict(300, 0, api_name="/latent_scatter")
    assert len(scatters) == 7 and image(scatters[4]).shape == (340, 300) and "MNIST test digits" in note
    samples = client.predict(4, 0, api_name="/prior_samples")
    assert len(samples) == 7 and image(samples[0]).shape == (124, 124)
    assert "135.25" in client.predict(api_name="/prior_metrics")


def test_concurrent_identical_requests_all_get_complete_images(server):
    """Sixteen clients asking for the same image at once: gradio caches outputs under their content hash, and
    without demo.common.install_atomic_image_cache a rewrite of that file truncated other clients' downloads."""
    import threading

    url, _ = server
    results, errors = [], []

    def call():
        try:
            client = Client(url, verbose=False, httpx_kwargs=PATIENT)
            results.append(image(client.predict("vae", 36, 1.0, 0, api_name="/sample")))
        except Exception as exc:  # collected and reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=call) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)  # a guard against a hang only
    assert not errors, errors[:3]
    assert len(results) == 16 and all(np.array_equal(r, results[0]) for r in results)


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_bad_uploads_give_clear_messages_and_server_keeps_serving(server, tmp_path):
    _, client = server
    digit = (common.test_digits()[0][0, 0].numpy() * 255).astype(np.uint8)
    good = png(Image.fromarray(digit))
    bad = {
        "not_an_image.png": (b"%PDF-1.4 definitely not a picture", "not an image"),
        "truncated.png": (good[: len(good) // 2], "truncated or corrupt"),
        "huge.png": (png(Image.new("1", (10000, 10000), 1)), "megapixels"),
        "white.png": (png(Image.new("L", (300, 200), 255)), "blank \\(all white\\)"),
        "black.jpg": (None, "blank \\(all black\\)"),
    }
    for name, (data, message) in bad.items():
        path = tmp_path / name
        if data is None:
            Image.new("RGB", (64, 64), 0).save(path)
        else:
            path.write_bytes(data)
        with pytest.raises(AppError, match=message):
            client.predict(None, handle_file(path), ZERO, "gaussian", 0.3, 0, api_name="/denoise")
    # unusual but valid images are converted: RGBA with transparency, 16-bit grayscale
    rgba = np.zeros((100, 100, 4), np.uint8)
    rgba[20:80, 45:55] = (200, 30, 30, 255)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(digit.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")
    for name in ("rgba.png", "sixteen.png"):
        clean, *_, table = client.predict(None, handle_file(tmp_path / name), ZERO, "block", 0.3, 0,
                                          api_name="/denoise")
        assert image(clean).max() > 200 and "your upload" in table
    with pytest.raises(AppError, match="greater than maximum value 100"):  # gradio checks slider bounds
        client.predict("vae", 1000, 1.0, 0, api_name="/sample")
    # and a normal call still works afterwards
    assert image(client.predict("ae", 4, 1.0, 0, api_name="/sample")).shape == (248, 248)


def test_server_does_not_serve_arbitrary_files(server):
    url, _ = server
    for path in ("/gradio_api/file=/etc/passwd", f"/gradio_api/file={REPO_ROOT / 'app.py'}"):
        with pytest.raises(urllib.request.HTTPError) as err:
            urllib.request.urlopen(url.rstrip("/") + path, timeout=10)
        assert err.value.code in (403, 404)


def start_app(args: list[str], env: dict, timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """Run `python app.py ARGS` and return it with the URL it reports. The app picks its own free port (gradio binds
    the server itself and moves on when a port is taken), so no port is chosen here and released before use."""
    proc = subprocess.Popen([sys.executable, "app.py", *args], cwd=REPO_ROOT, env={**env, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put(None)], daemon=True).start()
    seen = []
    while True:
        try:
            line = lines.get(timeout=timeout)  # a guard against a hung start, not a speed requirement
        except queue.Empty:
            proc.kill()
            raise AssertionError(f"app.py reported no URL; output so far: {''.join(seen)}") from None
        if line is None:
            raise AssertionError(f"app.py exited {proc.wait()} before serving: {''.join(seen)}")
        seen.append(line)
        if match := re.search(r"Running on local URL:\s+(http://\S+)", line):
            return proc, match.group(1)


def test_app_py_starts_offline_from_bundled_weights(tmp_path):
    weights = make_tiny_weights(tmp_path / "weights")
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_SERVER_PORT"}
    env.update({"HF_HUB_OFFLINE": "1", "GRADIO_TEMP_DIR": str(tmp_path / "gradio")})
    proc, url = start_app(["--weights-dir", str(weights)], env)
    try:  # startup time is measured in benchmarks/app_latency.py, not asserted here
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
        result = Client(url, verbose=False, httpx_kwargs=PATIENT).predict("vae", 4, 1.0, 0, api_name="/sample")
        assert image(result).shape == (248, 248)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


PUSH_AND_SERVE = """
import json, os
import numpy as np
from gradio_client import Client
from huggingface_hub import HfApi
from PIL import Image
from demo import build_app
from demo.sampling import sample_grid
from demo.weights import ModelStore, checkpoint_names

api = HfApi()
weights = os.environ["TINY_WEIGHTS"]
table = {}
for name in checkpoint_names():
    repo = f"tester/mnist-{name}"
    api.create_repo(repo, exist_ok=True)
    info = api.upload_folder(folder_path=os.path.join(weights, name), repo_id=repo)
    table[name] = {"repo_id": repo, "revision": info.oid}
# a later commit on main must not change what the pinned app shows
other = os.environ["OTHER_WEIGHTS"]
api.upload_folder(folder_path=os.path.join(other, "vae"), repo_id="tester/mnist-vae")

app = build_app(weights_dir=os.environ["BUNDLED"], hub=True, revisions=table)
store = app.store
assert store.notice == "", store.notice
assert store.source("vae") == f"hub tester/mnist-vae@{table['vae']['revision']}", store.source("vae")
_, url, _ = app.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
served = np.asarray(Image.open(Client(url, verbose=False, httpx_kwargs={"timeout": 300}).predict("vae", 9, 1.0, 3, api_name="/sample")))
app.close()
pushed = np.asarray(sample_grid(ModelStore(weights, hub=False), "vae", 9, 1.0, 3))
bundled = np.asarray(sample_grid(ModelStore(os.environ["BUNDLED"], hub=False), "vae", 9, 1.0, 3))
print(json.dumps({"same_as_pushed": bool((served == pushed).all()),
                  "same_as_bundled": bool((served == bundled).all())}))
"""


def test_hub_mode_serves_exactly_the_pinned_weights(hub_run, tmp_path):
    pushed = make_tiny_weights(tmp_path / "pushed", seed=1)
    other = make_tiny_weights(tmp_path / "other", seed=2)
    bundled = make_tiny_weights(tmp_path / "bundled", seed=3)
    proc = hub_run(PUSH_AND_SERVE, timeout=150, TINY_WEIGHTS=str(pushed), OTHER_WEIGHTS=str(other),
                   BUNDLED=str(bundled), GRADIO_TEMP_DIR=str(tmp_path / "gradio"))
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"same_as_pushed": True, "same_as_bundled": False}


UNREACHABLE = """
import os
import huggingface_hub
calls = []
download = huggingface_hub.snapshot_download
huggingface_hub.snapshot_download = lambda repo_id, **kw: calls.append(repo_id) or download(repo_id, **kw)
from demo import build_app
app = build_app(weights_dir=os.environ["BUNDLED"], hub=None)  # hub mode from VAE_FAMILY_HUB=1
print("NOTICE:", app.store.notice)
print("SOURCE:", app.store.source("vae"))
print("MODEL:", type(app.store.get("vae")).__name__)
print("BANNER:", any(getattr(b, "elem_id", None) == "weights-notice" for b in app.blocks.values()))
print("DOWNLOADS TRIED:", len(calls))
from demo.weights import ModelStore
print("SPACE:", ModelStore(os.path.join(os.environ["BUNDLED"], "absent"), hub=True).notice)  # a Space: no pretrained/
"""


def test_unreachable_hub_falls_back_to_bundled_weights_with_notice(tmp_path, refused_url):
    from .hub_server import run_with_hub

    bundled = make_tiny_weights(tmp_path / "bundled")
    from demo.weights import checkpoint_names

    pins = json.dumps({name: {"revision": "a" * 40} for name in checkpoint_names()})  # pinned, so the app tries the Hub
    proc = run_with_hub(UNREACHABLE, refused_url, tmp_path, timeout=120, VAE_FAMILY_HUB="1",
                        BUNDLED=str(bundled), GRADIO_TEMP_DIR=str(tmp_path / "gradio"), VAE_FAMILY_HUB_REVISIONS=pins)
    out = proc.stdout
    assert "could not be reached" in out and "SOURCE: bundled" in out and "MODEL: VAE" in out, out + proc.stderr
    assert "BANNER: True" in out
    assert "DOWNLOADS TRIED: 1" in out  # one failed connection, not one (slow, retried) failure per model
    assert "SPACE: **The Hugging Face Hub could not be reached**" in out and "unavailable until it can be reached" in out

"""The app as served to the public (demo/serving.py), on the real server over real HTTP: uploads over the limit are
refused by gradio before they land (HTTP 413, nothing left in the temp folder), a file at the limit is processed,
and uploads and generated files are deleted on delete_cache's schedule while fresh ones are kept.

The cleanup test is deterministic: it runs the deletion pass that the schedule runs with its clock set to a chosen
instant between two batches of files, instead of waiting for real ages to pass."""

import io
import os
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio import route_utils
from gradio_client import Client, handle_file
from PIL import Image

from demo import build_app, common, launch_settings, serving
from vae_models import preprocess
from vae_models.preprocess import ImageInputError, to_mnist

from demo.tiny_weights import make_tiny_weights

LIMIT = serving.UPLOAD_LIMIT_BYTES
ZERO = common.example_choices()[0]


def launch(tmp_path_factory):
    """build_app + launch as app.py does (launch_settings), on a free port."""
    app = build_app(weights_dir=make_tiny_weights(tmp_path_factory.mktemp("weights")), hub=False)
    _, url, _ = app.queue(default_concurrency_limit=2).launch(
        server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, **launch_settings())
    return app, url


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # gradio reads GRADIO_TEMP_DIR when it creates the app and again when it checks an upload's path, so it stays
    # set while this module's servers run
    temp = tmp_path_factory.mktemp("gradio_tmp")
    previous = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(temp)
    app, url = launch(tmp_path_factory)
    # the client downloads results outside the server's temp folder, which the tests inspect
    yield app, url, temp, Client(url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))
    app.close()
    if previous is None:
        os.environ.pop("GRADIO_TEMP_DIR")
    else:
        os.environ["GRADIO_TEMP_DIR"] = previous


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def digit_png_of_size(path: Path, size: int) -> Path:
    """A valid PNG of a bundled test digit (a 6), padded after its end to exactly `size` bytes (PIL stops reading
    at the IEND chunk, so the padding changes the size and nothing else)."""
    six = (common.test_digits()[0][13, 0].numpy() * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(six).save(buffer, "PNG")
    data = buffer.getvalue()
    path.write_bytes(data + bytes(size - len(data)))
    assert path.stat().st_size == size
    return path


def test_one_limit_for_gradio_and_the_library(server, tmp_path):
    app, *_ = server
    assert LIMIT == preprocess.MAX_FILE_BYTES and app.max_file_size == LIMIT
    assert to_mnist(digit_png_of_size(tmp_path / "at_limit.png", LIMIT)).sum() > 10
    with pytest.raises(ImageInputError, match=f"larger than the 25 MB limit \\({LIMIT + 1:,} bytes"):
        to_mnist(digit_png_of_size(tmp_path / "over_limit.png", LIMIT + 1))


def test_upload_over_the_limit_is_refused_before_it_lands(server, tmp_path):
    _, url, temp, client = server
    big = digit_png_of_size(tmp_path / "big.png", LIMIT + 1)
    before = files_under(temp)
    with big.open("rb") as f:  # the upload route, as the page and gradio_client call it
        response = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.png", f, "image/png")}, timeout=60)
    assert response.status_code == 413
    assert response.text == f"File size exceeded maximum allowed size of {LIMIT} bytes."
    # gradio_client reads the limit from the app's config and refuses before sending
    with pytest.raises(ValueError, match=f"exceeds the maximum file size of {LIMIT} bytes"):
        client.predict(None, handle_file(big), ZERO, "gaussian", 0.3, 0, api_name="/denoise")
    assert files_under(temp) == before  # the partial upload was deleted, nothing else was written


def test_upload_at_the_limit_is_processed(server, tmp_path):
    *_, client = server
    exact = digit_png_of_size(tmp_path / "exact.png", LIMIT)
    clean, *_, table = client.predict(None, handle_file(exact), ZERO, "gaussian", 0.3, 0, api_name="/denoise")
    assert "your upload" in table and np.asarray(Image.open(clean).convert("L")).max() > 200


def test_cleanup_deletes_old_files_and_keeps_fresh_ones(server, tmp_path):
    app, _, temp, client = server
    assert app.delete_cache == serving.DELETE_CACHE  # build_app passes the schedule to gr.Blocks

    def new_files(call) -> set[Path]:
        before = files_under(temp)
        call()
        return files_under(temp) - before

    upload = digit_png_of_size(tmp_path / "upload.png", 5000)
    old = new_files(lambda: client.predict(None, handle_file(upload), ZERO, "block", 0.5, 0, api_name="/denoise"))
    # gradio's gr.File(type="filepath") abandons an empty tmp* file in the temp folder's root for each upload
    strays = {p for p in old if p.parent == temp}
    old -= strays
    assert len(old) >= 2 and any(p.name == "upload.png" for p in old)  # the upload and the output images
    renewed = new_files(lambda: client.predict("vae", 4, 1.0, 1, api_name="/sample"))
    assert len(renewed) == 1
    old |= renewed
    latest_old = max(p.stat().st_ctime for p in old | strays)

    fresh = new_files(lambda: client.predict("vae", 4, 1.0, 2, api_name="/sample"))
    assert len(fresh) == 1 and not new_files(lambda: client.predict("vae", 4, 1.0, 1, api_name="/sample"))
    earliest_fresh = min(p.stat().st_ctime for p in fresh)
    assert earliest_fresh > latest_old

    # the clock at (the age) past the midpoint between the two batches: the first is older than the age, the
    # second younger, however long the calls took
    age = serving.DELETE_CACHE[1]
    midpoint = (latest_old + earliest_fresh) / 2
    assert route_utils.delete_files_created_by_app is serving.delete_old_files  # what the schedule runs
    serving.delete_old_files(app, age, now=midpoint + age)

    # seed 1's grid was handed out again after seed 2's: its age was renewed, so it is kept too
    assert all(p.exists() for p in fresh | renewed)
    deleted = {p for p in old if not p.exists()}
    assert deleted == old - renewed and any(p.name == "upload.png" for p in deleted)

    # what gradio leaves behind goes once untouched for longer than the age: the stray empty files are as old as
    # the first batch, so they went in the same pass; the content-hash folders were emptied just now, so they go
    # on a later pass, and nothing else does
    assert not any(p.exists() for p in strays)
    folders = {p.parent for p in deleted}
    assert all(f.is_dir() and not any(f.iterdir()) for f in folders)
    later = max(f.stat().st_mtime for f in folders) + age + 1
    assert serving.prune_leftovers(temp, age, now=later) >= len(folders)
    assert not any(f.exists() for f in folders)
    assert all(p.exists() for p in fresh | renewed)
    # and the server serves the deleted results again
    assert Path(client.predict("vae", 4, 1.0, 1, api_name="/sample")).is_file()


def test_cleanup_survives_files_added_while_it_runs(tmp_path):
    """Handlers add to the app's sets of files from other threads while the scheduled pass runs. gradio 6.31's own
    pass then raises "Set changed size during iteration" and its schedule stops for good (the soak benchmark's
    temp folder grew without bound); delete_old_files carries on. The other thread is simulated deterministically:
    a path whose hash, which the pass takes, adds a file to the set being walked."""
    from types import SimpleNamespace

    files: set[str] = set()
    armed = False

    class AddsAFileWhenHashed(str):
        def __hash__(self):
            if armed:
                files.add(str(tmp_path / f"added-by-a-handler-{len(files)}.png"))
            return str.__hash__(self)

    def app_with_one_old_file():
        nonlocal armed
        armed = False
        files.clear()
        old = tmp_path / "old.png"
        old.write_bytes(b"an output")
        files.add(AddsAFileWhenHashed(old))
        armed = True
        return SimpleNamespace(blocks={}, temp_file_sets=[files], GRADIO_CACHE=str(tmp_path)), old

    app, old = app_with_one_old_file()
    with pytest.raises(RuntimeError, match="Set changed size during iteration"):
        serving.gradio_delete_files(app, None)
    app, old = app_with_one_old_file()
    serving.delete_old_files(app, None)
    assert not old.exists() and str(old) not in files


def test_schedule_runs_on_the_live_server(server, tmp_path_factory, monkeypatch):
    """VAE_FAMILY_DELETE_CACHE sets the schedule; with (1 s, 1 s) the server's own background task deletes a result
    and prunes its folder (polled with a generous deadline: this checks that it happens, not how fast)."""
    import time

    *_, temp, _ = server
    monkeypatch.setenv(serving.DELETE_CACHE_ENV, "1,1")
    app, url = launch(tmp_path_factory)
    try:
        assert app.delete_cache == (1, 1)
        before = files_under(temp)
        Client(url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads"))).predict(
            "vae", 9, 1.0, 0, api_name="/sample")
        made = files_under(temp) - before
        assert made
        deadline = time.monotonic() + 120
        while any(p.exists() or p.parent.exists() for p in made) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(p.exists() for p in made), "the scheduled cleanup did not delete the result"
        assert not any(p.parent.exists() for p in made), "the scheduled pruning did not remove the empty folder"
    finally:
        app.close()


@pytest.mark.parametrize("value, expected", [("", serving.DELETE_CACHE), ("60,600", (60, 600)), ("off", None)])
def test_delete_cache_setting(monkeypatch, value, expected):
    monkeypatch.setenv(serving.DELETE_CACHE_ENV, value)
    assert serving.delete_cache() == expected


@pytest.mark.parametrize("value", ["3600", "a,b", "0,60", "60,-1"])
def test_bad_delete_cache_setting_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv(serving.DELETE_CACHE_ENV, value)
    with pytest.raises(ValueError, match=serving.DELETE_CACHE_ENV):
        serving.delete_cache()


def test_app_py_limits_malloc_arenas_unless_the_operator_set_them(monkeypatch):
    """app.py asks glibc for 2 malloc arenas (the soak benchmark's flat RSS), unless MALLOC_ARENA_MAX is set."""
    import app

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert app.limit_malloc_arenas() is True  # glibc's mallopt accepted it (Linux with glibc, as on a Space)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert app.limit_malloc_arenas() is False

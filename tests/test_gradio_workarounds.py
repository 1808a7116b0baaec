"""The app's workarounds of gradio 6.31 costs (demo/common.py, demo/__init__.py) change nothing a visitor sees:
the per-session config is made when read and equals gradio's eager one; the FastAPI app is built once, at launch;
output PNGs are fast-compressed but decode to the same pixels; and a cached output image is never seen half written,
even by a request that reads it while another request caches the same image again."""

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from gradio.blocks import BlocksConfig  # noqa: E402
from gradio.routes import App  # noqa: E402
from gradio.state_holder import SessionState  # noqa: E402

from demo import build_app  # noqa: E402

from demo.tiny_weights import make_tiny_weights  # noqa: E402


def test_session_config_is_lazy_and_equal_to_gradios(tmp_path, monkeypatch):
    app = build_app(weights_dir=make_tiny_weights(tmp_path / "weights"), hub=False)
    eager = [BlocksConfig.config_for_block(k, [], v) for k, v in app.default_config.blocks.items() if k in app.blocks]
    made = []
    original = BlocksConfig.config_for_block
    monkeypatch.setattr(BlocksConfig, "config_for_block",
                        staticmethod(lambda *args, **kwargs: made.append(args[0]) or original(*args, **kwargs)))
    session = SessionState(app)
    assert made == []  # a new visitor costs no config work
    assert [c for c in eager if c] == list(session.components)  # what deep links read: gradio's own config
    assert len(made) == len(eager)


def test_an_events_output_values_are_kept_without_making_the_session_config(tmp_path, monkeypatch):
    app = build_app(weights_dir=make_tiny_weights(tmp_path / "weights"), hub=False)
    with_props = [k for k, v in app.default_config.blocks.items()
                  if k in app.blocks and "props" in BlocksConfig.config_for_block(k, [], v)][:2]
    eager = {k: BlocksConfig.config_for_block(k, [], v) for k, v in app.default_config.blocks.items() if k in app.blocks}
    for k in with_props:
        eager[k]["props"]["value"] = f"output of {k}"
    made = []
    original = BlocksConfig.config_for_block
    monkeypatch.setattr(BlocksConfig, "config_for_block",
                        staticmethod(lambda *args, **kwargs: made.append(args[0]) or original(*args, **kwargs)))
    session = SessionState(app)
    for k in with_props:  # what gradio does with each output of an event
        session._update_value_in_config(k, f"output of {k}")
    assert made == []
    assert list(session.components) == [c for c in eager.values() if c]


def test_the_server_app_is_built_once_at_launch(tmp_path, monkeypatch):
    builds = []
    original = App.__dict__["create_app"]
    monkeypatch.setattr(App, "create_app", staticmethod(lambda *a, **k: builds.append(1) or original.__func__(*a, **k)))
    app = build_app(weights_dir=make_tiny_weights(tmp_path / "weights"), hub=False)
    assert builds == []  # gradio 6.31 would have built it three times by now
    app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        assert len(builds) == 1
    finally:
        app.close()


def test_fast_png_outputs_hold_the_same_pixels(tmp_path):
    from gradio import processing_utils

    build_app(weights_dir=tmp_path, hub=False)  # installs the cache writer
    image = Image.fromarray((np.random.default_rng(0).random((60, 90)) * 255).astype(np.uint8))
    path = processing_utils.save_pil_to_cache(image, str(tmp_path / "cache"), format="png")
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(image))


class HalfWritten:
    """A file opened for writing that takes each write in two halves and runs `between()` in the middle: the moment
    at which another request's read of a file being written would see only its first half."""

    def __init__(self, file, between):
        self.file, self.between = file, between

    def write(self, data):
        data = bytes(data)
        half = len(data) // 2
        self.file.write(data[:half])
        self.file.flush()
        self.between()
        return half + self.file.write(data[half:])

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.file.close()

    def __getattr__(self, name):
        return getattr(self.file, name)


def test_a_cached_image_is_never_seen_half_written_while_the_same_image_is_cached_again(tmp_path, monkeypatch):
    """Two requests produce the same image, so gradio caches both under the same file name (its content hash). Each
    write is stopped half way while another request reads every cached image: it must find none or complete ones.
    gradio's own save_pil_to_cache rewrites the file in place, and that read gets half a PNG every time."""
    from gradio import processing_utils

    build_app(weights_dir=tmp_path / "weights", hub=False)  # installs the cache writer
    cache = tmp_path / "cache"
    image = Image.fromarray((np.random.default_rng(0).random((60, 90)) * 255).astype(np.uint8))
    halfway, reads = [], []

    def another_request_reads():
        halfway.append(1)
        reads.extend(path.read_bytes() for path in cache.glob("*/*.png"))

    real_open = io.open

    def open_half_writing(file, mode="r", *args, **kwargs):
        opened = real_open(file, mode, *args, **kwargs)
        return HalfWritten(opened, another_request_reads) if "w" in mode else opened

    with monkeypatch.context() as patched:
        patched.setattr(io, "open", open_half_writing)
        first = processing_utils.save_pil_to_cache(image, str(cache), format="png")
        second = processing_utils.save_pil_to_cache(image, str(cache), format="png")
    assert first == second  # the same image: the same cached file
    assert halfway  # a write was caught half done
    complete = Path(first).read_bytes()
    assert all(read == complete for read in reads), [len(read) for read in reads]
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(image))

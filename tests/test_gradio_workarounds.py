"""The app's workarounds of gradio 6.31 costs (demo/common.py, demo/__init__.py) change nothing a visitor sees:
the per-session config is made when read and equals gradio's eager one; the FastAPI app is built once, at launch;
output PNGs are fast-compressed but decode to the same pixels."""

import os

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

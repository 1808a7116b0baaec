"""The Gradio app: one module per tab (sampling, conditional, denoising, priors, explore, posterior, clusters, live),
models from weights.py.

    from demo import build_app
    app = build_app(weights_dir="pretrained", hub=False)
    launch(app)          # = app.launch(**launch_settings()): the upload limit (demo/serving.py), torch on 1 thread
"""

from __future__ import annotations

import contextlib
import os

from .serving import launch_settings  # noqa: F401  (re-exported: app.launch(**launch_settings()))

TITLE = "The VAE family on MNIST"
DESCRIPTION = """# The VAE family on MNIST
AE, VAE, CVAE, denoising VAE, adversarial autoencoder and adversarial variational Bayes, trained on MNIST and shown
side by side. Every button is also an API endpoint (see "Use via API" at the bottom of the page)."""


def build_app(weights_dir=None, hub: bool | None = None, revisions=None, data_dir=None, oauth: bool | None = None):
    """The app as a gr.Blocks (not launched). weights_dir: the bundled checkpoints (default `pretrained/`);
    hub: download from the Hub (None: --hub / VAE_FAMILY_HUB / on a Space); revisions: overrides of
    weights.hub_table(); data_dir: MNIST folder for the latent scatters and live training; oauth: show the Hugging
    Face sign-in of the live-training tab (None: on a Space)."""
    import gradio as gr

    from . import clusters, conditional, denoising, explore, live, posterior, priors, sampling, serving
    from .common import install_atomic_image_cache, install_lazy_session_config
    from .weights import ModelStore

    store = ModelStore(weights_dir, hub=hub, revisions=revisions, data_dir=data_dir)
    install_atomic_image_cache()
    install_lazy_session_config()
    serving.install_cleanup()
    # delete_cache: uploads and generated files are deleted on a schedule (demo/serving.py says when)
    with server_app_deferred(), gr.Blocks(title=TITLE, delete_cache=serving.delete_cache()) as app:
        gr.Markdown(DESCRIPTION)
        if store.notice:
            gr.Markdown(store.notice, elem_id="weights-notice")
        with gr.Tabs():
            with gr.Tab("Sampling", id="sampling"):
                sampling.build(store)
            with gr.Tab("Conditional digits", id="conditional"):
                conditional.build(store)
            with gr.Tab("Denoising", id="denoising"):
                denoising.build(store)
            with gr.Tab("Adversarial priors", id="priors"):
                priors.build(store)
            with gr.Tab("Explore a digit", id="explore"):
                explore.build(store)
            with gr.Tab("See the posterior", id="posterior"):
                posterior.build(store)
            with gr.Tab("Clusters and styles", id="clusters"):
                clusters.build(store)
            with gr.Tab("Train one yourself", id="live"):
                app_live = live.build(store, oauth=oauth)
        app.queue(default_concurrency_limit=DEFAULT_CONCURRENCY)
    app.store = store  # for tests and callers that want the loaded models
    app.live = app_live  # the live-training tab's server-wide state (runs, stop requests)
    return app


# Events the queue runs at once: one per core. A call is mostly gradio's own work (the queue, the event stream, the
# output files) around a handler of milliseconds, and repeated inputs are served from the result cache
# (demo/cache.py), so more events in flight than cores only interleave the same CPU time and delay every answer; each
# runs torch on one thread (see launch). The live training has its own queue (one run at a time, on
# live.TRAIN_THREADS thread), outside this limit. VAE_FAMILY_CONCURRENCY overrides it; compare with
# `python -m benchmarks.app_latency --concurrency-limit N` on the target machine.
DEFAULT_CONCURRENCY = int(os.environ.get("VAE_FAMILY_CONCURRENCY") or (
    len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


@contextlib.contextmanager
def server_app_deferred():
    """Skip the FastAPI app that gradio 6.31 builds in gr.Blocks() (via queue()), at the end of the `with` block and
    in queue(): launch() builds it again anyway, and each build generates ~170 routes' pydantic schemas, about a
    second of a cold start on a loaded 2-core machine (measured with cProfile; benchmarks/README.md). Inside this
    context App.create_app returns None; launch() is unaffected."""
    from gradio.routes import App

    original = App.__dict__["create_app"]
    App.create_app = staticmethod(lambda *args, **kwargs: None)
    try:
        yield
    finally:
        App.create_app = original


def launch(app, **kwargs):
    """Serve the app (what app.py and the Space run): gr.Blocks.launch with launch_settings() (the upload limit),
    which kwargs override. The queue is configured in build_app. Torch runs each handler on one thread: the handlers are small and run concurrently."""
    import torch

    torch.set_num_threads(1)
    return app.launch(**{**launch_settings(), **kwargs})

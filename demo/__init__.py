"""The Gradio app: one module per tab (sampling, conditional, denoising, priors, explore, live), models from weights.py.

    from demo import build_app
    app = build_app(weights_dir="pretrained", hub=False)
    app.launch(**launch_settings())          # the upload limit (demo/serving.py)
"""

from __future__ import annotations

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

    from . import conditional, denoising, explore, live, priors, sampling, serving
    from .common import install_atomic_image_cache
    from .weights import ModelStore

    store = ModelStore(weights_dir, hub=hub, revisions=revisions, data_dir=data_dir)
    install_atomic_image_cache()
    serving.install_cleanup()
    # delete_cache: uploads and generated files are deleted on a schedule (demo/serving.py says when)
    with gr.Blocks(title=TITLE, delete_cache=serving.delete_cache()) as app:
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
            with gr.Tab("Train one yourself", id="live"):
                app_live = live.build(store, oauth=oauth)
    app.store = store  # for tests and callers that want the loaded models
    app.live = app_live  # the live-training tab's server-wide state (runs, stop requests)
    return app

"""The posterior tab through the real app server (gradio_client on 127.0.0.1, the tiny weights of every checkpoint):
/posterior and /posterior_table return the library's numbers for a bundled digit, and a headless Chromium sees
the plot and the numbers on its first visit."""

import numpy as np
import pytest
import torch
from gradio_client import Client
from PIL import Image
from playwright.sync_api import expect

from demo import build_app
from demo import common
from demo.posterior import posterior_checkpoints
from demo.tiny_weights import make_tiny_weights
from train import evaluate
from vae_models import load_model, posterior, typicality
from vae_models.export import read_eval_results, write_eval_results

from .test_demo_browser import opened_tab
from .test_demo_server import PATIENT

ZERO = common.example_choices()[0]


@pytest.fixture(scope="module")
def served(tmp_path_factory, mnist_dir):
    weights = make_tiny_weights(tmp_path_factory.mktemp("weights"))
    app = build_app(weights_dir=weights, hub=False, data_dir=mnist_dir)
    _, url, _ = app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    yield url, Client(url, verbose=False, httpx_kwargs=PATIENT), weights
    app.close()


def library_numbers(model, x):
    """What the tab computes, straight from the library: the same seed, so the same draws of q."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        post = posterior.exact_posterior(model, x)
        return post, posterior.evidence(model, x, post)


def test_the_posterior_endpoint_returns_the_librarys_numbers(served):
    _, client, weights = served
    assert {"/posterior", "/posterior_table"} <= set(client.view_api(print_info=False,
                                                                     return_format="dict")["named_endpoints"])
    x = typicality.binarize(common.test_digits()[0][:1])
    checked = set()
    for name in posterior_checkpoints():  # one of each kind of q: a Gaussian, a learned KL, a point
        model = load_model(str(weights / name))
        post, numbers = library_numbers(model, x)
        kind = (post.q.kind, numbers.learned_kl)
        if kind in checked:
            continue
        checked.add(kind)
        plot, text = client.predict(None, None, ZERO, name, api_name="/posterior")
        assert np.asarray(Image.open(plot)).shape[:2] == (370, 630)
        assert f"| log p(x), exact (quadrature) | {numbers.log_px:.2f} |" in text
        if numbers.gap is not None:
            assert f"| KL(q(z\\|x) ‖ p(z\\|x)) on the grid | {numbers.gap:.2f} |" in text
            assert f"| ELBO = reconstruction − KL | {numbers.elbo:.2f} ± " in text
        elif numbers.learned_kl:
            assert f"{numbers.difference:.2f} ± " in text and "T underestimates the KL" in text
        else:
            assert "no variational bound" in text
    assert {("gaussian", False), ("draws", True), ("point", False)} <= checked


def test_the_table_endpoint_shows_each_checkpoints_negative_elbo_record(served, mnist_dir):
    _, client, weights = served
    records = {}
    for name in posterior_checkpoints():  # what `python -m train.evaluate --metrics elbo` writes, on 50 digits
        new = evaluate.evaluate(str(weights / name), metrics=["elbo"], limit=50, data_dir=str(mnist_dir))
        if new:
            write_eval_results(weights / name, (read_eval_results(weights / name) or []) + new)
            records[name] = new[0]
    text = client.predict(api_name="/posterior_table")  # read at the call: the files just written
    assert records
    for record in records.values():
        assert f"| {record.value:.2f} ± {record.details['monte_carlo_error']:.2f}" in text and "50 digits" in text
    assert "none: no variational bound" in text  # the deterministic AAE


def test_the_tab_shows_its_plot_and_numbers_on_the_first_visit(served, tmp_path):
    url, _, _ = served
    with opened_tab(url, "See the posterior") as page:
        image = page.locator("#posterior-plot img")
        expect(image).to_be_visible()
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")
        expect(page.locator("#posterior-numbers")).to_contain_text("log p(x), exact (quadrature)")
        expect(page.locator("#posterior-table")).to_contain_text("exact NLL")
        page.screenshot(path=str(tmp_path / "posterior.png"), full_page=True)

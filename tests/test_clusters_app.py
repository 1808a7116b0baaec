"""The clusters tab through the real app server (gradio_client on 127.0.0.1, the tiny weights of every checkpoint):
/clusters decodes every cluster with the same styles and shows the labels and errors evaluation wrote, /styles keeps
a digit's style and swaps its cluster, and a headless Chromium sees both on its first visit."""

import numpy as np
import pytest
import torch
from gradio_client import handle_file
from PIL import Image
from playwright.sync_api import expect

from demo import common
from demo.clusters import STYLE_ROWS, cluster_checkpoints, clusters_view
from demo.weights import ModelStore
from train import evaluate
from vae_models import checkpoints, load_model
from vae_models.data import load_mnist
from vae_models.export import write_eval_results

from .test_demo_browser import opened_tab
from .test_posterior_app import served  # noqa: F401 (the app on the tiny weights, one per module)

ZERO = common.example_choices()[0]


def kinds(weights):
    """(a clustering checkpoint, a semi-supervised one) of the catalogue, loaded from the tiny weights."""
    models = {name: load_model(str(weights / name)) for name in cluster_checkpoints()}
    clustering = next(name for name, m in models.items()  # one whose recipe declares the paper's number
                      if not m.samples_by_label and checkpoints()[name][0].anchors)
    semi = next(name for name, m in models.items() if m.samples_by_label)
    return (clustering, models[clustering]), (semi, models[semi])


def test_the_clusters_endpoint_decodes_each_cluster_with_the_same_styles(served):
    _, client, weights = served
    assert {"/clusters", "/styles"} <= set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    (name, model), _ = kinds(weights)
    path, text = client.predict(name, 3, 5, api_name="/clusters")
    served_grid = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
    styles = torch.randn(3, model.config.latent_dim, generator=common.generator(5))
    with torch.no_grad():
        expected = common.to_image(model.decode_clusters(styles).flatten(0, 1), nrow=3, scale=2)
    assert served_grid.shape == (2 * (model.num_clusters * 30 + 2), 2 * (3 * 30 + 2))
    assert np.abs(served_grid - np.asarray(expected.convert("L"), dtype=np.float32)).max() <= 1
    assert "Clustering error not measured" in text and "Published: 9.55 ± 2.05 % (AAE paper, Table 3" in text


def test_the_table_shows_the_labels_and_errors_evaluation_wrote(served, mnist_dir):
    _, client, weights = served
    (name, model), (semi, semi_model) = kinds(weights)
    data = evaluate.test_set(str(mnist_dir), 200, 0)
    images, labels = load_mnist("train", data_dir=str(mnist_dir))
    validation = (images[-300:].float().div(255).unsqueeze(1), labels[-300:])
    records = evaluate.evaluate(model, ["clustering"], data, validation=validation)
    write_eval_results(weights / name, records)
    paper, majority = records
    _, text = client.predict(name, 2, 0, api_name="/clusters")  # read at the call: the file just written
    assert f"**{paper.value:.2f} % by the paper's rule, {majority.value:.2f} % by the majority rule**" in text
    for k, (a, b, share) in enumerate(zip(paper.details["cluster_labels"], majority.details["cluster_labels"],
                                          paper.details["cluster_shares"])):
        assert f"| {k} | {a} | {b} | {100 * share:.1f} % |" in text
    assert f"cluster 0 (a {paper.details['cluster_labels'][0]})" in text
    (semi_record,) = evaluate.evaluate(semi_model, ["semi_supervised"], data, training_args={"labelled_examples": 100})
    write_eval_results(weights / semi, [semi_record])
    _, text = client.predict(semi, 2, 0, api_name="/clusters")
    assert f"**{semi_record.value:.2f} %**" in text and "learnt from 100 labels" in text and "digit 9" in text


def test_the_styles_endpoint_keeps_each_digits_style_and_swaps_its_cluster(served, tmp_path):
    _, client, weights = served
    _, (name, model) = kinds(weights)
    digit = common.test_digits()[0][3, 0].numpy()
    upload = tmp_path / "digit.png"
    Image.fromarray((digit * 255).astype(np.uint8)).save(upload)
    path, note = client.predict(None, handle_file(str(upload)), ZERO, name, api_name="/styles")
    grid = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
    assert grid.shape == (2 * ((1 + STYLE_ROWS) * 30 + 2), 2 * ((model.num_clusters + 1) * 30 + 2))
    x, _, _ = common.read_digit(None, str(upload), ZERO)
    digits = torch.cat([x, common.test_digits()[0][:STYLE_ROWS]])
    with torch.no_grad():
        _, styles = model.split_code(model.encode(digits).z)
        decoded = model.decode_clusters(styles).transpose(0, 1)
    expected = common.to_image(torch.cat([digits.unsqueeze(1), decoded], 1).flatten(0, 1),
                               nrow=model.num_clusters + 1, scale=2)
    assert np.abs(grid - np.asarray(expected.convert("L"), dtype=np.float32)).max() <= 1
    predicted = int(model.cluster_probabilities(x).argmax())
    assert note.startswith(f"The model puts your upload in **digit {predicted}**") and "digit 0, digit 1" in note


def test_the_style_view_opens_on_digits_the_bundled_opening_model_clusters_right():
    """Its first example is a digit the model puts in a cluster of the digit's own label, as evaluation labelled
    the clusters: with the bundled 2-D clustering AAE test digit 0 (a 0) lands in a cluster labelled 5, so it opens
    on test digit 1 (a 0)."""
    from demo.clusters import cluster_labels, clustered_right
    from demo.weights import featured

    store = ModelStore(None, hub=False)
    first = featured(cluster_checkpoints(), "clusters")
    model = store.get(first)
    images, labels = common.test_digits()
    digits = cluster_labels(store, first, model)
    clusters = model.cluster_probabilities(images).argmax(1).tolist()
    shown = clustered_right(store, first)
    assert digits[clusters[0]] != labels[0] and shown[0] == 1
    assert all(digits[clusters[i]] == labels[i] for i in shown) and len({labels[i] for i in shown}) == len(shown)


def test_a_model_without_clusters_is_a_clear_error(served):
    _, _, weights = served
    store = ModelStore(weights, hub=False)
    with pytest.raises(ValueError, match="unknown model 'vae'; choose one of"):
        clusters_view(store, "vae", 2, 0)
    with pytest.raises(ValueError, match="number of styles must be 1-12"):
        clusters_view(store, next(iter(cluster_checkpoints())), 13, 0)


def test_the_tab_shows_both_views_on_the_first_visit(served, tmp_path):
    url, _, _ = served
    with opened_tab(url, "Clusters and styles") as page:
        for output in ("clusters-out", "styles-out"):
            image = page.locator(f"#{output} img")
            expect(image).to_be_visible()
            assert image.evaluate("img => img.complete && img.naturalWidth > 0")
        expect(page.locator("#clusters-table")).to_contain_text("Rows, top to bottom: cluster 0")
        page.screenshot(path=str(tmp_path / "clusters.png"), full_page=True)

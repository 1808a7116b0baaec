"""Tab "Clusters and styles": what a categorical AAE (Makhzani et al. 2015, Secs. 5-6) found. Each cluster decoded
over a few styles, with the label evaluation gave it (from the validation digits, the paper's rule and the majority
rule) and its measured errors; then your digit's style decoded as every cluster, style and content apart. The
checkpoints are those whose model declares `clusters` (vae_models/registry.py): this module names no model."""

from __future__ import annotations

import torch
from PIL import Image

from vae_models import checkpoints

from .common import bind, digit_examples, digit_inputs, example_choices, first_visit, generator, intro, read_digit, \
    test_digits, to_image
from .priors import read_record
from .weights import ModelStore, ModelUnavailable, featured

MAX_STYLES = 12
STYLE_ROWS = 6  # bundled test digits shown under the visitor's own in the style view

INTRO = """### Clusters and styles
A categorical adversarial autoencoder splits each digit's code in two: **y = q(y|x)**, a softmax over K clusters
pushed by one adversary to a uniform categorical, and a **style z** pushed by another to N(0, I). Trained without
labels, the clusters are what the model found (the paper's unsupervised clustering, Sec. 6); trained with a few
labels, cluster k is digit k (semi-supervised classification, Sec. 5). Each row below is one cluster decoded with
the same styles; the second view keeps your digit's style and swaps its cluster."""


def cluster_checkpoints() -> dict[str, str]:
    """Store name -> label of the app's checkpoints with a categorical code (spec.clusters)."""
    return {name: c.label for name, (c, spec) in checkpoints().items() if c.in_app and spec.clusters}


def _check(model_name: str) -> None:
    choices = cluster_checkpoints()
    if model_name not in choices:
        raise ValueError(f"unknown model {model_name!r}; choose one of {list(choices)}")


def cluster_labels(store: ModelStore, name: str, model) -> list[int] | None:
    """The digit of each cluster: its own for a model trained on labels, else the label evaluation gave it by the
    paper's rule (eval_results.json), else None."""
    if model.samples_by_label:
        return list(range(model.num_clusters))
    paper = read_record(store.folder(name), "Clustering error (paper rule)")
    labels = paper.details.get("cluster_labels") if paper else None
    return labels if isinstance(labels, list) and len(labels) == model.num_clusters else None


def cluster_names(store: ModelStore, name: str, model) -> list[str]:
    """What each cluster is called: "digit d" for a model trained on labels, "cluster k (a d)" with the label
    evaluation gave it, else "cluster k"."""
    labels = cluster_labels(store, name, model)
    if model.samples_by_label:
        return [f"digit {k}" for k in labels]
    return [f"cluster {k}" + ("" if labels is None else f" (a {labels[k]})") for k in range(model.num_clusters)]


def clustered_right(store: ModelStore, name: str, count: int = 3) -> list[int]:
    """Up to `count` bundled test digits, of different labels, that the model puts in a cluster of their own label
    (the view's first example is then one the model gets right); [0, ...] when the model or its labels are
    missing."""
    images, labels = test_digits()
    try:
        model = store.get(name)
    except ModelUnavailable:
        return list(range(count))
    digits = cluster_labels(store, name, model)
    if digits is None:
        return list(range(count))
    with torch.no_grad():
        clusters = model.cluster_probabilities(images.to(model.device)).argmax(1).tolist()
    right, seen = [], set()
    for i, (k, label) in enumerate(zip(clusters, labels)):
        if digits[k] == label and label not in seen:
            right.append(i)
            seen.add(label)
    return (right + [i for i in range(len(labels)) if i not in right])[:count]


def cluster_table(store: ModelStore, name: str, model) -> str:
    """Markdown: the measured errors beside the paper's, then per cluster its labels by both rules and its share of
    the test digits (the clustering records of `python -m train.evaluate`)."""
    published = "; ".join(text for _, text in checkpoints()[name][0].anchors)
    published = f" Published: {published}." if published else ""
    if model.samples_by_label:
        record = read_record(store.folder(name), "Semi-supervised test error")
        measured = "not measured" if record is None else f"**{record.value:.2f} %**"
        labelled = record.details.get("labelled_examples") if record else None
        return (f"Cluster k is digit k: the model learnt from {labelled or 'some'} labels. Test error, the most "
                f"probable class under q(y|x): {measured}.{published}")
    paper, majority = (read_record(store.folder(name), f"Clustering error ({rule})")
                       for rule in ("paper rule", "majority rule"))
    if paper is None:
        return ("Clustering error not measured: `python -m train.evaluate` writes it into this checkpoint's "
                f"eval_results.json.{published}")
    shares = paper.details.get("cluster_shares") or [None] * model.num_clusters
    by_majority = majority.details.get("cluster_labels") if majority else [None] * model.num_clusters
    rows = [f"| {k} | {a} | {'—' if b is None else b} | {'—' if s is None else f'{100 * s:.1f} %'} |"
            for k, (a, b, s) in enumerate(zip(paper.details["cluster_labels"], by_majority, shares))]
    error = f"{paper.value:.2f} % by the paper's rule" + (f", {majority.value:.2f} % by the majority rule"
                                                            if majority else "")
    return (f"Clustering error on the {paper.details.get('num_images', 0):,} test digits: **{error}**.{published} "
            f"Each cluster's label comes from the "
            f"{paper.details.get('validation_digits', 0):,} validation digits held out of training, never from the "
            "test set.\n\n| cluster | label (paper's rule: its surest validation digit) | label (majority of its "
            "validation digits) | share of the test digits |\n|---|---|---|---|\n" + "\n".join(rows))


@torch.no_grad()
def clusters_view(store: ModelStore, model_name: str, num_styles: int, seed: int) -> tuple[Image.Image, str]:
    """(every cluster decoded with the same `num_styles` styles z ~ N(0, I) drawn from `seed`: one row per cluster,
    the row's name and the measured errors as Markdown)."""
    _check(model_name)
    if not 1 <= int(num_styles) <= MAX_STYLES:
        raise ValueError(f"number of styles must be 1-{MAX_STYLES}")
    model = store.get(model_name)
    styles = torch.randn(int(num_styles), model.config.latent_dim, generator=generator(seed))
    grid = model.decode_clusters(styles)
    names = cluster_names(store, model_name, model)
    caption = "Rows, top to bottom: " + ", ".join(names) + "."
    return to_image(grid.flatten(0, 1), nrow=int(num_styles), scale=2), caption + "\n\n" + cluster_table(
        store, model_name, model)


@torch.no_grad()
def style_view(store: ModelStore, sketch, upload, example, model_name: str) -> tuple[Image.Image, str]:
    """(rows: your digit, then bundled test digits, each followed by its style z decoded as every cluster: style
    and content apart; a note of what the columns are)."""
    _check(model_name)
    x, _, source = read_digit(sketch, upload, example)
    model = store.get(model_name)
    digits = torch.cat([x, test_digits()[0][:STYLE_ROWS]]).to(model.device)
    _, styles = model.split_code(model.encode(digits).z)
    decoded = model.decode_clusters(styles).transpose(0, 1)  # (rows, K, 1, 28, 28)
    rows = torch.cat([digits.unsqueeze(1).cpu(), decoded.cpu()], dim=1)
    names = cluster_names(store, model_name, model)
    surest = model.cluster_probabilities(x.to(model.device))[0]
    note = (f"The model puts {source} in **{names[int(surest.argmax())]}** (q(y|x) = {float(surest.max()):.2f}). "
            f"Top row: your digit, then bundled test digits 0–{STYLE_ROWS - 1}. The first column is the digit "
            f"itself; the others keep its style z and decode it as each cluster in turn: {', '.join(names)}.")
    return to_image(rows.flatten(0, 1), nrow=model.num_clusters + 1, scale=2), note


def build(store: ModelStore) -> None:
    import gradio as gr

    choices = cluster_checkpoints()
    intro(INTRO, store, list(choices))
    first = featured(choices, "a model with a categorical code (spec.clusters)")
    radio = [(label, name) for name, label in choices.items()]
    grid0, table0 = first_visit(clusters_view, store, first, 8, 0, outputs=2)
    with gr.Row():
        with gr.Column(scale=1):
            model = gr.Radio(radio, value=first, label="Model")
            num = gr.Slider(1, MAX_STYLES, value=8, step=1, label="Styles (columns)")
            seed = gr.Number(0, precision=0, label="Seed of the styles")
            button = gr.Button("Decode every cluster", variant="primary")
        with gr.Column(scale=2):
            grid = gr.Image(grid0, type="pil", label="Each cluster (row) with the same styles (columns)",
                            format="png", elem_id="clusters-out")
    table = gr.Markdown(table0, elem_id="clusters-table")
    # Not cached: the table rereads eval_results.json at each call (a re-evaluation shows without a restart); the
    # decoding itself is one small batch.
    button.click(bind(clusters_view, store, cached=False), [model, num, seed], [grid, table], api_name="clusters")

    gr.Markdown("#### Style and content apart")
    ex, shown = example_choices(), clustered_right(store, first)
    styled0, note0 = first_visit(style_view, store, None, None, ex[shown[0]], first, outputs=2)
    with gr.Row():
        with gr.Column(scale=1):
            digit = digit_inputs("Your digit", shown[0])
            style_model = gr.Radio(radio, value=first, label="Model")
            style_button = gr.Button("Keep its style, swap its cluster", variant="primary")
        with gr.Column(scale=2):
            styled = gr.Image(styled0, type="pil", label="Each row: one style decoded as every cluster",
                              format="png", elem_id="styles-out")
    note = gr.Markdown(note0)
    style_button.click(bind(style_view, store, cached=False), [*digit, style_model], [styled, note],
                       api_name="styles")
    digit_examples([digit[2], style_model], [[ex[i], first] for i in shown],
                   lambda x, m: bind(style_view, store, cached=False)(None, None, x, m), [styled, note])

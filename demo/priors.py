"""Tab 4, Adversarial prior comparison on the 2-D models: how VAE (KL), AAE (adversarial on z) and AVB (adversarial
on (x, z)) fill their prior, seen as latent scatters over the prior's density, prior samples, and measured numbers."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from PIL import Image, ImageDraw

from vae_models import Unsupported
from vae_models.export import EvalResult, ExportError, read_eval_results

from .common import PALETTE, bind, first_visit, generator, intro, test_digits, to_image
from .test_codes import encode, read_test_codes
from .weights import ModelStore, latent_2d_checkpoints

# column -> the eval_results.json entry (see train/evaluate.py) shown in it: the first whose name starts with the
# prefix. AIS-NLL is the one likelihood every model here has; the IS-NLL bound exists only for Gaussian posteriors.
METRICS = {"AIS-NLL (nats)": "AIS-NLL", "IS-NLL bound (nats)": "IS-NLL", "classifier FD": "Classifier-feature FD",
           "prior MMD": "Prior MMD", "digit = component": "Conditional accuracy"}
SIZE, MAX_POINTS = 300, 5000

INTRO = """### Adversarial priors
All five models have a 2-D code: the VAE pulls each q(z|x) towards the prior with a KL term, the AAE trains a
discriminator to make the encoded codes indistinguishable from prior samples (the label-supervised AAE's
discriminator also sees the digit's label, so digit c fills mixture component c), and AVB makes the posterior itself
implicit and learns the KL with a discriminator on (x, z). Look at how well the coloured codes of test digits cover
the prior's density (grey): gaps mean prior samples that decode to no digit, and compare the likelihoods (AIS, one
scale for every model), FD and MMD below."""


@functools.cache
def _test_set(data_dir: str | None, allow_download: bool) -> tuple[torch.Tensor, torch.Tensor, str]:
    """MNIST test digits (N, 1, 28, 28) in [0, 1] and labels: the real test set when it can be read, else the 20
    bundled ones."""
    try:
        from vae_models.data import load_mnist

        images, labels = load_mnist("test", data_dir=data_dir, download=allow_download)
        return images.unsqueeze(1).float() / 255.0, labels, "MNIST test digits"
    except (OSError, ValueError):  # no local copy, no download allowed or possible (DataError is a ValueError):
        # the bundled digits still show the idea
        images, labels = test_digits()
        return images, torch.tensor(labels), "the 20 bundled test digits (MNIST test set not found)"


def scatter_codes(store: ModelStore, name: str, model) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(codes, labels, where they come from) of the whole test set under one checkpoint: the codes stored beside its
    weights (demo/test_codes.py) when they belong to these weights, else the test set encoded once and kept."""
    stored = store.memo(("stored test codes", name), lambda: read_test_codes(store.folder(name)))  # hashes weights
    if stored is not None:
        return (*stored, "the MNIST test digits (codes stored with the weights)")

    def compute():
        images, labels, source = _test_set(store.data_dir, store.hub)
        pixels = (images[:, 0] * 255).round().to(torch.uint8)  # exactly the stored grey levels
        if source.startswith("MNIST"):
            return encode(model, pixels), labels, "the MNIST test digits"
        return encode(model, pixels), labels, "the 20 bundled test digits (no test codes beside the weights and " \
                                              "no MNIST test set found)"

    return store.memo(("test codes", name), compute)


def density_background(prior: np.ndarray, lim: float) -> Image.Image:
    """A grey histogram of the prior's density on [-lim, lim]^2 (SIZE x SIZE, y up)."""
    bins = 75
    density, _, _ = np.histogram2d(prior[:, 1], prior[:, 0], bins=bins, range=[[-lim, lim], [-lim, lim]])
    kernel = np.array([1, 4, 6, 4, 1], dtype=np.float64) / 16  # binomial blur, a cheap Gaussian
    for axis in (0, 1):
        density = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), axis, density)
    density = np.sqrt(density / max(density.max(), 1e-12))[::-1]  # sqrt keeps the tails visible; y up
    shade = (255 - 110 * density).astype(np.uint8)
    return Image.fromarray(shade).resize((SIZE, SIZE), Image.BILINEAR).convert("RGB")


# pixel offsets of one plotted code: a disc of radius 1.5 px
DOT = np.array([(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if dx * dx + dy * dy <= 2.25])
COLOURS = np.array(PALETTE, dtype=np.uint8)


def make_frame(prior: np.ndarray, lim: float, title: str) -> Image.Image:
    """The empty plot: the prior's density on [-lim, lim]^2 under a title, over a legend of the digits' colours."""
    canvas = Image.new("RGB", (SIZE, SIZE + 40), "white")
    canvas.paste(density_background(prior, lim), (0, 20))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 4), f"{title}   (axes ±{lim:.1f})", fill="black")
    for d in range(10):
        draw.text((8 + d * 29, SIZE + 24), str(d), fill=PALETTE[d])
    return canvas


def plot_limit(codes: np.ndarray, prior: np.ndarray) -> float:
    """Half the side of the plotted square: 99.5 % of codes and prior samples inside, with a margin."""
    return float(np.quantile(np.abs(np.concatenate([codes, prior])), 0.995)) * 1.1 or 1.0


def render_scatter(codes: torch.Tensor, labels: torch.Tensor, prior: torch.Tensor, title: str) -> Image.Image:
    """Codes coloured by digit over a grey histogram of the prior's density, with a legend (one-off plots, such as
    the live-training tab's; the prior-comparison view reuses each model's frame, see scatter_frame)."""
    lim = plot_limit(codes.numpy(), prior.numpy())
    return stamp_codes(codes, labels, make_frame(prior.numpy(), lim, title), lim)


def stamp_codes(codes: torch.Tensor, labels: torch.Tensor, frame: Image.Image, lim: float) -> Image.Image:
    """Codes coloured by digit stamped onto a copy of `frame` (make_frame: the prior's density, title, legend).
    The dots are stamped with numpy in the order of the codes (a later dot covers an earlier one)."""
    canvas = np.array(frame)
    pixels = canvas[20:20 + SIZE]  # the plot area below the title: a view, written in place
    to_px = lambda v: np.rint((v + lim) / (2 * lim) * (SIZE - 1)).astype(np.int64)  # noqa: E731
    codes = codes.numpy()
    x, y = to_px(codes[:, 0]), SIZE - 1 - to_px(codes[:, 1])
    rows = (y[:, None] + DOT[None, :, 0]).ravel()
    cols = (x[:, None] + DOT[None, :, 1]).ravel()
    colour = np.repeat(COLOURS[labels.numpy() % 10], len(DOT), axis=0)
    inside = (rows >= 0) & (rows < SIZE) & (cols >= 0) & (cols < SIZE)
    pixels[rows[inside], cols[inside]] = colour[inside]
    return Image.fromarray(canvas)


def scatter_frame(store: ModelStore, name: str, model, codes: torch.Tensor, title: str) -> tuple[Image.Image, float]:
    """(the empty plot: the prior's density, title and legend; the axis limit) of one model, made once: the plane
    covers 99.5 % of the prior's samples and of the whole test set's codes (so the axes stay put whichever digits are
    drawn), and the density comes from 20,000 prior samples of a fixed seed (the view's seed picks the digits)."""

    def compute():
        prior = model.prior_sample(20_000, generator(0)).cpu().numpy()
        lim = plot_limit(codes.numpy(), prior)
        return make_frame(prior, lim, title), lim

    return store.memo(("scatter frame", name), compute)


@torch.no_grad()
def latent_scatter(store: ModelStore, num_points: int, seed: int):
    """One scatter per 2-D model (None where the model is unavailable), and a note."""
    if not 10 <= int(num_points) <= MAX_POINTS:
        raise ValueError(f"number of points must be 10-{MAX_POINTS}")
    outputs, notes, sources = [], [], []

    def scatter(name: str, title: str):
        def draw(model):
            if model.config.latent_dim != 2:
                raise Unsupported(f"{name} has a {model.config.latent_dim}-D code; this view needs 2-D")
            codes, labels, source = scatter_codes(store, name, model)
            # the same digits for every model: a permutation of the test set from the seed, cut to num_points
            pick = torch.randperm(len(codes), generator=generator(seed))[: int(num_points)]
            frame, lim = scatter_frame(store, name, model, codes, title)
            sources.append(f"{len(pick)} of {source}")
            return stamp_codes(codes[pick], labels[pick], frame, lim)
        return draw

    for name, checkpoint in latent_2d_checkpoints().items():
        image, why_not = store.use(name, scatter(name, checkpoint.label))
        outputs.append(image)
        notes += [why_not] if why_not else []
    if all(o is None for o in outputs):
        raise ValueError(" ".join(notes))
    return (*outputs, " ".join([f"{'; '.join(dict.fromkeys(sources))}.", *notes]))


@torch.no_grad()
def prior_samples(store: ModelStore, num_samples: int, seed: int):
    """Samples decoded from each model's prior (None where unavailable)."""
    if not 1 <= int(num_samples) <= 100:
        raise ValueError("number of samples must be 1-100")
    names = list(latent_2d_checkpoints())
    outputs = [store.use(name, lambda m: to_image(m.sample(int(num_samples), generator=generator(seed)), scale=2))[0]
               for name in names]
    if all(o is None for o in outputs):
        raise ValueError("none of the 2-D models is available: " + ", ".join(names))
    return tuple(outputs)


def _format(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "not measured"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4f}"


def read_results(folder) -> list[EvalResult]:
    """The folder's eval_results.json (written by `python -m train.evaluate`); empty when the file is absent or
    malformed, so the table says "not measured" rather than failing the tab."""
    try:
        return (read_eval_results(folder) or []) if folder else []
    except ExportError:
        return []


def read_record(folder, prefix: str) -> EvalResult | None:
    """The folder's first evaluation record whose name starts with `prefix` (read_results), or None."""
    return next((e for e in read_results(folder) if e.name.startswith(prefix)), None)


def _cell(entry: EvalResult | None) -> str:
    if entry is None:
        return "not measured"
    cell = _format(entry.value)
    if entry.name.startswith("AIS-NLL") and cell != "not measured":
        error, gap = entry.details.get("std_error"), entry.details.get("bdmc_gap")
        cell += f" ± {_format(error)}" if isinstance(error, (int, float)) else ""
        cell += f" (BDMC gap {_format(gap)})" if isinstance(gap, (int, float)) else ""
    elif entry.name.startswith("IS-NLL"):
        cell += f" ({entry.name})"
    return cell


def metrics_table(store: ModelStore) -> str:
    """Markdown table of each model's eval_results.json (written by the evaluation CLI); "not measured" if absent."""
    header = "| model | " + " | ".join(METRICS) + " |\n|---|" + "---|" * len(METRICS)
    rows = []
    for name, checkpoint in latent_2d_checkpoints().items():
        results = read_results(store.folder(name))
        cells = [_cell(next((e for e in results if e.name.startswith(prefix)), None)) for prefix in METRICS.values()]
        rows.append(f"| {checkpoint.label} | " + " | ".join(cells) + " |")
    return header + "\n" + "\n".join(rows)


def build(store: ModelStore) -> None:
    import gradio as gr

    two_d = latent_2d_checkpoints()
    intro(INTRO, store, list(two_d))
    with gr.Row():
        num = gr.Slider(10, MAX_POINTS, value=2000, step=10, label="Encoded test digits")
        seed = gr.Number(0, precision=0, label="Seed")
        btn = gr.Button("Encode test digits", variant="primary")
    *scatters0, note0 = first_visit(latent_scatter, store, 2000, 0, outputs=len(two_d) + 1)
    with gr.Row():
        scatters = [gr.Image(value, type="pil", label=c.label, elem_id=f"scatter-{name}", format="png")
                    for value, (name, c) in zip(scatters0, two_d.items())]
    note = gr.Markdown(note0)
    btn.click(bind(latent_scatter, store), [num, seed], [*scatters, note], api_name="latent_scatter")

    with gr.Row():
        n_samples = gr.Slider(1, 100, value=25, step=1, label="Samples per prior")
        s_seed = gr.Number(0, precision=0, label="Seed")
        s_btn = gr.Button("Sample each prior", variant="primary")
    samples0 = first_visit(prior_samples, store, 25, 0, outputs=len(two_d))
    with gr.Row():
        samples = [gr.Image(value, type="pil", label=f"Samples: {c.label}", format="png")
                   for value, c in zip(samples0, two_d.values())]
    s_btn.click(bind(prior_samples, store), [n_samples, s_seed], samples, api_name="prior_samples")

    gr.Markdown("#### Measured (from each checkpoint's eval_results.json)")
    table = gr.Markdown(metrics_table(store))
    refresh = gr.Button("Reload measurements")
    # Not cached: it reads each checkpoint's eval_results.json at every call, so that a re-evaluation shows on
    # Refresh without a restart, and a table of text costs nothing to make.
    refresh.click(bind(metrics_table, store, cached=False), None, table, api_name="prior_metrics")

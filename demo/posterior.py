"""Tab "See the posterior": for your digit and a 2-D checkpoint, the exact posterior p(z|x) on a grid beside the
model's q(z|x), and the identity log p(x) = ELBO + KL(q(z|x) || p(z|x)) in numbers (vae_models/posterior.py computes
them); below, the same over the test set for every such checkpoint. What is drawn and said follows what q is (a
Gaussian, draws of an implicit q, a point) and what the model declares (`spec`): this module names no model."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

from vae_models import checkpoints, posterior, typicality

from .common import bind, digit_examples, digit_inputs, example_choices, first_visit, intro, read_digit, test_digits
from .priors import read_record
from .weights import ModelStore, featured, label_judge

PANEL = 300  # pixels per side of each of the two plots
LOG_RANGE = 10.0  # nats: the heat maps shade log density from its peak down to this far below it
HISTOGRAM_BINS = 100  # per side, for the draws of an implicit q
SHOWN_DRAWS = 400  # draws of q dotted over the exact posterior
# viridis at five stops, for the heat maps (dark: LOG_RANGE nats below the peak, yellow: the peak)
CELL_BAR = "\\|"  # a "|" inside a Markdown table cell
STOPS = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)], dtype=np.float64)

INTRO = """### See the posterior
For a model with a 2-D code the exact posterior **p(z|x) ∝ p(z) p(x|z)** can be computed on a grid (left, as log
density): its normaliser is **log p(x)**, by quadrature. The model's own posterior **q(z|x)** is drawn over it and
beside it on the same axes: a Gaussian q as its 1, 2 and 3 standard-deviation ellipses, an implicit q (noise fed to
the encoder) as a histogram of 2,000 encoder draws, a deterministic encoder as its one code. The lecture's identity

**log p(x) = ELBO + KL(q(z|x) ‖ p(z|x))**,   ELBO = E_q[log p(x|z)] − KL(q(z|x) ‖ p(z)),

is then checked in numbers: the left side by quadrature, the ELBO by Monte Carlo over q's draws, the gap on the grid.
The digit is binarised at 0.5, as the models' training data was binary. The tab opens on the first bundled test digit
whose reconstruction the classifier recognises as that digit."""


def posterior_checkpoints() -> dict[str, str]:
    """Store name -> label of the checkpoints whose exact posterior the tab computes: a 2-D code and a decoder with a
    prior (`needs_ais`: log_prior, decoder_logits), unconditional (a label-conditional model's p(x|c) would need the
    label too)."""
    return {name: c.label for name, (c, spec) in checkpoints().items()
            if c.latent_2d and spec.needs_ais and not spec.label_conditional}


# ------------------------------------------------------------------------------------------- drawing


def shade(log_density: np.ndarray) -> np.ndarray:
    """log density (rows: z_2 from the top, columns: z_1) -> RGB uint8: the colour map over the LOG_RANGE nats below
    its peak; cells off the grid (-inf) white."""
    level = np.clip((log_density - np.max(log_density) + LOG_RANGE) / LOG_RANGE, 0, 1)
    rgb = np.stack([np.interp(level, np.linspace(0, 1, len(STOPS)), STOPS[:, c]) for c in range(3)], -1)
    rgb[~np.isfinite(log_density)] = 255
    return rgb.astype(np.uint8)


def _heat(values: torch.Tensor) -> Image.Image:
    """A window image ([a, b]: z_1 along a, z_2 along b) as a PANEL x PANEL heat map, z_2 up."""
    return Image.fromarray(shade(values.T.flip(0).numpy())).resize((PANEL, PANEL), Image.NEAREST)


def _to_pixels(post: posterior.Posterior, z: np.ndarray) -> np.ndarray:
    """Codes (N, 2) -> pixel (x, y) on a panel."""
    z1, z2, top1, top2 = post.extent
    return np.stack([(z[:, 0] - z1) / (top1 - z1) * PANEL, (top2 - z[:, 1]) / (top2 - z2) * PANEL], 1)


def _mark_q(post: posterior.Posterior, draw: ImageDraw.ImageDraw, colour) -> None:
    """q's outline on a panel: a Gaussian's 1/2/3 sd ellipses, an implicit q's draws, a point's cross."""
    q = post.q
    if q.kind == "gaussian":
        centre = _to_pixels(post, q.mean[None].numpy())[0]
        z1, z2, top1, top2 = post.extent
        scale = np.array([PANEL / (top1 - z1), PANEL / (top2 - z2)])
        for k in (1, 2, 3):
            radius = k * (0.5 * q.logvar).exp().numpy() * scale
            draw.ellipse([*(centre - radius), *(centre + radius)], outline=colour, width=2)
    elif q.kind == "draws":
        for x, y in _to_pixels(post, q.draws[:SHOWN_DRAWS].numpy()):
            draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=colour)
    else:
        x, y = _to_pixels(post, q.draws.numpy())[0]
        draw.line([x - 8, y, x + 8, y], fill=colour, width=3)
        draw.line([x, y - 8, x, y + 8], fill=colour, width=3)


def q_heat(post: posterior.Posterior) -> torch.Tensor:
    """q's log density on the window's cells: a Gaussian's own, an implicit q's histogram of its draws (per cell of
    HISTOGRAM_BINS per side, spread back onto the grid's cells), a point's single cell."""
    q, h = post.q, post.grid.spacing
    if q.kind == "gaussian":
        return post.image(q.log_density(post.grid.points))
    i0, j0, i1, j1 = post.box
    image = torch.full((i1 - i0, j1 - j0), -math.inf, dtype=torch.float64)
    if q.kind == "point":
        cell = torch.floor(q.draws[0].double() / h).long() - torch.tensor([i0, j0])
        if 0 <= cell[0] < i1 - i0 and 0 <= cell[1] < j1 - j0:
            image[cell[0], cell[1]] = 0.0
        return image
    z1, z2, top1, top2 = post.extent
    counts, _, _ = np.histogram2d(q.draws[:, 0].numpy(), q.draws[:, 1].numpy(), bins=HISTOGRAM_BINS,
                                  range=[[z1, top1], [z2, top2]])
    with np.errstate(divide="ignore"):
        log_counts = torch.from_numpy(np.log(counts))
    a = torch.arange(i1 - i0) * HISTOGRAM_BINS // (i1 - i0)  # the histogram bin of each grid row / column
    b = torch.arange(j1 - j0) * HISTOGRAM_BINS // (j1 - j0)
    return log_counts[a][:, b]


def render(post: posterior.Posterior, title: str) -> Image.Image:
    """Two panels on the same axes: log p(z|x) with q's outline (white), and q itself (a Gaussian's ellipses and a
    point's cross in red over it; an implicit q's histogram alone)."""
    canvas = Image.new("RGB", (2 * PANEL + 30, PANEL + 70), "white")
    q_words = {"gaussian": "q(z|x): its density, 1/2/3 sd ellipses", "draws": f"q(z|x): {len(post.q.draws)} "
               "encoder draws (histogram)", "point": "q(z|x): the encoder's one code"}[post.q.kind]
    for k, (values, caption) in enumerate([(post.image(), "exact p(z|x), q's outline in white"),
                                           (q_heat(post), q_words)]):
        panel = _heat(values)
        if k == 0 or post.q.kind != "draws":
            _mark_q(post, ImageDraw.Draw(panel), "white" if k == 0 else "red")
        left = 10 + k * (PANEL + 10)
        canvas.paste(panel, (left, 36))
        ImageDraw.Draw(canvas).text((left, 22), caption, fill="black")
    z1, z2, top1, top2 = post.extent
    draw = ImageDraw.Draw(canvas)
    draw.text((10, 4), title, fill="black")
    draw.text((10, PANEL + 42), f"z1 from {z1:.2f} to {top1:.2f} (right), z2 from {z2:.2f} to {top2:.2f} (up); "
              f"colour: log density, its peak (yellow) down to {LOG_RANGE:g} nats below (dark)", fill="black")
    return canvas


# ------------------------------------------------------------------------------------------- numbers


def _pm(value: float, error: float) -> str:
    return f"{value:.2f} ± {error:.2g}" if error else f"{value:.2f}"


def numbers_text(post: posterior.Posterior, numbers: posterior.Evidence, source: str) -> str:
    """The identity for this digit, as a Markdown table and what it shows."""
    grid = post.grid
    rows = [("log p(x), exact (quadrature)", f"{numbers.log_px:.2f}")]
    if numbers.gap is not None:
        kl_how = "closed form" if numbers.kl_closed_form else f"Monte Carlo, {numbers.draws} draws"
        rows += [(f"E_q[log p(x|z)], reconstruction ({numbers.draws} draws of q)",
                  _pm(numbers.reconstruction, numbers.reconstruction_error)),
                 (f"KL(q(z|x) ‖ p(z)) ({kl_how})", _pm(numbers.kl_prior, numbers.kl_prior_error)),
                 ("ELBO = reconstruction − KL", _pm(numbers.elbo, numbers.elbo_error)),
                 ("log p(x) − ELBO", _pm(numbers.difference, numbers.elbo_error)),
                 ("KL(q(z|x) ‖ p(z|x)) on the grid", f"{numbers.gap:.2f}")]
        off = abs(numbers.difference - numbers.gap)
        said = f"The gap on the grid and log p(x) − ELBO differ by {off:.2f} nats"
        if numbers.elbo_error:
            said += f", {off / numbers.elbo_error:.1f} Monte Carlo standard errors of the ELBO"
        said += "."
    elif numbers.learned_kl:
        rows += [(f"ELBO of the training objective (its KL learned by a discriminator T; {numbers.draws} draws)",
                  _pm(numbers.elbo, numbers.elbo_error)),
                 ("log p(x) − objective's ELBO", _pm(numbers.difference, numbers.elbo_error))]
        said = ("This q is implicit (noise fed to the encoder): it has no density, so KL(q ‖ p(z|x)) cannot be "
                "summed on the grid, and the training objective's KL(q ‖ p(z)) is T's estimate. A true ELBO cannot "
                "exceed log p(x): a negative difference means T underestimates the KL.")
    else:
        said = ("This model has **no variational bound**, so nothing stands in for the ELBO: its encoder was trained "
                "to reconstruct and to fill the prior (an adversary on the codes), not on a bound, and "
                + ("a point mass has no density (its KL to any density is infinite)." if post.q.kind == "point" else
                   "an implicit q has no density to put in one.") + " Shown: log p(x), and where q's codes sit.")
    rows.append(("share of p(z|x)'s mass denser than at q's codes (mean over its draws; 0 = at the mode)",
                 f"{post.denser_than_codes():.3f}"))
    cells = "\n".join(f"| {a.replace('|', CELL_BAR)} | {b} |" for a, b in rows)  # p(x|z) inside a table cell
    table = f"| for {source} | nats |\n|---|---|\n{cells}"
    grid_note = (f"Grid: {len(grid.index):,} cells of side {grid.spacing:.4f} over the window drawn above; halving the "
                 f"spacing moved log p(x) by {post.spacing_change:.1g} nats, a coarse grid over the prior's whole "
                 f"support puts {post.mass_outside:.1g} of p(z|x)'s mass outside the window.")
    return f"{table}\n\n{said}\n\n{grid_note}"


def _digit(sketch, upload, example) -> tuple[torch.Tensor, str]:
    x, _, source = read_digit(sketch, upload, example)
    return typicality.binarize(x), source


@torch.no_grad()
def show_posterior(store: ModelStore, sketch, upload, example, model_name: str):
    """(the plot: p(z|x) and q(z|x) on the same axes, the numbers of the identity as Markdown)."""
    choices = posterior_checkpoints()
    if model_name not in choices:
        raise ValueError(f"unknown model {model_name!r}; choose one of {list(choices)}")
    x, source = _digit(sketch, upload, example)
    model = store.get(model_name)
    with torch.random.fork_rng(devices=[]):  # the same draws of q for the same digit, every call
        torch.manual_seed(0)
        post = posterior.exact_posterior(model, x)
        numbers = posterior.evidence(model, x, post)
    return render(post, f"{choices[model_name]}: {source}"), numbers_text(post, numbers, source)


def first_digit(store: ModelStore, model_name: str) -> int:
    """The first bundled test digit whose reconstruction by the model the classifier labels as the digit's own
    label (the first digit when none is, or a model is missing): the tab opens on a digit the model gets."""
    images, labels = test_digits()

    def judged(model):
        with torch.no_grad():
            return store.get(label_judge()).predict(model.reconstruct(typicality.binarize(images).to(model.device)))

    seen, _ = store.use(model_name, judged)
    return 0 if seen is None else next((i for i, (a, b) in enumerate(zip(seen.tolist(), labels)) if a == b), 0)


# ------------------------------------------------------------------------------------------- the test set


def table(store: ModelStore) -> str:
    """Markdown: per 2-D checkpoint, the exact NLL and the negative ELBO over the same test digits, both from its
    eval_results.json (`python -m train.evaluate --metrics exact elbo`), and the mean gap between them."""
    rows = []
    for name, label in posterior_checkpoints().items():
        folder = store.folder(name)
        exact, elbo = read_record(folder, "Exact-NLL"), read_record(folder, "Negative ELBO")
        shown = "not measured" if exact is None else f"{exact.value:.2f}"
        if elbo is None:
            model, _ = store.use(name, lambda m: m)
            bound = model is not None and not posterior.has_elbo(model, test_digits()[0][:1])
            rows.append(f"| {label} | {shown} | {'none: no variational bound' if bound else 'not measured'} | — |")
            continue
        error = elbo.details.get("monte_carlo_error", 0.0)
        kind = " (the objective's: KL learned by T)" if "learned by T" in elbo.estimator else ""
        gap = "—" if exact is None else f"{elbo.value - exact.value:.2f} ± {error:.2f}"
        rows.append(f"| {label} | {shown} | {elbo.value:.2f} ± {error:.2f}{kind}, "
                    f"{elbo.details.get('num_images', 0):,} digits | {gap} |")
    return ("| model | exact NLL, −log p(x) | −ELBO | mean gap log p(x) − ELBO |\n"
            "|---|---|---|---|\n" + "\n".join(rows) +
            "\n\nnats per digit, on the MNIST test digits binarised once with seed 0 (the evaluation's protocol), "
            "read from each checkpoint's eval_results.json (`python -m train.evaluate --metrics exact elbo`). "
            "The ELBO: two draws of q per digit with the KL to N(0, I) in closed form, or the training objective's "
            f"own estimate over {posterior.ELBO_DRAWS} noise draws where a discriminator learns the KL; ± its Monte "
            "Carlo standard error (the draws' noise, not the spread between digits).")


# ------------------------------------------------------------------------------------------- the tab


def build(store: ModelStore) -> None:
    import gradio as gr

    choices = posterior_checkpoints()
    intro(INTRO, store, list(choices))
    first = featured(choices, "a 2-D checkpoint with a likelihood (latent_2d, needs_ais)")
    ex = example_choices()
    start = first_digit(store, first)
    plot0, numbers0 = first_visit(show_posterior, store, None, None, ex[start], first, outputs=2)
    with gr.Row():
        with gr.Column(scale=1):
            digit = digit_inputs("Your digit", start)
            model = gr.Radio([(label, name) for name, label in choices.items()], value=first, label="Model")
            button = gr.Button("Show the posterior", variant="primary")
        with gr.Column(scale=2):
            plot = gr.Image(plot0, type="pil", label="p(z|x) and q(z|x)", format="png", elem_id="posterior-plot")
    numbers = gr.Markdown(numbers0, elem_id="posterior-numbers")
    button.click(bind(show_posterior, store), [*digit, model], [plot, numbers], api_name="posterior")
    digit_examples([digit[2], model], [[ex[start], name] for name in choices],
                   lambda x, m: bind(show_posterior, store)(None, None, x, m), [plot, numbers])

    gr.Markdown("#### Over the test set")
    summary = gr.Markdown(first_visit(table, store), elem_id="posterior-table")
    refresh = gr.Button("Reload the table")
    refresh.click(bind(table, store, cached=False), None, summary, api_name="posterior_table")  # rereads the files

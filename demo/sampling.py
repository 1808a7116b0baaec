"""Tab 1, Sampling: prior samples of each model, latent interpolation (AE vs VAE), the 2-D latent manifold.
Which models each view shows is what the models and their checkpoints declare (vae_models/registry.py and
catalogue.py): this module names none."""

from __future__ import annotations

import torch
from PIL import Image

from vae_models import ConfigError, checkpoints, typicality
from vae_models.latent import INTERPOLATIONS, frame_measures, interpolation_frames, midpoint_dip

from . import batching
from .common import (PALETTE, bind, digit_examples, digit_inputs, example_choices, first_visit, generator, intro,
                     read_digit, to_image)
from .weights import (ModelStore, ModelUnavailable, featured, interpolation_checkpoints, label_judge,
                      latent_2d_checkpoints, path_judge, reference_for, sampler_checkpoints)

MAX_SAMPLES, MAX_STEPS, MAX_GRID = 100, 16, 30

INTRO = """### Sampling from the prior
Each model decodes codes z drawn from its prior p(z) (temperature scales z; an AE has no prior, so N(0, I) codes
land in the holes between its training codes). Compare the interpolations: the VAE's path between two digits
passes through plausible digits, the AE's often through blots — the KL term made the VAE's latent space smooth."""


@torch.no_grad()
def sample_grid(store: ModelStore, model_name: str, num_samples: int, temperature: float, seed: int) -> Image.Image:
    """`num_samples` images decoded from prior samples z * temperature, as one grid."""
    if model_name not in sampler_checkpoints():
        raise ValueError(f"unknown model {model_name!r}; choose one of {list(sampler_checkpoints())}")
    if not 1 <= int(num_samples) <= MAX_SAMPLES or not 0 < float(temperature) <= 3:
        raise ValueError(f"number of samples must be 1-{MAX_SAMPLES} and temperature in (0, 3]")
    model = store.get(model_name)
    codes = model.sample_codes(int(num_samples), temperature=float(temperature), generator=generator(seed))
    return to_image(batching.DECODES.decode(model, codes))  # one pass with the concurrent calls (demo/batching.py)


@torch.no_grad()
def interpolate(store: ModelStore, sketch_a, upload_a, example_a, sketch_b, upload_b, example_b, steps: int,
                method: str = "lerp"):
    """Interpolation between the codes of two digits, straight (lerp) or along the great circle (slerp, see
    vae_models.latent.slerp), decoded by each checkpoint declared `interpolation` (the AE and the VAE).
    Returns (the two preprocessed inputs, one row per such checkpoint (None where unavailable), a note)."""
    if not 2 <= int(steps) <= MAX_STEPS:
        raise ValueError(f"steps must be 2-{MAX_STEPS}")
    if method not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {list(INTERPOLATIONS)}, got {method!r}")
    path = INTERPOLATIONS[method]
    x_a, _, source_a = read_digit(sketch_a, upload_a, example_a)
    x_b, _, source_b = read_digit(sketch_b, upload_b, example_b)
    frames, notes = {}, [f"From {source_a} to {source_b} ({method})."]

    def decoded_path(model):
        return interpolation_frames(model, x_a, x_b, int(steps), path)

    # The comparison this view exists for: no prior (AE) against a KL-shaped one (VAE), as the models declare it.
    for name in interpolation_checkpoints():
        frames[name], why_not = store.use(name, decoded_path)
        notes += [why_not] if why_not else []
    if all(row is None for row in frames.values()):
        raise ValueError(" ".join(notes[1:]) or "no registered model declares a checkpoint with interpolation=True")
    rows = [None if f is None else to_image(f, nrow=int(steps)) for f in frames.values()]
    chart, judged = judge_frames(store, {interpolation_checkpoints()[n].title: f
                                         for n, f in frames.items() if f is not None})
    return (to_image(torch.cat([x_a, x_b]), nrow=2), *rows, chart, " ".join(notes) + "\n\n" + judged)


@torch.no_grad()
def judge_frames(store: ModelStore, frames: dict[str, torch.Tensor]):
    """The lecture's moon example, measured for these paths (title -> frames (steps, 1, 28, 28)): per frame, the
    classifier's probability of its top class and the log p(x) percentile among the test digits under the meter
    of a likelihood model on neither path (benchmarks/moon.py does the same over 500 test pairs). Returns (the two
    curves drawn, Markdown: the values per frame and each path's midpoint dip), or (None, why not) when a judge is
    missing."""
    try:
        judge = path_judge()
        classifier, likelihood = store.get(label_judge()), store.get(judge)
        reference = reference_for(store, judge)
    except (ConfigError, ModelUnavailable, typicality.ReferenceError) as exc:
        return None, f"The paths are not judged: {exc}"
    curves = {}  # measure -> {path title: values per frame}
    for title, f in frames.items():
        confidence, percentile = frame_measures(classifier, likelihood, reference, f)
        curves.setdefault(CONFIDENCE, {})[title] = confidence.tolist()
        curves.setdefault(PERCENTILE, {})[title] = percentile.tolist()
    judge_title = checkpoints()[judge][0].title
    steps = len(next(iter(frames.values())))
    lines = [f"Each frame judged by models on neither path: the classifier's confidence in its top class, and the "
             f"frame's log p(x) percentile among the 10,000 test digits under the {judge_title}'s meter.", "",
             "| path | judged by | " + " | ".join(f"frame {i}" for i in range(steps)) + " | midpoint dip |",
             "|---|---|" + "---|" * (steps + 1)]
    for measure, by_path in curves.items():
        for title, values in by_path.items():
            dip = (f"{float(midpoint_dip(torch.tensor([values]))[0]):+{'.2f' if measure == CONFIDENCE else '.0f'}}"
                   if steps % 2 else "(even steps: no middle frame)")
            shown = " | ".join(f"{v:.2f}" if measure == CONFIDENCE else f"{v:.0f}" for v in values)
            lines.append(f"| {title} | {measure} | {shown} | {dip} |")
    lines += ["", "Midpoint dip: the mean of the two end frames minus the middle frame (positive: the path sags)."]
    return moon_chart(curves, judge_title), "\n".join(lines)


CONFIDENCE, PERCENTILE = "classifier confidence", "meter percentile"
PANEL_W, PANEL_H, MARGIN = 300, 170, 34


def moon_chart(curves: dict[str, dict[str, list[float]]], judge_title: str) -> Image.Image:
    """Two panels side by side, one line per path (its colour in the legend): the classifier's confidence (0-1) and
    the meter percentile (0-100) against the frame."""
    from PIL import ImageDraw

    titles = {CONFIDENCE: ("classifier's confidence in its top class", 1.0),
              PERCENTILE: (f"log p(x) percentile under the {judge_title}", 100.0)}
    canvas = Image.new("RGB", (2 * (PANEL_W + MARGIN) + 10, PANEL_H + 2 * MARGIN + 14), "white")
    draw = ImageDraw.Draw(canvas)
    for panel, (measure, by_path) in enumerate(curves.items()):
        title, top = titles[measure]
        left, bottom = MARGIN + panel * (PANEL_W + MARGIN + 10), MARGIN + PANEL_H
        draw.text((left, 6), title, fill="black")
        draw.rectangle([left, MARGIN, left + PANEL_W, bottom], outline=(120, 120, 120))
        for tick in (0.0, 0.5, 1.0):
            y = bottom - tick * PANEL_H
            draw.line([left - 3, y, left, y], fill="black")
            draw.text((left - MARGIN + 2, y - 6), f"{tick * top:g}", fill="black")
        for k, (path, values) in enumerate(by_path.items()):
            n = len(values)
            xs = [left + PANEL_W * i / max(n - 1, 1) for i in range(n)]
            points = [(x, bottom - PANEL_H * min(max(v / top, 0.0), 1.0)) for x, v in zip(xs, values)]
            draw.line(points, fill=PALETTE[k], width=2)
            for x, y in points:
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=PALETTE[k])
            key = left + 4 + 70 * k
            draw.line([key, bottom + 25, key + 14, bottom + 25], fill=PALETTE[k], width=2)
            draw.text((key + 18, bottom + 18), path, fill=PALETTE[k])
        draw.text((left + PANEL_W - 110, bottom + 4), "frame along the path", fill=(90, 90, 90))
    return canvas


@torch.no_grad()
def manifold(store: ModelStore, model_name: str, grid_size: int) -> Image.Image:
    """Decode a grid_size x grid_size grid of codes placed at the prior's marginal quantiles (i + 1/2) / n
    (Kingma & Welling 2013, Fig. 4, where the prior is N(0, I) and the quantiles are the inverse Gaussian CDF;
    estimated from prior samples here, so non-Gaussian priors get a grid that covers them too)."""
    if model_name not in latent_2d_checkpoints():
        raise ValueError(f"unknown 2-D model {model_name!r}; choose one of {list(latent_2d_checkpoints())}")
    n = int(grid_size)
    if not 2 <= n <= MAX_GRID:
        raise ValueError(f"grid size must be 2-{MAX_GRID}")
    model = store.get(model_name)
    if model.config.latent_dim != 2:
        raise ValueError(f"the manifold view needs a 2-D latent space; {model_name} has {model.config.latent_dim}")
    prior = store.memo(("prior sample 20000", model_name), lambda: model.prior_sample(20_000, generator(0)).cpu())
    q = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    z1 = torch.quantile(prior[:, 0], q)
    z2 = torch.quantile(prior[:, 1], q).flip(0)  # top row = largest z2, as on a plot
    grid = torch.stack(torch.meshgrid(z2, z1, indexing="ij"), dim=-1).reshape(-1, 2).flip(1)  # (z1, z2) row-major
    return to_image(model.decode(grid.to(model.device)), nrow=n, scale=2)


def build(store: ModelStore) -> None:
    import gradio as gr

    ex = example_choices()
    samplers, two_d, paths = sampler_checkpoints(), latent_2d_checkpoints(), interpolation_checkpoints()
    first_sampler, first_2d = featured(samplers, "an unconditional generative checkpoint"), \
        featured(two_d, "a checkpoint with latent_2d=True")
    intro(INTRO, store, [*samplers, *two_d])
    with gr.Row():
        with gr.Column(scale=1):
            model = gr.Dropdown([(c.title, name) for name, c in samplers.items()], value=first_sampler,
                                label="Model")
            num = gr.Slider(1, MAX_SAMPLES, value=36, step=1, label="Number of samples")
            temperature = gr.Slider(0.1, 3.0, value=1.0, step=0.1, label="Temperature (scales z)")
            seed = gr.Number(0, precision=0, label="Seed")
            sample_btn = gr.Button("Sample", variant="primary")
        samples = gr.Image(first_visit(sample_grid, store, first_sampler, 36, 1.0, 0), type="pil", label="Samples",
                           elem_id="samples-out", format="png")
    sample_btn.click(bind(sample_grid, store), [model, num, temperature, seed], samples, api_name="sample")

    gr.Markdown("#### Latent interpolation: " + " vs ".join(c.title for c in paths.values()))
    with gr.Row():
        a = digit_inputs("Start digit", 0)
        b = digit_inputs("End digit", 13)
    with gr.Row():
        steps = gr.Slider(2, MAX_STEPS, value=11, step=1, label="Steps (odd: a middle frame for the dip)")
        method = gr.Radio(list(INTERPOLATIONS), value="lerp", label="Path: straight line (lerp) or great circle (slerp)")
    interp_btn = gr.Button("Interpolate", variant="primary")
    pair0, *rows0, chart0, note0 = first_visit(
        interpolate, store, None, None, ex[0], None, None, ex[13], 11, "lerp", outputs=len(paths) + 3)
    pair = gr.Image(pair0, type="pil", label="Preprocessed inputs (MNIST format)", format="png", height=140)
    rows = [gr.Image(value, type="pil", label=f"{c.title}: decoded path", elem_id=f"interp-{name}", format="png")
            for value, (name, c) in zip(rows0, paths.items())]
    chart = gr.Image(chart0, type="pil", label="The moon, measured: is each frame a digit?", format="png",
                     elem_id="interp-judged")
    note = gr.Markdown(note0)
    outputs = [pair, *rows, chart, note]
    interp_btn.click(bind(interpolate, store), [*a, *b, steps, method], outputs, api_name="interpolate")
    digit_examples([a[2], b[2], steps, method],
                   [[ex[0], ex[13], 11, "lerp"], [ex[2], ex[18], 9, "slerp"], [ex[8], ex[6], 13, "lerp"]],
                   lambda x, y, n, how: bind(interpolate, store)(None, None, x, None, None, y, n, how), outputs)

    gr.Markdown("#### 2-D latent manifold\nCodes on a grid over the prior's quantiles, decoded: each region of the "
                "plane is a kind of digit, and neighbours morph smoothly.")
    with gr.Row():
        with gr.Column(scale=1):
            model_2d = gr.Dropdown([(c.title, name) for name, c in two_d.items()], value=first_2d,
                                   label="2-D model")
            size = gr.Slider(2, MAX_GRID, value=15, step=1, label="Grid size")
            manifold_btn = gr.Button("Show manifold", variant="primary")
        grid = gr.Image(first_visit(manifold, store, first_2d, 15), type="pil", label="Latent manifold",
                        elem_id="manifold-out", format="png")
    manifold_btn.click(bind(manifold, store), [model_2d, size], grid, api_name="manifold")

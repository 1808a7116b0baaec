"""Tab 2, Conditional digits: CVAE samples by digit and style, one style across all ten digits, and quadrant
completion with the structured-output CVAE beside the deterministic baseline. Which models those are is what the
models declare (demo/weights.py: conditional_sampler, label_judge, completion_pair): this module names none."""

from __future__ import annotations

import torch

from vae_models.socvae import mask

from .common import (bind, digit_examples, digit_inputs, example_choices, first_visit, generator, intro, test_digits,
                     read_digit, to_image)
from .weights import ModelStore, completion_pair, conditional_sampler, label_judge

AUTO = "predicted by the classifier"
LABEL_CHOICES = [AUTO] + [str(d) for d in range(10)]
MAX_SAMPLES = 32

INTRO = """### Conditional digits
A conditional VAE (Sohn et al. 2015) learns p(x | z, y): the label y says which digit, so z is free to hold only
the style (slant, thickness, size) — keep the seed and change the digit, or encode your digit and decode it as all
ten. The structured-output CVAE predicts the hidden quadrants of a digit from the visible ones: look at how its
completions differ (several plausible digits) where the deterministic baseline gives one blurred average."""


@torch.no_grad()
def cvae_samples(store: ModelStore, digit: int, style_seed: int, num_samples: int):
    """`num_samples` CVAE samples of `digit`; the styles z come from `style_seed`, so the same seed with another
    digit shows the same styles."""
    if not 0 <= int(digit) <= 9 or not 1 <= int(num_samples) <= MAX_SAMPLES:
        raise ValueError(f"digit must be 0-9 and the number of samples 1-{MAX_SAMPLES}")
    model = store.get(conditional_sampler())
    labels = torch.full((int(num_samples),), int(digit), dtype=torch.long)
    return to_image(model.sample(int(num_samples), labels, generator=generator(style_seed)), nrow=min(8, int(num_samples)))


@torch.no_grad()
def same_style(store: ModelStore, sketch, upload, example, label_choice: str):
    """Encode the digit with its label (the classifier's prediction, or the one chosen) and decode that style with
    every label. Returns (preprocessed input, the ten digits, a note)."""
    if label_choice not in LABEL_CHOICES:
        raise ValueError(f"label must be one of {LABEL_CHOICES}")
    x, known, source = read_digit(sketch, upload, example)
    model = store.get(conditional_sampler())
    if label_choice == AUTO:
        label = int(store.get(label_judge()).predict(x)[0])
        how = "predicted by the classifier" + ("" if known in (None, label) else
                                               f", which reads this {known} as a {label}")
    else:
        label, how = int(label_choice), "chosen by you"
    row = model.same_style_all_digits(x, label)
    return to_image(x), to_image(row, nrow=10), f"Encoded {source} as a **{label}** ({how})."


def first_recognised(store: ModelStore, start: int = 0) -> int:
    """The first bundled test digit from `start` on (wrapping) that the classifier labels as its own label: the
    "same style" view opens on a digit whose label the classifier gets, not on one of its misses (test digit 6, a
    3 it reads as a 5); `start` when the classifier is missing."""
    images, labels = test_digits()
    with torch.no_grad():
        predicted, _ = store.use(label_judge(), lambda judge: judge.predict(images).tolist())
    if predicted is None:
        return start
    order = [(start + i) % len(labels) for i in range(len(labels))]
    return next((i for i in order if predicted[i] == labels[i]), start)


@torch.no_grad()
def complete_quadrants(store: ModelStore, sketch, upload, example, num_given: int, num_samples: int, seed: int):
    """Keep `num_given` quadrants (1 = bottom-left, 2 = left half, 3 = all but bottom-right) and complete the rest.
    Returns (truth | what the model sees, structured-CVAE completions, deterministic baseline or None, a note)."""
    num_given, num_samples = int(num_given), int(num_samples)
    if not 1 <= num_samples <= MAX_SAMPLES:
        raise ValueError(f"number of completions must be 1-{MAX_SAMPLES}")
    given = mask(num_given)  # validates num_given
    x, _, source = read_digit(sketch, upload, example)
    completer, baseline_name = completion_pair()
    model = store.get(completer)
    completions = model.complete(x, num_given, num_samples, generator=generator(seed))[:, 0]
    shown = torch.where(given, x[0], torch.full_like(x[0], 0.5))  # hidden quadrants grey
    note = f"Completing {source} from {num_given} quadrant{'s' if num_given > 1 else ''}."
    # The baseline is optional: the CVAE completions stand on their own.
    baseline, why_not = store.use(baseline_name, lambda m: to_image(m.complete(x, num_given, 1)[0]))
    note = f"{note} {why_not}" if why_not else note
    return to_image(torch.stack([x[0], shown]), nrow=2), to_image(completions, nrow=min(8, num_samples)), baseline, note


def build(store: ModelStore) -> None:
    import gradio as gr

    ex = example_choices()
    sampler = conditional_sampler()
    intro(INTRO, store, [sampler, label_judge(), *completion_pair()])
    with gr.Row():
        with gr.Column(scale=1):
            digit = gr.Slider(0, 9, value=3, step=1, label="Digit")
            style = gr.Number(0, precision=0, label="Style seed")
            num = gr.Slider(1, MAX_SAMPLES, value=16, step=1, label="Number of samples")
            btn = gr.Button("Generate", variant="primary")
        out = gr.Image(first_visit(cvae_samples, store, 3, 0, 16), type="pil", label=f"{store.title(sampler)} samples",
                       elem_id="cvae-out", format="png")
    btn.click(bind(cvae_samples, store), [digit, style, num], out, api_name="cvae_samples")

    gr.Markdown("#### Same style, all ten digits")
    with gr.Row():
        with gr.Column(scale=1):
            start = first_recognised(store, 6)
            source = digit_inputs("Your digit", start)
            label = gr.Dropdown(LABEL_CHOICES, value=AUTO, label="Label used to encode it")
            style_btn = gr.Button("Decode as every digit", variant="primary")
        with gr.Column(scale=2):
            seen0, row0, note0 = first_visit(same_style, store, None, None, ex[start], AUTO, outputs=3)
            seen = gr.Image(seen0, type="pil", label="Preprocessed input", format="png", height=140)
            row = gr.Image(row0, type="pil", label="Its style, digits 0-9", elem_id="style-out", format="png")
            note = gr.Markdown(note0)
    style_btn.click(bind(same_style, store), [*source, label], [seen, row, note], api_name="same_style")
    digit_examples([source[2], label], [[ex[start], AUTO], [ex[13], AUTO], [ex[16], "3"]],
                   lambda x, lab: bind(same_style, store)(None, None, x, lab), [seen, row, note])

    gr.Markdown("#### Quadrant completion")
    with gr.Row():
        with gr.Column(scale=1):
            q_source = digit_inputs("Digit to complete", 10)
            given = gr.Radio([1, 2, 3], value=2, label="Quadrants kept (1: bottom-left, 2: left half, 3: all but "
                                                        "bottom-right)")
            q_num = gr.Slider(1, MAX_SAMPLES, value=8, step=1, label="Completions")
            q_seed = gr.Number(0, precision=0, label="Seed")
            q_btn = gr.Button("Complete", variant="primary")
        with gr.Column(scale=2):
            truth0, comp0, base0, q_note0 = first_visit(complete_quadrants, store, None, None, ex[10], 2, 8, 0,
                                                        outputs=4)
            truth = gr.Image(truth0, type="pil", label="Truth | what the model sees", format="png", height=140)
            completions = gr.Image(comp0, type="pil", label="Structured CVAE completions", elem_id="complete-out",
                                   format="png")
            baseline = gr.Image(base0, type="pil", label="Deterministic baseline", format="png", height=140)
            q_note = gr.Markdown(q_note0)
    q_btn.click(bind(complete_quadrants, store), [*q_source, given, q_num, q_seed],
                [truth, completions, baseline, q_note], api_name="complete_quadrants")
    digit_examples([q_source[2], given], [[ex[10], 2], [ex[4], 1], [ex[15], 3]],
                   lambda x, g: bind(complete_quadrants, store)(None, None, x, g, 8, 0),
                   [truth, completions, baseline, q_note])

"""Tab 3, Denoising: corrupt a digit, clean it with the denoising VAE and with a plain VAE, compare PSNR.
The two are the denoiser the models declare and its declared `baseline` (demo/weights.py: denoising_pair)."""

from __future__ import annotations

import torch

from vae_models import checkpoints
from vae_models.corruption import CORRUPTIONS, corrupt
from vae_models.metrics import psnr

from .common import (bind, digit_examples, digit_inputs, example_choices, first_visit, generator, intro,
                     read_digit, to_image)
from .weights import ModelStore, denoising_pair

INTRO = """### Denoising
The denoising VAE (Im et al. 2017) is trained to reconstruct clean digits from corrupted ones, so its encoder learns
to ignore the corruption; the plain VAE only ever saw clean digits. Raise the noise level and watch the PSNR (higher
is closer to the clean digit): the DVAE should degrade more gracefully. Any picture works — it is first turned into
MNIST format (shown as "clean")."""


@torch.no_grad()
def denoise(store: ModelStore, sketch, upload, example, kind: str, level: float, seed: int):
    """Returns (clean (preprocessed) input, corrupted, the denoiser's output (DVAE) or None, its baseline's (plain
    VAE) or None, PSNR table)."""
    x, _, source = read_digit(sketch, upload, example)
    noisy = corrupt(x, kind, float(level), generator=generator(seed))
    rows = [f"| corrupted input | {psnr(noisy, x):.2f} |"]
    outputs = []
    for name, title in titles():  # the denoiser against the model it extends
        out, why_not = store.use(name, lambda model: model.reconstruct(noisy))
        outputs.append(None if out is None else to_image(out))
        rows.append(f"| {title} | unavailable: {why_not} |" if out is None else f"| {title} | {psnr(out, x):.2f} |")
    if all(out is None for out in outputs):
        denoiser, baseline = (store.title(name) for name in denoising_pair())
        raise ValueError(f"neither the {denoiser} nor the {baseline} is available, so there is nothing to denoise with")
    table = f"PSNR against the clean input, {source}, dB\n\n| image | PSNR |\n|---|---|\n" + "\n".join(rows)
    return to_image(x), to_image(noisy), *outputs, table


def titles() -> list[tuple[str, str]]:
    """(checkpoint, its title in the PSNR table) for the denoiser and its baseline: "DVAE", "plain VAE" (the
    baseline saw only clean digits)."""
    denoiser, baseline = denoising_pair()
    return [(denoiser, checkpoints()[denoiser][0].title), (baseline, f"plain {checkpoints()[baseline][0].title}")]


def build(store: ModelStore) -> None:
    import gradio as gr

    ex = example_choices()
    (denoiser, denoiser_title), (baseline, baseline_title) = titles()
    intro(INTRO, store, [denoiser, baseline])
    with gr.Row():
        with gr.Column(scale=1, elem_id="denoising-panel"):
            source = digit_inputs("Digit to corrupt", 4)
            kind = gr.Dropdown(list(CORRUPTIONS), value="salt_and_pepper", label="Corruption")
            level = gr.Slider(0.0, 1.0, value=0.3, step=0.05, label="Level (pixel share / noise std / block side)")
            seed = gr.Number(0, precision=0, label="Seed")
            btn = gr.Button("Corrupt and denoise", variant="primary")
        with gr.Column(scale=2):
            clean0, noisy0, denoised0, baseline0, table0 = first_visit(denoise, store, None, None, ex[4],
                                                                       "salt_and_pepper", 0.3, 0, outputs=5)
            with gr.Row():
                clean = gr.Image(clean0, type="pil", label="Clean (preprocessed)", format="png")
                noisy = gr.Image(noisy0, type="pil", label="Corrupted", elem_id="noisy-out", format="png")
            with gr.Row():
                denoised = gr.Image(denoised0, type="pil", label=f"{denoiser_title} output", elem_id="dvae-out",
                                    format="png")
                cleaned_by_baseline = gr.Image(baseline0, type="pil", label=f"{baseline_title[:1].upper()}"
                                               f"{baseline_title[1:]} output", format="png")
            table = gr.Markdown(table0)
    outputs = [clean, noisy, denoised, cleaned_by_baseline, table]
    btn.click(bind(denoise, store), [*source, kind, level, seed], outputs, api_name="denoise")
    digit_examples([source[2], kind, level],
                   [[ex[4], "salt_and_pepper", 0.3], [ex[12], "gaussian", 0.5], [ex[19], "block", 0.4]],
                   lambda x, k, lv: bind(denoise, store)(None, None, x, k, lv, 0), outputs)

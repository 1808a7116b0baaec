"""Tab 3, Denoising: corrupt a digit, clean it with the denoising VAE and with a plain VAE, compare PSNR."""

from __future__ import annotations

import torch

from vae_models.corruption import CORRUPTIONS, corrupt
from vae_models.metrics import psnr

from .common import bind, digit_inputs, generator, intro, read_digit, to_image
from .weights import ModelStore

INTRO = """### Denoising
The denoising VAE (Im et al. 2017) is trained to reconstruct clean digits from corrupted ones, so its encoder learns
to ignore the corruption; the plain VAE only ever saw clean digits. Raise the noise level and watch the PSNR (higher
is closer to the clean digit): the DVAE should degrade more gracefully. Any picture works — it is first turned into
MNIST format (shown as "clean")."""


@torch.no_grad()
def denoise(store: ModelStore, sketch, upload, example, kind: str, level: float, seed: int):
    """Returns (clean (preprocessed) input, corrupted, DVAE output or None, VAE output or None, PSNR table)."""
    x, _, source = read_digit(sketch, upload, example)
    noisy = corrupt(x, kind, float(level), generator=generator(seed))
    rows = [f"| corrupted input | {psnr(noisy, x):.2f} |"]
    outputs = {}
    for name, title in (("dvae", "DVAE"), ("vae", "plain VAE")):  # the denoiser against the model it extends
        out, why_not = store.use(name, lambda model: model.reconstruct(noisy))
        outputs[name] = None if out is None else to_image(out)
        rows.append(f"| {title} | unavailable: {why_not} |" if out is None else f"| {title} | {psnr(out, x):.2f} |")
    if outputs["dvae"] is None and outputs["vae"] is None:
        raise ValueError("neither the DVAE nor the VAE is available, so there is nothing to denoise with")
    table = f"PSNR against the clean input ({source}), dB\n\n| image | PSNR |\n|---|---|\n" + "\n".join(rows)
    return to_image(x), to_image(noisy), outputs["dvae"], outputs["vae"], table


def build(store: ModelStore) -> None:
    import gradio as gr

    intro(INTRO, store, ["dvae", "vae"])
    with gr.Row():
        with gr.Column(scale=1, elem_id="denoising-panel"):
            source = digit_inputs("Digit to corrupt", 4)
            kind = gr.Dropdown(list(CORRUPTIONS), value="salt_and_pepper", label="Corruption")
            level = gr.Slider(0.0, 1.0, value=0.3, step=0.05, label="Level (pixel share / noise std / block side)")
            seed = gr.Number(0, precision=0, label="Seed")
            btn = gr.Button("Corrupt and denoise", variant="primary")
        with gr.Column(scale=2):
            with gr.Row():
                clean = gr.Image(type="pil", label="Clean (preprocessed)", format="png")
                noisy = gr.Image(type="pil", label="Corrupted", elem_id="noisy-out", format="png")
            with gr.Row():
                dvae = gr.Image(type="pil", label="DVAE output", elem_id="dvae-out", format="png")
                vae = gr.Image(type="pil", label="Plain VAE output", format="png")
            table = gr.Markdown()
    btn.click(bind(denoise, store), [*source, kind, level, seed], [clean, noisy, dvae, vae, table], api_name="denoise")

"""Images that are not handwritten digits, by kind, for measuring the likelihood meter (benchmarks/meter.py).

Every image is made as a visitor would make it: drawn on the app's 280 px canvas (black ink on white) or uploaded as a
picture, then put through the app's MNIST-style preprocessing (`vae_models.preprocess.to_mnist`).

The kinds are split in two, and the split is the point (issue 21, item 6):
- `TUNING_KINDS` were looked at while the meter's rule was chosen (the letters and strokes of benchmarks/typicality.py,
  and one system font's capitals);
- `HELD_OUT_KINDS` were not: neither the rule, nor its references, nor any test uses them. They were scored once,
  after the rule was fixed, and the figures in docs/meter.md are that one scoring.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .typicality import blank_ish, canvas_image, dots, letter, scribble

FONTS = Path("/usr/share/fonts/truetype")
FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist


def _font(name: str, size: int = 200) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONTS / name), size)


def _text(text: str, font: ImageFont.FreeTypeFont) -> np.ndarray:
    return canvas_image(lambda d: d.text((140, 140), text, fill=0, font=font, anchor="mm"))


# ------------------------------------------------------------------------------------------- tuning kinds


def default_font_capitals() -> dict[str, np.ndarray]:
    return {f"capital {c} (Pillow's font)": letter(c) for c in "ABCDEFHKLMNPRTUWX"}


def dejavu_capitals() -> dict[str, np.ndarray]:
    font = _font("dejavu/DejaVuSans-Bold.ttf")
    return {f"capital {c} (DejaVu Sans Bold)": _text(c, font) for c in "ABCDEFHKLMNPRTUWX"}


def scribbles() -> dict[str, np.ndarray]:
    return {f"scribble {s}": scribble(s) for s in range(20)}


def strokes() -> dict[str, np.ndarray]:
    return {**blank_ish(), **dots()}


# ------------------------------------------------------------------------------------------- held-out kinds


def fashion(count: int = 100) -> dict[str, np.ndarray]:
    """The first `count` Fashion-MNIST test images, as uploaded pictures (light item on black)."""
    with gzip.open(FASHION / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    return {f"Fashion-MNIST test {i}": images[i] for i in range(count)}


def serif_lowercase() -> dict[str, np.ndarray]:
    font = _font("liberation/LiberationSerif-Regular.ttf", 240)
    return {f"lowercase {c} (Liberation Serif)": _text(c, font) for c in "abdefghkmnpqrtwxy"}


def symbols() -> dict[str, np.ndarray]:
    font = _font("dejavu/DejaVuSans.ttf")
    return {f"symbol {c} (DejaVu Sans)": _text(c, font) for c in "#%&@*+=?!<>{}[]€£¥§¶©®±÷×"}


def shapes(count: int = 30) -> dict[str, np.ndarray]:
    """Drawn geometric figures: outlined and filled boxes, triangles, stars, crosses and grids of random size."""
    rng = np.random.default_rng(2026)
    out = {}
    for i in range(count):
        kind = ("box", "filled box", "triangle", "star", "cross", "grid")[i % 6]
        cx, cy, r = rng.uniform(110, 170), rng.uniform(110, 170), rng.uniform(60, 110)
        width = int(rng.integers(10, 22))

        def draw(d: ImageDraw.ImageDraw, kind=kind, cx=cx, cy=cy, r=r, width=width):
            if kind == "box":
                d.rectangle((cx - r, cy - r * 0.8, cx + r, cy + r * 0.8), outline=0, width=width)
            elif kind == "filled box":
                d.rectangle((cx - r, cy - r * 0.6, cx + r, cy + r * 0.6), fill=0)
            elif kind == "triangle":
                d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], outline=0, width=width)
            elif kind == "star":
                angles = np.pi / 2 + np.arange(10) * np.pi / 5
                radii = np.where(np.arange(10) % 2 == 0, r, r * 0.4)
                d.polygon([(cx + q * np.cos(a), cy - q * np.sin(a)) for q, a in zip(radii, angles)], fill=0)
            elif kind == "cross":
                d.line([(cx - r, cy - r), (cx + r, cy + r)], fill=0, width=width)
                d.line([(cx - r, cy + r), (cx + r, cy - r)], fill=0, width=width)
            else:
                for k in range(4):
                    t = -r + k * 2 * r / 3
                    d.line([(cx + t, cy - r), (cx + t, cy + r)], fill=0, width=width // 2)
                    d.line([(cx - r, cy + t), (cx + r, cy + t)], fill=0, width=width // 2)

        out[f"shape {i} ({kind})"] = canvas_image(draw)
    return out


def noise(count: int = 20) -> dict[str, np.ndarray]:
    """Uploaded noise pictures: speckle of random density, and smoothed blobs."""
    rng = np.random.default_rng(7)
    out = {}
    for i in range(count):
        if i % 2 == 0:
            image = (rng.random((56, 56)) < rng.uniform(0.05, 0.5)).astype(np.uint8) * 255
        else:
            field = Image.fromarray((rng.random((7, 7)) * 255).astype(np.uint8)).resize((56, 56), Image.BICUBIC)
            image = (np.asarray(field) > 150).astype(np.uint8) * 255
        out[f"noise {i}"] = image
    return out


TUNING_KINDS = {"capitals, Pillow's font": default_font_capitals, "capitals, DejaVu Sans Bold": dejavu_capitals,
                "scribbles": scribbles, "strokes, specks and dots": strokes}
HELD_OUT_KINDS = {"Fashion-MNIST": fashion, "lowercase, Liberation Serif": serif_lowercase,
                  "symbols, DejaVu Sans": symbols, "shapes": shapes, "noise": noise}

__all__ = ["HELD_OUT_KINDS", "TUNING_KINDS"]

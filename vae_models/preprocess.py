"""Turn any picture of a digit into an MNIST-format image, the way MNIST itself was made.

LeCun et al. (the MNIST page, "THE MNIST DATABASE of handwritten digits"): the NIST digits were size-normalised to
fit a 20x20 box preserving their aspect ratio (anti-aliased, hence grey levels), then centred in a 28x28 field by
their centre of mass. `to_mnist` repeats that for a user's upload or drawing:

    decode (safely) -> grayscale -> white ink on black (inverted if dark-on-light) -> crop to the ink
    -> scale the longer side to 20 px -> place in 28x28 with the centre of mass at the centre

Anything that is not a usable image raises `ImageInputError` with a message meant for the user. Decoding is
guarded against decompression bombs: the pixel count in the header is checked before any pixel is decoded.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # refuse to decode more than this (a 10000x10000 image is 100 M pixels, ~300 MB as RGB)
# Larger files are refused before they are opened. The app's upload limit too (demo/serving.py passes it to
# gradio's launch(max_file_size=...)), so what the server accepts is what this module reads.
MAX_FILE_BYTES = 25 * 1024 * 1024
WORKING_SIDE = 512  # big images are shrunk to this longer side first: 20 px is the target, detail beyond is noise
BOX, SIDE = 20, 28  # the digit's box and the field, as in MNIST
INK_THRESHOLD = 0.15  # share of the full ink range above which a pixel counts as part of the digit when cropping
MIN_CONTRAST = 0.1  # a picture whose ink and background differ by less than this is "blank"


class ImageInputError(ValueError):
    """The input cannot be turned into a digit image; the message says why, for the user."""


def load_image(source) -> Image.Image:
    """Open a path, bytes, PIL image or numpy array as a fully decoded PIL image, or raise ImageInputError."""
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        if source.ndim not in (2, 3) or source.size == 0 or (source.ndim == 3 and source.shape[2] not in (1, 3, 4)):
            raise ImageInputError(f"an image array must be (H, W) or (H, W, 1|3|4), got shape {source.shape}")
        if source.shape[0] * source.shape[1] > MAX_PIXELS:
            raise ImageInputError(_too_big(source.shape[1], source.shape[0]))
        array = source[..., 0] if source.ndim == 3 and source.shape[2] == 1 else source
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        elif array.dtype.kind == "f":
            array = np.nan_to_num(array.astype(np.float64))
            array = np.clip(array * (255.0 if array.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        elif array.dtype == np.uint16 and array.ndim == 3:  # PIL has no 16-bit colour mode: 8 bits per channel
            array = (array.astype(np.float64) / 257).round().astype(np.uint8)
        elif array.dtype not in (np.uint8, np.uint16):
            raise ImageInputError(f"unsupported image array type {array.dtype}")
        image = Image.fromarray(array)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) > MAX_FILE_BYTES:
            raise ImageInputError(_too_large("the file", len(source)))
        image = _open(io.BytesIO(bytes(source)), "the upload")
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageInputError(f"no such file: {path.name}")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ImageInputError(_too_large(path.name, path.stat().st_size))
        image = _open(path, path.name)
    else:
        raise ImageInputError(f"expected an image file, got {type(source).__name__}")
    if image.width < 1 or image.height < 1:
        raise ImageInputError("the image is empty (0 pixels)")
    return image


def _too_large(name: str, size: int) -> str:
    return f"{name} is larger than the {MAX_FILE_BYTES // 2**20} MB limit ({size:,} bytes; at most {MAX_FILE_BYTES:,})"


def _too_big(width: int, height: int) -> str:
    return (f"the image is {width}x{height} = {width * height / 1e6:.0f} megapixels; the limit is "
            f"{MAX_PIXELS / 1e6:.0f} megapixels. Please upload a smaller picture of the digit.")


def _open(fp, name: str) -> Image.Image:
    """Open and decode, checking the header's size before decoding (Image.open reads only the header)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(fp)
            if image.width * image.height > MAX_PIXELS:
                raise ImageInputError(_too_big(image.width, image.height))
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)  # animated GIF/APNG/TIFF: the first frame
            # Let JPEG decode at reduced size right away (no-op for other formats).
            image.draft("L", (WORKING_SIDE, WORKING_SIDE))
            image.load()
    except ImageInputError:
        raise
    except UnidentifiedImageError:
        raise ImageInputError(f"{name} is not an image that can be read (use PNG, JPEG, GIF, BMP, TIFF or WebP)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageInputError(f"{name} is too large to decode safely (limit {MAX_PIXELS / 1e6:.0f} megapixels)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # PIL's errors for truncated or corrupt data
        raise ImageInputError(f"{name} is truncated or corrupt and cannot be decoded ({exc})") from None
    return image


def to_grayscale(image: Image.Image) -> np.ndarray:
    """float32 (H, W) in [0, 1] for any PIL mode (8/16/32-bit, palette, with or without alpha).

    Transparent pixels are flattened onto a background that contrasts with the visible content, so a digit drawn
    in any colour on a transparent canvas stays visible (over white, white strokes would vanish)."""
    # A 16-bit picture's full range is 65535 whatever its values; decided from the mode before the shrink below
    # turns it into 32-bit "I" (which declares no range, so there the values decide: 8-bit unless they exceed 255).
    sixteen_bit = image.mode.startswith("I;16")  # I;16, I;16B, I;16L and native-order I;16N
    if max(image.size) > WORKING_SIDE:  # shrink first: every later step is then cheap whatever the upload size
        image = image.copy()
        if sixteen_bit:
            image = image.convert("I")
        image.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.BOX if image.mode in ("I", "F") else Image.LANCZOS)
    if sixteen_bit or image.mode in ("I", "F"):
        gray = np.asarray(image, dtype=np.float64)
        top = 65535.0 if sixteen_bit or gray.max() > 255 else 255.0
        gray = gray / top if image.mode != "F" or gray.max() > 1 else gray
        return np.clip(gray, 0, 1).astype(np.float32)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
    gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601 luma, as PIL's "L"
    if has_alpha:
        alpha = rgba[..., 3]
        if alpha.max() == 0:
            raise ImageInputError("the image is fully transparent: there is no digit in it")
        if alpha.min() < 1:
            content = float((gray * alpha).sum() / alpha.sum())
            background = 0.0 if content > 0.5 else 1.0
            gray = alpha * gray + (1 - alpha) * background
    return gray


def to_ink(gray: np.ndarray) -> np.ndarray:
    """White ink on black, stretched to [0, 1]. The background is the median of the border pixels: a light
    border means dark-on-light (paper, a white canvas) and the image is inverted, as MNIST digits are white."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    ink = 1.0 - gray if background > 0.5 else gray
    background = 1.0 - background if background > 0.5 else background
    contrast = float(ink.max()) - background
    if contrast < MIN_CONTRAST:
        tone = "white" if gray.mean() > 0.5 else "black" if gray.mean() < 0.1 else "a single colour"
        raise ImageInputError(f"the image is blank (all {tone}): draw or upload a digit")
    return np.clip((ink - background) / contrast, 0.0, 1.0).astype(np.float32)


def center_in_field(ink: np.ndarray) -> np.ndarray:
    """Crop to the ink, scale the longer side to 20 px (anti-aliased), centre of mass to the field's centre."""
    rows = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(Image.fromarray(crop, mode="F").resize((new_w, new_h), Image.LANCZOS), dtype=np.float32)
    small = np.clip(small, 0.0, 1.0)
    mass = small.sum()
    cy = (small.sum(axis=1) * np.arange(new_h)).sum() / mass
    cx = (small.sum(axis=0) * np.arange(new_w)).sum() / mass
    centre = SIDE / 2  # 14, as MNIST (measured: matches the test set better than the pixel-grid centre 13.5)
    top, left = int(round(centre - cy)), int(round(centre - cx))
    field = np.zeros((SIDE, SIDE), dtype=np.float32)
    # paste with clipping: a lopsided digit's centre of mass can push part of the box past the edge, as in MNIST
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + new_h, SIDE), min(left + new_w, SIDE)
    field[y0:y1, x0:x1] = small[y0 - top:y1 - top, x0 - left:x1 - left]
    return field


def to_mnist(source) -> torch.Tensor:
    """Any image (path, bytes, PIL image, numpy array) -> float tensor (1, 28, 28) in [0, 1], MNIST-style."""
    image = load_image(source)
    try:
        gray = to_grayscale(image)
    except ImageInputError:
        raise
    except (OSError, ValueError) as exc:  # a mode PIL cannot convert
        raise ImageInputError(f"unsupported image mode {image.mode!r}: {exc}") from None
    return torch.from_numpy(center_in_field(to_ink(gray))).unsqueeze(0)


def has_ink(source) -> bool:
    """True when the image contains something to read (used to tell an untouched drawing canvas from a digit)."""
    try:
        to_ink(to_grayscale(load_image(source)))
    except ImageInputError:
        return False
    return True


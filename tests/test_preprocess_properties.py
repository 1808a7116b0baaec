"""Property-based tests (hypothesis) of upload preprocessing, `vae_models.preprocess.to_mnist`: any image of any
size, mode, bit depth and container, or any bytes at all, either becomes a (1, 28, 28) float32 tensor in [0, 1] or
raises the one clear input error, ImageInputError; never another exception, never NaN.

Example counts are modest (the CI profile in conftest.py runs them derandomised, without a database, no deadline)."""

import io

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from vae_models.preprocess import ImageInputError, to_mnist

# PIL modes and the formats that can store them (None: handed over as a PIL image, no file at all).
MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "PA", "I;16", "I", "F", "CMYK", "YCbCr", "HSV", "RGBX", "La", "RGBa"]
FORMATS = [None, "PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"]


def content(kind: str, height: int, width: int, seed: int) -> np.ndarray:
    """float64 (H, W) in [0, 1]: a flat picture, noise, or a stroke on a background of either polarity."""
    rng = np.random.default_rng(seed)
    if kind == "flat":
        return np.full((height, width), rng.uniform())
    if kind == "noise":
        return rng.uniform(size=(height, width))
    background = float(rng.integers(0, 2))
    picture = np.full((height, width), background)
    top, left = rng.integers(0, height), rng.integers(0, width)
    picture[top:top + max(1, height // 3), left:left + max(1, width // 5)] = 1 - background
    return picture


def make_image(mode: str, values: np.ndarray, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        return Image.fromarray((values * rng.integers(1, 65536)).astype(np.uint16))
    if mode == "I":
        return Image.fromarray((values * rng.integers(-2**20, 2**20)).astype(np.int32), mode="I")
    if mode == "F":
        scale = float(rng.choice([1.0, 255.0, 1e6, -3.0]))
        return Image.fromarray((values * scale).astype(np.float32), mode="F")
    grey = Image.fromarray((values * 255).astype(np.uint8))
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):  # random transparency, sometimes fully transparent
        alpha = Image.fromarray((rng.uniform(size=values.shape) < rng.uniform()).astype(np.uint8) * 255)
        image = grey.convert("RGBA")
        image.putalpha(alpha)
        return image.convert(mode)
    return grey.convert(mode)


def encode(image: Image.Image, fmt: str | None):
    if fmt is None:
        return image
    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt)
    except (OSError, ValueError, KeyError):  # this format cannot store this mode: hand over the image itself
        return image
    return buffer.getvalue()


def check(source) -> None:
    """The property: a valid MNIST-format tensor, or ImageInputError."""
    try:
        out = to_mnist(source)
    except ImageInputError as exc:
        assert str(exc), "the error must say what is wrong"
        return
    assert isinstance(out, torch.Tensor) and out.shape == (1, 28, 28) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert out.max() > 0  # something was found, or it should have been "blank"


sizes = st.integers(min_value=1, max_value=72)


@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(MODES), fmt=st.sampled_from(FORMATS), height=sizes, width=sizes,
       kind=st.sampled_from(["flat", "noise", "stroke"]), seed=st.integers(0, 2**32 - 1))
@example(mode="L", fmt="PNG", height=900, width=40, kind="stroke", seed=1)  # above the working size: shrunk first
@example(mode="I;16", fmt="PNG", height=600, width=600, kind="stroke", seed=2)
@example(mode="F", fmt="TIFF", height=30, width=30, kind="stroke", seed=3)
@example(mode="RGBA", fmt="PNG", height=20, width=20, kind="stroke", seed=4)
def test_any_image_becomes_a_digit_or_a_clear_error(mode, fmt, height, width, kind, seed):
    check(encode(make_image(mode, content(kind, height, width, seed), seed), fmt))


DTYPES = [np.uint8, np.uint16, np.float32, np.float64, np.bool_, np.int32, np.int64, np.int8, np.complex64]


@settings(max_examples=80)
@given(dtype=st.sampled_from(DTYPES), height=st.integers(0, 40), width=st.integers(0, 40),
       channels=st.sampled_from([None, 1, 2, 3, 4, 5]), kind=st.sampled_from(["flat", "noise", "stroke"]),
       scale=st.sampled_from([1.0, 255.0, 65535.0, -1.0, 1e9, float("nan"), float("inf")]), seed=st.integers(0, 2**32 - 1))
def test_any_array_becomes_a_digit_or_a_clear_error(dtype, height, width, channels, kind, scale, seed):
    values = content(kind, max(height, 1), max(width, 1), seed)[:height, :width]
    if channels is not None:
        values = np.repeat(values[..., None], channels, axis=2)
    with np.errstate(invalid="ignore", over="ignore"):
        array = (values * scale).astype(dtype)
    check(array)


@pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")  # PIL notes the garbage; we raise
@settings(max_examples=80)
@given(data=st.binary(max_size=2048), cut=st.floats(0, 1), fmt=st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF"]))
def test_any_bytes_or_truncated_file_become_a_digit_or_a_clear_error(data, cut, fmt):
    check(data)
    buffer = io.BytesIO()
    Image.fromarray((content("stroke", 32, 32, len(data)) * 255).astype(np.uint8)).save(buffer, fmt)
    whole = buffer.getvalue()
    check(whole[:int(cut * len(whole))])  # a file cut anywhere, header included
    check(whole[:16] + data)  # a valid header followed by garbage

"""`vae_models.preprocess.to_grayscale`, value for value: every bit depth is scaled by its own full range into
[0, 1] (16-bit by 65535, 8-bit values stored in 32-bit integers by 255, floats already in [0, 1] left alone), the
result is float32, transparency is flattened for every mode with alpha, and big pictures are shrunk to the 512 px
working side first: 16/32-bit and float pictures by exact block means, 8-bit ones with the Lanczos filter."""

import numpy as np
import pytest
from PIL import Image

from vae_models.preprocess import WORKING_SIDE, ImageInputError, to_grayscale, to_mnist


def grey(image: Image.Image) -> np.ndarray:
    out = to_grayscale(image)
    assert out.dtype == np.float32
    return out


def row(values, mode: str) -> Image.Image:
    dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
    return Image.fromarray(np.array([values], dtype=dtype), mode=None if mode == "I;16" else mode)


def test_sixteen_bit_pictures_are_scaled_by_65535_whatever_their_values():
    np.testing.assert_allclose(grey(row([0, 32768, 65535], "I;16")), [[0, 32768 / 65535, 1]], rtol=1e-6)
    np.testing.assert_allclose(grey(row([0, 100, 200], "I;16")), [[0, 100 / 65535, 200 / 65535]], rtol=1e-6)
    at_working_side = np.tile(np.array([0, 100, 200], np.uint16), (1, WORKING_SIDE // 3 + 1))[:, :WORKING_SIDE]
    np.testing.assert_allclose(grey(Image.fromarray(at_working_side)), at_working_side / 65535, rtol=1e-6)  # kept
    for mode, dtype in (("I;16B", ">u2"), ("I;16L", "<u2"), ("I;16N", "=u2")):
        image = Image.frombytes(mode, (3, 1), np.array([0, 300, 65535], dtype=dtype).tobytes())
        np.testing.assert_allclose(grey(image), [[0, 300 / 65535, 1]], rtol=1e-6)


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I;16N"])
def test_a_big_sixteen_bit_picture_with_small_values_is_still_scaled_by_65535(mode):
    """Shrinking turns a 16-bit picture into 32-bit "I" first; its scale must still come from its 16-bit mode, not
    from whether its values happen to exceed 255 (they do not here: all are 8-bit sized)."""
    stored = np.zeros((2 * WORKING_SIDE, 2 * WORKING_SIDE), np.uint16)
    stored[:, 2::4] = stored[:, 3::4] = 200  # stripes two pixels wide: the 2x2 block means are exactly 0 and 200
    byte_order = {"I;16B": ">u2", "I;16L": "<u2"}.get(mode, "=u2")
    gray = grey(Image.frombytes(mode, stored.shape[::-1], stored.astype(byte_order).tobytes()))
    assert gray.shape == (WORKING_SIDE, WORKING_SIDE)
    np.testing.assert_allclose(gray, block_means(stored) / 65535, rtol=1e-6)


def test_a_sixteen_bit_picture_gets_the_same_verdict_at_any_size():
    """Values up to 200 of 65535 are a near-black picture, too faint to hold a digit, whether it is bigger than the
    working side or not (scaled by 255, the big one would read as a dark digit on light paper)."""
    digit = np.full((1024, 1024), 200, np.uint16)
    digit[200:800, 450:560] = 0  # a dark stroke on a background of 200
    for picture in (digit[::4, ::4].copy(), digit):
        with pytest.raises(ImageInputError, match="blank"):
            to_mnist(Image.fromarray(picture))


def test_thirty_two_bit_integers_are_8_bit_values_unless_they_exceed_255():
    np.testing.assert_allclose(grey(row([0, 1, 128, 255], "I")), [[0, 1 / 255, 128 / 255, 1]], rtol=1e-6)
    np.testing.assert_allclose(grey(row([0, 256], "I")), [[0, 256 / 65535]], rtol=1e-6)
    np.testing.assert_allclose(grey(row([0, 1000, 70000], "I")), [[0, 1000 / 65535, 1]], rtol=1e-6)  # clipped


def test_float_pictures_in_the_unit_interval_are_kept_and_others_scaled_by_255():
    np.testing.assert_allclose(grey(row([0.0, 0.5, 1.0], "F")), [[0, 0.5, 1]], rtol=1e-6)
    np.testing.assert_allclose(grey(row([-0.5, 0.25, 1.5], "F")), [[0, 0.25 / 255, 1.5 / 255]], rtol=1e-6)
    np.testing.assert_allclose(grey(row([0.0, 127.5, 255.0], "F")), [[0, 0.5, 1]], rtol=1e-6)
    np.testing.assert_allclose(grey(row([0.0, 300.0], "F")), [[0, 300 / 65535]], rtol=1e-6)  # beyond 8 bits: 16


def test_transparency_is_flattened_in_every_mode_with_alpha():
    """A black digit on a fully transparent black canvas: only the alpha channel tells digit from background."""
    for mode in ("RGBA", "LA", "PA", "RGBa"):
        values = np.zeros((28, 28, 4), np.uint8)
        values[6:22, 12:16, 3] = 255  # opaque black stroke; the rest transparent (and black underneath)
        image = Image.fromarray(values, "RGBA").convert(mode)
        gray = grey(image)
        # the stroke is dark, so the background becomes white: the picture reads as dark ink on paper
        assert gray[0, 0] == 1.0 and gray[10, 13] == 0.0, mode


def big_ramp(side: int = 2 * WORKING_SIDE) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(size=(side, side))


def block_means(values: np.ndarray) -> np.ndarray:
    h, w = values.shape
    return values.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I", "F"])
def test_big_deep_pictures_are_shrunk_by_exact_block_means(mode):
    values = big_ramp()
    if mode == "F":
        image = Image.fromarray(values.astype(np.float32), mode="F")
        expected = block_means(values)
    elif mode == "I":
        stored = np.round(values * 255).astype(np.int32)
        image, expected = Image.fromarray(stored, mode="I"), block_means(stored) / 255
    else:
        stored = np.round(values * 65535).astype(np.uint16)
        image = Image.frombytes(mode, stored.shape[::-1], stored.astype(">u2" if mode == "I;16B" else "<u2").tobytes())
        expected = block_means(stored) / 65535
    gray = grey(image)
    assert gray.shape == (WORKING_SIDE, WORKING_SIDE)
    np.testing.assert_allclose(gray, expected, atol={"I": 1.01 / 255, "F": 1e-6}.get(mode, 1.01 / 65535))  # integers: means rounded


def test_big_8_bit_pictures_are_shrunk_with_the_lanczos_filter():
    image = Image.fromarray(np.round(big_ramp(3 * WORKING_SIDE)[:, :WORKING_SIDE * 2] * 255).astype(np.uint8))
    expected = image.resize((WORKING_SIDE * 2 // 3, WORKING_SIDE), Image.LANCZOS)
    np.testing.assert_allclose(grey(image), np.asarray(expected, np.float32) / 255, atol=1e-6)


def test_a_big_transparent_canvas_keeps_its_drawing():
    values = np.zeros((1024, 1024, 4), np.uint8)
    values[200:800, 450:560, 3] = 255  # black stroke on transparent black
    small = to_mnist(Image.fromarray(values[::4, ::4].copy(), "RGBA"))
    big = to_mnist(Image.fromarray(values, "RGBA"))
    assert (big - small).abs().mean() < 0.1 and big.max() == 1.0

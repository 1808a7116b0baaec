"""`vae_models.preprocess.to_ink` and the colour/alpha half of `to_grayscale`, value for value: ITU-R 601 luma,
transparency flattened onto the background that contrasts with the visible content, white ink on black stretched
to [0, 1] (the background is the median border pixel; light borders mean dark ink, which is inverted), and the
"blank" refusal with the tone the user sees."""

import numpy as np
import pytest
from PIL import Image

from vae_models.preprocess import MIN_CONTRAST, ImageInputError, to_grayscale, to_ink


def grey(image: Image.Image) -> np.ndarray:
    out = to_grayscale(image)
    assert out.dtype == np.float32
    return out


def test_8_bit_grey_and_colour_follow_itu_r_601_luma():
    np.testing.assert_allclose(grey(Image.fromarray(np.array([[0, 51, 255]], np.uint8))), [[0, 0.2, 1]], rtol=1e-6)
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], np.uint8)
    np.testing.assert_allclose(grey(Image.fromarray(rgb)), [[0.299, 0.587, 0.114, 1.0]], rtol=1e-5)


def canvas(stroke: tuple[int, ...], under: tuple[int, ...]) -> Image.Image:
    """A 20 x 20 RGBA picture: an opaque 4 x 12 stroke; everywhere else transparent, of colour `under`."""
    values = np.zeros((20, 20, 4), np.uint8)
    values[..., :3] = under
    values[4:16, 8:12, :3] = stroke
    values[4:16, 8:12, 3] = 255
    return Image.fromarray(values, "RGBA")


@pytest.mark.parametrize("under", [(0, 0, 0), (255, 255, 255), (128, 128, 128)])
def test_transparency_becomes_the_background_that_contrasts_with_the_drawing(under):
    dark = grey(canvas((77, 77, 77), under))  # a dark grey stroke (0.302): on white paper
    assert dark[0, 0] == 1.0 and dark[10, 10] == pytest.approx(77 / 255, rel=1e-6)
    light = grey(canvas((255, 255, 255), under))  # a white stroke: on black
    assert light[0, 0] == 0.0 and light[10, 10] == 1.0


def test_half_transparent_pixels_are_blended_with_the_background():
    values = np.zeros((2, 2, 4), np.uint8)
    values[..., 3] = [[255, 255], [51, 0]]  # opaque black, opaque black, 20 % black, transparent
    gray = grey(Image.fromarray(values, "RGBA"))  # dark content: white background
    np.testing.assert_allclose(gray, [[0, 0], [0.8, 1]], rtol=1e-6)


def test_the_content_that_decides_the_background_is_the_alpha_weighted_mean():
    values = np.zeros((2, 2, 4), np.uint8)
    values[0, :, :3] = [[51] * 3, [204] * 3]  # 0.2 and 0.8, opaque: a mean of exactly 0.5 is not "light"
    values[0, :, 3] = 255
    gray = grey(Image.fromarray(values, "RGBA"))
    np.testing.assert_allclose(gray[1], [1, 1])


def test_a_transparency_key_counts_as_alpha():
    image = Image.fromarray(np.full((8, 8), 128, np.uint8))
    image.paste(0, (2, 2, 6, 6))  # black digit on grey, the grey declared transparent (as GIF does)
    image.info["transparency"] = 128
    gray = grey(image)
    assert gray[0, 0] == 1.0 and gray[3, 3] == 0.0


def test_ink_is_stretched_from_the_background_to_the_brightest_pixel():
    light_on_dark = np.full((5, 5), 0.2)
    light_on_dark[2, 2], light_on_dark[2, 3], light_on_dark[1, 1] = 1.0, 0.6, 0.0  # 0.0: darker than background
    np.testing.assert_allclose(to_ink(light_on_dark)[1:3, 1:4], [[0, 0, 0], [0, 1, 0.5]], atol=1e-7)
    dark_on_light = 1.0 - light_on_dark  # paper: inverted, the same ink
    np.testing.assert_allclose(to_ink(dark_on_light), to_ink(light_on_dark), atol=1e-6)
    assert to_ink(light_on_dark).dtype == np.float32


def test_a_mid_grey_border_is_not_inverted():
    gray = np.full((5, 5), 0.5)
    gray[2, 2] = 1.0  # white on mid grey: ink, with the grey as background
    ink = to_ink(gray)
    assert ink[2, 2] == 1.0 and ink[0, 0] == 0.0


def test_contrast_of_exactly_the_minimum_is_a_digit_and_less_is_blank():
    gray = np.zeros((5, 5))
    gray[2, 2] = MIN_CONTRAST
    assert to_ink(gray)[2, 2] == 1.0
    gray[2, 2] = MIN_CONTRAST * 0.99
    with pytest.raises(ImageInputError, match="blank"):
        to_ink(gray)


@pytest.mark.parametrize("value,tone", [(1.0, "white"), (0.6, "white"), (0.5, "a single colour"),
                                        (0.3, "a single colour"), (0.1, "a single colour"), (0.05, "black"),
                                        (0.0, "black")])
def test_a_blank_picture_is_named_by_its_tone(value, tone):
    with pytest.raises(ImageInputError) as err:
        to_ink(np.full((1, 1), value))
    assert str(err.value) == f"the image is blank (all {tone}): draw or upload a digit"

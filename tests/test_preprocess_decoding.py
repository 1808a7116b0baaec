"""How `vae_models.preprocess.load_image` decodes what users hand it, value for value: numpy arrays of every kind
become the 8-bit picture they describe, JPEGs decode at reduced size, animations give their first frame, and the
size limits refuse exactly what is over them, saying by how much."""

import io

import numpy as np
import pytest
from PIL import Image

from vae_models.preprocess import MAX_FILE_BYTES, MAX_PIXELS, ImageInputError, load_image, to_mnist


def pixels(source) -> np.ndarray:
    image = load_image(source)
    assert image.mode == "L"
    return np.asarray(image)


def test_boolean_arrays_become_black_and_white():
    mask = np.array([[False, True, True], [True, False, False]])
    np.testing.assert_array_equal(pixels(mask), mask.astype(np.uint8) * 255)


def test_float_arrays_in_the_unit_interval_are_scaled_to_255():
    np.testing.assert_array_equal(pixels(np.array([[0.0, 0.5, 1.0]], np.float32)), [[0, 127, 255]])
    np.testing.assert_array_equal(pixels(np.array([[0.0, -0.5, np.nan, 1.0]])), [[0, 0, 0, 255]])


def test_float_arrays_beyond_one_are_taken_as_0_to_255_and_clipped():
    np.testing.assert_array_equal(pixels(np.array([[0.0, 1.0, 2.0]])), [[0, 1, 2]])  # max 2: already 0..255
    np.testing.assert_array_equal(pixels(np.array([[-5.0, 2.0, 254.6, 300.0]])), [[0, 2, 254, 255]])


def test_single_channel_arrays_are_grey_images():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    np.testing.assert_array_equal(pixels(grey[..., None]), grey)
    np.testing.assert_array_equal(pixels(grey[..., None] / 255.0), grey)


def test_sixteen_bit_colour_keeps_the_top_eight_bits_rounded():
    rgb = np.array([[[0, 257 * 100, 65535], [257 * 7 + 128, 257 * 7 + 129, 300]]], dtype=np.uint16)
    image = load_image(rgb)
    assert image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), [[[0, 100, 255], [7, 8, 1]]])


def test_a_big_jpeg_is_decoded_at_reduced_size_in_grey():
    """JPEG's draft mode: decode at the smallest power-of-two scale that keeps the 512 px working side, as grey."""
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000), (200, 30, 30)).save(buffer, "JPEG")
    image = load_image(buffer.getvalue())
    assert image.size == (1000, 750) and image.mode == "L"


@pytest.mark.parametrize("fmt", ["GIF", "PNG"])
def test_an_animation_gives_its_first_frame(fmt):
    first, second = Image.new("L", (40, 40), 0), Image.new("L", (40, 40), 0)
    first.paste(255, (15, 5, 22, 35))  # a tall bar
    second.paste(255, (5, 15, 35, 22))  # a wide bar
    buffer = io.BytesIO()
    first.save(buffer, fmt, save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(buffer.getvalue())).n_frames == 2
    np.testing.assert_array_equal(to_mnist(buffer.getvalue()).numpy(), to_mnist(first).numpy())


def test_an_array_over_the_pixel_limit_is_refused_with_its_size():
    with pytest.raises(ImageInputError) as err:
        load_image(np.zeros((MAX_PIXELS // 1000 + 1, 1000), np.uint8))
    assert str(err.value) == ("the image is 1000x40001 = 40 megapixels; the limit is 40 megapixels. "
                              "Please upload a smaller picture of the digit.")
    assert load_image(np.zeros((MAX_PIXELS // 1000, 1000), np.uint8)).size == (1000, 40000)  # exactly the limit


def png(width: int, height: int) -> bytes:
    image = Image.new("1", (width, height), 0)
    image.paste(1, (0, 0, 100, 300))  # some ink, so that an accepted image is a digit
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_a_file_over_the_pixel_limit_is_refused_before_decoding_and_one_at_the_limit_is_read():
    with pytest.raises(ImageInputError) as err:
        load_image(png(7000, 7000))
    assert str(err.value).startswith("the image is 7000x7000 = 49 megapixels; the limit is 40 megapixels.")
    assert load_image(png(8000, MAX_PIXELS // 8000)).size == (8000, 5000)  # exactly MAX_PIXELS


def test_files_over_the_size_limit_are_refused_with_their_size(tmp_path):
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: no 25 MB written
    expected = f"is larger than the 25 MB limit ({MAX_FILE_BYTES + 1:,} bytes; at most {MAX_FILE_BYTES:,})"
    with pytest.raises(ImageInputError) as err:
        load_image(big)
    assert str(err.value) == f"big.png {expected}"
    with pytest.raises(ImageInputError) as err:
        load_image(bytes(MAX_FILE_BYTES + 1))
    assert str(err.value) == f"the file {expected}"


def test_a_file_of_exactly_the_size_limit_is_read(tmp_path):
    at_limit = tmp_path / "at_limit.png"
    with open(at_limit, "wb") as f:
        f.truncate(MAX_FILE_BYTES)
    for source, name in ((at_limit, "at_limit.png"), (bytes(MAX_FILE_BYTES), "the upload")):
        with pytest.raises(ImageInputError) as err:  # read, and found to be no image: not refused for its size
            load_image(source)
        assert str(err.value).startswith(f"{name} is not an image that can be read")


def test_an_image_without_pixels_is_refused_and_a_one_pixel_line_is_not():
    for size in ((0, 5), (5, 0), (0, 0)):
        with pytest.raises(ImageInputError, match=r"^the image is empty \(0 pixels\)$"):
            load_image(Image.new("L", size))
    for size in ((1, 5), (5, 1), (1, 1)):
        assert load_image(Image.new("L", size)).size == size

"""Exact geometry of `vae_models.preprocess.center_in_field`, MNIST's own normalisation (LeCun et al., the MNIST
page): the ink's bounding box, and nothing around it, is scaled so its longer side is 20 px, resampled with the
Lanczos filter, and placed in the 28x28 field with its centre of mass at the centre (14, 14)."""

import numpy as np
from PIL import Image

from vae_models.preprocess import BOX, SIDE, center_in_field


def ink_box(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows and columns of the field that hold any ink."""
    return np.flatnonzero(field.any(axis=1)), np.flatnonzero(field.any(axis=0))


def test_a_solid_box_is_scaled_to_exactly_twenty_pixels_on_its_longer_side():
    ink = np.zeros((60, 60), np.float32)
    ink[10:40, 20:32] = 1  # 30 x 12 pixels: scaled by 20/30 to 20 x 8, only the box is cropped
    field = center_in_field(ink)
    rows, cols = ink_box(field)
    assert len(rows) == BOX and len(cols) == 8
    assert field[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].min() == 1.0  # solid inside, nothing outside
    # centre of mass (9.5, 3.5) of the 20 x 8 box moved to (14, 14): top round(4.5) = 4, left round(10.5) = 10
    assert rows[0] == 4 and cols[0] == 10


def test_a_wide_box_is_scaled_by_its_width():
    ink = np.zeros((50, 50), np.float32)
    ink[20:26, 5:45] = 1  # 6 x 40: scaled by 20/40 to 3 x 20
    rows, cols = ink_box(center_in_field(ink))
    assert len(rows) == 3 and len(cols) == BOX


def test_a_one_pixel_line_stays_one_pixel_thin():
    """A 1 x 40 stroke scales to 0.5 x 20, which rounds to nothing: it keeps one row (one column when vertical)."""
    line = np.zeros((60, 60), np.float32)
    line[30, 5:45] = 1
    rows, cols = ink_box(center_in_field(line))
    assert list(rows) == [14] and len(cols) == BOX
    rows, cols = ink_box(center_in_field(np.ascontiguousarray(line.T)))
    assert list(cols) == [14] and len(rows) == BOX


def test_the_box_is_resampled_with_the_lanczos_filter():
    """A crop that spans 40 x 40 pixels (ink in its corners) and is symmetric: the field holds PIL's Lanczos
    resampling of it, whole, at the place its centre of mass puts it."""
    rng = np.random.default_rng(0)
    quarter = rng.uniform(size=(20, 20)).astype(np.float32)
    crop = np.block([[quarter, quarter[:, ::-1]], [quarter[::-1], quarter[::-1, ::-1]]])
    crop[[0, 0, -1, -1], [0, -1, 0, -1]] = 1.0  # the crop is the whole 40 x 40 square
    lanczos = np.clip(np.asarray(Image.fromarray(crop, mode="F").resize((BOX, BOX), Image.LANCZOS)), 0, 1)
    field = center_in_field(crop)
    placed = [(top, left) for top in range(SIDE - BOX + 1) for left in range(SIDE - BOX + 1)
              if np.allclose(field[top:top + BOX, left:left + BOX], lanczos, atol=1e-6)]
    assert placed in ([(4, 4)], [(5, 5)], [(4, 5)], [(5, 4)])  # centre of mass 9.5 moved to 14: 4.5 rounded
    assert np.isclose(field.sum(), lanczos.sum(), rtol=1e-6)  # and nothing else in the field


def lopsided() -> np.ndarray:
    """A 20 x 20 crop (no resampling: it is already 20 px) whose mass sits in its bottom rows: a 1 px bar down the
    left side and a solid 5-row foot. Centre of mass row (15 * 7 + 100 * 17) / 115 = 15.7: top = round(-1.7) = -2."""
    crop = np.zeros((20, 20), np.float32)
    crop[:, 0] = 1
    crop[15:, :] = 1
    return crop


def test_a_lopsided_digit_is_cut_at_the_edge_it_is_pushed_past():
    """As in MNIST, centring by the centre of mass may push part of the box out of the field; the rest is kept,
    pixel for pixel, on every side."""
    crop = lopsided()
    for flip in (lambda a: a, np.flipud, np.transpose, lambda a: np.rot90(a, -1)):  # foot: bottom, top, right, left
        ink = np.ascontiguousarray(flip(crop))
        field = center_in_field(np.pad(ink, 6))
        shifted = np.zeros((SIDE + 40, SIDE + 40), np.float32)  # the box where its centre of mass puts it, uncut
        rows, cols = np.nonzero(ink)
        cy, cx = (ink.sum(axis=1) * np.arange(20)).sum() / ink.sum(), (ink.sum(axis=0) * np.arange(20)).sum() / ink.sum()
        top, left = int(round(SIDE / 2 - cy)), int(round(SIDE / 2 - cx))
        assert min(top, left) < 0 or max(top, left) + 20 > SIDE  # the case under test: part of the box is pushed out
        shifted[20 + top:20 + top + 20, 20 + left:20 + left + 20] = ink
        np.testing.assert_array_equal(field, shifted[20:20 + SIDE, 20:20 + SIDE])

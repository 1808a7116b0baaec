"""The app's handlers called directly on tiny real checkpoints (each tab's outputs in their places, e.g. the
denoising tab's DVAE and VAE images and PSNRs each of its own model), image preprocessing, and graceful
degradation."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image


from demo import conditional, denoising, priors, sampling
from demo import common
from demo.common import example_choices, read_digit
from demo.weights import ModelStore, ModelUnavailable, hub_revisions, latent_2d_checkpoints
from vae_models.corruption import corrupt
from vae_models.metrics import psnr
from vae_models.preprocess import ImageInputError, to_mnist

from demo.tiny_weights import make_tiny_weights

ZERO, SIX = example_choices()[0], example_choices()[13]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ModelStore(make_tiny_weights(tmp_path_factory.mktemp("weights")), hub=False)


def arr(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def grid(cols: int, rows: int, scale: int = 4) -> tuple[int, int]:
    """Size of a grid of 28 px tiles with 2 px borders, enlarged by `scale`."""
    return scale * (cols * 30 + 2), scale * (rows * 30 + 2)


def differ(a, b) -> bool:
    return a.size == b.size and np.abs(arr(a) - arr(b)).mean() > 0.1


def test_bundled_test_digits_are_real_mnist():
    images, labels = common.test_digits()
    assert images.shape == (20, 1, 28, 28) and labels == [d for d in range(10) for _ in range(2)]
    assert 0 <= images.min() and images.max() == 1 and 0.05 < images.mean() < 0.3  # white ink on black


def test_sample_grid_depends_on_seed_model_and_temperature(store):
    a = sampling.sample_grid(store, "vae", 16, 1.0, 0)
    assert a.size == grid(4, 4) and a.mode == "L"
    assert arr(a).min() >= 0 and arr(a).max() <= 255 and arr(a).std() > 1
    assert not differ(a, sampling.sample_grid(store, "vae", 16, 1.0, 0))  # reproducible
    assert differ(a, sampling.sample_grid(store, "vae", 16, 1.0, 1))
    assert differ(a, sampling.sample_grid(store, "ae", 16, 1.0, 0))
    assert differ(a, sampling.sample_grid(store, "vae", 16, 2.5, 0))
    for name in sampling.sampler_checkpoints():
        assert sampling.sample_grid(store, name, 3, 1.0, 0).size == grid(2, 2)
    with pytest.raises(ValueError, match="number of samples"):
        sampling.sample_grid(store, "vae", 0, 1.0, 0)


def test_interpolation_ae_and_vae(store):
    pair, ae_row, vae_row, _, note = sampling.interpolate(store, None, None, ZERO, None, None, SIX, 7)
    assert ae_row.size == vae_row.size == grid(7, 1) and pair.size == grid(2, 1)
    assert differ(ae_row, vae_row) and "test digit 0" in note and "test digit 13" in note
    _, ae_other, *_ = sampling.interpolate(store, None, None, SIX, None, None, ZERO, 7)
    assert differ(ae_row, ae_other)  # a different path for different end points


def test_manifold_grid(store):
    image = sampling.manifold(store, "vae-2d", 6)
    assert image.size == grid(6, 6, scale=2)
    assert differ(image, sampling.manifold(store, "aae-2d-mixture", 6))


def test_cvae_samples_follow_digit_and_style(store):
    three = conditional.cvae_samples(store, 3, 0, 8)
    assert three.size == grid(8, 1)
    assert differ(three, conditional.cvae_samples(store, 7, 0, 8))
    assert differ(three, conditional.cvae_samples(store, 3, 1, 8))


def test_same_style_uses_label(store):
    seen, row, note = conditional.same_style(store, None, None, ZERO, "4")
    assert seen.size == grid(1, 1) and row.size == grid(10, 1) and "**4**" in note
    _, other, _ = conditional.same_style(store, None, None, SIX, "4")
    assert differ(row, other)
    _, _, auto = conditional.same_style(store, None, None, ZERO, conditional.AUTO)
    assert "predicted by the classifier" in auto


def test_quadrant_completion_keeps_given_pixels(store):
    truth, completions, baseline, note = conditional.complete_quadrants(store, None, None, ZERO, 2, 4, 0)
    assert completions.size == grid(4, 1) and baseline.size == grid(1, 1)
    tiles = arr(completions)[8:8 + 112]  # first row of tiles (scaled x4, 2 px border -> 8 px)
    digit = arr(truth)[8:8 + 112, 8:8 + 112]
    left = slice(0, 56)  # 2 quadrants = the left half, 14 px x4
    for k in range(4):
        tile = tiles[:, 8 + k * 120: 8 + k * 120 + 112]
        np.testing.assert_allclose(tile[:, left], digit[:, left], atol=1)
    one = conditional.complete_quadrants(store, None, None, ZERO, 1, 4, 0)[1]
    assert differ(completions, one)
    assert differ(completions, conditional.complete_quadrants(store, None, None, ZERO, 2, 4, 1)[1])
    with pytest.raises(ValueError, match="1, 2 or 3"):
        conditional.complete_quadrants(store, None, None, ZERO, 4, 4, 0)


def test_denoise_outputs_and_psnr(store):
    clean, noisy, dvae, vae, table = denoising.denoise(store, None, None, ZERO, "salt_and_pepper", 0.3, 0)
    assert clean.size == noisy.size == dvae.size == vae.size == grid(1, 1)
    assert differ(clean, noisy) and "DVAE" in table and "plain VAE" in table
    mild = denoising.denoise(store, None, None, ZERO, "salt_and_pepper", 0.05, 0)
    assert differ(noisy, mild[1])
    psnr_of = lambda t: float(t.split("| corrupted input | ")[1].split(" ")[0])  # noqa: E731
    assert psnr_of(mild[4]) > psnr_of(table)  # less noise, higher PSNR
    assert differ(noisy, denoising.denoise(store, None, None, ZERO, "block", 0.5, 0)[1])
    with pytest.raises(ValueError, match="corruption"):
        denoising.denoise(store, None, None, ZERO, "blur", 0.3, 0)


def test_prior_comparison(store):
    *scatters, note = priors.latent_scatter(store, 200, 0)
    assert len(scatters) == len(latent_2d_checkpoints()) == 7
    assert all(s.size == (priors.SIZE, priors.SIZE + 40) for s in scatters)
    assert differ(scatters[0], scatters[2])  # a Gaussian vs a mixture prior density
    samples = priors.prior_samples(store, 9, 0)
    assert len(samples) == 7 and differ(samples[0], samples[1])
    table = priors.metrics_table(store)
    assert ("| VAE: KL to N(0, I) | 133.50 ± 1.25 (BDMC gap 0.3100) | 135.25 (IS-NLL (k=5000)) | 12.50 | 0.0123 | "
            "not measured |") in table and table.count("not measured") == 1 + 5 * (len(latent_2d_checkpoints()) - 1)


def test_drawn_and_uploaded_digits_take_precedence(store, tmp_path):
    drawing = np.zeros((280, 280, 4), np.uint8)
    drawing[60:220, 130:150, 3] = 255  # a black vertical stroke on a transparent canvas (as Sketchpad sends it)
    x, label, source = read_digit({"background": None, "layers": [], "composite": drawing}, None, ZERO)
    assert source == "your drawing" and label is None and x.shape == (1, 1, 28, 28)
    rows, cols = (x[0, 0] > 0.5).any(1).nonzero()[:, 0], (x[0, 0] > 0.5).any(0).nonzero()[:, 0]
    assert rows.max() - rows.min() + 1 == 20 and 11 <= cols.min() and cols.max() <= 16  # a centred white "1"
    blank = {"background": None, "layers": [], "composite": np.zeros((280, 280, 4), np.uint8)}
    assert read_digit(blank, None, ZERO)[2] == "test digit 0 (a 0)"  # an untouched canvas is no input
    path = tmp_path / "digit.png"
    Image.fromarray(255 - (common.test_digits()[0][13, 0].numpy() * 255).astype(np.uint8)).resize((300, 300)).save(path)
    x, _, source = read_digit(drawing, str(path), ZERO)
    assert source == "your upload" and (x - common.test_digits()[0][13:14]).abs().mean() < 0.1


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def test_preprocess_reproduces_mnist_format(mnist_dir):
    from vae_models.data import load_mnist

    images, _ = load_mnist("test", data_dir=mnist_dir, download=False)
    digits = images[:50].float() / 255
    errors = [(to_mnist(d.numpy()) - d).abs().mean().item() for d in digits]
    assert np.mean(errors) < 0.07  # re-running MNIST's own normalisation on MNIST digits nearly changes nothing
    dark_on_light_rgb = Image.fromarray((255 - digits[0].numpy() * 255).astype(np.uint8)).convert("RGB")
    big = dark_on_light_rgb.resize((1000, 700))  # any size, aspect and polarity
    assert (to_mnist(big) - digits[0]).abs().mean() < 0.12
    sixteen = Image.fromarray((digits[0].numpy() * 65535).astype(np.uint16))
    assert (to_mnist(png_bytes(sixteen)) - to_mnist(digits[0].numpy())).abs().max() < 0.02


def test_preprocess_rejects_bad_images_clearly(tmp_path):
    good = png_bytes(Image.fromarray((common.test_digits()[0][0, 0].numpy() * 255).astype(np.uint8)))
    cases = {
        "not an image": (b"just some text, not a picture", "not an image"),
        "truncated": (good[: len(good) // 2], "truncated or corrupt"),
        "all white": (png_bytes(Image.new("L", (64, 64), 255)), "blank"),
        "all black": (png_bytes(Image.new("RGB", (64, 64), 0)), "blank"),
        "transparent": (png_bytes(Image.new("RGBA", (64, 64), (0, 0, 0, 0))), "transparent"),
        "huge": (png_bytes(Image.new("1", (10000, 10000), 0)), "megapixels"),
    }
    for name, (data, message) in cases.items():
        with pytest.raises(ImageInputError, match=message):
            to_mnist(data)
        path = tmp_path / f"{name.replace(' ', '_')}.png"
        path.write_bytes(data)
        with pytest.raises(ImageInputError, match=message):
            to_mnist(str(path))


def test_missing_and_mismatched_models_disable_only_their_features(tmp_path):
    root = make_tiny_weights(tmp_path, skip=("cvae", "socvae"))
    config = json.loads((root / "vae" / "config.json").read_text())
    config["hidden_dims"] = [64]  # weights no longer match the config
    (root / "vae" / "config.json").write_text(json.dumps(config))
    store = ModelStore(root, hub=False)
    with pytest.raises(ModelUnavailable, match="'cvae' is unavailable"):
        conditional.cvae_samples(store, 3, 0, 4)
    with pytest.raises(ModelUnavailable, match="'vae' is unavailable: CheckpointError"):
        sampling.sample_grid(store, "vae", 4, 1.0, 0)
    assert sampling.sample_grid(store, "ae", 4, 1.0, 0).size[0] > 0
    _, ae_row, vae_row, _, note = sampling.interpolate(store, None, None, ZERO, None, None, SIX, 4)
    assert ae_row is not None and vae_row is None and "'vae' is unavailable" in note
    *_, dvae, vae, table = denoising.denoise(store, None, None, ZERO, "gaussian", 0.2, 0)
    assert dvae is not None and vae is None and "unavailable" in table
    message = store.missing_message(["cvae", "socvae", "dvae"])
    assert "'cvae'" in message and "'socvae'" in message and "'dvae'" not in message


def test_hub_revision_overrides(tmp_path):
    table = hub_revisions({"vae": {"revision": "abc123"}})
    assert table["vae"] == {"repo_id": "vae-family/mnist-vae", "revision": "abc123"}
    path = tmp_path / "revisions.json"
    path.write_text(json.dumps({"ae": {"repo_id": "me/ae", "revision": "v1"}}))
    assert hub_revisions(str(path))["ae"] == {"repo_id": "me/ae", "revision": "v1"}
    with pytest.raises(ValueError, match="bad hub revision entry"):
        hub_revisions({"nope": {"revision": "x"}})


def test_app_builds_without_any_weights(tmp_path):
    from demo import build_app

    app = build_app(weights_dir=tmp_path, hub=False)  # e.g. before the pretrained models exist
    texts = [getattr(b, "value", "") for b in app.blocks.values() if type(b).__name__ == "Markdown"]
    assert sum("Unavailable here" in str(t) for t in texts) == 7  # one per tab that uses checkpoints (not live training)
    assert "not measured" in priors.metrics_table(app.store)


def test_first_visit_leaves_explained_failures_empty_and_lets_bugs_through(tmp_path):
    store = ModelStore(tmp_path, hub=False)  # no checkpoints at all
    assert common.first_visit(sampling.sample_grid, store, "vae", 4, 1.0, 0) is None  # ModelUnavailable
    assert common.first_visit(sampling.sample_grid, store, "nope", 4, 1.0, 0) is None  # ValueError: a bad option
    assert common.first_visit(sampling.sample_grid, store, "nope", 4, 1.0, 0, outputs=2) == (None, None)

    def broken(store):
        raise TypeError("a bug, not a missing model")
    with pytest.raises(TypeError, match="a bug"):
        common.first_visit(broken, store)


def test_denoising_tab_shows_each_models_own_reconstruction(store):
    """The DVAE row and the DVAE image are the DVAE's (not the VAE's), each PSNR is of its own output."""
    clean_image, noisy_image, dvae_image, vae_image, table = denoising.denoise(
        store, None, None, common.example_choices()[0], "salt_and_pepper", 0.3, 0)
    x = common.read_digit(None, None, common.example_choices()[0])[0]
    noisy = corrupt(x, "salt_and_pepper", 0.3, generator=common.generator(0))
    with torch.no_grad():
        outputs = {name: store.get(name).reconstruct(noisy) for name in ("dvae", "vae")}
    expected = {name: np.asarray(common.to_image(out)) for name, out in outputs.items()}
    assert not np.array_equal(expected["dvae"], expected["vae"])  # the two tiny models differ, so a swap shows
    assert np.array_equal(np.asarray(dvae_image), expected["dvae"])
    assert np.array_equal(np.asarray(vae_image), expected["vae"])
    assert np.array_equal(np.asarray(noisy_image), np.asarray(common.to_image(noisy)))
    assert np.array_equal(np.asarray(clean_image), np.asarray(common.to_image(x)))
    rows = dict(line.strip("|").split(" | ") for line in table.splitlines()[4:])
    rows = {k.strip(): float(v.strip(" |")) for k, v in rows.items()}
    assert rows["DVAE"] == pytest.approx(float(psnr(outputs["dvae"], x)), abs=0.006)
    assert rows["plain VAE"] == pytest.approx(float(psnr(outputs["vae"], x)), abs=0.006)
    assert rows["corrupted input"] == pytest.approx(float(psnr(noisy, x)), abs=0.006)
    assert rows["DVAE"] != rows["plain VAE"]


def test_same_style_opens_on_a_digit_the_bundled_classifier_reads_right(tmp_path):
    """The first visit's digit (from test digit 6 on) is one the classifier labels as its own label: test digit 6,
    a 3 the bundled classifier reads as a 5, is skipped for test digit 7, another 3."""
    bundled = ModelStore(None, hub=False)
    images, labels = common.test_digits()
    judge = bundled.get("classifier")
    assert int(judge.predict(images[6:7])[0]) != labels[6]
    start = conditional.first_recognised(bundled, 6)
    assert start == 7 and int(judge.predict(images[7:8])[0]) == labels[7] == 3
    _, _, note = conditional.same_style(bundled, None, None, example_choices()[start], conditional.AUTO)
    assert note.startswith("Encoded test digit 7 (a 3) as a **3** (predicted by the classifier)")
    _, _, missed = conditional.same_style(bundled, None, None, example_choices()[6], conditional.AUTO)
    assert missed == "Encoded test digit 6 (a 3) as a **5** (predicted by the classifier, which reads this 3 as a 5)."
    without = ModelStore(make_tiny_weights(tmp_path / "w", skip=("classifier",)), hub=False)
    assert conditional.first_recognised(without, 6) == 6

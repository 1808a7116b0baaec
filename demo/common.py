"""What the tabs share: the digit input (draw / upload / bundled test digit), turning errors into messages the user
sees, and rendering image tensors for gr.Image."""

from __future__ import annotations

import contextlib
import functools
import html
import io
import json
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vae_models import Unsupported
from vae_models.images import grid_image
from vae_models.preprocess import ImageInputError, has_ink, to_mnist

from .weights import ModelUnavailable

ASSETS = Path(__file__).resolve().parent / "assets"
SCALE = 4  # grids are enlarged (nearest neighbour) so 28 px digits are visible on screen
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # matplotlib's tab10


@functools.cache
def test_digits() -> tuple[torch.Tensor, list[int]]:
    """The bundled MNIST test digits: images (20, 1, 28, 28) in [0, 1] and their labels."""
    strip = np.asarray(Image.open(ASSETS / "test_digits.png").convert("L"), dtype=np.float32) / 255.0
    labels = json.loads((ASSETS / "test_digits.json").read_text())["labels"]
    images = torch.from_numpy(strip).view(28, len(labels), 28).permute(1, 0, 2).unsqueeze(1).contiguous()
    return images, labels


def example_choices() -> list[str]:
    return [f"test digit {i}: a {label}" for i, label in enumerate(test_digits()[1])]


def digit_inputs(title: str, default_example: int = 0):
    """A digit source: draw it, upload a picture, or pick a bundled MNIST test digit. Returns the three
    components in the order `read_digit` takes them."""
    import gradio as gr

    with gr.Group():
        gr.Markdown(f"**{title}** — an upload wins over a drawing, a drawing over the test digit")
        with gr.Tabs():
            with gr.Tab("Test digit"):
                example = gr.Dropdown(example_choices(), value=example_choices()[default_example],
                                      label="Bundled MNIST test digit")
            with gr.Tab("Draw"):
                sketch = gr.Sketchpad(type="numpy", format="png", canvas_size=(280, 280), fixed_canvas=True,
                                      label="Draw a digit", brush=gr.Brush(colors=["#000000"], color_mode="fixed",
                                                                           default_size=18))
            with gr.Tab("Upload"):
                upload = gr.File(label="Upload a picture of a digit (any size or mode)", type="filepath",
                                 file_types=["image"])
    return sketch, upload, example


def _composite(sketch):
    """The flattened drawing from a Sketchpad value (a dict with "composite"), or None."""
    if sketch is None:
        return None
    if isinstance(sketch, dict):
        return sketch.get("composite")
    return sketch


def read_digit(sketch, upload, example) -> tuple[torch.Tensor, int | None, str]:
    """(image (1, 1, 28, 28) in [0, 1], the test digit's label or None, where it came from), by precedence
    upload > drawing > test digit. Raises ImageInputError for an unusable upload."""
    if upload:
        return to_mnist(upload).unsqueeze(0), None, "your upload"
    drawing = _composite(sketch)
    if drawing is not None and has_ink(drawing):
        return to_mnist(drawing).unsqueeze(0), None, "your drawing"
    if example:
        choices = example_choices()
        if example not in choices:
            raise ImageInputError(f"unknown test digit {example!r}")
        images, labels = test_digits()
        i = choices.index(example)
        return images[i:i + 1], labels[i], f"test digit {i} (a {labels[i]})"  # the truth beside what models say
    raise ImageInputError("no digit given: draw one, upload a picture, or pick a test digit")


def to_image(images: torch.Tensor, nrow: int | None = None, scale: int = SCALE) -> Image.Image:
    """(B, 1, 28, 28) or (1, 28, 28) in [0, 1] -> an enlarged PIL grid."""
    if images.dim() == 3:
        images = images.unsqueeze(0)
    return grid_image(images.detach().cpu(), nrow=nrow, scale=scale)


def generator(seed) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


# The global RNG is one per process and the handlers run in threads: a seeded section holds this lock, so two of them
# do not interleave their draws (a live training's own draws still can: the trainer does not take it).
GLOBAL_RNG = threading.Lock()


@contextlib.contextmanager
def seeded(seed: int = 0):
    """Torch's global RNG at `seed` inside, restored after: for the library code that draws noise from it (the AVB's
    and the universal AAE's encoders), so that a handler's output is a function of its inputs."""
    with GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# What a handler raises for something the visitor or the operator can fix: a missing or broken model (the store's
# ModelUnavailable), a model that cannot do that, a bad image, a bad option. Anything else is a bug and propagates.
EXPLAINED = (ModelUnavailable, Unsupported, ImageInputError, ValueError)


def user_errors(fn):
    """Run a handler; what the user can fix (a missing model, a bad image, a bad option) becomes a gr.Error
    with the reason, which Gradio shows as a message while the server keeps serving."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import gradio as gr

        try:
            return fn(*args, **kwargs)
        except EXPLAINED as exc:
            raise gr.Error(html.escape(str(exc)), print_exception=False) from exc

    return wrapper


def bind(fn, store, cached: bool = True):
    """fn(store, ...) as a Gradio handler fn(...) with user-facing errors, its results computed once per input
    (demo/cache.py): a handler bound to the store must be a function of its inputs and the store's weights (a
    random one takes a seed). cached=False for one that reads something else that may change."""
    from .cache import cached as computed_once

    return user_errors(computed_once(fn, store) if cached else functools.partial(fn, store))


def intro(text: str, store, names) -> None:
    """The tab's two-sentence explanation, then what is unavailable and why."""
    import gradio as gr

    gr.Markdown(text)
    missing = store.missing_message(names)
    if missing:
        gr.Markdown(missing, elem_classes=["missing-models"])


def png_bytes(img: Image.Image) -> bytes:
    """An output image as the app's PNG: zlib level 1, ~3x faster to encode than PIL's default 6 (digits compress
    well). gradio's image cache (install_atomic_image_cache) and the result cache (demo/cache.py) both write it."""
    buffer = io.BytesIO()
    img.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def write_cache_file(data: bytes, digest: str, cache_dir: Path, filename: str) -> str:
    """The path of `data` in gradio's cache layout, cache_dir/<digest>/<filename> (digest: gradio's hash_bytes of
    data), written atomically if it is not there: a temporary name, then a rename, so a request streaming the file
    never reads a half-written one. An existing file already holds exactly these bytes (its folder is their hash), so
    it is kept, and its age renewed: delete_cache ages files by ctime and could otherwise remove it on the schedule
    of its first use, before this visitor has fetched it (gradio's save_file_to_cache does the same)."""
    import os
    import tempfile

    folder = Path(cache_dir) / digest
    folder.mkdir(exist_ok=True, parents=True)
    path = (folder / filename).resolve()
    if path.is_file():
        try:
            os.utime(path)
            return str(path)
        except FileNotFoundError:  # deleted by the cleanup just now: write it again
            pass
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
    except FileNotFoundError:  # the empty-folder pruning (demo/serving.py) removed the folder after mkdir
        folder.mkdir(exist_ok=True, parents=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return str(path)


def install_atomic_image_cache() -> None:
    """Work around a race in gradio 6.31: output images are cached under a path named by their content hash and
    written with a plain `write_bytes`, so two requests that produce the same image (same inputs: the UI's defaults)
    rewrite the file while another request streams it, and that client gets a truncated response ("Response content
    shorter than Content-Length"). write_cache_file makes each write atomic and keeps an existing file."""
    from gradio import processing_utils

    if getattr(processing_utils.save_pil_to_cache, "atomic", False):
        return

    def save_pil_to_cache(img, cache_dir, name="image", format="webp"):
        data = png_bytes(img) if format.lower() == "png" else processing_utils.encode_pil_to_bytes(img, format)
        return write_cache_file(data, processing_utils.hash_bytes(data), cache_dir, f"{name}.{format}")

    save_pil_to_cache.atomic = True
    processing_utils.save_pil_to_cache = save_pil_to_cache


def first_visit(fn, store, *args, outputs: int = 1):
    """fn(store, *args) computed once while the app is built, for the output components' initial values: a first
    visit sees results without a click, and no per-visit work is done for them. When the model is missing (the
    tab's "Unavailable here" note says why) the outputs start empty."""
    from .cache import cached

    try:
        result = cached(fn, store)(*args)  # also stored: a click on the defaults is then a hit
    except EXPLAINED:  # e.g. a missing or broken checkpoint: the tab's note explains it
        return (None,) * outputs if outputs > 1 else None
    return result


def digit_examples(inputs, rows, fn, outputs, label: str = "Examples: click one to run it"):
    """gr.Examples for a digit input (its test-digit dropdown) and the event's other options; a click runs `fn`
    on the example (gradio's cache_examples is off: the handlers' own result cache, demo/cache.py, serves a
    repeated example, and nothing is computed for examples nobody clicks)."""
    import gradio as gr

    return gr.Examples(rows, inputs=inputs, fn=fn, outputs=outputs, cache_examples=False, run_on_click=True,
                       label=label, api_visibility="private")


def install_lazy_session_config() -> None:
    """Work around a per-visitor cost in gradio 6.31: each new session (every page visit, every gradio_client)
    builds `SessionState.config_values`, the config of every block of the app (about 170 here, each through
    inspect.signature and pydantic JSON schemas), which only the deep-link feature reads (this app has no deep-link
    button). With this, the entries are made when first read: `components` (deep links) fills them all. An event's
    output value is kept until then too: gradio's update made the block's whole entry just to set its value, ~0.5 ms
    per output block at a session's first call of each endpoint (measured with cProfile on the served app under the
    benchmark's example mix: ~5 ms per call). benchmarks/README.md has the measured effect."""
    import types

    from gradio import state_holder

    cls = state_holder.SessionState
    if getattr(cls, "lazy_config", False):
        return
    eager_init, eager_components, eager_update = cls.__init__, cls.components, cls._update_value_in_config
    eager_setitem, eager_update_config = cls.__setitem__, cls._update_config

    def __init__(self, blocks):
        eager_init(self, types.SimpleNamespace(default_config=blocks.default_config, blocks={}))  # no entries
        self._config_order = [k for k in self.blocks_config.blocks if k in blocks.blocks]
        self._values = {}  # block id -> the last output value given to a block whose entry is not made yet

    def _update_value_in_config(self, key, value):
        if key in self.config_values or not self._config_order:  # its entry is made: as gradio does
            return eager_update(self, key, value)
        self._values[key] = value

    def __setitem__(self, key, value):  # a block replaced by an update: gradio makes its entry anew from it
        self._values.pop(key, None)
        eager_setitem(self, key, value)

    def _update_config(self, key):
        self._values.pop(key, None)
        eager_update_config(self, key)

    def components(self):
        if self._config_order:  # gradio's order: every block's entry, then entries added since
            made = self.config_values
            self.config_values = {k: made[k] if k in made else self.blocks_config.config_for_block(
                k, [], self.blocks_config.blocks[k]) for k in self._config_order}
            self.config_values.update({k: v for k, v in made.items() if k not in self.config_values})
            self._config_order = []
            for key, value in self._values.items():  # the values the session's events gave them
                eager_update(self, key, value)
            self._values = {}
        return eager_components.fget(self)

    cls.__init__, cls.components, cls.lazy_config = __init__, property(components), True
    cls._update_value_in_config, cls.__setitem__, cls._update_config = _update_value_in_config, __setitem__, \
        _update_config

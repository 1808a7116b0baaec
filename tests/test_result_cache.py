"""The result cache (demo/cache.py) on the real app server, driven over HTTP by gradio_client: what it returns, when
it hits and misses, what it never stores; and its byte bound."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from gradio_client import Client, handle_file

from demo import build_app, cache, common, sampling
from demo.cache import ResultCache
from demo.common import example_choices
from demo.tiny_weights import make_tiny_weights
from demo.weights import ModelStore

ZERO, SIX = example_choices()[0], example_choices()[13]
PATIENT = {"timeout": 300}  # a loaded CI machine: wait for the answer (speed is benchmarks/app_latency.py's job)
# The endpoints whose handlers are bound to the model store, so cached; the rest are not (live training, its Stop
# and push change state or the Hub; /prior_metrics reads eval files that a re-evaluation rewrites).
CACHED = {"/sample", "/interpolate", "/manifold", "/cvae_samples", "/same_style", "/complete_quadrants", "/denoise",
          "/latent_scatter", "/prior_samples", "/every_model", "/traverse", "/posterior"}
NOT_CACHED = {"/prior_metrics", "/posterior_table", "/train_live", "/stop_live", "/push_live"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, mnist_dir):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cache, "RESULTS", ResultCache(64 * 2**20))  # this module's own, empty
        app = build_app(weights_dir=make_tiny_weights(tmp_path_factory.mktemp("weights")), hub=False,
                        data_dir=mnist_dir)
        _, url, _ = app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
        yield app, Client(url, verbose=False, httpx_kwargs=PATIENT)
        app.close()


@pytest.fixture
def model_loads(server, monkeypatch):
    """Counts the handlers' model look-ups (every handler gets its models from the store): a list, one per call."""
    app, _ = server
    calls, get = [], app.store.get
    monkeypatch.setattr(app.store, "get", lambda name: calls.append(name) or get(name))
    return calls


def content(value):
    """An output as compared: a downloaded file by its bytes, anything else (text, None) as itself."""
    return Path(value).read_bytes() if isinstance(value, str) and os.path.isfile(value) else value


def digit_upload(path: Path, index: int) -> Path:
    Image.fromarray((common.test_digits()[0][index, 0].numpy() * 255).astype(np.uint8)).save(path)
    return path


def test_seeded_and_example_outputs_are_bit_identical_with_the_cache_on_and_off(server, monkeypatch):
    _, client = server
    calls = [(("vae", 16, 1.0, 3), "/sample"), ((None, None, SIX), "/every_model")]
    on = [[client.predict(*args, api_name=name) for _ in range(2)] for args, name in calls]  # a miss, then a hit
    monkeypatch.setattr(cache, "RESULTS", ResultCache(0))
    off = [client.predict(*args, api_name=name) for args, name in calls]
    sample_on, every_on = on
    assert isinstance(content(off[0]), bytes)
    assert content(sample_on[0]) == content(sample_on[1]) == content(off[0])
    assert [content(v) for v in every_on[0]] == [content(v) for v in every_on[1]] == [content(v) for v in off[1]]


def test_a_repeated_call_is_a_hit_and_does_not_run_the_handler(server, model_loads):
    _, client = server
    client.predict("vae", 9, 1.0, 11, api_name="/sample")
    assert model_loads, "the first call runs the handler"
    hits, loads = cache.RESULTS.hits, len(model_loads)
    client.predict("vae", 9, 1.0, 11, api_name="/sample")
    assert cache.RESULTS.hits == hits + 1 and len(model_loads) == loads


def test_another_seed_is_a_miss(server, model_loads):
    _, client = server
    client.predict("vae", 9, 1.0, 21, api_name="/sample")
    misses, loads = cache.RESULTS.misses, len(model_loads)
    client.predict("vae", 9, 1.0, 22, api_name="/sample")
    assert cache.RESULTS.misses == misses + 1 and len(model_loads) > loads


def test_an_upload_is_keyed_by_its_content_not_its_name(server, model_loads, tmp_path):
    _, client = server
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first = digit_upload(tmp_path / "a" / "digit.png", 2)
    other_content_same_name = digit_upload(tmp_path / "b" / "digit.png", 7)
    same_content_other_name = digit_upload(tmp_path / "copy.png", 2)
    client.predict(None, handle_file(first), ZERO, "3", api_name="/same_style")
    misses = cache.RESULTS.misses
    client.predict(None, handle_file(other_content_same_name), ZERO, "3", api_name="/same_style")
    assert cache.RESULTS.misses == misses + 1
    loads = len(model_loads)
    client.predict(None, handle_file(same_content_other_name), ZERO, "3", api_name="/same_style")
    assert cache.RESULTS.misses == misses + 1 and len(model_loads) == loads


def test_other_weights_are_a_miss(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "RESULTS", ResultCache(2**20))
    stores = [ModelStore(make_tiny_weights(tmp_path / f"seed{seed}", seed=seed), hub=False) for seed in (0, 1)]
    assert stores[0].revision != stores[1].revision
    grids = [np.asarray(Image.open(cache.cached(sampling.sample_grid, store)("vae", 4, 1.0, 0))) for store in stores]
    assert cache.RESULTS.misses == 2 and cache.RESULTS.hits == 0
    assert not np.array_equal(*grids)


def test_the_cache_never_exceeds_its_byte_bound_and_evicts_the_least_recently_used():
    results = ResultCache(max_bytes=3 * (cache.ENTRY_OVERHEAD + 1000))
    for key in "abc":
        results.get(key, lambda: "x" * 1000)
    results.get("a", lambda: pytest.fail("a is stored"))  # a is now the most recently used
    results.get("d", lambda: "x" * 1000)
    assert results.bytes <= results.max_bytes and len(results) == 3
    results.get("b", lambda: "evicted, so computed again")
    assert results.misses == 5 and results.bytes <= results.max_bytes
    results.get("big", lambda: "x" * results.max_bytes)  # larger than the bound: returned, not stored
    assert "big" not in results._entries and results.bytes <= results.max_bytes


def test_live_training_and_the_eval_table_are_never_cached(server):
    app, _ = server
    marked = {f"/{fn.api_name}" for fn in app.fns.values() if getattr(fn.fn, "result_cache", False)}
    assert marked == CACHED and not marked & NOT_CACHED


def test_every_cached_endpoint_is_a_function_of_its_inputs(server, monkeypatch):
    """What makes caching them right: the same inputs give the same outputs whatever the global random state (no
    handler draws random numbers without its seed)."""
    _, client = server
    monkeypatch.setattr(cache, "RESULTS", ResultCache(0))
    calls = {"/sample": ("vae", 4, 1.0, 0), "/interpolate": (None, None, ZERO, None, None, SIX, 4, "slerp"),
             "/manifold": ("vae-2d", 3), "/cvae_samples": (3, 0, 4), "/same_style": (None, None, ZERO, "6"),
             "/complete_quadrants": (None, None, ZERO, 2, 3, 0), "/denoise": (None, None, ZERO, "gaussian", 0.4, 0),
             "/latent_scatter": (200, 0), "/prior_samples": (4, 0), "/every_model": (None, None, SIX),
             "/traverse": (None, None, ZERO, "vae", 2, 3), "/posterior": (None, None, ZERO, "vae-2d")}
    assert set(calls) == CACHED

    def outputs(name):
        result = client.predict(*calls[name], api_name=name)
        return [content(r) for r in (result if isinstance(result, (tuple, list)) else [result])]

    for name in calls:
        torch.manual_seed(1)
        first = outputs(name)
        torch.manual_seed(2)
        assert outputs(name) == first, name


def test_the_hit_rate_goes_to_the_server_log(monkeypatch, capsys):
    monkeypatch.setattr(cache, "LOG_EVERY", 4)
    results = ResultCache(2**20)
    for key in "aaab":
        results.get(key, lambda: "value")
    assert "result cache: 2 hits in 4 calls (50%)" in capsys.readouterr().err


def test_every_image_a_cached_endpoint_returns_is_shown_as_png(server):
    """The cache stores images as the PNG gradio would write (demo.common.png_bytes) and returns that file: right only
    where the output component's format is PNG."""
    import gradio as gr

    app, _ = server
    images = [block for fn in app.fns.values() if getattr(fn.fn, "result_cache", False)
              for block in fn.outputs if isinstance(block, gr.Image)]
    assert images and all(block.format == "png" for block in images)


def test_other_meter_references_beside_the_same_weights_are_a_miss(tmp_path):
    """The every-model table reads the meter's references beside the weights: the same weights with references
    written (or rewritten) later are another key, so no table computed without them is served."""
    from tests.meter_weights import tiny_weights_with_references

    bare = ModelStore(make_tiny_weights(tmp_path / "bare"), hub=False)
    metered = ModelStore(tiny_weights_with_references(tmp_path / "metered"), hub=False)
    assert bare.revision != metered.revision
    reference = tmp_path / "metered" / "vae" / "likelihood_reference.json"
    reference.write_text(reference.read_text().replace('"size": 20', '"size": 20 '))  # one byte more
    assert ModelStore(tmp_path / "metered", hub=False).revision != metered.revision

"""Concurrent /sample calls share one decoder pass (demo/batching.py), and each visitor still gets, byte for byte,
the grid it would have got alone: checked on the bundled VAE's real weights."""

import threading
import time

import pytest
import torch

from demo import batching, sampling
from demo.batching import BLOCK_ROWS, DecodeBatcher, decode_in_blocks
from demo.common import png_bytes
from demo.weights import ModelStore
from tests.paths import REPO

CALLS = [("vae", 36, 1.0, 0), ("vae", 7, 0.5, 1), ("vae", 100, 1.0, 2), ("vae", 1, 2.0, 3), ("vae", 64, 1.0, 4)]


@pytest.fixture(scope="module")
def store():
    return ModelStore(REPO / "pretrained", hub=False)


def grids(store, calls):
    return [png_bytes(sampling.sample_grid(store, *call)) for call in calls]


def concurrently(store, calls, batcher, monkeypatch):
    """Each call in its own thread while the first call's pass is held until every other valid call has queued
    behind it, so that they all meet in the second pass. Returns (the PNG bytes per call, the error per call)."""
    model = store.get("vae")
    entered, release, decode = threading.Event(), threading.Event(), model.decode

    def held_decode(z, *args):
        entered.set()
        release.wait(30)
        return decode(z, *args)

    monkeypatch.setattr(model, "decode", held_decode)
    monkeypatch.setattr(batching, "DECODES", batcher)
    out, errors = [None] * len(calls), [None] * len(calls)

    def run(i):
        try:
            out[i] = png_bytes(sampling.sample_grid(store, *calls[i]))
        except Exception as exc:  # noqa: BLE001 - compared by the test
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    threads[0].start()
    assert entered.wait(30)
    for t in threads[1:]:
        t.start()
    valid = sum(1 <= call[1] <= sampling.MAX_SAMPLES for call in calls[1:])
    deadline = time.monotonic() + 30
    while batcher.waiting(model) < valid and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join(60)
    return out, errors


def test_concurrent_sample_calls_share_one_pass_and_match_the_calls_made_alone(store, monkeypatch):
    alone = grids(store, CALLS)
    batcher = DecodeBatcher(batching.MAX_BATCH_ROWS)
    together, errors = concurrently(store, CALLS, batcher, monkeypatch)
    assert errors == [None] * len(CALLS)
    assert together == alone
    assert batcher.calls == len(CALLS) and batcher.passes == 2  # the held first call, then all the others at once


def test_batching_off_decodes_each_call_alone_with_the_same_bytes(store, monkeypatch):
    alone = grids(store, CALLS)
    batcher = DecodeBatcher(0)
    monkeypatch.setattr(batching, "DECODES", batcher)
    assert grids(store, CALLS) == alone
    assert batcher.passes == batcher.calls == len(CALLS)


def test_a_bad_call_is_refused_alone_and_the_others_of_its_pass_are_served(store, monkeypatch):
    calls = [CALLS[0], ("vae", 1000, 1.0, 0), CALLS[1], CALLS[2]]
    alone = grids(store, [CALLS[0], CALLS[1], CALLS[2]])
    together, errors = concurrently(store, calls, DecodeBatcher(batching.MAX_BATCH_ROWS), monkeypatch)
    assert isinstance(errors[1], ValueError) and "number of samples" in str(errors[1])
    assert [together[0], together[2], together[3]] == alone and errors[0] is errors[2] is errors[3] is None


def test_an_error_inside_a_pass_reaches_every_call_of_that_pass(store):
    model = store.get("vae")
    batcher = DecodeBatcher(batching.MAX_BATCH_ROWS)
    with pytest.raises(RuntimeError):  # a code of the wrong width: the decoder's matmul fails
        batcher.decode(model, torch.zeros(3, model.config.latent_dim + 1))
    assert batcher.waiting(model) == 0
    assert torch.equal(batcher.decode(model, torch.zeros(2, model.config.latent_dim)),
                       decode_in_blocks(model, torch.zeros(2, model.config.latent_dim)))  # the model is free again


def test_a_row_decodes_the_same_whichever_rows_share_its_blocks(store):
    model = store.get("vae")
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(3 * BLOCK_ROWS + 5, model.config.latent_dim, generator=g)
    together = decode_in_blocks(model, codes)
    for start, stop in [(0, 1), (5, 12), (60, 70), (BLOCK_ROWS, 3 * BLOCK_ROWS + 5)]:
        assert torch.equal(decode_in_blocks(model, codes[start:stop]), together[start:stop])


@pytest.mark.parametrize("value", ["abc", "-1", "1.5"])
def test_a_bad_batch_rows_setting_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv(batching.BATCH_ROWS_ENV, value)
    with pytest.raises(ValueError, match=batching.BATCH_ROWS_ENV):
        batching.batch_rows()

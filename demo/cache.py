"""Results computed once: a handler whose output is a function of its inputs and the loaded weights (every seeded
sampling, the examples, the bundled test digits, the first visit's defaults) is computed on the first call and
served from memory after that.

- **What**: every handler bound to the model store with `demo.common.bind` (and the first-visit values, which go
  through the same path); `bind(..., cached=False)` opts one out. Live training, its Stop and its push are not
  bound to the store and are never cached; no endpoint draws random numbers without a seed.
- **Key**: (the handler, `ModelStore.revision`, the inputs), uploads and drawings by the SHA-256 of their content
  (two uploads of one picture under different names share an entry, two pictures under one name do not).
- **Bound**: RESULT_CACHE_MB megabytes of stored results (the encoded PNGs and the text), least recently used
  evicted first. `VAE_FAMILY_RESULT_CACHE_MB=0` turns it off.
- **Images** are kept as the PNG bytes gradio would have written (`demo.common.png_bytes`) and handed back as the
  path of that file in gradio's temp folder (written again if the scheduled clean-up removed it), so a hit skips
  the model and the PNG encoding, and gradio serves a file the app itself created, byte for byte the same as
  without the cache.
- Concurrent identical calls share one computation: the first computes, the others wait for its result.
- Every LOG_EVERY calls the server log gets a line with the hit rate (`RESULTS.summary()`).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import sys
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

RESULT_CACHE_ENV = "VAE_FAMILY_RESULT_CACHE_MB"
# 64 MB holds ~150 of the largest results (a 30 x 30 manifold, ~440 kB of PNG) and thousands of the typical ones
# (4-70 kB; the latent scatters ~190 kB): every example, test digit and default of the app with room to spare, and a
# small share of a Space's RAM (the server holds ~600 MB).
RESULT_CACHE_MB = 64.0
LOG_EVERY = 50  # calls between two hit-rate lines in the server log
ENTRY_OVERHEAD = 256  # bytes charged per entry for its key and bookkeeping, so that tiny results are bounded too


def result_cache_bytes() -> int:
    """The bound in bytes: RESULT_CACHE_MB, or VAE_FAMILY_RESULT_CACHE_MB (0 turns the cache off)."""
    value = os.environ.get(RESULT_CACHE_ENV, "").strip()
    try:
        megabytes = float(value) if value else RESULT_CACHE_MB
    except ValueError:
        megabytes = -1.0  # not a number: the same error as a negative size
    if not megabytes >= 0:  # also refuses nan
        raise ValueError(f"{RESULT_CACHE_ENV} must be a size in MB (0: off), got {value!r}")
    return int(megabytes * 1024 * 1024)


@dataclass(frozen=True)
class EncodedImage:
    """An output image as gradio would have stored it: its PNG bytes and their content hash (the folder name)."""
    data: bytes
    digest: str


class ResultCache:
    """An LRU map bounded by the bytes of its values; thread-safe (gradio runs handlers in threads)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = self.misses = 0
        self._entries: OrderedDict = OrderedDict()  # key -> (value, size), least recently used first
        self._pending: dict = {}  # key -> Future of the computation in flight
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key, compute):
        """The stored value for key, else compute() (once, however many threads ask at the same time), stored."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self._count(hit=True)
                return self._entries[key][0]
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = Future()
                owner = True
            else:
                owner = False
            self._count(hit=not owner)  # waiting for a computation in flight costs no computation
        if not owner:
            return pending.result()
        try:
            value = compute()
        except BaseException as exc:  # not stored: the waiters get the same error, the next call tries again
            with self._lock:
                del self._pending[key]
            pending.set_exception(exc)
            raise
        with self._lock:
            del self._pending[key]
            self._store(key, value)
        pending.set_result(value)
        return value

    def _store(self, key, value) -> None:
        size = ENTRY_OVERHEAD + payload_bytes(value)
        if size > self.max_bytes:
            return
        self._entries[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted

    def _count(self, hit: bool) -> None:
        self.hits += hit
        self.misses += not hit
        if (self.hits + self.misses) % LOG_EVERY == 0:
            print(self.summary(), file=sys.stderr, flush=True)

    def summary(self) -> str:
        calls = self.hits + self.misses
        return (f"result cache: {self.hits} hits in {calls} calls ({self.hits / max(calls, 1):.0%}), "
                f"{len(self._entries)} entries, {self.bytes / 2**20:.1f} of {self.max_bytes / 2**20:.0f} MB")


def payload_bytes(value) -> int:
    """What a stored result weighs: its PNGs' bytes and its text's UTF-8 bytes."""
    if isinstance(value, tuple):
        return sum(payload_bytes(v) for v in value)
    if isinstance(value, EncodedImage):
        return len(value.data)
    if isinstance(value, str):
        return len(value.encode())
    return 0  # None, numbers


RESULTS = ResultCache(result_cache_bytes())


def input_key(value):
    """A hashable stand-in for one handler input: uploads (files in gradio's temp folder) and drawings (numpy
    arrays) by the SHA-256 of their content, everything else (numbers, choices, None) as itself."""
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, hashlib.sha256(np.ascontiguousarray(value)).hexdigest())
    if isinstance(value, dict):  # a Sketchpad value: background, layers, composite
        return ("dict", tuple(sorted((k, input_key(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(input_key(v) for v in value))
    if isinstance(value, str) and is_upload(value):
        with open(value, "rb") as f:
            return ("file", hashlib.file_digest(f, "sha256").hexdigest())
    hash(value)  # anything else must be a plain value; an unhashable one is a bug to see, not to key by id
    return value


def is_upload(path: str) -> bool:
    """Whether a string input is a file gradio stored in its temp folder (an upload): only those are read."""
    from gradio.utils import is_in_or_equal

    from .serving import temp_folder

    return os.path.isfile(path) and is_in_or_equal(path, str(temp_folder()))


def encode(result):
    """A handler's result as stored: each PIL image as the PNG bytes gradio would have written."""
    from gradio.processing_utils import hash_bytes

    from .common import png_bytes

    if isinstance(result, tuple):
        return tuple(encode(r) for r in result)
    if isinstance(result, Image.Image):
        data = png_bytes(result)
        return EncodedImage(data, hash_bytes(data))
    return result


def decode(stored):
    """A stored result as the handler returns it: each image as the path of its file in gradio's temp folder."""
    from .common import write_cache_file
    from .serving import temp_folder

    if isinstance(stored, tuple):
        return tuple(decode(s) for s in stored)
    if isinstance(stored, EncodedImage):
        return write_cache_file(stored.data, stored.digest, Path(temp_folder()), "image.png")
    return stored


def cached(fn, store):
    """fn(store, *args) through RESULTS, keyed on (fn, store.revision, the inputs); fn(store, *args) itself when
    the cache is off. Marked `result_cache` (functools.wraps carries it through the wrappers around it)."""
    handler = f"{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    def wrapper(*args):
        cache = RESULTS  # looked up per call: a test (or an operator's code) may swap it
        if cache.max_bytes <= 0:
            return fn(store, *args)
        key = (handler, store.revision, tuple(input_key(a) for a in args))
        return decode(cache.get(key, lambda: encode(fn(store, *args))))

    signature = inspect.signature(fn)  # gradio counts the inputs a handler takes from it: the store is bound
    wrapper.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
    wrapper.result_cache = True
    return wrapper

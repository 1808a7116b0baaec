"""One forward pass for concurrent calls: visitors' `/sample` calls to the same model that are in flight together
are decoded in one pass of the decoder, and each gets its own rows back.

- **Opportunistic, no waiting.** The first call to find a model idle decodes at once, its own codes and whatever
  other calls queued for that model meanwhile; calls that arrive while a pass runs queue for the next one. An idle
  server adds no delay, and a busy one makes one pass of the queued calls instead of one pass each.
- **Bit-identical to decoding alone.** A matrix multiply's kernel (and so the float rounding of every row) depends
  on how many rows it multiplies. So every pass, batched or not, decodes in blocks of exactly BLOCK_ROWS rows, the
  last zero-padded: a row's pixels then depend only on its own code, not on which calls shared its pass
  (tests/test_decode_batching.py checks this against the same calls made one at a time).
- Errors stay per call: inputs are checked before a call queues, so one visitor's bad input never fails another's
  pass; an error inside a pass (an internal one) is raised in every call of that pass.
- `VAE_FAMILY_BATCH_ROWS` (default MAX_BATCH_ROWS) bounds the rows of one pass; 0 turns batching off (each call
  decodes alone, through the same blocks).
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import Future

import torch

BATCH_ROWS_ENV = "VAE_FAMILY_BATCH_ROWS"
BLOCK_ROWS = 64  # rows of every decode block: a multiple of the CPU kernels' row tiles, and the UI's default 36 fits
MAX_BATCH_ROWS = 1600  # 16 visitors' largest grids (100 samples each): ~25 ms of decoder on one core
LOG_EVERY = 50  # calls between two lines in the server log


def batch_rows() -> int:
    value = os.environ.get(BATCH_ROWS_ENV, "").strip()
    if not value:
        return MAX_BATCH_ROWS
    if not value.isdigit():
        raise ValueError(f"{BATCH_ROWS_ENV} must be a number of rows (0: off), got {value!r}")
    return int(value)


@torch.no_grad()
def decode_in_blocks(model, codes: torch.Tensor) -> torch.Tensor:
    """model.decode(codes), computed in blocks of exactly BLOCK_ROWS rows (the last zero-padded), so that each row's
    result does not depend on the rows decoded with it."""
    n = len(codes)
    padded = torch.cat([codes, codes.new_zeros((-n) % BLOCK_ROWS, *codes.shape[1:])])
    return torch.cat([model.decode(block) for block in padded.split(BLOCK_ROWS)])[:n]


class DecodeBatcher:
    """Coalesces concurrent decode calls per model (see the module's docstring). Thread-safe."""

    def __init__(self, max_rows: int):
        self.max_rows = max_rows
        self.calls = self.passes = 0
        self._queues: dict[int, list] = {}  # id(model) -> [(codes, Future)], in arrival order
        self._busy: set[int] = set()  # models a thread is decoding for now
        self._lock = threading.Lock()

    def decode(self, model, codes: torch.Tensor) -> torch.Tensor:
        """model.decode(codes) (bit-identical to decode_in_blocks(model, codes)), sharing a pass with the calls for
        the same model in flight at the same time."""
        if self.max_rows <= 0 or len(codes) > self.max_rows:
            self._count(calls=1, passes=1)
            return decode_in_blocks(model, codes)
        result = Future()
        key = id(model)
        with self._lock:
            self._queues.setdefault(key, []).append((codes, result))
            lead = key not in self._busy
            self._busy.add(key)
        if lead:
            self._drain(model, key)
        return result.result()

    def waiting(self, model) -> int:
        """How many calls for this model are queued for its next pass."""
        with self._lock:
            return len(self._queues.get(id(model), []))

    def _drain(self, model, key: int) -> None:
        """Decode the model's queue, pass after pass, until it is empty (the calls waiting are bounded by the
        server's concurrency, so this ends)."""
        while True:
            with self._lock:
                queue = self._queues.get(key, [])
                batch, rows = [], 0
                while queue and (not batch or rows + len(queue[0][0]) <= self.max_rows):
                    batch.append(queue.pop(0))
                    rows += len(batch[-1][0])
                if not batch:
                    self._busy.discard(key)
                    self._queues.pop(key, None)
                    return
            self._count(calls=len(batch), passes=1)
            try:
                images = decode_in_blocks(model, torch.cat([codes for codes, _ in batch]))
            except BaseException as exc:  # noqa: BLE001 - every caller of this pass gets it
                for _, result in batch:
                    result.set_exception(exc)
                continue
            for (_, result), rows_of_call in zip(batch, images.split([len(codes) for codes, _ in batch])):
                result.set_result(rows_of_call)

    def _count(self, calls: int, passes: int) -> None:
        with self._lock:
            before = self.calls
            self.calls += calls
            self.passes += passes
            log = self.calls // LOG_EVERY > before // LOG_EVERY
        if log:
            print(self.summary(), file=sys.stderr, flush=True)

    def summary(self) -> str:
        return f"decode batching: {self.calls} calls in {self.passes} passes (at most {self.max_rows} rows a pass)"


DECODES = DecodeBatcher(batch_rows())

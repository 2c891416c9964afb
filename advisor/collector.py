"""Pausing Python's cyclic garbage collector while one recommendation is worked out.

A recommendation allocates tens of thousands of small containers (memory fits, speed phases, deployments, their
metric and fact dicts). Every 700 allocations the collector walks the young ones, and every hundred or so of those
walks, everything the process tracks, the engine's caches included: 12-17% of the CPU of a recommendation on the
2-core machine (1,352 of scripts/benchmark_engine.py's sweep requests, collector on and off, run side by side).
What a recommendation throws away has no reference cycles that reference counting leaves behind (tested), so those
walks find nothing; paused, the one collection after the call walks only what it returns and what it added to the
caches.

:func:`paused` turns the collector off for the duration of the work and back on after it (only if it was on, and
only when the last of several threads in the block leaves it: Streamlit runs each session in a thread). Memory is
still freed by reference counting as it is now; the work one call may do is bounded by the request's limits, and any
cycle it made is collected by the next collection after it.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_restore = False  # whether the collector was on when the first of the threads now inside entered


@contextmanager
def paused() -> Iterator[None]:
    """Run the block with the cyclic garbage collector off; it is on again after the last block in flight ends
    (if it was on before the first one began)."""
    global _depth, _restore
    with _lock:
        if _depth == 0:
            _restore = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _restore:
                gc.enable()

"""Pausing Python's cyclic garbage collector while one recommendation is worked out, in a process's main thread.

A recommendation allocates tens of thousands of small containers (memory fits, speed phases, deployments, their
metric and fact dicts). Every 700 allocations the collector walks the young ones, and every hundred or so of those
walks, everything the process tracks, the engine's caches included: 12-17% of the CPU of a recommendation on the
2-core machine (1,352 of scripts/benchmark_engine.py's sweep requests, collector on and off, run side by side).
What a recommendation throws away has no reference cycles that reference counting leaves behind (tested), so those
walks find nothing; paused, the one collection after the call walks only what it returns and what it added to the
caches.

:func:`paused` turns the collector off for the duration of the work and back on after it (only if it was on).
Memory is still freed by reference counting as it is now; the work one call may do is bounded by the request's
limits, and any cycle it made is collected by the next collection after it.

Only the main thread pauses: that is where the CLI, the Python API in a script, a batch over the catalog and each
worker process of scripts/benchmark_engine.py run. The collector is one switch for the whole process, and a server
that plans in threads (Streamlit runs each session's script in its own thread, with its full collection after each
run turned off: .streamlit/config.toml) could keep it off for as long as its sessions overlap; there it is left
alone.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0  # blocks the main thread is inside
_restore = False  # whether the collector was on when the outermost of them began


@contextmanager
def paused() -> Iterator[None]:
    """Run the block with the cyclic garbage collector off when called from the main thread; it is on again after the
    outermost block ends (if it was on before it began). From any other thread, the block runs as it is."""
    global _depth, _restore
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _depth == 0:
        _restore = gc.isenabled()
        gc.disable()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _restore:
            gc.enable()

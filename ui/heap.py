"""The server's garbage collection, kept to what each script run allocates.

Streamlit runs a full collection (gc.collect(2), config runner.postScriptGC) after every script run. A full
collection walks every object the process tracks: the imported modules (Streamlit, plotly, pandas, pydantic), the
knowledge base, plotly's validators, the caches. On the 2-core machine that was about 130 ms of CPU after each
widget change, more than the page itself (scripts/load_app.py: 0.24 s of server CPU per change, 0.1 s in the page).

What the first run of a page leaves behind lives as long as the server: the modules it imported, the knowledge base,
the validators it built. So once that run has ended, this module collects once more and moves everything alive out
of the collector's sight (gc.freeze). Later collections, Streamlit's included, walk only what was allocated since:
each session's state and each run's own garbage, which they still free as before.

Frozen objects are still freed by reference counting as soon as nothing refers to them; only a reference cycle among
them is never collected, so at most what the runs in flight at that moment held stays (once per page, per process).
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_frozen: set[str] = set()


def freeze_after_first_run(page: str) -> bool:
    """After the first run of `page` in this process: collect, then freeze what is alive. True if it froze now."""
    with _lock:
        if page in _frozen:
            return False
        _frozen.add(page)
        gc.collect()
        gc.freeze()
        return True

"""Router only: the pages live in pages/ and must work whether or not this file ran first
(shared/reference/streamlit.md section 1: a cold deep link can skip the router). Each url_path equals
its file stem so legacy mode and st.navigation resolve the same URL."""

import os
import sys
import time

import streamlit as st

from ui.frame import release_decision, router_pages
from ui.heap import freeze_after_first_run

page = st.navigation(router_pages(), position="top")  # ui.frame.PAGES, Plan first
name = page.url_path or "wizard"
st.session_state["_via_router"] = True  # the page draws its own links when it runs without the router
started = time.perf_counter()
try:
    page.run()
finally:
    if os.environ.get("ADVISOR_TIMING_LOG"):  # scripts/load_app.py: how long each script run takes on the server
        # One write, newline included: print() writes the text and the newline apart, so two script threads'
        # lines could merge.
        sys.stderr.write(f"advisor-timing {name} {(time.perf_counter() - started) * 1000:.1f} ms\n")
        sys.stderr.flush()
    release_decision()  # ui/frame.py: the engine's decision this run held for the Speed tab
    freeze_after_first_run(name)  # ui/heap.py: Streamlit's collection after each run then skips what lives on

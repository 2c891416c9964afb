"""Router only: the pages live in pages/ and must work whether or not this file ran first
(shared/reference/streamlit.md section 1: a cold deep link can skip the router). Each url_path equals
its file stem so legacy mode and st.navigation resolve the same URL."""

import os
import sys
import time

import streamlit as st

page = st.navigation(
    [
        st.Page("pages/wizard.py", title="Plan", icon=":material/tune:", default=True),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
        st.Page("pages/gpus.py", title="GPU picker", icon=":material/developer_board:"),
        st.Page("pages/estimate.py", title="Memory calculator", icon=":material/memory:"),
        st.Page("pages/knowledge.py", title="Knowledge base", icon=":material/table:"),
    ],
    position="top",
)
st.session_state["_via_router"] = True  # the page draws its own links when it runs without the router
if os.environ.get("ADVISOR_TIMING_LOG"):  # scripts/load_app.py: how long each script run takes on the server
    started = time.perf_counter()
    try:
        page.run()
    finally:
        print(f"advisor-timing {page.url_path or 'wizard'} {(time.perf_counter() - started) * 1000:.1f} ms",
              file=sys.stderr, flush=True)
else:
    page.run()

"""What the AppTest files share: a fresh app run from a link (optionally opening one page), the text escaped
Markdown reads as, and an autouse fixture that empties Streamlit's caches between tests (import it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


def app(query: dict | None = None, page: str | None = None, timeout: float = 90) -> AppTest:
    """Run the router with `query` as the URL's parameters; with `page`, open that page (as a link to it does)."""
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=timeout)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    if page:  # the link opens that page (the router runs first, as in the browser)
        at.switch_page(f"pages/{page}.py")
    return at.run()


def plain(markdown: str) -> str:
    """What escaped Markdown reads as: backslash escapes and the zero-width spaces of ui.frame.safe_text undone."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u200b", "")


@pytest.fixture(autouse=True)
def clear_streamlit_caches():
    st.cache_data.clear()
    st.cache_resource.clear()

"""scripts/load_app.py's protocol client: simulated users speak Streamlit's websocket protocol to a real
`streamlit run` on 127.0.0.1 (tests/e2e/conftest.py start_server; no browser). Each widget change must end in
script_finished with an updated recommendation, and the report must print numbers."""

import asyncio
import concurrent.futures
import importlib.util
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SPEC = importlib.util.spec_from_file_location("load_app", ROOT / "scripts" / "load_app.py")
load_app = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("load_app", load_app)  # its dataclasses look their module up
_SPEC.loader.exec_module(load_app)

NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


def _in_own_thread(coroutine):
    """asyncio.run in a fresh thread: Playwright's sync API (the e2e tests, earlier in the same session) leaves an
    event loop running in the main thread, where asyncio.run refuses to start."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def test_protocol_users_change_a_widget_and_get_the_updated_recommendation(capsys, monkeypatch):
    monkeypatch.setattr(load_app, "TIMEOUT_S", 45.0)
    result, log = _in_own_thread(load_app.run("protocol", users=2, changes=2, rounds=1))  # stops its server always
    assert result.server_exit is not None  # the server was stopped and reaped

    assert [len(changes) for changes in result.users] == [2, 2]
    for change in [c for changes in result.users for c in changes] + result.alone + result.loaded:
        assert change.finished, change  # the run ended with script_finished, successfully
        assert change.updated, change  # a "Serve ..." summary, different from the one before
        assert not change.errors, change.errors
        assert 0 < change.seconds < 45
    assert len(result.heavy) == 1 and result.heavy[0] > 0
    assert load_app.failures(result, log) == []
    assert log.runs, "the server printed no advisor-timing lines"

    load_app.report("protocol", result, log)
    out = capsys.readouterr().out
    figures = {
        "p50": rf"p50 {NUMBER} s", "p95": rf"p95 {NUMBER} s", "server p50": rf"script run while.*?p50 {NUMBER} s",
        "server CPU": rf"server {NUMBER} s", "client CPU": rf"this client .*? {NUMBER} s",
        "RSS before": rf"RSS: {NUMBER} MiB before", "RSS after": rf"{NUMBER} MiB after",
        "light alone": rf"median {NUMBER} s alone", "light loaded": rf"alone, {NUMBER} s while",
        "held up": r"held up ([+-][0-9]+\.[0-9]+) s",
    }
    for name, pattern in figures.items():
        found = re.search(pattern, out)
        assert found, f"{name} not in the report:\n{out}"
        assert math.isfinite(float(found.group(1))), f"{name}: {found.group(1)}"
    assert float(re.search(rf"RSS: {NUMBER} MiB before", out).group(1)) > 10

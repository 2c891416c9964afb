"""Shared-server load: N simulated users on one `streamlit run` on 127.0.0.1, each changing a widget (the
concurrency of endpoint 1) on the Plan page and waiting for the updated recommendation. Prints:

1. p50 / p95 time from a widget change to the updated recommendation, over every user's changes, and the
   server's own time per script run (the `advisor-timing` lines streamlit_app.py prints with ADVISOR_TIMING_LOG);
2. the server's resident memory (RSS, from /proc) before the users arrive, with them, and after they leave;
3. a light request (one more user's widget change) timed alone and while a heavy one runs (the GPU picker on
   Llama-3.1-405B: the costliest request a link can make; a new link each round, so not cached), and the
   difference. The light change is sent once the picker's script run has begun on the server (protocol:
   its `new_session` arrived; browser: 0.3 s after the picker page loaded).

Two clients (--client):

- `protocol` (the default): each user is one websocket to `/_stcore/stream` speaking Streamlit's own protocol
  from this Python process, as the browser's JavaScript does but with nothing rendered. A page load is a
  BackMsg `rerun_script` (ClientState: page name, query string); the server answers with ForwardMsgs
  (`new_session`, `delta`s, `page_info_changed`, ..., `script_finished`). A widget change is the next
  `rerun_script` carrying the widget's new value (WidgetStates, keyed by the element id the number_input delta
  gave; only the widgets this user changed, the server keeps the others in session state), the page's script
  hash and the query string the server last set (`page_info_changed`). As in the browser, cacheable elements
  the client holds are named in `cached_message_hashes` and come back as `ref_hash` references (on the Plan
  page none reaches the server's global.minCachedMessageSize, so every run sends every element). Time:
  from sending that BackMsg to `script_finished`, and the run's "Serve ..." summary must differ from the one
  before. It exists because twenty browsers on two cores measure the browsers: twenty protocol users making 100
  changes cost this process about 1 s of CPU against the server's 29 s, so the figures are the server's (the
  report prints both CPU times).
- `browser`: each user is a Chromium page (Playwright) typing into the field. Time: from typing to the new
  summary text on screen with the app idle, so it includes the browser's own work; on 2 cores 20 Chromium
  pages share the CPUs with the server (p95 63 s at 20 users), which is what this mode measures there.

Bounded: --users (at most 40), --changes per user (at most 20), --rounds (at most 20), and every wait has a
timeout. Exits 1 if a change did not finish or did not update the recommendation, or a script run raised.

    .venv/bin/python scripts/load_app.py [--client protocol|browser] [--users 20] [--changes 5] [--rounds 5]

Goal (issue 11), on the 2-core machine: p95 under 2 s; a heavy request holds a light one up by under 0.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import chromium_path, start_server  # noqa: E402

HEAVY_PAGE, HEAVY_QUERY = "gpus", "m=meta-llama%2FLlama-3.1-405B-Instruct&g=h100-sxm"
HEAVY_URL = f"/{HEAVY_PAGE}?{HEAVY_QUERY}"
CONCURRENCY_KEY = "w_e0_concurrency"  # ui.state.endpoint_key(0, "concurrency"): "Concurrent requests"
TIMEOUT_S = 120.0
FINISHED = "FINISHED_SUCCESSFULLY"


@dataclass
class Change:
    """One widget change: seconds to the end of its script run, and whether it did what a user waits for."""

    seconds: float
    finished: bool  # the run ended with script_finished (successfully)
    updated: bool  # the recommendation ("Serve ...") is there and differs from the one before the change
    errors: list[str] = field(default_factory=list)  # exceptions the script run showed


@dataclass
class Result:
    users: list[list[Change]]
    wall: float
    rss: dict[str, float]  # before / with / after the users, MiB
    cpu: dict[str, float]  # seconds of CPU while the users were on: server, client (protocol mode only)
    windows: dict[str, tuple[float, float]]  # perf_counter spans: users, alone, loaded
    alone: list[Change]
    loaded: list[Change]
    heavy: list[float]  # the picker's own time, each round
    overlapped: int  # rounds in which the picker was still running when the light change finished
    server_exit: int | None = None


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


# --------------------------------------------------------------------------- protocol client
@dataclass
class Run:
    """What one script run sent back."""

    seconds: float = 0.0
    status: str = ""
    recommendation: str | None = None  # the first alert that starts with "Serve": endpoint 1's summary
    widget_ids: dict[str, str] = field(default_factory=dict)  # widget key -> element id
    elements: dict[str, int] = field(default_factory=dict)  # element type -> count
    errors: list[str] = field(default_factory=list)


class StreamlitSession:
    """One simulated browser tab: a websocket to /_stcore/stream speaking BackMsg / ForwardMsg protobufs."""

    def __init__(self, base_url: str, page: str = "", query: str = "") -> None:
        self.ws_url = "ws" + base_url.removeprefix("http") + "/_stcore/stream"
        self.page_name, self.query, self.page_hash = page, query, ""
        self.widgets: dict = {}  # element id -> WidgetState last sent (the server keeps the rest)
        self.cache: dict = {}  # hash -> cacheable ForwardMsg, as the browser's ForwardMsgCache holds them
        self.ws = None

    async def connect(self) -> None:
        from websockets.asyncio.client import connect

        # The subprotocol header is how the frontend passes "streamlit", an XSRF token and a session id to
        # reconnect to (web/server/starlette/starlette_websocket.py): a new tab sends only the first.
        self.ws = await asyncio.wait_for(
            connect(self.ws_url, subprotocols=["streamlit"], max_size=None, open_timeout=TIMEOUT_S), TIMEOUT_S)

    async def close(self) -> None:
        if self.ws is not None:
            await asyncio.wait_for(self.ws.close(), 10)

    async def run(self, values: dict[str, float] | None = None, started: asyncio.Event | None = None) -> Run:
        """Send rerun_script (with `values`, element id -> number, changed) and read until the run's final
        script_finished. `started` is set when the server says the script began (new_session)."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ClientState_pb2 import ClientState
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
        from streamlit.proto.WidgetStates_pb2 import WidgetState, WidgetStates

        for wid, value in (values or {}).items():
            self.widgets[wid] = WidgetState(id=wid, double_value=value)  # number_input's value_type
        state = ClientState(
            query_string=self.query,
            page_script_hash=self.page_hash,
            page_name="" if self.page_hash else self.page_name,  # a first load names the page by its URL path
            widget_states=WidgetStates(widgets=list(self.widgets.values())),
            cached_message_hashes=list(self.cache),
        )
        run = Run()
        t0 = time.perf_counter()
        deadline = t0 + TIMEOUT_S
        await self.ws.send(BackMsg(rerun_script=state).SerializeToString())
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(f"no script_finished in {TIMEOUT_S:.0f} s ({self.page_name or 'Plan'})")
            msg = ForwardMsg.FromString(await asyncio.wait_for(self.ws.recv(), remaining))
            kind = msg.WhichOneof("type")
            if kind == "ref_hash":  # an element this client said it holds
                msg = self.cache[msg.ref_hash]
                kind = msg.WhichOneof("type")
            elif msg.hash and msg.metadata.cacheable:
                self.cache[msg.hash] = msg
            if kind == "new_session":  # a script run begins (again, after a rerun the script asked for)
                self.page_hash = msg.new_session.page_script_hash
                run = Run(widget_ids=run.widget_ids)
                if started is not None:
                    started.set()
            elif kind == "page_info_changed":
                self.query = msg.page_info_changed.query_string
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                self._element(msg.delta.new_element, run)
            elif kind == "script_finished":
                run.status = ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished)
                if run.status != "FINISHED_EARLY_FOR_RERUN":  # else the next run follows
                    run.seconds = time.perf_counter() - t0
                    return run

    @staticmethod
    def _element(element, run: Run) -> None:
        kind = element.WhichOneof("type")
        run.elements[kind] = run.elements.get(kind, 0) + 1
        body = getattr(element, kind)
        if kind == "alert" and run.recommendation is None and body.body.startswith("Serve"):
            run.recommendation = body.body
        elif kind == "exception":
            run.errors.append(f"{body.type}: {body.message}"[:300])
        elif "id" in body.DESCRIPTOR.fields_by_name and body.id.startswith("$$ID-"):
            run.widget_ids[body.id.split("-", 2)[2]] = body.id  # "$$ID-<hash>-<key>"


async def open_plan(url: str) -> tuple[StreamlitSession, str, str | None]:
    """A new tab on the Plan page: its session, the concurrency field's element id, the recommendation."""
    session = StreamlitSession(url)
    await session.connect()
    try:
        first = await session.run()
        if first.errors or CONCURRENCY_KEY not in first.widget_ids:
            raise RuntimeError(f"the Plan page did not draw its concurrency field: {first.errors}")
    except BaseException:
        await session.close()
        raise
    return session, first.widget_ids[CONCURRENCY_KEY], first.recommendation


async def protocol_change(session: StreamlitSession, wid: str, before: str | None, value: int) -> tuple[Change, str]:
    run = await session.run({wid: float(value)})
    after = run.recommendation
    return Change(run.seconds, run.status == FINISHED, after is not None and after != before, run.errors), after


async def protocol_user(url: str, changes: int, seed: int) -> list[Change]:
    rng = random.Random(seed)
    session, wid, shown = await open_plan(url)
    out = []
    try:
        for i in range(changes):
            await asyncio.sleep(rng.uniform(0.2, 1.0))  # a user's pause between changes
            change, shown = await protocol_change(session, wid, shown, 2 + seed * 37 + i)  # no one else's: not cached
            out.append(change)
    finally:
        await session.close()
    return out


async def protocol_heavy_versus_light(url: str, rounds: int, windows: dict) -> tuple[list, list, list, int]:
    """Light changes alone, then each sent once a fresh GPU picker's script run has begun; the picker's time."""
    light, wid, shown = await open_plan(url)
    alone, loaded, heavy_times, overlapped = [], [], [], 0
    try:
        t0 = time.perf_counter()
        for i in range(rounds):
            change, shown = await protocol_change(light, wid, shown, 500 + i)
            alone.append(change)
        windows["alone"] = (t0, time.perf_counter())
        for i in range(rounds):
            heavy = StreamlitSession(url, HEAVY_PAGE, HEAVY_QUERY + f"&q={50 + i}")  # a new link each time
            started = time.perf_counter()
            await heavy.connect()
            begun = asyncio.Event()
            picker = asyncio.create_task(heavy.run(started=begun))
            waiter = asyncio.create_task(begun.wait())
            try:
                await asyncio.wait({waiter, picker}, timeout=TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
                if picker.done():
                    picker.result()  # its error, if it failed before the light change could be sent
                if not begun.is_set():
                    raise TimeoutError(f"the GPU picker's script run did not begin in {TIMEOUT_S:.0f} s")
                # the picker is running on the server now
                change, shown = await protocol_change(light, wid, shown, 600 + i)
                loaded.append(change)
                overlapped += not picker.done()
                run = await asyncio.wait_for(picker, TIMEOUT_S)
            finally:
                for task in (waiter, picker):
                    task.cancel()
                await asyncio.gather(waiter, picker, return_exceptions=True)
                await heavy.close()
            heavy_times.append(time.perf_counter() - started)
            if run.status != FINISHED or run.errors or not (run.elements.get("dataframe") or run.elements.get("alert")):
                raise RuntimeError(f"the GPU picker did not finish with a table or a notice: {run.status} {run.errors}")
        windows["loaded"] = (windows["alone"][1], time.perf_counter())
    finally:
        await light.close()
    return alone, loaded, heavy_times, overlapped


async def protocol_load(url: str, pid: int, users: int, changes: int, rounds: int) -> Result:
    warm, _, _ = await open_plan(url)  # the first script run loads the knowledge base
    await warm.close()
    rss = {"before": rss_mib(pid)}
    server0, client0 = cpu_s(pid), time.process_time()
    started = time.perf_counter()
    results = await asyncio.gather(*(protocol_user(url, changes, seed) for seed in range(users)))
    ended = time.perf_counter()
    cpu = {"server": cpu_s(pid) - server0, "client": time.process_time() - client0}
    rss["with"] = rss_mib(pid)
    windows = {"users": (started, ended)}
    alone, loaded, heavy, overlapped = await protocol_heavy_versus_light(url, rounds, windows)
    return Result(list(results), ended - started, rss, cpu, windows, alone, loaded, heavy, overlapped)


# --------------------------------------------------------------------------- browser client
SUMMARY = "[data-testid='stAlert']:has-text('Serve')"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
TIMEOUT_MS = int(TIMEOUT_S * 1000)


async def browser_open_plan(browser, url: str):
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(url, timeout=TIMEOUT_MS)
    await page.locator(SUMMARY).first.wait_for(timeout=TIMEOUT_MS)
    await page.locator(IDLE).wait_for(state="attached", timeout=TIMEOUT_MS)
    return page


async def browser_change(page, value: int) -> Change:
    """Type a new concurrency and wait until the recommendation on screen changes (else a timeout)."""
    field_ = page.locator(f".st-key-{CONCURRENCY_KEY} input")
    before = await page.locator(SUMMARY).first.inner_text()
    started = time.perf_counter()
    await field_.fill(str(value))
    await field_.press("Enter")
    await page.wait_for_function(
        """old => [...document.querySelectorAll("[data-testid='stAlert']")]
                   .some(el => el.innerText.includes("Serve") && el.innerText !== old)""",
        arg=before, timeout=TIMEOUT_MS)
    await page.locator(IDLE).wait_for(state="attached", timeout=TIMEOUT_MS)
    errors = await page.locator("[data-testid='stException']").all_inner_texts()
    return Change(time.perf_counter() - started, True, True, [e[:300] for e in errors])


async def browser_user(browser, url: str, changes: int, seed: int) -> list[Change]:
    rng = random.Random(seed)
    page = await browser_open_plan(browser, url)
    times = []
    for i in range(changes):
        await asyncio.sleep(rng.uniform(0.2, 1.0))  # a user's pause between changes
        times.append(await browser_change(page, 2 + seed * 37 + i))  # a value no one else asks for: not cached
    await page.close()
    return times


async def browser_heavy_versus_light(browser, url: str, rounds: int, windows: dict) -> tuple[list, list, list, int]:
    """Light widget changes alone, then each while a fresh GPU picker page loads; and the picker's own time."""
    light = await browser_open_plan(browser, url)
    t0 = time.perf_counter()
    alone = [await browser_change(light, 500 + i) for i in range(rounds)]
    windows["alone"] = (t0, time.perf_counter())
    loaded, heavy_times, overlapped = [], [], 0
    for i in range(rounds):
        heavy = await browser.new_page(viewport={"width": 1280, "height": 900})
        started = time.perf_counter()
        await heavy.goto(url + HEAVY_URL + f"&q={50 + i}", timeout=TIMEOUT_MS)  # a new link each time: not cached
        await asyncio.sleep(0.3)  # the picker is running on the server now
        loaded.append(await browser_change(light, 600 + i))
        overlapped += await heavy.locator("[data-testid='stApp'][data-test-script-state='running']").count() > 0
        await heavy.locator(IDLE).wait_for(state="attached", timeout=TIMEOUT_MS)
        await heavy.locator("[data-testid='stDataFrame'], [data-testid='stAlert']").first.wait_for(timeout=TIMEOUT_MS)
        heavy_times.append(time.perf_counter() - started)
        await heavy.close()
    windows["loaded"] = (windows["alone"][1], time.perf_counter())
    await light.close()
    return alone, loaded, heavy_times, overlapped


async def browser_load(url: str, pid: int, users: int, changes: int, rounds: int) -> Result:
    from playwright.async_api import async_playwright

    exe = chromium_path()
    if not exe:
        raise SystemExit("no Chromium: apt-get install chromium")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=exe, args=[
            "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-renderer-backgrounding", "--disable-background-timer-throttling"])
        warm = await browser_open_plan(browser, url)  # the first script run loads the knowledge base
        await warm.close()
        rss = {"before": rss_mib(pid)}
        server0 = cpu_s(pid)
        started = time.perf_counter()
        results = await asyncio.gather(*(browser_user(browser, url, changes, seed) for seed in range(users)))
        ended = time.perf_counter()
        cpu = {"server": cpu_s(pid) - server0}
        rss["with"] = rss_mib(pid)
        windows = {"users": (started, ended)}
        alone, loaded, heavy, overlapped = await browser_heavy_versus_light(browser, url, rounds, windows)
        await browser.close()
    return Result(list(results), ended - started, rss, cpu, windows, alone, loaded, heavy, overlapped)


# --------------------------------------------------------------------------- server, report
TIMING = re.compile(r"advisor-timing (\S+) ([0-9.]+) ms")


class ServerLog:
    """The server's `advisor-timing <page> <ms>` lines (streamlit_app.py, with ADVISOR_TIMING_LOG set), read as
    they come, each with the time it arrived."""

    def __init__(self, proc) -> None:
        self.runs: list[tuple[float, str, float]] = []
        self.tracebacks = 0
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc) -> None:
        for line in proc.stdout:  # print() writes its text and its newline apart: threads' lines can merge
            for page, ms in TIMING.findall(line):
                self.runs.append((time.perf_counter(), page, float(ms)))
            self.tracebacks += "Traceback (most recent call last)" in line

    def between(self, span: tuple[float, float], page: str | None = None) -> list[float]:
        start, end = span
        return [ms / 1000 for at, p, ms in self.runs if start <= at <= end and (page is None or p == page)]


async def run(client: str, users: int, changes: int, rounds: int) -> tuple[Result, ServerLog]:
    """Start a server (tests/e2e/conftest.py start_server), put the load on it, always stop it."""
    previous = os.environ.get("ADVISOR_TIMING_LOG")
    os.environ["ADVISOR_TIMING_LOG"] = "1"  # for the server only: a test's later servers must not inherit it
    try:
        proc, url = start_server()
    finally:
        if previous is None:
            del os.environ["ADVISOR_TIMING_LOG"]
        else:
            os.environ["ADVISOR_TIMING_LOG"] = previous
    log = ServerLog(proc)
    try:
        load = protocol_load if client == "protocol" else browser_load
        result = await load(url, proc.pid, users, changes, rounds)
        await asyncio.sleep(2)
        result.rss["after"] = rss_mib(proc.pid)
    finally:
        proc.terminate()  # not stop_server(): the log's thread is the one reading the server's output
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    result.server_exit = proc.returncode
    return result, log


def median(changes: list[Change]) -> float:
    return statistics.median(c.seconds for c in changes)


def failures(result: Result, log: ServerLog) -> list[str]:
    out = []
    for name, changes in [*((f"user {i}", r) for i, r in enumerate(result.users)), ("light", result.alone),
                          ("light beside the picker", result.loaded)]:
        for j, c in enumerate(changes):
            if not (c.finished and c.updated) or c.errors:
                out.append(f"{name}, change {j + 1}: finished {c.finished}, recommendation updated {c.updated}"
                           + (f", errors {c.errors}" if c.errors else ""))
    if log.tracebacks:
        out.append(f"{log.tracebacks} traceback(s) in the server's output")
    return out


def report(client: str, result: Result, log: ServerLog) -> None:
    users, changes = len(result.users), len(result.users[0])
    times = [c.seconds for r in result.users for c in r]
    upto = ("script_finished (the run's recommendation updated)" if client == "protocol"
            else "the updated recommendation on screen (the app idle)")
    print("per user (s):", "; ".join(", ".join(f"{c.seconds:.2f}" for c in r) for r in result.users))
    print(f"{client} client: {users} users x {changes} widget changes ({len(times)} in {result.wall:.1f} s), time "
          f"from the change to {upto}: p50 {pct(times, 50):.2f} s, "
          f"p95 {pct(times, 95):.2f} s, max {max(times):.2f} s - goal p95 < 2 s")
    server = log.between(result.windows["users"])
    if server:
        print(f"server side, each script run while the users were on ({len(server)} runs): p50 "
              f"{pct(server, 50):.2f} s, p95 {pct(server, 95):.2f} s, max {max(server):.2f} s")
    cpu = f"CPU while the users were on: server {result.cpu['server']:.1f} s"
    if "client" in result.cpu:
        cpu += f", this client (all {users} users) {result.cpu['client']:.1f} s"
    print(f"{cpu}, over {result.wall:.1f} s of wall time")
    print(f"server RSS: {result.rss['before']:.0f} MiB before the users, {result.rss['with']:.0f} MiB with them, "
          f"{result.rss['after']:.0f} MiB after")
    alone, loaded = median(result.alone), median(result.loaded)
    print(f"light widget change: median {alone:.2f} s alone, {loaded:.2f} s while a GPU picker on "
          f"Llama-3.1-405B runs (picker {statistics.median(result.heavy):.2f} s; still running when the light "
          f"change finished in {result.overlapped} of {len(result.loaded)} rounds): held up {loaded - alone:+.2f} s "
          "- goal < 0.5 s")
    light_alone = log.between(result.windows["alone"], page="wizard")
    light_loaded = log.between(result.windows["loaded"], page="wizard")
    picker = log.between(result.windows["loaded"], page=HEAVY_PAGE)
    if light_alone and light_loaded:
        print(f"  server side: the light change's script run median {statistics.median(light_alone):.2f} s alone, "
              f"{statistics.median(light_loaded):.2f} s beside the picker (its run: median "
              f"{statistics.median(picker) if picker else float('nan'):.2f} s): held up "
              f"{statistics.median(light_loaded) - statistics.median(light_alone):+.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", choices=["protocol", "browser"], default="protocol",
                        help="protocol: websockets speaking Streamlit's protocol (the server's figures); "
                        "browser: Chromium pages (the browser's time too)")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5, help="light-versus-heavy rounds")
    args = parser.parse_args(argv)
    if not (1 <= args.users <= 40 and 1 <= args.changes <= 20 and 1 <= args.rounds <= 20):
        parser.error("--users 1-40, --changes 1-20, --rounds 1-20")
    result, log = asyncio.run(run(args.client, args.users, args.changes, args.rounds))
    report(args.client, result, log)
    bad = failures(result, log)
    for line in bad:
        print("FAILED:", line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

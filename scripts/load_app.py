"""Shared-server load: N browser users (Chromium pages via Playwright) on one `streamlit run` on 127.0.0.1, each
changing a widget on the Plan page and waiting for the updated recommendation. Prints:

1. p50 / p95 time from a widget change to the updated recommendation on screen, over every user's changes;
2. the server's resident memory (RSS, from /proc) before the users arrive and after they leave;
3. a light request (one more user's widget change) timed alone and while a heavy one runs (the GPU picker on
   Llama-3.1-405B: the costliest request a link can make), and the difference.

Bounded: --users (at most 40), --changes per user (at most 20), and every wait has a timeout.

    .venv/bin/python scripts/load_app.py [--users 20] [--changes 5]

Goal (issue 11), on the 2-core machine: p95 under 2 s; a heavy request holds a light one up by under 0.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import chromium_path, start_server  # noqa: E402

SUMMARY = "[data-testid='stAlert']:has-text('Serve')"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
HEAVY_URL = "/gpus?m=meta-llama%2FLlama-3.1-405B-Instruct&g=h100-sxm"
TIMEOUT_MS = 120_000
WINDOWS: dict[str, list[float]] = {"alone": [0.0, 0.0], "loaded": [0.0, 0.0]}  # light changes: alone / beside heavy


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def open_plan(browser: Browser, url: str) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(url, timeout=TIMEOUT_MS)
    await page.locator(SUMMARY).first.wait_for(timeout=TIMEOUT_MS)
    await page.locator(IDLE).wait_for(state="attached", timeout=TIMEOUT_MS)
    return page


async def change(page: Page, value: int) -> float:
    """Type a new concurrency and wait until the recommendation on screen changes; seconds."""
    field = page.locator(".st-key-w_e0_concurrency input")
    before = await page.locator(SUMMARY).first.inner_text()
    started = time.perf_counter()
    await field.fill(str(value))
    await field.press("Enter")
    await page.wait_for_function(
        """old => [...document.querySelectorAll("[data-testid='stAlert']")]
                   .some(el => el.innerText.includes("Serve") && el.innerText !== old)""",
        arg=before, timeout=TIMEOUT_MS)
    await page.locator(IDLE).wait_for(state="attached", timeout=TIMEOUT_MS)
    return time.perf_counter() - started


async def user(browser: Browser, url: str, changes: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    page = await open_plan(browser, url)
    times = []
    for i in range(changes):
        await asyncio.sleep(rng.uniform(0.2, 1.0))  # a user's pause between changes
        times.append(await change(page, 2 + seed * 37 + i))  # a value no one else asks for: not cached
    await page.close()
    return times


async def heavy_versus_light(browser: Browser, url: str, rounds: int) -> tuple[list[float], list[float], float]:
    """Light widget changes alone, then each while a fresh GPU picker page loads; and the picker's own time."""
    light = await open_plan(browser, url)
    WINDOWS["alone"] = [time.perf_counter(), 0.0]
    alone = [await change(light, 500 + i) for i in range(rounds)]
    WINDOWS["alone"][1] = WINDOWS["loaded"][0] = time.perf_counter()
    loaded, heavy_times = [], []
    for i in range(rounds):
        heavy = await browser.new_page(viewport={"width": 1280, "height": 900})
        started = time.perf_counter()
        await heavy.goto(url + HEAVY_URL + f"&q={50 + i}", timeout=TIMEOUT_MS)  # a new link each time: not cached
        await asyncio.sleep(0.3)  # the picker is running on the server now
        loaded.append(await change(light, 600 + i))
        await heavy.locator(IDLE).wait_for(state="attached", timeout=TIMEOUT_MS)
        await heavy.locator("[data-testid='stDataFrame'], [data-testid='stAlert']").first.wait_for(timeout=TIMEOUT_MS)
        heavy_times.append(time.perf_counter() - started)
        await heavy.close()
    WINDOWS["loaded"][1] = time.perf_counter()
    await light.close()
    return alone, loaded, statistics.median(heavy_times)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


class ServerLog:
    """The server's `advisor-timing <page> <ms>` lines (streamlit_app.py, with ADVISOR_TIMING_LOG set), read as
    they come, each with the time it arrived."""

    def __init__(self, proc) -> None:
        self.runs: list[tuple[float, str, float]] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc) -> None:
        for line in proc.stdout:
            parts = line.split()
            if len(parts) == 4 and parts[0] == "advisor-timing":
                self.runs.append((time.perf_counter(), parts[1], float(parts[2])))

    def between(self, start: float, end: float, page: str | None = None) -> list[float]:
        return [ms / 1000 for at, p, ms in self.runs if start <= at <= end and (page is None or p == page)]


async def run(users: int, changes: int, rounds: int) -> None:
    exe = chromium_path()
    if not exe:
        raise SystemExit("no Chromium: apt-get install chromium")
    os.environ["ADVISOR_TIMING_LOG"] = "1"
    proc, url = start_server()
    log = ServerLog(proc)
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=exe, args=[
                "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-renderer-backgrounding", "--disable-background-timer-throttling"])
            warm = await open_plan(browser, url)  # the first script run loads the knowledge base
            await warm.close()
            before = rss_mib(proc.pid)
            started = time.perf_counter()
            results = await asyncio.gather(*(user(browser, url, changes, seed) for seed in range(users)))
            ended = time.perf_counter()
            wall = ended - started
            after_users = rss_mib(proc.pid)
            alone, loaded, heavy = await heavy_versus_light(browser, url, rounds)
            await browser.close()
        await asyncio.sleep(2)
        after = rss_mib(proc.pid)
    finally:
        proc.terminate()  # not stop_server(): the log's thread is the one reading the server's output
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    times = [t for r in results for t in r]
    print("per user (s):", "; ".join(", ".join(f"{t:.1f}" for t in r) for r in results))
    print(f"{users} users x {changes} widget changes ({len(times)} in {wall:.0f} s), time to updated "
          f"recommendation: p50 {pct(times, 50):.2f} s, p95 {pct(times, 95):.2f} s, max {max(times):.2f} s "
          "- goal p95 < 2 s")
    server = log.between(started, ended)
    if server:
        print(f"server side, each script run while the users were on ({len(server)} runs): p50 "
              f"{pct(server, 50):.2f} s, p95 {pct(server, 95):.2f} s, max {max(server):.2f} s (the rest of the "
              f"time above is {users} Chromium pages rendering on the same machine)")
    print(f"server RSS: {before:.0f} MiB before the users, {after_users:.0f} MiB with them, {after:.0f} MiB after")
    delay = statistics.median(loaded) - statistics.median(alone)
    print(f"light widget change: median {statistics.median(alone):.2f} s alone, {statistics.median(loaded):.2f} s "
          f"while a GPU picker on Llama-3.1-405B runs (picker page {heavy:.1f} s): held up {delay:+.2f} s "
          "- goal < 0.5 s")
    light_alone = log.between(*WINDOWS["alone"], page="wizard")
    light_loaded = log.between(*WINDOWS["loaded"], page="wizard")
    picker = log.between(*WINDOWS["loaded"], page="gpus")
    if light_alone and light_loaded:
        print(f"  server side: the light change's script run median {statistics.median(light_alone):.2f} s alone, "
              f"{statistics.median(light_loaded):.2f} s beside the picker (its run: median "
              f"{statistics.median(picker) if picker else float('nan'):.2f} s): held up "
              f"{statistics.median(light_loaded) - statistics.median(light_alone):+.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5, help="light-versus-heavy rounds")
    args = parser.parse_args()
    if not (1 <= args.users <= 40 and 1 <= args.changes <= 20 and 1 <= args.rounds <= 20):
        raise SystemExit("--users 1-40, --changes 1-20, --rounds 1-20")
    asyncio.run(run(args.users, args.changes, args.rounds))


if __name__ == "__main__":
    main()

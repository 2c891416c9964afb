"""In a real browser: the plan's charts on a 390 px phone (no sideways page scroll, chart text inside its chart),
chart text readable in the dark theme, and the runtime box's type-ahead."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import wait_for_idle

L4 = "v=1&m=meta-llama/Llama-3.1-8B-Instruct&g=l4&n=1&o=47&e=default:interactive-chat:4:1024:256:0:auto"

# Every SVG text of each Plotly chart against the chart's own box (a label cut by the edge pokes out of it).
CHART_TEXT = """() => [...document.querySelectorAll('.js-plotly-plot')].map(plot => {
  const box = plot.getBoundingClientRect();
  const out = [];
  for (const t of plot.querySelectorAll('svg text')) {
    const r = t.getBoundingClientRect();
    if (!t.textContent.trim() || r.width === 0) continue;
    if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1)
      out.push(`${t.textContent} [${Math.round(r.left)}..${Math.round(r.right)} of ${Math.round(box.left)}..${Math.round(box.right)}]`);
  }
  return {width: box.width, texts: plot.querySelectorAll('svg text').length, outside: out};
})"""

# Luminance contrast of each chart text's fill against the page background behind the chart.
CONTRAST = """() => {
  const rgb = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
      .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const app = rgb(getComputedStyle(document.querySelector('[data-testid="stApp"]')).backgroundColor);
  const rows = [];
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    const bgRect = plot.querySelector('rect.bg');
    const paper = plot.querySelector('.main-svg');
    let bg = rgb(getComputedStyle(paper).backgroundColor);
    if (bg.length < 3 || bg[3] === 0) bg = app;
    for (const t of plot.querySelectorAll('g.xtick text, g.ytick text, .gtitle, .xtitle, .ytitle, .legendtext, .annotation-text')) {
      if (!t.textContent.trim()) continue;
      const fill = rgb(getComputedStyle(t).fill);
      if (fill.length < 3) continue;
      rows.push({text: t.textContent.slice(0, 40), ratio: ratio(fill, bg.slice(0, 3)), fill: getComputedStyle(t).fill});
    }
  }
  return {app: app, rows: rows};
}"""


def phone(browser: Browser, **options) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, **options)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def phone_page(browser: Browser) -> Iterator[Page]:
    yield from phone(browser)


@pytest.fixture
def dark_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme="dark")
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def charts_drawn(page: Page, count: int = 2) -> None:
    page.locator(".js-plotly-plot").nth(count - 1).wait_for(state="attached", timeout=30_000)
    page.locator(".js-plotly-plot svg text").first.wait_for(state="attached", timeout=30_000)
    page.wait_for_timeout(500)  # Plotly lays out after the element attaches


def no_sideways_scroll(page: Page) -> None:
    widths = page.evaluate("""() => ({viewport: window.innerWidth, doc: document.documentElement.scrollWidth,
        body: document.body.scrollWidth, main: document.querySelector('[data-testid="stMain"]').scrollWidth})""")
    assert max(widths["doc"], widths["body"], widths["main"]) <= widths["viewport"], widths


def table_scrolls_in_its_box(page: Page) -> None:
    """The first wide table sits inside a 390 px screen and scrolls sideways inside its own box, never the page."""
    grid = page.get_by_test_id("stDataFrame").first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 391, box
    page.mouse.wheel(400, 0)
    assert page.evaluate("() => window.scrollX") == 0
    no_sideways_scroll(page)


def test_the_plan_charts_fit_a_phone(phone_page: Page, app_url: str):
    page = phone_page
    page.goto(f"{app_url}/?{L4}")
    wait_for_idle(page)
    expect(page.get_by_test_id("stAlert").filter(has_text="Serve").first).to_be_visible()
    charts_drawn(page)
    for plot in page.locator(".js-plotly-plot").all():
        plot.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    result = page.evaluate(CHART_TEXT)
    assert len(result) >= 2
    for chart in result:
        assert chart["width"] <= 390 and chart["texts"] > 3, chart
        assert chart["outside"] == [], chart
    no_sideways_scroll(page)
    # the KV list under the chart and the TTFT assumption are on the page, wrapped to the phone's width
    expect(page.get_by_text("misses the 47 ms time-per-token target: 47.3 ms").first).to_be_attached()
    expect(page.get_by_text("assumes no time spent queued").first).to_be_attached()
    # a wide table scrolls inside its own box, never the page
    page.get_by_role("tab", name="Ruled out").click()
    wait_for_idle(page)
    table_scrolls_in_its_box(page)
    expect(page.get_by_test_id("stException")).not_to_be_attached()


def test_the_speed_charts_fit_a_phone(phone_page: Page, app_url: str):
    page = phone_page
    page.goto(f"{app_url}/?{L4}")
    wait_for_idle(page)
    page.get_by_role("tab", name="Speed").click()
    wait_for_idle(page)
    charts_drawn(page, 4)
    for plot in page.locator(".js-plotly-plot").all():
        plot.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    for chart in page.evaluate(CHART_TEXT):
        assert chart["outside"] == [], chart
    no_sideways_scroll(page)


def test_chart_text_is_readable_in_the_dark_theme(dark_page: Page, app_url: str):
    page = dark_page
    page.goto(f"{app_url}/?{L4}")
    wait_for_idle(page)
    charts_drawn(page)
    result = page.evaluate(CONTRAST)
    app = result["app"]
    assert sum(app[:3]) < 150, app  # the page really is dark
    assert len(result["rows"]) > 10
    poor = [r for r in result["rows"] if r["ratio"] < 3]
    assert poor == [], poor


def test_chart_text_is_readable_in_the_light_theme(page: Page, app_url: str):
    page.goto(f"{app_url}/?{L4}")
    wait_for_idle(page)
    charts_drawn(page)
    poor = [r for r in page.evaluate(CONTRAST)["rows"] if r["ratio"] < 3]
    assert poor == [], poor


def test_typing_lla_in_the_runtime_box_finds_llama_cpp(page: Page, app_url: str):
    page.goto(f"{app_url}/?{L4}")
    wait_for_idle(page)
    box = page.locator(".st-key-w_runtime input")
    box.click()
    box.fill("lla")
    option = page.get_by_role("option", name="llama.cpp", exact=False).first
    expect(option).to_be_visible()
    assert option.inner_text().startswith("llama.cpp")
    option.click()
    wait_for_idle(page)
    expect(page.get_by_test_id("stAlert").filter(has_text="Serve").first).to_contain_text("llama.cpp")

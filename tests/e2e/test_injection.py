"""In a real browser: crafted permalinks render as text (no live link, no image fetched, no emoji), and the
wizard fits a phone's width."""

from urllib.parse import quote, urlparse

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import wait_for_idle

EVIL = "evil.example"
CRAFTED = {  # name -> (query string as a shared link carries it, the text the notice shows literally)
    "unknown key with a link": ("zz%2A%2Abold%2A%2A%5Bclick%20here%5D%28https%3A%2F%2Fevil.example%29=1",
                                "zz**bold**[click here](https://evil."),
    "runtime that is an image": ("r=" + quote("![t](http://evil.example/x.png)"), "![t](http://evil.example/x.png)"),
    "model that is a link": ("m=" + quote("[click here](https://evil.example)"), "[click here](https://evil.example)"),
    "gpu that is a bare url and html": ("g=" + quote("https://evil.example/<img src=http://evil.example/y.png>"),
                                        "https://evil.example/<img"),
    "emoji and icon shortcodes": (quote(":smile:") + "=1&r=" + quote(":material/home:"), ":smile:"),
    "workload with a link": ("e=" + quote("default:[x](www.evil.example):16:1024:256:0:auto", safe=":"),
                             "[x](www.evil.example)"),
}


def external_images(page: Page, base: str) -> list[str]:
    sources = page.eval_on_selector_all("img", "els => els.map(e => e.getAttribute('src') || '')")
    return [s for s in sources if s.startswith(("http:", "https:", "//")) and not s.startswith(base)]


@pytest.mark.parametrize("name", list(CRAFTED))
def test_a_crafted_permalink_renders_as_text(page: Page, app_url: str, name: str):
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if (urlparse(r.url).hostname or "").endswith(EVIL) else None)
    query, literal = CRAFTED[name]
    page.goto(f"{app_url}/?{query}")
    wait_for_idle(page)
    notice = page.get_by_test_id("stAlert").filter(has_text="could not be used")
    expect(notice).to_be_visible()
    expect(page.get_by_test_id("stException")).not_to_be_attached()
    assert page.locator(f"a[href*='{EVIL}']").count() == 0
    assert page.locator(f"img[src*='{EVIL}']").count() == 0
    assert external_images(page, app_url) == []
    assert fetched == []  # the browser asked the injected host for nothing
    text = notice.inner_text().replace("\u200b", "")
    assert "\U0001f604" not in page.inner_text("body")  # :smile: stayed text
    assert literal in text, text  # shown as typed, not rendered
    expect(page.get_by_test_id("stAlert").filter(has_text="Serve").first).to_be_visible()  # and the plan still shows


def test_the_wizard_fits_a_phone(browser, app_url: str):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        page.goto(app_url)
        wait_for_idle(page)
        summary = page.get_by_test_id("stAlert").filter(has_text="Serve").first
        expect(summary).to_be_visible()
        expect(page.get_by_test_id("stException")).not_to_be_attached()
        widths = page.evaluate("""() => ({
            viewport: window.innerWidth,
            doc: document.documentElement.scrollWidth,
            body: document.body.scrollWidth,
            main: document.querySelector('[data-testid="stMain"]').scrollWidth,
        })""")
        assert widths["doc"] <= widths["viewport"] and widths["body"] <= widths["viewport"], widths
        assert widths["main"] <= widths["viewport"], widths
        summary.scroll_into_view_if_needed()
        box = summary.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= widths["viewport"] + 1, box
        # wide content (tables, code) scrolls inside its own box, not the page
        page.mouse.wheel(400, 0)
        assert page.evaluate("() => window.scrollX") == 0
    finally:
        context.close()


def test_an_imported_plan_says_what_it_could_not_restore(page: Page, app_url: str):
    endpoints = "".join(f"  - name: e{i}\n    workload: interactive-chat\n" for i in range(6))
    text = f"model: not-a-model\ngpu: l40s\nendpoints:\n{endpoints}".encode()
    page.goto(app_url)
    wait_for_idle(page)
    page.locator(".st-key-upload_plan").get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
        files=[{"name": "x[a](https:evil.example).yaml", "mimeType": "application/yaml", "buffer": text}])
    wait_for_idle(page)
    notice = page.get_by_test_id("stSidebar").get_by_test_id("stAlert").filter(has_text="Restored from")
    expect(notice).to_contain_text("Not restored: model 'not-a-model'")
    expect(notice).to_contain_text("Not restored: endpoints 5-6")
    assert "x[a](https:" in notice.inner_text().replace("\u200b", "")
    assert page.locator(f"a[href*='{EVIL}']").count() == 0
    expect(page.get_by_test_id("stException")).not_to_be_attached()

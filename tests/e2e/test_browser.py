"""What only a browser shows: cold-start deep links, the URL bar, downloads, uploads, no stException."""

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from playwright.sync_api import Page, expect

from advisor import plan
from advisor.plan.permalink import from_query
from tests.e2e.conftest import wait_for_idle

LINK = "v=1&m=meta-llama/Llama-3.1-70B-Instruct&g=a100-80gb&n=1&e=chat:interactive-chat:16:1024:256:0:auto"
PAGES = {  # url path -> text the page shows once rendered
    "wizard": "Precision Advisor",
    "compare": "Compare configurations",
    "gpus": "GPU picker",
    "estimate": "Memory calculator",
    "knowledge": "Knowledge base",
    "verify": "Verify",
}


def summary(page: Page) -> str:
    return page.get_by_test_id("stAlert").filter(has_text="Serve").first.inner_text()


def changed_from(page: Page, before: str) -> None:
    """Wait for the rerun an input caused to show (a fixed grace period races on a busy machine)."""
    expect(page.get_by_test_id("stAlert").filter(has_text="Serve").first).not_to_have_text(before, timeout=30_000)
    wait_for_idle(page)


@pytest.mark.parametrize("path", list(PAGES))
def test_cold_deep_link_to_each_page(page: Page, cold_app_url: str, path: str):
    page.goto(f"{cold_app_url}/{path}?{LINK}")  # the server's very first request
    wait_for_idle(page)
    expect(page.get_by_role("heading", name=PAGES[path]).first).to_be_visible()
    expect(page.get_by_test_id("stException")).not_to_be_attached()
    nav = " ".join(page.get_by_test_id("stSidebarNavLink").all_inner_texts()).lower()
    assert "streamlit app" not in nav and "wizard" not in nav  # no legacy file list exposed
    # ...and the user can still move between pages, with the link's settings kept
    for label in ("Plan", "Compare", "GPU picker", "Memory calculator", "Knowledge base", "Verify"):
        expect(page.get_by_role("link", name=label).first).to_be_visible()
    if path != "wizard":
        page.get_by_role("link", name="Plan").first.click()
        wait_for_idle(page)
        expect(page.get_by_test_id("stAlert").filter(has_text="Serve")).to_contain_text("Llama 3.1 70B")
    if path == "wizard":
        expect(page.get_by_test_id("stAlert").filter(has_text="Serve")).to_contain_text("Llama 3.1 70B")


def test_permalink_round_trip_in_a_new_browser_context(page: Page, app_url: str, browser):
    page.goto(app_url)
    wait_for_idle(page)
    before = summary(page)
    gpu = page.locator(".st-key-w_gpu input")  # type to filter the long list, as a user would, then Enter
    gpu.click()
    gpu.fill("L40S")
    expect(page.get_by_role("option", name="NVIDIA L40S")).to_be_visible()
    gpu.press("Enter")
    changed_from(page, before)
    before = summary(page)
    field = page.locator(".st-key-w_e0_concurrency input")
    field.fill("48")
    field.press("Enter")
    changed_from(page, before)
    # the URL is synced in its own message; wait for it rather than racing the summary
    page.wait_for_function("() => decodeURIComponent(location.search).includes(':interactive-chat:48:')",
                           timeout=30_000)
    wait_for_idle(page)
    first = summary(page)
    url = page.url
    state, notes = from_query({k: v if k == "e" else v[-1] for k, v in parse_qs(urlparse(url).query).items()})
    assert notes == [] and state.gpu == "l40s" and state.endpoints[0].concurrency == 48
    other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    other.goto(url)
    wait_for_idle(other)
    assert summary(other) == first
    expect(other.get_by_test_id("stException")).not_to_be_attached()
    other.context.close()


def test_download_the_plan_and_parse_it(page: Page, app_url: str):
    page.goto(f"{app_url}/?{LINK}")
    wait_for_idle(page)
    with page.expect_download() as download:
        page.locator(".st-key-download_plan").get_by_role("button").click()
    assert download.value.suggested_filename == "Llama-3.1-70B-Instruct-a100-80gb.plan.yaml"
    text = Path(download.value.path()).read_text()
    document = yaml.safe_load(text)
    assert document["schema_version"] == 2 and document["hardware"]["gpu"] == "a100-80gb"
    request = plan.load(text)
    assert plan.build(request) == document


def test_upload_a_bad_file_and_see_the_error(page: Page, app_url: str):
    page.goto(app_url)
    wait_for_idle(page)
    page.locator(".st-key-upload_plan").get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
        files=[{"name": "broken.yaml", "mimeType": "application/yaml", "buffer": b"model: x\ngpu: l4\nsize: huge\n"}])
    wait_for_idle(page)
    expect(page.get_by_test_id("stSidebar").get_by_test_id("stAlert")).to_contain_text("size")
    expect(page.get_by_test_id("stException")).not_to_be_attached()


def test_a_model_revision_typed_on_a_phone_reaches_the_link_and_the_downloaded_plan(browser, app_url: str):
    """Issue 12 drift: the Revision field beside the model, at 390 px: the link carries it (mr) and the plan the
    download gives pins it in the serve command of a runtime that loads the model's own repo."""
    page = browser.new_context(viewport={"width": 390, "height": 844}, accept_downloads=True).new_page()
    page.goto(f"{app_url}/?v=1&m=meta-llama/Llama-3.1-8B-Instruct&g=h100-sxm&n=1&r=tgi"
              "&e=chat:interactive-chat:16:1024:256:0:auto")
    wait_for_idle(page)
    field = page.locator(".st-key-w_model_revision input")
    field.fill("0e9e39f2")
    field.press("Enter")
    page.wait_for_function("() => new URLSearchParams(location.search).get('mr') === '0e9e39f2'", timeout=30_000)
    wait_for_idle(page)
    with page.expect_download() as download:
        page.locator(".st-key-download_plan").get_by_role("button").click()
    document = yaml.safe_load(Path(download.value.path()).read_text())
    assert document["model"]["revision"] == "0e9e39f2"
    assert "--revision 0e9e39f2" in document["endpoints"][0]["runtime"]["serve_command"]
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 392, f"the page scrolls sideways at 390 px ({width} px)"
    expect(page.get_by_test_id("stException")).not_to_be_attached()
    page.context.close()

"""In a real browser (issue 12): export the bundle from the Plan page, upload the plan and its results on the Verify
page, see the verdict, the checks and the charts; a bad file gets one error naming it while the verdict stays; the
page fits a 390 px phone and its charts read in the dark theme."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import wait_for_idle
from tests.e2e.test_experience import CHART_TEXT, CONTRAST, L4, no_sideways_scroll, table_scrolls_in_its_box

RESULTS = Path(__file__).resolve().parents[1] / "fixtures" / "results"
RUN1 = sorted(str(p) for p in (RESULTS / "run1").rglob("*.json"))


def uploader(page: Page, key: str):
    return page.locator(f".st-key-{key}").get_by_test_id("stFileUploaderDropzoneInput")


def verdict(page: Page):
    return page.get_by_test_id("stAlert").filter(has_text="Keep pick")


def upload_plan_and_run1(page: Page) -> None:
    uploader(page, "verify_plan").set_input_files(str(RESULTS / "plan.yaml"))
    wait_for_idle(page)
    expect(page.get_by_test_id("stAlert").filter(has_text="Now upload the result files")).to_be_visible(
        timeout=30_000)
    uploader(page, "verify_results").set_input_files(RUN1)
    expect(verdict(page)).to_be_visible(timeout=30_000)
    wait_for_idle(page)


def charts_drawn(page: Page) -> None:
    page.locator(".js-plotly-plot").nth(1).wait_for(state="attached", timeout=30_000)
    page.locator(".js-plotly-plot svg text").first.wait_for(state="attached", timeout=30_000)
    page.wait_for_timeout(500)  # Plotly lays out after the element attaches


def test_export_the_bundle_then_verify_the_results(page: Page, app_url: str):
    page.goto(f"{app_url}/?{L4}")
    wait_for_idle(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download bundle (.zip)").click()
    assert download.value.suggested_filename == "Llama-3.1-8B-Instruct-l4.bundle.zip"
    with zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())) as z:
        names = set(z.namelist())
        assert {"plan.yaml", "validate.sh", "README.md", "manifests/default/kubernetes.yaml",
                "manifests/default/docker-run.sh", "results/"} <= names
        exported = yaml.safe_load(z.read("plan.yaml"))
    assert exported["schema_version"] == 2 and exported["hardware"]["gpu"] == "l4"

    page.get_by_role("link", name="Verify").first.click()
    wait_for_idle(page)
    expect(page.get_by_role("heading", name="Verify").first).to_be_visible()
    expect(page.get_by_test_id("stAlert").filter(has_text="Upload the plan.yaml")).to_be_visible()
    upload_plan_and_run1(page)
    expect(verdict(page)).to_contain_text("pick passes every automated check")
    expect(page.get_by_text("12 result files read.")).to_be_visible()
    table = page.get_by_test_id("stDataFrame").first
    expect(table).to_be_visible()
    expect(table).to_contain_text("task-probes")
    charts_drawn(page)
    assert page.locator(".js-plotly-plot").count() == 2
    expect(page.get_by_test_id("stException")).not_to_be_attached()

    # the plan with these results: schema 3, the decision in it, the uploaded plan's content kept
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the plan with these results").click()
    written = yaml.safe_load(Path(download.value.path()).read_text())
    assert written["schema_version"] == 3 and written["endpoints"][0]["decision"]["action"] == "keep"
    assert written["request"] == yaml.safe_load((RESULTS / "plan.yaml").read_text())["request"]

    # a bad file: one error naming it; the plan and the verdict before it stay
    uploader(page, "verify_results").set_input_files(str(RESULTS / "bad" / "not-json.json"))
    error = page.get_by_test_id("stAlert").filter(has_text="not-json.json")
    expect(error).to_be_visible(timeout=30_000)
    wait_for_idle(page)
    expect(error).to_contain_text("is not JSON")
    expect(error).to_contain_text("still the one from the files before it")
    expect(page.locator(".st-key-verify_results").get_by_test_id("stFileChipName")).to_have_count(13)  # added
    assert page.locator("[data-testid='stAlertContentError']").count() == 1
    expect(verdict(page)).to_be_visible()
    expect(page.locator(".st-key-verify_plan").get_by_test_id("stFileChipName")).to_have_text("plan.yaml")
    expect(page.get_by_role("button", name="Download the plan with these results")).to_be_visible()
    expect(page.get_by_test_id("stException")).not_to_be_attached()


@pytest.fixture
def phone_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_the_verify_page_fits_a_phone(phone_page: Page, app_url: str):
    page = phone_page
    page.goto(f"{app_url}/verify")
    wait_for_idle(page)
    no_sideways_scroll(page)
    upload_plan_and_run1(page)
    charts_drawn(page)
    for plot in page.locator(".js-plotly-plot").all():
        plot.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    for chart in page.evaluate(CHART_TEXT):
        assert chart["width"] <= 390 and chart["texts"] > 3, chart
        assert chart["outside"] == [], chart
    no_sideways_scroll(page)
    table_scrolls_in_its_box(page)  # the wide checks table
    expect(page.get_by_test_id("stException")).not_to_be_attached()


def test_the_verify_charts_read_in_the_dark_theme(browser: Browser, app_url: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme="dark")
    page = context.new_page()
    try:
        page.goto(f"{app_url}/verify")
        wait_for_idle(page)
        upload_plan_and_run1(page)
        charts_drawn(page)
        result = page.evaluate(CONTRAST)
        assert sum(result["app"][:3]) < 150, result["app"]  # the page really is dark
        assert len(result["rows"]) > 10
        poor = [r for r in result["rows"] if r["ratio"] < 3]
        assert poor == [], poor
    finally:
        context.close()


def test_a_result_file_over_a_megabyte_uploads(page: Page, app_url: str):
    """The server's upload limit (.streamlit/config.toml) lets result files through, up to 20 MB each."""
    files = []
    for path in map(Path, RUN1):
        data = path.read_bytes()
        if path.parts[-2:] == ("pick", "guidellm-decode.json"):
            data += b" " * (3 * 1024 * 1024)  # JSON allows trailing whitespace: the same report, 3 MB larger
        files.append({"name": path.name, "mimeType": "application/json", "buffer": data})
    page.goto(f"{app_url}/verify")
    wait_for_idle(page)
    uploader(page, "verify_plan").set_input_files(str(RESULTS / "plan.yaml"))
    wait_for_idle(page)
    uploader(page, "verify_results").set_input_files(files)
    expect(verdict(page)).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("stFileUploaderFileErrorMessage")).not_to_be_attached()

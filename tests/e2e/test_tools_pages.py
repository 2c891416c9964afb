"""The tool pages in a real browser: a permalink opens each with its own settings and shows the result."""

from urllib.parse import parse_qs, urlparse

from playwright.sync_api import Page, expect

from tests.e2e.conftest import wait_for_idle

WIZARD = "v=1&m=meta-llama/Llama-3.1-8B-Instruct&g=h100-sxm&n=1&e=default:classification:16:512:16:0:auto"


def url_query(page: Page) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlparse(page.url).query).items()}


def test_memory_calculator_from_a_permalink(page: Page, app_url: str):
    link = f"{WIZARD}&xm=Qwen/Qwen3-8B&xw=fp8&xv=bf16&xc=16384&xs=6&xg=a100-80gb&xn=1&xr=vllm"
    page.goto(f"{app_url}/estimate?{link}")
    wait_for_idle(page)
    expect(page.get_by_role("heading", name="Memory calculator").first).to_be_visible()
    expect(page.get_by_text("6 x 16,384 tokens · 1 x NVIDIA A100", exact=False)).to_be_visible()
    expect(page.get_by_test_id("stAlert").filter(has_text="Fits:")).to_be_visible()
    expect(page.get_by_test_id("stException")).not_to_be_attached()
    assert not page.get_by_test_id("stAlert").filter(has_text="could not be used").count()
    # a bad value keeps the result, under a banner naming the field
    field = page.locator(".st-key-x_concurrency input")
    field.fill("0")
    field.press("Enter")
    expect(page.get_by_test_id("stAlert").filter(has_text="Concurrent sequences: 0 is outside")).to_be_visible(
        timeout=30_000)
    expect(page.get_by_test_id("stAlert").filter(has_text="Fits:")).to_be_visible()
    assert url_query(page)["xs"] == "6"


def test_gpu_picker_from_a_permalink(page: Page, app_url: str):
    page.goto(f"{app_url}/gpus?{WIZARD}&pm=meta-llama/Llama-3.1-8B-Instruct&pw=classification&pt=0&po=20&pk=0")
    wait_for_idle(page)
    expect(page.get_by_role("heading", name="GPU picker").first).to_be_visible()
    expect(page.get_by_text("the fewest of 1, 2, 4 or 8 GPUs that serve the endpoint", exact=False)).to_be_visible()
    expect(page.get_by_text("20 ms per token", exact=False)).to_be_visible()
    expect(page.get_by_test_id("stDataFrame")).to_be_visible(timeout=60_000)
    expect(page.locator(".st-key-p_max_tpot_ms input")).to_have_value("20.00")
    expect(page.get_by_test_id("stException")).not_to_be_attached()
    query = url_query(page)
    assert query["po"] == "20" and query["pw"] == "classification" and query["m"] == "meta-llama/Llama-3.1-8B-Instruct"

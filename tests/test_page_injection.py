"""Text a user controls (URL keys and values, uploaded file names and contents, names typed in the wizard) is
shown escaped and capped, never as live Markdown; an imported plan restores what it can and lists the rest."""

import json
import re
from pathlib import Path

import pytest
import yaml
from apptools import app, clear_streamlit_caches, plain  # noqa: F401 (the fixture is autouse)
from streamlit.testing.v1 import AppTest

from advisor import plan
from advisor.intake.request import CustomGPU, Endpoint, Request, SuccessCriteria
from advisor.knowledge import load_knowledge
from advisor.plan.permalink import MAX_ENDPOINTS, from_request
from ui import state as ui_state
from ui.frame import ECHO_LIMIT, safe_message, safe_text

ROOT = Path(__file__).resolve().parent.parent
K = load_knowledge()
LINK = "[click here](https://evil.example)"
IMAGE = "![t](http://evil.example/x.png)"


def bodies(at: AppTest) -> list[str]:
    """Every piece of Markdown the run drew: alerts, markdown, captions, and the labels that render Markdown."""
    out = []
    for kind in ("success", "error", "warning", "info", "markdown", "caption", "toast"):
        out += [str(x.value) for x in at.get(kind)]
    out += [str(x.label) for x in [*at.tabs, *at.expander]]
    return out


def assert_inert(texts: list[str]) -> None:
    """No Markdown link, image, autolink, emphasis pair, emoji shortcode or HTML tag survives."""
    for text in texts:
        assert not re.search(r"(?<!\\)\[[^\]]*(?<!\\)\]\(", text), text  # [x](  unescaped
        assert not re.search(r"(?<!\\)!(?<!\\)\[", text), text  # ![
        assert "https://" not in text and "http://" not in text, text  # GFM autolink literals
        assert "**bold**" not in text, text  # the injected emphasis (the app's own bold headings are fine)
        assert not re.search(r":[a-z_]+:", text), text  # :smile: (a zero-width space follows each ':')
        assert not re.search(r"(?<!\\)<[a-z/]", text), text


def upload_plan(at: AppTest, text: str, name: str = "shared.plan.yaml") -> AppTest:
    at.sidebar.file_uploader(key="upload_plan").upload(name, text.encode(), "application/yaml").run()
    return at


# ---------------------------------------------------------------- the helper
@pytest.mark.parametrize("text", [LINK, IMAGE, "**bold** _it_ `code` ~~s~~ $x^2$", "<img src=x>", ":smile: :red[x]",
                                  ":material/home:", "www.evil.example a@evil.example", "# head", "- item", "1. one",
                                  "a | b", "line\nbreak"])
def test_safe_text_leaves_nothing_live_and_reads_the_same(text):
    out = safe_text(text)
    assert_inert([out])
    assert "\n" not in out
    assert plain(out) == " ".join(text.split())


def test_echoed_input_is_capped_with_an_ellipsis():
    assert safe_text("x" * 100_000) == "x" * ECHO_LIMIT + "\u2026"
    message = safe_message("ignored unknown parameter '" + "k" * 100_000 + "'")
    assert len(message) < 200 and message.endswith("\u2026'")


# ---------------------------------------------------------------- permalinks
def test_an_unknown_url_key_with_markdown_is_echoed_escaped():
    at = app({"zz**bold**" + LINK: "1"})
    assert not at.exception
    notice = at.warning[0].value
    assert r"zz\*\*bold\*\*\[click here\]\(https:" in notice
    assert_inert(bodies(at))


def test_a_url_value_that_is_an_image_is_not_fetched():
    at = app({"r": IMAGE, "g": IMAGE, "m": LINK})
    assert not at.exception
    notice = at.warning[0].value
    assert r"\!\[t\]\(http:" in notice and r"\[click here\]" in notice
    assert_inert(bodies(at))


def test_a_huge_unknown_url_key_is_capped():
    at = app({"k" * 100_000: "1"})
    assert not at.exception
    notice = at.warning[0].value
    assert len(notice) < 400 and "kkkk" in notice and ("\u2026" in notice or "..." in notice)


def test_emoji_and_icon_shortcodes_in_the_url_stay_text():
    at = app({":smile:": "1", "r": ":material/home:", "e": "default:x:fire::16:1024:256:0:auto"})
    assert not at.exception
    assert ":smile:" not in at.warning[0].value and ":material/home:" not in at.warning[0].value
    assert "smile" in at.warning[0].value
    assert_inert(bodies(at))


def test_many_bad_url_keys_are_counted_not_listed():
    at = app({f"bad{i}": "1" for i in range(40)})
    assert not at.exception
    assert len(at.warning[0].value) < 2000


def test_an_unknown_workload_in_the_url_is_escaped():
    at = app({"e": "default:[x](www.evil.example)_*_:16:1024:256:0:auto"})
    assert not at.exception
    assert r"\[x\]\(www" in at.warning[0].value
    assert_inert(bodies(at))


def test_a_custom_gpu_name_with_markdown_is_escaped_where_shown():
    at = app({"g": "custom", "gn": "[x](https://evil.example)", "gm": "24", "gb": "1", "gc": "8.9", "gf": "100",
              "m": "Qwen/Qwen2.5-7B-Instruct"})
    assert not at.exception
    assert any(c.value.startswith(r"\[x\]\(https:") for c in at.sidebar.caption)
    assert_inert(bodies(at))
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert_inert(bodies(at))


# ---------------------------------------------------------------- uploads and typed names
def test_a_config_json_name_with_a_link_and_an_image_is_escaped_in_the_recommendation():
    name = f"{LINK} {IMAGE} :smile: <b>x</b>"
    config = {**K.models["Qwen/Qwen3-8B"].config, "_name_or_path": name}
    at = app()
    at.sidebar.file_uploader(key="upload_config").upload("config.json", json.dumps(config).encode(),
                                                          "application/json").run()
    assert not at.exception
    assert at.selectbox(key="w_model").value == name
    box = at.success[0].value
    assert r"\[click here\]\(https:" in box and r"\!\[t\]" in box
    assert_inert(bodies(at))


def test_a_shared_plans_custom_model_name_and_file_name_are_escaped():
    name = f"acme {LINK} {IMAGE}"
    request = Request(model=name, custom_model=K.models["Qwen/Qwen3-8B"].config, gpu="l40s")
    text = plan.dump(plan.build(request, K))
    at = upload_plan(app(), text, name="x[a](https:evil.example)**.yaml")
    assert not at.exception
    assert at.selectbox(key="w_model").value == name
    assert r"\[click here\]" in at.success[-1].value or r"\[click here\]" in at.success[0].value
    assert any(r"x\[a\]\(https:" in s.value and s.value.startswith("Restored from") for s in at.sidebar.success)
    assert_inert(bodies(at))


def test_an_unknown_workload_in_a_plan_is_escaped_in_the_sidebar_error():
    at = upload_plan(app(), yaml.safe_dump({"model": "meta-llama/Llama-3.1-8B-Instruct", "gpu": "l4",
                                            "endpoints": [{"name": "a", "workload": f"{LINK}{IMAGE}"}]}))
    assert not at.exception
    error = at.sidebar.error[0].value
    assert "workload" in error and r"\[click here\]" in error
    assert_inert(bodies(at))


def test_a_typed_endpoint_name_is_escaped_in_its_label_and_the_error():
    at = app()
    at.text_input(key="w_e0_name").set_value("[a](https://e.x)").run()
    assert not at.exception
    assert any(r"\[a\]\(https:" in x.label for x in at.expander)
    assert at.main.error
    assert_inert(bodies(at))


def test_endpoint_names_in_tab_labels_are_escaped():
    at = app({"e": ["_a_:interactive-chat:16:1024:256:0:auto", "__b__:classification:16:512:16:0:auto"]})
    assert not at.exception
    labels = {t.label for t in at.tabs}
    assert r"\_a\_" in labels and r"\_\_b\_\_" in labels


def test_the_knowledge_filter_is_echoed_escaped():
    at = app()
    at.switch_page("pages/knowledge.py").run()
    at.text_input(key="kb_filter").set_value(f"{LINK}{IMAGE}" + "z" * 200).run()
    assert not at.exception
    info = at.info[0].value
    assert r"\[click here\]" in info and "\u2026" in info and len(info) < 200
    assert_inert(bodies(at))


# ---------------------------------------------------------------- importing a plan: nothing lost in silence
def lost_notice(at: AppTest) -> str:
    warnings = [w.value for w in at.sidebar.warning]
    assert warnings and warnings[0].startswith("Restored from"), [*warnings, *(s.value for s in at.sidebar.success)]
    assert not any(s.value.startswith("Restored") for s in at.sidebar.success)
    return plain(warnings[0])


def test_an_unknown_model_is_not_restored_as_another_model_in_silence():
    at = upload_plan(app(), "model: not-a-model\ngpu: l4\n")
    assert not at.exception
    notice = lost_notice(at)
    assert "Not restored: model 'not-a-model'" in notice and "kept meta-llama/Llama-3.1-8B-Instruct" in notice
    assert at.selectbox(key="w_gpu").value == "l4"  # the rest was restored


def test_sixteen_endpoints_keep_four_and_say_which_were_not_restored():
    request = Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="l4",
                      endpoints=[Endpoint(name=f"e{i}", workload="interactive-chat") for i in range(16)])
    at = upload_plan(app(), yaml.safe_dump(request.model_dump(exclude_none=True)))
    assert not at.exception
    assert f"Not restored: endpoints {MAX_ENDPOINTS + 1}-16 ('e4', 'e5', 'e6', ...)" in lost_notice(at)
    assert at.number_input(key="w_n_endpoints").value == MAX_ENDPOINTS
    assert {t.label for t in at.tabs} >= {"e0", "e1", "e2", "e3"}


def test_renamed_endpoints_are_listed_and_never_collide():
    request = Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="l4",
                      endpoints=[Endpoint(name="my endpoint", workload="interactive-chat"),
                                 Endpoint(name="endpoint-1", workload="classification")])
    at = upload_plan(app(), yaml.safe_dump(request.model_dump(exclude_none=True)))
    assert not at.exception
    notice = lost_notice(at)
    assert "endpoint 1 renamed from 'my endpoint' to 'endpoint-1-2'" in notice
    assert at.text_input(key="w_e0_name").value == "endpoint-1-2"
    assert at.text_input(key="w_e1_name").value == "endpoint-1"


@pytest.mark.parametrize("length", [250, 5000])
def test_a_very_long_model_name_never_raises_in_the_page(length):
    at = upload_plan(app(), f"model: {'a' * length}\ngpu: l4\n")
    assert not at.exception
    shown = [plain(x.value) for x in [*at.sidebar.warning, *at.sidebar.error]]
    assert shown and all(len(x) < 800 for x in shown)
    assert any("model" in x for x in shown)
    assert at.selectbox(key="w_model").value == "meta-llama/Llama-3.1-8B-Instruct"


def test_an_out_of_range_target_never_raises_in_the_page():
    at = upload_plan(app(), "model: meta-llama/Llama-3.1-8B-Instruct\ngpu: l4\ncriteria:\n  max_ttft_ms: 1.0e9\n")
    assert not at.exception
    shown = " ".join(plain(x.value) for x in [*at.sidebar.warning, *at.sidebar.error])
    assert "max_ttft_ms" in shown
    assert at.number_input(key="w_max_ttft_ms").value == 0


def test_restore_clears_values_beyond_the_wizard_and_says_so():
    """Whatever the engine's own limits, a request the wizard cannot hold is restored field by field."""
    request = Request.model_construct(**{**Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="l4").__dict__,
                                         "criteria": SuccessCriteria.model_construct(max_ttft_ms=1e9, max_tpot_ms=20.0,
                                                                                     unacceptable=[]),
                                         "usd_per_gpu_hour": 5000.0})
    state, lost = ui_state.restore_request(request, K, {}, "Qwen/Qwen3-8B")
    assert state is not None and state.max_ttft_ms == 0 and state.max_tpot_ms == 20 and state.usd_per_gpu_hour == 0
    assert any(x.startswith("Not restored: criteria.max_ttft_ms = 1000000000.0") for x in lost), lost
    assert any(x.startswith("Not restored: usd_per_gpu_hour = 5000.0") for x in lost), lost


def test_restore_names_custom_gpu_fields_the_wizard_has_no_place_for():
    gpu = CustomGPU(name="MI-X", vendor="amd", memory_gib=64, memory_bandwidth_tbps=2,
                    dense_tflops={"bf16": 300, "fp16": 300, "int4": 900}, interconnect_gbps=400)
    request = Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="custom", custom_gpu=gpu)
    state, lost = ui_state.restore_request(request, K, {}, "Qwen/Qwen3-8B")
    assert state is not None and state.gpu_name == "MI-X" and state.gpu_bf16 == 300
    text = " ".join(lost)
    assert "custom_gpu.vendor 'amd'" in text and "fp16, int4" in text and "interconnect_gbps = 400" in text


def test_restore_matches_the_codec_for_a_plan_the_wizard_can_hold():
    request = Request(model="Qwen/Qwen3-32B", gpu="l40s", gpus=2, priority="quality",
                      criteria={"max_tpot_ms": 30, "quality_floor_pct": 98},
                      endpoints=[Endpoint(name="support", workload="customer-support"),
                                 Endpoint(name="tags", workload="classification", concurrency=200)])
    custom: dict = {}
    state, lost = ui_state.restore_request(request, K, custom, "meta-llama/Llama-3.1-8B-Instruct")
    assert lost == [] and custom == {}
    assert state == from_request(request, K)


def test_a_permalink_with_too_many_endpoints_says_so():
    at = app({"e": [f"e{i}:interactive-chat:16:1024:256:0:auto" for i in range(6)]})
    assert not at.exception
    assert f"first {MAX_ENDPOINTS} endpoints of 6" in at.warning[0].value

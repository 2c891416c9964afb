"""AppTest: the browser experience as three kinds of user meet it - speed figures that reconcile, KV formats that
say why, Compare labels that agree with its table, bad values that keep the last good result, llama.cpp notes,
and the jargon explained where it appears."""

import json
from pathlib import Path

import pytest
from apptools import app, clear_streamlit_caches, plain  # noqa: F401 (the fixture is autouse)
from streamlit.testing.v1 import AppTest

from advisor import plan
from advisor.intake.request import Endpoint, Request
from advisor.knowledge import load_knowledge
from ui import charts
from ui.views import kv_lines, scenario_text, speed_note

ROOT = Path(__file__).resolve().parent.parent
K = load_knowledge()
L4_CHAT = {"m": "meta-llama/Llama-3.1-8B-Instruct", "g": "l4", "o": "47",
           "e": "default:interactive-chat:4:1024:256:0:auto"}


def texts(at: AppTest) -> str:
    return plain(" ".join([*(m.value for m in at.markdown), *(c.value for c in at.caption)]))


def figures(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def metric(at: AppTest, start: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(start))


# ---------------------------------------------------------------- 1. speed figures reconcile
def test_tpot_ttft_and_throughput_agree_everywhere_on_the_plan_page():
    at = app(L4_CHAT)
    assert not at.exception
    document = plan.build(Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="l4", criteria={"max_tpot_ms": 47},
                                  endpoints=[Endpoint(name="default", workload="interactive-chat", concurrency=4)]), K)
    perf = document["endpoints"][0]["performance"]
    assert metric(at, "TPOT") == f"{perf['tpot_ms']:,.1f} ms" == "45.8 ms"  # the pick's, at 4 sequences
    assert metric(at, "Tokens/s") == f"{perf['throughput_tokens_per_s']:,.0f}"
    assert "45.8 ms per token" in plain(at.success[0].value)  # the summary says the same
    tpot = next(m for m in at.metric if m.label.startswith("TPOT"))
    assert "4 sequences" in tpot.help and "target is checked against this figure" in tpot.help
    # the queueing assumption is on the page, next to the figures, not only in the YAML
    shown = texts(at)
    assert "TTFT 130 ms assumes no time spent queued" in shown
    # TPOT under load: the decode step (44.4 ms) plus the other prompts' prefill between steps; 4 x 1000 / 86.4
    assert "TPOT 45.8 ms is a decode step of the batch (44.4 ms)" in shown and "86 tokens/s" in shown
    # the Speed tab: the same figures, and the chart marks the same point
    at.session_state["ep0_details"] = "Speed"
    at.run()
    assert "45.8 ms per token" in texts(at) and "first token 130 ms" in texts(at)
    tput = next(f for f in figures(at) if f["layout"].get("xaxis", {}).get("type") == "log")
    marker = next(t for t in tput["data"] if t.get("name") == "this endpoint")
    assert marker["x"] == [4] and marker["y"] == [pytest.approx(perf["throughput_tokens_per_s"])]
    latency = next(f for f in figures(at) if len(f["data"]) == 2 and f["data"][0].get("orientation") == "h")
    assert latency["data"][1]["x"][0] == pytest.approx(perf["tpot_ms"])
    assert latency["data"][0]["x"][0] == pytest.approx(perf["ttft_ms"])


def test_a_batch_ceiling_marks_the_load_the_pick_runs_not_the_ceiling():
    at = app({"m": "meta-llama/Llama-3.1-8B-Instruct", "g": "h100-sxm",
              "e": "default:classification:1024:1024:16:0:auto"})
    at.session_state["ep0_details"] = "Speed"
    at.run()
    assert not at.exception
    tput = next(f for f in figures(at) if f["layout"].get("xaxis", {}).get("type") == "log")
    marker = next(t for t in tput["data"] if t.get("name") == "this endpoint")
    total = int(metric(at, "Layout") and next(m for m in at.metric if m.label == "Layout").help.split()[-3]
                .replace(",", ""))  # "N requests per replica, T in all"
    assert 1 < total < 1024 and marker["x"] == [total]  # what the deployment runs, below the 1,024 ceiling
    assert [a["text"] for a in tput["layout"]["annotations"]] == [f"this endpoint: {total}"]
    assert f"{total:,} sequences" in texts(at)


def test_speed_note_reconciles_replicas():
    document = plan.build(Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="l4", gpus=1,
                                  endpoints=[Endpoint(name="a", workload="interactive-chat", concurrency=4)]), K)
    note = speed_note(document["endpoints"][0])
    assert "4 sequences" in note and "no time spent queued" in note


# ---------------------------------------------------------------- 2. KV formats say why, with the figure
def test_kv_chart_and_list_say_why_each_format_is_out():
    at = app(L4_CHAT)
    kv = next(f for f in figures(at) if (f["layout"].get("yaxis", {}).get("title") or {}).get("text") == "KV cache")
    bar = kv["data"][0]
    hover = dict(zip(bar["y"], bar["customdata"], strict=True))
    assert "misses the 47 ms time-per-token target: 47.3 ms" in hover["bf16"]
    assert "SGLang has no INT8 KV cache" in hover["int8"]
    assert "Blackwell" in hover["nvfp4"]
    text = dict(zip(bar["y"], bar["text"], strict=True))
    assert text["int8"] == "n/a" and text["bf16"].endswith("\u2717") and text["fp8"] == "81"
    shown = texts(at)
    assert "bf16: misses the 47 ms time-per-token target: 47.3 ms" in shown
    assert "fp8: picked (45.8 ms per token, 99.76% expected accuracy, room for 81 sequences)" in shown
    assert "q8_0: SGLang has no llama.cpp q8_0 KV cache" in shown


@pytest.mark.parametrize("concurrency", [1, 16])
def test_kv_choices_on_a_4090_are_explained_at_1_and_16_users(concurrency):
    document = plan.build(Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="rtx-4090", endpoints=[
        Endpoint(name="a", workload="interactive-chat", concurrency=concurrency)]), K)
    endpoint = document["endpoints"][0]
    lines = kv_lines(endpoint)
    picked = endpoint["recommendation"]["kv_cache"]["kv_format"]
    assert sum(line.startswith(f"{picked}: picked") for line in lines) == 1
    for line, option in zip(lines, endpoint["kv_options"], strict=True):
        assert line.startswith(option["kv"] + ": ")
        # every format that is not the pick says why: the engine's reason, or that the objective preferred the pick
        assert option["kv"] == picked or option.get("reason") or "objective preferred the pick" in line, line


# ---------------------------------------------------------------- 3. Compare labels agree with the table
def test_compare_does_not_fit_labels_agree_with_the_table_and_the_chart():
    """Llama-3.1-70B on one A100-80GB at 8 sequences: W8A16 KV-INT4 needs 79.18 GiB per GPU - over the 78.76 GiB
    the runtime leaves usable, under the card's nominal 80. The chart once drew the nominal line, so the bar
    labelled "(does not fit)" ended inside it ("+-0.82 over")."""
    at = app({"m": "meta-llama/Llama-3.1-70B-Instruct", "g": "a100-80gb",
              "e": "default:interactive-chat:8:1024:256:0:auto"})
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    choice = next(o for o in at.multiselect(key="compare_picked").options if o.startswith("W8A16 KV-INT4"))
    assert choice.endswith("(does not fit)")
    at.multiselect(key="compare_picked").set_value([choice]).run()
    table = at.dataframe[0].value
    assert table["fits"].tolist() == [False] and table["GiB per GPU"].tolist()[0] > 78.76
    memory = next(f for f in figures(at) if f["layout"]["xaxis"]["title"]["text"] == "GiB per GPU")
    line = next(s for s in memory["layout"]["shapes"] if s["type"] == "line")
    assert line["x0"] == pytest.approx(78.76, abs=0.01)  # the usable capacity, not the nominal 80
    assert table["GiB per GPU"].tolist()[0] > line["x0"]
    over = [a["text"] for a in memory["layout"]["annotations"] if "over" in a["text"]]
    assert over and "+-" not in over[0]
    # every option's suffix agrees with its row
    at.multiselect(key="compare_picked").set_value(list(at.multiselect(key="compare_picked").options)[:8]).run()
    table = at.dataframe[0].value
    for name, fits in zip(at.multiselect(key="compare_picked").value, table["fits"], strict=True):
        assert name.endswith("(does not fit)") == (not fits), name


def test_compare_explains_the_load_and_the_queueing():
    at = app(L4_CHAT)
    at.switch_page("pages/compare.py").run()
    table = at.dataframe[0].value
    assert table["ms per token"].tolist()[0] == 45.8 and table["sequences per replica"].tolist()[0] == 4
    assert "no time spent queued" in texts(at)


# ---------------------------------------------------------------- 4. bad values keep the last good result
@pytest.mark.parametrize(("key", "value", "field"), [
    ("w_e0_concurrency", 0, "Endpoint 1 · Concurrent requests"),
    ("w_e0_concurrency", 10**9, "Endpoint 1 · Concurrent requests"),
    ("w_e0_context", 200_000, "context: 200,000 tokens exceeds Llama 3.1 8B Instruct's limit of 131,072"),
    ("w_gpus", 0, "GPUs (tensor parallel)"),
])
def test_a_bad_value_keeps_the_last_good_result_with_a_banner(key, value, field):
    at = app()
    before, url = plain(at.success[0].value), dict(at.query_params)
    at.number_input(key=key).set_value(value).run()
    assert not at.exception
    banner = plain(at.main.error[0].value)
    assert field in banner and "last good" in banner, banner
    if isinstance(value, int) and value >= 1000:
        assert f"{value:,}" in banner
    assert plain(at.success[0].value) == before  # the result stays on screen ...
    assert at.get("plotly_chart") and at.metric
    assert dict(at.query_params) == url  # ... with its own link
    assert at.number_input(key=key).value == value  # the value typed is kept to correct, never clamped
    at.number_input(key=key).set_value({"w_e0_context": 0, "w_gpus": 1}.get(key, 16)).run()
    assert not at.main.error and plain(at.success[0].value) == before


def test_a_bad_value_on_a_first_visit_says_which_field():
    at = app({"e": "default:interactive-chat:4:1024:256:200000:auto"})
    assert not at.exception
    assert "context: 200,000 tokens exceeds" in plain(at.main.error[0].value)


def test_upload_errors_clear_on_the_next_good_upload():
    config = {**K.models["Qwen/Qwen3-8B"].config, "_name_or_path": "acme/qwen3-8b-finetune"}
    at = app()
    at.sidebar.file_uploader(key="upload_config").upload("config.json", b'{"model_type": "llama"}',
                                                          "application/json").run()
    at.sidebar.file_uploader(key="upload_plan").upload("plan.yaml", b"model: x\ngpu: l4\ncolour: blue\n",
                                                        "application/yaml").run()
    assert len(at.sidebar.error) == 2
    at.sidebar.file_uploader(key="upload_config").upload("config.json", json.dumps(config).encode(),
                                                          "application/json").run()
    assert not at.exception and not at.sidebar.error  # both old errors went with the good upload
    at.sidebar.file_uploader(key="upload_config").upload("config.json", b"{", "application/json").run()
    assert len(at.sidebar.error) == 1
    text = plan.dump(plan.build(Request(model="Qwen/Qwen3-8B", gpu="l40s"), K)).encode()
    at.sidebar.file_uploader(key="upload_plan").upload("good.plan.yaml", text, "application/yaml").run()
    assert not at.sidebar.error and any("Restored from good.plan.yaml" in plain(s.value) for s in at.sidebar.success)


# ---------------------------------------------------------------- 5. llama.cpp: the runtime notes in "Run it"
def test_llama_cpp_run_it_tab_shows_the_runtime_notes():
    at = app({"m": "meta-llama/Llama-3.1-8B-Instruct", "g": "rtx-4090", "r": "llama.cpp",
              "e": "default:interactive-chat:16:1024:256:0:auto"})
    at.session_state["ep0_details"] = "Run it"
    at.run()
    assert not at.exception
    shown = texts(at)
    assert "Runtime notes" in shown
    assert "-c 20,480 gives each of the 16 slot(s) the endpoint's 1,280-token context" in shown
    assert "tokens per slot fit on this GPU" in shown


def test_runtime_choices_include_llama_cpp_by_name():
    at = app()
    box = at.selectbox(key="w_runtime")
    matches = [o for o in box.options if "lla" in o.lower()]  # what the box's type-ahead filters on
    assert matches[0].startswith("llama.cpp ")
    box.set_value("llama.cpp").run()
    assert not at.exception and "llama.cpp" in plain(at.success[0].value)


# ---------------------------------------------------------------- 6. jargon
def test_scenarios_and_scores_are_explained_where_they_appear():
    assert scenario_text("A+D").startswith("A = weight-only quantization") and "D = a quantized KV cache" in \
        scenario_text("A+D")
    at = app(L4_CHAT)
    shown = texts(at)
    assert "Scenario C = FP8 weights and activations" in shown and "D = a quantized KV cache" in shown
    assert "Balanced utility" in shown and "Worst case" in shown and "Expected accuracy" in shown


def test_dark_theme_recolours_chart_text():
    fig = charts.memory_figure([{"label": "x", "weights_gib": 1, "kv_cache_gib": 1, "overhead_gib": 1, "fits": True,
                                 "role": "pick"}], 10)
    dark = charts.apply_theme(fig, True)
    assert dark.layout.font.color == charts.DARK_TEXT and dark.layout.paper_bgcolor == "rgba(0,0,0,0)"
    assert all(a.font.color != charts.TEXT for a in dark.layout.annotations)

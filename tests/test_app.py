"""AppTest: the wizard's main flows, URL seeding and sync, uploads and their errors, the other pages."""

import json
from pathlib import Path

from apptools import app, clear_streamlit_caches, plain  # noqa: F401 (the fixture is autouse)
from streamlit.testing.v1 import AppTest

from advisor import plan
from advisor.intake.request import Endpoint, Request
from advisor.knowledge import load_knowledge

ROOT = Path(__file__).resolve().parent.parent
K = load_knowledge()


def summary(at: AppTest) -> str:
    return plain(" ".join(x.value for x in [*at.success, *at.main.error]))


def query(at: AppTest) -> dict[str, list[str]]:
    """The URL the app wrote, every value as a list (repeated keys such as e stay lists)."""
    out = {}
    for key in at.query_params:
        value = at.query_params[key]
        out[key] = list(value) if isinstance(value, list | tuple) else [value]
    return out


def tab_labels(at: AppTest) -> set[str]:
    return {t.label for t in at.tabs}


def test_first_screen_already_shows_a_recommendation():
    at = app()
    assert not at.exception
    assert at.title[0].value == "Precision Advisor"
    assert "Serve Llama 3.1 8B Instruct as" in summary(at)
    q = query(at)
    assert q["v"] == ["1"] and q["g"] == ["h100-sxm"] and q["e"] == ["default:interactive-chat:16:1024:256:0:auto"]
    assert at.get("plotly_chart")  # memory and KV charts render


def test_url_seeds_the_widgets_once():
    at = app({"g": "a100-80gb", "m": "meta-llama/Llama-3.1-70B-Instruct", "n": "1",
              "e": ["chat:interactive-chat:4:1024:256:0:latency"]})
    assert not at.exception
    assert at.selectbox(key="w_gpu").value == "a100-80gb"
    assert at.text_input(key="w_e0_name").value == "chat"
    assert "Serve Llama 3.1 70B Instruct as W" in summary(at) and "expected accuracy" in summary(at)
    assert at.number_input(key="w_e0_concurrency").value == 4


def test_bad_url_parameters_are_reported_in_one_notice_and_replaced():
    at = app({"g": "h100", "n": "-3", "p": "fastest", "zz": "1"})
    assert not at.exception
    notices = [w.value for w in at.warning]
    assert len(notices) == 1
    for needle in ["'zz'", "gpus = '-3'", "priority = 'fastest'", "unknown GPU 'h100'"]:
        assert needle in notices[0], needle
    assert at.selectbox(key="w_gpu").value == "h100-sxm" and "Serve" in summary(at)


def test_old_link_versions_say_they_cannot_be_read():
    at = app({"v": "0", "g": "l4"})
    assert "version '0'" in at.warning[0].value and at.selectbox(key="w_gpu").value == "h100-sxm"


def test_changing_a_widget_updates_recommendation_and_url():
    at = app()
    before = summary(at)
    at.selectbox(key="w_gpu").set_value("l4").run()
    assert not at.exception
    assert summary(at) != before
    assert any(m.label == "Total of 22 GiB" for m in at.metric)
    assert query(at)["g"] == ["l4"]


def test_several_endpoints_each_get_a_recommendation():
    at = app()
    at.number_input(key="w_n_endpoints").set_value(2).run()
    at.text_input(key="w_e1_name").set_value("bulk").run()
    at.selectbox(key="w_e1_workload").set_value("classification").run()
    assert not at.exception
    assert {"default", "bulk"} <= tab_labels(at)
    assert query(at)["e"][1].startswith("bulk:classification:1024:")  # the preset's shape came with it


def test_invalid_endpoint_name_is_explained_not_crashed():
    at = app()
    at.text_input(key="w_e0_name").set_value("my endpoint").run()
    assert not at.exception
    assert any("letters, digits" in e.value for e in at.main.error)


def test_upload_of_a_broken_plan_shows_the_bad_fields():
    at = app()
    at.sidebar.file_uploader(key="upload_plan").upload("plan.yaml", b"model: x\ngpu: h100-sxm\ncolour: blue\n",
                                                        "application/yaml").run()
    assert not at.exception
    errors = [e.value for e in at.sidebar.error]
    assert errors and "colour" in errors[0]
    at.sidebar.file_uploader(key="upload_plan").upload("plan.yaml", b"model: [", "application/yaml").run()
    assert "not valid YAML" in at.sidebar.error[0].value


def test_upload_of_a_plan_restores_the_wizard():
    request = Request(model="Qwen/Qwen3-32B", gpu="l40s", gpus=2, priority="quality",
                      endpoints=[Endpoint(name="support", workload="customer-support"),
                                 Endpoint(name="tags", workload="classification", concurrency=200)])
    text = plan.dump(plan.build(request, K)).encode()
    at = app()
    at.sidebar.file_uploader(key="upload_plan").upload("my.plan.yaml", text, "application/yaml").run()
    assert not at.exception
    assert at.selectbox(key="w_gpu").value == "l40s" and at.number_input(key="w_gpus").value == 2
    assert at.selectbox(key="w_model").value == "Qwen/Qwen3-32B"
    assert {"support", "tags"} <= tab_labels(at)
    assert query(at)["e"][1].startswith("tags:classification:200:")


def test_upload_of_a_config_json_adds_the_model():
    config = {**K.models["Qwen/Qwen3-8B"].config, "_name_or_path": "acme/qwen3-8b-finetune"}
    at = app()
    at.sidebar.file_uploader(key="upload_config").upload("config.json", json.dumps(config).encode(),
                                                          "application/json").run()
    assert not at.exception
    assert at.selectbox(key="w_model").value == "acme/qwen3-8b-finetune"
    assert "acme/qwen3-8b-finetune" in summary(at)


def test_upload_of_a_bad_config_json_names_the_missing_fields():
    at = app()
    at.sidebar.file_uploader(key="upload_config").upload("config.json", b'{"model_type": "llama"}',
                                                          "application/json").run()
    assert not at.exception
    assert "'hidden_size'" in plain(at.sidebar.error[0].value)


def test_nothing_fits_shows_what_would():
    at = app({"m": "meta-llama/Llama-3.1-405B-Instruct", "g": "l4"})
    assert not at.exception
    assert any(e.value.startswith("Does not fit") for e in at.main.error)
    assert any("more GPUs" in w.value for w in at.warning)


def test_compare_page_shows_configurations_side_by_side():
    at = app({"g": "a100-80gb", "m": "meta-llama/Llama-3.1-70B-Instruct"})
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert {"configuration", "fits", "GiB per GPU", "expected accuracy %", "ms per token", "$ per M tokens",
            "on the Pareto front"} <= set(table.columns)
    assert table["fits"].tolist()[:3] == [True, True, True] and not table["fits"].tolist()[-1]
    assert table["on the Pareto front"].tolist()[0]  # the pick is on the front
    assert at.get("plotly_chart")


def test_memory_calculator_page():
    at = AppTest.from_file(str(ROOT / "pages" / "estimate.py"), default_timeout=60).run()
    assert not at.exception
    assert any(x.value.startswith("Fits") for x in at.success)


def test_memory_chart_lists_each_configuration_once():
    from ui.views import memory_rows

    document = plan.build(Request(model="meta-llama/Llama-3.1-405B-Instruct", gpu="l4", gpus=2), K)
    labels = [r["label"] for r in memory_rows(document["endpoints"][0])]
    assert len(labels) == len(set(labels))
    assert labels[0].endswith(f"({document['endpoints'][0]['recommendation']['candidate']})")


def test_speed_tab_shows_the_modelled_figures_and_both_charts():
    at = app()
    at.session_state["ep0_details"] = "Speed"
    at.run()
    assert not at.exception
    assert any(m.value.startswith("**Modelled:** first token") for m in at.markdown)
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    titles = [a.get("text") for f in figures for a in f["layout"].get("annotations", [])]
    assert "Time to first token (ms)" in titles and "Time per output token (ms)" in titles
    assert any(f["layout"].get("xaxis", {}).get("title", {}).get("text") == "Concurrent sequences" for f in figures)


def test_with_the_speed_tab_open_a_change_decides_once(monkeypatch):
    """The plan and the Speed tab's curves come from one decision per script run (ui.frame._decide)."""
    from advisor.decide import engine

    at = app()
    at.session_state["ep0_details"] = "Speed"
    at.run()
    calls = []
    decide = engine.recommend_endpoint  # what every decision runs, once per endpoint
    monkeypatch.setattr(engine, "recommend_endpoint", lambda ctx, *a, **k: calls.append(ctx) or decide(ctx, *a, **k))
    at.number_input(key="w_e0_concurrency").set_value(23).run()
    assert not at.exception
    assert len(calls) == 1
    assert any(m.value.startswith("**Modelled:** first token") for m in at.markdown)
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert any(f["layout"].get("xaxis", {}).get("title", {}).get("text") == "Concurrent sequences" for f in figures)


def test_what_a_session_keeps_stays_small_for_the_garbage_collector():
    """Streamlit collects garbage after every script run, walking what every session keeps (ui/heap.py): the router
    freezes what the first run of a page leaves (modules, knowledge), and the Plan page keeps its last good plan as
    bytes, not as a few hundred dicts and lists."""
    import gc

    import ui.heap
    from ui.frame import unpack_plan

    at = app()
    assert not at.exception
    assert "wizard" in ui.heap._frozen and gc.get_freeze_count() > 0
    state, request, packed = at.session_state["_last_good"]
    assert isinstance(packed, bytes)
    assert unpack_plan(packed) == plan.build(request, K)


def test_speed_targets_and_price_reach_the_plan_and_the_url():
    at = app({"m": "meta-llama/Llama-3.1-70B-Instruct", "g": "h100-sxm", "n": "2"})
    at.session_state["ep0_details"] = "Speed"
    at.number_input(key="w_usd_per_gpu_hour").set_value(1.5).run()
    assert not at.exception and query(at)["h"] == ["1.5"]
    assert "at $1.5/GPU-hour" in " ".join(m.value for m in at.markdown)
    at.number_input(key="w_max_tpot_ms").set_value(1.0).run()  # no configuration decodes that fast
    assert not at.exception and query(at)["o"] == ["1"]
    assert any("time-per-token target" in plain(e.value) and "(asked 1)" in plain(e.value) for e in at.main.error), \
        summary(at)


def test_gpu_picker_page_lists_options_cheapest_first():
    at = app({"m": "meta-llama/Llama-3.1-8B-Instruct", "e": "default:classification:16:512:16:0:auto"})
    at.switch_page("pages/gpus.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert {"GPU", "precision", "runtime", "first token ms", "$ per M tokens"} <= set(table.columns)
    costs = table["$ per M tokens"].dropna().tolist()
    assert len(costs) > 5 and costs == sorted(costs)


def test_trade_offs_tab_draws_the_pareto_front():
    at = app({"m": "meta-llama/Llama-3.1-70B-Instruct", "g": "h100-sxm", "n": "2"})
    at.session_state["ep0_details"] = "Trade-offs"
    at.run()
    assert not at.exception
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    pareto = [f for f in figures if f["layout"].get("yaxis", {}).get("title", {}).get("text", "").startswith("Expected")]
    assert pareto and {t["name"] for t in pareto[0]["data"]} >= {"Pick", "Pareto front"}
    assert any("Objective (" in m.value for m in at.markdown)
    table = at.dataframe[0].value
    assert (table["pick"] == "★").sum() == 1


# ---------------------------------------------------------------- any model id, custom GPU
def test_a_custom_gpu_is_planned_and_kept_in_the_link():
    at = app({"g": "custom", "gn": "RTX 4070", "gm": "11.99", "gb": "0.504", "gc": "8.9", "gf": "58.3",
              "g8": "116.6", "m": "Qwen/Qwen2.5-7B-Instruct"})
    assert not at.exception
    assert at.selectbox(key="w_gpu").value == "custom" and at.number_input(key="w_gpu_memory_gib").value == 11.99
    assert any(plain(c.value).startswith("RTX 4070: Ada, 11.99 GiB") for c in at.sidebar.caption)
    assert summary(at).startswith("Serve Qwen2.5 7B Instruct")
    assert query(at)["gm"] == ["11.99"]
    at.number_input(key="w_gpu_memory_gib").set_value(0.0).run()
    assert not at.exception
    assert any("memory_gib" in plain(e.value) for e in at.main.error)


def test_a_hugging_face_id_is_looked_up_and_what_was_found_is_shown(monkeypatch, tmp_path):
    from hubserver import Hub, safetensors

    config = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 512,
              "intermediate_size": 1024, "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 2,
              "head_dim": 64, "vocab_size": 2048, "max_position_embeddings": 8192, "torch_dtype": "float16",
              "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm",
                                      "zero_point": True}}
    files = {"config.json": json.dumps(config).encode(),
             "model.safetensors": safetensors({"model.embed_tokens.weight": ("F16", [2048, 512])})}
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with Hub({"acme/tiny-awq": files}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        at = app({"m": "acme/tiny-awq", "g": "l40s"})
        assert not at.exception
        assert at.selectbox(key="w_model").value == "acme/tiny-awq"
        found = " ".join(c.value for c in at.sidebar.caption)
        assert "Found: mistral" in found and "published quantized: awq" in found
        assert query(at)["m"] == ["acme/tiny-awq"]
        assert not at.main.error
        at = app({"m": "acme/not-there", "g": "l40s"})
        assert any("acme/not-there was not found on the Hub" in e.value for e in at.sidebar.error)


def test_nodes_field_plans_over_several_nodes_and_travels_in_the_link():
    """Issue 12: Llama-3.1-405B BF16 on 2 nodes of 8 H100 plans pipeline parallel across the nodes."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.query_params.update({"m": "meta-llama/Llama-3.1-405B-Instruct", "g": "h100-sxm", "n": "8", "nn": "2",
                            "p": "quality"})
    at.run()
    assert not at.exception
    nodes = next(w for w in at.number_input if w.label == "Nodes")
    assert nodes.value == 2
    text = " ".join(str(m.value) for m in at.markdown) + " ".join(str(a.value) for a in at.success)
    assert "pipeline parallel 2" in text or "PP2" in text or "2 nodes" in text, text[:2000]
    nodes.set_value(1).run()
    assert not at.exception


def test_a_model_revision_reaches_the_serve_command_and_the_url():
    at = app({"m": "meta-llama/Llama-3.1-8B-Instruct", "g": "h100-sxm", "r": "tgi"})
    at.text_input(key="w_model_revision").set_value("0e9e39f2").run()
    assert not at.exception and query(at)["mr"] == ["0e9e39f2"]
    state, request, packed = at.session_state["_last_good"]
    assert request.model_revision == "0e9e39f2"
    from ui.frame import unpack_plan

    assert "--revision 0e9e39f2" in unpack_plan(packed)["endpoints"][0]["runtime"]["serve_command"]
    at.text_input(key="w_model_revision").set_value("../x").run()
    assert not at.exception
    assert any("Model revision" in plain(e.value) for e in at.main.error), summary(at)

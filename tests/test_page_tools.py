"""AppTest: the Memory calculator and the GPU picker - their state in the URL, where they start from (the Plan
page), the model inputs, bad values, and what they say when nothing fits."""

import json
import re
from pathlib import Path

import pytest
from apptools import app, clear_streamlit_caches, plain  # noqa: F401 (the fixture is autouse)
from streamlit.testing.v1 import AppTest

from advisor.knowledge import load_knowledge

ROOT = Path(__file__).resolve().parent.parent
K = load_knowledge()
CALC = {"xm": "meta-llama/Llama-3.1-8B-Instruct", "xw": "fp8", "xv": "bf16", "xc": "16384", "xs": "12",
        "xg": "a100-80gb", "xn": "1", "xr": "vllm"}


def query(at: AppTest) -> dict[str, str]:
    return {k: at.query_params[k] for k in at.query_params}


def text(at: AppTest) -> str:
    return plain(" ".join(x.value for x in [*at.success, *at.error, *at.warning, *at.caption]))


def errors(at: AppTest) -> list[str]:
    return [plain(e.value) for e in at.main.error]


# ---------------------------------------------------------------- memory calculator
def test_calculator_state_round_trips_through_the_url():
    at = app(CALC, "estimate")
    assert not at.exception
    assert at.selectbox(key="x_weights").value == "fp8" and at.number_input(key="x_concurrency").value == 12
    assert at.selectbox(key="x_gpu").value == "a100-80gb" and at.number_input(key="x_context").value == 16384
    shown = text(at)
    assert "12 x 16,384 tokens · 1 x NVIDIA A100" in shown and at.success[0].value.startswith("Fits")
    written = query(at)
    assert {k: written[k] for k in CALC} == CALC  # every key written, canonical
    assert written["m"] == "meta-llama/Llama-3.1-8B-Instruct" and written["v"] == "1"  # the wizard's keys too
    assert not at.warning  # the calculator's keys are not 'unknown parameters'
    at.number_input(key="x_concurrency").set_value(20).run()
    assert query(at)["xs"] == "20"
    again = app(query(at), "estimate")
    assert not again.exception and again.number_input(key="x_concurrency").value == 20
    assert again.success[0].value == at.success[0].value


def test_calculator_link_opened_straight_to_the_page():
    at = AppTest.from_file(str(ROOT / "pages" / "estimate.py"), default_timeout=60)
    for k, v in {**CALC, "xs": "3"}.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception and at.number_input(key="x_concurrency").value == 3
    assert "3 x 16,384 tokens" in text(at)


def test_calculator_starts_from_the_plans_model_and_follows_it():
    at = app({"m": "Qwen/Qwen2.5-7B-Instruct", "g": "l40s"}, "estimate")
    assert not at.exception
    assert at.selectbox(key="x_model").value == "Qwen/Qwen2.5-7B-Instruct"
    assert at.selectbox(key="x_gpu").value == "l40s"
    assert "For Qwen2.5 7B Instruct" in text(at) and query(at)["xm"] == "Qwen/Qwen2.5-7B-Instruct"
    at.switch_page("pages/wizard.py").run()
    at.selectbox(key="w_model").set_value("meta-llama/Llama-3.1-8B-Instruct").run()
    at.switch_page("pages/estimate.py").run()
    assert not at.exception and at.selectbox(key="x_model").value == "meta-llama/Llama-3.1-8B-Instruct"
    # a change here stays here: the Plan keeps its model
    at.selectbox(key="x_model").set_value("Qwen/Qwen3-8B").run()
    assert "For Qwen3 8B" in text(at) or "For Qwen3-8B" in text(at)
    assert query(at)["m"] == "meta-llama/Llama-3.1-8B-Instruct" and query(at)["xm"] == "Qwen/Qwen3-8B"


def test_calculator_link_model_wins_over_the_plans():
    at = app({"m": "Qwen/Qwen2.5-7B-Instruct", "xm": "Qwen/Qwen3-8B"}, "estimate")
    assert at.selectbox(key="x_model").value == "Qwen/Qwen3-8B"


def test_calculator_takes_an_uploaded_config_json():
    config = {**K.models["Qwen/Qwen3-8B"].config, "_name_or_path": "acme/qwen3-8b-finetune"}
    at = app(page="estimate")
    at.file_uploader(key="x_upload_config").upload("config.json", json.dumps(config).encode(),
                                                   "application/json").run()
    assert not at.exception
    assert at.selectbox(key="x_model").value == "acme/qwen3-8b-finetune"
    assert "For acme/qwen3-8b-finetune" in text(at) and at.success[0].value.startswith("Fits")


def test_calculator_names_a_bad_config_json():
    at = app(page="estimate")
    at.file_uploader(key="x_upload_config").upload("config.json", b'{"model_type": "llama"}',
                                                   "application/json").run()
    assert not at.exception
    assert any("'hidden_size'" in e for e in errors(at))


def test_calculator_never_reads_a_path_on_the_server():
    from ui.tools import check_model

    assert check_model("pages/estimate.py", K)[0] is None  # a file here: never handed to the engine
    assert check_model("knowledge", K)[0] is None
    assert check_model("llama-3.1-8b-instruct", K) == ("meta-llama/Llama-3.1-8B-Instruct", None)
    assert check_model("acme/some-model", K) == ("acme/some-model", None)
    at = app({**CALC, "xm": "pages/estimate.py"}, "estimate")
    assert not at.exception
    # a web request never probes the server's files (advisor.intake.catalog.LOCAL_FILES): the name is only ever a
    # Hugging Face repo id here ("pages/estimate.py" is one, syntactically), which the offline Hub does not have
    shown = [plain(w.value) for w in [*at.warning, *at.error]]
    assert shown and all("pages/estimate.py" in t and "Found:" not in t for t in shown)
    assert not any("Found:" in plain(c.value) for c in at.caption)


def test_context_over_the_models_limit_is_named_with_the_limit():
    at = app({**CALC, "xc": "200000"}, "estimate")
    assert not at.exception
    assert any("Context (tokens per sequence): 200,000 tokens is over Llama 3.1 8B Instruct's limit of 131,072 "
               "tokens (its max_position_embeddings)" in e for e in errors(at)), errors(at)
    assert not at.success and not at.metric  # nothing valid yet: nothing stale shown
    at.number_input(key="x_context").set_value(8192).run()
    assert at.success[0].value.startswith("Fits") and not errors(at)
    at.number_input(key="x_context").set_value(500_000).run()
    assert any("limit of 131,072 tokens" in e and "last valid result" in e for e in errors(at))
    assert at.success[0].value.startswith("Fits") and "(the last valid settings)" in text(at)
    assert query(at)["xc"] == "8192"  # the link keeps the last settings that gave a result


@pytest.mark.parametrize("bad", [0, 10**9])
def test_a_bad_concurrency_keeps_the_last_result_under_a_banner(bad):
    at = app(CALC, "estimate")
    before = at.success[0].value
    at.number_input(key="x_concurrency").set_value(bad).run()
    assert not at.exception
    assert any(e.startswith(f"Concurrent sequences: {bad:,} is outside what the calculator takes (1 to 100,000)")
               and "last valid result" in e for e in errors(at)), errors(at)
    assert at.success[0].value == before and "12 x 16,384 tokens" in text(at)
    assert at.metric and "(the last valid settings)" in text(at)
    at.number_input(key="x_concurrency").set_value(4).run()
    assert not errors(at) and "4 x 16,384 tokens" in text(at) and "last valid" not in text(at)


def test_an_engine_error_names_the_control_and_keeps_the_result():
    at = app(CALC, "estimate")
    at.number_input(key="x_gpus").set_value(3).run()
    assert not at.exception
    assert any(e.startswith("GPUs (tensor parallel): 3 GPUs cannot split 32 attention heads") for e in errors(at))
    assert at.success[0].value.startswith("Fits")


def test_bad_link_values_are_noted_and_replaced():
    at = app({**CALC, "xs": "0", "xw": "int3-magic", "xm": "[x](https://evil.example)"}, "estimate")
    assert not at.exception
    notice = plain(at.warning[0].value)
    assert "ignored concurrent sequences = '0'" in notice and "using 8" in notice
    assert "unknown weights 'int3-magic'" in notice
    assert "[x](https://evil.example)" in notice and "](https" not in at.warning[0].value  # escaped
    assert at.number_input(key="x_concurrency").value == 8 and at.selectbox(key="x_model").value == CALC["xm"]


def test_nothing_fits_says_so_and_what_would_never_zero_tokens():
    at = app({**CALC, "xm": "meta-llama/Llama-3.1-405B-Instruct", "xw": "int4-awq", "xv": "fp8", "xg": "l4",
              "xc": "8192", "xs": "8"}, "estimate")
    assert not at.exception
    message = " ".join(errors(at))
    assert message.startswith("Nothing fits: with the weights and runtime overhead there is no room")
    assert "What would fit:" in message and "more GPUs: 16 x NVIDIA L4 hold it" in message
    assert not re.search(r"\b0 (tokens|sequences)", message) and "up to 0" not in message


def test_one_sequence_too_long_suggests_a_shorter_context_a_smaller_kv_and_more_gpus():
    at = app({**CALC, "xw": "bf16", "xv": "bf16", "xg": "l4", "xc": "32768", "xs": "1"}, "estimate")
    message = " ".join(errors(at))
    assert "Not one sequence of 32,768 tokens fits" in message
    assert "a shorter context: 1 sequence fit at up to" in message
    assert "a smaller KV-cache format: fp8" in message and "more GPUs: 2 x NVIDIA L4 hold it" in message
    assert "up to 0" not in message and "fewer sequences" not in message


# ---------------------------------------------------------------- GPU picker
PLAN = {"m": "meta-llama/Llama-3.1-8B-Instruct", "e": "default:classification:16:512:16:0:auto", "o": "30"}


def table(at: AppTest):
    return at.dataframe[0].value


def test_picker_starts_from_the_plan_and_says_what_it_lists():
    at = app(PLAN, "gpus")
    assert not at.exception
    assert at.selectbox(key="p_model").value == PLAN["m"] and at.selectbox(key="p_workload").value == "classification"
    assert at.number_input(key="p_max_tpot_ms").value == 30.0 and at.number_input(key="p_max_ttft_ms").value == 0.0
    caption = text(at)
    assert "For each GPU kind, the fewest of 1, 2, 4 or 8 GPUs that serve the endpoint" in caption
    assert "targets: <= 30 ms per token" in caption
    assert (table(at)["ms per token"] <= 30).all()
    q = query(at)
    assert (q["pm"], q["pw"], q["pt"], q["po"], q["pk"]) == (PLAN["m"], "classification", "0", "30", "0")
    assert not at.warning


def test_picker_controls_change_the_result_here_without_the_plan():
    at = app(PLAN, "gpus")
    before = table(at)
    at.number_input(key="p_max_tpot_ms").set_value(5.0).run()
    assert not at.exception
    after = table(at)
    assert (after["ms per token"] <= 5).all() and (before["ms per token"] > 5).any()
    assert after["GPU"].tolist() != before["GPU"].tolist()  # slower kinds need more GPUs now
    assert query(at)["po"] == "5" and query(at)["o"] == "30"  # the Plan's target is unchanged
    at.selectbox(key="p_workload").set_value("interactive-chat").run()
    assert "Interactive chat" in text(at) or "interactive" in text(at).lower()
    assert table(at)["GPU"].tolist() != after["GPU"].tolist() or table(at)["ms per token"].tolist() != \
        after["ms per token"].tolist()
    table_before_model = table(at)
    at.selectbox(key="p_model").set_value("meta-llama/Llama-3.1-70B-Instruct").run()
    assert not at.exception
    big = table(at)
    assert big["GPU"].tolist() != table_before_model["GPU"].tolist() and "Llama-3.1-70B-Instruct ·" in text(at)
    assert query(at)["pm"] == "meta-llama/Llama-3.1-70B-Instruct" and query(at)["m"] == PLAN["m"]


def test_picker_link_restores_its_controls():
    at = app({**PLAN, "pm": "Qwen/Qwen3-8B", "pw": "interactive-chat", "pk": "2.5", "pt": "0", "po": "0"}, "gpus")
    assert not at.exception
    assert at.selectbox(key="p_model").value == "Qwen/Qwen3-8B"
    assert at.selectbox(key="p_workload").value == "interactive-chat"
    assert at.number_input(key="p_max_cost").value == 2.5
    assert (table(at)["$ per M tokens"].dropna() <= 2.5).all()
    assert "targets: <= $2.5 per million tokens" in text(at)


def test_picker_bad_link_values_are_noted():
    at = app({**PLAN, "pw": "no-such-preset", "pt": "-4"}, "gpus")
    assert not at.exception
    notice = plain(at.warning[0].value)
    assert "unknown workload 'no-such-preset'" in notice and "ignored time to first token" in notice
    assert at.selectbox(key="p_workload").value == "classification"

"""The permalink codec: round trips, canonical output, and decoding anything without raising."""

from urllib.parse import parse_qs

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advisor import plan
from advisor.intake.hub import REPO_ID
from advisor.intake.request import FAILURE_MODES, PRIORITIES
from advisor.knowledge import load_knowledge
from advisor.plan.permalink import (
    MAX_ENDPOINTS,
    EndpointState,
    WizardState,
    check_against,
    from_query,
    from_request,
    query_string,
    to_query,
    to_request,
)

K = load_knowledge()

names = st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True)
endpoints = st.builds(
    EndpointState,
    name=names,
    workload=st.sampled_from(list(K.workloads)),
    concurrency=st.integers(1, 100_000),
    prompt_tokens=st.integers(1, 10_000_000),
    output_tokens=st.integers(1, 1_000_000),
    context=st.integers(0, 10_000_000),
    priority=st.sampled_from(("auto", *PRIORITIES)),
)
states = st.builds(
    WizardState,
    model=st.sampled_from(list(K.models)),
    model_revision=st.one_of(st.just(""), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,40}", fullmatch=True)),
    gpu=st.sampled_from(list(K.gpus)),
    gpus=st.integers(1, 64),
    runtime=st.sampled_from(["auto", *K.runtimes]),
    priority=st.sampled_from(("auto", *PRIORITIES)),
    calibration=st.sampled_from(["none", "available"]),
    quality_floor=st.one_of(st.just(0.0), st.floats(50, 100, allow_nan=False).map(lambda x: round(x, 2))),
    unacceptable=st.lists(st.sampled_from(FAILURE_MODES), unique=True).map(lambda x: tuple(sorted(x))),
    max_ttft_ms=st.one_of(st.just(0.0), st.floats(1, 60_000, allow_nan=False).map(lambda x: round(x, 1))),
    max_tpot_ms=st.one_of(st.just(0.0), st.floats(1, 1000, allow_nan=False).map(lambda x: round(x, 2))),
    max_cost=st.one_of(st.just(0.0), st.floats(0.01, 100, allow_nan=False).map(lambda x: round(x, 2))),
    usd_per_gpu_hour=st.one_of(st.just(0.0), st.floats(0.01, 100, allow_nan=False).map(lambda x: round(x, 2))),
    endpoints=st.lists(endpoints, min_size=1, max_size=MAX_ENDPOINTS, unique_by=lambda e: e.name).map(tuple),
)


@given(states)
@settings(max_examples=300, deadline=None)
def test_any_state_round_trips_through_the_query(state):
    decoded, notes = from_query(to_query(state))
    assert decoded == state and notes == []


@given(states)
@settings(max_examples=100, deadline=None)
def test_any_state_round_trips_through_the_url_text(state):
    parsed = {k: v if k == "e" else v[-1] for k, v in parse_qs(query_string(state), keep_blank_values=True).items()}
    assert from_query(parsed) == (state, [])


query_values = st.one_of(st.text(max_size=80), st.lists(st.text(max_size=80), max_size=6))


@given(st.dictionaries(st.sampled_from(["v", "m", "g", "n", "r", "p", "c", "q", "u", "e", "zz", ""]) | st.text(max_size=5),
                       query_values, max_size=12))
@settings(max_examples=500, deadline=None)
def test_any_query_decodes_without_raising(query):
    state, notes = from_query(query)
    assert isinstance(state, WizardState)
    assert all(isinstance(n, str) and n for n in notes)
    checked, more = check_against(state, K)
    # a catalog model or any Hugging Face repo id (looked up when planned); a catalog GPU or a custom one
    assert checked.model in K.models or REPO_ID.match(checked.model)
    assert checked.gpu in K.gpus or checked.gpu == "custom"


def test_defaults_are_written_out():
    q = to_query(WizardState())
    assert q["v"] == "1" and q["g"] == "h100-sxm" and q["e"] == ["default:interactive-chat:16:1024:256:0:auto"]
    assert len(query_string(WizardState())) < 200


def test_bad_values_fall_back_and_are_reported_one_by_one():
    state, notes = from_query({"v": "1", "g": "l4", "n": "-3", "p": "fastest", "q": "20", "zz": "1",
                               "e": ["chat:interactive-chat:8:500:100:0:latency", "bad:endpoint"]})
    assert state.gpu == "l4" and state.gpus == 1 and state.priority == "auto" and state.quality_floor == 0
    assert [e.name for e in state.endpoints] == ["chat"]
    text = " | ".join(notes)
    for needle in ["'zz'", "gpus = '-3'", "priority = 'fastest'", "quality_floor = '20'", "endpoint 2"]:
        assert needle in text, (needle, text)


def test_unknown_version_says_so():
    state, notes = from_query({"v": "9", "g": "l4"})
    assert state == WizardState() and "version '9'" in notes[0]


def test_missing_version_is_read_as_current():
    assert from_query({"g": "l4"})[0].gpu == "l4"


def test_unknown_ids_are_replaced_with_defaults_and_named():
    state, _ = from_query({"m": "Llama 3.1 7B", "g": "h100", "r": "vlm",
                           "e": ["a:chatbot:1:10:10:0:auto"]})
    checked, notes = check_against(state, K)
    assert checked.model == "meta-llama/Llama-3.1-8B-Instruct" and checked.gpu == "h100-sxm"
    assert checked.runtime == "auto" and checked.endpoints[0].workload == "interactive-chat"
    text = " | ".join(notes)
    assert "h100-sxm" in text and "vllm" in text and "chatbot" in text


def test_targets_and_price_are_in_the_url_only_when_set():
    assert not {"t", "o", "k", "h"} & set(to_query(WizardState()))
    state = WizardState(max_ttft_ms=500, max_tpot_ms=30, max_cost=2.5, usd_per_gpu_hour=1.8)
    query = to_query(state)
    assert (query["t"], query["o"], query["k"], query["h"]) == ("500", "30", "2.5", "1.8")
    request = to_request(state)
    assert (request.criteria.max_ttft_ms, request.criteria.max_tpot_ms,
            request.criteria.max_cost_per_million_tokens, request.usd_per_gpu_hour) == (500, 30, 2.5, 1.8)


def test_bad_target_in_the_url_is_named_and_dropped():
    state, notes = from_query({"t": "-5", "h": "lots", "o": "25"})
    assert state.max_ttft_ms == 0 and state.usd_per_gpu_hour == 0 and state.max_tpot_ms == 25
    assert any(n.startswith("ignored max_ttft_ms = '-5'") for n in notes)
    assert any(n.startswith("ignored usd_per_gpu_hour = 'lots'") for n in notes)


def test_state_to_request_and_back_gives_the_same_plan():
    state = WizardState(gpu="l40s", gpus=2, priority="balanced", quality_floor=98, unacceptable=("tool-call-errors",),
                        max_tpot_ms=80, usd_per_gpu_hour=0.95,
                        endpoints=(EndpointState(name="chat"), EndpointState(name="rag", workload="long-context-rag",
                                                                             concurrency=8, prompt_tokens=20000,
                                                                             output_tokens=2000, context=32768)))
    request = to_request(state)
    assert from_request(request, K) == state
    document = plan.build(request, K)
    assert from_request(plan.load(plan.dump(document), K), K) == state


@pytest.mark.parametrize("bad", ["", "x" * 33, "has space", "colon:name"])
def test_endpoint_names_are_restricted(bad):
    with pytest.raises(ValueError):
        EndpointState(name=bad)


def test_any_hugging_face_id_and_a_custom_gpu_survive_the_link():
    state = WizardState(model="mistralai/Mistral-Small-24B-Instruct-2501", gpu="custom", gpu_name="RTX 4070",
                        gpu_memory_gib=11.99, gpu_bandwidth_tbps=0.504, gpu_cc="8.9", gpu_bf16=58.3, gpu_fp8=116.6)
    query = to_query(state)
    assert query["m"] == "mistralai/Mistral-Small-24B-Instruct-2501" and query["gm"] == "11.99"
    again, notes = from_query(query)
    checked, more = check_against(again, K)
    assert checked == state and notes == more == []
    request = to_request(checked)
    assert request.custom_gpu.dense_tflops == {"bf16": 58.3, "fp8": 116.6} and request.gpu == "custom"
    assert from_request(request, K) == state
    # the custom fields stay out of links for catalog GPUs
    assert "gm" not in to_query(WizardState(gpu="l4", gpu_memory_gib=12))


def test_a_short_model_name_in_a_link_opens_the_catalog_model():
    """New-user trial (issue 10): the wizard accepts 'Qwen2.5-32B-Instruct'; its link must reopen that model, not the
    default with an 'unknown model' note."""
    from advisor.plan.permalink import WizardState, check_against

    state, notes = check_against(WizardState(model="qwen2.5-32b-instruct"), K)
    assert state.model == "Qwen/Qwen2.5-32B-Instruct" and not notes


def test_nodes_travel_in_the_link_only_when_above_one():
    """Issue 12 multi-node: nn = nodes of n GPUs each; links without it (every older link) mean one node."""
    from advisor.plan import permalink as P

    one = P.WizardState()
    assert "nn" not in P.to_query(one)
    state, notes = P.from_query({"m": "meta-llama/Llama-3.1-405B-Instruct", "g": "h100-sxm", "n": "8", "nn": "2"})
    assert notes == [] and state.nodes == 2 and P.to_query(state)["nn"] == "2"
    request = P.to_request(state)
    assert (request.gpus, request.nodes) == (8, 2)
    assert P.from_query(P.to_query(state))[0] == state
    _, notes = P.from_query({"nn": "17"})
    assert notes and "nodes" in notes[0]


def test_the_model_revision_travels_in_the_link_only_when_set():
    """Issue 12 drift: mr = the model repo's Hub revision; links without it (every older link) mean its main branch."""
    from advisor.plan import permalink as P

    assert "mr" not in P.to_query(P.WizardState())
    state, notes = P.from_query({"m": "meta-llama/Llama-3.1-8B-Instruct", "mr": "0e9e39f2"})
    assert notes == [] and state.model_revision == "0e9e39f2" and P.to_query(state)["mr"] == "0e9e39f2"
    request = P.to_request(state)
    assert request.model_revision == "0e9e39f2"
    assert P.from_request(request, K).model_revision == "0e9e39f2"
    _, notes = P.from_query({"mr": "../etc"})
    assert notes and "model_revision" in notes[0]

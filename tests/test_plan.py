"""The plan document (schema 2): required sections, YAML round trip, request files, schema-1 plans, and readable
errors."""

import json

import pytest
import yaml

from advisor import plan
from advisor.errors import AdvisorInputError
from advisor.intake.request import Endpoint, Request
from advisor.knowledge import load_knowledge

K = load_knowledge()
PLAN_FORMATS = {"fp32", "bf16", "fp16", "fp8", "int8", "int4", "int3", "int2", "fp6", "fp4"}

MULTI = Request(
    model="meta-llama/Llama-3.1-70B-Instruct",
    gpu="h100-sxm",
    gpus=2,
    criteria={"quality_floor_pct": 97, "unacceptable": ["tool-call-errors"]},
    endpoints=[
        Endpoint(name="chat", workload="interactive-chat"),
        Endpoint(name="rag", workload="long-context-rag", context=32768),
        Endpoint(name="batch", workload="batch-summarization", concurrency=128),
    ],
)


@pytest.fixture(scope="module")
def multi_plan():
    return plan.build(MULTI, K)


def test_plan_has_every_section(multi_plan):
    assert multi_plan["schema_version"] == 2
    for key in ["request", "model", "hardware", "policy", "provider_quantizations", "endpoints"]:
        assert key in multi_plan
    for e in multi_plan["endpoints"]:
        r = e["recommendation"]
        for key in [
            "notation",
            "scenario",
            "weights",
            "activations",
            "kv_cache",
            "high_precision_layers",
            "calibration",
        ]:
            assert key in r, key
        for key in ["format", "scheme", "method", "bits_per_weight", "granularity"]:
            assert key in r["weights"], key
        assert r["weights"]["format"] in PLAN_FORMATS
        assert r["activations"]["format"] in PLAN_FORMATS and r["kv_cache"]["format"] in PLAN_FORMATS
        for key in [
            "weights_gib",
            "kv_cache_gib",
            "overhead_gib",
            "total_gib",
            "capacity_gib",
            "fits",
            "max_concurrency",
        ]:
            assert key in e["memory"], key
        for key in ["alternatives", "rejected", "fallback", "ladder", "validation", "rationale", "runtime",
                    "deployment", "quality", "performance", "cost", "pareto", "near_misses", "claims", "why"]:
            assert key in e, key
        d = e["deployment"]
        assert d["tensor_parallel"] * d["replicas"] == d["gpus"] <= MULTI.gpus
        assert {"expected_recovery_pct", "worst_recovery_pct", "by_task", "sources"} <= set(e["quality"])
        assert e["quality"]["worst_recovery_pct"] <= e["quality"]["expected_recovery_pct"]
        assert sum(1 for p in e["pareto"] if p["pick"]) == 1
        for item in [*e["alternatives"], *e["pareto"], e["fallback"]]:
            assert {"quality", "performance", "memory", "layout", "runtime", "cost"} <= set(item)
            assert item["quality"]["sources"] or item["candidate"] == "bf16"
        for item in e["alternatives"]:
            assert item["why"] and "16-bit baseline" in item["why"][0]  # each states its figures
        assert e["fallback"]["why"][0] and "16-bit baseline" in e["fallback"]["why"][1]
        assert {"name", "version", "serve_command", "quantization"} <= set(e["runtime"])
        assert all(v["source"] for v in e["validation"]) and all(x["source"] for x in e["rationale"])
        assert e["memory"]["total_gib"] <= e["memory"]["capacity_gib"]


def test_plan_yaml_round_trip_gives_the_same_request_and_recommendation(multi_plan):
    text = plan.dump(multi_plan)
    request = plan.load(text, K)
    assert request == MULTI
    assert plan.build(request, K) == multi_plan
    assert yaml.safe_load(text) == json.loads(json.dumps(multi_plan))  # plain data, nothing Python-specific


def test_a_request_file_with_several_endpoints(tmp_path):
    text = """
model: Qwen/Qwen3-32B
gpu: l40s
gpus: 2
endpoints:
  - {name: support, workload: customer-support}
  - {name: tagging, workload: classification, concurrency: 256}
"""
    request = plan.load(text, K)
    document = plan.build(request, K)
    assert [e["name"] for e in document["endpoints"]] == ["support", "tagging"]
    assert document["endpoints"][1]["shape"]["concurrency"] == 256


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("model: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "expected a YAML mapping"),
        ("model: x\ngpu: h100-sxm\ncolour: blue\n", "colour: Extra inputs are not permitted"),
        ("gpu: h100-sxm\n", "model: Field required"),
        ("model: meta-llama/Llama-3.1-8B-Instruct\ngpu: h100\n", "closest valid: h100-sxm"),
        (
            "model: meta-llama/Llama-3.1-8B-Instruct\ngpu: l4\nendpoints: [{workload: chatbot}]\n",
            "endpoints[0].workload",
        ),
        ("model: meta-llama/Llama-3.1-8B-Instruct\ngpu: l4\npriority: fastest\n", "priority: Input should be"),
        ("model: meta-llama/Llama-3.1-8B-Instruct\ngpu: l4\nendpoints: [{name: a}, {name: a}]\n", "repeated: a"),
        ("schema_version: 7\nmodel: x\n", "schema_version"),
        (
            "model: meta-llama/Llama-3.1-8B-Instruct\ngpu: l4\ncriteria: {unacceptable: [boredom]}\n",
            "criteria.unacceptable.0",
        ),
    ],
)
def test_bad_documents_get_one_readable_error(text, needle):
    with pytest.raises(AdvisorInputError) as info:
        plan.load(text, K)
    message = str(info.value)
    assert needle in message, message
    assert "\n" not in message and "Traceback" not in message


def test_oversized_documents_are_refused():
    with pytest.raises(AdvisorInputError, match="must be under"):
        plan.load("#" * 1_000_001, K)


def test_request_fields_the_engine_does_not_know_are_rejected_at_build():
    with pytest.raises(AdvisorInputError, match="model: 'no such model' is not a catalog model"):
        plan.build(Request(model="no such model", gpu="l4"), K)
    # a repo id is looked up on the Hub: the suite runs offline with an empty cache
    with pytest.raises(AdvisorInputError, match="model: no/such-model: offline .HF_HUB_OFFLINE"):
        plan.build(Request(model="no/such-model", gpu="l4"), K)


def test_gpu_counts_that_cannot_split_the_heads_run_as_replicas():
    """3 GPUs cannot split 64 heads in tensor parallel, but they can run 3 replicas of one GPU each."""
    document = plan.build(Request(model="meta-llama/Llama-3.1-70B-Instruct", gpu="h100-sxm", gpus=3), K)
    d = document["endpoints"][0]["deployment"]
    assert d["tensor_parallel"] == 1 and d["replicas"] == 3


def test_schema_1_plans_still_import_and_reproduce_a_recommendation():
    v1 = """
schema_version: 1
generator: precision-advisor 0.1.0
request:
  model: meta-llama/Llama-3.1-70B-Instruct
  custom_model: null
  gpu: h100-sxm
  gpus: 2
  runtime: null
  priority: null
  calibration: available
  criteria: {quality_floor_pct: null, max_ttft_ms: null, max_tpot_ms: null, max_cost_per_million_tokens: null,
             unacceptable: []}
  usd_per_gpu_hour: null
  endpoints:
  - {name: default, workload: interactive-chat, priority: null, prompt_tokens: null, output_tokens: null,
     concurrency: null, context: null}
endpoints:
- name: default
  recommendation: {candidate: int4-awq, notation: W4A16 KV-FP8}
  scores: {quality: -2.5, latency: 3.0, throughput: -1.0, memory: 3.2, total: 4.1}
"""
    request = plan.load(v1, K)
    assert request.model == "meta-llama/Llama-3.1-70B-Instruct" and request.gpus == 2
    document = plan.build(request, K)
    assert document["schema_version"] == 2 and document["endpoints"][0]["recommendation"]["notation"]


def test_context_beyond_the_model_limit_is_refused():
    with pytest.raises(AdvisorInputError, match="exceeds"):
        plan.build(
            Request(
                model="microsoft/Phi-3-mini-4k-instruct", gpu="l4", endpoints=[Endpoint(workload="long-context-rag")]
            ),
            K,
        )


def test_llama_cpp_serves_16_bit_weights_from_a_converted_gguf_file():
    """llama-server -m takes a local GGUF file: a 16-bit pick on llama.cpp converts the checkpoint first (no
    quantization) and serves that file, never the Hub id."""
    doc = plan.build(Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="mi300x", gpus=2, runtime="llama.cpp",
                             priority="cost", endpoints=[Endpoint(workload="interactive-chat", concurrency=256)]), K)
    ep = doc["endpoints"][0]
    assert ep["recommendation"]["candidate"] == "bf16"
    rt = ep["runtime"]
    assert "-m ./Llama-3.1-8B-Instruct-bf16.gguf" in rt["serve_command"]
    assert "-m meta-llama/" not in rt["serve_command"]
    assert rt["quantization"]["recipe"].startswith("python convert_hf_to_gguf.py")
    assert "--outtype bf16 --outfile ./Llama-3.1-8B-Instruct-bf16.gguf" in rt["quantization"]["recipe"]

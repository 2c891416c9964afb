"""The engine end to end: gates with reasons, ranking, per-endpoint choices, ladder, fallback, plan content.

ENGINE_BEHAVIOURS maps every `engine:<tag>` used in knowledge/seed_statements.yaml to the test here that
shows that behaviour, so each seed statement is tested either through its rules or through one of these.
"""

import functools

import pytest

from advisor import plan
from advisor.decide.recommend import recommend
from advisor.intake.request import Endpoint, Request
from advisor.knowledge import load_knowledge

K = load_knowledge()


def endpoint_plan(**kw):
    """A plan, cached per distinct request (the arguments are frozen into a hashable key)."""
    kw = {k: tuple(tuple(sorted(e.items())) for e in v) if k == "endpoints" else v for k, v in kw.items()}
    if "criteria" in kw:
        kw["criteria"] = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(kw["criteria"].items()))
    return _plan_cached(tuple(sorted(kw.items())))


@functools.cache
def _plan_cached(items):
    kw = dict(items)
    if "criteria" in kw:
        kw["criteria"] = {k: list(v) if isinstance(v, tuple) else v for k, v in kw["criteria"]}
    if "endpoints" in kw:
        kw["endpoints"] = [dict(e) for e in kw["endpoints"]]
    endpoints = kw.pop("endpoints", None)
    req = Request(**kw, endpoints=[Endpoint(**e) for e in endpoints] if endpoints else [Endpoint()])
    return plan.build(req, K)


def ep(**kw) -> dict:
    return endpoint_plan(**kw)["endpoints"][0]


def rejected(e: dict) -> dict[str, list[str]]:
    return {r["candidate"]: r["reasons"] for r in e["rejected"]}


def fired(e: dict) -> set[str]:
    return {r["rule"] for r in e["rationale"]}


# ---------------------------------------------------------------- the gating examples
def test_fp8_w8a8_needs_ada_and_a100_runs_it_as_w8a16():
    e = ep(model="meta-llama/Llama-3.1-8B-Instruct", gpu="a100-80gb")
    reasons = " ".join(rejected(e)["fp8-w8a8"])
    assert "8.9" in reasons and "W8A16 through Marlin" in reasons
    assert "fp8-w8a16" not in rejected(e)  # the Marlin path is offered on Ampere
    h100 = ep(model="meta-llama/Llama-3.1-8B-Instruct", gpu="h100-sxm")
    assert "fp8-w8a8" not in rejected(h100) and "fp8-w8a16" in rejected(h100)


def test_fp4_needs_blackwell():
    e = ep(model="meta-llama/Llama-3.1-70B-Instruct", gpu="h100-sxm")
    assert any("Blackwell" in r for r in rejected(e)["nvfp4"])
    b200 = ep(model="meta-llama/Llama-3.1-70B-Instruct", gpu="b200", endpoints=[{"workload": "batch-summarization"}])
    assert "nvfp4" not in rejected(b200)
    assert b200["recommendation"]["candidate"] == "nvfp4"  # Blackwell + large batch: FP4 first


@pytest.mark.parametrize("gpu", ["t4", "v100"])
def test_t4_and_v100_have_no_bf16(gpu):
    e = ep(model="meta-llama/Llama-3.2-3B-Instruct", gpu=gpu)
    assert any("no BF16" in r for r in rejected(e)["bf16"])
    assert e["recommendation"]["kv_cache"]["kv_format"] != "bf16"
    assert e["recommendation"]["activations"]["format"] != "bf16"
    assert "--dtype half" in e["runtime"]["serve_command"]  # the unquantized parts load as FP16


def test_llama_cpp_has_no_fp8_kv_and_needs_flash_attention_for_quantized_v():
    e = ep(
        model="meta-llama/Llama-3.1-8B-Instruct",
        gpu="rtx-4090",
        runtime="llama.cpp",
        endpoints=[{"workload": "long-context-rag", "priority": "memory"}],
    )
    assert e["runtime"]["id"] == "llama.cpp"
    kv = e["recommendation"]["kv_cache"]["kv_format"]
    assert kv in ("q8_0", "q4_0") and kv != "fp8"
    assert "--flash-attn on" in e["runtime"]["serve_command"]
    assert f"-ctk {kv} -ctv {kv}" in e["runtime"]["serve_command"]
    assert "llama-cpp-quantized-v-needs-flash-attention" in fired(e)


def test_llama_cpp_rejects_fp8_kv_with_the_rule():
    from advisor.decide.recommend import _Context, _evaluate  # the gate on one combination
    from advisor.intake.request import resolve_shape

    req = Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="rtx-4090", runtime="llama.cpp")
    result = recommend(req, K)
    ctx = _Context(K, req, result.model, result.gpu, resolve_shape(req, req.endpoints[0], K))
    combo = _evaluate(ctx, K.candidates["gguf-q4_k_m"], K.kv_formats["fp8"], K.runtimes["llama.cpp"])
    assert [r.rule for r in combo.reasons if r.rule] == ["llama-cpp-no-fp8-kv"]


def test_vllm_int8_w8a8_not_on_blackwell():
    e = ep(model="meta-llama/Llama-3.1-8B-Instruct", gpu="b200", runtime="vllm")
    assert any("10.0" in r for r in rejected(e)["int8-w8a8"])


def test_tensorrt_llm_does_not_run_on_amd():
    e = ep(model="meta-llama/Llama-3.1-8B-Instruct", gpu="mi300x", runtime="tensorrt-llm")
    assert not e["fits"] and "recommendation" not in e
    assert all(any("AMD" in r for r in reasons) for reasons in rejected(e).values())


# ---------------------------------------------------------------- engine behaviours named by seed statements
def test_engine_success_criteria():
    floor = ep(model="meta-llama/Llama-3.1-70B-Instruct", gpu="h100-sxm", gpus=2, criteria={"quality_floor_pct": 99.0})
    assert "quality-floor" in {x for r in floor["rejected"] for x in r["rules"]}
    assert floor["recommendation"]["quality_evidence"]["worst_recovery_pct"] >= 99.0
    drift = ep(
        model="meta-llama/Llama-3.1-8B-Instruct",
        gpu="l4",
        endpoints=[{"workload": "long-context-rag"}],
        criteria={"unacceptable": ["long-context-drift"]},
    )
    assert drift["recommendation"]["kv_cache"]["kv_format"] not in ("int4", "q4_0", "nvfp4")


def test_engine_ladder():
    e = ep(model="meta-llama/Llama-3.1-70B-Instruct", gpu="a100-80gb")
    ladder = e["ladder"]
    assert ladder[0]["role"] == "baseline" and ladder[0]["candidate"] == "bf16" and not ladder[0]["fits"]
    assert "measure it on more GPUs" in ladder[0]["note"]
    assert [s["role"] for s in ladder] == ["baseline", "step", "pick"]
    assert ladder[1]["notation"].startswith("W8") and ladder[-1]["candidate"] == e["recommendation"]["candidate"]


def test_engine_per_endpoint():
    p = endpoint_plan(
        model="meta-llama/Llama-3.1-70B-Instruct",
        gpu="h100-sxm",
        gpus=2,
        endpoints=[
            {"name": "support", "workload": "customer-support"},
            {"name": "bulk", "workload": "classification"},
        ],
    )
    by_name = {e["name"]: e for e in p["endpoints"]}
    support, bulk = by_name["support"], by_name["bulk"]
    assert support["priority"] == "quality" and bulk["priority"] == "cost"
    assert support["recommendation"]["notation"] != bulk["recommendation"]["notation"]
    # the support endpoint keeps at least as many bits everywhere
    assert (
        support["recommendation"]["weights"]["bits_per_weight"] >= bulk["recommendation"]["weights"]["bits_per_weight"]
    )
    kv_bits = {"bf16": 16, "fp16": 16, "fp8": 8, "int8": 8, "int4": 4}
    assert (
        kv_bits[support["recommendation"]["kv_cache"]["kv_format"]]
        > kv_bits[bulk["recommendation"]["kv_cache"]["kv_format"]]
    )


def test_engine_fallback():
    e = ep(model="meta-llama/Llama-3.1-8B-Instruct", gpu="l40s", endpoints=[{"workload": "batch-summarization"}])
    assert (
        e["fallback"]
        and e["fallback"]["candidate"] != e["recommendation"]["candidate"]
        or e["fallback"]["notation"] != e["recommendation"]["notation"]
    )
    p = endpoint_plan(
        model="meta-llama/Llama-3.1-8B-Instruct", gpu="l40s", endpoints=[{"workload": "batch-summarization"}]
    )
    assert e["fallback"]["notation"] in p["policy"]["fallback"]


def test_engine_policy():
    p = endpoint_plan(model="meta-llama/Llama-3.1-8B-Instruct", gpu="l40s")
    policy = p["policy"]
    assert "fallback" in policy and "drift_monitoring" in policy and "lowest-stakes" in policy["rollout"]
    assert any("runtime" in t for t in policy["retest_triggers"]) and any(
        "model revision" in t for t in policy["retest_triggers"]
    )


def test_engine_format_and_method():
    w = ep(model="meta-llama/Llama-3.1-70B-Instruct", gpu="a100-80gb")["recommendation"]["weights"]
    assert w["format"] == "int4" and w["method"] in ("awq", "gptq") and w["scheme"] in ("int4-awq", "int4-gptq")


def test_engine_runtime_first():
    e = ep(model="meta-llama/Llama-3.1-8B-Instruct", gpu="h100-sxm")
    assert e["runtime"]["id"] == "vllm" and "preference order" in e["runtime"]["chosen_by"]
    assert any("served by: llama.cpp" in r for r in rejected(e)["gguf-q4_k_m"])
    llama = ep(model="meta-llama/Llama-3.1-8B-Instruct", gpu="h100-sxm", runtime="llama.cpp")
    assert llama["recommendation"]["candidate"].startswith("gguf-")


def test_engine_provider_filter():
    p = endpoint_plan(
        model="meta-llama/Llama-3.1-8B-Instruct",
        gpu="l40s",
        endpoints=[{"name": "q", "workload": "reasoning-critical"}, {"name": "c", "workload": "classification"}],
    )
    by = p["provider_quantizations"]["by_endpoint"]
    assert by["q"] == ["fp32", "bf16"] and by["c"] == ["int8", "fp8"]


def test_engine_scoring():
    quality = ep(model="meta-llama/Llama-3.1-8B-Instruct", gpu="a100-80gb", priority="quality")
    memory = ep(
        model="meta-llama/Llama-3.1-8B-Instruct",
        gpu="a100-80gb",
        priority="memory",
        endpoints=[{"workload": "long-context-rag", "concurrency": 32}],
    )
    assert (
        quality["recommendation"]["weights"]["bits_per_weight"] > memory["recommendation"]["weights"]["bits_per_weight"]
    )
    assert set(quality["scores"]) == {"quality", "latency", "throughput", "memory", "total"}
    assert quality["scores"]["quality"] > memory["scores"]["quality"]


def test_engine_granularity():
    r = ep(model="meta-llama/Llama-3.1-70B-Instruct", gpu="a100-80gb")["recommendation"]
    assert "group 128" in r["weights"]["granularity"]
    fp8 = ep(model="meta-llama/Llama-3.1-8B-Instruct", gpu="h100-sxm")["recommendation"]
    assert "per-channel" in fp8["weights"]["granularity"] and "BF16 accumulation" in fp8["weights"]["granularity"]


def test_engine_calibration_plan():
    awq = ep(model="meta-llama/Llama-3.1-70B-Instruct", gpu="a100-80gb")["recommendation"]["calibration"]
    assert awq["needed"] and 128 <= awq["samples"] <= 512 and "traffic" in awq["data"]
    fp8 = ep(model="meta-llama/Llama-3.1-8B-Instruct", gpu="h100-sxm")["recommendation"]["calibration"]
    assert fp8["needed"] is False


def test_engine_high_precision_layers():
    layers = ep(model="meta-llama/Llama-3.1-70B-Instruct", gpu="a100-80gb")["recommendation"]["high_precision_layers"]
    text = " ".join(layers)
    assert "lm_head" in text and "embedding" in text and "norm" in text and "rotary" in text


def test_engine_savings():
    e = ep(model="meta-llama/Llama-3.1-70B-Instruct", gpu="a100-80gb")
    assert e["memory"]["weights_gib"] < 40 and e["recommendation"]["weights"]["bits_per_weight"] > 4.4


def test_engine_notation():
    r = ep(model="meta-llama/Llama-3.1-8B-Instruct", gpu="l4", endpoints=[{"workload": "long-context-rag"}])
    assert r["recommendation"]["notation"].startswith("W") and " KV-" in r["recommendation"]["notation"]
    assert r["recommendation"]["scenario"].endswith("+D")


ENGINE_BEHAVIOURS = {
    "success-criteria": test_engine_success_criteria,
    "ladder": test_engine_ladder,
    "per-endpoint": test_engine_per_endpoint,
    "fallback": test_engine_fallback,
    "policy": test_engine_policy,
    "format-and-method": test_engine_format_and_method,
    "runtime-first": test_engine_runtime_first,
    "provider-filter": test_engine_provider_filter,
    "scoring": test_engine_scoring,
    "granularity": test_engine_granularity,
    "calibration-plan": test_engine_calibration_plan,
    "high-precision-layers": test_engine_high_precision_layers,
    "savings": test_engine_savings,
    "notation": test_engine_notation,
}


def test_every_engine_tag_in_the_seed_inventory_has_a_test():
    tags = {
        ref.split(":", 1)[1] for st in K.seed_statements.values() for ref in st.encoded_by if ref.startswith("engine:")
    }
    assert tags <= set(ENGINE_BEHAVIOURS), tags - set(ENGINE_BEHAVIOURS)


def test_every_seed_statement_is_encoded_or_explained():
    seeds = {st.seed for st in K.seed_statements.values()}
    assert len(seeds) == 5
    for st in K.seed_statements.values():
        assert st.encoded_by or st.not_encoded, st.id


# ---------------------------------------------------------------- when nothing fits
def test_nothing_fits_says_so_and_what_would():
    e = ep(model="meta-llama/Llama-3.1-405B-Instruct", gpu="l4")
    assert e["fits"] is False and e["memory"]["fits"] is False
    assert e["summary"].startswith("Does not fit")
    assert any("more GPUs" in w for w in e["what_would_fit"])


def test_nothing_fits_suggests_shorter_context_or_fewer_sequences():
    e = ep(
        model="meta-llama/Llama-3.1-70B-Instruct",
        gpu="h100-sxm",
        endpoints=[{"workload": "long-context-rag", "concurrency": 64, "context": 131072}],
    )
    assert e["fits"] is False
    assert any("shorter context" in w or "fewer concurrent" in w for w in e["what_would_fit"])


def test_native_checkpoints_are_offered():
    e = ep(model="openai/gpt-oss-120b", gpu="h100-sxm")
    assert e["recommendation"]["candidate"] == "native-mxfp4-experts"
    assert e["recommendation"]["calibration"]["needed"] is False
    assert e["runtime"]["serve_command"].startswith("vllm serve openai/gpt-oss-120b")


def test_calibration_none_points_to_published_checkpoints():
    with_data = ep(
        model="meta-llama/Llama-3.1-8B-Instruct",
        gpu="a100-80gb",
        calibration="available",
        endpoints=[{"workload": "batch-summarization"}],
    )
    without = ep(
        model="meta-llama/Llama-3.1-8B-Instruct",
        gpu="a100-80gb",
        calibration="none",
        endpoints=[{"workload": "batch-summarization"}],
    )
    assert with_data["recommendation"]["candidate"] == without["recommendation"]["candidate"] == "int8-w8a8"
    assert "calibration-none-needs-published-checkpoint" in fired(without)
    assert "calibration-none-needs-published-checkpoint" not in fired(with_data)
    assert any("published pre-quantized checkpoint" in n for n in without["notes"])
    assert without["scores"]["quality"] < with_data["scores"]["quality"]


def test_published_fp8_checkpoint_beats_requantizing():
    e = ep(model="deepseek-ai/DeepSeek-V3", gpu="h200", gpus=8, endpoints=[{"workload": "batch-summarization"}])
    assert e["recommendation"]["candidate"] == "native-fp8-block"
    assert "prefer-published-quantized-checkpoint" in fired(e)
    assert e["runtime"]["quantization"]["needed"] is False
    assert e["runtime"]["serve_command"].startswith("vllm serve deepseek-ai/DeepSeek-V3 --tensor-parallel-size 8")


def test_latency_targets_reject_with_reasons():
    relaxed = ep(model="meta-llama/Llama-3.1-70B-Instruct", gpu="h100-sxm", gpus=2)
    perf = relaxed["performance"]
    assert perf["ttft_ms"] > 0 and perf["tpot_ms"] > 0 and perf["bound"]["decode"] == "memory"
    target = perf["tpot_ms"] * 0.9
    strict = ep(model="meta-llama/Llama-3.1-70B-Instruct", gpu="h100-sxm", gpus=2, criteria={"max_tpot_ms": target})
    # the relaxed pick misses the target, so the strict plan picks something faster
    assert strict["recommendation"]["notation"] != relaxed["recommendation"]["notation"]
    assert strict["performance"]["tpot_ms"] <= target


def test_no_configuration_meets_an_impossible_target():
    e = ep(model="meta-llama/Llama-3.1-8B-Instruct", gpu="l4", criteria={"max_ttft_ms": 0.5})
    assert e["fits"] is False and e["memory"]["fits"] is True
    assert e["summary"].startswith("No configuration meets your targets")
    assert any("time-to-first-token target of" in w for w in e["what_would_fit"])
    assert any("ttft-target" in r["rules"] for r in e["rejected"])

"""Compatibility gates against the runtimes' own code: what each pinned runtime serves on which GPU
(knowledge/candidates.yaml, knowledge/rules.yaml) and the architecture-aware gates, each checked on every catalog
model (knowledge/models.yaml) against the fact for that model."""

import functools

import pytest

from advisor.decide import gates
from advisor.decide.context import EndpointContext
from advisor.intake.catalog import resolve_model
from advisor.intake.request import Endpoint, Request, resolve_gpu, resolve_shape
from advisor.knowledge import load_knowledge

K = load_knowledge()
CATALOG = list(K.models)


@functools.cache
def context(model: str, gpu: str = "h100-sxm", gpus: int = 1) -> EndpointContext:
    request = Request(model=model, gpu=gpu, gpus=gpus, endpoints=[Endpoint(workload="interactive-chat")])
    return EndpointContext(K, request, resolve_model(K, model), resolve_gpu(request, K),
                           resolve_shape(request, request.endpoints[0], K))


def refusals(ctx: EndpointContext, cand: str, kv: str, runtime: str) -> list[str]:
    """Every hard reason the search gives for (candidate, KV format, runtime) before layouts and memory."""
    c, k, r = K.candidates[cand], K.kv_formats[kv], K.runtimes[runtime]
    reasons = gates.runtime_reasons(ctx, r) + gates.support_reasons(ctx, c, k, r) + ctx.verdict(c, k, r).reasons
    return [x.text for x in reasons]


# ---------------------------------------------------------------- runtime rows
@pytest.mark.parametrize(("gpu", "served"), [("t4", False), ("a100-80gb", True), ("l40s", True), ("l4", True),
                                             ("h100-sxm", False), ("mi300x", False)])
def test_tgi_runs_fp8_as_marlin_w8a16_on_every_cc_8x(gpu, served):
    """TGI's get_fp8_linear picks GPTQMarlinFP8Linear whenever the major compute capability is 8 (8.9 too:
    TGI#2388), so FP8 on TGI is weight-only there and W8A8 from Hopper on."""
    ctx = context("meta-llama/Llama-3.1-8B-Instruct", gpu)
    assert (not refusals(ctx, "fp8-w8a16", "fp16", "tgi")) is served  # TGI's 16-bit cache is "auto" (fp16 row)
    cand = K.candidates["fp8-w8a16"]
    assert cand.activations == "bf16" and cand.weight_only  # the speed model runs its matmuls in 16 bits


def test_tgi_fp8_w8a8_only_from_hopper_and_vllm_keeps_w8a8_on_ada():
    l40s, h100 = context("meta-llama/Llama-3.1-8B-Instruct", "l40s"), context("meta-llama/Llama-3.1-8B-Instruct")
    assert any("9.0" in r for r in refusals(l40s, "fp8-w8a8", "fp16", "tgi"))
    assert not refusals(h100, "fp8-w8a8", "fp16", "tgi")
    assert not refusals(l40s, "fp8-w8a8", "bf16", "vllm")
    assert any("W8A8" in r for r in refusals(l40s, "fp8-w8a16", "bf16", "vllm"))  # vLLM uses FP8 cores on 8.9


def test_the_tgi_fp8_plan_is_weight_only_on_an_a100():
    from advisor.decide.engine import recommend

    request = Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="a100-80gb", runtime="tgi",
                      endpoints=[Endpoint(workload="interactive-chat")])
    er = recommend(request, K).endpoints[0]
    rejected = {c for r in er.rejected for c in r.candidate.split(", ")}
    assert "fp8-w8a8" in rejected and "fp8-w8a16" not in rejected


@pytest.mark.parametrize(("gpu", "served"), [("a100-80gb", False), ("l40s", True), ("h100-sxm", True)])
def test_transformers_serves_fine_grained_fp8_from_cc_8_9(gpu, served):
    """transformers 5.23 runs FineGrainedFP8 checkpoints in FP8 from compute capability 8.9 and dequantizes them to
    BF16 below it (quantizer_finegrained_fp8.py), which would serve none of the memory the plan counts."""
    ctx = context("deepseek-ai/DeepSeek-V3", gpu)
    assert (not refusals(ctx, "native-fp8-block", "bf16", "transformers")) is served


@pytest.mark.parametrize("cand", [c for c in K.candidates if c.startswith("gguf-")])
def test_vllm_0_33_serves_no_gguf_and_says_why(cand):
    """The pinned vLLM wheel has no gguf quantization method or load format (vllm#39583 deprecated it)."""
    reasons = refusals(context("meta-llama/Llama-3.1-8B-Instruct"), cand, "bf16", "vllm")
    assert any("GGUF" in r and "llama.cpp" in r for r in reasons)
    assert "vllm" not in K.candidates[cand].runtimes


# ---------------------------------------------------------------- tensor parallel x group size
# The largest tensor-parallel size (of 1, 2, 4, 8) at which every row-parallel input of the model (attention
# output = heads x head_dim, or heads x v_head_dim under MLA; the dense MLP's and the experts' down projection)
# divides into whole groups of 128 on each GPU, worked out by hand from each config.json:
#   Qwen2.5-7B: 28 heads x 128 = 28 groups (not over 8) and 18,944 = 148 groups (37 per GPU at TP 4).
#   Qwen2.5-14B: 13,824 = 108 groups, 13.5 at TP 8.  Qwen2.5-72B: 29,568 = 231 groups, odd.
#   phi-4: 17,920 = 140 groups, 17.5 at TP 8.  Qwen3-30B-A3B: experts' 768 = 6 groups, 1.5 at TP 4.
#   Qwen3-235B-A22B: experts' 1,536 = 12 groups, 1.5 at TP 8.  gpt-oss: experts' 2,880 = 22.5 groups at TP 1.
#   DeepSeek-V3: 128 x 128 = 16,384, dense 18,432 = 144 and experts' 2,048 = 16 groups: all split over 8.
INT4_G128_MAX_TP = {
    "meta-llama/Llama-3.1-8B-Instruct": 8, "meta-llama/Llama-3.1-70B-Instruct": 8,
    "meta-llama/Llama-3.3-70B-Instruct": 8, "meta-llama/Llama-3.1-405B-Instruct": 8,
    "meta-llama/Llama-3.2-1B-Instruct": 8, "meta-llama/Llama-3.2-3B-Instruct": 8,
    "mistralai/Mistral-7B-Instruct-v0.3": 8, "Qwen/Qwen2.5-7B-Instruct": 4, "Qwen/Qwen2.5-14B-Instruct": 4,
    "Qwen/Qwen2.5-32B-Instruct": 8, "Qwen/Qwen2.5-72B-Instruct": 1, "Qwen/Qwen3-8B": 8, "Qwen/Qwen3-32B": 8,
    "google/gemma-2-9b-it": 8, "google/gemma-2-27b-it": 8, "google/gemma-3-27b-it": 8,
    "microsoft/Phi-3-mini-4k-instruct": 8, "microsoft/phi-4": 4, "mistralai/Mixtral-8x7B-Instruct-v0.1": 8,
    "mistralai/Mixtral-8x22B-Instruct-v0.1": 8, "Qwen/Qwen3-30B-A3B": 2, "Qwen/Qwen3-235B-A22B": 4,
    "deepseek-ai/DeepSeek-V3": 8, "openai/gpt-oss-120b": 1, "openai/gpt-oss-20b": 1,
}


def test_the_group_size_table_covers_the_catalog():
    assert set(INT4_G128_MAX_TP) == set(CATALOG)


@pytest.mark.parametrize("model", CATALOG)
def test_int4_g128_splits_only_where_every_row_parallel_input_does(model):
    ctx = context(model)
    cand = K.candidates["int4-gptq"]
    assert ctx.weights(cand).layout.group_size == 128
    for tp in (1, 2, 4, 8):
        refused = gates.group_split_reason(ctx, cand, tp) is not None
        assert refused is (tp > INT4_G128_MAX_TP[model]), (model, tp)


def test_the_qwen2_5_72b_reason_names_its_numbers():
    ctx = context("Qwen/Qwen2.5-72B-Instruct", gpus=4)
    cand = K.candidates["int4-awq"]
    assert gates.group_split_reason(ctx, cand, 1) is None
    text = gates.group_split_reason(ctx, cand, 4).text
    assert "29,568 inputs = 231 groups of 128" in text and "7,392 inputs = 57.75 groups" in text
    per_channel = gates.group_split_reason(ctx, K.candidates["fp8-w8a8"], 4)  # channel scales: any split works
    assert per_channel is None


# ---------------------------------------------------------------- attention: MLA, sinks, soft-capping
# Per catalog model, from its config.json: MLA (kv_lora_rank: DeepSeek), per-head sink logits (gpt-oss's
# self_attn.sinks), soft-capped attention logits (Gemma-2's attn_logit_softcapping 50; Gemma-3 has none).
MLA_MODELS = {"deepseek-ai/DeepSeek-V3"}
SINK_MODELS = {"openai/gpt-oss-120b", "openai/gpt-oss-20b"}
SOFTCAP_MODELS = {"google/gemma-2-9b-it", "google/gemma-2-27b-it"}


def _rules_refusing(ctx: EndpointContext, cand: str, kv: str, runtime: str) -> set[str]:
    verdict = ctx.verdict(K.candidates[cand], K.kv_formats[kv], K.runtimes[runtime])
    return {r.rule for r in verdict.reasons if r.rule}


def test_the_attention_facts_come_from_the_configs():
    for model in CATALOG:
        arch = context(model).arch
        assert (arch.mla is not None) is (model in MLA_MODELS), model
        assert arch.attention_sinks is (model in SINK_MODELS), model
        assert (arch.attn_logit_softcap is not None) is (model in SOFTCAP_MODELS), model
    assert context("google/gemma-2-9b-it").arch.attn_logit_softcap == 50.0


@pytest.mark.parametrize("model", CATALOG)
def test_vllm_mla_backends_take_only_16_bit_or_fp8_latents(model):
    ctx = context(model, "b200")
    for kv in ("int8", "int4", "nvfp4"):
        refused = "vllm-mla-kv-bf16-or-fp8" in _rules_refusing(ctx, "bf16", kv, "vllm")
        assert refused is (model in MLA_MODELS), (model, kv)
    assert "vllm-mla-kv-bf16-or-fp8" not in _rules_refusing(ctx, "bf16", "fp8", "vllm")
    words = ctx.words(ctx.facts(K.candidates["bf16"], K.kv_formats["nvfp4"], K.runtimes["sglang"]))
    assert ("--attention-backend trtllm_mla" in words.flags) is (model in MLA_MODELS)


@pytest.mark.parametrize("model", CATALOG)
def test_tgi_refuses_attention_sinks(model):
    ctx = context(model)
    assert ("tgi-no-attention-sinks" in _rules_refusing(ctx, "bf16", "fp16", "tgi")) is (model in SINK_MODELS)
    for runtime, kv in (("vllm", "bf16"), ("sglang", "bf16"), ("tensorrt-llm", "bf16"), ("llama.cpp", "bf16")):
        assert not any("sink" in r for r in _rules_refusing(ctx, "bf16", kv, runtime))


@pytest.mark.parametrize("model", CATALOG)
def test_tgi_soft_caps_only_with_flash_attention_v2(model):
    turing, ampere = context(model, "t4"), context(model, "a100-80gb")
    rule = "tgi-softcap-needs-flash-attention-v2"
    assert (rule in _rules_refusing(turing, "fp16", "fp16", "tgi")) is (model in SOFTCAP_MODELS)
    assert rule not in _rules_refusing(ampere, "fp16", "fp16", "tgi")
    assert rule not in _rules_refusing(turing, "fp16", "fp16", "vllm")  # vLLM: TRITON_ATTN applies logits_soft_cap


def test_deepseek_on_vllm_with_an_int8_cache_says_why():
    reasons = refusals(context("deepseek-ai/DeepSeek-V3"), "native-fp8-block", "int8", "vllm")
    assert any("TRITON_ATTN" in r and "MLA" in r for r in reasons)


# ---------------------------------------------------------------- MoE routers and vision towers stay 16-bit
# The router of each MoE catalog model as its transformers module is named, and a name the pattern must not hit.
ROUTERS = {
    "mistralai/Mixtral-8x7B-Instruct-v0.1": ("model.layers.3.block_sparse_moe.gate", "block_sparse_moe.experts.0.w1"),
    "mistralai/Mixtral-8x22B-Instruct-v0.1": ("model.layers.3.block_sparse_moe.gate", "block_sparse_moe.experts.0.w3"),
    "Qwen/Qwen3-30B-A3B": ("model.layers.3.mlp.gate", "model.layers.3.mlp.experts.0.gate_proj"),
    "Qwen/Qwen3-235B-A22B": ("model.layers.3.mlp.gate", "model.layers.3.mlp.experts.0.gate_proj"),
    "deepseek-ai/DeepSeek-V3": ("model.layers.3.mlp.gate", "model.layers.3.mlp.shared_experts.gate_proj"),
    "openai/gpt-oss-120b": ("model.layers.3.mlp.router", "model.layers.3.self_attn.q_proj"),
    "openai/gpt-oss-20b": ("model.layers.3.mlp.router", "model.layers.3.self_attn.q_proj"),
}
VISION = ("model.vision_tower.vision_model.encoder.layers.0.mlp.fc1", "model.multi_modal_projector")


def _recipe_ignore(model: str, cand: str = "int4-gptq", runtime: str = "vllm") -> list[str]:
    import ast

    from advisor.plan.commands import quantization_for

    ctx = context(model)
    q = quantization_for(K, model, K.candidates[cand], K.kv_formats["bf16"], K.runtimes[runtime], ctx.shape,
                         ctx.arch)
    line = next(x for x in q.recipe.splitlines() if "ignore=" in x)
    return ast.literal_eval(line.split("ignore=", 1)[1].split(")")[0])


def _ignored(patterns: list[str], module: str) -> bool:
    import re

    return any(re.match(p[3:], module) if p.startswith("re:") else module.endswith(p) for p in patterns)


def test_the_router_table_covers_every_moe_catalog_model():
    assert set(ROUTERS) == {m for m in CATALOG if context(m).arch.is_moe}


@pytest.mark.parametrize("model", CATALOG)
@pytest.mark.parametrize("cand", ["int4-gptq", "int4-awq", "int8-w8a8", "fp8-w8a8", "nvfp4", "w4a8-int4-fp8"])
def test_llm_compressor_recipes_keep_routers_and_vision_towers_16_bit(model, cand):
    patterns = _recipe_ignore(model, cand)
    assert "lm_head" in patterns
    if model in ROUTERS:
        router, quantized = ROUTERS[model]
        assert _ignored(patterns, router) and not _ignored(patterns, quantized), (model, patterns)
    else:
        assert not _ignored(patterns, "model.layers.3.mlp.gate_proj")
    assert all(_ignored(patterns, v) for v in VISION) is (model == "google/gemma-3-27b-it")


# ---------------------------------------------------------------- vision tower
def test_gemma_3_counts_its_siglip_tower_at_the_published_total():
    """27,432,406,640 parameters with the vision tower (keras-hub gemma3 presets); the text model alone is
    27,009,346,304: SigLIP (27 layers of 1152, 896 px in 14 px patches) and the projector are 423,060,336."""
    from advisor.physics.architecture import tensor_inventory

    tensors = tensor_inventory(context("google/gemma-3-27b-it").arch)
    assert sum(t.params for t in tensors) == 27_432_406_640
    assert sum(t.params for t in tensors if t.group == "vision") == 423_060_336
    assert sum(t.active_params for t in tensors if t.group == "vision") == 0  # no text token goes through it


def test_an_uploaded_multimodal_config_counts_the_same_tower():
    """The Hub's config.json nests text_config and vision_config; the catalog flattens text_config."""
    from advisor.physics.architecture import architecture_from_config, tensor_inventory

    entry = dict(K.models["google/gemma-3-27b-it"].config)
    vision = entry.pop("vision_config")
    hub = {"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"], "text_config": entry,
           "vision_config": vision}
    arch = architecture_from_config(hub)
    assert arch.vision == context("google/gemma-3-27b-it").arch.vision
    assert sum(t.params for t in tensor_inventory(arch)) == 27_432_406_640


@pytest.mark.parametrize("cand", [c for c in K.candidates.values() if c.weights != "native"], ids=lambda c: c.id)
def test_the_vision_tower_stays_16_bit_in_every_scheme(cand):
    from advisor.physics import memory

    ctx = context("google/gemma-3-27b-it")
    layout = ctx.weights(cand).layout
    row = next(m for m in memory.weight_breakdown(ctx.arch, layout) if m.group == "vision")
    assert not row.quantized and row.format in ("bf16", "fp16", "fp32"), (cand.id, row)
    if cand.tier < 16:  # BF16 matrices (a GGUF scheme keeps its vectors in F32: a little over 16 bits)
        assert row.format == "bf16" and 16 <= row.bits_per_weight < 16.1, (cand.id, row)


def test_the_vision_tower_adds_memory_but_not_decode_time():
    from advisor.physics.architecture import tensor_inventory
    from advisor.physics.performance import ModelCost

    ctx = context("google/gemma-3-27b-it")
    w = ctx.weights(K.candidates["bf16"])
    text = ctx.arch.model_copy(update={"vision": None})
    assert w.checkpoint_bytes == 2 * 27_432_406_640  # every tensor is BF16
    assert w.cost.dense_bytes == ModelCost(text, w.layout).dense_bytes
    assert w.cost.matmul_params == sum(t.active_params for t in tensor_inventory(text)
                                       if t.is_matrix and t.group != "embedding")

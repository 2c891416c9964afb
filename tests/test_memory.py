"""Weight bytes against published checkpoints, exact KV bytes, overhead, fit and the solvers."""

import math

import pytest

from advisor.errors import AdvisorInputError
from advisor.intake.catalog import resolve_model
from advisor.knowledge import load_knowledge
from advisor.physics import memory
from advisor.physics.estimate import EstimateRequest, estimate
from advisor.physics.memory import GB, GIB

K = load_knowledge()


def est(**kw):
    return estimate(EstimateRequest(**kw), K)


# ---------------------------------------------------------------- weights vs published checkpoints
@pytest.mark.parametrize("row", K.calibration, ids=[r.id for r in K.calibration])
def test_weight_bytes_match_published_checkpoints(row):
    r = est(model=row.model, weights=row.scheme, group_size=row.group_size)
    error_pct = 100 * (r.weights_bytes - row.published_bytes) / row.published_bytes
    assert abs(error_pct) <= row.tolerance_pct, f"{row.id}: {error_pct:+.2f}%"


def test_bf16_weights_are_exactly_two_bytes_per_parameter():
    r = est(model="meta-llama/Llama-3.1-8B-Instruct", weights="bf16")
    assert r.weights_bytes == 2 * r.params_total == 16_060_522_496


@pytest.mark.parametrize(
    ("scheme", "group_size", "bits"),
    [
        ("int4-gptq", None, 4.125),
        ("int4-awq", None, 4 + 20 / 128),
        ("int4-gptq", 32, 4.5),
        ("int4-awq", 64, 4 + 20 / 64),
        ("nvfp4", None, 4.5),
        ("mxfp4", None, 4.25),
        ("mxfp6", None, 6.25),
    ],
)
def test_effective_bits_of_quantized_modules(scheme, group_size, bits):
    r = est(model="meta-llama/Llama-3.1-8B-Instruct", weights=scheme, group_size=group_size)
    mlp = next(m for m in r.modules if m.group == "mlp")
    assert mlp.bits_per_weight == pytest.approx(bits, abs=1e-6)
    assert next(m for m in r.modules if m.group == "lm_head").bits_per_weight == 16


def test_per_channel_override_and_bad_group_sizes():
    per_channel = est(model="meta-llama/Llama-3.1-8B-Instruct", weights="int4-gptq", group_size=-1)
    default = est(model="meta-llama/Llama-3.1-8B-Instruct", weights="int4-gptq")
    assert per_channel.weights_bytes < default.weights_bytes and per_channel.group_size is None
    with pytest.raises(AdvisorInputError, match="--group-size: 100 is not a group size.*valid: -1, 32, 64, 128"):
        est(model="meta-llama/Llama-3.1-8B-Instruct", weights="int4-gptq", group_size=100)
    with pytest.raises(AdvisorInputError, match="fixed layout"):
        est(model="meta-llama/Llama-3.1-8B-Instruct", weights="nvfp4", group_size=32)


def test_native_layout_of_gpt_oss_quantizes_only_experts():
    r = est(model="openai/gpt-oss-120b", weights="native")
    stored = {m.group: m.format for m in r.modules}
    assert stored["experts"] == "mxfp4" and stored["attention"] == "bf16" and stored["embedding"] == "bf16"


def test_peer_error_four_bit_without_kept_modules():
    # peers.md: calculators that put every parameter at 4 bits miss the BF16 embedding and head.
    ours = est(model="meta-llama/Llama-3.1-8B-Instruct", weights="int4-gptq").weights_bytes
    naive = 8_030_261_248 * 4.125 / 8
    assert ours / naive > 1.35  # the naive figure is about 37% too small
    assert abs(ours - 5.74e9) / 5.74e9 < 0.02


# ---------------------------------------------------------------- KV cache, exact
# shared/reference/models.md section 1d: 2 x layers x kv_heads x head_dim x 2 B (MLA: layers x 576 x 2 B).
KV_BYTES_PER_TOKEN_BF16 = {
    "meta-llama/Llama-3.1-8B-Instruct": 131_072,
    "mistralai/Mistral-7B-Instruct-v0.3": 131_072,
    "mistralai/Mixtral-8x7B-Instruct-v0.1": 131_072,
    "meta-llama/Llama-3.1-70B-Instruct": 327_680,
    "meta-llama/Llama-3.3-70B-Instruct": 327_680,
    "Qwen/Qwen2.5-72B-Instruct": 327_680,
    "meta-llama/Llama-3.1-405B-Instruct": 516_096,
    "meta-llama/Llama-3.2-1B-Instruct": 32_768,
    "meta-llama/Llama-3.2-3B-Instruct": 114_688,
    "mistralai/Mixtral-8x22B-Instruct-v0.1": 229_376,
    "Qwen/Qwen2.5-7B-Instruct": 57_344,
    "Qwen/Qwen2.5-14B-Instruct": 196_608,
    "Qwen/Qwen2.5-32B-Instruct": 262_144,
    "Qwen/Qwen3-8B": 147_456,
    "Qwen/Qwen3-32B": 262_144,
    "Qwen/Qwen3-30B-A3B": 98_304,
    "Qwen/Qwen3-235B-A22B": 192_512,
    "google/gemma-2-9b-it": 344_064,
    "google/gemma-2-27b-it": 376_832,
    "google/gemma-3-27b-it": 507_904,
    "microsoft/Phi-3-mini-4k-instruct": 393_216,
    "microsoft/phi-4": 204_800,
    "openai/gpt-oss-120b": 73_728,
    "openai/gpt-oss-20b": 49_152,
    "deepseek-ai/DeepSeek-V3": 70_272,
}


@pytest.mark.parametrize(("model_id", "expected"), KV_BYTES_PER_TOKEN_BF16.items())
def test_kv_bytes_per_token(model_id, expected):
    arch = resolve_model(K, model_id).architecture
    assert memory.kv_bytes_per_token_full(arch, K.kv_formats["bf16"]) == expected


def test_every_catalog_model_has_a_kv_reference_row():
    assert set(KV_BYTES_PER_TOKEN_BF16) == set(K.models)


def test_llama_8b_at_8k_is_one_gib_not_eight():
    # gpu_poor ignores GQA and reports 8 GiB here (peers.md section 2).
    r = est(model="meta-llama/Llama-3.1-8B-Instruct", weights="bf16", kv="bf16", context=8192)
    assert r.kv_cache_bytes == GIB


@pytest.mark.parametrize(
    ("kv", "bytes_per_head_vector"),
    [
        ("bf16", 256),
        ("fp16", 256),
        ("fp8", 128),
        ("int8", 128 + 4),
        ("int4", 64 + 4),
        ("nvfp4", 64 + 8),
        ("q8_0", 4 * 34),
        ("q4_0", 4 * 18),
    ],
)
def test_kv_formats_bytes_with_scales(kv, bytes_per_head_vector):
    r = est(model="meta-llama/Llama-3.1-8B-Instruct", weights="bf16", kv=kv, context=1000, concurrency=3)
    assert r.kv_cache_bytes == 3 * 1000 * 32 * 2 * 8 * bytes_per_head_vector


def test_sliding_layers_hold_at_most_their_window():
    arch = resolve_model(K, "google/gemma-3-27b-it").architecture
    bf16 = K.kv_formats["bf16"]
    per_layer = 2 * 16 * 128 * 2
    assert memory.kv_bytes_per_sequence(arch, bf16, 32768) == per_layer * (10 * 32768 + 52 * 1024)
    assert memory.kv_bytes_per_sequence(arch, bf16, 500) == per_layer * 62 * 500


def test_mla_caches_one_latent_replicated_under_tensor_parallelism():
    arch = resolve_model(K, "deepseek-ai/DeepSeek-V3").architecture
    fp8 = K.kv_formats["fp8"]
    assert memory.kv_bytes_per_sequence(arch, fp8, 1000, 8) == 61 * 576 * 1000


def test_tensor_parallel_splits_and_replicates_kv_heads():
    arch = resolve_model(K, "meta-llama/Llama-3.1-70B-Instruct").architecture  # 8 KV heads
    bf16 = K.kv_formats["bf16"]
    one = memory.kv_bytes_per_sequence(arch, bf16, 4096, 1)
    assert memory.kv_bytes_per_sequence(arch, bf16, 4096, 4) * 4 == one
    arch = resolve_model(K, "Qwen/Qwen2.5-7B-Instruct").architecture  # 4 KV heads, 28 query heads
    memory.check_tensor_parallel(arch, 4)
    with pytest.raises(AdvisorInputError, match="cannot split 28 attention heads"):
        memory.check_tensor_parallel(arch, 8)


# ---------------------------------------------------------------- fit and solvers
def test_fit_budget_uses_runtime_utilization_and_overhead():
    """vLLM's accounting: utilization x the total CUDA reports - weights - profile peak - CUDA graphs - non-torch."""
    r = est(model="meta-llama/Llama-3.1-8B-Instruct", weights="bf16", kv="bf16", context=8192, gpu="a100-80gb")
    vllm = K.runtimes["vllm"].memory
    visible = K.gpus["a100-80gb"].visible_bytes(K.decision["driver-reserved-fraction"].value)
    assert r.visible_bytes_per_gpu == visible < K.gpus["a100-80gb"].memory_bytes
    budget = (
        math.floor(vllm.utilization_default * visible)
        - r.weights_bytes
        - r.overhead.activations_bytes
        - r.overhead.cuda_graph_bytes
        - r.overhead.non_torch_bytes
    )
    assert r.kv_budget_bytes == budget
    assert r.max_concurrency == budget // GIB
    assert r.kv_pool_tokens == budget // (128 * 1024 * 16) * 16  # whole 16-token pages of 128 KiB tokens
    # an A100 keeps the small batch defaults (vLLM get_batch_defaults): 2,048 tokens, 256 sequences
    assert (r.overhead.max_num_batched_tokens, r.overhead.max_num_seqs) == (2048, 256)
    assert r.total_bytes == r.weights_bytes + r.kv_cache_bytes + r.overhead_bytes
    assert r.fits


@pytest.mark.parametrize(
    ("model", "weights", "kv", "gpu", "gpus"),
    [
        ("meta-llama/Llama-3.1-70B-Instruct", "int4-awq", "fp8", "a100-80gb", 1),
        ("google/gemma-3-27b-it", "fp8", "fp8", "l40s", 1),
        ("Qwen/Qwen3-235B-A22B", "fp8", "fp8", "h100-sxm", 4),
        ("openai/gpt-oss-20b", "native", "bf16", "rtx-4090", 1),
    ],
)
def test_max_concurrency_and_context_are_tight(model, weights, kv, gpu, gpus):
    base = dict(model=model, weights=weights, kv=kv, gpu=gpu, gpus=gpus)
    r = est(**base, context=16384, concurrency=4)
    if r.max_concurrency:
        assert est(**base, context=16384, concurrency=r.max_concurrency).fits
    assert not est(**base, context=16384, concurrency=r.max_concurrency + 1).fits
    if r.max_context < r.context_limit:
        assert est(**base, context=r.max_context, concurrency=4).fits is (r.max_context > 0)
        assert not est(**base, context=r.max_context + 1, concurrency=4).fits


def test_does_not_fit_when_weights_exceed_capacity():
    r = est(model="meta-llama/Llama-3.1-405B-Instruct", weights="bf16", gpu="h100-sxm")
    assert r.fits is False and r.max_concurrency == 0 and r.max_context == 0
    assert r.total_bytes > r.capacity_bytes


def test_default_kv_is_fp16_without_bf16():
    assert est(model="meta-llama/Llama-3.2-3B-Instruct", weights="fp16", gpu="t4").kv_format == "fp16"
    assert est(model="meta-llama/Llama-3.2-3B-Instruct", weights="bf16", gpu="l4").kv_format == "bf16"


def test_savings_against_bf16_and_the_rule_of_thumb():
    r = est(model="meta-llama/Llama-3.1-8B-Instruct", weights="int4-gptq", kv="fp8")
    assert r.savings.weights_rule_of_thumb == 4.0 and r.savings.kv_rule_of_thumb == 2.0
    assert r.savings.weights_factor == pytest.approx(16_060_522_496 / r.weights_bytes)
    assert 2.5 < r.savings.weights_factor < 3.0  # far from 4x: 13% of an 8B model stays BF16
    assert "stay in high precision" in r.savings.why and r.savings.kv_factor == 2.0


def test_outputs_are_gib_not_gb():
    r = est(model="meta-llama/Llama-3.1-8B-Instruct", weights="bf16")
    assert r.weights_bytes / GB == pytest.approx(16.06, abs=0.01)
    assert r.weights_bytes / GIB == pytest.approx(14.96, abs=0.01)  # the 7% GB/GiB gap peers trip on


def test_vllm_hybrid_allocator_pads_layer_groups():
    """vLLM groups sliding and full layers in groups of the smaller kind's count, padding the last group
    (vllm/v1/core/kv_cache_utils.py): Gemma 3 27B's 52 sliding + 10 full layers take 70 slots."""
    slots = {m: memory.kv_layer_slots(resolve_model(K, m).architecture, True)
             for m in ("google/gemma-3-27b-it", "google/gemma-2-27b-it", "meta-llama/Llama-3.1-8B-Instruct")}
    assert slots == {"google/gemma-3-27b-it": 70, "google/gemma-2-27b-it": 46, "meta-llama/Llama-3.1-8B-Instruct": 32}
    assert memory.kv_layer_slots(resolve_model(K, "google/gemma-3-27b-it").architecture, False) == 62


def test_vision_language_models_take_the_multimodal_activation_class():
    """Issue 10: the multimodal entry was never selected, so VLMs were charged a text family's figure."""
    gemma3 = resolve_model(K, "google/gemma-3-27b-it").architecture
    assert memory.activation_class_keys(gemma3)[1] == "multimodal"
    o = memory.runtime_overhead(K.runtimes["transformers"].memory, gemma3, 1, 0)
    assert o.activation_class == "multimodal" and o.activation_per_gpu == round(2.5 * GIB)


@pytest.mark.parametrize("model_id", list(load_knowledge().models))
def test_max_context_is_the_longest_context_kv_bytes_per_sequence_fits(model_id):
    """max_context works the per-sequence bytes out with its own copy of the arithmetic and solves for the answer
    (for speed): it must agree with kv_bytes_per_sequence at the answer and one token past it, sliding windows,
    recurrent state and pipeline stages included, from a budget of a few bytes to more than the context needs."""
    k = load_knowledge()
    arch = resolve_model(k, model_id).architecture
    limit = arch.max_position or 1 << 20
    for kv_id in ("bf16", "fp8"):
        kv = k.kv_formats[kv_id]
        for tp, pp, seqs, budget in ((1, 1, 1, 3 * GIB), (2, 1, 7, 20 * GIB), (1, 2, 3, 5 * GIB),
                                     (1, 1, 1, 12345), (1, 1, 256, 7 * GIB), (4, 1, 33, 61 * GIB),
                                     (8, 2, 1000, 90 * GIB), (1, 1, 2, 123 * GIB)):
            longest = memory.max_context(arch, kv, seqs, budget, tp, limit, pp)
            assert seqs * memory.kv_bytes_per_sequence(arch, kv, longest, tp, pp) <= budget or longest == 0
            if longest < limit:
                assert seqs * memory.kv_bytes_per_sequence(arch, kv, longest + 1, tp, pp) > budget

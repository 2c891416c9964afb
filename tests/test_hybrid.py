"""Hybrid models: layers that keep a linear-attention / Mamba state instead of a KV cache.

Configs are the published config.json fields the counts read (trimmed):

- Qwen/Qwen3-Next-80B-A3B-Instruct: https://huggingface.co/Qwen/Qwen3-Next-80B-A3B-Instruct/blob/main/config.json
  (trimmed copy beside its safetensors total in debaditc/kvfit src/kvfit/data/models.json
  @ bd4ccabf914323ee9831bc4dfae6bff777aa7966).
- nvidia/NVIDIA-Nemotron-Nano-9B-v2: https://huggingface.co/nvidia/NVIDIA-Nemotron-Nano-9B-v2/blob/main/config.json
  (same copy).
- nvidia/Nemotron-H-8B-Base-8K: the NemotronHConfig defaults, documented as the NemotronH-v0.1 (8B) model
  (https://docs.vllm.ai/en/v0.10.2/api/vllm/transformers_utils/configs/nemotron_h.html: hidden 4096,
  intermediate 21504, 52 layers, pattern "M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-").
- ai21labs/Jamba-v0.1: https://huggingface.co/ai21labs/Jamba-v0.1/blob/main/config.json.

Published parameter counts are the Hub's safetensors totals (https://huggingface.co/api/models/<repo>?expand[]=
safetensors) as recorded in debaditc/kvfit scripts/build_registry.py @ bd4ccabf914323ee9831bc4dfae6bff777aa7966,
the Open LLM Leaderboard request file for Jamba (https://huggingface.co/datasets/open-llm-leaderboard/requests,
ai21labs/Jamba-v0.1_eval_request_False_bfloat16_Original.json: "params": 51.57) and the model cards (Qwen3-Next:
80B total / 3B active; Jamba: 52B total / 12B active, arXiv 2403.19887; Nemotron-H-8B: 8B with 24 Mamba-2,
24 MLP and 4 attention layers, https://research.nvidia.com/labs/adlr/nemotronh/).
"""

import pytest

from advisor.errors import AdvisorInputError
from advisor.intake.catalog import resolve_model
from advisor.knowledge import load_knowledge
from advisor.physics import memory
from advisor.physics.architecture import architecture_from_config, tensor_inventory

K = load_knowledge()
BF16, FP8 = K.kv_formats["bf16"], K.kv_formats["fp8"]

QWEN3_NEXT = {
    "architectures": ["Qwen3NextForCausalLM"], "model_type": "qwen3_next",
    "hidden_size": 2048, "intermediate_size": 5120, "num_hidden_layers": 48, "num_attention_heads": 16,
    "num_key_value_heads": 2, "head_dim": 256, "vocab_size": 151936, "tie_word_embeddings": False,
    "max_position_embeddings": 262144, "full_attention_interval": 4, "decoder_sparse_step": 1, "mlp_only_layers": [],
    "num_experts": 512, "num_experts_per_tok": 10, "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512,
    "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128, "linear_num_key_heads": 16, "linear_num_value_heads": 32,
    "linear_value_head_dim": 128, "attention_bias": False, "torch_dtype": "bfloat16",
}
NEMOTRON_NANO_9B_V2 = {
    "architectures": ["NemotronHForCausalLM"], "model_type": "nemotron_h",
    "hidden_size": 4480, "intermediate_size": 15680, "num_hidden_layers": 56,
    "hybrid_override_pattern": "M-M-M-MM-M-M-M*-M-M-M*-M-M-M-M*-M-M-M-M*-M-MM-M-M-M-M-M-",
    "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128, "mamba_num_heads": 128,
    "mamba_head_dim": 80, "ssm_state_size": 128, "n_groups": 8, "conv_kernel": 4, "vocab_size": 131072,
    "tie_word_embeddings": False, "max_position_embeddings": 131072,
}
NEMOTRON_H_8B = {
    "architectures": ["NemotronHForCausalLM"], "model_type": "nemotron_h",
    "hidden_size": 4096, "intermediate_size": 21504, "num_hidden_layers": 52,
    "hybrid_override_pattern": "M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-",
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "mamba_num_heads": 128,
    "mamba_head_dim": 64, "ssm_state_size": 128, "n_groups": 8, "conv_kernel": 4, "use_conv_bias": True,
    "use_bias": False, "mlp_bias": False, "attention_bias": False, "vocab_size": 131072, "tie_word_embeddings": False,
    "max_position_embeddings": 8192,
}
JAMBA = {
    "architectures": ["JambaForCausalLM"], "model_type": "jamba",
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "vocab_size": 65536, "tie_word_embeddings": False, "max_position_embeddings": 262144,
    "attn_layer_period": 8, "attn_layer_offset": 4, "expert_layer_period": 2, "expert_layer_offset": 1,
    "num_experts": 16, "num_experts_per_tok": 2, "mamba_d_state": 16, "mamba_d_conv": 4, "mamba_expand": 2,
    "mamba_dt_rank": 256, "mamba_conv_bias": True, "mamba_proj_bias": False, "sliding_window": None,
    "torch_dtype": "bfloat16",
}
HYBRIDS = {"qwen3-next": QWEN3_NEXT, "nemotron-nano-9b-v2": NEMOTRON_NANO_9B_V2, "nemotron-h-8b": NEMOTRON_H_8B,
           "jamba": JAMBA}


def counts(config):
    inv = tensor_inventory(architecture_from_config(config))
    by_group = {}
    for t in inv:
        by_group[t.group] = by_group.get(t.group, 0) + t.params
    return sum(t.params for t in inv), sum(t.active_params for t in inv), by_group


# ---------------------------------------------------------------- parameter counts vs published
def test_qwen3_next_matches_the_safetensors_total_exactly():
    total, active, groups = counts(QWEN3_NEXT)
    # The checkpoint also ships the multi-token-prediction module (mtp.*), which serving without speculative
    # decoding does not load: one full-attention MoE decoder layer, fc (2h -> h) and three norms. Without it the
    # count is what llama.cpp reports for the GGUF and the safetensors total of Qwen3-Coder-Next (same shapes).
    h = 2048
    mtp_attention = 2 * 16 * 256 * h + 2 * (2 * 256 * h) + h * 16 * 256 + 2 * 256
    mtp_moe = 512 * 3 * 512 * h + 3 * 512 * h + h + 512 * h + 2 * h
    mtp = mtp_attention + mtp_moe + 2 * h * h + 3 * h
    assert total == 79_674_391_296
    assert total + mtp == 81_324_862_720  # Hub safetensors total of Qwen/Qwen3-Next-80B-A3B-Instruct
    # "80B total, 3B active": the active figure leaves out the embedding and the output head (3.25B -> "3B");
    # all-in it is 3.87B. The published figures are rounded, so only the rounding is checked.
    assert round(total / 1e9) == 80
    assert round((active - groups["embedding"] - groups["lm_head"]) / 1e9) == 3
    assert active == 3_874_929_408


def test_nemotron_nano_9b_v2_matches_the_safetensors_total_exactly():
    total, active, _ = counts(NEMOTRON_NANO_9B_V2)
    assert total == active == 8_888_227_328  # Hub safetensors total of nvidia/NVIDIA-Nemotron-Nano-9B-v2


def test_nemotron_h_8b_layers_and_size():
    arch = architecture_from_config(NEMOTRON_H_8B)
    assert (arch.attention_layers, arch.recurrent_layers, arch.layer_kinds.count("mlp")) == (4, 24, 24)
    total, _, groups = counts(NEMOTRON_H_8B)
    assert total == 8_100_852_736 and round(total / 1e9) == 8  # published "8B"; no exact total found
    assert "experts" not in groups and arch.norms_per_layer == 1


def test_jamba_matches_published_total_and_active():
    total, active, _ = counts(JAMBA)
    assert total == 51_570_323_328
    assert abs(total - 51.57e9) / 51.57e9 < 0.0001  # leaderboard "params": 51.57 (B, two decimals)
    assert round(total / 1e9) == 52 and round(active / 1e9) == 12  # AI21: 52B total, 12B active


def test_hybrid_tensor_shapes_follow_transformers():
    inv = {t.name: t for t in tensor_inventory(architecture_from_config(QWEN3_NEXT))}
    assert (inv["q_proj"].rows, inv["q_proj"].copies) == (2 * 16 * 256, 12)  # query + output gate
    assert (inv["linear_attn.in_proj_qkvz"].rows, inv["linear_attn.in_proj_qkvz"].copies) == (12288, 36)
    assert inv["linear_attn.conv1d"].cols is None and inv["linear_attn.conv1d"].rows == 8192 * 4
    assert inv["shared_expert_gate"].rows == 1 and inv["experts.gate_up_proj"].active_copies == 48 * 10
    nano = {t.name: t for t in tensor_inventory(architecture_from_config(NEMOTRON_NANO_9B_V2))}
    inner, conv = 128 * 80, 128 * 80 + 2 * 8 * 128
    assert nano["mixer.in_proj"].rows == inner + conv + 128 and nano["mixer.in_proj"].copies == 27
    assert nano["up_proj"].copies == nano["down_proj"].copies == 25 and "gate_up_proj" not in nano  # relu2 MLP
    jamba = {t.name: t for t in tensor_inventory(architecture_from_config(JAMBA))}
    assert (jamba["mamba.x_proj"].rows, jamba["mamba.x_proj"].cols) == (256 + 2 * 16, 8192)
    assert jamba["gate_up_proj"].copies == 16 and jamba["experts.gate_up_proj"].copies == 16 * 16


# ---------------------------------------------------------------- layers and KV cache
@pytest.mark.parametrize(("name", "attention", "layers"),
                         [("qwen3-next", 12, 48), ("nemotron-nano-9b-v2", 4, 56), ("nemotron-h-8b", 4, 52),
                          ("jamba", 4, 32)])
def test_only_attention_layers_hold_a_kv_cache(name, attention, layers):
    arch = architecture_from_config(HYBRIDS[name])
    assert arch.is_hybrid and arch.num_layers == layers == len(arch.mixers)
    assert arch.attention_layers == arch.mixers.count("attention") == attention
    assert arch.window_counts == ((None, attention),)
    assert memory.kv_bytes_per_token_full(arch, BF16) == attention * memory.kv_bytes_per_token_layer(arch, BF16)


def test_layer_positions():
    assert [i for i, k in enumerate(architecture_from_config(QWEN3_NEXT).mixers) if k == "attention"][:3] == [3, 7, 11]
    assert [i for i, k in enumerate(architecture_from_config(JAMBA).mixers) if k == "attention"] == [4, 12, 20, 28]
    assert architecture_from_config(JAMBA).moe_layers == tuple(range(1, 32, 2))
    explicit = {**QWEN3_NEXT, "layer_types": ["linear_attention"] * 47 + ["full_attention"]}
    assert architecture_from_config(explicit).attention_layers == 1


def all_attention(config):
    """The same model with every mixer an attention layer: the KV cache a plain transformer would keep."""
    if config["model_type"] == "qwen3_next":
        return {**config, "layer_types": ["full_attention"] * config["num_hidden_layers"]}
    if config["model_type"] == "jamba":
        return {**config, "attn_layer_period": 1, "attn_layer_offset": 0}
    return {**config, "hybrid_override_pattern": config["hybrid_override_pattern"].replace("M", "*")}


@pytest.mark.parametrize("name", HYBRIDS)
def test_kv_per_10k_sequence_is_a_fraction_of_an_all_attention_model(name):
    hybrid = architecture_from_config(HYBRIDS[name])
    dense = architecture_from_config(all_attention(HYBRIDS[name]))
    assert dense.recurrent_layers == 0 and dense.attention_layers > hybrid.attention_layers
    ours = memory.kv_bytes_per_sequence(hybrid, BF16, 10_000)
    theirs = memory.kv_bytes_per_sequence(dense, BF16, 10_000) - memory.state_bytes_per_sequence(dense)
    assert ours < theirs / 3, (ours, theirs)


def test_nemotron_h_8b_against_llama_8b():
    llama = resolve_model(K, "meta-llama/Llama-3.1-8B-Instruct").architecture
    nemotron = architecture_from_config(NEMOTRON_H_8B)
    ratio = memory.kv_bytes_per_sequence(nemotron, BF16, 10_000) / memory.kv_bytes_per_sequence(llama, BF16, 10_000)
    assert 0.15 < ratio < 0.25  # 4 of 52 layers with KV (+ a 97 MiB state) against 32 of 32


# ---------------------------------------------------------------- recurrent state
# Per layer: conv channels x (kernel - 1) x 2 B (BF16) + heads x head dim x state x dtype bytes
# (vLLM MambaStateShapeCalculator / MambaStateDtypeCalculator; Nemotron-H's SSM state in float32).
EXPECTED_STATE = {
    "qwen3-next": 36 * ((2 * 16 * 128 + 32 * 128) * 3 * 2 + 32 * 128 * 128 * 2),
    "nemotron-nano-9b-v2": 27 * ((128 * 80 + 2 * 8 * 128) * 3 * 2 + 128 * 80 * 128 * 4),
    "nemotron-h-8b": 24 * ((128 * 64 + 2 * 8 * 128) * 3 * 2 + 128 * 64 * 128 * 4),
    "jamba": 28 * (8192 * 3 * 2 + 8192 * 16 * 2),
}


@pytest.mark.parametrize("name", HYBRIDS)
def test_state_bytes_are_constant_in_context(name):
    arch = architecture_from_config(HYBRIDS[name])
    state = memory.state_bytes_per_sequence(arch)
    assert state == EXPECTED_STATE[name]
    per_token = memory.kv_bytes_per_token_full(arch, BF16)
    for context in (1, 1_000, 10_000, 100_000):
        assert memory.kv_bytes_per_sequence(arch, BF16, context) == state + context * per_token
    assert memory.kv_bytes_per_sequence(arch, BF16, 0) == state


def test_state_figures():
    assert EXPECTED_STATE["qwen3-next"] == 39_518_208  # 37.7 MiB per sequence
    assert EXPECTED_STATE["nemotron-h-8b"] == 102_137_856
    assert EXPECTED_STATE["jamba"] == 8_716_288


def test_kv_format_does_not_touch_the_state():
    arch = architecture_from_config(QWEN3_NEXT)
    state = memory.state_bytes_per_sequence(arch)
    fp8 = memory.kv_bytes_per_sequence(arch, FP8, 10_000) - state
    bf16 = memory.kv_bytes_per_sequence(arch, BF16, 10_000) - state
    assert fp8 < bf16 and fp8 > 0


def test_ssm_state_dtype_follows_the_config():
    base = architecture_from_config(NEMOTRON_H_8B)
    half = architecture_from_config({**NEMOTRON_H_8B, "mamba_ssm_cache_dtype": "bfloat16"})
    assert base.recurrent.ssm_state_bytes == 4 and half.recurrent.ssm_state_bytes == 2
    ssm_fp32 = 24 * 128 * 64 * 128 * 4
    assert memory.state_bytes_per_sequence(base) - memory.state_bytes_per_sequence(half) == ssm_fp32 // 2
    with pytest.raises(AdvisorInputError, match="mamba_ssm_cache_dtype"):
        architecture_from_config({**NEMOTRON_H_8B, "mamba_ssm_cache_dtype": "int3"})


@pytest.mark.parametrize(("name", "tp"), [("qwen3-next", 2), ("qwen3-next", 4), ("nemotron-nano-9b-v2", 8),
                                          ("nemotron-h-8b", 2), ("jamba", 4)])
def test_state_splits_over_tensor_parallel(name, tp):
    arch = architecture_from_config(HYBRIDS[name])
    memory.check_tensor_parallel(arch, tp)
    assert memory.state_bytes_per_sequence(arch, tp) * tp == memory.state_bytes_per_sequence(arch)
    kv = memory.kv_bytes_per_sequence(arch, BF16, 10_000, tp) - memory.state_bytes_per_sequence(arch, tp)
    kv_one = memory.kv_bytes_per_sequence(arch, BF16, 10_000) - memory.state_bytes_per_sequence(arch)
    # KV heads split too, or are replicated when there are fewer than GPUs (Qwen3-Next's 2 over 4 GPUs)
    assert kv * min(tp, arch.num_kv_heads) == kv_one


def test_mamba2_single_group_is_replicated_over_tensor_parallel():
    one_group = architecture_from_config({**NEMOTRON_H_8B, "n_groups": 1})
    memory.check_tensor_parallel(one_group, 4)
    conv_per_gpu = (128 * 64 + 2 * 4 * 128) // 4 * 3 * 2  # the one group's B and C on every GPU
    ssm_per_gpu = 128 // 4 * 64 * 128 * 4
    assert memory.state_bytes_per_sequence(one_group, 4) == 24 * (conv_per_gpu + ssm_per_gpu)


def test_tensor_parallel_must_split_the_recurrent_heads():
    with pytest.raises(AdvisorInputError, match="Mamba heads in 8 groups"):
        memory.check_tensor_parallel(architecture_from_config(NEMOTRON_H_8B), 16)
    with pytest.raises(AdvisorInputError, match="linear-attention heads"):
        memory.check_tensor_parallel(architecture_from_config({**QWEN3_NEXT, "linear_num_key_heads": 2,
                                                              "linear_num_value_heads": 4}), 4)


def test_capacity_counts_the_state():
    arch = architecture_from_config(JAMBA)
    per_seq = memory.kv_bytes_per_sequence(arch, BF16, 10_000)
    assert memory.max_concurrency(arch, BF16, 10_000, 3 * per_seq, 1) == 3
    assert memory.max_concurrency(arch, BF16, 10_000, 3 * per_seq - 1, 1) == 2
    assert memory.max_context(arch, BF16, 1, memory.state_bytes_per_sequence(arch) - 1, 1, 262_144) == 0


# ---------------------------------------------------------------- refusals and plain models
@pytest.mark.parametrize("model_type", ["granitemoehybrid", "falcon_h1", "zamba2", "qwen3_5_text", "mamba2"])
def test_unknown_hybrid_like_model_types_are_refused(model_type):
    with pytest.raises(AdvisorInputError, match="not a supported architecture"):
        architecture_from_config({**QWEN3_NEXT, "model_type": model_type})


def test_unsupported_or_incomplete_hybrid_configs_are_refused():
    with pytest.raises(AdvisorInputError, match="MoE layers"):
        architecture_from_config({**NEMOTRON_H_8B, "hybrid_override_pattern": "MEM*" * 13})
    with pytest.raises(AdvisorInputError, match="52"):
        architecture_from_config({**NEMOTRON_H_8B, "hybrid_override_pattern": "M-M*"})
    with pytest.raises(AdvisorInputError, match="linear_num_value_heads"):
        architecture_from_config({k: v for k, v in QWEN3_NEXT.items() if k != "linear_num_value_heads"})
    with pytest.raises(AdvisorInputError, match="mamba_num_heads"):
        architecture_from_config({k: v for k, v in NEMOTRON_H_8B.items() if k != "mamba_num_heads"})
    with pytest.raises(AdvisorInputError, match="attn_layer_offset"):
        architecture_from_config({**JAMBA, "attn_layer_offset": 8})


def test_architecture_classes_name_the_hybrids():
    for config in HYBRIDS.values():
        anonymous = {k: v for k, v in config.items() if k != "model_type"}
        assert architecture_from_config(anonymous).model_type == config["model_type"]


def test_plain_models_have_no_state():
    llama = resolve_model(K, "meta-llama/Llama-3.1-8B-Instruct").architecture
    assert not llama.is_hybrid and llama.layer_kinds == () and llama.attention_layers == llama.num_layers
    assert memory.state_bytes_per_sequence(llama, 2) == 0

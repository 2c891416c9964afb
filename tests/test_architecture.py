"""Parameter counts and config.json parsing."""

import json

import pytest

from advisor.errors import AdvisorInputError
from advisor.intake.catalog import resolve_model
from advisor.knowledge import load_knowledge
from advisor.physics.architecture import architecture_from_config, parse_config_text, read_config_file, tensor_inventory

K = load_knowledge()


def counts(model_id: str) -> tuple[int, int, int]:
    arch = resolve_model(K, model_id).architecture
    inv = tensor_inventory(arch)
    total = sum(t.params for t in inv)
    active = sum(t.active_params for t in inv)
    embedding = sum(t.params for t in inv if t.group == "embedding")
    return total, active, embedding


PUBLISHED = [m for m in K.models.values() if m.published and m.published.params_total]


@pytest.mark.parametrize("model", PUBLISHED, ids=[m.id for m in PUBLISHED])
def test_parameter_counts_match_published(model):
    total, active, embedding = counts(model.id)
    pub = model.published
    if pub.exact:
        assert total == pub.params_total
    else:  # a rounded figure such as "671B": agree to within 2%
        assert abs(total - pub.params_total) / pub.params_total < 0.02
    if pub.params_active:
        ours = active - embedding if pub.active_excludes_embedding else active
        assert abs(ours - pub.params_active) / pub.params_active < 0.02, (ours, pub.params_active)


# Independent arithmetic in shared/reference/models.md section 1c ([D] rows), to the parameter.
DERIVED = {
    "meta-llama/Llama-3.1-8B-Instruct": 8_030_261_248,
    "meta-llama/Llama-3.1-70B-Instruct": 70_553_706_496,
    "meta-llama/Llama-3.1-405B-Instruct": 405_853_388_800,
    "meta-llama/Llama-3.2-1B-Instruct": 1_235_814_400,
    "meta-llama/Llama-3.2-3B-Instruct": 3_212_749_824,
    "mistralai/Mistral-7B-Instruct-v0.3": 7_248_023_552,
    "Qwen/Qwen2.5-7B-Instruct": 7_615_616_512,
}


@pytest.mark.parametrize(("model_id", "expected"), DERIVED.items())
def test_parameter_counts_match_reference_arithmetic(model_id, expected):
    assert counts(model_id)[0] == expected


def test_moe_active_counts():
    total, active, embedding = counts("openai/gpt-oss-120b")
    assert round(total / 1e9, 2) == 116.83
    assert round((active - embedding) / 1e9, 2) == 5.13  # OpenAI's "5.1B active" excludes the embedding
    total, active, _ = counts("deepseek-ai/DeepSeek-V3")
    assert round(total / 1e9) == 671 and round(active / 1e9, 1) == 37.6


def test_tied_embeddings_counted_once():
    arch = resolve_model(K, "meta-llama/Llama-3.2-1B-Instruct").architecture
    groups = {t.group for t in tensor_inventory(arch)}
    assert arch.tied_embeddings and "lm_head" not in groups


# ---------------------------------------------------------------- attention patterns
@pytest.mark.parametrize(
    ("model_id", "sliding", "window"),
    [
        ("google/gemma-3-27b-it", 52, 1024),
        ("google/gemma-2-9b-it", 21, 4096),
        ("openai/gpt-oss-120b", 18, 128),
        ("microsoft/Phi-3-mini-4k-instruct", 32, 2047),
        ("Qwen/Qwen2.5-7B-Instruct", 0, None),  # sliding_window set but use_sliding_window false
        ("meta-llama/Llama-3.1-8B-Instruct", 0, None),
    ],
)
def test_sliding_window_layers(model_id, sliding, window):
    arch = resolve_model(K, model_id).architecture
    assert arch.sliding_layers == sliding
    assert {w for w in arch.layer_windows if w} == ({window} if window else set())


def test_gemma2_first_layer_slides():
    arch = resolve_model(K, "google/gemma-2-9b-it").architecture
    assert arch.layer_windows[0] == 4096 and arch.layer_windows[1] is None


# ---------------------------------------------------------------- config.json input
LLAMA_LIKE = {
    "model_type": "llama",
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1000,
    "tie_word_embeddings": False,
}


def test_unknown_fields_are_ignored():
    arch = architecture_from_config({**LLAMA_LIKE, "rope_scaling": {"type": "llama3"}, "something_new": [1, 2]})
    assert arch.num_kv_heads == 2 and arch.head_dim == 16


def test_missing_required_fields_are_named():
    config = {k: v for k, v in LLAMA_LIKE.items() if k not in ("hidden_size", "vocab_size")}
    with pytest.raises(AdvisorInputError) as info:
        architecture_from_config(config, where="my-config.json")
    assert "my-config.json" in str(info.value)
    assert "'hidden_size'" in str(info.value) and "'vocab_size'" in str(info.value)


def test_missing_moe_fields_are_named():
    config = {**LLAMA_LIKE, "model_type": "qwen3_moe", "num_experts": 8}
    with pytest.raises(AdvisorInputError, match="'num_experts_per_tok'.*'moe_intermediate_size'"):
        architecture_from_config(config)


def test_wrong_types_are_reported():
    with pytest.raises(AdvisorInputError, match="'num_hidden_layers' must be a non-negative integer"):
        architecture_from_config({**LLAMA_LIKE, "num_hidden_layers": "thirty-two"})


def test_unknown_model_type_is_refused_with_the_supported_ones():
    with pytest.raises(AdvisorInputError, match="olmo2.*not a supported.*valid: llama"):
        architecture_from_config({**LLAMA_LIKE, "model_type": "olmo2"})


def test_missing_model_type_lists_supported_ones():
    config = {k: v for k, v in LLAMA_LIKE.items() if k != "model_type"}
    with pytest.raises(AdvisorInputError, match="model_type.*valid: llama"):
        architecture_from_config(config)


def test_nested_text_config_is_read():
    arch = architecture_from_config(
        {"model_type": "gemma3", "text_config": {**LLAMA_LIKE, "model_type": "gemma3_text"}}
    )
    assert arch.family == "gemma3" and arch.norms_per_layer == 4
    assert any("vision" in n for n in arch.notes)


def test_catalog_config_roundtrips_through_a_file(tmp_path):
    entry = K.models["Qwen/Qwen3-30B-A3B"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(entry.config))
    from_file = architecture_from_config(read_config_file(path))
    assert from_file == resolve_model(K, entry.id).architecture


def test_bad_json_and_oversized_files_are_refused(tmp_path):
    with pytest.raises(AdvisorInputError, match="not valid JSON"):
        parse_config_text(b"{not json")
    with pytest.raises(AdvisorInputError, match="expected a JSON object"):
        parse_config_text(b"[1, 2]")
    big = tmp_path / "config.json"
    big.write_bytes(b" " * 1_000_001)
    with pytest.raises(AdvisorInputError, match="must be under"):
        read_config_file(big)


# Published parameter counts (model cards / HF safetensors metadata) for configs with legacy field names.
GPT2 = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024, "vocab_size": 50257,
        "architectures": ["GPT2LMHeadModel"]}
OPT_125M = {"model_type": "opt", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
            "ffn_dim": 3072, "vocab_size": 50272, "max_position_embeddings": 2048, "word_embed_proj_dim": 768,
            "do_layer_norm_before": True, "enable_bias": True, "architectures": ["OPTForCausalLM"]}
PYTHIA_160M = {"model_type": "gpt_neox", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
               "intermediate_size": 3072, "vocab_size": 50304, "max_position_embeddings": 2048, "rotary_pct": 0.25,
               "tie_word_embeddings": False, "architectures": ["GPTNeoXForCausalLM"]}
FALCON_7B = {"model_type": "falcon", "hidden_size": 4544, "num_hidden_layers": 32, "num_attention_heads": 71,
             "multi_query": True, "new_decoder_architecture": False, "parallel_attn": True, "bias": False,
             "vocab_size": 65024, "alibi": False, "architectures": ["FalconForCausalLM"]}
FALCON_40B = {"model_type": "falcon", "hidden_size": 8192, "num_hidden_layers": 60, "num_attention_heads": 128,
              "num_kv_heads": 8, "new_decoder_architecture": True, "parallel_attn": True, "bias": False,
              "vocab_size": 65024, "alibi": False, "architectures": ["FalconForCausalLM"]}
GPTJ_6B = {"model_type": "gptj", "n_embd": 4096, "n_layer": 28, "n_head": 16, "n_positions": 2048, "rotary_dim": 64,
           "vocab_size": 50400, "tie_word_embeddings": False, "architectures": ["GPTJForCausalLM"]}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (GPT2, 124_439_808),  # openai-community/gpt2 safetensors metadata
        (OPT_125M, 125_239_296),  # facebook/opt-125m
        (PYTHIA_160M, 162_322_944),  # EleutherAI/pythia-160m (pythia README table: 162,322,944)
        (FALCON_7B, 6_921_720_704),  # tiiuae/falcon-7b safetensors metadata
        (FALCON_40B, 41_303_293_952),  # tiiuae/falcon-40b safetensors metadata
        # EleutherAI/gpt-j-6b: the transformers modules hold 6,050,882,784; the card's 6,053,381,344 counts the
        # original mesh-transformer-jax layout (0.04 % apart).
        (GPTJ_6B, 6_050_882_784),
    ],
    ids=["gpt2", "opt-125m", "pythia-160m", "falcon-7b", "falcon-40b", "gpt-j-6b"],
)
def test_legacy_field_names_count_published_parameters(config, expected):
    assert sum(t.params for t in tensor_inventory(architecture_from_config(config))) == expected


def test_config_without_model_type_is_read_from_its_architectures():
    config = {k: v for k, v in GPT2.items() if k != "model_type"}
    assert architecture_from_config(config).family == "gpt2"


def test_falcon_kv_heads_follow_multi_query_and_new_decoder_architecture():
    assert architecture_from_config(FALCON_7B).num_kv_heads == 1
    assert architecture_from_config(FALCON_40B).num_kv_heads == 8


DEEPSEEK_V2 = {
    "model_type": "deepseek_v2", "architectures": ["DeepseekV2ForCausalLM"], "hidden_size": 5120,
    "intermediate_size": 12288, "moe_intermediate_size": 1536, "num_hidden_layers": 60, "num_attention_heads": 128,
    "num_key_value_heads": 128, "n_routed_experts": 160, "n_shared_experts": 2, "num_experts_per_tok": 6,
    "first_k_dense_replace": 1, "moe_layer_freq": 1, "kv_lora_rank": 512, "q_lora_rank": 1536,
    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "vocab_size": 102400,
    "max_position_embeddings": 163840, "tie_word_embeddings": False,
}


def test_deepseek_v2_weights_and_mla_cache_match_llm_d_capacity_planner():
    """llm-d's capacity-planner tests: DeepSeek-V2 is 439.1 GiB of BF16 weights and 0.64 GiB of KV per 10k tokens."""
    from advisor.physics.memory import kv_bytes_per_sequence

    arch = architecture_from_config(DEEPSEEK_V2)
    params = sum(t.params for t in tensor_inventory(arch))
    assert round(params * 2 / 2**30, 1) == 439.1
    assert round(kv_bytes_per_sequence(arch, K.kv_formats["bf16"], 10_000) / 2**30, 2) == 0.64

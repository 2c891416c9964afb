"""Quantized checkpoints: each format's metadata is read into a native layout that is served as published."""

import pytest

from advisor.decide.engine import recommend
from advisor.errors import AdvisorInputError
from advisor.intake.catalog import model_from_config
from advisor.intake.quantization import ignored_groups, native_layout
from advisor.intake.request import Endpoint, Request
from advisor.knowledge import load_knowledge

K = load_knowledge()

MISTRAL_SMALL_24B = {
    "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 5120, "intermediate_size": 32768,
    "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
    "vocab_size": 131072, "max_position_embeddings": 32768, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}
AWQ = {"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm", "zero_point": True}
GPTQ = {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": True, "sym": True}
CT_W4A16 = {"quant_method": "compressed-tensors", "format": "pack-quantized", "ignore": ["lm_head"],
            "config_groups": {"group_0": {"targets": ["Linear"], "input_activations": None,
                                          "weights": {"num_bits": 4, "type": "int", "strategy": "group",
                                                      "group_size": 128, "symmetric": True}}}}
CT_FP8 = {"quant_method": "compressed-tensors", "format": "float-quantized", "ignore": ["lm_head"],
          "kv_cache_scheme": {"num_bits": 8, "type": "float", "strategy": "tensor"},
          "config_groups": {"group_0": {"targets": ["Linear"],
                                        "input_activations": {"num_bits": 8, "type": "float", "dynamic": True,
                                                              "strategy": "token"},
                                        "weights": {"num_bits": 8, "type": "float", "strategy": "channel"}}}}
CT_W8A8 = {"quant_method": "compressed-tensors", "format": "int-quantized", "ignore": ["lm_head"],
           "config_groups": {"group_0": {"targets": ["Linear"],
                                         "input_activations": {"num_bits": 8, "type": "int", "dynamic": True},
                                         "weights": {"num_bits": 8, "type": "int", "strategy": "channel"}}}}
CT_NVFP4 = {"quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized", "ignore": ["lm_head"],
            "config_groups": {"group_0": {"targets": ["Linear"],
                                          "input_activations": {"num_bits": 4, "type": "float",
                                                                "strategy": "tensor_group", "group_size": 16},
                                          "weights": {"num_bits": 4, "type": "float", "strategy": "tensor_group",
                                                      "group_size": 16}}}}
FP8_BLOCK = {"quant_method": "fp8", "activation_scheme": "dynamic", "fmt": "e4m3", "weight_block_size": [128, 128]}
FP8_PLAIN = {"quant_method": "fp8", "activation_scheme": "static"}
BNB_NF4 = {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
           "bnb_4bit_use_double_quant": True, "llm_int8_skip_modules": ["lm_head"]}
MODELOPT_NVFP4 = {"producer": {"name": "modelopt", "version": "0.29.0"},
                  "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8", "group_size": 16,
                                   "exclude_modules": ["lm_head"]}}


@pytest.mark.parametrize(
    ("qc", "scheme", "candidates"),
    [
        (AWQ, "int4-awq", ("native-int4-awq",)),
        (GPTQ, "int4-gptq-packed", ("native-int4-gptq",)),
        (CT_W4A16, "int4-gptq", ("native-int4-gptq",)),
        (CT_FP8, "fp8", ("native-fp8-w8a8", "native-fp8-w8a16")),
        (CT_W8A8, "int8", ("native-int8-w8a8",)),
        (CT_NVFP4, "nvfp4", ("native-nvfp4", "native-nvfp4-w4a16")),
        (FP8_BLOCK, "fp8-block", ("native-fp8-block",)),
        (FP8_PLAIN, "fp8", ("native-fp8-w8a8", "native-fp8-w8a16")),
        (BNB_NF4, "bnb-nf4", ("native-bnb-nf4",)),
    ],
    ids=["awq", "gptq", "ct-w4a16", "ct-fp8", "ct-w8a8", "ct-nvfp4", "fp8-block", "fp8", "bnb-nf4"],
)
def test_each_format_is_detected(qc, scheme, candidates):
    layout = native_layout({**MISTRAL_SMALL_24B, "quantization_config": qc})
    assert layout.scheme == scheme and layout.candidates == candidates and layout.quantized
    assert all(c in K.candidates for c in layout.candidates)


def test_gptq_details_and_kv_scheme_are_kept():
    layout = native_layout({**MISTRAL_SMALL_24B, "quantization_config": GPTQ})
    assert {"4-bit", "group 128", "act-order", "symmetric"} <= set(layout.details)
    assert native_layout({**MISTRAL_SMALL_24B, "quantization_config": CT_FP8}).kv_cache == "fp8"


def test_modelopt_side_file_and_legacy_quantize_config():
    layout = native_layout(MISTRAL_SMALL_24B, {"hf_quant_config.json": MODELOPT_NVFP4})
    assert layout.scheme == "nvfp4" and layout.method == "modelopt" and layout.kv_cache == "fp8"
    legacy = native_layout(MISTRAL_SMALL_24B, {"quantize_config.json": {"bits": 4, "group_size": 64,
                                                                         "desc_act": False}})
    assert legacy.scheme == "int4-gptq-packed" and legacy.group_size == 64


def test_ignore_list_keeping_a_whole_group_overrides_it():
    assert ignored_groups(("lm_head", "re:.*self_attn.*")) == ("attention",)
    assert ignored_groups(tuple(f"model.layers.{i}.mlp.down_proj" for i in range(2)), num_layers=40) == ()
    # one projection in every layer is not the whole group
    assert ignored_groups(tuple(f"model.layers.{i}.mlp.down_proj" for i in range(40)), num_layers=40) == ()
    assert ignored_groups(tuple(f"model.layers.{i}.mlp" for i in range(40)), num_layers=40) == ("mlp",)
    # the router's gate is not the MLP's gate_proj
    assert ignored_groups(("re:.*mlp.gate$",)) == ()
    assert ignored_groups(tuple(f"model.layers.{i}.mlp.gate_proj" for i in range(40)), num_layers=40) == ()
    qc = {**CT_FP8, "ignore": ["lm_head", "re:.*self_attn.*"]}
    layout = native_layout({**MISTRAL_SMALL_24B, "quantization_config": qc})
    assert layout.overrides == {"attention": "bf16"}


@pytest.mark.parametrize(
    ("qc", "field"),
    [
        ({"quant_method": "hqq"}, "quantization_config.quant_method"),
        ({"quant_method": "gptq", "bits": 3}, "quantization_config.bits"),
        ({"quant_method": "awq", "bits": 4, "group_size": 256}, "quantization_config.group_size"),
        ({"quant_method": "compressed-tensors", "config_groups": {}}, "quantization_config.config_groups"),
        ("awq", "quantization_config"),
    ],
)
def test_unservable_quantization_is_refused_naming_the_field(qc, field):
    with pytest.raises(AdvisorInputError) as err:
        model = model_from_config({**MISTRAL_SMALL_24B, "quantization_config": qc}, name="config.json")
        recommend(Request(model="x", gpu="l40s", endpoints=[Endpoint(workload="interactive-chat")]), K, model=model)
    assert err.value.field == field


def _plan(qc, gpu="l40s", **kw):
    model = model_from_config({**MISTRAL_SMALL_24B, "quantization_config": qc}, name="config.json", **kw)
    request = Request(model="config.json", gpu=gpu, endpoints=[Endpoint(workload="interactive-chat")])
    return model, recommend(request, K, model=model)


@pytest.mark.parametrize("qc", [AWQ, GPTQ, CT_W4A16, CT_FP8], ids=["awq", "gptq", "ct-w4a16", "ct-fp8"])
def test_a_quantized_upload_is_served_as_published(qc):
    model, result = _plan(qc)
    pick = result.endpoints[0].pick
    assert pick is not None and pick.candidate in model.native.candidates
    rejected = {c for r in result.endpoints[0].rejected for c in r.candidate.split(", ")}
    assert {"fp8-w8a8", "int4-awq", "int4-gptq", "bf16"} <= rejected


def test_a_quantized_checkpoint_naming_its_base_model_compares_other_precisions():
    _, result = _plan(AWQ, gpu="h100-sxm", base_model="mistralai/Mistral-Small-24B-Instruct-2501")
    served = {d.candidate for d in result.endpoints[0].ranked}
    assert "native-int4-awq" in served and "bf16" in served


def test_the_older_compression_config_key_is_read_not_counted_as_16_bit():
    layout = native_layout({**MISTRAL_SMALL_24B, "compression_config": CT_FP8})
    assert layout.scheme == "fp8" and layout.quantized

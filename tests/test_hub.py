"""Any Hugging Face id: the real huggingface_hub client against a hub look-alike on 127.0.0.1 (tests/hubserver.py).

Each fixture repo holds a tiny decoder's config.json, its quantization metadata and safetensors files laid out the
way each tool writes them (tensor names, dtypes and shapes); the engine reads only the headers.
"""

from __future__ import annotations

import json
import math

import pytest
from hubserver import Hub, safetensors

from advisor.decide.engine import recommend
from advisor.errors import AdvisorInputError
from advisor.intake import hub as hubmod
from advisor.intake.catalog import resolve_model
from advisor.intake.request import Endpoint, Request
from advisor.knowledge import load_knowledge
from advisor.plan import document as plan

K = load_knowledge()

H, FFN, L, HEADS, KV, D, V = 512, 1024, 2, 8, 2, 64, 2048
TINY = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": H, "intermediate_size": FFN,
        "num_hidden_layers": L, "num_attention_heads": HEADS, "num_key_value_heads": KV, "head_dim": D,
        "vocab_size": V, "max_position_embeddings": 8192, "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
LINEARS = {"self_attn.q_proj": (HEADS * D, H), "self_attn.k_proj": (KV * D, H), "self_attn.v_proj": (KV * D, H),
           "self_attn.o_proj": (H, HEADS * D), "mlp.gate_proj": (FFN, H), "mlp.up_proj": (FFN, H),
           "mlp.down_proj": (H, FFN)}


def _common() -> dict[str, tuple[str, list[int]]]:
    t = {"model.embed_tokens.weight": ("BF16", [V, H]), "lm_head.weight": ("BF16", [V, H]),
         "model.norm.weight": ("BF16", [H])}
    for i in range(L):
        t[f"model.layers.{i}.input_layernorm.weight"] = ("BF16", [H])
        t[f"model.layers.{i}.post_attention_layernorm.weight"] = ("BF16", [H])
    return t


def _linears(layout) -> dict[str, tuple[str, list[int]]]:
    t = _common()
    for i in range(L):
        for name, (out, inp) in LINEARS.items():
            for suffix, spec in layout(name, out, inp).items():
                t[f"model.layers.{i}.{name}.{suffix}"] = spec
    return t


G = 128
LAYOUTS = {
    "bf16": lambda n, o, i: {"weight": ("BF16", [o, i])},
    # AutoAWQ GEMM: packed along the output dim, FP16 scales, packed zero points
    "awq": lambda n, o, i: {"qweight": ("I32", [i, o // 8]), "qzeros": ("I32", [i // G, o // 8]),
                            "scales": ("F16", [i // G, o])},
    # AutoGPTQ / GPTQModel: packed along the input dim, act-order g_idx
    "gptq": lambda n, o, i: {"qweight": ("I32", [i // 8, o]), "qzeros": ("I32", [i // G, o // 8]),
                             "scales": ("F16", [i // G, o]), "g_idx": ("I32", [i])},
    # compressed-tensors pack-quantized W4A16 (attention kept BF16 by the ignore list below)
    "ct-w4a16": lambda n, o, i: ({"weight": ("BF16", [o, i])} if n.startswith("self_attn") else
                                 {"weight_packed": ("I32", [o, i // 8]), "weight_scale": ("BF16", [o, i // G]),
                                  "weight_shape": ("I64", [2])}),
    # FP8 with 128x128 block scales (DeepSeek-V3 / Qwen FP8 layout)
    "fp8-block": lambda n, o, i: {"weight": ("F8_E4M3", [o, i]),
                                  "weight_scale_inv": ("F32", [math.ceil(o / 128), math.ceil(i / 128)])},
    # compressed-tensors FP8 dynamic: per-channel scales
    "ct-fp8": lambda n, o, i: {"weight": ("F8_E4M3", [o, i]), "weight_scale": ("BF16", [o, 1])},
    # bitsandbytes NF4 with double quantization: packed weights, an 8-bit absmax per 64, nested FP32 constants
    "bnb-nf4": lambda n, o, i: {"weight": ("U8", [o * i // 2, 1]), "weight.absmax": ("U8", [o * i // 64]),
                                "weight.nested_absmax": ("F32", [o * i // 64 // 256]),
                                "weight.quant_map": ("F32", [16]), "weight.nested_quant_map": ("F32", [256])},
    # ModelOpt NVFP4: two FP4 values per byte, an FP8 scale per 16, FP32 global and input scales
    "nvfp4": lambda n, o, i: {"weight": ("U8", [o, i // 2]), "weight_scale": ("F8_E4M3", [o, i // 16]),
                              "weight_scale_2": ("F32", []), "input_scale": ("F32", [])},
}
QUANT = {
    "awq": {"quant_method": "awq", "bits": 4, "group_size": G, "version": "gemm", "zero_point": True},
    "gptq": {"quant_method": "gptq", "bits": 4, "group_size": G, "desc_act": True, "sym": False},
    "ct-w4a16": {"quant_method": "compressed-tensors", "format": "pack-quantized",
                 "ignore": ["lm_head", "re:.*self_attn.*"],
                 "config_groups": {"group_0": {"targets": ["Linear"], "input_activations": None,
                                               "weights": {"num_bits": 4, "type": "int", "strategy": "group",
                                                           "group_size": G, "symmetric": True}}}},
    "fp8-block": {"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128]},
    "bnb-nf4": {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                "bnb_4bit_use_double_quant": True, "llm_int8_skip_modules": ["lm_head"]},
    "ct-fp8": {"quant_method": "compressed-tensors", "format": "float-quantized", "ignore": ["lm_head"],
               "kv_cache_scheme": {"num_bits": 8, "type": "float", "strategy": "tensor"},
               "config_groups": {"group_0": {"targets": ["Linear"],
                                             "input_activations": {"num_bits": 8, "type": "float", "dynamic": True},
                                             "weights": {"num_bits": 8, "type": "float", "strategy": "channel"}}}},
}
MODELOPT = {"producer": {"name": "modelopt", "version": "0.29.0"},
            "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8", "group_size": 16,
                             "exclude_modules": ["lm_head"]}}
EXPECTED = {"bf16": ("bf16", ()), "awq": ("int4-awq", ("native-int4-awq",)),
            "gptq": ("int4-gptq-packed", ("native-int4-gptq",)), "ct-w4a16": ("int4-gptq", ("native-int4-gptq",)),
            "fp8-block": ("fp8-block", ("native-fp8-block",)),
            "ct-fp8": ("fp8", ("native-fp8-w8a8", "native-fp8-w8a16")),
            "nvfp4": ("nvfp4", ("native-nvfp4", "native-nvfp4-w4a16")), "bnb-nf4": ("bnb-nf4", ("native-bnb-nf4",)),
            "mxfp4": ("bf16", ("native-mxfp4-experts",))}


def _header_total(tensors) -> int:
    from hubserver import DTYPE_BYTES

    return sum(DTYPE_BYTES[dt] * math.prod(shape) for dt, shape in tensors.values())


GPT_OSS = {"model_type": "gpt_oss", "architectures": ["GptOssForCausalLM"], "num_hidden_layers": 2, "hidden_size": 512,
           "intermediate_size": 512, "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 64,
           "vocab_size": 2048, "tie_word_embeddings": False, "max_position_embeddings": 8192, "attention_bias": True,
           "sliding_window": 128, "layer_types": ["sliding_attention", "full_attention"], "num_local_experts": 8,
           "num_experts_per_tok": 2, "quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": [
               "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}}


def _mxfp4_tensors() -> dict[str, tuple[str, list[int]]]:
    """gpt-oss's layout: expert matrices as MXFP4 blocks (16 bytes per 32 values) plus one E8M0 scale byte per 32
    (gate_up_proj_blocks / _scales, down_proj_blocks / _scales), everything else BF16."""
    from advisor.physics.architecture import architecture_from_config, tensor_inventory

    out: dict[str, tuple[str, list[int]]] = {}
    for t in tensor_inventory(architecture_from_config(GPT_OSS)):
        name = f"{t.group}.{t.name}"
        if t.group == "experts" and t.cols:
            out[f"{name}_blocks"] = ("U8", [t.copies, t.rows, t.cols // 32, 16])
            out[f"{name}_scales"] = ("U8", [t.copies, t.rows, t.cols // 32])
        else:
            out[name] = ("BF16", [t.copies, t.rows, t.cols or 1])
    return out


def _repo(kind: str, sharded: bool = False, card: str | None = None) -> tuple[dict[str, bytes], int]:
    if kind == "mxfp4":
        tensors = _mxfp4_tensors()
        return ({"config.json": json.dumps(GPT_OSS).encode(), "model.safetensors": safetensors(tensors)},
                _header_total(tensors))
    config = dict(TINY)
    files: dict[str, bytes] = {}
    if kind in QUANT:
        config["quantization_config"] = QUANT[kind]
    if kind == "nvfp4":
        files["hf_quant_config.json"] = json.dumps(MODELOPT).encode()
    tensors = _linears(LAYOUTS[kind])
    files["config.json"] = json.dumps(config).encode()
    if sharded:
        names = list(tensors)
        half = len(names) // 2
        shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
        for fname, part in shards.items():
            files[fname] = safetensors({n: tensors[n] for n in part})
        files["model.safetensors.index.json"] = json.dumps(
            {"metadata": {"total_size": _header_total(tensors)},
             "weight_map": {n: f for f, part in shards.items() for n in part}}).encode()
    else:
        files["model.safetensors"] = safetensors(tensors)
    if card is not None:
        files["README.md"] = card.encode()
    return files, _header_total(tensors)


@pytest.fixture()
def hub(monkeypatch, tmp_path):
    repos, sizes = {}, {}
    for kind in [*LAYOUTS, "mxfp4"]:
        repos[f"acme/tiny-{kind}"], sizes[kind] = _repo(kind, sharded=kind == "gptq",
                                                         card="---\nbase_model: acme/tiny-bf16\n---\n"
                                                         if kind == "awq" else None)
    repos["acme/gated"], _ = _repo("bf16")
    repos["acme/bert"] = {"config.json": json.dumps({"model_type": "bert", "hidden_size": 768}).encode()}
    repos["acme/gguf-only"] = {"model-Q4_K_M.gguf": b"GGUF", "README.md": b"# a GGUF repo"}
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hubmod, "_CACHE", type(hubmod._CACHE)())
    with Hub(repos, gated={"acme/gated"}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        server.sizes = sizes
        yield server


@pytest.mark.parametrize("kind", [*LAYOUTS, "mxfp4"])
def test_each_format_is_detected_and_sized_exactly_from_its_headers(hub, kind):
    model = resolve_model(K, f"acme/tiny-{kind}")
    scheme, candidates = EXPECTED[kind]
    assert model.native.scheme == scheme and model.native.candidates == candidates
    assert model.native.checkpoint_bytes == hub.sizes[kind]
    assert "safetensors headers" in model.native.bytes_source
    assert model.repo == f"acme/tiny-{kind}" and model.architecture.num_layers == 2


def test_header_ranges_are_read_not_the_weights(hub):
    resolve_model(K, "acme/tiny-gptq")
    gets = [r for r in hub.requests if r.startswith("GET") and r.endswith(".safetensors")]
    assert len(gets) == 2  # one ranged read per shard


@pytest.mark.parametrize("kind", ["awq", "gptq", "ct-w4a16", "fp8-block", "ct-fp8", "nvfp4", "bnb-nf4", "mxfp4"])
def test_the_layout_model_agrees_with_the_headers(hub, kind):
    """The computed checkpoint size (scheme + group size + ignore list) is within 3% of the header bytes."""
    model = resolve_model(K, f"acme/tiny-{kind}")
    computed = model.model_copy(update={"native": model.native.model_copy(update={"checkpoint_bytes": None})})
    from advisor.decide.context import Weights

    cand = K.candidates[model.native.candidates[0]]
    exact, estimate = Weights(K, model, cand).checkpoint_bytes, Weights(K, computed, cand).checkpoint_bytes
    assert exact == hub.sizes[kind]
    assert abs(estimate - exact) / exact < 0.03, (kind, estimate, exact)


@pytest.mark.parametrize("kind", ["gptq", "ct-w4a16", "ct-fp8"])
def test_a_quantized_repo_gives_a_plan_with_no_quantization_step(hub, kind):
    request = Request(model=f"acme/tiny-{kind}", gpu="l40s", endpoints=[Endpoint(workload="interactive-chat")])
    document = plan.build(request, K)
    e = document["endpoints"][0]
    rec = e["recommendation"]
    assert rec["candidate"] in EXPECTED[kind][1]
    assert rec["weights"]["checkpoint"]["kind"] == "as-published"
    assert rec["weights"]["size_from"] == "safetensors headers"
    assert e["runtime"]["quantization"]["needed"] is False
    assert "--quantization" not in e["runtime"]["serve_command"]
    assert f"acme/tiny-{kind}" in e["runtime"]["serve_command"]
    assert document["model"]["checkpoint"]["quantized"] is True
    assert document["model"]["checkpoint"]["tensor_bytes"] == hub.sizes[kind]


def test_a_card_naming_its_base_model_lets_other_precisions_be_planned_from_it(hub):
    model = resolve_model(K, "acme/tiny-awq")
    assert model.base_model == "acme/tiny-bf16"
    result = recommend(Request(model="acme/tiny-awq", gpu="h100-sxm",
                               endpoints=[Endpoint(workload="interactive-chat")]), K, model=model)
    served = {d.candidate for d in result.endpoints[0].ranked}
    assert "native-int4-awq" in served and "bf16" in served
    document = plan.render(result, K)
    e = document["endpoints"][0]
    if e["recommendation"]["candidate"] == "bf16":  # the tiny model fits in 16 bits: served from its base model
        assert e["recommendation"]["weights"]["checkpoint"] == {
            "kind": "base-model", "load": "acme/tiny-bf16", "note": "the 16-bit model acme/tiny-awq was quantized from"}
        assert e["runtime"]["serve_command"].startswith(("vllm serve acme/tiny-bf16", "trtllm-serve acme/tiny-bf16",
                                                         "python -m sglang.launch_server --model-path acme/tiny-bf16"))


def test_errors_name_the_repo_and_the_reason(hub, monkeypatch):
    with pytest.raises(AdvisorInputError, match="acme/missing was not found on the Hub"):
        resolve_model(K, "acme/missing")
    with pytest.raises(AdvisorInputError, match="acme/gated is gated.*HF_TOKEN"):
        resolve_model(K, "acme/gated")
    with pytest.raises(AdvisorInputError, match="acme/bert is not a decoder LLM the engine supports.*bert"):
        resolve_model(K, "acme/bert")
    with pytest.raises(AdvisorInputError, match="acme/gguf-only has no config.json.*GGUF"):
        resolve_model(K, "acme/gguf-only")
    monkeypatch.setenv("HF_TOKEN", hub.token)
    assert resolve_model(K, "acme/gated").native.scheme == "bf16"


def test_offline_reads_the_cache_and_names_what_is_missing(hub, monkeypatch):
    online = resolve_model(K, "acme/tiny-awq")
    monkeypatch.setattr(hubmod, "_CACHE", type(hubmod._CACHE)())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = len(hub.requests)
    offline = resolve_model(K, "acme/tiny-awq")
    assert len(hub.requests) == before  # nothing asked of the network
    assert offline.native.scheme == online.native.scheme and offline.base_model == "acme/tiny-bf16"
    assert offline.native.checkpoint_bytes is None and "offline" in offline.native.bytes_source
    with pytest.raises(AdvisorInputError, match=r"acme/tiny-gptq: offline \(HF_HUB_OFFLINE\).*not in the Hugging Face"):
        resolve_model(K, "acme/tiny-gptq")


def test_catalog_ids_never_touch_the_hub(hub):
    resolve_model(K, "meta-llama/Llama-3.1-8B-Instruct")
    assert hub.requests == []


def test_card_front_matter_is_read_safely():
    assert hubmod.card_base_model(b"---\nbase_model:\n- org/one\n- org/two\n---\ntext") == "org/one"
    assert hubmod.card_base_model(b"---\na: &x [1]\nbase_model: *x\n---\n") is None  # aliases refused
    assert hubmod.card_base_model(b"no front matter") is None
    assert hubmod.card_base_model(b"---\nbase_model: not a repo id!\n---\n") is None


def test_an_unreachable_hub_says_so_quickly_and_falls_back_to_the_cache(hub, monkeypatch):
    import time

    online = resolve_model(K, "acme/tiny-awq")
    monkeypatch.setattr(hubmod, "_CACHE", type(hubmod._CACHE)())
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    start = time.monotonic()
    cached = resolve_model(K, "acme/tiny-awq")
    assert cached.native.scheme == online.native.scheme and "could not be reached" in cached.native.bytes_source
    with pytest.raises(AdvisorInputError, match=r"acme/tiny-gptq: the Hub at http://127.0.0.1:9 could not be reached"):
        resolve_model(K, "acme/tiny-gptq")
    assert time.monotonic() - start < 10  # one quick probe, not the client's retries with back-off

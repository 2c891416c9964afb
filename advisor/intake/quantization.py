"""Read a checkpoint's quantization metadata into its native layout (which scheme, which candidates serve it).

Sources, in the order a runtime reads them (shared/reference/runtimes.md sections 1.2 and 1.5):
``config.json`` ``quantization_config`` (AWQ, GPTQ, compressed-tensors, FP8, MXFP4, ModelOpt, bitsandbytes),
ModelOpt's ``hf_quant_config.json``, and AutoGPTQ's legacy ``quantize_config.json``.

Every recognised layout maps to a weight scheme of knowledge/schemes.yaml and the candidates of
knowledge/candidates.yaml that serve it as published. A quantization the engine cannot size or serve is refused
with the field and the methods it knows, never counted as BF16.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from advisor.errors import AdvisorInputError
from advisor.knowledge.schema import NativeLayout

KNOWN_METHODS = ("awq", "gptq", "compressed-tensors", "fp8", "fbgemm_fp8", "mxfp4", "modelopt", "bitsandbytes")

# Module-name patterns -> the module group they belong to (to read `ignore` lists that name whole groups).
_GROUP_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"vision|multi_modal_projector", "vision"),
    (r"lm_head", "lm_head"),
    (r"embed", "embedding"),
    (r"mlp\.gate(?![a-z_])|router|gate_inp|block_sparse_moe\.gate(?![a-z_])", "router"),
    (r"experts", "experts"),
    (r"self_attn|attention|\battn\b", "attention"),
    (r"mlp|ffn|feed_forward", "mlp"),
)
# A pattern naming one projection keeps only that projection, not its whole group.
_ONE_PROJECTION = re.compile(r"(?:q|k|v|o|gate|up|down|qkv|dense|out|in)_proj|\.w[123]\b|\bc_(?:attn|proj|fc)\b")
# Groups a quantized scheme may quantize; an ignore list that covers one of them keeps it 16-bit.
_QUANTIZABLE = ("attention", "mlp", "experts")


def _int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise AdvisorInputError(where, f"must be a whole number, got {str(value)[:40]!r}")
    return int(value)


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value[:200],)
    if isinstance(value, list | tuple):
        return tuple(str(v)[:200] for v in value[:4096] if isinstance(v, str))
    return ()


def ignored_groups(ignore: tuple[str, ...], num_layers: int | None = None) -> tuple[str, ...]:
    """The quantizable module groups an ``ignore`` list leaves in 16 bits everywhere.

    A pattern that names a group without a layer index (``re:.*self_attn.*``, ``model.*.mlp``) keeps that group
    16-bit; a list naming one layer's modules (``model.layers.0.mlp.down_proj``) keeps the group only when it names
    that group in every one of ``num_layers`` layers. Anything else is a partial exclusion, reported in the notes.
    """
    out: list[str] = []
    for group in _QUANTIZABLE:
        layers: set[int] = set()
        whole = False
        for pattern in ignore:
            text = pattern.removeprefix("re:")
            hit = next((g for frag, g in _GROUP_PATTERNS if re.search(frag, text)), None)
            if hit != group or _ONE_PROJECTION.search(text):
                continue
            index = re.search(r"layers?\D{0,3}(\d+)", text)
            if index is None:
                whole = True
            else:
                layers.add(int(index.group(1)))
        if whole or (num_layers and len(layers) >= num_layers):
            out.append(group)
    return tuple(out)


def _layout(scheme: str, candidates: tuple[str, ...], method: str, *, details: list[str], group_size: int | None = None,
            ignore: tuple[str, ...] = (), kv_cache: str | None = None, num_layers: int | None = None) -> NativeLayout:
    kept = ignored_groups(ignore, num_layers)
    overrides = {g: "bf16" for g in kept}
    partial = [p for p in ignore if p not in ("lm_head", "re:.*lm_head", "re:.*lm_head.*")]
    if kept:
        details.append(f"16-bit by its ignore list: {', '.join(kept)}")
    elif partial:
        details.append(f"ignore list names {len(partial)} module pattern(s) kept in 16 bits (e.g. {partial[0][:60]!r}); "
                       "counted as quantized unless the safetensors headers say otherwise")
    if kv_cache:
        details.append(f"KV-cache scales for {kv_cache.upper()}")
    return NativeLayout(scheme=scheme, overrides=overrides, candidates=candidates, method=method, group_size=group_size,
                        ignore=ignore[:64], kv_cache=kv_cache, details=tuple(details),
                        notes=f"quantization_config: {method} - " + "; ".join(details))


def _awq(qc: Mapping[str, Any], num_layers: int | None) -> NativeLayout:
    bits = _int(qc.get("bits", qc.get("w_bit", 4)), "quantization_config.bits")
    group = _int(qc.get("group_size", qc.get("q_group_size", 128)), "quantization_config.group_size")
    if bits != 4:
        raise AdvisorInputError("quantization_config.bits", f"AWQ with {bits} bits is not served by any pinned runtime",
                                value=str(bits), choices=["4"])
    details = [f"{bits}-bit", f"group {group}", "zero point" if qc.get("zero_point", True) else "symmetric",
               f"version {str(qc.get('version', 'gemm'))[:20]}"]
    return _layout("int4-awq", ("native-int4-awq",), "awq", details=details, group_size=group,
                   ignore=_strings(qc.get("modules_to_not_convert")), num_layers=num_layers)


def _gptq(qc: Mapping[str, Any], num_layers: int | None, method: str = "gptq") -> NativeLayout:
    bits = _int(qc.get("bits", 4), "quantization_config.bits")
    group = _int(qc.get("group_size", 128), "quantization_config.group_size")
    details = [f"{bits}-bit", f"group {group}" if group and group > 0 else "per channel",
               "act-order" if qc.get("desc_act") else "no act-order",
               "symmetric" if qc.get("sym", True) else "asymmetric"]
    ignore = _strings(qc.get("modules_to_not_convert"))
    if bits == 4:
        # the AutoGPTQ / GPTQModel layout stores a packed 4-bit zero point per group even when symmetric
        return _layout("int4-gptq-packed", ("native-int4-gptq",), method, details=details, group_size=group,
                       ignore=ignore, num_layers=num_layers)
    if bits == 8:
        return _layout("int8", ("native-int8-w8a16",), method, details=details, group_size=group, ignore=ignore,
                       num_layers=num_layers)
    raise AdvisorInputError("quantization_config.bits", f"GPTQ with {bits} bits is not a layout the engine sizes and "
                            "serves", value=str(bits), choices=["4", "8"])


def _kv_scheme(qc: Mapping[str, Any]) -> str | None:
    kv = qc.get("kv_cache_scheme")
    if isinstance(kv, Mapping) and kv.get("num_bits") == 8:
        return "fp8" if kv.get("type", "float") == "float" else "int8"
    return None


def _compressed_tensors(qc: Mapping[str, Any], num_layers: int | None) -> NativeLayout:
    groups = qc.get("config_groups")
    if not isinstance(groups, Mapping) or not groups:
        raise AdvisorInputError("quantization_config.config_groups", "a compressed-tensors config needs at least "
                                "one config group")
    # The group targeting Linear layers decides the scheme; mixed-precision configs use the widest.
    chosen = None
    for name, group in list(groups.items())[:32]:
        if not isinstance(group, Mapping) or not isinstance(group.get("weights"), Mapping):
            continue
        bits = group["weights"].get("num_bits")
        if chosen is None or (isinstance(bits, int) and bits > chosen[1]["weights"].get("num_bits", 0)):
            chosen = (str(name), group)
    if chosen is None:
        raise AdvisorInputError("quantization_config.config_groups", "no config group quantizes weights")
    name, group = chosen
    weights, acts = group["weights"], group.get("input_activations")
    bits = _int(weights.get("num_bits"), f"quantization_config.config_groups.{name}.weights.num_bits")
    kind = str(weights.get("type", "int"))
    strategy = str(weights.get("strategy", "channel"))
    group_size = _int(weights.get("group_size"), f"quantization_config.config_groups.{name}.weights.group_size")
    act_bits = acts.get("num_bits") if isinstance(acts, Mapping) else None
    act_kind = str(acts.get("type", "int")) if isinstance(acts, Mapping) else None
    details = [f"weights {kind}{bits} {strategy}" + (f" {group_size}" if group_size else ""),
               f"activations {act_kind}{act_bits} {'dynamic' if acts.get('dynamic') else 'static'}"
               if isinstance(acts, Mapping) else "16-bit activations",
               f"format {str(qc.get('format', '?'))[:30]}"]
    if len(groups) > 1:
        details.append(f"{len(groups)} config groups (sized by the widest)")
    ignore = _strings(qc.get("ignore"))
    kv = _kv_scheme(qc)
    common = {"details": details, "ignore": ignore, "kv_cache": kv, "num_layers": num_layers}
    if kind == "int" and bits == 4 and act_bits is None:
        return _layout("int4-gptq", ("native-int4-gptq",), "compressed-tensors", group_size=group_size, **common)
    if kind == "int" and bits == 8 and act_bits is None:
        return _layout("int8", ("native-int8-w8a16",), "compressed-tensors", group_size=group_size, **common)
    if kind == "int" and bits == 8 and act_bits == 8 and act_kind == "int":
        return _layout("int8", ("native-int8-w8a8",), "compressed-tensors", **common)
    if kind == "float" and bits == 8:
        scheme = "fp8-block" if strategy == "block" else "fp8"
        if scheme == "fp8-block":
            return _layout(scheme, ("native-fp8-block",), "compressed-tensors", **common)
        cands = ("native-fp8-w8a8", "native-fp8-w8a16") if act_bits == 8 else ("native-fp8-w8a16",)
        return _layout(scheme, cands, "compressed-tensors", **common)
    if kind == "float" and bits == 4 and (group_size in (16, None)) and strategy in ("tensor_group", "group"):
        cands = ("native-nvfp4", "native-nvfp4-w4a16") if act_bits == 4 else ("native-nvfp4-w4a16",)
        return _layout("nvfp4", cands, "compressed-tensors", **common)
    raise AdvisorInputError("quantization_config.config_groups", f"compressed-tensors weights {kind}{bits} "
                            f"({strategy}) with activations {act_kind or 'none'}{act_bits or ''} is not a layout the "
                            "engine sizes and serves", value=f"{kind}{bits}",
                            choices=["int4 (W4A16)", "int8 (W8A16, W8A8)", "float8 (W8A8, W8A16, block)",
                                     "float4 group 16 (NVFP4, NVFP4A16)"])


def _fp8(qc: Mapping[str, Any], num_layers: int | None, method: str) -> NativeLayout:
    block = qc.get("weight_block_size")
    scheme = "fp8-block" if block else "fp8"
    details = [f"FP8 weights, {'blocks ' + 'x'.join(str(b) for b in block) if block else 'per tensor or channel'}",
               f"activations {str(qc.get('activation_scheme', 'dynamic'))[:20]}"]
    ignore = _strings(qc.get("modules_to_not_convert") or qc.get("ignored_layers"))
    cands = ("native-fp8-block",) if block else ("native-fp8-w8a8", "native-fp8-w8a16")
    return _layout(scheme, cands, method, details=details, ignore=ignore, num_layers=num_layers)


def _modelopt(quant: Mapping[str, Any], num_layers: int | None) -> NativeLayout:
    algo = str(quant.get("quant_algo") or "").upper()
    kv_algo = str(quant.get("kv_cache_quant_algo") or "").upper()
    kv = {"FP8": "fp8", "NVFP4": "nvfp4"}.get(kv_algo)
    ignore = _strings(quant.get("exclude_modules") or quant.get("ignore"))
    details = [f"ModelOpt {algo or '?'}"]
    group = _int(quant.get("group_size"), "hf_quant_config.json quantization.group_size")
    common = {"details": details, "ignore": ignore, "kv_cache": kv, "num_layers": num_layers}
    if algo == "FP8":
        return _layout("fp8", ("native-fp8-w8a8", "native-fp8-w8a16"), "modelopt", **common)
    if algo in ("FP8_PB_WO", "FP8_BLOCK"):
        return _layout("fp8-block", ("native-fp8-block",), "modelopt", **common)
    if algo == "NVFP4":
        return _layout("nvfp4", ("native-nvfp4", "native-nvfp4-w4a16"), "modelopt", group_size=group or 16, **common)
    if algo in ("W4A16_AWQ", "INT4_AWQ"):
        return _layout("int4-gptq", ("native-int4-gptq",), "modelopt", group_size=group or 128, **common)
    if algo in ("W8A8_SQ_PER_CHANNEL", "INT8_SQ"):
        return _layout("int8", ("native-int8-w8a8",), "modelopt", **common)
    raise AdvisorInputError("hf_quant_config.json quantization.quant_algo", f"ModelOpt {algo or 'no quant_algo'} is "
                            "not a layout the engine sizes and serves", value=algo,
                            choices=["FP8", "FP8_PB_WO", "NVFP4", "W4A16_AWQ", "W8A8_SQ_PER_CHANNEL"])


def _bitsandbytes(qc: Mapping[str, Any], num_layers: int | None) -> NativeLayout:
    ignore = _strings(qc.get("llm_int8_skip_modules"))
    if qc.get("load_in_4bit") or qc.get("_load_in_4bit"):
        kind = str(qc.get("bnb_4bit_quant_type", "fp4"))
        double = bool(qc.get("bnb_4bit_use_double_quant"))
        details = [f"4-bit {kind}", "double-quantized absmax" if double else "FP32 absmax per 64"]
        # Without double quantization the absmax per block of 64 is FP32 (4.5 bits per weight), not 8-bit.
        return _layout("bnb-nf4" if double else "bnb-4bit", ("native-bnb-nf4",), "bitsandbytes", details=details,
                       ignore=ignore, num_layers=num_layers)
    if qc.get("load_in_8bit") or qc.get("_load_in_8bit"):
        return _layout("bnb-int8", ("native-bnb-int8",), "bitsandbytes", details=["LLM.int8()"], ignore=ignore,
                       num_layers=num_layers)
    raise AdvisorInputError("quantization_config", "bitsandbytes config loads neither 4-bit nor 8-bit weights")


def native_layout(config: Mapping[str, Any], files: Mapping[str, Mapping[str, Any]] | None = None) -> NativeLayout:
    """The checkpoint's own layout from config.json and its side files (``hf_quant_config.json``,
    ``quantize_config.json``; file name -> parsed JSON).

    Returns a 16-bit layout (from ``torch_dtype``) when nothing says the weights are quantized.
    Raises AdvisorInputError naming the field when a quantization is present but not one the engine can size
    and serve.
    """
    files = files or {}
    num_layers = config.get("num_hidden_layers") if isinstance(config.get("num_hidden_layers"), int) else None
    # older llm-compressor exports name the block compression_config (vLLM reads it as a fallback too)
    qc = config.get("quantization_config", config.get("compression_config"))
    modelopt = files.get("hf_quant_config.json")
    if isinstance(modelopt, Mapping) and isinstance(modelopt.get("quantization"), Mapping):
        return _modelopt(modelopt["quantization"], num_layers)
    if qc is None and isinstance(files.get("quantize_config.json"), Mapping):
        return _gptq(files["quantize_config.json"], num_layers, method="gptq")
    if qc is not None:
        if not isinstance(qc, Mapping):
            raise AdvisorInputError("quantization_config", "must be an object")
        method = str(qc.get("quant_method", "")).lower()[:40]
        if method == "awq":
            return _awq(qc, num_layers)
        if method == "gptq":
            return _gptq(qc, num_layers)
        if method == "compressed-tensors":
            return _compressed_tensors(qc, num_layers)
        if method in ("fp8", "fbgemm_fp8"):
            return _fp8(qc, num_layers, method)
        if method == "mxfp4":
            return NativeLayout(scheme="bf16", overrides={"experts": "mxfp4"}, method="mxfp4",
                                candidates=("native-mxfp4-experts",), details=("MXFP4 experts, BF16 elsewhere",),
                                notes="quantization_config: mxfp4 experts, BF16 elsewhere")
        if method == "modelopt":
            quant = qc.get("quantization") if isinstance(qc.get("quantization"), Mapping) else qc
            return _modelopt(quant, num_layers)
        if method == "bitsandbytes" or qc.get("load_in_4bit") or qc.get("load_in_8bit"):
            return _bitsandbytes(qc, num_layers)
        raise AdvisorInputError("quantization_config.quant_method", f"{method or 'none given'!r} is not a "
                                "quantization the engine can size and serve", value=method, choices=KNOWN_METHODS)
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16").lower()
    scheme = {"float16": "fp16", "float32": "fp32", "bfloat16": "bf16"}.get(dtype, "bf16")
    return NativeLayout(scheme=scheme, notes=f"config dtype {dtype[:20]}")

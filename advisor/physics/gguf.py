"""GGUF checkpoints sized per tensor, the way llama.cpp's quantizer builds them, and read from a local file.

A GGUF "file type" (ftype) such as Q4_K_M is not one bit width: llama.cpp picks a GGML type per tensor (the
output head at Q6_K, some attn_v / ffn_down layers at Q6_K, the rest at Q4_K, a fallback where a row length is
not a multiple of the type's block). :func:`tensor_types` replays that choice for an
:class:`~advisor.physics.architecture.Architecture`; :func:`gguf_bytes` sums the exact bytes; :func:`read_gguf`
reads type and shape of every tensor of a real ``.gguf`` file (header only, never the tensor data).

Sources (pinned):

* per-tensor type choice: ggml-org/llama.cpp ``src/llama-quant.cpp`` at commit
  007dbbf3fd17eefe9b47fee45f48f7ba5e62b714 (``llama_tensor_get_type_impl``, ``tensor_type_fallback``,
  ``tensor_allows_quantization``, ``llama_ftype_get_default_type``, ``init_quantize_state_counters``);
  the 70B rule's model type from ``src/llama-model.cpp`` (llama: 80 layers with GQA; qwen2: 80 layers).
* ``legacy=True``: the name-matching rules before llama.cpp's ``tensor_category`` refactor, read in the copy
  at JohannesGaessler/llama.cpp@5a44f27e2018e3563edffd182b54a5afd5378990 ``src/llama-quant.cpp`` (it already
  has MXFP4_MOE, so it is from after August 2025; the published 2024 files in tests/test_gguf.py match it).
  For the tensors modelled here: a fused ``attn_qkv`` (Phi-3) takes its own branch (Q4_K_M: Q5_K in every
  layer) instead of the attn_v rules, ``attn_kv_b`` is not treated like attn_v, and Q2_K / Q3_K fall back to
  IQ4_NL instead of Q4_0 (both 18 bytes per 32 weights, so only the type name differs).
* block sizes: ggml-org/llama.cpp ``ggml/src/ggml-common.h`` at commit
  01243c587feceaa5d6a6c2305535ef2f549c48b8 (the ``block_*`` structs and their static_asserts); the table used
  at run time is the ``gguf`` package's ``GGML_QUANT_SIZES``, which tests check against these numbers.
* tensor layout per family: llama.cpp's ``convert_hf_to_gguf.py`` naming (token_embd, output, blk.N.attn_q ...;
  experts merged into 3-D ``ffn_*_exps``; DeepSeek's kv_b split into 3-D ``attn_k_b`` / ``attn_v_b``).

Not modelled: ``--pure``, ``--tensor-type`` / ``--output-tensor-type`` overrides, layer pruning, the TQ1_0 /
TQ2_0 / Q1_0 / Q2_0 / NVFP4 file types, MTP (next-token) layers, Llama-3's 64-float ``rope_freqs`` tensor
(256 bytes), Phi-3 128k's rope factor vectors, Gemma-3 trimming its 64 unused embedding rows, and the GGUF
layouts of GPT-2-era, Falcon and hybrid (Qwen3-Next, Nemotron-H, Jamba) families, which are refused.
:func:`read_gguf` reads little-endian GGUF v2/v3 files.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType
from pydantic import BaseModel, ConfigDict

from advisor.errors import AdvisorInputError
from advisor.physics.architecture import Architecture, architecture_from_config, tensor_inventory

# --------------------------------------------------------------------------- GGML types
# type name -> (elements per block, bytes per block), straight from the gguf package.
GGML_TYPES: dict[str, tuple[int, int]] = {t.name: GGML_QUANT_SIZES[t] for t in GGMLQuantizationType
                                          if t in GGML_QUANT_SIZES}

# The same numbers as llama.cpp declares them (ggml/src/ggml-common.h @ 01243c58, block_* structs; F32 / F16 /
# BF16 are one element each). Kept to cross-check the package table in tests, not used for sizing.
LLAMA_CPP_BLOCKS: dict[str, tuple[int, int]] = {
    "F32": (1, 4), "F16": (1, 2), "BF16": (1, 2),
    "Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22), "Q5_1": (32, 24), "Q8_0": (32, 34),
    "Q2_K": (256, 84), "Q3_K": (256, 110), "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210),
    "IQ1_S": (256, 50), "IQ1_M": (256, 56), "IQ2_XXS": (256, 66), "IQ2_XS": (256, 74), "IQ2_S": (256, 82),
    "IQ3_XXS": (256, 98), "IQ3_S": (256, 110), "IQ4_NL": (32, 18), "IQ4_XS": (256, 136), "MXFP4": (32, 17),
}
UNQUANTIZED = ("F32", "F16", "BF16")
ALIGNMENT = 32  # GGUF_DEFAULT_ALIGNMENT: every tensor's data starts on a multiple of this


def row_bytes(ggml_type: str, ne0: int) -> int:
    """Bytes of one row of ``ne0`` elements (ggml_row_size); ``ne0`` must be a multiple of the block."""
    block, size = GGML_TYPES[ggml_type]
    if ne0 % block:
        raise ValueError(f"{ne0} elements are not a whole number of {ggml_type} blocks of {block}")
    return ne0 // block * size


def _pad(n: int, align: int = ALIGNMENT) -> int:
    return (n + align - 1) // align * align


# --------------------------------------------------------------------------- file types
@dataclass(frozen=True)
class FType:
    """A llama.cpp file type: ``name`` as llama-quantize spells it, ``id`` its llama_ftype value (the
    ``general.file_type`` key), ``default`` the GGML type most tensors get (llama_ftype_get_default_type)."""

    name: str
    id: int
    default: str


_DEFAULT_TYPE = {  # llama_ftype_get_default_type @ 007dbbf3
    "F32": "F32", "F16": "F16", "BF16": "BF16", "Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q5_0": "Q5_0", "Q5_1": "Q5_1",
    "Q8_0": "Q8_0", "Q2_K": "Q2_K", "Q2_K_S": "Q2_K", "Q3_K_S": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_L": "Q3_K",
    "Q4_K_S": "Q4_K", "Q4_K_M": "Q4_K", "Q5_K_S": "Q5_K", "Q5_K_M": "Q5_K", "Q6_K": "Q6_K",
    "IQ1_S": "IQ1_S", "IQ1_M": "IQ1_M", "IQ2_XXS": "IQ2_XXS", "IQ2_XS": "IQ2_XS", "IQ2_S": "IQ2_XS",
    "IQ2_M": "IQ2_S", "IQ3_XXS": "IQ3_XXS", "IQ3_XS": "IQ3_S", "IQ3_S": "IQ3_S", "IQ3_M": "IQ3_S",
    "IQ4_NL": "IQ4_NL", "IQ4_XS": "IQ4_XS", "MXFP4_MOE": "MXFP4",
}


def _ftype_id(name: str) -> int:
    member = "ALL_F32" if name == "F32" else f"MOSTLY_{name}"
    return int(LlamaFileType[member])


FTYPES: dict[str, FType] = {n: FType(n, _ftype_id(n), d) for n, d in _DEFAULT_TYPE.items()}
FTYPE_BY_ID: dict[int, str] = {f.id: f.name for f in FTYPES.values()}


def get_ftype(ftype: str) -> FType:
    """Look up a file type by name, case-insensitively (``q4_k_m``, ``Q4_K_M`` and ``gguf-q4_k_m`` all work)."""
    key = str(ftype).strip().upper()
    key = key.removeprefix("GGUF-").removeprefix("GGUF_")
    if key not in FTYPES:
        raise AdvisorInputError("ftype", f"unknown GGUF file type {str(ftype)[:40]!r}", value=str(ftype)[:40],
                                choices=tuple(FTYPES))
    return FTYPES[key]


# --------------------------------------------------------------------------- GGUF tensor layout
# Architecture.model_type -> llama.cpp architecture name (general.architecture).
GGUF_ARCH: dict[str, str] = {
    "llama": "llama", "mistral": "llama", "mixtral": "llama", "phi3": "phi3",
    "qwen2": "qwen2", "qwen3": "qwen3", "qwen3_moe": "qwen3moe",
    "gemma2": "gemma2", "gemma3": "gemma3", "gemma3_text": "gemma3",
    "deepseek_v2": "deepseek2", "deepseek_v3": "deepseek2", "gpt_oss": "gpt-oss",
}
_NORM_NAMES = {  # per-layer norm vectors, in the order architecture.py counts them (norms_per_layer)
    "gemma2": ("attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"),
    "gemma3": ("attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"),
    "gpt-oss": ("attn_norm", "post_attention_norm"),
}


@dataclass(frozen=True)
class _GT:
    """One GGUF tensor: full name, shape in ggml order (ne[0] = row length = input features), its layer, and
    the type it has before quantizing (F32 for vectors and the router, as convert_hf_to_gguf.py writes them)."""

    name: str
    ne: tuple[int, ...]
    layer: int | None
    src: str = "F16"


def _layout(arch: Architecture) -> tuple[str, list[_GT]]:
    """Every tensor llama.cpp's converter writes for this architecture, mapped from tensor_inventory()."""
    gguf_arch = GGUF_ARCH.get(arch.model_type)
    if gguf_arch is None:
        raise AdvisorInputError("model", f"no GGUF tensor layout for model_type {arch.model_type!r}",
                                value=arch.model_type, choices=tuple(GGUF_ARCH))
    h, n_layers = arch.hidden_size, arch.num_layers
    all_layers = list(range(n_layers))
    moe_layers = list(arch.moe_layers)
    dense_layers = [i for i in all_layers if i not in set(moe_layers)]
    q_dim, kv_dim = arch.num_heads * arch.head_dim, arch.num_kv_heads * arch.head_dim
    fused = gguf_arch == "phi3"  # Phi-3: one attn_qkv and one ffn_up holding gate and up
    out: list[_GT] = []

    def glob(name: str, *ne: int, src: str = "F16") -> None:
        out.append(_GT(name, tuple(ne), None, src))

    def per(layers: Iterable[int], name: str, *ne: int, src: str = "F16") -> None:
        out.extend(_GT(f"blk.{i}.{name}", tuple(ne), i, src) for i in layers)

    text = [t for t in tensor_inventory(arch) if t.group != "vision"]  # the vision tower goes in a separate mmproj
    for t in text:
        key, rows, cols = f"{t.group}/{t.name}", t.rows, t.cols or 0
        if key == "embedding/embed_tokens":
            glob("token_embd.weight", cols, rows)
        elif key == "lm_head/lm_head":
            glob("output.weight", cols, rows)
        elif key == "norms/final_norm":
            glob("output_norm.weight", rows, src="F32")
        elif key == "norms/layer_norms":
            for name in _NORM_NAMES.get(gguf_arch, ("attn_norm", "ffn_norm"))[: arch.norms_per_layer]:
                per(all_layers, f"{name}.weight", rows, src="F32")
        elif key == "norms/qk_norm":
            per(all_layers, "attn_q_norm.weight", arch.head_dim, src="F32")
            per(all_layers, "attn_k_norm.weight", arch.head_dim, src="F32")
        elif key == "attention/q_proj":
            if fused:
                per(all_layers, "attn_qkv.weight", cols, q_dim + 2 * kv_dim)
            else:
                per(all_layers, "attn_q.weight", cols, rows)
        elif key in ("attention/k_proj", "attention/v_proj"):
            if not fused:
                per(all_layers, f"attn_{t.name[0]}.weight", cols, rows)
        elif key == "attention/o_proj":
            per(all_layers, "attn_output.weight", cols, rows)
        elif key == "attention/qkv_bias":
            per(all_layers, "attn_q.bias", q_dim, src="F32")
            per(all_layers, "attn_k.bias", kv_dim, src="F32")
            per(all_layers, "attn_v.bias", kv_dim, src="F32")
        elif key == "attention/o_bias":
            per(all_layers, "attn_output.bias", rows, src="F32")
        elif key == "attention/sinks":
            per(all_layers, "attn_sinks.weight", rows, src="F32")
        elif key == "attention/q_a_proj":
            per(all_layers, "attn_q_a.weight", cols, rows)
        elif key == "norms/q_a_layernorm":
            per(all_layers, "attn_q_a_norm.weight", rows, src="F32")
        elif key == "attention/q_b_proj":
            per(all_layers, "attn_q_b.weight", cols, rows)
        elif key == "attention/kv_a_proj_with_mqa":
            per(all_layers, "attn_kv_a_mqa.weight", cols, rows)
        elif key == "norms/kv_a_layernorm":
            per(all_layers, "attn_kv_a_norm.weight", rows, src="F32")
        elif key == "attention/kv_b_proj":  # split for MLA absorption; k_b transposed (convert_hf_to_gguf.py)
            m = arch.mla
            assert m is not None
            per(all_layers, "attn_k_b.weight", m.qk_nope_head_dim, m.kv_lora_rank, arch.num_heads)
            per(all_layers, "attn_v_b.weight", m.kv_lora_rank, m.v_head_dim, arch.num_heads)
        elif key == "mlp/gate_up_proj":
            if fused:
                per(dense_layers, "ffn_up.weight", cols, rows)
            else:
                per(dense_layers, "ffn_gate.weight", cols, rows // 2)
                per(dense_layers, "ffn_up.weight", cols, rows // 2)
        elif key == "mlp/down_proj":
            per(dense_layers, "ffn_down.weight", cols, rows)
        elif key == "experts/experts.gate_up_proj":
            e = arch.num_experts
            per(moe_layers, "ffn_gate_exps.weight", cols, rows // 2, e)
            per(moe_layers, "ffn_up_exps.weight", cols, rows // 2, e)
        elif key == "experts/experts.down_proj":
            per(moe_layers, "ffn_down_exps.weight", cols, rows, arch.num_experts)
        elif key == "experts/experts.biases":
            e, inter = arch.num_experts, arch.moe_intermediate_size or 0
            per(moe_layers, "ffn_gate_exps.bias", inter, e, src="F32")
            per(moe_layers, "ffn_up_exps.bias", inter, e, src="F32")
            per(moe_layers, "ffn_down_exps.bias", h, e, src="F32")
        elif key == "experts/shared_experts.gate_up_proj":
            per(moe_layers, "ffn_gate_shexp.weight", cols, rows // 2)
            per(moe_layers, "ffn_up_shexp.weight", cols, rows // 2)
        elif key == "experts/shared_experts.down_proj":
            per(moe_layers, "ffn_down_shexp.weight", cols, rows)
        elif key == "router/router":  # ffn_gate_inp is never quantized; the converter writes it as F32
            per(moe_layers, "ffn_gate_inp.weight", cols, rows, src="F32")
        elif key == "router/router_bias":
            name = "exp_probs_b.bias" if gguf_arch == "deepseek2" else "ffn_gate_inp.bias"
            per(moe_layers, name, rows, src="F32")
        else:
            raise AdvisorInputError("model", f"no GGUF tensor name for {key} in a {arch.model_type} model")
    expected = sum(t.params for t in text)
    laid_out = sum(_elements(t.ne) for t in out)
    if laid_out != expected:  # a tensor counted by architecture.py but not placed here, or the reverse
        raise AdvisorInputError("model", f"the GGUF layout of this {arch.model_type} model holds {laid_out} "
                                f"parameters but its architecture has {expected}")
    return gguf_arch, out


def _elements(ne: tuple[int, ...]) -> int:
    n = 1
    for d in ne:
        n *= d
    return n


# --------------------------------------------------------------------------- llama.cpp's type choice
_CATEGORIES = (  # tensor_get_category @ 007dbbf3, checked in this order (substring matches)
    ("attn_qkv.weight", "ATTENTION_QKV"), ("attn_kv_b.weight", "ATTENTION_KV_B"), ("attn_v.weight", "ATTENTION_V"),
    ("attn_k.weight", "ATTENTION_K"), ("attn_q.weight", "ATTENTION_Q"), ("attn_output.weight", "ATTENTION_OUTPUT"),
    ("ffn_up", "FFN_UP"), ("ffn_gate", "FFN_GATE"), ("ffn_down", "FFN_DOWN"),
)
_IQ_LOW = {"IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"}


def _category(name: str) -> str:
    short = name.split(".", 2)[2] if name.startswith("blk.") else name  # the category ignores the layer number
    cat = _CATEGORY_OF.get(short)
    if cat is None:
        if short == "output.weight":
            cat = "OUTPUT"
        elif short in ("token_embd.weight", "per_layer_token_embd.weight"):
            cat = "TOKEN_EMBD"
        else:
            cat = next((c for needle, c in _CATEGORIES if needle in short), "OTHER")
        if len(_CATEGORY_OF) < 4096:
            _CATEGORY_OF[short] = cat
    return cat


_CATEGORY_OF: dict[str, str] = {}  # tensor name without its blk.N. prefix -> category


def _allows_quantization(t: _GT) -> bool:
    """tensor_allows_quantization @ 007dbbf3, for the names this module writes."""
    name = t.name
    return (len(t.ne) >= 2 and name.endswith("weight") and "_norm.weight" not in name
            and "ffn_gate_inp.weight" not in name and name not in ("position_embd.weight", "token_types.weight"))


@dataclass
class _Hparams:
    arch: str  # llama.cpp architecture name
    n_layer: int
    n_head: int
    n_head_kv: int
    n_expert: int
    is_70b: bool  # llama_model.type == LLM_TYPE_70B

    @property
    def n_gqa(self) -> int:
        return self.n_head // self.n_head_kv if self.n_head_kv else 0


@dataclass
class _State:  # quantize_state_impl's counters
    n_attention_wv: int = 0
    i_attention_wv: int = 0
    i_ffn_down: int = 0
    i_ffn_gate: int = 0
    i_ffn_up: int = 0
    has_tied_embeddings: bool = True


def _use_more_bits(i_layer: int, n_layers: int) -> bool:
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def _layer_of(name: str) -> int:
    match = re.match(r"blk\.(\d+)\.", name)
    if not match:
        raise ValueError(f"Failed to determine layer for tensor {name}")
    return int(match.group(1))


def _get_type_impl(qs: _State, hp: _Hparams, new_type: str, t: _GT, ftype: str, cat: str, *, imatrix: bool,
                   legacy: bool) -> str:
    """llama_tensor_get_type_impl @ 007dbbf3 (``legacy``: the name-based form @ 5a44f27e), line for line."""
    name, arch = t.name, hp.arch
    n_expert = max(1, hp.n_expert)
    attn_v_like = cat == "ATTENTION_V" if legacy else cat in ("ATTENTION_V", "ATTENTION_QKV", "ATTENTION_KV_B")

    def layer_info(counter: int) -> tuple[int, int]:
        i_layer = _layer_of(name) if n_expert > 1 else counter
        return i_layer, hp.n_layer

    if cat == "OUTPUT" or (qs.has_tied_embeddings and cat == "TOKEN_EMBD"):
        nx, qk_k = t.ne[0], GGML_TYPES[new_type][0]
        if ftype == "MXFP4_MOE" or arch == "falcon" or nx % qk_k != 0:
            new_type = "Q8_0"
        elif ftype in ("IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"):
            new_type = "Q5_K"
        elif new_type != "Q8_0":
            new_type = "Q6_K"
    elif ftype == "MXFP4_MOE":  # MoE tensors (3-D) -> MXFP4, everything else -> Q8_0
        new_type = "MXFP4" if len(t.ne) > 2 and t.ne[2] > 1 else "Q8_0"
    elif cat == "TOKEN_EMBD":
        if ftype in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
            new_type = "Q2_K"
        elif ftype in ("IQ2_S", "IQ2_M", "IQ3_XXS"):
            new_type = "IQ3_S"
    elif ftype in _IQ_LOW:
        if attn_v_like:
            if hp.n_gqa >= 4 or hp.n_expert >= 4:
                new_type = "Q4_K"
            else:
                new_type = "IQ3_S" if ftype in ("IQ2_S", "IQ2_M") else "Q2_K"
            qs.i_attention_wv += 1
        elif hp.n_expert == 8 and cat == "ATTENTION_K":
            new_type = "Q4_K"
        elif cat == "FFN_DOWN":
            if qs.i_ffn_down < hp.n_layer // 8:
                new_type = "IQ3_S" if ftype in ("IQ2_S", "IQ2_M") else "Q2_K"
            qs.i_ffn_down += 1
        elif cat == "ATTENTION_OUTPUT":
            if hp.n_expert == 8:
                new_type = "Q5_K"
            elif ftype in ("IQ1_S", "IQ1_M"):
                new_type = "IQ2_XXS"
            elif ftype in ("IQ2_S", "IQ2_M"):
                new_type = "IQ3_S"
    elif attn_v_like:
        i, n = qs.i_attention_wv, qs.n_attention_wv
        if ftype == "Q2_K":
            new_type = "Q4_K" if hp.n_gqa >= 4 else "Q3_K"
        elif ftype == "Q2_K_S" and hp.n_gqa >= 4:
            new_type = "Q4_K"
        elif ftype == "IQ3_XXS":
            new_type = "Q4_K" if hp.n_gqa >= 4 else ("IQ3_S" if not imatrix else "IQ3_XXS")
        elif ftype in ("IQ3_XS", "IQ3_S") and hp.n_gqa >= 4:  # noqa: SIM114 - kept as llama.cpp writes it
            new_type = "Q4_K"
        elif ftype == "IQ3_M":
            new_type = "Q4_K"
        elif ftype == "Q3_K_M":
            new_type = "Q5_K" if i < 2 else "Q4_K"
        elif ftype == "Q3_K_L":  # noqa: SIM114
            new_type = "Q5_K"
        elif ftype in ("IQ4_NL", "IQ4_XS") and hp.n_gqa >= 4:
            new_type = "Q5_K"
        elif ftype in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, n):
            new_type = "Q6_K"
        elif ftype == "Q4_K_S" and i < 4:
            new_type = "Q5_K"
        if hp.is_70b and new_type in ("Q3_K", "Q4_K"):
            new_type = "Q5_K"  # 70B: 8 heads share attn_v, so more bits cost little
        if hp.n_expert == 8:
            new_type = "Q8_0"
        qs.i_attention_wv += 1
    elif cat == "ATTENTION_K":
        if hp.n_expert == 8:
            new_type = "Q8_0"
        elif ftype == "IQ3_XS":
            new_type = "IQ3_XXS"
        elif ftype == "IQ3_XXS":
            new_type = "IQ2_S"
    elif cat == "ATTENTION_Q":
        if ftype == "IQ3_XS":
            new_type = "IQ3_XXS"
        elif ftype == "IQ3_XXS":
            new_type = "IQ2_S"
    elif cat == "FFN_DOWN":
        i_layer, n_layer = layer_info(qs.i_ffn_down)
        if ftype == "Q2_K":
            new_type = "Q3_K"
        elif ftype == "Q2_K_S":
            if i_layer < n_layer // 8:
                new_type = "Q4_K"
        elif ftype == "IQ3_XXS" and not imatrix:
            new_type = "Q4_K" if i_layer < n_layer // 8 else "Q3_K"
        elif ftype == "Q3_K_M":
            new_type = ("Q5_K" if i_layer < n_layer // 16 else
                        "Q4_K" if arch != "falcon" or _use_more_bits(i_layer, n_layer) else "Q3_K")
        elif ftype == "IQ3_M" and (i_layer < n_layer // 8 or (hp.n_expert == 8 and _use_more_bits(i_layer, n_layer))):
            new_type = "Q4_K"
        elif ftype == "Q3_K_L":
            new_type = "Q4_K" if arch == "falcon" else "Q5_K"
        elif ftype == "Q4_K_M":
            if arch == "falcon":
                new_type = ("Q6_K" if i_layer < n_layer // 16 else
                            "Q5_K" if _use_more_bits(i_layer, n_layer) else "Q4_K")
            elif _use_more_bits(i_layer, n_layer):
                new_type = "Q6_K"
        elif i_layer < n_layer // 8 and ftype in ("IQ4_NL", "IQ4_XS") and not imatrix:
            new_type = "Q5_K"
        elif ftype == "Q5_K_M" and _use_more_bits(i_layer, n_layer):
            new_type = "Q6_K"
        elif ftype == "Q4_K_S" and arch != "falcon" and i_layer < n_layer // 8:
            new_type = "Q5_K"
        elif ftype in ("Q4_0", "Q5_0") and imatrix and i_layer < n_layer // 8:
            new_type = "Q4_1" if ftype == "Q4_0" else "Q5_1"
        qs.i_ffn_down += 1
    elif cat == "ATTENTION_OUTPUT":
        if arch != "falcon":
            if hp.n_expert == 8:
                if ftype in ("Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ3_S",
                             "IQ3_M", "IQ4_XS"):
                    new_type = "Q5_K"
            else:
                new_type = {"Q2_K": "Q3_K", "IQ3_XXS": "IQ3_S", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K",
                            "IQ3_M": "Q4_K"}.get(ftype, new_type)
        elif ftype == "Q3_K_L":
            new_type = "Q4_K"
    elif cat == "ATTENTION_QKV":  # reached only with legacy rules; the current code routes qkv as attn_v
        if ftype in ("Q3_K_M", "Q3_K_L", "IQ3_M"):
            new_type = "Q4_K"
        elif ftype == "Q4_K_M":
            new_type = "Q5_K"
        elif ftype == "Q5_K_M":
            new_type = "Q6_K"
    elif cat in ("FFN_GATE", "FFN_UP"):
        counter = qs.i_ffn_gate if cat == "FFN_GATE" else qs.i_ffn_up
        i_layer, n_layer = layer_info(counter)
        if ftype == "IQ3_XS" and n_layer // 8 <= i_layer < 7 * n_layer // 8:
            new_type = "IQ3_XXS"
        if cat == "FFN_GATE":
            qs.i_ffn_gate += 1
        else:
            qs.i_ffn_up += 1
    return new_type


_FALLBACK = {  # tensor_type_fallback @ 007dbbf3; legacy sends Q2_K / Q3_K to IQ4_NL (same bytes as Q4_0)
    "IQ1_S": "IQ4_NL", "IQ1_M": "IQ4_NL", "IQ2_XXS": "IQ4_NL", "IQ2_XS": "IQ4_NL", "IQ2_S": "IQ4_NL",
    "IQ3_XXS": "IQ4_NL", "IQ3_S": "IQ4_NL", "IQ4_XS": "IQ4_NL",
    "Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0",
}


def _fallback(t: _GT, target: str, legacy: bool) -> str:
    """A row length (ne[0]) that is not a multiple of the type's block gets a type with a smaller block."""
    ncols = t.ne[0]
    if ncols % GGML_TYPES[target][0] == 0:
        return target
    if target not in _FALLBACK:
        raise AdvisorInputError("model", f"{t.name}: {ncols} columns are not a multiple of the {target} block "
                                f"({GGML_TYPES[target][0]}) and llama.cpp defines no fallback for {target}")
    new = "IQ4_NL" if legacy and target in ("Q2_K", "Q3_K") else _FALLBACK[target]
    return new if ncols % GGML_TYPES[new][0] == 0 else "F16"


def _hparams(gguf_arch: str, arch: Architecture) -> _Hparams:
    n_expert = arch.num_experts
    is_70b = ((gguf_arch == "llama" and n_expert != 8 and arch.num_layers == 80 and arch.num_heads != arch.num_kv_heads)
              or (gguf_arch == "qwen2" and arch.num_layers == 80))
    return _Hparams(gguf_arch, arch.num_layers, arch.num_heads, arch.num_kv_heads, n_expert, is_70b)


def _sort_key(t: _GT) -> tuple[int, str]:  # llama_model_loader::weight_name_comparer: by layer, then by name
    return (-1 if t.layer is None else t.layer, t.name)


def _choose(gguf_arch: str, hp: _Hparams, tensors: list[_GT], ftype: FType, *, imatrix: bool,
            legacy: bool, traits: list[tuple[str, bool]] | None = None) -> list[tuple[_GT, str, str | None]]:
    """(tensor, chosen type, type before a shape fallback or None) for every tensor, in llama.cpp's order.
    `traits`: each tensor's (category, allows quantization), when the tensors come sorted (_sorted_layout)."""
    if traits is None:
        tensors = sorted(tensors, key=_sort_key)
        traits = [(_category(t.name), _allows_quantization(t)) for t in tensors]
    qs = _State()
    for cat, _ in traits:  # init_quantize_state_counters
        if cat in ("ATTENTION_V", "ATTENTION_QKV", "ATTENTION_KV_B"):
            qs.n_attention_wv += 1
        if cat == "OUTPUT":
            qs.has_tied_embeddings = False
    out: list[tuple[_GT, str, str | None]] = []
    for t, (cat, allowed) in zip(tensors, traits, strict=True):
        if not allowed:
            out.append((t, t.src, None))
            continue
        new_type = ftype.default
        if ftype.default in UNQUANTIZED:
            out.append((t, new_type, None))
            continue
        try:
            target = _get_type_impl(qs, hp, new_type, t, ftype.name, cat, imatrix=imatrix, legacy=legacy)
        except ValueError as exc:
            raise AdvisorInputError("model", str(exc)) from None
        final = _fallback(t, target, legacy)
        out.append((t, final, target if final != target else None))
    return out


# --------------------------------------------------------------------------- public sizing API
class TensorType(BaseModel):
    """One GGUF tensor (or the same tensor in several layers) with the type llama.cpp gives it.

    ``name``: the GGUF name without the ``blk.N.`` prefix (``attn_v.weight``, ``token_embd.weight``);
    ``cols``: ne[0], the row length (input features) that must be a multiple of the type's block;
    ``rows``: ne[1] (output features; 1 for a vector); ``experts``: ne[2] (1 unless a merged expert tensor);
    ``layers``: the layer indices holding it (empty for a tensor outside the layers); ``copies``: how many
    tensors this row stands for; ``bytes``: their exact bytes together, without alignment padding;
    ``fallback_from``: the type llama.cpp wanted before the row length forced a fallback, else None."""

    model_config = ConfigDict(frozen=True)
    name: str
    ggml_type: str
    rows: int
    cols: int
    experts: int = 1
    layers: tuple[int, ...] = ()
    copies: int = 1
    bytes: int
    fallback_from: str | None = None

    @property
    def elements(self) -> int:
        return self.rows * self.cols * self.experts * self.copies

    @property
    def bytes_each(self) -> int:
        return self.bytes // self.copies


def _tensor_bytes(ggml_type: str, ne: tuple[int, ...]) -> int:
    return _elements(ne[1:]) * row_bytes(ggml_type, ne[0])


def _resolve(arch: Architecture, ftype: str, imatrix: bool, legacy: bool) -> list[tuple[_GT, str, str | None]]:
    ft = get_ftype(ftype)
    gguf_arch, tensors, traits = _sorted_layout(arch)
    return _choose(gguf_arch, _hparams(gguf_arch, arch), tensors, ft, imatrix=imatrix, legacy=legacy,
                   traits=traits)


def _sorted_layout(arch: Architecture) -> tuple[str, list[_GT], list[tuple[str, bool]]]:
    """_layout in llama.cpp's processing order with each tensor's (category, allows quantization), kept for the
    last few architectures (every file type of one model walks the same tensors)."""
    hit = _LAYOUTS.get(arch)
    if hit is None:
        gguf_arch, tensors = _layout(arch)
        tensors = sorted(tensors, key=_sort_key)
        hit = (gguf_arch, tensors, [(_category(t.name), _allows_quantization(t)) for t in tensors])
        if len(_LAYOUTS) >= 8:
            _LAYOUTS.pop(next(iter(_LAYOUTS)))
        _LAYOUTS[arch] = hit
    return hit


_LAYOUTS: dict[Architecture, tuple[str, list[_GT], list[tuple[str, bool]]]] = {}


def tensor_types(arch: Architecture, ftype: str, *, imatrix: bool = False, legacy: bool = False) -> list[TensorType]:
    """The GGML type llama-quantize gives every tensor of ``arch`` for file type ``ftype`` ("Q4_K_M", ...).

    ``imatrix``: quantized with an importance matrix (bartowski, unsloth do; llama-quantize's default does not).
    It changes Q4_0 / Q5_0 / IQ3_XXS / IQ4_XS / IQ4_NL choices. ``legacy``: llama.cpp's rules before the 2025
    tensor_category refactor (see the module docstring). Rows sharing name, type and shape are merged, their
    layers listed; the result is in llama.cpp's processing order. Raises AdvisorInputError for an unknown
    ftype or a model family without a GGUF layout here."""
    merged: dict[tuple[str, str, tuple[int, ...], str | None], list] = {}
    for t, typ, wanted in _resolve(arch, ftype, imatrix, legacy):
        short = re.sub(r"^blk\.\d+\.", "", t.name)
        key = (short, typ, t.ne, wanted)
        merged.setdefault(key, []).append(t)
    rows: list[TensorType] = []
    for (short, typ, ne, wanted), ts in merged.items():
        layers = tuple(t.layer for t in ts if t.layer is not None)
        rows.append(TensorType(name=short, ggml_type=typ, cols=ne[0], rows=ne[1] if len(ne) > 1 else 1,
                               experts=ne[2] if len(ne) > 2 else 1, layers=layers, copies=len(ts),
                               bytes=_tensor_bytes(typ, ne) * len(ts), fallback_from=wanted))
    return rows


def gguf_bytes(arch: Architecture, ftype: str, *, imatrix: bool = False, legacy: bool = False,
               padded: bool = True) -> int:
    """Exact bytes of all tensor data of a llama.cpp GGUF of ``arch`` at file type ``ftype``: the file's size
    minus its header (metadata, tokenizer, tensor index). With ``padded`` (default) each tensor is rounded up
    to the 32-byte alignment as the file stores it (gguf-parser's "SIZE"); without, the bare tensor bytes."""
    total = 0
    for t, typ, _ in _resolve(arch, ftype, imatrix, legacy):
        n = _tensor_bytes(typ, t.ne)
        total += _pad(n) if padded else n
    return total


def gguf_bits_per_weight(arch: Architecture, ftype: str, *, imatrix: bool = False, legacy: bool = False) -> float:
    """File-average bits per parameter of that GGUF (tensor bytes x 8 / parameters, as llama.cpp reports BPW)."""
    resolved = _resolve(arch, ftype, imatrix, legacy)
    n_bytes = sum(_tensor_bytes(typ, t.ne) for t, typ, _ in resolved)
    return n_bytes * 8 / sum(_elements(t.ne) for t, _, _ in resolved)


# --------------------------------------------------------------------------- reading a .gguf file
MAX_TENSORS = 100_000  # a real model has a few thousand
MAX_KV = 100_000
MAX_ARRAY_ITEMS = 20_000_000  # all metadata array elements together (a tokenizer is ~0.5M)
SPLIT_NAME = re.compile(r"^(?P<stem>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")

# general.architecture -> Hugging Face model_type (llama with experts becomes mixtral; deepseek2 with a
# sigmoid router / exp_probs_b becomes deepseek_v3)
MODEL_TYPES: dict[str, str] = {
    "llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "qwen3moe": "qwen3_moe", "gemma2": "gemma2",
    "gemma3": "gemma3_text", "phi3": "phi3", "deepseek2": "deepseek_v3", "gpt-oss": "gpt_oss",
}


class GGUFTensor(BaseModel):
    """One tensor as the file lists it: ``shape`` in ggml order (ne[0] first), ``bytes`` exact (unpadded)."""

    model_config = ConfigDict(frozen=True)
    name: str
    ggml_type: str
    shape: tuple[int, ...]
    elements: int
    bytes: int


class GGUFInfo(BaseModel):
    """What a .gguf file's header says. ``config`` is a config.json-style mapping that
    :func:`advisor.physics.architecture.architecture_from_config` accepts. ``tensor_bytes`` sums the tensors
    read; ``data_bytes`` is file size minus header over the parts read (tensor bytes plus alignment padding,
    gguf-parser's "SIZE"); ``file_size`` the bytes on disk of those parts. A split GGUF is complete when every
    part was found next to the first one; otherwise the sums cover only the parts read (see ``notes``)."""

    model_config = ConfigDict(frozen=True)
    path: str
    name: str | None
    architecture: str
    model_type: str
    config: dict[str, Any]
    file_type: str | None
    tensors: tuple[GGUFTensor, ...]
    tensor_bytes: int
    data_bytes: int
    file_size: int
    split_count: int = 1
    parts_read: tuple[str, ...] = ()
    missing_parts: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.missing_parts

    @property
    def parameters(self) -> int:
        return sum(t.elements for t in self.tensors)


class _Header:
    """Bounded walk over a GGUF header, before gguf.GGUFReader parses it: refuses absurd counts, lengths that
    run past the end of the file and tensors whose data would lie beyond it, so a hostile or truncated file
    costs at most one pass over its own header and fails with a plain message."""

    _SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUFValueType sizes

    def __init__(self, data: bytes, file_size: int, where: str):
        self.data, self.size, self.where, self.pos, self.items = data, file_size, where, 0, 0
        self.alignment = ALIGNMENT

    def fail(self, message: str) -> AdvisorInputError:
        return AdvisorInputError(self.where, message)

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(_PAST_END)
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> bytes:
        return self.take(self.u64())

    def value(self, vtype: int, depth: int = 0) -> None:
        if vtype in self._SCALAR:
            self.take(self._SCALAR[vtype])
        elif vtype == 8:
            self.string()
        elif vtype == 9 and depth == 0:
            itype, count = self.u32(), self.u64()
            self.items += count
            if count > self.size:
                raise self.fail(f"header claims a metadata array of {count} items in a file of {self.size} bytes")
            if self.items > MAX_ARRAY_ITEMS:
                raise self.fail(f"header claims over {MAX_ARRAY_ITEMS} metadata array items; refusing to read it")
            if itype in self._SCALAR:
                self.take(self._SCALAR[itype] * count)
            elif itype == 8:
                try:
                    self.pos = _skip_strings(self.data, self.pos, count, "<Q")
                except _PastEnd:
                    raise self.fail(_PAST_END) from None
            else:
                for _ in range(count):
                    self.value(itype, depth + 1)
        else:
            raise self.fail(f"unknown metadata value type {vtype}: not a GGUF file this reader understands")

    def walk(self) -> None:
        if self.take(4) != b"GGUF":
            raise self.fail("not a GGUF file (it does not start with the GGUF magic)")
        version = self.u32()
        if version not in (2, 3):
            raise self.fail(f"GGUF version {version} is not supported (2 and 3 are)")
        n_tensors, n_kv = self.u64(), self.u64()
        if n_tensors > MAX_TENSORS:
            raise self.fail(f"header claims {n_tensors} tensors (over {MAX_TENSORS}); refusing to read it")
        if n_kv > MAX_KV:
            raise self.fail(f"header claims {n_kv} metadata keys (over {MAX_KV}); refusing to read it")
        for _ in range(n_kv):
            key, vtype = self.string(), self.u32()
            if key == b"general.alignment" and vtype == 4:
                self.alignment = self.u32()
                if not self.alignment or self.alignment & (self.alignment - 1):
                    raise self.fail(f"general.alignment {self.alignment} is not a power of two")
            else:
                self.value(vtype)
        ends = []
        for _ in range(n_tensors):
            name = self.string()
            n_dims = self.u32()
            if n_dims > 4:
                raise self.fail(f"a tensor claims {n_dims} dimensions (ggml has at most 4)")
            dims = [self.u64() for _ in range(n_dims)]
            raw_type, offset = self.u32(), self.u64()
            try:
                block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(raw_type)]
            except (ValueError, KeyError):
                raise self.fail(f"tensor {name[:80]!r} has unknown GGML type {raw_type}") from None
            elements = 1
            for d in dims:
                elements *= d
            if elements > self.size * 64:
                raise self.fail(f"tensor {name[:80]!r} claims {elements} elements, far more than the file holds")
            ends.append((offset + elements * type_size // block, name))
        data_start = _pad(self.pos, self.alignment)
        if ends:
            end, name = max(ends)
            if data_start + end > self.size:
                raise self.fail(f"truncated: tensor {name.decode('utf-8', 'replace')[:80]!r} ends at byte "
                                f"{data_start + end} but the file has {self.size} bytes")


_PAST_END = "not a complete GGUF file: its header runs past the end of the file"


class _PastEnd(ValueError):
    pass


def _skip_strings(buf, pos: int, count: int, fmt: str) -> int:
    """Offset just past ``count`` GGUF strings (u64 length + bytes) starting at ``pos`` in ``buf``."""
    end = len(buf)
    for _ in range(count):
        if pos + 8 > end:
            raise _PastEnd(_PAST_END)
        pos += 8 + struct.unpack_from(fmt, buf, pos)[0]
    if pos > end:
        raise _PastEnd(_PAST_END)
    return pos


def _fast_reader_class():
    """gguf.GGUFReader, with metadata arrays parsed in bulk. The stock reader (gguf 0.19.0) builds one numpy
    view per array element, about 20 s for a Llama-3 tokenizer; here a scalar array is one view and a string
    array (vocabulary, merges) is stepped over with its item count kept and its strings not decoded."""
    import sys

    import numpy as np
    from gguf import GGUFReader
    from gguf.constants import GGUFValueType

    class FastReader(GGUFReader):
        def _get_field_parts(self, orig_offs: int, raw_type: int):
            if raw_type != GGUFValueType.ARRAY:
                return super()._get_field_parts(orig_offs, raw_type)
            raw_itype = self._get(orig_offs, np.uint32)
            alen = self._get(orig_offs + 4, np.uint64)
            if len(raw_itype) != 1 or len(alen) != 1:
                raise ValueError("metadata array header runs past the end of the file")
            itype, count, offs = GGUFValueType(int(raw_itype[0])), int(alen[0]), orig_offs + 12
            types = [GGUFValueType.ARRAY, itype]
            nptype = self.gguf_scalar_to_np.get(itype)
            if nptype is not None:
                values = self._get(offs, nptype, count)
                if len(values) != count:
                    raise ValueError("metadata array runs past the end of the file")
                return 12 + int(values.nbytes), [raw_itype, alen, values], [2], types
            if itype == GGUFValueType.STRING:
                swapped = (self.byte_order == "S") == (sys.byteorder == "little")
                end = _skip_strings(memoryview(self.data), offs, count, ">Q" if swapped else "<Q")
                return end - orig_offs, [raw_itype, alen], [], types
            raise ValueError(f"unhandled metadata array item type {itype.name}")

    return FastReader


def _read_head(path: Path, where: str) -> None:
    """Run the bounded header walk, reading the file in growing chunks (a header is at most tens of MB)."""
    size = path.stat().st_size
    chunk = min(size, 1 << 20)
    while True:
        with path.open("rb") as fh:
            data = fh.read(chunk)
        try:
            _Header(data, size, where).walk()
            return
        except AdvisorInputError as exc:
            if exc.message == _PAST_END and chunk < size:
                chunk = min(size, chunk * 8)
                continue
            raise


def _reader(path: Path, where: str):
    """gguf.GGUFReader over ``path`` after the bounded walk; any parse failure becomes an AdvisorInputError."""
    _read_head(path, where)
    try:
        return _fast_reader_class()(path)
    except Exception as exc:  # noqa: BLE001 - a malformed file can fail anywhere in the parser
        raise AdvisorInputError(where, f"not a readable GGUF file ({type(exc).__name__}: {str(exc)[:200]})") from None


def _field(reader, key: str) -> Any:
    field = reader.get_field(key)
    if field is None:
        return None
    try:
        value = field.contents()
    except Exception:  # noqa: BLE001 - a value of an unexpected type reads as absent
        return None
    return value


def _first(value: Any) -> Any:
    """Per-layer arrays (head counts, ffn lengths) -> the largest entry; scalars unchanged."""
    if isinstance(value, list):
        numbers = [v for v in value if isinstance(v, int)]
        return max(numbers) if numbers else None
    return value


def _config(reader, arch: str, names: set[str], shapes: Mapping[str, tuple[int, ...]]) -> dict[str, Any]:
    def kv(key: str) -> Any:
        return _first(_field(reader, f"{arch}.{key}"))

    experts = kv("expert_count") or 0
    model_type = MODEL_TYPES[arch]
    if arch == "llama" and experts:
        model_type = "mixtral"
    if arch == "deepseek2" and not (kv("expert_gating_func") == 2 or any("exp_probs_b" in n for n in names)):
        model_type = "deepseek_v2"
    vocab = None
    if "token_embd.weight" in shapes and len(shapes["token_embd.weight"]) >= 2:
        vocab = shapes["token_embd.weight"][1]
    if vocab is None:
        # a metadata array's parts: key length, key, value type, item type, item count, ...
        tokens = reader.get_field("tokenizer.ggml.tokens")
        vocab = int(tokens.parts[4][0]) if tokens is not None and len(tokens.parts) > 4 else kv("vocab_size")
    cfg: dict[str, Any] = {
        "model_type": model_type,
        "num_hidden_layers": kv("block_count"),
        "hidden_size": kv("embedding_length"),
        "intermediate_size": kv("feed_forward_length") or kv("expert_feed_forward_length"),
        "num_attention_heads": kv("attention.head_count"),
        "num_key_value_heads": kv("attention.head_count_kv"),
        "max_position_embeddings": kv("context_length"),
        "vocab_size": vocab,
        "tie_word_embeddings": "output.weight" not in names,
    }
    head_dim = kv("attention.key_length")
    if head_dim and arch != "deepseek2":
        cfg["head_dim"] = head_dim
    window = kv("attention.sliding_window")
    if window:
        cfg["sliding_window"] = window
    if experts:
        cfg.update(num_local_experts=experts, num_experts=experts, n_routed_experts=experts,
                   num_experts_per_tok=kv("expert_used_count"),
                   moe_intermediate_size=kv("expert_feed_forward_length") or cfg["intermediate_size"])
        if arch == "gpt-oss":
            cfg["intermediate_size"] = kv("expert_feed_forward_length") or cfg["intermediate_size"]
    if arch == "deepseek2":
        rope = kv("rope.dimension_count") or 0
        key_len = kv("attention.key_length_mla") or kv("attention.key_length") or 0
        cfg.update(kv_lora_rank=kv("attention.kv_lora_rank"), q_lora_rank=kv("attention.q_lora_rank") or None,
                   qk_rope_head_dim=rope, qk_nope_head_dim=max(0, key_len - rope),
                   v_head_dim=kv("attention.value_length_mla") or kv("attention.value_length"),
                   n_shared_experts=kv("expert_shared_count") or 0,
                   first_k_dense_replace=kv("leading_dense_block_count") or 0)
    return {k: v for k, v in cfg.items() if v is not None}


def _split_parts(path: Path, split_count: int) -> tuple[list[Path], list[str]]:
    """(parts found, part names missing) of a split GGUF whose first part is ``path``."""
    match = SPLIT_NAME.match(path.name)
    if not match:
        return [path], [f"parts 2-{split_count} (the first part's name does not follow name-00001-of-0000N.gguf)"]
    count = max(int(match.group("count")), split_count)
    found, missing = [path], []
    for i in range(2, count + 1):
        part = path.with_name(f"{match.group('stem')}-{i:05d}-of-{count:05d}.gguf")
        if part.is_file():
            found.append(part)
        else:
            missing.append(part.name)
    return found, missing


def read_gguf(path: str | Path) -> GGUFInfo:
    """Read a local .gguf file's header with gguf.GGUFReader: architecture, a config.json-style mapping, every
    tensor's type and shape, exact tensor bytes, the file type and the file size. Tensor data is never read.

    A split GGUF (``name-00001-of-00003.gguf``) is read from its first part; the other parts are read when they
    lie in the same folder, else the result says which are missing. Raises AdvisorInputError for a missing,
    truncated or malformed file, a later split part, or an architecture this module cannot model."""
    p = Path(path)
    where = p.name or str(path)
    if not p.is_file():
        raise AdvisorInputError("gguf", f"no such file: {str(path)[:200]!r}")
    reader = _reader(p, where)
    arch = _field(reader, "general.architecture")
    if not isinstance(arch, str):
        raise AdvisorInputError(where, "the file has no general.architecture key")
    split_no = _field(reader, "split.no")
    split_count = _field(reader, "split.count")
    split_no = split_no if isinstance(split_no, int) else 0
    split_count = split_count if isinstance(split_count, int) and split_count > 0 else 1
    match = SPLIT_NAME.match(p.name)
    if split_no or (match and int(match.group("no")) != 1):
        part = split_no + 1 if split_no else int(match.group("no"))
        raise AdvisorInputError(where, f"this is part {part} of a split GGUF; pass the first part "
                                "(name-00001-of-0000N.gguf), which holds the model's metadata")
    if arch not in MODEL_TYPES:
        raise AdvisorInputError(where, f"GGUF architecture {arch[:60]!r} is not supported here", value=arch[:60],
                                choices=tuple(MODEL_TYPES))
    if match:
        split_count = max(split_count, int(match.group("count")))
    parts, missing = _split_parts(p, split_count) if split_count > 1 else ([p], [])
    tensors: list[GGUFTensor] = []
    data_bytes = file_size = 0
    for q in parts:
        r = reader if q == p else _reader(q, q.name)
        size = q.stat().st_size
        file_size += size
        data_bytes += size - r.data_offset
        for t in r.tensors:
            tensors.append(GGUFTensor(name=t.name, ggml_type=t.tensor_type.name, shape=tuple(int(d) for d in t.shape),
                                      elements=int(t.n_elements), bytes=int(t.n_bytes)))
    notes: list[str] = []
    if missing:
        notes.append(f"split GGUF of {split_count} parts; not found next to the first part: {', '.join(missing)}. "
                     "Tensor and file sizes cover only the parts read; the whole model needs every part")
    file_type_id = _field(reader, "general.file_type")
    file_type = FTYPE_BY_ID.get(file_type_id) if isinstance(file_type_id, int) else None
    if isinstance(file_type_id, int) and file_type is None:
        known = {int(f): f.name for f in LlamaFileType}
        notes.append(f"general.file_type {known.get(file_type_id, file_type_id)} is not a file type modelled here")
    cfg = _config(reader, arch, {t.name for t in tensors}, {t.name: t.shape for t in tensors})
    architecture_from_config(cfg, where)  # refuse here, naming the file, if the metadata lacks a needed key
    general_name = _field(reader, "general.name")
    return GGUFInfo(path=str(p), name=general_name if isinstance(general_name, str) else None, architecture=arch,
                    model_type=cfg["model_type"], config=cfg, file_type=file_type, tensors=tuple(tensors),
                    tensor_bytes=sum(t.bytes for t in tensors), data_bytes=data_bytes, file_size=file_size,
                    split_count=split_count, parts_read=tuple(str(q) for q in parts), missing_parts=tuple(missing),
                    notes=tuple(notes))


# --------------------------------------------------------------------------- the engine's GGUF weight schemes
def scheme_bytes(arch: Architecture, scheme_id: str) -> int | None:
    """Exact tensor bytes of the GGUF a knowledge/schemes.yaml ``gguf-*`` scheme stands for (``gguf-q4_k_m`` ->
    Q4_K_M, i-quants with an importance matrix, as published GGUFs are made), or None when the scheme is not a
    GGUF type or the family has no GGUF layout here (the scheme's file-average bits apply then)."""
    if not scheme_id.startswith("gguf-"):
        return None
    ftype = scheme_id.removeprefix("gguf-").upper()
    if ftype not in FTYPES:
        return None
    key = (arch, ftype)
    if key not in _SCHEME_BYTES:
        if len(_SCHEME_BYTES) >= _SCHEME_BYTES_MAX:  # bounded: custom architectures come from users
            _SCHEME_BYTES.clear()
        try:
            _SCHEME_BYTES[key] = gguf_bytes(arch, ftype, imatrix=ftype.startswith("IQ"))
        except AdvisorInputError:
            _SCHEME_BYTES[key] = None
    return _SCHEME_BYTES[key]


# per-tensor type choice is a pure function of the architecture and the type: computed once per pair
_SCHEME_BYTES: dict[tuple[Architecture, str], int | None] = {}
_SCHEME_BYTES_MAX = 4096


def _group_of(name: str) -> str:
    """The engine's module group of a llama.cpp tensor name."""
    if name.startswith("token_embd"):
        return "embedding"
    if name.startswith("output.") or name == "output":
        return "lm_head"
    if "norm" in name:
        return "norms"
    if "ffn_gate_inp" in name:
        return "router"
    if "_exps" in name or "_shexp" in name:
        return "experts"
    if name.startswith("ffn") or name.startswith("blk.") and ".ffn" in name:
        return "mlp"
    return "attention"


def scheme_group_bytes(arch: Architecture, scheme_id: str) -> dict[str, int] | None:
    """:func:`scheme_bytes` per engine module group (embedding, attention, mlp, experts, router, norms, lm_head)."""
    total = scheme_bytes(arch, scheme_id)
    if total is None:
        return None
    out: dict[str, int] = {}
    for row in tensor_types(arch, scheme_id.removeprefix("gguf-").upper(),
                            imatrix=scheme_id.removeprefix("gguf-").upper().startswith("IQ")):
        group = _group_of(row.name)
        out[group] = out.get(group, 0) + row.bytes
    return out

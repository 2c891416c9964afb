"""GGUF sizing per tensor (advisor/physics/gguf.py): the GGML type table, llama.cpp's per-tensor type choice
checked against published GGUF sizes, and reading .gguf headers. No network: the published sizes are data
here, with their sources; docs/evidence/gguf-sizes.md has the same rows as a table."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from gguf import GGUFWriter
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

from advisor.errors import AdvisorInputError
from advisor.intake.catalog import resolve_model
from advisor.knowledge import load_knowledge
from advisor.physics.architecture import architecture_from_config, tensor_inventory
from advisor.physics.gguf import (
    FTYPES,
    GGML_TYPES,
    GGUF_ARCH,
    LLAMA_CPP_BLOCKS,
    get_ftype,
    gguf_bits_per_weight,
    gguf_bytes,
    read_gguf,
    tensor_types,
)

K = load_knowledge()
GIB = 2**30


def arch_of(model_id: str):
    return resolve_model(K, model_id).architecture


# --------------------------------------------------------------------------- type table
REQUIRED = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
            "IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ4_NL", "IQ4_XS", "MXFP4"]


@pytest.mark.parametrize("name", REQUIRED)
def test_type_table_matches_llama_cpp_and_gguf_package(name):
    assert LLAMA_CPP_BLOCKS[name] == GGML_TYPES[name] == GGML_QUANT_SIZES[GGMLQuantizationType[name]]


def test_type_table_examples():
    assert GGML_TYPES["Q4_0"] == (32, 18)
    assert GGML_TYPES["Q4_K"] == (256, 144)
    assert GGML_TYPES["Q6_K"] == (256, 210)
    assert GGML_TYPES["IQ4_XS"] == (256, 136)
    assert GGML_TYPES["IQ4_NL"] == (32, 18)
    assert GGML_TYPES["MXFP4"] == (32, 17)


def test_ftypes_cover_the_brief_and_match_llama_ftype_ids():
    for name in ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M",
                 "Q5_K_S", "Q5_K_M", "Q6_K", "IQ2_M", "IQ3_M", "IQ4_XS", "IQ4_NL", "F16", "BF16"]:
        assert name in FTYPES
    assert FTYPES["Q4_K_M"].id == LlamaFileType.MOSTLY_Q4_K_M == 15
    assert FTYPES["F16"].id == 1 and FTYPES["IQ4_XS"].id == 30
    assert get_ftype("q4_k_m").name == "Q4_K_M" and get_ftype("gguf-q8_0").name == "Q8_0"


def test_unknown_ftype_is_an_input_error():
    with pytest.raises(AdvisorInputError) as err:
        gguf_bytes(arch_of("meta-llama/Llama-3.1-8B-Instruct"), "Q4_K_XL")
    assert err.value.field == "ftype" and "Q4_K_M" in err.value.choices
    assert "closest valid" in str(err.value)


# --------------------------------------------------------------------------- published sizes
# (model, ftype, options, published number, unit, what it measures, source). "data": the tensor data section
# (file size minus header), as gguf-parser prints it; "file": the whole file, which also holds the metadata
# and tokenizer (a few MB; about 8 MB for the Llama-3 tokenizer).
PARSER = ("gguf-parser-go README (gpustack/gguf-parser-go@8dc7a622149dd1e477c86778fc1123fc1c0a316a, README.md, "
          "METADATA 'SIZE' = file size minus the tensor data offset, file.go ModelSize)")
CARDS = "bartowski model card file table via YinanWusoymilk/hf-readme@eb4de03f training_and_application/readme_files/"

BARTOWSKI: dict[str, tuple[str, str, bool, dict[str, float]]] = {
    # card file: (catalog model, llama.cpp release, legacy rules, {ftype: decimal GB})
    "bartowski_Meta-Llama-3.1-8B-Instruct-GGUF.md": ("meta-llama/Llama-3.1-8B-Instruct", "b3472", True, {
        "F32": 32.13, "Q8_0": 8.54, "Q6_K": 6.60, "Q5_K_M": 5.73, "Q5_K_S": 5.60, "Q4_K_M": 4.92, "Q4_K_S": 4.69,
        "IQ4_XS": 4.45, "Q3_K_L": 4.32, "Q3_K_M": 4.02, "IQ3_M": 3.78, "Q3_K_S": 3.66, "IQ3_XS": 3.52, "Q2_K": 3.18,
        "IQ2_M": 2.95}),
    "bartowski_Meta-Llama-3.1-70B-Instruct-GGUF.md": ("meta-llama/Llama-3.1-70B-Instruct", "b3472", True, {
        "Q8_0": 74.98, "Q6_K": 57.89, "Q5_K_M": 49.95, "Q5_K_S": 48.66, "Q4_K_M": 42.52, "Q4_K_S": 40.35,
        "IQ4_XS": 37.90, "Q3_K_L": 37.14, "Q3_K_M": 34.27, "IQ3_M": 31.94, "Q3_K_S": 30.91, "IQ3_XS": 29.31,
        "Q2_K": 26.38, "IQ2_M": 24.12, "IQ2_S": 22.24, "IQ2_XS": 21.14, "IQ2_XXS": 19.10, "IQ1_M": 16.75}),
    "bartowski_Llama-3.2-1B-Instruct-GGUF.md": ("meta-llama/Llama-3.2-1B-Instruct", "b3821", True, {
        "F16": 2.48, "Q8_0": 1.32, "Q6_K": 1.02, "Q5_K_M": 0.91, "Q5_K_S": 0.89, "Q4_K_M": 0.81, "Q4_K_S": 0.78,
        "Q4_0": 0.77, "IQ4_XS": 0.74, "Q3_K_L": 0.73, "IQ3_M": 0.66}),
    "bartowski_Llama-3.2-3B-Instruct-GGUF.md": ("meta-llama/Llama-3.2-3B-Instruct", "b3821", True, {
        "F16": 6.43, "Q8_0": 3.42, "Q6_K": 2.64, "Q5_K_M": 2.32, "Q5_K_S": 2.27, "Q4_K_M": 2.02, "Q4_K_S": 1.93,
        "Q4_0": 1.92, "IQ4_XS": 1.83, "Q3_K_L": 1.82, "IQ3_M": 1.60}),
    "bartowski_Mistral-7B-Instruct-v0.3-GGUF.md": ("mistralai/Mistral-7B-Instruct-v0.3", "b2965", True, {
        "Q8_0": 7.70, "Q6_K": 5.94, "Q5_K_M": 5.13, "Q5_K_S": 5.00, "Q4_K_M": 4.37, "Q4_K_S": 4.14, "IQ4_NL": 4.13,
        "IQ4_XS": 3.91, "Q3_K_L": 3.82, "Q3_K_M": 3.52, "IQ3_M": 3.28, "IQ3_S": 3.18, "Q3_K_S": 3.16, "IQ3_XS": 3.02,
        "IQ3_XXS": 2.83, "Q2_K": 2.72, "IQ2_M": 2.50, "IQ2_S": 2.31, "IQ2_XS": 2.20, "IQ2_XXS": 1.99, "IQ1_M": 1.75,
        "IQ1_S": 1.61}),
    "bartowski_Qwen2.5-14B-Instruct-GGUF.md": ("Qwen/Qwen2.5-14B-Instruct", "b3772", True, {
        "F16": 29.55, "Q8_0": 15.70, "Q6_K": 12.12, "Q5_K_M": 10.51, "Q5_K_S": 10.27, "Q4_K_M": 8.99, "Q4_K_S": 8.57,
        "Q4_0": 8.54, "IQ4_XS": 8.12, "Q3_K_L": 7.92, "Q3_K_M": 7.34, "IQ3_M": 6.92, "Q3_K_S": 6.66, "IQ3_XS": 6.38,
        "Q2_K": 5.77, "IQ2_M": 5.36}),
    "bartowski_Qwen2.5-32B-Instruct-GGUF.md": ("Qwen/Qwen2.5-32B-Instruct", "b3772", True, {
        "F16": 65.54, "Q8_0": 34.82, "Q6_K": 26.89, "Q5_K_M": 23.26, "Q5_K_S": 22.64, "Q4_K_M": 19.85,
        "Q4_K_S": 18.78, "Q4_0": 18.71, "IQ4_XS": 17.69, "Q3_K_L": 17.25, "Q3_K_M": 15.94, "IQ3_M": 14.81,
        "Q3_K_S": 14.39, "IQ3_XS": 13.71, "Q2_K": 12.31, "IQ2_M": 11.26, "IQ2_S": 10.39, "IQ2_XS": 9.96,
        "IQ2_XXS": 9.03}),
    "bartowski_Qwen2.5-72B-Instruct-GGUF.md": ("Qwen/Qwen2.5-72B-Instruct", "b3772", True, {
        "Q8_0": 77.26, "Q6_K": 64.35, "Q5_K_M": 54.45, "Q4_K_M": 47.42, "Q4_0": 41.38, "IQ4_XS": 39.71,
        "Q3_K_L": 39.51, "Q3_K_M": 37.70, "IQ3_M": 35.50, "Q3_K_S": 34.49, "IQ3_XXS": 31.85, "Q2_K": 29.81,
        "IQ2_M": 29.34, "IQ2_XS": 27.06, "IQ2_XXS": 25.49, "IQ1_M": 23.74}),
    "bartowski_gemma-2-9b-it-GGUF.md": ("google/gemma-2-9b-it", "b3389", True, {
        "F32": 36.97, "Q8_0": 9.83, "Q6_K": 7.59, "Q5_K_M": 6.65, "Q5_K_S": 6.48, "Q4_K_M": 5.76, "Q4_K_S": 5.48,
        "IQ4_XS": 5.18, "Q3_K_L": 5.13, "Q3_K_M": 4.76, "IQ3_M": 4.49, "Q3_K_S": 4.34, "IQ3_XS": 4.14, "Q2_K": 3.81,
        "IQ3_XXS": 3.80, "IQ2_M": 3.43}),
    "bartowski_gemma-2-27b-it-GGUF.md": ("google/gemma-2-27b-it", "b3389", True, {
        "F32": 108.91, "Q8_0": 28.94, "Q6_K": 22.34, "Q5_K_M": 19.41, "Q5_K_S": 18.88, "Q4_K_M": 16.65,
        "Q4_K_S": 15.74, "IQ4_XS": 14.81, "Q3_K_L": 14.52, "Q3_K_M": 13.42, "IQ3_M": 12.45, "Q3_K_S": 12.17,
        "IQ3_XS": 11.55, "IQ3_XXS": 10.75, "Q2_K": 10.45, "IQ2_M": 9.40}),
    # Phi-3.5-mini has Phi-3-mini-4k's tensor shapes (3072 x 32 layers, ffn 8192, vocab 32064): its fused
    # attn_qkv shows the legacy rule (Q5_K_M: 2.81 GB legacy vs 2.75 GB under today's attn_v rules).
    "bartowski_Phi-3.5-mini-instruct-GGUF.md": ("microsoft/Phi-3-mini-4k-instruct", "b3751", True, {
        "F32": 15.29, "Q8_0": 4.06, "Q6_K": 3.14, "Q5_K_M": 2.82, "Q5_K_S": 2.64, "Q4_K_M": 2.39, "Q4_K_S": 2.19,
        "Q4_0": 2.18, "Q3_K_L": 2.09, "IQ4_XS": 2.06, "Q3_K_M": 1.96, "IQ3_M": 1.86, "Q3_K_S": 1.68, "IQ3_XS": 1.63,
        "Q2_K": 1.42, "IQ2_M": 1.32}),
}

PUBLISHED: list[tuple[str, str, dict, float, str, str, str]] = [
    ("Qwen/Qwen2.5-72B-Instruct", "Q4_K_M", {}, 44.15, "GiB", "data",
     f"{PARSER}: bartowski/Qwen2.5-72B-Instruct-GGUF Qwen2.5-72B-Instruct-Q4_K_M.gguf"),
    ("meta-llama/Llama-3.3-70B-Instruct", "Q4_K_M", {}, 39.59, "GiB", "data",
     f"{PARSER}: Ollama library llama3.3 (--ol-model=llama3.3)"),
    ("meta-llama/Llama-3.3-70B-Instruct", "Q4_0", {"imatrix": True}, 37.35, "GiB", "data",
     f"{PARSER}: bartowski/openbuddy-llama3.3-70b-v24.1-131k-GGUF Q4_0, a Llama-3.3-70B fine-tune with its shapes "
     "(70.55 B parameters in the same output); bartowski quantizes with an imatrix"),
    ("Qwen/Qwen2.5-7B-Instruct", "Q4_K_M", {}, 4.36, "GiB", "data",
     f"{PARSER}: unsloth/DeepSeek-R1-Distill-Qwen-7B-GGUF Q4_K_M (Qwen2.5-7B shapes, 7.62 B parameters)"),
    ("Qwen/Qwen2.5-7B-Instruct", "F16", {}, 14.19, "GiB", "data",
     f"{PARSER}: unsloth/DeepSeek-R1-Distill-Qwen-7B-GGUF F16 via ModelScope (Qwen2.5-7B shapes)"),
    ("Qwen/Qwen2.5-7B-Instruct", "Q8_0", {}, 7.54, "GiB", "data",
     f"{PARSER}: Qwen/Qwen2.5-7B-Instruct-GGUF qwen2.5-7b-instruct-q8_0-00001-of-00003.gguf (3 parts together)"),
    ("Qwen/Qwen2.5-7B-Instruct", "Q3_K_M", {"imatrix": True}, 3.81, "GB", "file",
     "https://huggingface.co/bartowski/Qwen2.5-7B-Instruct-GGUF/blob/main/Qwen2.5-7B-Instruct-Q3_K_M.gguf "
     "('Size of remote file', docs corpus)"),
    ("Qwen/Qwen2.5-7B-Instruct", "Q3_K_S", {"imatrix": True}, 3.49, "GB", "file",
     "https://huggingface.co/bartowski/Qwen2.5-7B-Instruct-GGUF/blob/88516ae3e165331362c3102afe0232c65bb2a53e/"
     "Qwen2.5-7B-Instruct-Q3_K_S.gguf (docs corpus)"),
    ("Qwen/Qwen2.5-7B-Instruct", "Q5_K_M", {"imatrix": True}, 5.44, "GB", "file",
     "https://huggingface.co/bartowski/Qwen2.5-7B-Instruct-GGUF/blob/2fe4757ead3ef4074d22fb567ac4e0fcdc3990c9/"
     "Qwen2.5-7B-Instruct-Q5_K_M.gguf (docs corpus)"),
    ("Qwen/Qwen2.5-7B-Instruct", "Q3_K_M", {}, 3.55, "GiB", "file",
     "https://ai.gitee.com/hf-models/Qwen/Qwen2.5-7B-Instruct-GGUF/blob/main/qwen2.5-7b-instruct-q3_k_m.gguf "
     "(Gitee mirror of Qwen's own GGUF; its '3.55 GB' is GiB: bartowski's same-type file is 3.81 GB decimal)"),
    ("Qwen/Qwen2.5-7B-Instruct", "Q2_K", {}, 2.81, "GiB", "file",
     "https://ai.gitee.com/hf-models/Qwen/Qwen2.5-7B-Instruct-GGUF/blob/main/qwen2.5-7b-instruct-q2_k.gguf "
     "(Gitee mirror, '2.81 GB' read as GiB as above)"),
    ("Qwen/Qwen3-8B", "Q8_0", {}, 8_709_518_112 / 1e9, "GB", "file",
     "knowledge/checkpoints.yaml qwen3-8b-gguf-q80-qwen: Qwen/Qwen3-8B-GGUF Qwen3-8B-Q8_0.gguf, 8709518112 bytes"),
    ("openai/gpt-oss-20b", "Q8_0", {}, 22.3, "GB", "file",
     "https://huggingface.co/DevQuasar/openai.gpt-oss-20b-GGUF/blob/b6b9dc0911c05d82c8d6bf55e08bc6b249da4aed/"
     "openai.gpt-oss-20b.Q8_0.gguf (22.3 GB, three significant figures; docs corpus)"),
]
for card, (model, release, legacy, sizes) in BARTOWSKI.items():
    for ftype, gb in sizes.items():
        PUBLISHED.append((model, ftype, {"imatrix": True, "legacy": legacy}, gb, "GB", "file",
                          f"{CARDS}{card} (llama.cpp {release}, imatrix quants)"))

HEADER_MAX = 16e6  # metadata + tokenizer + tensor index of a file: ~0.7 MB (Mistral) to ~8 MB (Llama-3), with room


def _published_bytes(value: float, unit: str) -> float:
    return value * (GIB if unit == "GiB" else 1e9)


def _error(row) -> float:
    model, ftype, opts, value, unit, _, _ = row
    return gguf_bytes(arch_of(model), ftype, **opts) / _published_bytes(value, unit) - 1


def _row_id(row) -> str:
    model, ftype, opts, value, unit, kind, _ = row
    tag = "legacy" if opts.get("legacy") else "current"
    return f"{model.split('/')[1]}-{ftype}-{value}{unit}-{kind}-{tag}-err{100 * _error(row):+.2f}%"


@pytest.mark.parametrize("row", PUBLISHED, ids=[_row_id(r) for r in PUBLISHED])
def test_size_matches_published_gguf(row):
    model, ftype, opts, value, unit, kind, source = row
    published = _published_bytes(value, unit)
    ours = gguf_bytes(arch_of(model), ftype, **opts)
    if kind == "data":  # the tensor data itself: no header in the published number
        assert abs(ours - published) / published < 0.005, source
    else:  # a file = tensor data + a header of a few MB: within 0.5% once some header in [0, 16 MB] is added
        assert -0.005 * published <= published - ours <= 0.005 * published + HEADER_MAX, source


def test_the_two_gguf_parser_examples_to_the_hundredth_of_a_gib():
    assert round(gguf_bytes(arch_of("Qwen/Qwen2.5-72B-Instruct"), "Q4_K_M") / GIB, 2) == 44.15
    assert round(gguf_bytes(arch_of("meta-llama/Llama-3.3-70B-Instruct"), "Q4_K_M") / GIB, 2) == 39.59
    # gguf-parser's BPW column (5.22 and 4.82 bpw) is the same bytes over the parameter count
    assert round(gguf_bits_per_weight(arch_of("Qwen/Qwen2.5-72B-Instruct"), "Q4_K_M"), 2) == 5.22
    assert round(gguf_bits_per_weight(arch_of("meta-llama/Llama-3.3-70B-Instruct"), "Q4_K_M"), 2) == 4.82


def test_imatrix_and_legacy_options_are_what_match_the_files():
    qwen72 = arch_of("Qwen/Qwen2.5-72B-Instruct")
    # with an imatrix llama.cpp keeps IQ4_XS ffn_down in the first 1/8 of layers; without, it takes Q5_K
    assert abs(gguf_bytes(qwen72, "IQ4_XS", imatrix=True) / 39.71e9 - 1) < 0.001
    assert gguf_bytes(qwen72, "IQ4_XS") / 39.71e9 - 1 > 0.01
    # Phi-3's fused attn_qkv: Q5_K in every layer under the 2024 rules, attn_v rules today
    phi = arch_of("microsoft/Phi-3-mini-4k-instruct")
    assert abs(gguf_bytes(phi, "Q5_K_M", imatrix=True, legacy=True) / 2.82e9 - 1) < 0.005
    assert gguf_bytes(phi, "Q5_K_M", imatrix=True) / 2.82e9 - 1 < -0.02


# --------------------------------------------------------------------------- llama.cpp's rules, tensor by tensor
def by_name(rows, name):
    return [r for r in rows if r.name == name]


def test_qwen25_72b_ffn_down_falls_back_because_29568_is_not_a_multiple_of_256():
    rows = tensor_types(arch_of("Qwen/Qwen2.5-72B-Instruct"), "Q4_K_M")
    down = by_name(rows, "ffn_down.weight")
    assert {(r.ggml_type, r.fallback_from) for r in down} == {("Q8_0", "Q6_K"), ("Q5_0", "Q4_K")}
    assert all(r.cols == 29568 and r.rows == 8192 for r in down)
    assert sum(r.copies for r in down) == 80
    more_bits = next(r for r in down if r.fallback_from == "Q6_K")
    assert more_bits.layers[:12] == (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15)  # use_more_bits: first 1/8, then every 3rd
    assert more_bits.layers[-10:] == tuple(range(70, 80))  # last 1/8
    # gate/up have 8192 columns: no fallback; the 70B rule lifts the other attn_v layers from Q4_K to Q5_K
    assert {r.ggml_type for r in by_name(rows, "ffn_gate.weight")} == {"Q4_K"}
    assert {r.ggml_type for r in by_name(rows, "attn_v.weight")} == {"Q6_K", "Q5_K"}


def test_llama_8b_q4_k_m_mix():
    rows = tensor_types(arch_of("meta-llama/Llama-3.1-8B-Instruct"), "Q4_K_M")
    assert by_name(rows, "output.weight")[0].ggml_type == "Q6_K"
    assert by_name(rows, "token_embd.weight")[0].ggml_type == "Q4_K"  # untied: the embedding keeps the default
    v = {r.ggml_type: r.layers for r in by_name(rows, "attn_v.weight")}
    assert set(v) == {"Q6_K", "Q4_K"}  # not a 70B: no Q5_K lift
    assert v["Q6_K"] == (0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31)
    assert {r.ggml_type for r in by_name(rows, "attn_norm.weight")} == {"F32"}  # 1-D tensors stay F32
    assert {r.ggml_type for r in by_name(rows, "attn_q.weight")} == {"Q4_K"}


def test_tied_embeddings_take_the_output_rule():
    rows = tensor_types(arch_of("meta-llama/Llama-3.2-1B-Instruct"), "Q4_K_M")
    assert not by_name(rows, "output.weight")
    assert by_name(rows, "token_embd.weight")[0].ggml_type == "Q6_K"
    gemma = tensor_types(arch_of("google/gemma-2-9b-it"), "IQ2_M")
    assert by_name(gemma, "token_embd.weight")[0].ggml_type == "Q5_K"  # the output rule for IQ2 types


def test_q8_0_and_q6_k_keep_their_type_for_the_output():
    llama = arch_of("meta-llama/Llama-3.1-8B-Instruct")
    assert {r.ggml_type for r in tensor_types(llama, "Q8_0") if r.rows > 1} == {"Q8_0"}
    assert {r.ggml_type for r in tensor_types(llama, "Q6_K") if r.rows > 1} == {"Q6_K"}
    assert by_name(tensor_types(llama, "Q4_0"), "output.weight")[0].ggml_type == "Q6_K"


def test_imatrix_q4_0_uses_q4_1_for_the_first_eighth_of_ffn_down():
    rows = tensor_types(arch_of("meta-llama/Llama-3.1-8B-Instruct"), "Q4_0", imatrix=True)
    assert {r.ggml_type: r.layers for r in by_name(rows, "ffn_down.weight")}["Q4_1"] == (0, 1, 2, 3)
    assert {r.ggml_type for r in by_name(tensor_types(arch_of("meta-llama/Llama-3.1-8B-Instruct"), "Q4_0"),
                                         "ffn_down.weight")} == {"Q4_0"}


def test_eight_expert_model_rules():
    rows = tensor_types(arch_of("mistralai/Mixtral-8x7B-Instruct-v0.1"), "Q4_K_M")
    assert {r.ggml_type for r in by_name(rows, "attn_v.weight")} == {"Q8_0"}
    assert {r.ggml_type for r in by_name(rows, "attn_k.weight")} == {"Q8_0"}
    assert {r.ggml_type for r in by_name(rows, "attn_output.weight")} == {"Q5_K"}
    exps = by_name(rows, "ffn_down_exps.weight")
    assert {r.experts for r in exps} == {8} and sum(r.copies for r in exps) == 32
    assert {r.ggml_type for r in by_name(rows, "ffn_gate_inp.weight")} == {"F32"}  # the router is never quantized


def test_moe_ffn_down_layer_comes_from_the_tensor_name():
    rows = tensor_types(arch_of("Qwen/Qwen3-30B-A3B"), "Q4_K_M")
    down = {r.ggml_type: r.layers for r in by_name(rows, "ffn_down_exps.weight")}
    assert down["Q6_K"][:7] == (0, 1, 2, 3, 4, 5, 8)  # 48 layers: first 6, then every 3rd from layer 8
    assert {r.experts for r in by_name(rows, "ffn_gate_exps.weight")} == {128}


def test_deepseek_mla_split_k_b_falls_back_on_its_128_columns():
    rows = tensor_types(arch_of("deepseek-ai/DeepSeek-V3"), "Q4_K_M")
    (k_b,) = by_name(rows, "attn_k_b.weight")
    assert (k_b.cols, k_b.rows, k_b.experts, k_b.ggml_type, k_b.fallback_from) == (128, 512, 128, "Q5_0", "Q4_K")
    assert sum(r.copies for r in by_name(rows, "ffn_down.weight")) == 3  # first_k_dense_replace = 3
    assert sum(r.copies for r in by_name(rows, "ffn_down_shexp.weight")) == 58


def test_mxfp4_moe_puts_experts_in_mxfp4_and_the_rest_in_q8_0():
    rows = tensor_types(arch_of("openai/gpt-oss-120b"), "MXFP4_MOE")
    types = {r.name: r.ggml_type for r in rows}
    assert types["ffn_gate_exps.weight"] == types["ffn_down_exps.weight"] == "MXFP4"
    assert types["attn_q.weight"] == types["output.weight"] == types["token_embd.weight"] == "Q8_0"
    assert types["attn_sinks.weight"] == types["ffn_gate_exps.bias"] == "F32"


GGUF_MODELS = [m for m in K.models if arch_of(m).model_type in GGUF_ARCH]  # families with a GGUF layout here


def test_every_catalog_family_of_the_brief_has_a_layout():
    assert {arch_of(m).model_type for m in GGUF_MODELS} >= {"llama", "mistral", "qwen2", "qwen3", "qwen3_moe",
                                                           "gemma2", "gemma3_text", "phi3", "mixtral", "deepseek_v3",
                                                           "gpt_oss"}


@pytest.mark.parametrize("model_id", GGUF_MODELS)
def test_layout_holds_every_parameter_of_the_inventory(model_id):
    """Every text-model parameter; a vision tower goes in llama.cpp's separate mmproj file, not the model GGUF."""
    arch = arch_of(model_id)
    rows = tensor_types(arch, "Q4_K_M")
    assert sum(r.elements for r in rows) == sum(t.params for t in tensor_inventory(arch) if t.group != "vision")
    assert gguf_bytes(arch, "Q4_K_M", padded=False) == sum(r.bytes for r in rows)
    assert gguf_bytes(arch, "F16") > gguf_bytes(arch, "Q8_0") > gguf_bytes(arch, "Q4_K_M") > gguf_bytes(arch, "Q2_K")


def test_unsupported_family_is_an_input_error():
    arch = architecture_from_config({"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12,
                                     "vocab_size": 50257})
    with pytest.raises(AdvisorInputError) as err:
        tensor_types(arch, "Q4_K_M")
    assert "llama" in err.value.choices


# --------------------------------------------------------------------------- reading .gguf files
TINY = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 256, "intermediate_size": 640,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 384, "tie_word_embeddings": False,
        "max_position_embeddings": 2048}


def write_gguf(path, rows, *, arch="llama", file_type=15, extra=None, tokens=384):
    """A GGUF with the tensors of ``rows`` (TensorType list), zero data, llama-style metadata."""
    w = GGUFWriter(str(path), arch)
    w.add_block_count(TINY["num_hidden_layers"])
    w.add_context_length(TINY["max_position_embeddings"])
    w.add_embedding_length(TINY["hidden_size"])
    w.add_feed_forward_length(TINY["intermediate_size"])
    w.add_head_count(TINY["num_attention_heads"])
    w.add_head_count_kv(TINY["num_key_value_heads"])
    w.add_file_type(file_type)
    w.add_name("tiny-llama")
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(tokens)])
    for key, value in (extra or {}).items():
        w.add_uint16(key, value)
    for r in rows:
        for layer in r.layers or (None,):
            name = r.name if layer is None else f"blk.{layer}.{r.name}"
            if r.ggml_type == "F32":
                w.add_tensor(name, np.zeros((r.rows, r.cols) if r.rows > 1 else (r.cols,), dtype=np.float32))
            else:
                block, size = GGML_TYPES[r.ggml_type]
                data = np.zeros((r.rows, r.cols // block * size), dtype=np.uint8)
                w.add_tensor(name, data, raw_dtype=GGMLQuantizationType[r.ggml_type])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture
def tiny(tmp_path):
    arch = architecture_from_config(TINY)
    rows = tensor_types(arch, "Q4_K_M")
    path = tmp_path / "tiny-Q4_K_M.gguf"
    write_gguf(path, rows)
    return path, arch, rows


def test_read_gguf_round_trip(tiny):
    path, arch, rows = tiny
    info = read_gguf(path)
    assert info.architecture == "llama" and info.model_type == "llama" and info.name == "tiny-llama"
    assert info.file_type == "Q4_K_M"
    assert info.config["vocab_size"] == 384 and info.config["tie_word_embeddings"] is False
    assert architecture_from_config(info.config) == arch
    assert info.tensor_bytes == gguf_bytes(arch, "Q4_K_M", padded=False)
    assert info.data_bytes == gguf_bytes(arch, "Q4_K_M")
    assert info.file_size == os.path.getsize(path) and info.complete
    assert info.parameters == sum(t.params for t in tensor_inventory(arch))
    types = {t.name: (t.ggml_type, t.shape, t.bytes) for t in info.tensors}
    assert types["output.weight"] == ("Q6_K", (256, 384), 384 * 210)
    assert types["token_embd.weight"][0] == "Q4_K"
    assert types["blk.0.attn_v.weight"][0] == "Q4_K" and types["blk.1.attn_v.weight"][0] == "Q6_K"
    # 640 columns are not a multiple of 256: ffn_down falls back (Q4_K -> Q5_0, Q6_K -> Q8_0)
    assert types["blk.0.ffn_down.weight"] == ("Q5_0", (640, 256), 256 * 20 * 22)
    assert types["blk.1.ffn_down.weight"][0] == "Q8_0"
    assert types["blk.0.attn_norm.weight"] == ("F32", (256,), 1024)


def test_read_gguf_tied_and_vocab_from_tokens(tmp_path):
    arch = architecture_from_config({**TINY, "tie_word_embeddings": True})
    rows = [r for r in tensor_types(arch, "Q8_0") if r.name != "token_embd.weight"]
    path = tmp_path / "tied.gguf"
    write_gguf(path, rows, file_type=7, tokens=300)
    info = read_gguf(path)
    assert info.config["tie_word_embeddings"] is True and info.config["vocab_size"] == 300
    assert info.file_type == "Q8_0"


def test_truncated_file_is_an_input_error(tiny, tmp_path):
    path, _, _ = tiny
    data = path.read_bytes()
    for cut in (len(data) // 2, 2000, 30, 3, 0):
        bad = tmp_path / f"cut{cut}.gguf"
        bad.write_bytes(data[:cut])
        with pytest.raises(AdvisorInputError):
            read_gguf(bad)


def test_garbage_is_an_input_error(tmp_path):
    rng = np.random.default_rng(0)
    cases = {
        "random.gguf": rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "magic-only.gguf": b"GGUF" + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "huge-count.gguf": b"GGUF" + struct.pack("<IQQ", 3, 2**40, 0) + bytes(100),
        "many-tensors.gguf": b"GGUF" + struct.pack("<IQQ", 3, 100_001, 0) + bytes(100),
        "huge-kv.gguf": b"GGUF" + struct.pack("<IQQ", 3, 0, 2**50) + bytes(100),
        "huge-array.gguf": b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k"
        + struct.pack("<IIQ", 9, 8, 2**60) + bytes(100),
        "version-9.gguf": b"GGUF" + struct.pack("<IQQ", 9, 0, 0),
        "text.gguf": b"this is not a model\n" * 50,
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(AdvisorInputError):
            read_gguf(path)
    with pytest.raises(AdvisorInputError) as err:
        read_gguf(tmp_path / "missing.gguf")
    assert err.value.field == "gguf"
    many = read_error(tmp_path / "many-tensors.gguf")
    assert "100001 tensors" in many


def read_error(path) -> str:
    with pytest.raises(AdvisorInputError) as err:
        read_gguf(path)
    return str(err.value)


def test_unsupported_architecture_lists_the_supported_ones(tmp_path):
    path = tmp_path / "bert.gguf"
    write_gguf(path, [], arch="bert")
    with pytest.raises(AdvisorInputError) as err:
        read_gguf(path)
    assert "llama" in err.value.choices and "qwen2" in err.value.choices


def test_split_gguf(tiny, tmp_path):
    _, arch, rows = tiny
    head = [r for r in rows if not r.layers]
    layers = [r for r in rows if r.layers]
    folder = tmp_path / "split"
    folder.mkdir()
    first = folder / "tiny-Q4_K_M-00001-of-00002.gguf"
    second = folder / "tiny-Q4_K_M-00002-of-00002.gguf"
    write_gguf(first, head, extra={"split.no": 0, "split.count": 2})
    write_gguf(second, layers, extra={"split.no": 1, "split.count": 2})
    info = read_gguf(first)
    assert info.complete and info.split_count == 2 and len(info.parts_read) == 2
    assert info.tensor_bytes == gguf_bytes(arch, "Q4_K_M", padded=False)
    assert info.file_size == first.stat().st_size + second.stat().st_size
    assert "part 2" in read_error(second)
    second.unlink()
    partial = read_gguf(first)
    assert not partial.complete and partial.missing_parts == (second.name,)
    assert "not found" in partial.notes[0]
    assert partial.tensor_bytes == sum(r.bytes for r in head)


# ---------------------------------------------------------------- a .gguf file as the model
def test_a_gguf_file_is_planned_as_published_with_llama_cpp(tiny):
    from advisor.intake.catalog import resolve_model
    from advisor.intake.request import Endpoint, Request
    from advisor.plan import document as plan

    path, arch, _ = tiny
    k = load_knowledge()
    model = resolve_model(k, str(path))
    assert model.architecture == arch and model.native.scheme == "gguf-q4_k_m"
    assert model.native.candidates == ("native-gguf",) and model.native.checkpoint_bytes == read_gguf(path).tensor_bytes
    document = plan.build(Request(model=str(path), gpu="rtx-3060-12gb", endpoints=[Endpoint(concurrency=1)]), k)
    e = document["endpoints"][0]
    assert e["recommendation"]["candidate"] == "native-gguf"
    assert e["runtime"]["serve_command"].startswith(f"llama-server -m {path}")
    assert e["runtime"]["quantization"]["needed"] is False
    assert document["model"]["checkpoint"]["method"] == "gguf"
    # every other precision would re-quantize the file
    rejected = {c for r in e["rejected"] for c in r["candidate"].split(", ")}
    assert "gguf-q8_0" in rejected and "fp8-w8a8" in rejected

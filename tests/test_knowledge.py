"""The knowledge tables: every row loads, has a source, names only ids that exist, and uses sane units."""

import re
import shutil
from pathlib import Path

import pytest
import yaml

from advisor.knowledge import KNOWLEDGE_DIR, load_knowledge, load_knowledge_from
from advisor.knowledge.schema import MODULE_GROUPS, TABLES, KnowledgeError
from advisor.physics.architecture import architecture_from_config

K = load_knowledge()

REQUIRED_IDS = {
    "formats": "int4 int8 fp4 fp6 fp8 fp16 bf16 fp32 nvfp4 mxfp4 mxfp6 mxfp8 int3 int2",
    "methods": "awq gptq smoothquant fp8-dynamic fp8-static rtn gguf-kquants exl2 exl3 bitsandbytes nvfp4 mxfp4 w4a8-awq",
    "schemes": "bf16 fp16 fp32 fp8 int8 int4-awq int4-gptq nvfp4 mxfp4 mxfp6 gguf-q8_0 gguf-q6_k gguf-q5_k_m "
    "gguf-q4_k_m gguf-q3_k_m gguf-q2_k native",
    "kv_formats": "bf16 fp16 fp8 int8 int4 nvfp4 q8_0 q4_0",
    "gpus": "h100-sxm h100-pcie h200 b200 gb200 a100-80gb a100-40gb l40s l4 a10g rtx-4090 rtx-3090 rtx-5090 "
    "rtx-a6000 rtx-6000-ada mi300x mi325x t4 v100",
    "runtimes": "vllm sglang tensorrt-llm llama.cpp tgi transformers exllamav2",
    "workloads": "interactive-chat customer-support reasoning-critical code-generation agent-tool-calling "
    "long-context-rag batch-summarization classification",
}

MODELS_MD_SECTION_1 = [
    "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Llama-3.1-70B-Instruct",
    "meta-llama/Llama-3.3-70B-Instruct",
    "meta-llama/Llama-3.1-405B-Instruct",
    "meta-llama/Llama-3.2-1B-Instruct",
    "meta-llama/Llama-3.2-3B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
    "Qwen/Qwen2.5-7B-Instruct",
    "Qwen/Qwen2.5-14B-Instruct",
    "Qwen/Qwen2.5-32B-Instruct",
    "Qwen/Qwen2.5-72B-Instruct",
    "Qwen/Qwen3-8B",
    "Qwen/Qwen3-32B",
    "google/gemma-2-9b-it",
    "google/gemma-2-27b-it",
    "google/gemma-3-27b-it",
    "microsoft/Phi-3-mini-4k-instruct",
    "microsoft/phi-4",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "mistralai/Mixtral-8x22B-Instruct-v0.1",
    "Qwen/Qwen3-30B-A3B",
    "Qwen/Qwen3-235B-A22B",
    "deepseek-ai/DeepSeek-V3",
    "openai/gpt-oss-120b",
    "openai/gpt-oss-20b",
]


def all_rows():
    for table in TABLES:
        for row in getattr(K, table).values():
            yield pytest.param(table, row, id=f"{table}:{row.id}")
    for row in K.calibration:
        yield pytest.param("calibration", row, id=f"calibration:{row.id}")


@pytest.mark.parametrize(("table", "row"), list(all_rows()))
def test_every_row_has_a_source(table, row):
    assert row.sources, f"{table}.{row.id} has no source"
    assert all(len(s.strip()) >= 5 for s in row.sources), f"{table}.{row.id}: source too vague: {row.sources}"


@pytest.mark.parametrize("table", list(REQUIRED_IDS))
def test_required_ids_present(table):
    missing = set(REQUIRED_IDS[table].split()) - set(getattr(K, table))
    assert not missing, f"{table} lacks {sorted(missing)}"


def test_catalog_has_every_model_of_the_reference():
    assert set(MODELS_MD_SECTION_1) <= set(K.models)


def test_seed_quantization_levels_map_to_plan_formats():
    # seed 002 lists INT4 INT8 FP4 FP6 FP8 FP16 BF16 FP32 as the provider-facing levels.
    plan_formats = {f.plan_format for f in K.formats.values()}
    assert {"int4", "int8", "fp4", "fp6", "fp8", "fp16", "bf16", "fp32"} <= plan_formats


def test_fp8_lists_its_variants():
    variants = {v.id for v in K.formats["fp8"].variants}
    assert {"e4m3fn", "e5m2", "e4m3fnuz"} <= variants
    e4m3 = next(v for v in K.formats["fp8"].variants if v.id == "e4m3fn")
    assert (e4m3.exponent_bits, e4m3.mantissa_bits, e4m3.max_finite) == (4, 3, 448)


@pytest.mark.parametrize("gpu", list(K.gpus.values()), ids=list(K.gpus))
def test_gpu_units_are_plausible(gpu):
    assert 8 <= gpu.memory_gib <= 300, "memory_gib is GiB, not bytes or MiB"
    assert 0.1 <= gpu.memory_bandwidth_tbps <= 12, "bandwidth is TB/s"
    t = gpu.dense_tflops
    sixteen = t.bf16 or t.fp16
    assert sixteen and 10 <= sixteen <= 5000, "dense 16-bit TFLOPS"
    if t.fp8:
        assert t.fp8 >= sixteen * 0.99, "FP8 dense should not be slower than 16-bit"
        assert "fp8" in gpu.native_formats
    if t.fp4:
        assert "fp4" in gpu.native_formats or "nvfp4" in gpu.native_formats
    assert set(gpu.unverified) <= set(type(gpu).model_fields), f"unverified names unknown fields {gpu.unverified}"


@pytest.mark.parametrize("gpu", list(K.gpus.values()), ids=list(K.gpus))
def test_gpu_capacity_agrees_with_its_label(gpu):
    # Vendors' "80 GB" is binary-sized memory; drivers report a little less (ECC, reserved).
    labelled = float(re.match(r"\s*([\d.]+)\s*GB", gpu.memory_label).group(1))
    assert 0.9 <= gpu.memory_gib / labelled <= 1.0001, (gpu.memory_gib, gpu.memory_label)


def test_bf16_gates_follow_the_hardware():
    assert not K.gpus["t4"].supports_bf16 and not K.gpus["v100"].supports_bf16
    assert K.gpus["a100-80gb"].supports_bf16
    assert "fp8" not in K.gpus["a100-80gb"].native_formats  # Ampere: FP8 runs as W8A16 via Marlin
    assert "fp8" in K.gpus["l40s"].native_formats and "fp8" in K.gpus["h100-sxm"].native_formats
    assert "nvfp4" in K.gpus["b200"].native_formats and "nvfp4" not in K.gpus["h100-sxm"].native_formats
    assert K.gpus["mi300x"].fp8_variant == "e4m3fnuz"


@pytest.mark.parametrize("model", list(K.models.values()), ids=list(K.models))
def test_every_catalog_model_parses(model):
    arch = architecture_from_config(model.config, where=model.id)
    assert arch.num_layers == len(arch.layer_windows)
    assert not arch.notes or all("not counted" in n for n in arch.notes), arch.notes


@pytest.mark.parametrize("scheme", [s for s in K.schemes.values() if not s.model_native], ids=lambda s: s.id)
def test_scheme_groups_are_module_groups(scheme):
    assert set(scheme.quantized_groups) <= set(MODULE_GROUPS)
    assert K.formats[scheme.format].bits <= 32


@pytest.mark.parametrize("runtime", list(K.runtimes.values()), ids=list(K.runtimes))
def test_runtime_overhead_constants_are_gib_scale(runtime):
    m = runtime.memory
    assert 0 <= m.non_torch_gib_single <= m.non_torch_gib_multi <= 4
    if m.activation.kind == "constant":
        assert {"dense", "moe"} <= set(m.activation.gib_by_class)
        assert all(0 <= v < 32 for v in m.activation.gib_by_class.values())


@pytest.mark.parametrize("workload", list(K.workloads.values()), ids=list(K.workloads))
def test_workload_shapes(workload):
    assert workload.prompt_tokens + workload.output_tokens <= 1_000_000
    assert workload.quality_probes


# ---------------------------------------------------------------- the loader refuses broken tables
@pytest.fixture
def knowledge_copy(tmp_path: Path) -> Path:
    target = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, target)
    return target


def _edit(path: Path, mutate) -> None:
    data = yaml.safe_load(path.read_text())
    mutate(data["rows"])
    path.write_text(yaml.safe_dump(data))


def test_loader_rejects_a_row_without_source(knowledge_copy):
    _edit(knowledge_copy / "gpus.yaml", lambda rows: rows[0].update(source=""))
    with pytest.raises(KnowledgeError, match="gpus.yaml row h100-sxm"):
        load_knowledge_from(knowledge_copy)


def test_loader_rejects_an_unknown_reference(knowledge_copy):
    _edit(knowledge_copy / "schemes.yaml", lambda rows: rows[-1].update(method="no-such-method"))
    with pytest.raises(KnowledgeError, match="no-such-method"):
        load_knowledge_from(knowledge_copy)


def test_loader_rejects_duplicate_ids(knowledge_copy):
    _edit(knowledge_copy / "kv_formats.yaml", lambda rows: rows.append(dict(rows[0])))
    with pytest.raises(KnowledgeError, match="duplicate id 'bf16'"):
        load_knowledge_from(knowledge_copy)


def test_loader_rejects_unknown_fields(knowledge_copy):
    _edit(knowledge_copy / "formats.yaml", lambda rows: rows[0].update(colour="blue"))
    with pytest.raises(KnowledgeError, match="colour"):
        load_knowledge_from(knowledge_copy)


def test_adding_a_gpu_is_a_yaml_edit(knowledge_copy):
    def add(rows):
        new = dict(rows[0])
        new.update(id="h100-nvl-test", name="H100 NVL (test row)", memory_gib=93.0)
        rows.append(new)

    _edit(knowledge_copy / "gpus.yaml", add)
    assert load_knowledge_from(knowledge_copy).gpus["h100-nvl-test"].memory_gib == 93.0


def test_loader_reports_malformed_yaml_by_file(knowledge_copy):
    (knowledge_copy / "gpus.yaml").write_text("rows:\n  - id: [unclosed\n")
    with pytest.raises(KnowledgeError, match="gpus.yaml: not valid YAML"):
        load_knowledge_from(knowledge_copy)

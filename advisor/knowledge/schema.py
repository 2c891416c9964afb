"""The schemas of the knowledge tables: one frozen pydantic model per YAML file in ``knowledge/``.

Every row carries a ``source``. Tables are data, not code: adding a GPU, a model or a
scheme is a YAML edit; :mod:`advisor.knowledge.loader` validates them against these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Module groups a decoder's parameters fall into. Schemes say which groups they quantize.
ModuleGroup = Literal["embedding", "attention", "mlp", "experts", "router", "norms", "lm_head", "vision"]
MODULE_GROUPS: tuple[str, ...] = ModuleGroup.__args__  # type: ignore[attr-defined]

# Values the deployment plan uses for a precision (issue 3 "format" values).
PlanFormat = Literal["fp32", "bf16", "fp16", "fp8", "int8", "int4", "int3", "int2", "fp6", "fp4"]


class KnowledgeError(ValueError):
    """A knowledge table is malformed or refers to an id that does not exist."""


class Row(BaseModel):
    """Base of every table row: frozen, no unknown keys, a non-empty source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    source: str | list[str]

    @field_validator("source")
    @classmethod
    def _source_not_empty(cls, value: str | list[str]) -> str | list[str]:
        items = [value] if isinstance(value, str) else value
        if not items or any(not str(item).strip() for item in items):
            raise ValueError("every row needs a non-empty source")
        return value

    @property
    def sources(self) -> list[str]:
        return [self.source] if isinstance(self.source, str) else list(self.source)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- formats
class FP8Variant(Frozen):
    id: str  # e4m3fn, e5m2, e4m3fnuz, e5m2fnuz
    exponent_bits: int
    mantissa_bits: int
    max_finite: float
    used_by: str
    source: str | list[str]


class NumericFormat(Row):
    name: str
    family: Literal["integer", "float", "block-float"]
    bits: int = Field(gt=0, le=32)  # bits of one element, scales excluded
    plan_format: PlanFormat
    block_size: int | None = None  # elements sharing one scale (block formats)
    scale_format: str | None = None  # e.g. "e4m3" for NVFP4, "e8m0" for MX
    variants: tuple[FP8Variant, ...] = ()
    notes: str = ""


# --------------------------------------------------------------------------- methods
class Calibration(Frozen):
    needs_data: bool
    typical_samples: str | None = None
    notes: str = ""


class Method(Row):
    name: str
    kind: Literal["weight-only", "weight-activation", "packaging", "online", "kv-cache"]
    quantizes: tuple[Literal["weights", "activations", "kv_cache"], ...]
    formats: tuple[str, ...]  # numeric format ids
    calibration: Calibration
    runtimes: tuple[str, ...]  # runtime ids that serve its checkpoints
    notes: str = ""


# --------------------------------------------------------------------------- weight schemes
class Scaling(Frozen):
    """How a quantized tensor stores its scales.

    granularity:
      tensor   one scale per tensor
      channel  one scale (and zero point) per output channel
      group    one per ``group_size`` consecutive input elements of each output channel
      block    one per ``block_rows x block_cols`` tile
      file-average  GGUF k-quant mixes: ``element_bits`` is already the whole-file average
    """

    granularity: Literal["tensor", "channel", "group", "block", "file-average"]
    group_size: int | None = None
    block_rows: int | None = None
    block_cols: int | None = None
    scale_bits: int = 0
    zero_point_bits: int = 0
    tensor_scale_bits: int = 0  # an extra per-tensor scale (NVFP4's FP32 global scale)
    allowed_group_sizes: tuple[int, ...] = ()  # non-empty: --group-size may override; -1 = channel


class WeightScheme(Row):
    name: str
    model_native: bool = False  # True only for `native`: resolved through the model's own layout
    format: str | None = None  # numeric format id of the quantized elements
    method: str | None = None  # default method id
    element_bits: float | None = Field(default=None, gt=0, le=32)
    scaling: Scaling | None = None  # None: plain dense storage, no scales
    quantized_groups: tuple[ModuleGroup, ...]
    group_overrides: dict[ModuleGroup, str] = {}  # group -> another scheme's storage (EXL2's 6-bit head)
    high_precision_format: str = "bf16"  # format of matrices in groups not quantized
    vector_bits: int = 16  # biases, norm scales, sinks: never quantized
    keeps_note: str = ""  # why the high-precision groups stay high precision
    notes: str = ""

    @model_validator(mode="after")
    def _layout_complete(self) -> WeightScheme:
        if not self.model_native and (self.format is None or self.element_bits is None):
            raise ValueError("a storage scheme needs `format` and `element_bits`")
        return self

    @property
    def group_size_overridable(self) -> bool:
        return bool(self.scaling and self.scaling.allowed_group_sizes)


# --------------------------------------------------------------------------- KV cache
class KVFormat(Row):
    name: str
    format: str  # numeric format id
    element_bits: float
    block_size: int | None = None  # elements per block scale (llama.cpp q8_0/q4_0, NVFP4)
    block_scale_bits: int = 0
    scale_bytes_per_token_head: float = 0  # one scale per cached vector (token x head, K or V)
    runtime_flags: dict[str, str] = {}  # runtime id -> value to pass
    requires_native: str | None = None  # a numeric format the GPU must run natively (nvfp4 -> Blackwell)
    quality_risk: int = Field(0, ge=0, le=4)  # 0 none .. 4 high, on typical context lengths
    granularity: str = "per-tensor"
    notes: str = ""

    def bytes_per_vector(self, dim: int) -> float:
        """Bytes one cached vector (one token, one KV head, K or V) of ``dim`` elements takes."""
        value = dim * self.element_bits / 8
        if self.block_size:
            value += -(-dim // self.block_size) * self.block_scale_bits / 8
        return value + self.scale_bytes_per_token_head

    def bytes_per_element(self, dim: int) -> float:
        return self.bytes_per_vector(dim) / dim


# --------------------------------------------------------------------------- GPUs
class DenseThroughput(Frozen):
    """Dense (no 2:4 sparsity) peak tensor throughput, TFLOPS or TOPS."""

    fp16: float | None = None
    bf16: float | None = None
    fp8: float | None = None
    int8: float | None = None
    fp4: float | None = None
    int4: float | None = None


class GPU(Row):
    name: str
    vendor: Literal["nvidia", "amd"]
    architecture: str  # Volta, Turing, Ampere, Ada, Hopper, Blackwell, CDNA3
    compute_capability: str | None = None  # NVIDIA, e.g. "9.0"
    amd_arch: str | None = None  # AMD, e.g. "gfx942"
    memory_gib: float = Field(gt=0)  # what nvidia-smi / rocm-smi report as total, GiB (2^30)
    # what CUDA / HIP report as total to the runtime (torch.cuda.mem_get_info, vLLM's "total memory"), GiB, where a
    # server log shows it: the driver keeps some memory back (ECC, page retirement). None: memory_gib less
    # decision.yaml driver-reserved-fraction.
    visible_gib: float | None = Field(None, gt=0)
    memory_label: str  # as the vendor publishes it, e.g. "80 GB HBM3"
    sm_count: int | None = Field(None, gt=0)  # streaming multiprocessors / compute units
    memory_bandwidth_tbps: float = Field(gt=0)  # TB/s, decimal, as published
    dense_tflops: DenseThroughput
    native_formats: tuple[str, ...]  # numeric format ids the tensor cores run natively
    fp8_variant: str | None = None  # e4m3fn (OCP) or e4m3fnuz (AMD CDNA3)
    interconnect_gbps: float | None = None  # per-GPU link bandwidth, GB/s
    # per-GPU bandwidth between nodes (the GPU's own NIC), GB/s; None: decision.yaml internode-gbps-per-gpu
    internode_gbps: float | None = Field(None, gt=0)
    matmul_efficiency: float = Field(gt=0, le=1)  # best BF16 matmul / peak (MAMF); in `unverified` if typical
    unverified: tuple[str, ...] = ()  # field names whose figures are not from a primary source
    notes: str = ""

    @property
    def hbm(self) -> bool:
        """High-bandwidth memory (data-centre parts) rather than GDDR, from the memory label."""
        return "HBM" in self.memory_label.upper()

    @property
    def supports_bf16(self) -> bool:
        return "bf16" in self.native_formats

    @property
    def memory_bytes(self) -> int:
        return int(round(self.memory_gib * 2**30))

    def visible_bytes(self, reserved_fraction: float) -> int:
        """Bytes a runtime sees as the GPU's total: ``visible_gib`` where logged, else ``memory_gib`` less
        ``reserved_fraction`` of it (decision.yaml driver-reserved-fraction)."""
        if self.visible_gib is not None:
            return int(round(self.visible_gib * 2**30))
        return int(round(self.memory_gib * (1 - reserved_fraction) * 2**30))

    @property
    def cc_value(self) -> float | None:
        return float(self.compute_capability) if self.compute_capability else None


# --------------------------------------------------------------------------- models
class NativeLayout(Frozen):
    """The model's own published checkpoint: a base scheme plus per-group overrides.

    For a checkpoint published quantized, `candidates` names the candidates that serve it as it is (knowledge/
    candidates.yaml, ``only_for_native``), `group_size` the group size it was quantized with, `ignore` the modules
    its quantization config leaves in 16 bits, `kv_cache` the KV-cache format its config carries scales for, and
    `checkpoint_bytes` the exact tensor bytes read from its safetensors headers (None: computed from the layout).
    """

    scheme: str
    overrides: dict[ModuleGroup, str] = {}
    notes: str = ""
    candidates: tuple[str, ...] = ()  # e.g. an FP8 W8A8 checkpoint: W8A8 where FP8 runs natively, else W8A16
    method: str | None = None  # the quantization_config's quant_method (awq, gptq, compressed-tensors, ...)
    group_size: int | None = None
    ignore: tuple[str, ...] = ()
    kv_cache: str | None = None
    details: tuple[str, ...] = ()  # what was read: bits, group size, act-order, symmetric, strategies
    checkpoint_bytes: int | None = Field(default=None, ge=0)
    bytes_source: str = ""

    @property
    def quantized(self) -> bool:
        return bool(self.overrides) or self.scheme not in ("bf16", "fp16", "fp32")


class PublishedCounts(Frozen):
    params_total: int | None = None
    params_active: int | None = None
    exact: bool = False  # False: the published figure is rounded (e.g. "671B")
    active_excludes_embedding: bool = False
    source: str | list[str]


class ModelEntry(Row):
    name: str
    aliases: tuple[str, ...] = ()
    config: dict[str, Any]  # Hugging Face config.json fields
    native: NativeLayout
    published: PublishedCounts | None = None
    notes: str = ""


# --------------------------------------------------------------------------- runtimes
class BatchDefault(Frozen):
    """A runtime's default batch limits on GPUs of at least ``min_gib`` (vLLM get_batch_defaults, SGLang
    handle_gpu_memory_settings): tokens one prefill pass may hold and sequences in flight."""

    min_gib: float = Field(ge=0)
    unless_name: tuple[str, ...] = ()  # lower-case GPU name fragments this tier skips (vLLM: a100)
    max_num_batched_tokens: int = Field(ge=1)
    max_num_seqs: int = Field(ge=1)
    max_num_seqs_tp4: int | None = None  # SGLang: a larger decode graph batch at tensor parallel >= 4


class ActivationModel(Frozen):
    """Peak activation and workspace memory a runtime reserves per GPU.

    - constant: a measured figure per architecture class (``gib_by_class``);
    - per-head-context: a compute buffer growing with the context (``mib_per_head`` ...);
    - profile: what a profiling forward pass peaks at, as vLLM's profile run measures it: the larger of the
      prefill pass over ``max_num_batched_tokens`` tokens (``forward_scale`` x the MLP's activation bytes per
      token) and the sampler over ``max_num_seqs`` x vocabulary logits (``sampler_bytes_per_logit``), plus
      ``cuda_graph_gib`` unless CUDA graphs are off;
    - llama-compute: llama.cpp's compute buffer, ``ubatch`` x (vocabulary logits in FP32 + hidden states), and
      without Flash Attention the ubatch x context x heads FP32 score matrix;
    - none: activations live outside the runtime's fraction (SGLang's mem_fraction_static).
    """

    kind: Literal["constant", "per-head-context", "profile", "llama-compute", "none"]
    gib_by_class: dict[str, float] = {}  # constant: architecture class -> GiB
    mib_per_head: float = 0.0  # per-head-context: compute buffer per attention head
    mib_per_head_per_1k_context: float = 0.0
    forward_scale: float = Field(1.0, ge=0)
    sampler_bytes_per_logit: float = Field(0.0, ge=0)
    cuda_graph_gib: float = Field(0.0, ge=0)
    cuda_graph_gib_per_layer: float = Field(0.0, ge=0)  # the graphs' memory grows with the layers captured
    batch_defaults: tuple[BatchDefault, ...] = ()  # most memory first
    ubatch: int = Field(512, ge=1)  # llama-compute: llama.cpp's -ub default
    flash_attention: bool = True  # llama-compute: FA on (the CUDA default since --flash-attn auto)
    source: str | list[str]

    def batch_default(self, gpu_gib: float, gpu_name: str, tp: int = 1) -> BatchDefault | None:
        name = gpu_name.lower()
        for tier in self.batch_defaults:
            if gpu_gib >= tier.min_gib and not any(n in name for n in tier.unless_name):
                return tier
        return None


class Repack(Frozen):
    """Weights a runtime's kernels re-lay-out at load time, so the loaded size is not the checkpoint's."""

    format: str  # numeric format id of the stored weights (mxfp4, ...)
    architectures: tuple[str, ...]  # GPU architectures the repacking kernels run on (gpus.yaml architecture)
    groups: tuple[str, ...]  # module groups affected
    factor: float = Field(ge=1, le=4)  # loaded bytes / checkpoint bytes of those groups
    source: str | list[str]


class MemoryEra(Frozen):
    """How releases before ``before`` accounted for memory, where it differs from the pinned version: overrides of
    the activation model's fields, the repacking rules and the default fraction, applied to older versions only."""

    before: str  # a version string; releases older than this use the overrides
    activation: dict[str, float | int | bool | None] = {}  # ActivationModel field -> value
    profile_tokens_from_context: bool = False  # vLLM V0: the profile pass ran max(max_model_len, 2,048) tokens
    max_num_seqs: int | None = None  # the default sequence limit of those releases on every GPU
    repack: tuple[Repack, ...] | None = None
    utilization_default: float | None = Field(None, gt=0, le=1)
    reserve_mib: dict[str, float] | None = None
    what: str  # the difference, in words
    source: str | list[str]


class RuntimeMemory(Frozen):
    repack: tuple[Repack, ...] = ()
    eras: tuple[MemoryEra, ...] = ()  # older releases' accounting, newest first
    utilization_default: float = Field(gt=0, le=1)
    utilization_flag: str | None = None
    # total: the fraction caps everything the runtime allocates (vLLM gpu_memory_utilization);
    # free: it is the share of memory left after weights and activations given to the KV cache
    # (TensorRT-LLM free_gpu_memory_fraction).
    # preload: the fraction of the memory free before the weights load holds weights + KV (SGLang)
    utilization_of: Literal["total", "free", "preload"] = "total"
    # SGLang computes its default fraction per GPU: (GPU MiB - reserved MiB) / GPU MiB, reserved = base +
    # per_token x max(chunked prefill, 2048) + per_tp x TP / 8 + 2 x decode graph max_bs + 8 per prefill graph size,
    # at least floor_mib above 60 GiB (memory_hook.handle_gpu_memory_settings); None: utilization_default.
    reserve_mib: dict[str, float] | None = None
    block_tokens: int = Field(16, ge=1)  # tokens per KV page; the pool is a whole number of pages
    kv_groups: bool = False  # vLLM's hybrid allocator: sliding and full layers in padded groups of equal size
    activation: ActivationModel
    non_torch_gib_single: float  # CUDA context, NCCL, allocator outside the KV pool, TP=1
    non_torch_gib_multi: float  # the same at TP >= 2
    notes: str = ""
    source: str | list[str]


class ServeTemplate(Frozen):
    """How to start the runtime. Each flag template is added when its placeholders have values:
    {checkpoint} {gpus} {context} {total_context} {concurrency} {utilization} {kv_flag} {quant_flag}
    {prompt_tokens} {revision}."""

    command: str
    hub_command: str | None = None  # the command for a published checkpoint fetched by repo id, if it differs
    flags: dict[str, str] = {}  # purpose -> template
    config_file: str | None = None  # a file the command reads, e.g. TensorRT-LLM's extra options YAML
    config_template: str | None = None
    notes: str = ""
    source: str | list[str]


class MultiNode(Frozen):
    """How a runtime serves one model over several nodes: tensor parallel inside each node, pipeline parallel across
    them. ``head`` runs on the first node before the serve command, ``workers`` on each other node; ``flags`` join the
    serve command; with ``serve_on_every_node`` the serve command (with its node rank) runs on every node.
    Placeholders: {head} (the first node's address) {node_rank} {nodes} {pipeline_parallel} {gpus} (per node).
    ``supported`` False: the runtime (or this advisor) has no multi-node serving; ``reason`` says why."""

    supported: bool
    reason: str = ""
    head: tuple[str, ...] = ()
    workers: tuple[str, ...] = ()
    flags: dict[str, str] = {}
    serve_on_every_node: bool = False
    notes: str = ""
    source: str | list[str]

    @property
    def sources(self) -> list[str]:
        return [self.source] if isinstance(self.source, str) else list(self.source)


class Runtime(Row):
    name: str
    version: str  # pinned version the flags and figures were read from
    memory: RuntimeMemory
    vendors: tuple[Literal["nvidia", "amd"], ...] = ("nvidia", "amd")
    min_cc: float | None = None  # oldest NVIDIA compute capability it runs on
    preference: int = 50  # order the engine tries runtimes in when the user leaves the choice to it
    preference_note: str = ""
    serve: ServeTemplate | None = None
    multinode: MultiNode | None = None  # None: single node only (pipeline-parallel layouts are refused)
    notes: str = ""


# --------------------------------------------------------------------------- candidates (W/A configs)
class RuntimeSupport(Frozen):
    """How one runtime serves a candidate, and the hardware it needs there."""

    how: Literal["checkpoint", "online", "gguf", "exl"]
    quantization_flag: str | None = None  # value for the runtime's quantization flag, if any
    min_cc: float | None = None
    max_cc: float | None = None  # exclusive: unsupported at and above
    exact_cc: float | None = None
    vendors: tuple[Literal["nvidia", "amd"], ...] = ("nvidia", "amd")
    notes: str = ""
    source: str | list[str]


class Candidate(Row):
    """A weights x activations configuration the engine can recommend."""

    name: str
    notation: str  # W4A16, W8A8, ...
    scenario: Literal["baseline", "A", "B", "C", "E"]
    tier: int  # precision step for the ladder: 16, 8, 4, 3, 2
    weights: str  # weight scheme id
    group_size: int | None = None  # group size the candidate's checkpoints use, if not the scheme's
    only_for_native: str | None = None  # offered only when the model's native layout uses this scheme
    activations: str  # numeric format id the matmuls take as input ("bf16" = 16-bit)
    method: str | None = None
    granularity: str  # plain words: "per-channel weights, per-token dynamic activations"
    native_compute: tuple[str, ...] = ()  # formats the GPU must run natively for this candidate
    min_cc: float | None = None  # hardware gate common to all runtimes
    runtimes: dict[str, RuntimeSupport]
    risk: int = Field(ge=0, le=4)  # published quality risk class: 0 none, 1 very low, 2 low-moderate, 3 moderate-high, 4 high
    risk_note: str = ""  # what the risk class rests on; the numbers are in knowledge/quality.yaml
    evidence_as: str | None = None  # quality evidence: that candidate's rows in knowledge/quality.yaml
    notes: str = ""

    @property
    def weight_only(self) -> bool:
        return self.activations in ("bf16", "fp16")


# --------------------------------------------------------------------------- rules
Metric = Literal["quality", "latency", "ttft", "throughput", "cost", "memory", "capacity", "balance"]
TaskCategory = Literal["general", "reasoning", "code", "long-context", "tools"]
TASK_CATEGORIES: tuple[str, ...] = TaskCategory.__args__  # type: ignore[attr-defined]


class QualityAdjustment(Frozen):
    """A risk a rule states, in points of accuracy recovery vs BF16 (negative = expected loss)."""

    expected_pct: float = Field(0.0, ge=-20, le=0)
    worst_pct: float = Field(0.0, ge=-30, le=0)
    basis: str  # what the figure rests on (a measurement, or "our estimate from ...")


class RuleEffect(Frozen):
    """What a rule does when it fires. A rule states a fact (reject), a risk (quality), a claim that the
    numbers can confirm or contradict (favours / disfavours), or only words and flags (note, flags)."""

    reject: str | None = None  # a reason: the combination is dropped
    quality: QualityAdjustment | None = None  # added to the quality model's figures for this combination
    favours: tuple[Metric, ...] = ()  # the rule claims the configurations it fires on do better here ...
    disfavours: tuple[Metric, ...] = ()  # ... or worse; the plan checks each claim against the numbers
    versus: dict[str, Any] | None = None  # the deployments a claim compares with (default: where it does not fire)
    note: str | None = None  # added to the plan's rationale when the configuration is picked
    flags: tuple[str, ...] = ()  # runtime flags the configuration now needs

    @model_validator(mode="after")
    def _does_something(self) -> RuleEffect:
        if not (self.reject or self.quality or self.favours or self.disfavours or self.note or self.flags):
            raise ValueError("a rule effect needs reject, quality, favours, disfavours, note or flags")
        return self


class RuleExamples(Frozen):
    fires: dict[str, Any]  # facts (over the test baseline) that make the condition true
    quiet: dict[str, Any]  # facts that make it false


class Rule(Row):
    title: str
    when: dict[str, Any]  # condition: {all|any: [...]}, {not: ...} or {fact, op, value}
    effect: RuleEffect
    rationale: str  # one line, our own words
    examples: RuleExamples


class Recipe(Row):
    """A quantization command or script for a method on some runtimes. Placeholders: {model} {output}
    {samples} {seq_len} {scheme} {qformat} {kv_qformat} {gguf_type} {bits}."""

    tool: str
    tool_version: str
    methods: tuple[str, ...]
    runtimes: tuple[str, ...]
    language: Literal["bash", "python", "yaml"]
    template: str
    schemes: dict[str, str] = {}  # weight scheme id (or candidate id) -> value for {scheme} / {qformat}
    notes: str = ""


class ValidationCheck(Row):
    title: str
    metric: str
    threshold: str
    why: str
    when: dict[str, Any] = {}  # empty: always
    phase: Literal["before-rollout", "load-test", "after-rollout"] = "before-rollout"


ObjectiveMetric = Literal[
    "expected_recovery_pct", "worst_recovery_pct", "balanced_utility", "gpu_hours_per_million_tokens",
    "tpot_ms", "ttft_ms", "gpus_needed", "model_bytes_per_gpu", "max_total_concurrency",
]
# The sense each objective metric is optimised in: higher is better (max) or lower is better (min).
METRIC_SENSE: dict[str, str] = {
    "expected_recovery_pct": "max", "worst_recovery_pct": "max", "balanced_utility": "max",
    "gpu_hours_per_million_tokens": "min", "tpot_ms": "min", "ttft_ms": "min", "gpus_needed": "min",
    "model_bytes_per_gpu": "min", "max_total_concurrency": "max",
}


class ObjectiveKey(Frozen):
    """One step of a priority's objective: keep the options within `within` (absolute, in the metric's unit)
    or `within_pct` (relative) of the best on this metric, then go on to the next key."""

    metric: ObjectiveMetric
    within: float | None = Field(None, ge=0)
    within_pct: float | None = Field(None, ge=0, le=100)


class Priority(Row):
    name: str
    description: str
    objective: tuple[ObjectiveKey, ...] = Field(min_length=1)  # applied in order to the Pareto front
    formula: str  # the objective in words, as the plan states it
    points_per_cost_halving: float = Field(0.0, ge=0)  # balanced_utility: accuracy points one halving of cost is worth
    provider_quantizations: tuple[str, ...]  # seed 002 provider filter for hosted APIs


class SeedStatement(Row):
    seed: str
    statement: str  # paraphrase, our own words
    encoded_by: tuple[str, ...]  # "rules:<id>", "validation:<id>", "candidates:<id>", "engine:<what>", ...
    not_encoded: str | None = None  # why, if it cannot be encoded


# --------------------------------------------------------------------------- workloads
class Workload(Row):
    name: str
    description: str
    prompt_tokens: int = Field(gt=0)
    output_tokens: int = Field(gt=0)
    concurrency: int = Field(gt=0)
    # requirement: the endpoint must hold this many requests at once (people are waiting on each);
    # ceiling: an offline or batch endpoint may run fewer or, when the preset's figure is only a default, more:
    # the engine chooses the concurrency its priority's objective prefers.
    concurrency_mode: Literal["requirement", "ceiling"] = "requirement"
    priority: str = "balanced"  # default priority for this kind of endpoint (seed 000 step 5)
    uses_tools: bool = False
    structured_output: bool = False
    quality_tasks: dict[TaskCategory, float] = Field(min_length=1)  # task category -> weight in expected accuracy
    quality_probes: tuple[str, ...] = ()
    notes: str = ""


# --------------------------------------------------------------------------- calibration
class CalibrationRow(Row):
    """A published checkpoint size the weight model is tested against."""

    model: str
    scheme: str
    group_size: int | None = None
    published_bytes: int
    tolerance_pct: float = 2.0
    checkpoint: str  # where the size was read
    notes: str = ""


class CheckpointEvaluation(Frozen):
    """What the checkpoint's producer published about its accuracy against the 16-bit model."""

    recovery_pct: float | None = Field(default=None, gt=0, le=120)
    benchmarks: str = ""


class Checkpoint(Row):
    """A published quantized checkpoint of a catalog model in one candidate's configuration."""

    model: str  # models.yaml id (the 16-bit base model)
    candidate: str  # candidates.yaml id it serves as
    repo: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(:[A-Za-z0-9_.-]+)?$")
    producer: str
    tool: str
    format: Literal["compressed-tensors", "awq", "gptq", "fp8", "modelopt", "gguf", "exl2"]
    runtimes: tuple[str, ...]  # runtime ids that load this format
    flags: dict[str, str] = {}  # runtime id -> the --quantization value it needs for this checkpoint
    calibration_free: bool | None = None  # produced without calibration data (FP8 dynamic, RTN); None: not stated
    kv_cache: str | None = None  # KV format the checkpoint carries scales for
    evaluation: CheckpointEvaluation | None = None
    file_size_gb: float | None = Field(default=None, gt=0)
    notes: str = ""


# --------------------------------------------------------------------------- performance evidence
class PerfMeasurement(Row):
    """A published performance figure the speed model is tested against."""

    model: str  # models.yaml id
    gpu: str  # gpus.yaml id
    gpus: int = 1
    runtime: str  # runtimes.yaml id
    runtime_version: str = ""
    weights: str  # weight scheme id (bf16, fp8, int4-awq, gguf-q4_k_m, ...)
    activations: str  # numeric format id the matmuls take (bf16, fp16, fp8, int8, nvfp4)
    kv: str = "bf16"  # kv_formats.yaml id
    prompt_tokens: int = Field(ge=1)
    output_tokens: int = Field(ge=1)
    concurrency: int = Field(ge=1)  # requests in flight (batch size for llama-bench / offline runs)
    metric: Literal["ttft_ms", "tpot_ms", "decode_tokens_per_s", "prefill_tokens_per_s",
                    "throughput_tokens_per_s"]
    value: float = Field(gt=0)
    notes: str = ""
    model_gap: str = ""  # why the speed model misses this row beyond the target, when it does


class GPUPrice(Row):
    """An hourly on-demand price for one GPU, for cost per million tokens (users can override)."""

    gpu: str
    usd_per_hour: float = Field(gt=0)
    provider: str
    date: str  # when the price was published or read
    notes: str = ""


class RuntimeSpeed(Row):
    """Achievable fractions of a GPU's peak for one runtime (published matmul and bandwidth measurements,
    then fitted to knowledge/perf_measurements.yaml; see each row's notes)."""

    runtime: str
    compute_efficiency: float = Field(gt=0, le=1)  # of the GPU's best matmul rate, decode-step matmuls at scale
    prefill_efficiency: float | None = Field(None, gt=0, le=1)  # the same for large prefill matmuls (None: as decode)
    memory_efficiency: float = Field(gt=0, le=1)  # of peak GDDR bandwidth (and HBM unless set below), streaming
    # of peak HBM bandwidth: one decode step's small kernels keep fewer bytes in flight than HBM's many channels need
    memory_efficiency_hbm: float | None = Field(None, gt=0, le=1)
    step_overhead_ms: float = Field(ge=0)  # fixed cost per decode step (scheduling, launches, sampling)
    step_overhead_per_seq_ms: float = Field(0.0, ge=0)  # per sequence in the step (batch bookkeeping, sampling)
    step_overhead_per_layer_us: float = Field(0.0, ge=0)  # per layer and step (kernel launches and their tails)
    # a matmul of M rows (tokens; tokens per expert in MoE layers) runs at M / (M + half) of the large-matmul rate
    matmul_half_tokens: float = Field(0.0, ge=0)
    moe_layer_floor_us: float = Field(0.0, ge=0)  # the grouped-GEMM MoE block's minimum time per layer and step
    allreduce_nvlink_efficiency: float = Field(0.7, gt=0, le=1)  # of the NVLink / Infinity Fabric bandwidth
    allreduce_pcie_efficiency: float = Field(0.3, gt=0, le=1)  # of the PCIe link bandwidth (no P2P on most cards)
    # the most one GPU's matmuls reach with this runtime's kernels, TFLOPS, whatever the GPU's peak (llama.cpp's
    # quantized matmuls use mma.sync tiles that do not reach Hopper's or the data-centre parts' tensor peaks)
    max_matmul_tflops: float | None = Field(None, gt=0)
    # the tensor-core precision weight-only quantized matmuls run in: llama.cpp's MMQ kernels quantize activations
    # to 8-bit blocks and multiply in INT8 (None: the 16-bit peak, with dequantization)
    quantized_matmul_precision: Literal["int8"] | None = None
    max_matmul_tflops_per_sm: float | None = Field(None, gt=0)  # the same cap per SM, where the GPU's count is known
    prefill_overhead_ms: float = Field(ge=0)  # fixed cost per prefill
    dequant_overhead: float = Field(ge=0)  # extra matmul time for weight-only dequantization (0.1 = +10%)
    allreduce_latency_us: float = Field(ge=0)  # per all-reduce under tensor parallelism
    prefill_chunk_tokens: int = Field(gt=0)  # prompt tokens prefilled together per pass under load
    notes: str = ""


class QualityCell(Row):
    """Published accuracy of one configuration against BF16, for one model family, size and task category.

    kind weights: `configs` are candidate ids; kind kv: KV-cache format ids. recovery_pct is the mean over
    the benchmarks named, worst_pct the lowest single one (both % of the BF16 model's score)."""

    kind: Literal["weights", "kv"]
    configs: tuple[str, ...] = Field(min_length=1)
    family: str = "any"  # config.json model_type of the measured model (llama, qwen2, ...) or any
    size: Literal["tiny", "small", "medium", "large", "any"] = "any"  # total parameters: see decision.yaml size buckets
    task: TaskCategory
    recovery_pct: float = Field(ge=0, le=110)
    worst_pct: float = Field(ge=0, le=110)
    context_tokens: int | None = Field(None, gt=0)  # the context the measurement used, where it matters (KV)
    benchmarks: str
    measured_on: str
    notes: str = ""

    @model_validator(mode="after")
    def _worst_not_above_mean(self) -> QualityCell:
        if self.worst_pct > self.recovery_pct + 1e-9:
            raise ValueError("worst_pct cannot exceed recovery_pct")
        return self


class DecisionConstant(Row):
    """A named figure the decision uses (thresholds, tolerances, caps), each with its meaning and basis."""

    value: float
    unit: str
    meaning: str


class Knowledge(Frozen):
    formats: dict[str, NumericFormat]
    methods: dict[str, Method]
    schemes: dict[str, WeightScheme]
    kv_formats: dict[str, KVFormat]
    gpus: dict[str, GPU]
    models: dict[str, ModelEntry]
    runtimes: dict[str, Runtime]
    workloads: dict[str, Workload]
    candidates: dict[str, Candidate]
    rules: dict[str, Rule]
    validation: dict[str, ValidationCheck]
    recipes: dict[str, Recipe]
    priorities: dict[str, Priority]
    seed_statements: dict[str, SeedStatement]
    speed: dict[str, RuntimeSpeed]
    perf_measurements: dict[str, PerfMeasurement]
    gpu_prices: dict[str, GPUPrice]
    quality: dict[str, QualityCell]
    decision: dict[str, DecisionConstant]
    calibration: tuple[CalibrationRow, ...]
    checkpoints: dict[str, Checkpoint] = {}


TABLES: dict[str, type[Row]] = {
    "formats": NumericFormat,
    "methods": Method,
    "schemes": WeightScheme,
    "kv_formats": KVFormat,
    "gpus": GPU,
    "models": ModelEntry,
    "runtimes": Runtime,
    "workloads": Workload,
    "candidates": Candidate,
    "rules": Rule,
    "validation": ValidationCheck,
    "recipes": Recipe,
    "priorities": Priority,
    "seed_statements": SeedStatement,
    "speed": RuntimeSpeed,
    "perf_measurements": PerfMeasurement,
    "gpu_prices": GPUPrice,
    "quality": QualityCell,
    "decision": DecisionConstant,
    "checkpoints": Checkpoint,
}



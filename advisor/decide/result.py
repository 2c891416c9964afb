"""The one typed result of a decision: deployments with their numbers, and per endpoint the pick, the Pareto
front, the ladder, the fallback, near misses and rejections with reasons. The plan, the CLI and the pages
render it; none of them recomputes a figure.

Units: bytes, milliseconds, tokens per second, USD per million output tokens, percent of BF16 accuracy.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from advisor.intake.catalog import ResolvedModel
from advisor.intake.request import Request, Shape
from advisor.knowledge.schema import GPU
from advisor.physics.performance import Performance
from advisor.physics.quality import Quality


class FiredRule(BaseModel):
    id: str
    title: str
    rationale: str
    effect: str  # the effect in words: "reject", "quality -0.5/-2 points", "claims: latency", "note", ...
    source: list[str]


class Reason(BaseModel):
    kind: str  # rule | hardware | runtime | layout | memory | quality | target
    text: str
    rule: str | None = None
    source: list[str] = Field(default_factory=list)


class Layout(BaseModel):
    """How the endpoint's GPUs are used: replicas x pipeline stages (one per node) x tensor-parallel GPUs each.
    Tensor parallelism stays inside a node; pipeline_parallel > 1 spans that many nodes."""

    model_config = ConfigDict(frozen=True)
    tensor_parallel: int
    replicas: int
    pipeline_parallel: int = 1

    @property
    def gpus(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel * self.replicas

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel

    def words(self) -> str:
        pp = self.pipeline_parallel
        if pp > 1:
            tp = f"tensor parallel {self.tensor_parallel} x pipeline parallel {pp} ({pp} nodes)"
        else:
            tp = f"tensor parallel {self.tensor_parallel}" if self.tensor_parallel > 1 else "one GPU"
        return tp if self.replicas == 1 else f"{self.replicas} replicas of {tp}"

    def short(self) -> str:
        """TP8, 2xTP8, TP8xPP2."""
        tp = f"TP{self.tensor_parallel}" + (f"xPP{self.pipeline_parallel}" if self.pipeline_parallel > 1 else "")
        return tp if self.replicas == 1 else f"{self.replicas}x{tp}"


class MemoryFit(BaseModel):
    """Per GPU, at the deployment's concurrency per replica and the endpoint's context."""

    weights_bytes: int  # the checkpoint once
    weights_bytes_per_gpu: int
    kv_bytes_per_gpu: int
    overhead_bytes_per_gpu: int  # activations + non-torch + the headroom the utilization setting leaves
    capacity_bytes_per_gpu: int
    kv_budget_bytes_per_gpu: int
    gpus: int  # in one replica (tensor parallel x pipeline stages)
    fits: bool
    max_concurrency: int  # sequences one replica holds at the endpoint's context
    max_context: int | None = None  # longest context at the concurrency (computed for shown deployments)
    utilization: float | None = None  # the runtime's memory fraction the budget assumed (its serve flag)
    kv_pool_tokens: int | None = None  # tokens the server's KV pool holds per replica (what it logs)

    @property
    def total_bytes_per_gpu(self) -> int:
        return self.weights_bytes_per_gpu + self.kv_bytes_per_gpu + self.overhead_bytes_per_gpu


class CheckpointUse(BaseModel):
    """What a deployment's serve command loads.

    kind: as-published (the model's own quantized checkpoint), unquantized (its 16-bit checkpoint), base-model (the
    16-bit model a quantized checkpoint names), published (a published quantized checkpoint, knowledge/
    checkpoints.yaml), online (the runtime quantizes at load time), recipe (produce it with the plan's recipe).
    """

    kind: Literal["as-published", "unquantized", "base-model", "published", "online", "recipe"]
    load: str  # the repo id (GGUF: repo:quant), path or local output directory the serve command takes
    note: str
    repo: str | None = None  # published: the Hugging Face repo
    producer: str | None = None
    tool: str | None = None
    flag: str | None = None  # the --quantization value the runtime needs for it (ModelOpt checkpoints)
    row: str | None = None  # knowledge/checkpoints.yaml row id
    recovery_pct: float | None = None  # the producer's published accuracy recovery vs the 16-bit model
    evaluation: str = ""
    file_size_gb: float | None = None
    source: list[str] = Field(default_factory=list)

    @property
    def needs_quantization(self) -> bool:
        return self.kind == "recipe"


class WeightsInfo(BaseModel):
    """How the weights are stored, for the plan (filled for the deployments a plan shows)."""

    numeric_format: str  # of the quantized matrices (or the 16-bit format when nothing is quantized)
    bits_per_weight: float  # everything, scales and 16-bit parts included
    bits_per_quantized_weight: float | None
    high_precision_groups: list[str]  # module groups kept in 16-bit that the model has
    kv_bytes_per_element: float
    checkpoint: CheckpointUse | None = None
    exact_bytes: bool = False  # the checkpoint size was read from its safetensors headers


class Deployment(BaseModel):
    """One evaluated way to serve the endpoint: precision, runtime, layout, concurrency, and its numbers."""

    candidate: str
    kv: str
    runtime: str
    layout: Layout
    concurrency: int  # requests per replica at once (max_num_seqs)
    total_concurrency: int  # over all replicas
    memory: MemoryFit
    performance: Performance  # per request (TTFT, time per token) and for all replicas (throughput, cost)
    quality: Quality
    metrics: dict[str, float]  # the objective metrics (knowledge/priorities.yaml)
    fired: list[FiredRule] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    weights: WeightsInfo | None = None  # filled for shown deployments
    # for shown deployments: its figures against the 16-bit baseline, the rules that agree
    why: list[str] = Field(default_factory=list)
    facts: dict = Field(default_factory=dict, exclude=True, repr=False)  # what the rules saw

    @property
    def key(self) -> tuple[str, str, str, int, int, int]:
        return (self.candidate, self.kv, self.runtime, self.layout.tensor_parallel, self.layout.replicas,
                self.layout.pipeline_parallel)

    @property
    def config(self) -> tuple[str, str]:
        return (self.candidate, self.kv)


class Rejection(BaseModel):
    candidate: str
    notation: str
    name: str
    reasons: list[Reason]
    kv: str | None = None  # the KV format of the closest attempt
    runtime: str | None = None
    memory: MemoryFit | None = None  # its memory, when memory was what stopped it


class KVOption(BaseModel):
    """The picked weights with each KV-cache format: can the runtime use it, and how much fits."""

    kv: str
    available: bool
    reason: str | None = None  # why it is not available, does not fit, or misses a target, with the figure
    fits: bool = False
    max_concurrency: int = 0  # over all replicas
    max_context: int = 0
    tpot_ms: float | None = None  # at the pick's requests per replica, when it fits
    ttft_ms: float | None = None
    expected_recovery_pct: float | None = None
    meets_targets: bool = False  # fits, and meets the quality floor and the speed and cost targets


class NearMiss(BaseModel):
    """An interactive option that holds most but not all of the required requests, and what it would trade."""

    deployment: Deployment  # evaluated at the concurrency it can hold
    serves: int  # requests it holds at once, over all replicas
    required: int
    text: str


class LadderStep(BaseModel):
    role: str  # baseline | step | pick
    candidate: str
    kv: str
    runtime: str | None
    fits: bool
    deployment: Deployment | None  # its numbers (evaluated even when it does not fit, where memory allows)
    total_bytes_per_gpu: int | None
    note: str


class Claim(BaseModel):
    """A rule of thumb from the brief or a vendor, checked against this endpoint's numbers."""

    rule: str
    title: str
    metric: str
    on_pick: bool  # the rule applies to the pick itself (else to a shown alternative)
    holds: bool
    text: str  # the figures behind the verdict
    source: list[str]


class RationaleItem(BaseModel):
    kind: str  # numbers | objective | runtime | rule | contradiction | note | quality
    text: str
    rule: str | None = None
    source: list[str] = Field(default_factory=list)


class OffloadOption(BaseModel):
    """llama.cpp partial offload of a GGUF that does not fit in VRAM: layers on the GPU, the rest in system RAM."""

    candidate: str
    kv: str
    notation: str
    gpu_layers: int  # -ngl
    total_layers: int
    vram_gib: float  # on the GPU: those layers, their KV cache, the output matrix and the compute buffer
    ram_gib: float  # system RAM: the other layers, their KV cache and the token embedding
    ram_fits: bool | None  # against the request's host_memory_gib (None: not given)
    tpot_ms: float
    decode_tokens_per_s: float  # one request
    ttft_ms: float
    concurrency: int
    expected_recovery_pct: float
    flag: str  # the llama-server flag
    note: str
    checkpoint: CheckpointUse | None = None  # the GGUF it loads (published by name where one exists)


class EndpointResult(BaseModel):
    shape: Shape
    concurrency_mode: str  # requirement | ceiling
    fits: bool  # something fits and meets every target
    pick: Deployment | None  # when nothing fits: the closest option, with fits False
    ranked: list[Deployment]  # every deployment that fits and meets the targets, best first
    pareto: list[Deployment]  # the non-dominated ones among them (the pick is one)
    rejected: list[Rejection]
    what_would_fit: list[str] = Field(default_factory=list)
    near_misses: list[NearMiss] = Field(default_factory=list)
    ladder: list[LadderStep] = Field(default_factory=list)
    kv_options: list[KVOption] = Field(default_factory=list)
    fallback: Deployment | None = None
    fallback_why: str = ""
    baseline: Deployment | None = None  # the 16-bit reference at the pick's runtime and layout
    rationale: list[RationaleItem] = Field(default_factory=list)
    claims: list[Claim] = Field(default_factory=list)
    validation: list[str] = Field(default_factory=list)  # knowledge/validation.yaml checks that apply to the pick
    objective: str = ""  # the priority's objective in words
    runtime_chosen_by: str = ""
    evaluated: int = 0  # deployments whose numbers were computed
    # llama.cpp partial offload, when no GGUF fits whole in VRAM
    offload: list[OffloadOption] = Field(default_factory=list)


class RecommendResult(BaseModel):
    request: Request
    model: ResolvedModel
    params_total: int  # the model's parameters, every tensor counted once
    gpu: GPU
    endpoints: list[EndpointResult]

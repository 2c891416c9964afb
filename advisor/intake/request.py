"""The recommendation request: one pydantic model shared by the Python API, the CLI and plan files."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from advisor.errors import AdvisorInputError
from advisor.intake.catalog import lookup
from advisor.knowledge.schema import GPU, DenseThroughput, Knowledge, Workload

Priority = Literal["quality", "balanced", "latency", "throughput", "memory", "cost"]
FailureMode = Literal[
    "long-context-drift", "tool-call-errors", "structured-output-errors", "safety-regressions", "tail-latency"
]
PRIORITIES: tuple[str, ...] = Priority.__args__  # type: ignore[attr-defined]
FAILURE_MODES: tuple[str, ...] = FailureMode.__args__  # type: ignore[attr-defined]


class SuccessCriteria(BaseModel):
    """Seed 000 step 1: quality floor, latency and cost targets, unacceptable failure modes."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    quality_floor_pct: float | None = Field(None, ge=50, le=100)  # lowest accuracy kept vs BF16, percent
    # targets: an hour to the first token, ten minutes a token and $1,000,000 per million tokens are past any use
    max_ttft_ms: float | None = Field(None, gt=0, le=3_600_000)  # time to first token target (the speed model's)
    max_tpot_ms: float | None = Field(None, gt=0, le=600_000)  # time per output token target
    max_cost_per_million_tokens: float | None = Field(None, gt=0, le=1_000_000)
    unacceptable: list[FailureMode] = []


CUSTOM_GPU_ID = "custom"
# A Hub revision (branch, tag or commit) as the request, links and validation scripts accept it: letters, digits and
# . _ / - only (nothing a shell or a URL reads specially), starting with a letter or digit.
REVISION_NAME = r"[A-Za-z0-9][A-Za-z0-9._/-]*"
MAX_REVISION = 128
TFLOPS_FORMATS = ("bf16", "fp16", "fp8", "int8", "fp4", "int4")
_ARCH_BY_CC = ((12.0, "Blackwell"), (10.0, "Blackwell"), (9.0, "Hopper"), (8.9, "Ada"), (8.0, "Ampere"),
               (7.5, "Turing"), (7.0, "Volta"))


class CustomGPU(BaseModel):
    """A GPU that is not in knowledge/gpus.yaml: its memory, bandwidth, dense tensor throughput per precision and
    (NVIDIA) compute capability. The formats with a throughput are the ones it multiplies natively."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field("Custom GPU", min_length=1, max_length=60)
    vendor: Literal["nvidia", "amd"] = "nvidia"
    memory_gib: float = Field(gt=0, le=4096)  # what the driver reports, GiB (2^30)
    memory_bandwidth_tbps: float = Field(gt=0, le=100)  # TB/s, decimal
    dense_tflops: dict[Literal["bf16", "fp16", "fp8", "int8", "fp4", "int4"], float] = Field(min_length=1)
    compute_capability: str | None = Field(None, pattern=r"^\d{1,2}\.\d$")
    interconnect_gbps: float | None = Field(None, gt=0, le=100_000)

    @field_validator("dense_tflops")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        for fmt, tflops in value.items():
            if not 0 < tflops <= 1_000_000:
                raise ValueError(f"{fmt} TFLOPS must be above 0 and at most 1,000,000")
        return value

    @model_validator(mode="after")
    def _nvidia_has_cc(self) -> CustomGPU:
        if self.vendor == "nvidia" and self.compute_capability is None:
            raise ValueError("an NVIDIA GPU needs its compute capability (e.g. 8.9); it decides which kernels run")
        if self.compute_capability is not None and not 3.0 <= float(self.compute_capability) <= 13.0:
            raise ValueError(f"compute capability {self.compute_capability} is not one NVIDIA has made (3.0 to 13.0)")
        return self

    def to_gpu(self) -> GPU:
        """The knowledge-table row the engine uses (matmul efficiency: the typical 0.8, marked unverified)."""
        cc = float(self.compute_capability) if self.compute_capability else None
        native = [f for f in ("fp16", "bf16", "fp8", "int8", "int4") if f in self.dense_tflops]
        if "fp4" in self.dense_tflops:
            native += ["fp4", "nvfp4", "mxfp4"] if self.vendor == "nvidia" and (cc or 0) >= 10.0 else ["fp4", "mxfp4"]
        if "bf16" in native and "fp16" not in native:
            native.insert(0, "fp16")
        arch = next((a for limit, a in _ARCH_BY_CC if cc is not None and cc >= limit), "custom")
        return GPU(id=CUSTOM_GPU_ID, name=self.name, vendor=self.vendor, architecture=arch,
                   compute_capability=self.compute_capability, amd_arch="custom" if self.vendor == "amd" else None,
                   memory_gib=self.memory_gib, memory_label=f"{self.memory_gib:g} GiB (as given)",
                   memory_bandwidth_tbps=self.memory_bandwidth_tbps,
                   dense_tflops=DenseThroughput(**self.dense_tflops), native_formats=(*native, "fp32"),
                   fp8_variant="e4m3fn" if "fp8" in native else None, interconnect_gbps=self.interconnect_gbps,
                   matmul_efficiency=0.8, unverified=("matmul_efficiency",),
                   notes="Given by the user; the matmul efficiency is the typical 0.8 of measured NVIDIA parts.",
                   source="the request (custom_gpu)")


class Endpoint(BaseModel):
    """One use of the model: a workload preset plus its shape. Unset shape fields come from the preset."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field("default", min_length=1, max_length=64)
    workload: str = "interactive-chat"
    priority: Priority | None = None
    prompt_tokens: int | None = Field(None, gt=0, le=10_000_000)
    output_tokens: int | None = Field(None, gt=0, le=1_000_000)
    concurrency: int | None = Field(None, gt=0, le=100_000)
    context: int | None = Field(None, gt=0, le=10_000_000)  # tokens held per sequence; default prompt + output


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = Field(min_length=1, max_length=1024)  # catalog id, repo id, path, or `custom_model`'s name
    # the Hub revision (branch, tag or commit) of the model's repo to plan and serve; None: the repo's default branch.
    # It pins what the serve commands load and what validation results were measured on (a changed one: retest).
    model_revision: str | None = Field(None, min_length=1, max_length=MAX_REVISION, pattern=f"^{REVISION_NAME}$")
    custom_model: dict[str, Any] | None = None  # an uploaded config.json's fields; travels with the plan
    gpu: str = Field(min_length=1, max_length=64)  # a knowledge/gpus.yaml id, or "custom" with `custom_gpu`
    custom_gpu: CustomGPU | None = None
    gpus: int = Field(1, ge=1, le=64)  # GPUs per node
    # nodes of `gpus` GPUs each: tensor parallel inside a node, pipeline parallel (or replicas) across nodes
    nodes: int = Field(1, ge=1, le=16)
    runtime: str | None = None  # None: the engine picks, in the runtimes' preference order
    priority: Priority | None = None  # default for endpoints that set none (else the workload's own)
    calibration: Literal["none", "available"] = "available"
    criteria: SuccessCriteria = SuccessCriteria()
    # Your GPU's hourly price; None: the on-demand list price in knowledge/gpu_prices.yaml.
    usd_per_gpu_hour: float | None = Field(None, gt=0, le=1000)
    # System RAM, for llama.cpp partial offload: how much there is (None: not checked) and the bandwidth a CPU
    # decode reaches from it (None: knowledge/decision.yaml host-decode-bandwidth-gbps).
    host_memory_gib: float | None = Field(None, gt=0, le=65536)
    host_memory_bandwidth_gbps: float | None = Field(None, gt=0, le=10_000)
    endpoints: list[Endpoint] = Field(default_factory=lambda: [Endpoint()], min_length=1, max_length=16)

    @field_validator("endpoints")
    @classmethod
    def _unique_names(cls, endpoints: list[Endpoint]) -> list[Endpoint]:
        names = [e.name for e in endpoints]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"endpoint names must be unique; repeated: {', '.join(duplicates)}")
        return endpoints

    @field_validator("model_revision")
    @classmethod
    def _revision_is_a_name(cls, value: str | None) -> str | None:
        if value is not None and (".." in value or value.endswith(("/", ".lock"))):
            raise ValueError("a revision is a branch, tag or commit name (no '..', no trailing '/' or '.lock')")
        return value

    @model_validator(mode="after")
    def _runtime_not_blank(self) -> Request:
        if self.runtime is not None and not self.runtime.strip():
            self.runtime = None
        if self.custom_gpu is not None and self.gpu != CUSTOM_GPU_ID:
            raise ValueError(f"custom_gpu is given, so gpu must be {CUSTOM_GPU_ID!r}")
        if self.gpu == CUSTOM_GPU_ID and self.custom_gpu is None:
            raise ValueError(f"gpu {CUSTOM_GPU_ID!r} needs custom_gpu (memory_gib, memory_bandwidth_tbps, "
                             "dense_tflops, compute_capability)")
        return self


class Shape(BaseModel):
    """An endpoint with every field resolved."""

    name: str
    workload: Workload
    priority: str
    prompt_tokens: int
    output_tokens: int
    concurrency: int
    context: int


def resolve_gpu(request: Request, knowledge: Knowledge, field: str = "gpu") -> GPU:
    """The request's GPU: a knowledge/gpus.yaml row, or the custom GPU it describes."""
    if request.custom_gpu is not None:
        return request.custom_gpu.to_gpu()
    return lookup(knowledge.gpus, request.gpu, field, "GPU")


def check_ids(request: Request, knowledge: Knowledge) -> None:
    """Ids the request names must exist; errors name the field and the closest valid ids."""
    resolve_gpu(request, knowledge)
    if request.runtime is not None:
        lookup(knowledge.runtimes, request.runtime, "runtime", "runtime")
    for i, endpoint in enumerate(request.endpoints):
        lookup(knowledge.workloads, endpoint.workload, f"endpoints[{i}].workload", "workload preset")


def resolve_shape(request: Request, endpoint: Endpoint, knowledge: Knowledge) -> Shape:
    workload = lookup(knowledge.workloads, endpoint.workload, "workload", "workload preset")
    prompt = endpoint.prompt_tokens or workload.prompt_tokens
    output = endpoint.output_tokens or workload.output_tokens
    context = endpoint.context or prompt + output
    if endpoint.context and endpoint.context < prompt + output:
        if endpoint.prompt_tokens or endpoint.context <= output:
            raise AdvisorInputError(
                f"endpoint {endpoint.name!r} context",
                f"{endpoint.context:,} tokens cannot hold a {prompt:,}-token prompt plus {output:,} output tokens"
                if endpoint.prompt_tokens else
                f"{endpoint.context:,} tokens leave no room for a prompt beside {output:,} output tokens",
            )
        prompt = endpoint.context - output  # the context holds the prompt and the output: the prompt is the rest
    return Shape(
        name=endpoint.name,
        workload=workload,
        priority=endpoint.priority or request.priority or workload.priority,
        prompt_tokens=prompt,
        output_tokens=output,
        concurrency=endpoint.concurrency or workload.concurrency,
        context=context,
    )

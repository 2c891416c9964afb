"""The recommendation request: one pydantic model shared by the Python API, the CLI and plan files."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from advisor.errors import AdvisorInputError
from advisor.intake.catalog import lookup
from advisor.knowledge.schema import Knowledge, Workload

Priority = Literal["quality", "balanced", "latency", "throughput", "memory", "cost"]
FailureMode = Literal[
    "long-context-drift", "tool-call-errors", "structured-output-errors", "safety-regressions", "tail-latency"
]
PRIORITIES: tuple[str, ...] = Priority.__args__  # type: ignore[attr-defined]
FAILURE_MODES: tuple[str, ...] = FailureMode.__args__  # type: ignore[attr-defined]


class SuccessCriteria(BaseModel):
    """Seed 000 step 1: quality floor, latency and cost targets, unacceptable failure modes."""

    model_config = ConfigDict(extra="forbid")

    quality_floor_pct: float | None = Field(None, ge=50, le=100)  # lowest accuracy kept vs BF16, percent
    max_ttft_ms: float | None = Field(None, gt=0)  # time to first token target (used by the performance model)
    max_tpot_ms: float | None = Field(None, gt=0)  # time per output token target
    max_cost_per_million_tokens: float | None = Field(None, gt=0)
    unacceptable: list[FailureMode] = []


class Endpoint(BaseModel):
    """One use of the model: a workload preset plus its shape. Unset shape fields come from the preset."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("default", min_length=1, max_length=64)
    workload: str = "interactive-chat"
    priority: Priority | None = None
    prompt_tokens: int | None = Field(None, gt=0, le=10_000_000)
    output_tokens: int | None = Field(None, gt=0, le=1_000_000)
    concurrency: int | None = Field(None, gt=0, le=100_000)
    context: int | None = Field(None, gt=0, le=10_000_000)  # tokens held per sequence; default prompt + output


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)  # catalog id, or the name given to `custom_model`
    custom_model: dict[str, Any] | None = None  # an uploaded config.json's fields; travels with the plan
    gpu: str = Field(min_length=1)
    gpus: int = Field(1, ge=1, le=64)
    runtime: str | None = None  # None: the engine picks, in the runtimes' preference order
    priority: Priority | None = None  # default for endpoints that set none (else the workload's own)
    calibration: Literal["none", "available"] = "available"
    criteria: SuccessCriteria = SuccessCriteria()
    # Your GPU's hourly price; None: the on-demand list price in knowledge/gpu_prices.yaml.
    usd_per_gpu_hour: float | None = Field(None, gt=0, le=1000)
    endpoints: list[Endpoint] = Field(default_factory=lambda: [Endpoint()], min_length=1, max_length=16)

    @field_validator("endpoints")
    @classmethod
    def _unique_names(cls, endpoints: list[Endpoint]) -> list[Endpoint]:
        names = [e.name for e in endpoints]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"endpoint names must be unique; repeated: {', '.join(duplicates)}")
        return endpoints

    @model_validator(mode="after")
    def _runtime_not_blank(self) -> Request:
        if self.runtime is not None and not self.runtime.strip():
            self.runtime = None
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


def check_ids(request: Request, knowledge: Knowledge) -> None:
    """Ids the request names must exist; errors name the field and the closest valid ids."""
    lookup(knowledge.gpus, request.gpu, "gpu", "GPU")
    if request.runtime is not None:
        lookup(knowledge.runtimes, request.runtime, "runtime", "runtime")
    for i, endpoint in enumerate(request.endpoints):
        lookup(knowledge.workloads, endpoint.workload, f"endpoints[{i}].workload", "workload preset")


def resolve_shape(request: Request, endpoint: Endpoint, knowledge: Knowledge) -> Shape:
    workload = lookup(knowledge.workloads, endpoint.workload, "workload", "workload preset")
    prompt = endpoint.prompt_tokens or workload.prompt_tokens
    output = endpoint.output_tokens or workload.output_tokens
    context = endpoint.context or prompt + output
    if endpoint.context and endpoint.context < prompt + output and endpoint.prompt_tokens:
        raise AdvisorInputError(
            f"endpoint {endpoint.name!r} context",
            f"{endpoint.context} tokens cannot hold a {prompt}-token prompt plus {output} output tokens",
        )
    return Shape(
        name=endpoint.name,
        workload=workload,
        priority=endpoint.priority or request.priority or workload.priority,
        prompt_tokens=prompt,
        output_tokens=output,
        concurrency=endpoint.concurrency or workload.concurrency,
        context=context,
    )

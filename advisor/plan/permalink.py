"""Permalinks: the whole wizard state as short, readable query parameters, and back.

Pure and versioned (no Streamlit). ``to_query`` is canonical - every field is written, defaults
included (except the optional targets below), so a link keeps its meaning if a default changes. ``from_query`` never raises: each bad or
unknown parameter falls back to its default and is reported in a note. ``check_against`` does the same
for ids the knowledge base must know (model, GPU, runtime, workloads).

    v=1&m=meta-llama/Llama-3.1-8B-Instruct&g=h100-sxm&n=1&r=auto&p=auto&c=available&q=0&u=
      &e=default:interactive-chat:16:1024:256:0:auto

``e`` repeats once per endpoint: name:workload:concurrency:prompt_tokens:output_tokens:context:priority
(context 0 = prompt + output; priority auto = the preset's). The optional speed and cost targets and
the GPU price override (t: ms to first token, o: ms per output token, k: $ per million output tokens,
h: $ per GPU-hour; hr / hb: system RAM GiB and its GB/s, for llama.cpp partial offload; nn: nodes of n GPUs each;
mr: the model repo's Hub revision)
are written only when set, so links without them stay as they were. With ``g=custom`` the
custom GPU travels too (gn name, gm memory GiB, gb bandwidth TB/s, gc compute capability, gf / g8 / gi / g4 dense
BF16 / FP8 / INT8 / FP4 TFLOPS). ``m`` may be any Hugging Face repo id; the model is looked up when planned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from advisor.errors import closest, shown
from advisor.intake.catalog import catalog_id
from advisor.intake.hub import REPO_ID
from advisor.intake.request import (
    CUSTOM_GPU_ID,
    FAILURE_MODES,
    MAX_REVISION,
    PRIORITIES,
    REVISION_NAME,
    Endpoint,
    Request,
)
from advisor.knowledge.schema import Knowledge

VERSION = "1"
SUPPORTED_VERSIONS = ("1",)
MAX_ENDPOINTS = 4
MAX_UNKNOWN_NOTED = 5  # unknown URL parameters named one by one; the rest are counted
NAME_PATTERN = r"[A-Za-z0-9_-]{1,32}"
DEFAULT_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
DEFAULT_GPU = "h100-sxm"
DEFAULT_WORKLOAD = "interactive-chat"

PriorityChoice = Literal["auto", "quality", "balanced", "latency", "throughput", "memory", "cost"]


class EndpointState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("default", pattern=f"^{NAME_PATTERN}$")
    workload: str = DEFAULT_WORKLOAD
    concurrency: int = Field(16, ge=1, le=100_000)
    prompt_tokens: int = Field(1024, ge=1, le=10_000_000)
    output_tokens: int = Field(256, ge=1, le=1_000_000)
    context: int = Field(0, ge=0, le=10_000_000)  # 0: prompt + output
    priority: PriorityChoice = "auto"

    def encode(self) -> str:
        return ":".join(
            str(x)
            for x in (
                self.name,
                self.workload,
                self.concurrency,
                self.prompt_tokens,
                self.output_tokens,
                self.context,
                self.priority,
            )
        )

    @classmethod
    def decode(cls, text: str) -> EndpointState:
        parts = text.split(":")
        if len(parts) != 7:
            raise ValueError("an endpoint needs 7 fields name:workload:concurrency:prompt:output:context:priority")
        keys = ("name", "workload", "concurrency", "prompt_tokens", "output_tokens", "context", "priority")
        return cls.model_validate(dict(zip(keys, parts, strict=True)))


class WizardState(BaseModel):
    """Everything the wizard asks, in URL-friendly form (aliases are the query keys)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    model: str = Field(DEFAULT_MODEL, alias="m", min_length=1, max_length=1024)
    # the model repo's Hub revision ("": its main branch); written only when set, so older links read as before
    model_revision: str = Field("", alias="mr", max_length=MAX_REVISION, pattern=f"^({REVISION_NAME})?$")
    gpu: str = Field(DEFAULT_GPU, alias="g", min_length=1, max_length=64)
    gpus: int = Field(1, alias="n", ge=1, le=64)  # per node
    nodes: int = Field(1, alias="nn", ge=1, le=16)  # written only above 1, so older links read as before
    runtime: str = Field("auto", alias="r", min_length=1, max_length=64)
    priority: PriorityChoice = Field("auto", alias="p")
    calibration: Literal["none", "available"] = Field("available", alias="c")
    quality_floor: float = Field(0, alias="q", ge=0, le=100)  # 0: no floor
    unacceptable: tuple[Literal[FAILURE_MODES], ...] = Field((), alias="u")  # type: ignore[valid-type]
    # Speed and cost targets and a GPU price override; 0 means none (and leaves the key out of the URL).
    max_ttft_ms: float = Field(0, alias="t", ge=0, le=3_600_000)
    max_tpot_ms: float = Field(0, alias="o", ge=0, le=600_000)
    max_cost: float = Field(0, alias="k", ge=0, le=1_000_000)
    usd_per_gpu_hour: float = Field(0, alias="h", ge=0, le=1000)
    # A custom GPU (gpu = "custom"); 0 / "" means not given.
    gpu_name: str = Field("Custom GPU", alias="gn", min_length=1, max_length=60)
    gpu_memory_gib: float = Field(0, alias="gm", ge=0, le=4096)
    gpu_bandwidth_tbps: float = Field(0, alias="gb", ge=0, le=100)
    gpu_cc: str = Field("", alias="gc", pattern=r"^(\d{1,2}\.\d)?$")
    gpu_bf16: float = Field(0, alias="gf", ge=0, le=1_000_000)
    gpu_fp8: float = Field(0, alias="g8", ge=0, le=1_000_000)
    gpu_int8: float = Field(0, alias="gi", ge=0, le=1_000_000)
    gpu_fp4: float = Field(0, alias="g4", ge=0, le=1_000_000)
    # System RAM for llama.cpp partial offload (0: not given)
    host_memory_gib: float = Field(0, alias="hr", ge=0, le=65536)
    host_memory_bandwidth_gbps: float = Field(0, alias="hb", ge=0, le=10_000)
    endpoints: tuple[EndpointState, ...] = Field((EndpointState(),), alias="e", min_length=1, max_length=MAX_ENDPOINTS)

    @field_validator("unacceptable", mode="before")
    @classmethod
    def _split_modes(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(sorted({x for x in value.split(",") if x}))
        return value

    @field_validator("quality_floor")
    @classmethod
    def _floor_range(cls, value: float) -> float:
        if 0 < value < 50:
            raise ValueError("a quality floor is a percentage between 50 and 100, or 0 for none")
        return value

    @field_validator("endpoints")
    @classmethod
    def _unique_names(cls, endpoints: tuple[EndpointState, ...]) -> tuple[EndpointState, ...]:
        names = [e.name for e in endpoints]
        if len(set(names)) != len(names):
            raise ValueError("endpoint names must be unique")
        return endpoints


# --------------------------------------------------------------------------- query string
def _number(value: float) -> str:
    return f"{value:g}"


OPTIONAL_NUMBERS = {"t": "max_ttft_ms", "o": "max_tpot_ms", "k": "max_cost", "h": "usd_per_gpu_hour",
                    "hr": "host_memory_gib", "hb": "host_memory_bandwidth_gbps"}
CUSTOM_GPU_KEYS = {"gn": "gpu_name", "gm": "gpu_memory_gib", "gb": "gpu_bandwidth_tbps", "gc": "gpu_cc",
                   "gf": "gpu_bf16", "g8": "gpu_fp8", "gi": "gpu_int8", "g4": "gpu_fp4"}
CUSTOM_TFLOPS = {"bf16": "gpu_bf16", "fp8": "gpu_fp8", "int8": "gpu_int8", "fp4": "gpu_fp4"}


def _custom_query(state: WizardState) -> dict[str, str]:
    if state.gpu != CUSTOM_GPU_ID:
        return {}
    out = {}
    for key, field in CUSTOM_GPU_KEYS.items():
        value = getattr(state, field)
        if value:
            out[key] = _number(value) if isinstance(value, float | int) else str(value)
    return out


def to_query(state: WizardState) -> dict[str, str | list[str]]:
    """Canonical query parameters: every field, except the optional targets and price when unset."""
    return {
        "v": VERSION,
        "m": state.model,
        **({"mr": state.model_revision} if state.model_revision else {}),
        "g": state.gpu,
        "n": str(state.gpus),
        **({"nn": str(state.nodes)} if state.nodes > 1 else {}),
        "r": state.runtime,
        "p": state.priority,
        "c": state.calibration,
        "q": _number(state.quality_floor),
        "u": ",".join(state.unacceptable),
        **{key: _number(getattr(state, field)) for key, field in OPTIONAL_NUMBERS.items() if getattr(state, field)},
        **_custom_query(state),
        "e": [e.encode() for e in state.endpoints],
    }


def query_string(state: WizardState) -> str:
    return urlencode(to_query(state), doseq=True, safe=",:/")


def _first(value: str | list[str]) -> str:
    return value[-1] if isinstance(value, list) and value else value if isinstance(value, str) else ""


def _as_list(value: str | list[str]) -> list[str]:
    return list(value) if isinstance(value, list) else [value]


def from_query(query: Mapping[str, Any]) -> tuple[WizardState, list[str]]:
    """A state from query parameters; never raises. Bad or unknown parameters become notes."""
    notes: list[str] = []
    version = _first(query.get("v", VERSION)) or VERSION
    if version not in SUPPORTED_VERSIONS:
        return WizardState(), [
            f"this link is version {shown(version)}, which this release cannot read; showing the defaults instead"
        ]
    aliases = {f.alias: name for name, f in WizardState.model_fields.items()}
    raw: dict[str, Any] = {}
    unknown = 0
    for key, value in query.items():
        if key == "v":
            continue
        if key not in aliases:
            unknown += 1
            if unknown <= MAX_UNKNOWN_NOTED:
                notes.append(f"ignored unknown parameter {shown(key, 40)}")
            continue
        if key == "e":
            endpoints = []
            for i, text in enumerate(_as_list(value)[:MAX_ENDPOINTS]):
                try:
                    endpoints.append(EndpointState.decode(str(text)))
                except (ValueError, ValidationError) as exc:
                    notes.append(f"ignored endpoint {i + 1} ({shown(str(text))}): {_short_error(exc)}")
            if len(_as_list(value)) > MAX_ENDPOINTS:
                notes.append(f"kept the first {MAX_ENDPOINTS} endpoints of {len(_as_list(value))}")
            names = [e.name for e in endpoints]
            if len(set(names)) != len(names):
                notes.append("ignored endpoints with repeated names")
                endpoints = [e for i, e in enumerate(endpoints) if e.name not in names[:i]]
            if endpoints:
                raw["e"] = tuple(endpoints)
            continue
        raw[key] = _first(value)
    if unknown > MAX_UNKNOWN_NOTED:
        notes.append(f"ignored {unknown - MAX_UNKNOWN_NOTED} more unknown parameters")
    while True:
        try:
            return WizardState.model_validate(raw), notes
        except ValidationError as exc:
            bad = {str(err["loc"][0]) for err in exc.errors()}
            for key in sorted(bad):
                field = aliases.get(key, key)
                notes.append(
                    f"ignored {field} = {shown(str(raw.get(key)))}: {_short_error(exc, key)}; using the default"
                )
            raw = {k: v for k, v in raw.items() if k not in bad}


def _short_error(exc: Exception, key: str | None = None) -> str:
    if isinstance(exc, ValidationError):
        for err in exc.errors():
            if key is None or str(err["loc"][0]) == key:
                return err["msg"].lower()
    return shown(str(exc), 120, quote=False)


# --------------------------------------------------------------------------- knowledge checks
def check_against(
    state: WizardState, knowledge: Knowledge, custom_models: Mapping[str, Any] | None = None
) -> tuple[WizardState, list[str]]:
    """Replace ids the knowledge base does not know with defaults, saying which and why."""
    notes: list[str] = []
    updates: dict[str, Any] = {}

    def note(field: str, value: str, choices, fallback: str) -> None:
        near = closest(value[:200], list(choices))
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        notes.append(f"unknown {field} {shown(value)}{hint}; using {fallback}")

    canonical = catalog_id(knowledge, state.model) if state.model not in (custom_models or {}) else None
    if canonical is not None and canonical != state.model:  # a short name or alias: the link keeps the catalog id
        updates["model"] = canonical
    elif state.model not in knowledge.models and state.model not in (custom_models or {}) \
            and not REPO_ID.match(state.model):
        note("model", state.model, knowledge.models, DEFAULT_MODEL)
        updates["model"] = DEFAULT_MODEL
    if state.gpu not in knowledge.gpus and state.gpu != CUSTOM_GPU_ID:
        note("GPU", state.gpu, knowledge.gpus, DEFAULT_GPU)
        updates["gpu"] = DEFAULT_GPU
    if state.runtime != "auto" and state.runtime not in knowledge.runtimes:
        note("runtime", state.runtime, knowledge.runtimes, "automatic choice")
        updates["runtime"] = "auto"
    endpoints = []
    for e in state.endpoints:
        if e.workload not in knowledge.workloads:
            note(f"workload of endpoint {shown(e.name)}", e.workload, knowledge.workloads, DEFAULT_WORKLOAD)
            e = e.model_copy(update={"workload": DEFAULT_WORKLOAD})
        endpoints.append(e)
    updates["endpoints"] = tuple(endpoints)
    return state.model_copy(update=updates), notes


# --------------------------------------------------------------------------- requests
def custom_gpu_of(state: WizardState) -> dict[str, Any] | None:
    """The custom GPU the state describes (fields left at 0 are not given), or None for a catalog GPU."""
    if state.gpu != CUSTOM_GPU_ID:
        return None
    tflops = {fmt: getattr(state, field) for fmt, field in CUSTOM_TFLOPS.items() if getattr(state, field)}
    return {"name": state.gpu_name, "memory_gib": state.gpu_memory_gib or None,
            "memory_bandwidth_tbps": state.gpu_bandwidth_tbps or None, "dense_tflops": tflops,
            "compute_capability": state.gpu_cc or None}


def to_request(state: WizardState, custom_model: dict[str, Any] | None = None) -> Request:
    """The request the wizard state asks for. Raises pydantic.ValidationError (e.g. an incomplete custom GPU)."""
    return Request(
        model=state.model,
        model_revision=state.model_revision or None,
        custom_model=custom_model,
        custom_gpu=custom_gpu_of(state),
        gpu=state.gpu,
        gpus=state.gpus,
        nodes=state.nodes,
        runtime=None if state.runtime == "auto" else state.runtime,
        priority=None if state.priority == "auto" else state.priority,
        calibration=state.calibration,
        criteria={
            "quality_floor_pct": state.quality_floor or None,
            "unacceptable": list(state.unacceptable),
            "max_ttft_ms": state.max_ttft_ms or None,
            "max_tpot_ms": state.max_tpot_ms or None,
            "max_cost_per_million_tokens": state.max_cost or None,
        },
        usd_per_gpu_hour=state.usd_per_gpu_hour or None,
        host_memory_gib=state.host_memory_gib or None,
        host_memory_bandwidth_gbps=state.host_memory_bandwidth_gbps or None,
        endpoints=[
            Endpoint(
                name=e.name,
                workload=e.workload,
                priority=None if e.priority == "auto" else e.priority,
                concurrency=e.concurrency,
                prompt_tokens=e.prompt_tokens,
                output_tokens=e.output_tokens,
                context=e.context or None,
            )
            for e in state.endpoints
        ],
    )


def from_request(request: Request, knowledge: Knowledge) -> WizardState:
    """The wizard state a request (e.g. an imported plan) corresponds to; preset values fill the gaps."""
    endpoints = []
    for i, e in enumerate(request.endpoints):
        preset = knowledge.workloads.get(e.workload)
        name = e.name if re.fullmatch(NAME_PATTERN, e.name) else f"endpoint-{i + 1}"
        endpoints.append(
            EndpointState(
                name=name,
                workload=e.workload,
                concurrency=e.concurrency or (preset.concurrency if preset else 1),
                prompt_tokens=e.prompt_tokens or (preset.prompt_tokens if preset else 1024),
                output_tokens=e.output_tokens or (preset.output_tokens if preset else 256),
                context=e.context or 0,
                priority=e.priority or "auto",
            )
        )
    custom: dict[str, Any] = {}
    if request.custom_gpu is not None:
        c = request.custom_gpu
        custom = {"gpu_name": c.name, "gpu_memory_gib": c.memory_gib, "gpu_bandwidth_tbps": c.memory_bandwidth_tbps,
                  "gpu_cc": c.compute_capability or "",
                  **{field: c.dense_tflops.get(fmt, 0) for fmt, field in CUSTOM_TFLOPS.items()}}
    return WizardState(
        **custom,
        model=request.model,
        model_revision=request.model_revision or "",
        gpu=request.gpu,
        gpus=request.gpus,
        nodes=request.nodes,
        runtime=request.runtime or "auto",
        priority=request.priority or "auto",
        calibration=request.calibration,
        quality_floor=request.criteria.quality_floor_pct or 0,
        unacceptable=tuple(sorted(request.criteria.unacceptable)),
        max_ttft_ms=request.criteria.max_ttft_ms or 0,
        max_tpot_ms=request.criteria.max_tpot_ms or 0,
        max_cost=request.criteria.max_cost_per_million_tokens or 0,
        usd_per_gpu_hour=request.usd_per_gpu_hour or 0,
        host_memory_gib=request.host_memory_gib or 0,
        host_memory_bandwidth_gbps=request.host_memory_bandwidth_gbps or 0,
        endpoints=tuple(endpoints[:MAX_ENDPOINTS]),
    )


__all__ = [
    "PRIORITIES",
    "EndpointState",
    "WizardState",
    "check_against",
    "from_query",
    "from_request",
    "query_string",
    "to_query",
    "to_request",
]

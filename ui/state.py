"""Wizard state in Streamlit: seed widgets from the URL once per session, read them back, keep the URL in sync.

The codec itself is pure (advisor/permalink.py); this module is the thin glue every page shares, so a page
opened cold from a deep link restores exactly the same state as one reached through the router.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

import streamlit as st
from pydantic import ValidationError

from advisor.errors import closest, shown
from advisor.intake.catalog import catalog_id
from advisor.intake.hub import REPO_ID
from advisor.intake.request import Request
from advisor.knowledge.schema import Knowledge
from advisor.plan.permalink import (
    CUSTOM_TFLOPS,
    MAX_ENDPOINTS,
    NAME_PATTERN,
    EndpointState,
    WizardState,
    check_against,
    from_query,
    from_request,
    query_string,
    to_query,
)

SEEDED = "_seeded"
NOTES = "_url_notes"
CUSTOM_MODELS = "custom_models"  # name -> config.json fields uploaded this session

FIELDS = {  # WizardState field -> widget key
    "model": "w_model",
    "model_revision": "w_model_revision",
    "gpu": "w_gpu",
    "gpus": "w_gpus",
    "nodes": "w_nodes",
    "runtime": "w_runtime",
    "priority": "w_priority",
    "calibration": "w_calibration",
    "quality_floor": "w_quality_floor",
    "unacceptable": "w_unacceptable",
    "max_ttft_ms": "w_max_ttft_ms",
    "max_tpot_ms": "w_max_tpot_ms",
    "max_cost": "w_max_cost",
    "usd_per_gpu_hour": "w_usd_per_gpu_hour",
    "gpu_name": "w_gpu_name",
    "gpu_memory_gib": "w_gpu_memory_gib",
    "gpu_bandwidth_tbps": "w_gpu_bandwidth_tbps",
    "gpu_cc": "w_gpu_cc",
    "gpu_bf16": "w_gpu_bf16",
    "gpu_fp8": "w_gpu_fp8",
    "gpu_int8": "w_gpu_int8",
    "gpu_fp4": "w_gpu_fp4",
    "host_memory_gib": "w_host_memory_gib",
    "host_memory_bandwidth_gbps": "w_host_memory_bandwidth_gbps",
}
ENDPOINT_FIELDS = ("name", "workload", "concurrency", "prompt_tokens", "output_tokens", "context", "priority")
N_ENDPOINTS = "w_n_endpoints"


FIELD_LABELS = {  # WizardState / request field -> the wizard's label, so a bad value is named as the user sees it
    "model": "Model", "model_revision": "Model revision", "gpu": "GPU", "gpus": "GPUs (tensor parallel)", "nodes": "Nodes", "runtime": "Runtime", "priority": "Priority",
    "quality_floor": "Quality floor", "max_ttft_ms": "Time to first token target",
    "max_tpot_ms": "Time per output token target", "max_cost": "Cost target",
    "usd_per_gpu_hour": "Price per GPU-hour", "host_memory_gib": "System RAM",
    "host_memory_bandwidth_gbps": "RAM bandwidth", "gpu_name": "GPU name", "gpu_memory_gib": "GPU memory",
    "gpu_bandwidth_tbps": "GPU bandwidth", "gpu_cc": "Compute capability", "name": "Name",
    "workload": "Workload", "concurrency": "Concurrent requests", "prompt_tokens": "Prompt tokens",
    "output_tokens": "Output tokens", "context": "Context",
}


def field_label(loc: tuple | list) -> str:
    """'endpoints.0.concurrency' -> 'Endpoint 1 · Concurrent requests'."""
    parts = [str(x) for x in loc]
    if len(parts) >= 3 and parts[0] == "endpoints" and parts[1].isdigit():
        return f"Endpoint {int(parts[1]) + 1} · {FIELD_LABELS.get(parts[2], parts[2])}"
    if parts and parts[0] in FIELD_LABELS:
        return FIELD_LABELS[parts[0]]
    return ".".join(parts) or "settings"


def endpoint_key(i: int, field: str) -> str:
    return f"w_e{i}_{field}"


def write_state(state: WizardState) -> None:
    """Put a state into the widget keys (before the widgets are drawn, or from a callback)."""
    for field, key in FIELDS.items():
        value = getattr(state, field)
        st.session_state[key] = list(value) if isinstance(value, tuple) else value
    st.session_state[N_ENDPOINTS] = len(state.endpoints)
    for i in range(MAX_ENDPOINTS):
        e = state.endpoints[i] if i < len(state.endpoints) else EndpointState(name=f"endpoint-{i + 1}")
        for field in ENDPOINT_FIELDS:
            st.session_state[endpoint_key(i, field)] = getattr(e, field)


def seed_from_url_once(knowledge: Knowledge) -> None:
    """First run of a session: the URL decides; afterwards the widgets do."""
    if st.session_state.get(SEEDED):
        return
    query = {k: st.query_params.get_all(k) if k == "e" else st.query_params.get(k) for k in st.query_params}
    state, notes = from_query(query)
    state, more = check_against(state, knowledge)
    write_state(state)
    st.session_state[NOTES] = notes + more
    st.session_state.setdefault(CUSTOM_MODELS, {})
    st.session_state[SEEDED] = True


def read_state() -> tuple[WizardState | None, str | None]:
    """The state the widgets hold now, or an error message naming the field at fault."""
    values: dict[str, Any] = {field: st.session_state.get(key) for field, key in FIELDS.items()}
    values["unacceptable"] = tuple(values["unacceptable"] or ())
    count = int(st.session_state.get(N_ENDPOINTS, 1))
    endpoints = []
    for i in range(count):
        raw = {field: st.session_state.get(endpoint_key(i, field)) for field in ENDPOINT_FIELDS}
        try:
            endpoints.append(EndpointState(**raw))
        except ValidationError as exc:
            return None, error_line(exc, ("endpoints", i))
    try:
        return WizardState(**values, endpoints=tuple(endpoints)), None
    except ValidationError as exc:
        return None, error_line(exc, ())


def error_line(exc: ValidationError, prefix: tuple) -> str:
    """One line naming the field as the wizard labels it, what is wrong and the value entered."""
    err = exc.errors()[0]
    loc = (*prefix, *err["loc"])
    value = err.get("input")
    entered = f" (entered {value:,})" if isinstance(value, int | float) and not isinstance(value, bool) else ""
    hint = " (endpoint names use letters, digits, - and _)" if str(loc[-1]) == "name" else ""
    return f"{field_label(loc)}: {err['msg'][:1].lower()}{err['msg'][1:]}{entered}{hint}"


def sync_url(state: WizardState) -> None:
    """Write the state to the URL once per run, only when it changed (no extra reruns)."""
    wanted = to_query(state)
    current = {k: st.query_params.get_all(k) if k == "e" else st.query_params.get(k) for k in st.query_params}
    if current != wanted:
        st.query_params.from_dict(wanted)


def permalink(state: WizardState, page: str = "") -> str:
    base = str(st.context.url or "").rstrip("/")
    path = f"/{page}" if page else ""
    return f"{base}{path}?{query_string(state)}"


def url_notes() -> list[str]:
    return list(st.session_state.get(NOTES, []))


# --------------------------------------------------------------------------- restoring an imported plan
MAX_MODEL_NAME = next(m.max_length for m in WizardState.model_fields["model"].metadata if hasattr(m, "max_length"))
# WizardState fields a request may hold beyond the wizard's range -> where the request keeps them (section, field)
_CLEARABLE = {
    "max_ttft_ms": ("criteria", "max_ttft_ms"),
    "max_tpot_ms": ("criteria", "max_tpot_ms"),
    "max_cost": ("criteria", "max_cost_per_million_tokens"),
    "quality_floor": ("criteria", "quality_floor_pct"),
    "usd_per_gpu_hour": (None, "usd_per_gpu_hour"),
    "host_memory_gib": (None, "host_memory_gib"),
    "host_memory_bandwidth_gbps": (None, "host_memory_bandwidth_gbps"),
}


def _clear(request: Request, section: str | None, field: str) -> Request:
    if section is None:
        return request.model_copy(update={field: None})
    return request.model_copy(update={section: getattr(request, section).model_copy(update={field: None})})


def restore_request(
    request: Request, knowledge: Knowledge, custom_models: MutableMapping[str, Any], current_model: str
) -> tuple[WizardState | None, list[str]]:
    """The wizard state an imported plan or request comes to, and each thing it could not hold (field and
    reason, input quoted and capped). Never raises for a request plan.load accepted; None (with the reasons)
    only where nothing sensible can be restored. An uploaded config.json the file carries joins
    `custom_models`. Never silently another model: a model that cannot be planned keeps `current_model`, and
    says so."""
    lost: list[str] = []
    updates: dict[str, Any] = {}

    model, custom = request.model, request.custom_model
    if custom is not None:
        if len(model) > MAX_MODEL_NAME:
            lost.append(f"model name {shown(model)} cut to its first {MAX_MODEL_NAME} characters "
                        f"(it has {len(model)}; the wizard holds at most {MAX_MODEL_NAME})")
            model = model[:MAX_MODEL_NAME]
        custom_models[model] = custom
    elif len(model) > MAX_MODEL_NAME:
        lost.append(f"Not restored: model {shown(model)}, a name of {len(model)} characters (the wizard holds at "
                    f"most {MAX_MODEL_NAME}, and no catalog or Hugging Face id is that long); kept {current_model}")
        model = current_model
    elif model not in custom_models:
        canonical = catalog_id(knowledge, model)
        if canonical is not None:
            model = canonical
        elif not REPO_ID.match(model):
            near = closest(model, list(knowledge.models))
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            lost.append(f"Not restored: model {shown(model)}, which is not in the catalog, not a Hugging Face id "
                        f"(owner/name) and comes with no config.json{hint}; kept {current_model}")
            model = current_model
    updates["model"] = model

    endpoints = list(request.endpoints)
    if len(endpoints) > MAX_ENDPOINTS:
        extra = endpoints[MAX_ENDPOINTS:]
        names = ", ".join(shown(e.name, 40) for e in extra[:3]) + (", ..." if len(extra) > 3 else "")
        span = f"{MAX_ENDPOINTS + 1}-{len(endpoints)}" if len(extra) > 1 else f"{len(endpoints)}"
        lost.append(f"Not restored: endpoint{'s' if len(extra) > 1 else ''} {span} ({names}): "
                    f"the wizard holds at most {MAX_ENDPOINTS}")
        endpoints = endpoints[:MAX_ENDPOINTS]
    taken = {e.name for e in endpoints if re.fullmatch(NAME_PATTERN, e.name)}
    for i, e in enumerate(endpoints):
        if re.fullmatch(NAME_PATTERN, e.name):
            continue
        new, n = f"endpoint-{i + 1}", 1
        while new in taken:
            n += 1
            new = f"endpoint-{i + 1}-{n}"
        taken.add(new)
        lost.append(f"endpoint {i + 1} renamed from {shown(e.name)} to {new!r} (the wizard\u2019s names are 1 to 32 "
                    "letters, digits, - and _)")
        endpoints[i] = e.model_copy(update={"name": new})
    updates["endpoints"] = endpoints

    gpu = request.custom_gpu
    if gpu is not None:
        if gpu.vendor != "nvidia":
            lost.append(f"Not restored: custom_gpu.vendor {gpu.vendor!r} (the wizard describes NVIDIA GPUs, by "
                        "compute capability)")
        extra_formats = sorted(set(gpu.dense_tflops) - set(CUSTOM_TFLOPS))
        if extra_formats:
            lost.append(f"Not restored: custom_gpu.dense_tflops for {', '.join(extra_formats)} (the wizard holds "
                        f"{', '.join(CUSTOM_TFLOPS)})")
        if gpu.interconnect_gbps is not None:
            lost.append(f"Not restored: custom_gpu.interconnect_gbps = {gpu.interconnect_gbps:g} (the wizard has "
                        "no field for it)")

    request = request.model_copy(update=updates)
    for _ in range(len(_CLEARABLE) + 1):
        try:
            return from_request(request, knowledge), lost
        except ValidationError as exc:
            errors = exc.errors()
            fixable = [err for err in errors if err["loc"] and str(err["loc"][0]) in _CLEARABLE]
            if not fixable:
                return None, lost + [f"Not restored: {'.'.join(map(str, err['loc'])) or 'plan'} = "
                                     f"{shown(err.get('input'))}: {err['msg']}" for err in errors[:4]]
            for err in fixable:
                section, field = _CLEARABLE[str(err["loc"][0])]
                where = f"{section}.{field}" if section else field
                lost.append(f"Not restored: {where} = {shown(err.get('input'))}: {err['msg'].lower()} in the "
                            "wizard; left unset")
                request = _clear(request, section, field)
    return None, lost

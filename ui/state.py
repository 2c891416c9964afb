"""Wizard state in Streamlit: seed widgets from the URL once per session, read them back, keep the URL in sync.

The codec itself is pure (advisor/permalink.py); this module is the thin glue every page shares, so a page
opened cold from a deep link restores exactly the same state as one reached through the router.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
from pydantic import ValidationError

from advisor.knowledge.schema import Knowledge
from advisor.plan.permalink import (
    MAX_ENDPOINTS,
    EndpointState,
    WizardState,
    check_against,
    from_query,
    query_string,
    to_query,
)

SEEDED = "_seeded"
NOTES = "_url_notes"
CUSTOM_MODELS = "custom_models"  # name -> config.json fields uploaded this session

FIELDS = {  # WizardState field -> widget key
    "model": "w_model",
    "gpu": "w_gpu",
    "gpus": "w_gpus",
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
        endpoints.append({field: st.session_state.get(endpoint_key(i, field)) for field in ENDPOINT_FIELDS})
    try:
        return WizardState(**values, endpoints=tuple(EndpointState(**e) for e in endpoints)), None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        hint = " (endpoint names use letters, digits, - and _)" if where.endswith("name") else ""
        return None, f"{where}: {err['msg']}{hint}"


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

"""The tool pages (Memory calculator, GPU picker): their own controls, kept in the URL beside the wizard's.

A tool page's link is the wizard's link (so the navigation keeps the Plan's settings) plus the tool's own
query keys, every one written (canonical, as advisor.plan.permalink does):

    calculator  xm model, xw weight scheme, xv KV-cache format, xc context, xs concurrent sequences,
                xg GPU, xn GPUs, xr runtime
    GPU picker  pm model, pw workload preset, pt ms to first token, po ms per output token, pk $ per million
                output tokens (targets: 0 = none)

A key the link lacks starts from the Plan page's state (its model, GPU, endpoint and targets); a bad value is
reported in the page's URL notice and replaced, like the wizard's own keys. While the user has not changed
a control here it follows the Plan: when the Plan's value changes, the control takes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from advisor.errors import AdvisorInputError, closest, shown
from advisor.intake.catalog import catalog_id, model_from_config
from advisor.intake.hub import looks_like_repo_id
from advisor.knowledge.schema import Knowledge
from advisor.physics.architecture import architecture_from_config, parse_config_text
from advisor.physics.estimate import MAX_CONTEXT_CAP, EstimateRequest, estimate
from advisor.plan.permalink import DEFAULT_MODEL, DEFAULT_WORKLOAD, check_against, from_query, to_query
from ui import state as ui_state
from ui.frame import MAX_NOTES, cap, found_caption, model_choices, model_found, page_frame, safe_message

MAX_UPLOAD_MB = 1


# --------------------------------------------------------------------------- the tools' states
class CalcState(BaseModel):
    """The memory calculator's inputs (aliases are the query keys); bounds are the engine's."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    model: str = Field(DEFAULT_MODEL, alias="xm", min_length=1, max_length=1024)
    weights: str = Field("int4-awq", alias="xw", min_length=1, max_length=64)
    kv: str = Field("fp8", alias="xv", min_length=1, max_length=64)
    context: int = Field(8192, alias="xc", ge=1, le=10_000_000)
    concurrency: int = Field(8, alias="xs", ge=1, le=100_000)
    gpu: str = Field("l40s", alias="xg", min_length=1, max_length=64)
    gpus: int = Field(1, alias="xn", ge=1, le=64)
    runtime: str = Field("vllm", alias="xr", min_length=1, max_length=64)


class PickerState(BaseModel):
    """The GPU picker's own controls; targets 0 = none (bounds are the wizard's)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    model: str = Field(DEFAULT_MODEL, alias="pm", min_length=1, max_length=1024)
    workload: str = Field(DEFAULT_WORKLOAD, alias="pw", min_length=1, max_length=64)
    max_ttft_ms: float = Field(0, alias="pt", ge=0, le=3_600_000, allow_inf_nan=False)
    max_tpot_ms: float = Field(0, alias="po", ge=0, le=600_000, allow_inf_nan=False)
    max_cost: float = Field(0, alias="pk", ge=0, le=1_000_000, allow_inf_nan=False)


LABELS = {
    "model": "Model",
    "weights": "Weights",
    "kv": "KV cache",
    "context": "Context (tokens per sequence)",
    "concurrency": "Concurrent sequences",
    "gpu": "GPU",
    "gpus": "GPUs (tensor parallel)",
    "runtime": "Runtime",
    "workload": "Workload",
    "max_ttft_ms": "Time to first token, at most (ms)",
    "max_tpot_ms": "Time per output token, at most (ms)",
    "max_cost": "Cost per million output tokens, at most ($)",
}
ENGINE_FIELDS = {  # the engine's field names (CLI flags) -> the control that sets them
    "--model": "model", "model": "model", "--weights": "weights", "--kv": "kv", "--gpu": "gpu",
    "--gpus": "gpus", "--runtime": "runtime", "--context": "context", "--concurrency": "concurrency",
}


def sequences(n: int) -> str:
    return f"{n:,} sequence{'' if n == 1 else 's'}"


def widget_key(prefix: str, field: str) -> str:
    return f"{prefix}_{field}"


def aliases(spec: type[BaseModel]) -> dict[str, str]:
    """query key -> field"""
    return {f.alias: name for name, f in spec.model_fields.items() if f.alias}


def tool_query(state: BaseModel) -> dict[str, str]:
    out = {}
    for name, f in type(state).model_fields.items():
        value = getattr(state, name)
        out[f.alias] = f"{value:g}" if isinstance(value, float) else str(value)
    return out


def bounds(spec: type[BaseModel], field: str) -> tuple[Any, Any]:
    low = high = None
    for m in spec.model_fields[field].metadata:
        low = getattr(m, "ge", low)
        high = getattr(m, "le", high)
    return low, high


def field_problem(spec: type[BaseModel], field: str, value: Any) -> str:
    """One line naming the control and what it takes, for a value the state refuses."""
    low, high = bounds(spec, field)
    label = LABELS.get(field, field)
    if low is not None and high is not None:
        number = f"{value:,}" if isinstance(value, int | float) else shown(value)
        return f"{label}: {number} is outside what the calculator takes ({low:,} to {high:,})"
    return f"{label}: {shown(value)} cannot be used"


def validate(spec: type[BaseModel], values: Mapping[str, Any]) -> tuple[BaseModel | None, str | None]:
    """The state the controls hold, or the first problem, naming the control."""
    try:
        return spec.model_validate(dict(values)), None
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        field = aliases(spec).get(field, field)
        if field in spec.model_fields:
            return None, field_problem(spec, field, values.get(field))
        return None, f"{field or 'input'}: {err['msg'].lower()}"


def decode(spec: type[BaseModel], raw: Mapping[str, str], defaults: Mapping[str, Any]) -> tuple[dict, list[str]]:
    """Field values from the tool's query keys; each bad one reported and replaced by its default."""
    values = dict(defaults)
    notes = []
    for key, field in aliases(spec).items():
        if key not in raw:
            continue
        try:
            values[field] = getattr(spec.model_validate({**values, field: raw[key]}), field)
        except ValidationError as exc:
            msg = next((e["msg"].lower() for e in exc.errors() if e["loc"] and e["loc"][0] in (field, key)),
                       "not a value this control takes")
            notes.append(f"ignored {LABELS.get(field, field).lower()} = {shown(raw[key])}: {msg}; using "
                         f"{shown(defaults[field], 60, quote=isinstance(defaults[field], str))}")
    return values, notes


# --------------------------------------------------------------------------- page start, seeding, URL
def page_start(title: str, spec: type[BaseModel]) -> Knowledge:
    """page_frame, with the tool's own query keys kept out of the wizard's 'unknown parameter' notes."""
    seeding = not st.session_state.get(ui_state.SEEDED)
    knowledge = page_frame(title)
    own = set(aliases(spec))
    if seeding and own & set(st.query_params):
        query = {k: st.query_params.get_all(k) if k == "e" else st.query_params.get(k)
                 for k in st.query_params if k not in own}
        state, notes = from_query(query)
        _, more = check_against(state, knowledge)
        st.session_state[ui_state.NOTES] = notes + more
    return knowledge


def seed_tool(prefix: str, spec: type[BaseModel], defaults: Mapping[str, Any],
              check: Callable[[dict], tuple[dict, list[str]]]) -> None:
    """First run of this tool in a session: the URL (or, for keys it lacks, the Plan) sets the controls. Later
    runs: a control follows the Plan's value when that changes."""
    seen_key = f"_{prefix}_plan"
    if not st.session_state.get(f"_{prefix}_seeded"):
        raw = {k: st.query_params.get(k) for k in aliases(spec) if k in st.query_params}
        values, notes = decode(spec, raw, defaults)
        values, more = check(values)
        for field, value in values.items():
            st.session_state[widget_key(prefix, field)] = value
        st.session_state[f"_{prefix}_notes"] = notes + more
        st.session_state[f"_{prefix}_seeded"] = True
        st.session_state[seen_key] = dict(defaults)
        return
    seen = st.session_state.get(seen_key) or {}
    for field, value in defaults.items():
        if field in seen and seen[field] != value:
            st.session_state[widget_key(prefix, field)] = value
    st.session_state[seen_key] = dict(defaults)


def show_notes(prefix: str) -> None:
    """The wizard's URL notes and the tool's, in one notice (as ui.frame.show_url_notes words it)."""
    notes = ui_state.url_notes() + list(st.session_state.get(f"_{prefix}_notes", []))
    if notes:
        shown_notes = [safe_message(n) for n in notes[:MAX_NOTES]]
        if len(notes) > MAX_NOTES:
            shown_notes.append(f"and {len(notes) - MAX_NOTES} more")
        st.warning("Some settings in the link could not be used and were replaced by defaults: "
                   + "; ".join(shown_notes) + ".", icon=":material/link_off:")


def sync_url(state: BaseModel) -> None:
    """The wizard's keys (as ui.state.sync_url writes them) and the tool's, in one update when they changed."""
    own = set(type(state).model_fields[f].alias for f in type(state).model_fields)
    wizard, _ = ui_state.read_state()
    current = {k: st.query_params.get_all(k) if k == "e" else st.query_params.get(k) for k in st.query_params}
    base = to_query(wizard) if wizard is not None else {k: v for k, v in current.items() if k not in own}
    wanted = {**base, **tool_query(state)}
    if current != wanted:
        st.query_params.from_dict(wanted)


def plan_model() -> str:
    return st.session_state.get(ui_state.FIELDS["model"]) or DEFAULT_MODEL


def custom_models() -> dict:
    return st.session_state.setdefault(ui_state.CUSTOM_MODELS, {})


# --------------------------------------------------------------------------- model input (as the Plan page)
def check_link_ids(values: dict, defaults: dict, knowledge: Knowledge,
                   tables: Mapping[str, tuple[str, Mapping]]) -> tuple[dict, list[str]]:
    """A tool page's ids from a link, checked: each `tables` field (label, table) must be a row of its table and
    the model must pass check_model; an unknown one is named (escaped later), the nearest ids suggested, and
    replaced by its default."""
    notes: list[str] = []
    for field, (label, table) in tables.items():
        if values[field] not in table:
            near = closest(str(values[field])[:200], list(table))
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            notes.append(f"unknown {label} {shown(values[field])}{hint}; using {defaults[field]}")
            values[field] = defaults[field]
    model, error = check_model(values["model"], knowledge)
    if model is None:
        notes.append(f"{error}; using {defaults['model']}")
        values["model"] = defaults["model"]
    else:
        values["model"] = model
    return values, notes


def check_model(text: str, knowledge: Knowledge) -> tuple[str | None, str | None]:
    """(the model id to use, None) or (None, why not): a catalog id or alias, an uploaded config.json, or a Hugging
    Face repo id. Never a path on the server (the engine would read it)."""
    text = (text or "").strip()
    if not text:
        return None, "Model: a model is required"
    if text in custom_models():
        return text, None
    canonical = catalog_id(knowledge, text)
    if canonical is not None:
        return canonical, None
    if looks_like_repo_id(text):
        return text, None
    near = closest(text[:200], list(knowledge.models))
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    return None, (f"Model: {shown(text)} is not a catalog model, a Hugging Face id (owner/name) nor an uploaded "
                  f"config.json{hint}")


def _add_config(key: str, uploader: str) -> None:
    upload = st.session_state.get(uploader)
    st.session_state.pop(f"_{uploader}_error", None)
    if upload is None:
        return
    try:
        config = parse_config_text(upload.getvalue(), where=cap(upload.name))
        architecture_from_config(config, where=cap(upload.name))
    except AdvisorInputError as exc:
        st.session_state[f"_{uploader}_error"] = str(exc)
        return
    stem = upload.name.removesuffix(".json")
    name = str(config.get("_name_or_path") or (stem if stem != "config" else "uploaded-model"))[:200]
    custom_models()[name] = config
    st.session_state[key] = name


def model_input(key: str, uploader: str, knowledge: Knowledge) -> tuple[str | None, str | None]:
    """The Plan page's model input: a catalog search, any Hugging Face id typed in, or a config.json upload; what
    the model resolves to in a caption. Returns (model id, None) or (None, the error, already shown)."""
    custom = custom_models()
    st.selectbox(
        "Model: a catalog entry or any Hugging Face id",
        model_choices(knowledge, custom, st.session_state.get(key)),
        key=key,
        persist_state="session",
        accept_new_options=True,
        format_func=lambda m: (
            f"{knowledge.models[m].name} · {m}" if m in knowledge.models
            else f"{cap(m)} (uploaded config.json)" if m in custom
            else f"{cap(m)} (Hugging Face)" if looks_like_repo_id(m) else cap(m)
        ),
        help="Type to search the catalog, or type any Hugging Face repo id (owner/name) and press Enter.",
    )
    st.file_uploader("…or upload a config.json", type=["json"], key=uploader, on_change=_add_config,
                     args=(key, uploader), max_upload_size=MAX_UPLOAD_MB)
    if st.session_state.get(f"_{uploader}_error"):
        st.error(safe_message(st.session_state[f"_{uploader}_error"]), icon=":material/error:")
    model, error = check_model(st.session_state.get(key) or "", knowledge)
    if error:
        st.error(safe_message(error), icon=":material/error:")
        return None, error
    found, found_error = model_found(model)
    if found_error:
        st.error(safe_message(found_error), icon=":material/error:")
        return None, found_error
    if found:
        st.caption(found_caption(found))
    return model, None


# --------------------------------------------------------------------------- the calculator's engine calls
@st.cache_data(max_entries=128, show_spinner=False, ttl=3600)
def _estimate_cached(request_json: str, custom_json: str | None) -> tuple[dict | None, str | None]:
    request = EstimateRequest.model_validate_json(request_json)
    try:
        if custom_json is None:
            return estimate(request).model_dump(), None
        model = model_from_config(json.loads(custom_json), name=request.model, where=f"config.json of {request.model}")
        return estimate(request, model=model).model_dump(), None
    except AdvisorInputError as exc:
        return None, str(exc)


def estimate_for(state: CalcState) -> tuple[dict | None, str | None]:
    """The engine's estimate (as a dict), or (None, one line naming the field)."""
    request = EstimateRequest(model=state.model, weights=state.weights, kv=state.kv, context=state.context,
                              concurrency=state.concurrency, gpu=state.gpu, gpus=state.gpus, runtime=state.runtime)
    custom = custom_models().get(state.model)
    return _estimate_cached(request.model_dump_json(), json.dumps(custom, sort_keys=True) if custom else None)


def engine_problem(error: str) -> str:
    """An engine error with the control's label in place of its CLI flag."""
    head, _, rest = error.partition(":")
    field = ENGINE_FIELDS.get(head.strip())
    return f"{LABELS[field]}:{rest}" if field and rest else error


def context_problem(state: CalcState, result: dict) -> str | None:
    """Context beyond what the model was trained for: the field, the value and the limit."""
    limit = result["context_limit"]
    if state.context <= limit:
        return None
    why = ("its max_position_embeddings" if limit != MAX_CONTEXT_CAP else
           "the calculator's cap for a config.json that states no max_position_embeddings")
    return (f"{LABELS['context']}: {state.context:,} tokens is over {result['model_name']}'s limit of {limit:,} "
            f"tokens ({why})")


def what_would_fit(state: CalcState, result: dict, knowledge: Knowledge) -> list[str]:
    """Concrete changes under which the configuration fits: fewer sequences, a shorter context, a smaller KV-cache
    format, more GPUs of this kind. Each was estimated; none is a guess."""
    out = []
    if result["max_concurrency"]:
        out.append(f"fewer sequences: up to {sequences(result['max_concurrency'])} of {state.context:,} tokens fit")
    if result["max_context"]:
        out.append(f"a shorter context: {sequences(state.concurrency)} fit at up to {result['max_context']:,} "
                   "tokens each")
    current = knowledge.kv_formats.get(state.kv)
    gpu = knowledge.gpus[state.gpu]
    smaller = []
    for kv_id, kv in knowledge.kv_formats.items():
        if current is None or kv.element_bits >= current.element_bits or state.runtime not in kv.runtime_flags:
            continue
        if kv.requires_native and kv.requires_native not in gpu.native_formats:
            continue
        trial, _ = estimate_for(state.model_copy(update={"kv": kv_id}))
        if trial and trial["fits"]:
            smaller.append(f"{kv_id} (room for {sequences(trial['max_concurrency'])})")
    if smaller:
        out.append("a smaller KV-cache format: " + ", ".join(smaller))
    for n in (2, 4, 8, 16, 32, 64):
        if n <= state.gpus:
            continue
        trial, _ = estimate_for(state.model_copy(update={"gpus": n}))
        if trial and trial["fits"]:
            out.append(f"more GPUs: {n} x {gpu.name} hold it (room for {sequences(trial['max_concurrency'])})")
            break
    else:
        if state.gpus < 64:
            out.append(f"more GPUs of this kind do not help: no count up to 64 {gpu.name} holds it at these settings")
    for hint in result.get("fit_hints") or []:
        out.append(f"a server setting: {hint}")
    return out

"""GPU picker: for a model and one endpoint, each GPU kind at the fewest of 1, 2, 4 or 8 GPUs that fits and meets
the targets, cheapest per million output tokens first, each with its recommended precision.

Its own controls (model, workload preset, speed and cost targets) start from the Plan page and change here
without going back; they are in the URL beside the wizard's (ui/tools.py: pm, pw, pt, po, pk)."""

import pandas as pd
import streamlit as st
from pydantic import ValidationError

from advisor.decide.gpu_picker import GPU_COUNTS, pick_gpus
from advisor.errors import AdvisorInputError
from advisor.intake.request import Request
from ui import charts, tools
from ui import state as ui_state
from ui.frame import request_for, safe_message, safe_text, stop_on_invalid

PREFIX = "p"
knowledge = tools.page_start("GPU picker", tools.PickerState)
st.title("GPU picker")

wizard, wizard_error = ui_state.read_state()
if wizard is None:
    st.error(f"These settings cannot be used: {safe_message(wizard_error)}.", icon=":material/error:")
    st.stop()
names = [e.name for e in wizard.endpoints]
chosen = st.session_state.get("gpus_endpoint")
endpoint_state = wizard.endpoints[names.index(chosen) if chosen in names else 0]


def plan_defaults() -> dict:
    """Where the controls start: the Plan page's model, the endpoint's workload and the Plan's targets."""
    return {"model": tools.plan_model(), "workload": endpoint_state.workload, "max_ttft_ms": wizard.max_ttft_ms,
            "max_tpot_ms": wizard.max_tpot_ms, "max_cost": wizard.max_cost}


def check_ids(values: dict) -> tuple[dict, list[str]]:
    return tools.check_link_ids(values, plan_defaults(), knowledge, {"workload": ("workload", knowledge.workloads)})


tools.seed_tool(PREFIX, tools.PickerState, plan_defaults(), check_ids)
tools.show_notes(PREFIX)


def key(field: str) -> str:
    return tools.widget_key(PREFIX, field)


@st.cache_data(max_entries=16, ttl=3600, show_spinner="Trying every GPU kind at 1, 2, 4 and 8 GPUs...")
def options_for(request_json: str) -> tuple[list[dict], str | None]:
    try:
        return [o.model_dump() for o in pick_gpus(Request.model_validate_json(request_json))], None
    except AdvisorInputError as exc:
        return [], str(exc)


left, middle, right = st.columns([2, 1, 1])
with left:
    model, model_error = tools.model_input(key("model"), "p_upload_config", knowledge)
with middle:
    if len(names) > 1:
        chosen = st.selectbox("Plan endpoint", names, key="gpus_endpoint",
                              help="Its shape (concurrency, prompt and output tokens) is used while the workload "
                              "below is the endpoint's own.")
    st.selectbox(tools.LABELS["workload"], list(knowledge.workloads), key=key("workload"), persist_state="session",
                 format_func=lambda w: knowledge.workloads[w].name)
with right:
    for field, step in (("max_ttft_ms", 50.0), ("max_tpot_ms", 5.0), ("max_cost", 0.5)):
        low, high = tools.bounds(tools.PickerState, field)
        st.number_input(tools.LABELS[field], min_value=float(low), max_value=float(high), step=step, key=key(field),
                        persist_state="session", help="0 = no target.")
if model_error:
    st.stop()

values = {field: st.session_state.get(key(field)) for field in tools.PickerState.model_fields}
values["model"] = model
picker, problem = tools.validate(tools.PickerState, values)
if picker is None:
    st.error(f"{safe_message(problem)}.", icon=":material/error:")
    st.stop()
tools.sync_url(picker)

request = request_for(wizard)
endpoint = request.endpoints[names.index(endpoint_state.name)]
if picker.workload != endpoint.workload:  # another preset brings its own shape
    endpoint = endpoint.model_copy(update={"workload": picker.workload, "concurrency": None, "prompt_tokens": None,
                                           "output_tokens": None, "context": None})
try:
    single = Request.model_validate({
        **request.model_dump(),
        "model": picker.model,
        "custom_model": tools.custom_models().get(picker.model),
        "endpoints": [endpoint.model_dump()],
        "criteria": {**request.criteria.model_dump(), "max_ttft_ms": picker.max_ttft_ms or None,
                     "max_tpot_ms": picker.max_tpot_ms or None,
                     "max_cost_per_million_tokens": picker.max_cost or None},
    })
except ValidationError as exc:
    stop_on_invalid(exc)

targets = [
    t
    for t in (
        f"first token <= {picker.max_ttft_ms:g} ms" if picker.max_ttft_ms else "",
        f"<= {picker.max_tpot_ms:g} ms per token" if picker.max_tpot_ms else "",
        f"<= ${picker.max_cost:g} per million tokens" if picker.max_cost else "",
    )
    if t
]
counts = ", ".join(str(n) for n in GPU_COUNTS[:-1]) + f" or {GPU_COUNTS[-1]}"
st.caption(
    f"{safe_text(picker.model)} · endpoint {safe_text(endpoint.name, 32)} · "
    f"{safe_text(knowledge.workloads[picker.workload].name)} · targets: {safe_text(', '.join(targets) or 'none')}. "
    f"For each GPU kind, the fewest of {counts} GPUs that serve the endpoint (fit it and meet its targets), "
    "cheapest per million output tokens first; prices are on-demand list prices (knowledge/gpu_prices.yaml)."
)
rows, error = options_for(single.model_dump_json())
if error:
    st.error(f"These settings cannot be planned: {safe_message(error)}", icon=":material/error:")
    st.stop()
if not rows:
    st.warning(f"No GPU kind serves this endpoint with {counts} GPUs: none fits it and meets its targets.",
               icon=":material/warning:")
    st.stop()

table = pd.DataFrame(
    [
        {
            "GPU": f"{r['gpus']} x {r['gpu_name']}",
            "precision": r["notation"],
            "runtime": r["runtime"] + ("" if r["speed_measured"] else " *"),
            "layout": f"TP{r['tensor_parallel']}" + (f" x {r['replicas']}" if r["replicas"] > 1 else ""),
            "expected accuracy %": r["expected_recovery_pct"],
            "GiB per GPU": r["total_gib_per_gpu"],
            "first token ms": r["ttft_ms"],
            "ms per token": r["tpot_ms"],
            "tokens/s (all)": r["throughput_tokens_per_s"],
            "$ per GPU-hour": r["usd_per_gpu_hour"],
            "$ per M tokens": r["cost_per_million_tokens"],
        }
        for r in rows
    ]
)
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    column_config={
        "first token ms": st.column_config.NumberColumn(format="%.0f"),
        "ms per token": st.column_config.NumberColumn(format="%.1f"),
        "tokens/s (all)": st.column_config.NumberColumn(format="%.0f"),
        "$ per M tokens": st.column_config.NumberColumn(format="$%.2f"),
        "expected accuracy %": st.column_config.NumberColumn(format="%.2f"),
    },
)
if any(not r["speed_measured"] for r in rows):
    st.caption("* no published measurement backs this runtime's speed at that concurrency and GPU count; "
               "its figures rest on assumed fractions (knowledge/speed.yaml).")
priced = [r for r in rows if r["cost_per_million_tokens"] is not None][:12]
if priced:
    fig = charts.cost_figure(priced)
    st.plotly_chart(fig, key="gpus_cost", width="stretch", config={"displayModeBar": False})

"""GPU picker: for the Plan page's model and one endpoint, every GPU kind and count that fits and meets the
targets, cheapest per million output tokens first, each with its recommended precision."""

import pandas as pd
import streamlit as st

from advisor.decide.gpu_picker import pick_gpus
from advisor.errors import AdvisorInputError
from advisor.intake.request import Request
from ui import charts
from ui.frame import current_state, page_frame, request_for, safe_message, safe_text, show_url_notes

knowledge = page_frame("GPU picker")
st.title("GPU picker")
show_url_notes()
state = current_state()


@st.cache_data(max_entries=16, show_spinner="Trying every GPU kind and count...")
def options_for(request_json: str) -> tuple[list[dict], str | None]:
    try:
        return [o.model_dump() for o in pick_gpus(Request.model_validate_json(request_json))], None
    except AdvisorInputError as exc:
        return [], str(exc)


request = request_for(state)
names = [e.name for e in request.endpoints]
chosen = st.selectbox("Endpoint", names, key="gpus_endpoint") if len(names) > 1 else names[0]
single = request.model_copy(update={"endpoints": [request.endpoints[names.index(chosen)]]})
crit = single.criteria
targets = [
    t
    for t in (
        f"first token <= {crit.max_ttft_ms:g} ms" if crit.max_ttft_ms else "",
        f"<= {crit.max_tpot_ms:g} ms per token" if crit.max_tpot_ms else "",
        f"<= ${crit.max_cost_per_million_tokens:g} per million tokens" if crit.max_cost_per_million_tokens else "",
    )
    if t
]
st.caption(
    f"{safe_text(state.model)} · endpoint {safe_text(chosen, 32)} · targets: "
    f"{', '.join(targets) or 'none (set them on the Plan page)'}. "
    "Counts 1, 2, 4 and 8 per GPU kind; prices are on-demand list prices (knowledge/gpu_prices.yaml)."
)
rows, error = options_for(single.model_dump_json())
if error:
    st.error(f"These settings cannot be planned: {safe_message(error)}", icon=":material/error:")
    st.stop()
if not rows:
    st.warning("No GPU kind and count up to 8 fits this endpoint and meets its targets.", icon=":material/warning:")
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

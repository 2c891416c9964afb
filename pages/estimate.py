"""Memory calculator: a model, a weight scheme, a KV format and GPUs -> what fits.

Thin page: controls (seeded from the URL once, else from the Plan page) -> advisor.physics.estimate -> render.
Its state is in the URL beside the wizard's (ui/tools.py: xm, xw, xv, xc, xs, xg, xn, xr). A value the
calculator cannot use keeps the last result on screen under a banner naming the field.
"""

import pandas as pd
import streamlit as st

from advisor.physics.memory import GB, GIB
from ui import state as ui_state
from ui import tools
from ui.frame import safe_message, safe_text

PREFIX = "x"
knowledge = tools.page_start("Memory calculator", tools.CalcState)
LAST = "_x_last"  # (state, result) of the last estimate shown without a problem


def plan_defaults() -> dict:
    """Where the calculator starts: the Plan page's model, GPU and count."""
    base = tools.CalcState()
    gpu = st.session_state.get(ui_state.FIELDS["gpu"])
    return {**base.model_dump(), "model": tools.plan_model(),
            "gpu": gpu if gpu in knowledge.gpus else base.gpu,
            "gpus": int(st.session_state.get(ui_state.FIELDS["gpus"]) or 1) if gpu in knowledge.gpus else base.gpus}


def check_ids(values: dict) -> tuple[dict, list[str]]:
    """Ids the knowledge base must know, from a link: unknown ones named and replaced."""
    tables = {field: (tools.LABELS[field].lower(), table) for field, table in (
        ("weights", knowledge.schemes), ("kv", knowledge.kv_formats), ("gpu", knowledge.gpus),
        ("runtime", knowledge.runtimes))}
    return tools.check_link_ids(values, plan_defaults(), knowledge, tables)


tools.seed_tool(PREFIX, tools.CalcState, plan_defaults(), check_ids)

st.title("Memory calculator")
st.caption(
    "Memory for serving an LLM at a given precision: weights, KV cache and runtime overhead, "
    "against your GPUs. It starts from the Plan page's model and GPUs; changes here stay here. GiB = 2^30 bytes."
)
tools.show_notes(PREFIX)


def key(field: str) -> str:
    return tools.widget_key(PREFIX, field)


left, middle, right = st.columns(3)
with left:
    model, model_error = tools.model_input(key("model"), "x_upload_config", knowledge)
with middle:
    st.selectbox(tools.LABELS["weights"], list(knowledge.schemes), key=key("weights"), persist_state="session")
    st.selectbox(tools.LABELS["kv"], list(knowledge.kv_formats), key=key("kv"), persist_state="session")
    # Bounds wider than the engine's on purpose: a value it cannot take reaches the page, which names it.
    st.number_input(tools.LABELS["context"], min_value=0, max_value=10**12, step=1024, key=key("context"),
                    persist_state="session", help="1 to 10,000,000 tokens, and at most the model's limit.")
    st.number_input(tools.LABELS["concurrency"], min_value=0, max_value=10**12, key=key("concurrency"),
                    persist_state="session", help="1 to 100,000.")
with right:
    st.selectbox(tools.LABELS["runtime"], list(knowledge.runtimes), key=key("runtime"), persist_state="session",
                 format_func=lambda r: f"{knowledge.runtimes[r].name} {knowledge.runtimes[r].version}")
    gpu_ids = list(knowledge.gpus)
    st.selectbox(tools.LABELS["gpu"], gpu_ids, key=key("gpu"), persist_state="session",
                 format_func=lambda g: f"{knowledge.gpus[g].name} ({knowledge.gpus[g].memory_gib:g} GiB)")
    st.number_input(tools.LABELS["gpus"], min_value=0, max_value=10**6, key=key("gpus"), persist_state="session",
                    help="1 to 64.")

# --------------------------------------------------------------------------- validate, estimate, or keep the last
values = {field: st.session_state.get(key(field)) for field in tools.CalcState.model_fields}
problem = model_error
state = result = None
if problem is None:
    values["model"] = model
    state, problem = tools.validate(tools.CalcState, values)
if state is not None:
    result, error = tools.estimate_for(state)
    problem = tools.engine_problem(error) if error else tools.context_problem(state, result)

if problem is None:
    st.session_state[LAST] = (state, result)
    tools.sync_url(state)
else:
    last = st.session_state.get(LAST)
    keep = " Showing the last valid result below until it is fixed." if last else " Nothing to show until it is fixed."
    st.error(f"{safe_message(problem)}.{keep}", icon=":material/error:")
    if not last:
        st.stop()
    state, result = last

st.caption(
    f"For {safe_text(result['model_name'])} · weights {safe_text(state.weights)} · KV {safe_text(state.kv)} · "
    f"{state.concurrency:,} x {state.context:,} tokens · {state.gpus} x {knowledge.gpus[state.gpu].name} · "
    f"{knowledge.runtimes[state.runtime].name}" + (" (the last valid settings)" if problem else "")
)
spare = (result["capacity_bytes"] - result["total_bytes"]) / GIB
if result["fits"]:
    st.success(
        f"Fits: {spare:,.2f} GiB to spare. Up to {tools.sequences(result['max_concurrency'])} at {state.context:,} "
        f"tokens; {tools.sequences(state.concurrency)} fit up to {result['max_context']:,} tokens each."
    )
else:
    if not result["max_concurrency"] and not result["max_context"]:
        head = (f"Nothing fits: with the weights and runtime overhead there is no room for the KV cache of even "
                f"one sequence (over by {-spare:,.2f} GiB).")
    elif not result["max_concurrency"]:
        head = (f"Does not fit: over by {-spare:,.2f} GiB. Not one sequence of {state.context:,} tokens fits.")
    else:
        head = (f"Does not fit: over by {-spare:,.2f} GiB. {tools.sequences(state.concurrency)} of "
                f"{state.context:,} tokens need more KV cache than there is room for.")
    ways = tools.what_would_fit(state, result, knowledge)
    st.error(head + ("\n\nWhat would fit:\n" + "\n".join(f"- {safe_message(w, None)}" for w in ways) if ways else
                     " No smaller KV-cache format or larger GPU count holds it; try a smaller weight format."),
             icon=":material/block:")

cols = st.columns(5)
cols[0].metric(
    "Weights",
    f"{result['weights_bytes_per_gpu'] * result['gpus'] / GIB:,.2f} GiB",
    help=f"{result['weights_bytes'] / GB:,.2f} GB decimal checkpoint size",
)
cols[1].metric("KV cache", f"{result['kv_cache_bytes'] / GIB:,.2f} GiB")
cols[2].metric("Overhead", f"{result['overhead_bytes'] / GIB:,.2f} GiB",
               help="activations + CUDA context + headroom the runtime leaves unused")
cols[3].metric("Total", f"{result['total_bytes'] / GIB:,.2f} GiB")
cols[4].metric("Capacity", f"{result['capacity_bytes'] / GIB:,.2f} GiB")

st.subheader("Weights by module")
st.dataframe(
    pd.DataFrame(
        [
            {
                "module": m["group"],
                "parameters": m["params"],
                "stored as": m["format"],
                "bits/weight": m["bits_per_weight"],
                "GiB": m["bytes"] / GIB,
            }
            for m in result["modules"]
        ]
    ),
    hide_index=True,
    column_config={
        "parameters": st.column_config.NumberColumn(format="localized"),
        "bits/weight": st.column_config.NumberColumn(format="%.3f"),
        "GiB": st.column_config.NumberColumn(format="%.3f"),
    },
)
savings = result["savings"]
st.write(
    f"Against BF16: weights **{savings['weights_factor']:.2f}x** smaller, KV "
    f"**{savings['kv_factor']:.2f}x** smaller. {safe_text(savings['why'], None)}"
)
with st.expander("Assumptions and sources"):
    for line in result["warnings"]:
        st.warning(safe_text(line, None))
    for line in result["assumptions"]:
        st.markdown(f"- {safe_text(line, None)}")
    st.markdown("**Sources**")
    for src in result["sources"]:
        st.markdown(f"- {safe_text(src, None)}")

"""Memory estimate: a model, a weight scheme, a KV format and GPUs -> what fits.

Thin page: read widgets, call advisor.physics.estimate, render. The full wizard comes with the wizard issue.
"""

import pandas as pd
import streamlit as st

from advisor.errors import AdvisorInputError
from advisor.physics.estimate import EstimateRequest, estimate
from advisor.physics.memory import GB, GIB
from ui.frame import page_frame, safe_message, safe_text

knowledge = page_frame("Memory calculator")

st.title("Memory calculator")
st.caption(
    "Memory for serving an LLM at a given precision: weights, KV cache and runtime overhead, "
    "against your GPUs. GiB = 2^30 bytes."
)

models = list(knowledge.models)
left, middle, right = st.columns(3)
with left:
    model = st.selectbox("Model", models, index=models.index("meta-llama/Llama-3.1-8B-Instruct"), key="model")
    weights = st.selectbox(
        "Weights", list(knowledge.schemes), index=list(knowledge.schemes).index("int4-awq"), key="weights"
    )
    kv = st.selectbox("KV cache", list(knowledge.kv_formats), index=list(knowledge.kv_formats).index("fp8"), key="kv")
with middle:
    context = st.number_input("Context (tokens per sequence)", 1, 2_000_000, 8192, step=1024, key="context")
    concurrency = st.number_input("Concurrent sequences", 1, 100_000, 8, key="concurrency")
    runtime = st.selectbox("Runtime", list(knowledge.runtimes), key="runtime")
with right:
    gpu_ids = list(knowledge.gpus)
    gpu = st.selectbox(
        "GPU", gpu_ids, index=gpu_ids.index("l40s"), key="gpu", format_func=lambda g: knowledge.gpus[g].name
    )
    gpus = st.number_input("GPUs (tensor parallel)", 1, 64, 1, key="gpus")

try:
    result = estimate(
        EstimateRequest(
            model=model,
            weights=weights,
            kv=kv,
            context=int(context),
            concurrency=int(concurrency),
            gpu=gpu,
            gpus=int(gpus),
            runtime=runtime,
        ),
        knowledge,
    )
except AdvisorInputError as exc:
    st.error(safe_message(exc))
    st.stop()

if result.fits:
    st.success(
        f"Fits: {(result.capacity_bytes - result.total_bytes) / GIB:,.2f} GiB to spare. "
        f"Up to {result.max_concurrency:,} sequences at {result.context:,} tokens."
    )
else:
    st.error(
        f"Does not fit: over by {(result.total_bytes - result.capacity_bytes) / GIB:,.2f} GiB. "
        f"At {result.context:,} tokens at most {result.max_concurrency:,} sequences fit; "
        f"{result.concurrency} sequences fit up to {result.max_context:,} tokens."
    )

cols = st.columns(5)
cols[0].metric(
    "Weights",
    f"{result.weights_bytes_per_gpu * result.gpus / GIB:,.2f} GiB",
    help=f"{result.weights_bytes / GB:,.2f} GB decimal checkpoint size",
)
cols[1].metric("KV cache", f"{result.kv_cache_bytes / GIB:,.2f} GiB")
cols[2].metric(
    "Overhead",
    f"{result.overhead_bytes / GIB:,.2f} GiB",
    help="activations + CUDA context + headroom the runtime leaves unused",
)
cols[3].metric("Total", f"{result.total_bytes / GIB:,.2f} GiB")
cols[4].metric("Capacity", f"{result.capacity_bytes / GIB:,.2f} GiB")

st.subheader("Weights by module")
st.dataframe(
    pd.DataFrame(
        [
            {
                "module": m.group,
                "parameters": m.params,
                "stored as": m.format,
                "bits/weight": m.bits_per_weight,
                "GiB": m.bytes / GIB,
            }
            for m in result.modules
        ]
    ),
    hide_index=True,
    column_config={
        "parameters": st.column_config.NumberColumn(format="localized"),
        "bits/weight": st.column_config.NumberColumn(format="%.3f"),
        "GiB": st.column_config.NumberColumn(format="%.3f"),
    },
)
st.write(
    f"Against BF16: weights **{result.savings.weights_factor:.2f}x** smaller, KV "
    f"**{result.savings.kv_factor:.2f}x** smaller. {safe_text(result.savings.why, None)}"
)
with st.expander("Assumptions and sources"):
    for line in result.warnings:
        st.warning(safe_text(line, None))
    for line in result.assumptions:
        st.markdown(f"- {safe_text(line, None)}")
    st.markdown("**Sources**")
    for src in result.sources:
        st.markdown(f"- `{src}`")

"""Compare: candidate configurations side by side for one endpoint - memory, quality risk, the rules
that favour each. Reads the same wizard state (URL or session) as the Plan page."""

import pandas as pd
import streamlit as st

from advisor.plan.document import memory_per_gpu
from ui import charts
from ui.frame import current_state, or_stop, page_frame, recommend_result, request_for, show_url_notes

knowledge = page_frame("Compare")
st.title("Compare configurations")
show_url_notes()
state = current_state()
result = or_stop(*recommend_result(request_for(state)))

names = [e.shape.name for e in result.endpoints]
chosen = st.selectbox("Endpoint", names, key="compare_endpoint") if len(names) > 1 else names[0]
endpoint = result.endpoints[names.index(chosen)]
st.caption(
    f"{result.model.name} on {state.gpus} x {result.gpu.name} · {endpoint.shape.workload.name}, "
    f"{endpoint.shape.concurrency} x {endpoint.shape.context:,} tokens, priority {endpoint.shape.priority}. "
    "Change these on the Plan page."
)


def label(combo) -> str:
    return f"{knowledge.candidates[combo.candidate].notation} KV-{combo.kv.upper()} · {combo.candidate}"


options = {label(c): c for c in endpoint.ranked}
if endpoint.pick is not None and not endpoint.fits:  # nothing fits: start from the closest option
    options[f"{label(endpoint.pick)} (closest; does not fit)"] = endpoint.pick
for rejection in endpoint.rejected:
    if rejection.memory is not None:
        options.setdefault(
            f"{rejection.notation} KV-{(rejection.kv or '').upper()} · {rejection.candidate} (does not fit)", rejection
        )
if not options:
    st.info("Nothing to compare: no configuration can be served here. See the Plan page for the reasons.")
    st.stop()
# Default: the pick, the next best distinct configurations, and one that memory ruled out.
distinct, seen = [], set()
for name, combo in options.items():
    if hasattr(combo, "total") and combo.candidate not in seen and endpoint.fits:
        seen.add(combo.candidate)
        distinct.append(name)
default = distinct[:3] + [k for k in options if k.endswith("does not fit)")][: 1 if distinct else 4]
picked = st.multiselect("Configurations", list(options), default=default, key="compare_picked", max_selections=8)
if not picked:
    st.stop()

rows, bars = [], []
for name in picked:
    item = options[name]
    candidate = knowledge.candidates[item.candidate.split(",")[0]]
    fit = item.memory
    mem = memory_per_gpu(fit) or {}
    feasible = hasattr(item, "total")
    rows.append(
        {
            "configuration": name.split(" · ")[0],
            "method": candidate.name,
            "fits": bool(fit and fit.fits),
            "GiB per GPU": mem.get("total"),
            "weights GiB": mem.get("weights"),
            "KV GiB": mem.get("kv_cache"),
            "max sequences": fit.max_concurrency if fit else None,
            "quality risk (0-4)": candidate.quality.risk,
            "published recovery %": f"{candidate.quality.worst_recovery_pct:g}-{candidate.quality.typical_recovery_pct:g}",
            "score": round(item.total, 2) if feasible else None,
            "favoured by": "; ".join(f.title for f in item.fired if f.effect != "reject" and "+" in f.effect)
            if feasible
            else "",
            "held back by": "; ".join(f.title for f in item.fired if "-" in f.effect)
            if feasible
            else "; ".join(r.text for r in item.reasons),
        }
    )
    if mem:
        bars.append(
            {
                "label": name.split(" · ")[0] + (f" · {candidate.method}" if candidate.method else ""),
                "weights_gib": mem["weights"],
                "kv_cache_gib": mem["kv_cache"],
                "overhead_gib": mem["overhead"],
                "fits": bool(fit and fit.fits),
                "role": "pick" if endpoint.pick is item else "alternative" if feasible else "rejected",
            }
        )

st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
if bars:
    capacity = result.gpu.memory_gib
    st.plotly_chart(
        charts.memory_figure(bars, capacity), key="compare_memory", width="stretch", config={"displayModeBar": False}
    )
scored = [
    {"label": f"{r['configuration']} · {r['method']}", **options[n].scores}
    for r, n in zip(rows, picked, strict=True)
    if hasattr(options[n], "total")
]
if scored:
    st.plotly_chart(
        charts.scores_figure(scored), key="compare_scores", width="stretch", config={"displayModeBar": False}
    )
    st.caption(
        "Scores: published quality risk and the rules that fired, per dimension; the priority's weights "
        "combine them (knowledge/priorities.yaml)."
    )

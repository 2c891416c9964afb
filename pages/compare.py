"""Compare: chosen configurations for one endpoint side by side - expected accuracy, speed, cost, memory, and the
rules of thumb that apply to each. Reads the same wizard state (URL or session) as the Plan page."""

import pandas as pd
import streamlit as st

from advisor.plan.document import memory_per_gpu
from ui import charts
from ui.frame import (
    current_state,
    or_stop,
    page_frame,
    recommend_result,
    request_for,
    safe_text,
    show_chart,
    show_url_notes,
)
from ui.views import glossary

knowledge = page_frame("Compare")
st.title("Compare configurations")
show_url_notes()
state = current_state()
result = or_stop(*recommend_result(request_for(state)))

names = [e.shape.name for e in result.endpoints]
chosen = st.selectbox("Endpoint", names, key="compare_endpoint") if len(names) > 1 else names[0]
endpoint = result.endpoints[names.index(chosen)]
st.caption(
    f"{safe_text(result.model.name)} on {state.gpus} x {safe_text(result.gpu.name)} · "
    f"{safe_text(endpoint.shape.workload.name)}, "
    f"{endpoint.shape.concurrency} x {endpoint.shape.context:,} tokens, priority {endpoint.shape.priority}. "
    "Change these on the Plan page."
)


def label(dep) -> str:
    where = f"TP{dep.layout.tensor_parallel}" + (f"x{dep.layout.replicas}" if dep.layout.replicas > 1 else "")
    return (f"{knowledge.candidates[dep.candidate].notation} KV-{dep.kv.upper()} · {dep.candidate} · "
            f"{knowledge.runtimes[dep.runtime].name} {where}")


# One entry per configuration and runtime (its best layout), best first.
options, seen = {}, set()
for dep in endpoint.ranked:
    if (dep.candidate, dep.kv, dep.runtime) not in seen:
        seen.add((dep.candidate, dep.kv, dep.runtime))
        options[label(dep)] = dep
if endpoint.pick is not None and not endpoint.fits:  # nothing fits: start from the closest option
    options[f"{label(endpoint.pick)} (closest; does not serve)"] = endpoint.pick
closest = (endpoint.pick.candidate, endpoint.pick.kv) if endpoint.pick is not None and not endpoint.fits else None
for rejection in endpoint.rejected:
    if rejection.memory is not None and (rejection.candidate, rejection.kv) != closest:
        # The label says what the table's "fits" column says: "(does not fit)" only where memory is the reason.
        why = "does not fit" if not rejection.memory.fits else "ruled out"
        options.setdefault(
            f"{rejection.notation} KV-{(rejection.kv or '').upper()} · {rejection.candidate} ({why})", rejection
        )
if not options:
    st.info("Nothing to compare: no configuration can be served here. See the Plan page for the reasons.")
    st.stop()
# Default: the pick, the next best distinct configurations, and one that memory ruled out.
distinct, candidates = [], set()
for name, item in options.items():
    if hasattr(item, "quality") and item.candidate not in candidates and endpoint.fits:
        candidates.add(item.candidate)
        distinct.append(name)
default = distinct[:3] + [k for k in options if k.endswith("does not fit)")][: 1 if distinct else 4]
picked = st.multiselect("Configurations", list(options), default=default, key="compare_picked", max_selections=8)
if not picked:
    st.stop()

front = {id(d) for d in endpoint.pareto}
claims = {c.rule: c for c in endpoint.claims}
rows, bars, points = [], [], []
for name in picked:
    item = options[name]
    candidate = knowledge.candidates[item.candidate.split(",")[0]]
    fit = item.memory
    mem = memory_per_gpu(fit) or {}
    deployed = hasattr(item, "quality")
    perf = item.performance if deployed else None
    rows.append(
        {
            "configuration": name.split(" · ")[0],
            "method": candidate.name,
            "runtime": knowledge.runtimes[item.runtime].name if deployed else "",
            "expected accuracy %": round(item.quality.expected_recovery_pct, 2) if deployed else None,
            "worst case %": round(item.quality.worst_recovery_pct, 2) if deployed else None,
            "sequences per replica": item.concurrency if deployed else None,
            "ms per token": round(perf.tpot_ms, 1) if perf else None,
            "first token ms": round(perf.ttft_ms) if perf else None,
            "tokens/s": round(perf.throughput_tokens_per_s) if perf else None,
            "$ per M tokens": round(perf.cost_per_million_tokens, 3) if perf and perf.cost_per_million_tokens else None,
            "on the Pareto front": id(item) in front if deployed else False,
            "fits": bool(fit and fit.fits),
            "GiB per GPU": mem.get("total"),
            "max sequences": (fit.max_concurrency * item.layout.replicas if deployed else fit.max_concurrency)
            if fit else None,
            "why not": "" if deployed else "; ".join(r.text for r in item.reasons),
        }
    )
    if deployed:
        points.append({"label": name, "expected_recovery_pct": item.quality.expected_recovery_pct,
                       "cost": perf.cost_per_million_tokens if perf.cost_per_million_tokens is not None
                       else item.metrics["gpu_hours_per_million_tokens"],
                       "cost_unit": "$ per million output tokens" if perf.cost_per_million_tokens is not None
                       else "GPU-hours per million output tokens",
                       "tpot_ms": perf.tpot_ms, "pareto": id(item) in front, "pick": item is endpoint.pick})
    if mem:
        bars.append(
            {
                "label": name.split(" · ")[0] + (f" · {candidate.method}" if candidate.method else ""),
                "weights_gib": mem["weights"],
                "kv_cache_gib": mem["kv_cache"],
                "overhead_gib": mem["overhead"],
                "fits": bool(fit and fit.fits),
                "role": "pick" if endpoint.pick is item else "alternative" if deployed else "rejected",
            }
        )

st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
st.caption("ms per token, first token and tokens/s are each configuration's at its own load (sequences per replica; "
           "the same figures the Plan page shows for the pick). First token is one prompt's prefill with no time "
           "spent queued; under load, requests also wait for each other. GiB per GPU is set against what the "
           "runtime leaves usable on each GPU (the dashed line).")
if points and len({p["cost_unit"] for p in points}) == 1:
    show_chart(charts.pareto_figure(points, title="Accuracy against cost (colour: ms per token)", validate=False),
               key="compare_pareto")
if bars:
    # The capacity the fit checks used (what the runtime leaves usable), not the GPU's nominal memory: a bar
    # between the two would otherwise read "(does not fit)" while ending inside the line.
    usable = [memory_per_gpu(options[n].memory)["capacity"] for n in picked if options[n].memory is not None]
    capacity = min(usable) if usable else result.gpu.memory_gib
    show_chart(charts.memory_figure(bars, capacity, validate=False), key="compare_memory")
glossary()
if endpoint.claims:
    st.markdown("**Rules of thumb for this endpoint, checked against the numbers**")
    st.dataframe(pd.DataFrame([{"rule": c.title, "about": c.metric, "the numbers": "agree" if c.holds else "disagree",
                                "figures": c.text} for c in endpoint.claims]), hide_index=True, width="stretch")

"""Rendering of one endpoint's plan: the pick in plain words, memory against capacity, why, the ladder,
alternatives and what was ruled out, the validation checklist and the commands. Input is the plan
document (the same one the YAML export holds), so the page shows exactly what a user downloads."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from advisor.knowledge.schema import Knowledge
from ui import charts
from ui.frame import safe_text, show_chart

MAX_CHART_ROWS = 8

# Seed 003's scenarios, as knowledge/candidates.yaml assigns them (a "+D" adds a quantized KV cache).
SCENARIOS = {
    "baseline": "16-bit weights and activations, nothing quantized",
    "A": "weight-only quantization (W8A16, W4A16, GGUF, EXL2): weights stored small, activations stay 16-bit",
    "B": "integer or FP4 weights and activations (INT8 W8A8 SmoothQuant, W4A8, NVFP4)",
    "C": "FP8 weights and activations, on GPUs with FP8 tensor cores",
    "D": "a quantized KV cache (FP8, INT8, INT4, q8_0, q4_0) instead of 16-bit",
    "E": "2-3 bit weights: extreme compression that needs distillation or fine-tuning to recover accuracy",
}
TERMS = {
    "Expected accuracy": "the share of the BF16 model's task scores this configuration keeps, averaged over the "
    "workload's tasks from published measurements (knowledge/quality.yaml); 100% = no loss.",
    "Worst case": "the lowest the same evidence allows (the worst published result, widened where the evidence "
    "is only from a nearby model); plan for it on critical endpoints.",
    "Balanced utility": "the balanced priority's score: expected accuracy plus one point for each halving of the "
    "cost per million tokens (knowledge/priorities.yaml).",
    "TPOT": "time per output token under the endpoint's load: a decode step with its sequences in the batch, plus "
    "the other sequences' prompts prefilled between steps; the time-per-token target is checked against it.",
    "TTFT": "time to first token: one prompt's prefill, with no time spent queued behind other requests.",
    "Pareto front": "options no other option beats on expected accuracy, cost, TPOT and TTFT together.",
}


def scenario_text(code: str) -> str:
    """'A+D' -> 'A = weight-only ...; D = a quantized KV cache ...' (unknown letters are named as they are)."""
    parts = [p.strip() for p in str(code).split("+") if p.strip()]
    return "; ".join(f"{p} = {SCENARIOS.get(p, 'not a scenario this app knows')}" for p in parts)


def glossary(scenario: str | None = None) -> None:
    with st.expander("What the letters and scores mean", icon=":material/help:"):
        lines = [f"- **Scenario {k}**: {v}" for k, v in SCENARIOS.items() if k != "baseline"]
        lines.append("- Scenarios combine with +: **A+D** is weight-only quantization with a quantized KV cache "
                     "(seed 003).")
        lines += [f"- **{k}**: {v}" for k, v in TERMS.items()]
        st.markdown("\n".join(lines))


def _md(text: object) -> str:
    """The engine's sentences embed names the user chose (a model from a config.json or a shared plan, an
    endpoint): rendered as Markdown, so escaped whole (they carry no formatting of their own)."""
    return safe_text(text, None)


def _table(rows: list[dict]) -> None:
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def _gib(value: float | None) -> str:
    """GiB with two decimals, one from 100 (so a metric stays readable in a narrow column)."""
    if value is None:
        return "-"
    return f"{value:,.1f} GiB" if value >= 100 else f"{value:,.2f} GiB"


def memory_rows(endpoint: dict) -> list[dict]:
    """Bars for the memory chart: the pick, its alternatives, and what memory ruled out."""
    rows: list[dict] = []

    def add(label: str, mem: dict | None, fits: bool, role: str) -> None:
        if mem and len(rows) < MAX_CHART_ROWS:
            rows.append(
                {
                    "label": label,
                    "weights_gib": mem["weights"],
                    "kv_cache_gib": mem["kv_cache"],
                    "overhead_gib": mem["overhead"],
                    "fits": fits,
                    "role": role,
                }
            )

    rec = endpoint.get("recommendation")
    m = endpoint.get("memory")
    if rec and m:
        per = m["gpus"] or 1
        add(
            f"{rec['notation']} ({rec['candidate']})",
            {
                "weights": m["weights_gib"] / per,
                "kv_cache": m["kv_cache_gib"] / per,
                "overhead": m["overhead_gib"] / per,
            },
            bool(m["fits"]),
            "pick",
        )
    for alt in endpoint.get("alternatives", []):
        if alt.get("rank") is not None:
            add(f"{alt['notation']} ({alt['candidate']})", alt.get("memory"), alt["fits"], "alternative")
    picked = rec["candidate"] if rec else None
    for rej in endpoint.get("rejected", []):
        if rej.get("memory") and picked not in rej["candidate"].split(", "):
            add(
                f"{rej['notation']} KV-{str(rej.get('closest_kv', '')).upper()} ({rej['candidate']})",
                rej["memory"],
                False,
                "rejected",
            )
    return rows


def kv_rows(endpoint: dict) -> list[dict]:
    picked = (endpoint.get("recommendation") or {}).get("kv_cache", {}).get("kv_format")
    return [
        {"kv": o["kv"], "value": o["max_concurrency"], "picked": o["kv"] == picked, "available": o["available"],
         "reason": o.get("reason"), "meets_targets": o.get("meets_targets", True), "tpot_ms": o.get("tpot_ms"),
         "expected_recovery_pct": o.get("expected_recovery_pct")}
        for o in endpoint.get("kv_options", [])
    ]


def kv_lines(endpoint: dict) -> list[str]:
    """One plain line per KV format: picked, or why not, with the figure (the plan's kv_options)."""
    rec = endpoint.get("recommendation") or {}
    picked = rec.get("kv_cache", {}).get("kv_format")
    pick = next((o for o in endpoint.get("kv_options", []) if o["kv"] == picked), None)
    lines = []
    for o in endpoint.get("kv_options", []):
        figures = []
        if o["available"] and o.get("tpot_ms") is not None:
            figures.append(f"{o['tpot_ms']:,.1f} ms per token")
        if o["available"] and o.get("expected_recovery_pct") is not None:
            figures.append(f"{o['expected_recovery_pct']:.2f}% expected accuracy")
        if o["available"]:
            figures.append(f"room for {o['max_concurrency']:,} sequences")
        tail = f" ({', '.join(figures)})" if figures else ""
        if o["kv"] == picked:
            text = f"picked{tail}"
        elif o.get("reason"):
            text = f"{o['reason']}" + (tail if o["available"] else "")
        elif o["available"] and o.get("meets_targets") and pick is not None:
            text = f"also meets every target{tail}; not picked: the objective preferred the pick"
        else:
            text = f"not picked{tail}"
        lines.append(f"{o['kv']}: {text}")
    return lines


def kv_explanation(endpoint: dict) -> str:
    """The list under the KV chart, as Markdown (every line escaped: it quotes the engine's reasons)."""
    lines = kv_lines(endpoint)
    if not lines:
        return ""
    head = ("**Why each KV format** (✗ on the chart: misses a target or does not fit; n/a: this runtime or GPU "
            f"cannot use it). Objective: {_md(endpoint.get('objective', ''))}.")
    return head + "\n\n" + "\n".join(f"- {_md(line)}" for line in lines)


def pareto_rows(endpoint: dict) -> list[dict]:
    """Points for the trade-off chart: every option the plan lists, on the front or dominated."""
    options = endpoint.get("options") or []
    priced = all(o.get("cost_per_million_tokens") is not None for o in options)
    unit = "$ per million output tokens" if priced else "GPU-hours per million output tokens"
    rows = []
    for o in options:
        layout = o["layout"]
        where = f"TP{layout['tensor_parallel']}" + (f" x{layout['replicas']}" if layout["replicas"] > 1 else "")
        rows.append({
            "label": f"{o['notation']} ({o['candidate']}) · {o['runtime']} · {where}",
            "expected_recovery_pct": o["expected_recovery_pct"],
            "cost": o["cost_per_million_tokens"] if priced else o["gpu_hours_per_million_tokens"],
            "cost_unit": unit, "tpot_ms": o["tpot_ms"], "pareto": o["pareto"], "pick": o["pick"],
        })
    return rows


def _metrics(endpoint: dict) -> None:
    q, perf, m, d = endpoint["quality"], endpoint.get("performance") or {}, endpoint["memory"], endpoint["deployment"]
    cols = st.columns(6)
    cols[0].metric("Expected accuracy", f"{q['expected_recovery_pct']:.2f}%",
                   help=f"vs BF16 for this workload's tasks; worst case {q['worst_recovery_pct']:.2f}% "
                   "(knowledge/quality.yaml)")
    band = perf.get("bands_pct") or {}
    held = " The band is the 80th percentile of the model's error on held-out published measurements."

    def label(name: str, key: str) -> str:  # the band in the label, so a narrow column never cuts it off
        return f"{name} ±{band[key]:g}%" if band.get(key) else name

    per_replica = d["requests_per_replica"]
    load = f"{per_replica:,} sequence{'s' if per_replica != 1 else ''}" + (" per replica" if d["replicas"] > 1 else "")
    cols[1].metric(label("TPOT", "decode"), f"{perf.get('tpot_ms', 0):,.1f} ms",
                   help=f"time per output token, modelled under this endpoint's load: a decode step with {load} in "
                   "the batch plus the other sequences' prompts prefilled between steps. The time-per-token target "
                   "is checked against this figure." + (held if band else ""))
    cols[2].metric(label("TTFT", "prefill"), f"{perf.get('ttft_ms', 0):,.0f} ms",
                   help="time to first token: one prompt's prefill, with no time spent queued behind other requests."
                   + (held if band else ""))
    cols[3].metric(label("Tokens/s", "throughput"), f"{perf.get('throughput_tokens_per_s', 0):,.0f}",
                   help=f"output tokens per second over all {d['total_requests']:,} requests and replicas, with the "
                   "prompts' prefill interleaved." + (held if band else ""))
    cost = perf.get("cost_per_million_tokens")
    cols[4].metric(label("Cost/M tok", "throughput"), "-" if cost is None else f"${cost:,.2f}",
                   help=f"at ${perf.get('usd_per_gpu_hour') or 0:g} per GPU-hour" if cost is not None
                   else "no price on file: set your price per GPU-hour")
    layout = f"TP{d['tensor_parallel']}" + (f" × {d['replicas']} replicas" if d["replicas"] > 1 else "")
    cols[5].metric("Layout", layout, help=f"{d['requests_per_replica']} requests per replica, "
                   f"{d['total_requests']} in all")
    cols = st.columns(6)
    cols[0].metric("Weights", _gib(m["weights_gib"]), help=f"{m['weights_gb_decimal']} GB decimal checkpoint size")
    cols[1].metric("KV cache", _gib(m["kv_cache_gib"]))
    cols[2].metric("Overhead", _gib(m["overhead_gib"]), help=_md(m["includes"]))
    cols[3].metric(f"Total of {m['capacity_gib']:,.0f} GiB", _gib(m["total_gib"]),
                   help=f"{m['total_gib'] / m['capacity_gib']:.0%} of {m['capacity_gib']:,.2f} GiB on {m['gpus']} GPU(s)"
                   + (" per replica" if m["replicas"] > 1 else ""))
    cols[4].metric("Max sequences", f"{m['max_concurrency']:,}", help=f"at {endpoint['shape']['context']:,} tokens")
    cols[5].metric("Max context", f"{m['max_context']:,}", help=f"at {endpoint['shape']['concurrency']} sequences")
    if perf:
        st.caption(_md(speed_note(endpoint)))


def speed_note(endpoint: dict) -> str:
    """How TPOT, TTFT and tokens/s relate, at the endpoint's load, so the three figures reconcile on the page."""
    perf, d = endpoint["performance"], endpoint["deployment"]
    total, tpot, tput = d["total_requests"], perf["tpot_ms"], perf["throughput_tokens_per_s"]
    step = perf.get("decode_step_ms") or tpot
    per_seq = total * 1000 / tput if tput else 0
    load = f"{d['requests_per_replica']:,} sequences per replica x {d['replicas']}" if d["replicas"] > 1 \
        else f"{total:,} sequence{'s' if total != 1 else ''}"
    between = (f"a decode step of the batch ({step:,.1f} ms) plus the other sequences' prompts prefilled between "
               "steps, spread over each answer" if tpot - step >= 0.05 else "one decode step of the batch")
    return (f"At this endpoint's load ({load}): TPOT {tpot:,.1f} ms is {between}; with each sequence's own prompt "
            f"too, the batch gives {tput:,.0f} tokens/s, {per_seq:,.1f} ms per token per sequence on average. TTFT "
            f"{perf['ttft_ms']:,.0f} ms assumes no time spent queued: it is one prompt's prefill alone; under load, "
            "requests also wait for each other.")


def render_endpoint(endpoint: dict, knowledge: Knowledge, key: str, speed=None) -> None:
    """`speed`: a callable returning the speed curves for this endpoint (computed only if its tab opens)."""
    rec = endpoint.get("recommendation")
    if endpoint["fits"]:
        st.success(_md(endpoint["summary"]), icon=":material/check_circle:")
    else:
        st.error(_md(endpoint["summary"]), icon=":material/error:")
    if rec is None:
        _table([{"configuration": r["notation"], "why not": "; ".join(r["reasons"])} for r in endpoint["rejected"]])
        return
    w, kv = rec["weights"], rec["kv_cache"]
    st.markdown(f"#### {_md(rec['notation'])} · scenario {_md(rec['scenario'])}",
                help="Scenario " + _md(scenario_text(rec["scenario"])) + " (seed 003's scenarios A-E).")
    st.caption(_md(
        f"Weights {w['format'].upper()} ({w['scheme']}, {w['method'] or 'no method'}, "
        f"{w['bits_per_weight']} bits/weight with everything kept in 16-bit) · activations "
        f"{rec['activations']['format'].upper()} · KV cache {kv['kv_format']} "
        f"({kv['bytes_per_element']} bytes/element) · runtime {endpoint['runtime']['name']} "
        f"{endpoint['runtime']['version']}"
    ))
    st.caption("Scenario " + _md(scenario_text(rec["scenario"])) + ".")
    _metrics(endpoint)
    glossary()
    if endpoint.get("what_would_fit"):
        st.warning("What would fit: " + _md("; ".join(endpoint["what_would_fit"])), icon=":material/lightbulb:")
    for near in endpoint.get("near_misses", []):
        st.info("Near miss: " + _md(near["text"]), icon=":material/balance:")
    if endpoint.get("partial_offload"):
        with st.expander("Partial offload with llama.cpp: part of the model in system RAM", expanded=not endpoint["fits"],
                         icon=":material/swap_vert:"):
            st.caption("No GGUF fits whole in VRAM. llama.cpp can keep some layers on the GPU (-ngl) and run the rest "
                       "from system RAM: it works, at the speed of the RAM. Modelled; measure before relying on it.")
            st.dataframe(
                [{"configuration": o["notation"], "layers on GPU": f"{o['gpu_layers']} of {o['total_layers']}",
                  "VRAM GiB": o["vram_gib"], "RAM GiB": o["ram_gib"], "ms/token": o["tpot_ms"],
                  "tokens/s, one sequence": o["decode_tokens_per_s"], "expected accuracy %": o["expected_recovery_pct"],
                  "RAM": o["ram_check"]} for o in endpoint["partial_offload"]],
                hide_index=True, width="stretch")
            st.code("\n".join(o["serve_command"] for o in endpoint["partial_offload"]), language="bash",
                    wrap_lines=True)

    left, right = st.columns([3, 2])
    with left:
        rows = memory_rows(endpoint)
        if rows:
            show_chart(charts.memory_figure(rows, m_capacity(endpoint), validate=False), key=f"{key}_mem")
    with right:
        kvs = kv_rows(endpoint)
        if kvs:
            show_chart(charts.kv_capacity_figure(kvs, "max_concurrency", title="KV cache format: sequences that fit",
                                                 validate=False), key=f"{key}_kv")
            st.markdown(kv_explanation(endpoint))

    # Lazy tabs: only the open one is rendered, which keeps each rerun (and the browser) light.
    sections = {
        "Why": lambda: _why(endpoint, rec),
        "Trade-offs": lambda: _tradeoffs(endpoint, key),
        "Step-down ladder": lambda: _ladder(endpoint),
        "Alternatives": lambda: _alternatives(endpoint),
        "Ruled out": lambda: _ruled_out(endpoint),
        "Validation": lambda: _validation(endpoint),
        "Run it": lambda: _run_it(endpoint, rec),
        "Speed": lambda: _speed(endpoint, key, speed),
    }
    for tab, render in zip(
        st.tabs(list(sections), key=f"{key}_details", on_change="rerun"), sections.values(), strict=True
    ):
        if tab.open:
            with tab:
                render()


def m_capacity(endpoint: dict) -> float:
    m = endpoint["memory"]
    return m["capacity_gib"] / (m["gpus"] or 1)


def _why(endpoint: dict, rec: dict) -> None:
    """The default tab, so plain text only (a data grid costs the browser more than the rest of the page)."""
    lines = [f"- {_md(item['text'])}" for item in endpoint["rationale"]
             if item["kind"] in ("numbers", "objective", "runtime", "quality")]
    claims = endpoint.get("claims") or []
    if claims:
        lines.append("\n**Rules of thumb, checked against these numbers**\n")
        lines += [f"- {'✓ agree' if c['holds'] else '✗ disagree'} · {_md(c['title'])} "
                  f"({'the pick' if c['on_pick'] else 'an alternative'}): {_md(c['text'])}" for c in claims]
    notes = [item["text"] for item in endpoint["rationale"] if item["kind"] == "note"]
    if notes:
        lines.append("\n**Notes**\n")
        lines += [f"- {_md(note)}" for note in notes]
    q = endpoint["quality"]
    tasks = "; ".join(f"{t['task']} (weight {t['weight']:g}): {t['recovery_pct']:.2f}%, worst {t['worst_pct']:.2f}%, "
                      f"from {', '.join(t['evidence']) or 'the BF16 reference'}" for t in q["by_task"])
    lines.append(f"\n**Expected accuracy by task:** {_md(tasks)}.")
    lines += [f"\n*{_md(note)}*" for note in q.get("nearest_evidence", [])[:3]]
    lines.append("\n**Kept in high precision:** " + _md("; ".join(rec["high_precision_layers"])))
    st.markdown("\n".join(lines))


def _tradeoffs(endpoint: dict, key: str) -> None:
    st.markdown(f"**Objective ({_md(endpoint['priority'])}):** {_md(endpoint['objective'])}")
    points = pareto_rows(endpoint)
    if points:
        show_chart(charts.pareto_figure(points, title="Accuracy against cost (colour: ms per token)", validate=False),
                   key=f"{key}_pareto")
    _table([
        {"pick": "★" if p["pick"] else "", "configuration": f"{p['notation']} ({p['candidate']})",
         "runtime": p["runtime"], "layout": f"TP{p['layout']['tensor_parallel']} x{p['layout']['replicas']}",
         "expected %": p["quality"]["expected_recovery_pct"], "worst %": p["quality"]["worst_recovery_pct"],
         "ms/token": p["performance"]["tpot_ms"], "TTFT ms": p["performance"]["ttft_ms"],
         "$/M tokens": p["performance"]["cost_per_million_tokens"], "GiB/GPU": p["total_gib_per_gpu"]}
        for p in endpoint["pareto"]
    ])
    st.caption("The Pareto front: no other option the engine evaluated is at least as good on expected accuracy, "
               "cost, time per token and time to first token and better on one.")


def _ladder(endpoint: dict) -> None:
    _table(
        [
            {
                "step": s["step"],
                "role": s["role"],
                "configuration": s["notation"],
                "fits": s["fits"],
                "GiB per GPU": s["total_gib_per_gpu"],
                "note": s["note"],
            }
            for s in endpoint["ladder"]
        ]
    )
    fb = endpoint.get("fallback")
    if fb:
        st.markdown("**Fallback to keep configured:** "
                    + _md(f"{fb['notation']} ({fb['name']}) on {fb['runtime']}: " + "; ".join(fb["why"])))


def _alternatives(endpoint: dict) -> None:
    _table(
        [
            {
                "rank": str(a.get("rank") or "same weights"),
                "configuration": a["notation"],
                "method": a["name"],
                "runtime": a["runtime"],
                "expected %": a["quality"]["expected_recovery_pct"],
                "ms/token": a["performance"]["tpot_ms"],
                "$/M tokens": a["performance"]["cost_per_million_tokens"],
                "GiB per GPU": a["total_gib_per_gpu"],
                "max sequences": a["max_concurrency"],
            }
            for a in endpoint["alternatives"]
        ]
    )


def _ruled_out(endpoint: dict) -> None:
    _table(
        [
            {
                "configuration": r["notation"],
                "candidates": r["candidate"],
                "why not": "; ".join(r["reasons"]),
                "rules": ", ".join(r["rules"]),
            }
            for r in endpoint["rejected"]
        ]
    )


def _validation(endpoint: dict) -> None:
    _table(
        [
            {
                "check": v["check"],
                "metric": v["metric"],
                "threshold": v["threshold"],
                "phase": v["phase"],
                "why": v["why"],
            }
            for v in endpoint["validation"]
        ]
    )
    probes = endpoint.get("quality_probes") or []
    if probes:
        st.caption("Probes that matter for this workload: " + _md(", ".join(probes)))


def _run_it(endpoint: dict, rec: dict) -> None:
    rt = endpoint["runtime"]
    st.markdown(f"**Serve** with {_md(rt['name'])} {_md(rt['version'])} ({_md(rt['chosen_by'])}):")
    st.code(rt["serve_command"], language="bash", wrap_lines=True)
    if rt.get("notes"):
        st.markdown("**Runtime notes**\n\n" + "\n".join(f"- {_md(note)}" for note in rt["notes"]))
    if rt.get("config"):
        st.markdown(f"with `{rt['config_file']}`:")
        st.code(rt["config"], language="yaml")
    qz = rt["quantization"]
    st.markdown(f"**Quantize:** {_md(qz['note'])}")
    if qz.get("recipe"):
        st.code(qz["recipe"], language=qz.get("language") or "text")
    calibration = rec["calibration"]
    if calibration.get("needed"):
        st.caption(_md(
            f"Calibration: {calibration['samples']} prompts ({calibration['samples_range']}), "
            f"{calibration['sequence_length']} tokens each, {calibration['data']}."
        ))


def _speed(endpoint: dict, key: str, speed) -> None:
    perf = endpoint.get("performance")
    if perf is None:
        st.info("No speed estimate for this endpoint.")
        return
    cost = (f" · ${perf['cost_per_million_tokens']:,.2f} per million output tokens at "
            f"${perf['usd_per_gpu_hour']:g}/GPU-hour" if perf.get("cost_per_million_tokens") is not None else "")
    st.markdown(f"**Modelled:** first token {perf['ttft_ms']:,.0f} ms ({_md(perf['bound']['prefill'])}-bound), "
                f"{perf['tpot_ms']:,.1f} ms per token ({_md(perf['bound']['decode'])}-bound), "
                f"{perf['throughput_tokens_per_s']:,.0f} output tokens/s in all{cost}.")
    if speed is not None:
        series = speed()
        if series:
            total = endpoint["deployment"]["total_requests"]  # what the pick runs (a batch ceiling may be more)
            point = {"concurrency": total, "throughput": perf["throughput_tokens_per_s"], "tpot_ms": perf["tpot_ms"]}
            show_chart(charts.throughput_figure(series, current=total, point=point), key=f"{key}_tput")
    rows = [{"label": endpoint["recommendation"]["notation"], "ttft_ms": perf["ttft_ms"], "tpot_ms": perf["tpot_ms"],
             "pick": True}]  # the same figures as the metrics above: at this endpoint's load
    rows += [{"label": f"{a['notation']} ({a['candidate']})", "ttft_ms": a["performance"]["ttft_ms"],
              "tpot_ms": a["performance"]["tpot_ms"]}
             for a in endpoint.get("alternatives", []) if a.get("rank") and a.get("performance")][:5]
    show_chart(charts.latency_figure(rows), key=f"{key}_lat")
    st.caption(_md(speed_note(endpoint)) + " ")
    st.caption("Roofline model (advisor/performance.py) with achievable fractions fitted to published measurements "
               "(knowledge/speed.yaml); see the README's speed section for its limits. "
               + _md(" ".join(perf["assumptions"][:2])))

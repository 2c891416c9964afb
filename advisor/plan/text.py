"""The plan as a short text summary (``--format text``): per endpoint the pick and its numbers, why, the
Pareto front, the ladder, alternatives, near misses, the fallback, what was ruled out and how to serve it.
Renders the plan document only."""

from __future__ import annotations

from typing import Any


def _money(perf: dict[str, Any] | None) -> str:
    if not perf or perf.get("cost_per_million_tokens") is None:
        return "-"
    return f"${perf['cost_per_million_tokens']:,.2f}/M"


def _layout(layout: dict[str, Any]) -> str:
    tp, r, pp = layout["tensor_parallel"], layout["replicas"], layout.get("pipeline_parallel", 1)
    one = f"TP{tp}" + (f"xPP{pp}" if pp > 1 else "")
    return (one if r == 1 else f"{r}x{one}") + f" @{layout['requests_per_replica']}"


def _row(item: dict[str, Any]) -> str:
    perf, q = item.get("performance") or {}, item["quality"]
    label = f"{item['notation']} ({item['candidate']})"
    return (f"{label:<34} {item['runtime']:<12} {_layout(item['layout']):<11} "
            f"{q['expected_recovery_pct']:>6.2f}% {perf.get('tpot_ms', 0):>7.1f} ms/tok "
            f"{perf.get('ttft_ms', 0):>7,.0f} ms TTFT {_money(perf):>10}  {item['total_gib_per_gpu']} GiB/GPU")


def render_text(document: dict[str, Any]) -> str:
    hw = document["hardware"]
    nodes = f" per node x {hw['nodes']} nodes" if hw.get("nodes", 1) > 1 else ""
    lines = [f"{document['model']['name']} on {hw['gpus']} x {hw['name']}{nodes}"]
    for e in document["endpoints"]:
        shape = e["shape"]
        up_to = "up to " if shape["concurrency_mode"] == "ceiling" else ""
        lines += ["", f"[{e['name']}] {e['workload']}, priority {e['priority']}: {up_to}{shape['concurrency']:,} x "
                  f"{shape['context']:,} tokens ({shape['prompt_tokens']:,} in / {shape['output_tokens']:,} out), "
                  f"concurrency as a {shape['concurrency_mode']}"]
        lines.append(f"  {e['summary']}")
        status = e.get("validation_status")
        if isinstance(status, dict):  # a plan verify wrote, planned again (advisor.plan.verify.carry_validation)
            decision = e.get("decision") or {}
            lines.append(f"  validated {status.get('status')}: last decision {decision.get('action', '?')} "
                         f"({decision.get('step', '-')}); " + "; ".join(map(str, status.get("why", []))))
        rec = e.get("recommendation")
        if rec is None:
            lines += [f"  x {r['notation']}: {r['reasons'][0]}" for r in e["rejected"][:6]]
            continue
        w, kv, m, d = rec["weights"], rec["kv_cache"], e["memory"], e["deployment"]
        one = f"TP{d['tensor_parallel']}" + (f" x PP{d['pipeline_parallel']} ({d['pipeline_parallel']} nodes)"
                                             if d.get("pipeline_parallel", 1) > 1 else "")
        layout = f"{d['replicas']} x {one}" if d["replicas"] > 1 else one
        lines.append(f"  pick      {rec['notation']} (scenario {rec['scenario']}) on {e['runtime']['name']} "
                     f"{d['runtime_version']}, {layout}, {d['requests_per_replica']} requests per replica: weights "
                     f"{w['scheme']} via {w['method']}, {w['bits_per_weight']} bits/weight overall; KV {kv['kv_format']}")
        q = e["quality"]
        tasks = ", ".join(f"{t['task']} {t['recovery_pct']:.2f}%" for t in q["by_task"])
        lines.append(f"  quality   {q['expected_recovery_pct']:.2f}% expected accuracy vs BF16, worst case "
                     f"{q['worst_recovery_pct']:.2f}% ({tasks})")
        where = f"per replica ({m['gpus']} GPUs)" if m["replicas"] > 1 else f"on {m['gpus']} GPU(s)"
        over = f" over {m['replicas']} replicas" if m["replicas"] > 1 else ""
        lines.append(f"  memory    weights {m['weights_gib']} + KV {m['kv_cache_gib']} + overhead {m['overhead_gib']} = "
                     f"{m['total_gib']} of {m['capacity_gib']} GiB {where}; max {m['max_concurrency']:,} "
                     f"sequences{over}, max context {m['max_context']:,}")
        perf = e.get("performance")
        if perf:
            cost_band = f" +/-{(perf.get('bands_pct') or {}).get('throughput'):g}%" \
                if (perf.get("bands_pct") or {}).get("throughput") else ""
            cost = (f", ${perf['cost_per_million_tokens']:,.2f}{cost_band} per million tokens at "
                    f"${perf['usd_per_gpu_hour']:g}/GPU-h" if perf.get("cost_per_million_tokens") is not None else "")
            basis = "modelled" if perf.get("speed_backed_by_measurements", True) else "modelled, runtime not measured"
            band = perf.get("bands_pct") or {}
            pm = {name: f" +/-{band[name]:g}%" if band.get(name) else "" for name in ("prefill", "decode", "throughput")}
            lines.append(f"  speed     first token {perf['ttft_ms']:,.0f} ms{pm['prefill']}, {perf['tpot_ms']:,.1f} "
                         f"ms/token{pm['decode']} ({perf['decode_tokens_per_s']:,.0f} tokens/s per request), "
                         f"{perf['throughput_tokens_per_s']:,.0f} tokens/s in all{pm['throughput']}{cost} [{basis}]")
        shown = {"contradiction": 0}
        for item in e["rationale"]:
            label = {"numbers": "why", "objective": "why", "runtime": "why", "quality": None, "rule": "agrees",
                     "contradiction": "disagrees", "note": None}.get(item["kind"])
            if item["kind"] == "contradiction":
                shown["contradiction"] += 1
                if shown["contradiction"] > 2:
                    continue
            if label:
                lines.append(f"  {label:<9} {item['text']}")
        for item in e["pareto"][:6]:
            lines.append(f"  {'pareto *' if item['pick'] else 'pareto':<9} {_row(item)}")
        if len(e["pareto"]) > 6:
            lines.append(f"            ... and {len(e['pareto']) - 6} more on the front (see the YAML plan)")
        for step in e["ladder"]:
            fits = "fits" if step["fits"] else "does not fit"
            lines.append(f"  ladder {step['step']}  {step['notation']:<24} {fits:<13} {step['note']}")
        for alt in [a for a in e["alternatives"] if a.get("rank")][:3]:
            lines.append(f"  also      {_row(alt)}")
        for near in e.get("near_misses", [])[:2]:
            lines.append(f"  near miss {near['text']}")
        for o in e.get("partial_offload", []):
            lines.append(f"  offload   {o['notation']:<24} {o['flag']}: {o['vram_gib']:g} GiB VRAM + {o['ram_gib']:g} GiB "
                         f"RAM, {o['tpot_ms']:,.0f} ms/token ({o['decode_tokens_per_s']:g} tok/s), "
                         f"{o['expected_recovery_pct']:.2f}% expected accuracy; {o['ram_check']}")
        if e.get("fallback"):
            fb = e["fallback"]
            lines.append(f"  fallback  {fb['notation']} on {fb['runtime']} ({fb['name']}): {fb['why'][0]}")
        for r in e["rejected"][:4]:
            lines.append(f"  ruled out {r['notation'] + ' (' + r['candidate'] + ')':<34} {r['reasons'][0]}")
        if len(e["rejected"]) > 4:
            lines.append(f"            ... and {len(e['rejected']) - 4} more (see the YAML plan)")
        lines.append("  validate  " + "; ".join(v["check"] for v in e["validation"]))
        rt = e["runtime"]
        lines.append(f"  serve     ({rt['name']} {rt['version']}) {rt['serve_command']}")
        for node in rt.get("node_commands", []):
            lines.append(f"  node {node['node']:<4} ({node['role']}) " + " && ".join(node["commands"]))
        if rt.get("config"):
            lines.append(f"            {rt['config_file']}: " + rt["config"].strip().replace("\n", "; "))
        for note in rt.get("notes", []):
            if "data-parallel" in note or "nodes of" in note or "independent servers" in note:
                lines.append(f"            {note}")
        qz = rt["quantization"]
        lines.append(f"  quantize  {qz['note']}" + (f" [{qz['tool']} {qz['tool_version']}]" if qz.get("tool") else ""))
    return "\n".join(lines)

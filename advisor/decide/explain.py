"""Why the pick, in numbers: its figures against the 16-bit baseline, the objective that chose it and the
metrics that decided, why its runtime and layout won, the quality evidence, and every rule of thumb that
applies - checked against this endpoint's numbers, agreeing or not. The rationale is never empty.
"""

from __future__ import annotations

from collections.abc import Sequence

from advisor.decide.context import EndpointContext
from advisor.decide.ladder import notation
from advisor.decide.result import Claim, Deployment, RationaleItem
from advisor.knowledge.schema import METRIC_SENSE, ObjectiveKey, Priority
from advisor.physics.memory import GIB

# A rule's claim metric -> (deployment metric, words, format)
CLAIM_METRICS = {
    "quality": ("expected_recovery_pct", "expected accuracy", "{:.2f}%"),
    "latency": ("tpot_ms", "time per output token", "{:,.1f} ms"),
    "ttft": ("ttft_ms", "time to first token", "{:,.0f} ms"),
    "throughput": ("throughput_per_gpu", "output tokens/s per GPU", "{:,.0f}"),
    "cost": ("gpu_hours_per_million_tokens", "GPU-hours per million tokens", "{:,.2f}"),
    "memory": ("model_bytes_per_gpu", "weights + KV per GPU", "bytes"),
    "capacity": ("max_total_concurrency", "sequences that fit", "{:,.0f}"),
    "balance": ("balanced_utility", "accuracy-for-cost trade", "{:.2f}"),
}
SENSE = {**METRIC_SENSE, "throughput_per_gpu": "max"}
METRIC_WORDS = {
    "expected_recovery_pct": "expected accuracy", "worst_recovery_pct": "worst-case accuracy",
    "balanced_utility": "accuracy traded against cost", "gpu_hours_per_million_tokens": "cost per million tokens",
    "tpot_ms": "time per output token", "ttft_ms": "time to first token", "gpus_needed": "GPUs needed",
    "model_bytes_per_gpu": "bytes per GPU", "max_total_concurrency": "sequences that fit",
}


def _fmt(metric: str, value: float) -> str:
    for key, _words, fmt in CLAIM_METRICS.values():
        if key == metric:
            return f"{value / GIB:,.1f} GiB" if fmt == "bytes" else fmt.format(value)
    return f"{value:,.3g}"


def ratio(new: float, old: float) -> str:
    return f"{new / old:.2f}x" if old else "-"


def against_baseline(ctx: EndpointContext, pick: Deployment, base: Deployment | None, base_fit,
                     runner_up: Deployment | None = None) -> str:
    """The pick's numbers next to the 16-bit baseline's, on the same GPUs (or, when the pick is the baseline,
    next to the best option that is not)."""
    base_name = notation(ctx, "bf16" if ctx.gpu.supports_bf16 else "fp16", "bf16" if ctx.gpu.supports_bf16 else "fp16")
    p, q = pick.performance, pick.quality
    if base is not None and pick.config == base.config:
        text = (f"This is the 16-bit baseline ({base_name}), {q.expected_recovery_pct:.2f}% expected accuracy by "
                f"definition: {p.throughput_tokens_per_s:,.0f} output tokens/s, {p.tpot_ms:,.1f} ms per token, "
                f"{pick.metrics['max_total_concurrency']:,.0f} sequences fit.")
        if runner_up is not None:
            r = runner_up
            text += (f" The best lower-precision option, {notation(ctx, r.candidate, r.kv)}, would cost "
                     f"{ratio(r.metrics['gpu_hours_per_million_tokens'], pick.metrics['gpu_hours_per_million_tokens'])}"
                     f" as much per token at {r.quality.expected_recovery_pct - q.expected_recovery_pct:+.2f} points "
                     f"expected accuracy ({r.quality.expected_recovery_pct:.2f}%, worst case "
                     f"{r.quality.worst_recovery_pct:.2f}%).")
        return text
    if base is None:
        need = f"{base_fit.total_bytes_per_gpu / GIB:,.1f} GiB per GPU of {base_fit.capacity_bytes_per_gpu / GIB:,.1f}" \
            if base_fit is not None else "more memory than there is"
        return (f"The 16-bit baseline ({base_name}) does not fit this endpoint ({need}); the pick holds "
                f"{pick.metrics['max_total_concurrency']:,.0f} sequences at {q.expected_recovery_pct:.2f}% expected "
                f"accuracy (worst case {q.worst_recovery_pct:.2f}%), {p.tpot_ms:,.1f} ms per token.")
    b = base.performance
    cost = (f"{ratio(pick.metrics['gpu_hours_per_million_tokens'], base.metrics['gpu_hours_per_million_tokens'])} "
            "the cost per million tokens")
    return (f"Against the 16-bit baseline ({base_name}) on the same GPUs: x{p.throughput_tokens_per_s / b.throughput_tokens_per_s:.2f} "
            f"throughput, {cost}, {ratio(p.tpot_ms, b.tpot_ms)} the time per token, "
            f"{q.expected_recovery_pct - base.quality.expected_recovery_pct:+.2f} points expected accuracy "
            f"({q.expected_recovery_pct:.2f}%, worst case {q.worst_recovery_pct:.2f}%), "
            f"{ratio(pick.metrics['max_total_concurrency'], base.metrics['max_total_concurrency'])} the sequences.")


def _key_words(key: ObjectiveKey) -> str:
    words = METRIC_WORDS[key.metric]
    if key.within is not None:
        unit = " points" if key.metric.endswith("_pct") or key.metric == "balanced_utility" else ""
        return f"{words} (within {key.within:g}{unit} of the best)"
    if key.within_pct is not None:
        return f"{words} (within {key.within_pct:g}% of the best)"
    return words


def deployment_why(ctx: EndpointContext, dep: Deployment, base: Deployment | None, base_fit,
                   checked: Sequence[Claim], pick: Deployment | None = None) -> list[str]:
    """One shown deployment's case in numbers: against the 16-bit baseline, and the rules of thumb that apply
    to it and that the numbers bear out."""
    q, p = dep.quality, dep.performance
    if base is None:
        need = (f"{base_fit.total_bytes_per_gpu / GIB:,.1f} GiB per GPU" if base_fit is not None else "more memory")
        lines = [f"the 16-bit baseline does not fit ({need}); this holds {dep.metrics['max_total_concurrency']:,.0f} "
                 f"sequences at {q.expected_recovery_pct:.2f}% expected accuracy, {p.tpot_ms:,.1f} ms per token"]
    elif dep.config == base.config:
        lines = [f"the 16-bit baseline itself: {q.expected_recovery_pct:.2f}% expected accuracy by definition, "
                 f"{p.throughput_tokens_per_s:,.0f} tokens/s, {p.tpot_ms:,.1f} ms per token"]
    else:
        b = base.performance
        lines = [f"x{p.throughput_tokens_per_s / b.throughput_tokens_per_s:.2f} throughput, "
                 f"{ratio(dep.metrics['gpu_hours_per_million_tokens'], base.metrics['gpu_hours_per_million_tokens'])} "
                 f"the cost, {q.expected_recovery_pct - base.quality.expected_recovery_pct:+.2f} points expected "
                 f"accuracy, {ratio(dep.metrics['max_total_concurrency'], base.metrics['max_total_concurrency'])} "
                 "the sequences against the 16-bit baseline"]
    if pick is not None and dep is not pick:
        lines.append(f"against the pick: {ratio(dep.metrics['gpu_hours_per_million_tokens'], pick.metrics['gpu_hours_per_million_tokens'])} "
                     f"the cost, {ratio(p.tpot_ms, pick.performance.tpot_ms)} the time per token, "
                     f"{q.expected_recovery_pct - pick.quality.expected_recovery_pct:+.2f} points expected accuracy")
    fired = {f.id for f in dep.fired}
    agree = [c.title for c in checked if c.rule in fired and c.holds]
    if agree:
        lines.append("rules that agree: " + "; ".join(dict.fromkeys(agree)))
    return lines


def objective_line(priority: Priority, decided: list[ObjectiveKey], front: int, evaluated: int) -> str:
    keys = ", then ".join(_key_words(k) for k in decided) if decided else \
        "a tie on every key, broken by runtime preference"
    return (f"Priority {priority.id}: {priority.formula}. Decided by {keys}, among {front} option(s) on the Pareto "
            f"front of {evaluated} evaluated.")


def runtime_line(ctx: EndpointContext, pick: Deployment, ranked: Sequence[Deployment], tried: list[str],
                 unmeasured: Sequence[str] = ()) -> str:
    """Why this runtime and layout: the best of each other runtime (and layout) on the deciding metric."""
    name = ctx.k.runtimes[pick.runtime].name
    if ctx.request.runtime:
        head = f"Runtime {name}: asked for."
    else:
        best_other: dict[str, Deployment] = {}
        for d in ranked:
            if d.runtime != pick.runtime and d.runtime not in best_other:
                best_other[d.runtime] = d
        parts = []
        for rid, d in list(best_other.items())[:3]:
            parts.append(f"{ctx.k.runtimes[rid].name}'s best, {notation(ctx, d.candidate, d.kv)}, "
                         f"{d.metrics['gpu_hours_per_million_tokens'] / pick.metrics['gpu_hours_per_million_tokens']:.2f}x "
                         f"the cost and {d.performance.tpot_ms:,.1f} ms per token")
        idle = [ctx.k.runtimes[r].name for r in tried
                if r != pick.runtime and r not in best_other and r not in unmeasured]
        head = f"Runtime {name} (compared on the same numbers): " + ("; ".join(parts) if parts else
                                                                     "no other runtime serves this endpoint")
        if idle:
            head += f"; nothing serves it on {', '.join(idle)}"
        head += "."
    others = [d for d in ranked if d.config == pick.config and d.runtime == pick.runtime and d.layout != pick.layout]
    if others:
        o = others[0]
        head += (f" Layout {pick.layout.words()} at {pick.concurrency} requests per replica; the same precision as "
                 f"{o.layout.words()} runs {o.performance.throughput_tokens_per_s:,.0f} tokens/s "
                 f"(vs {pick.performance.throughput_tokens_per_s:,.0f}) at {o.performance.tpot_ms:,.1f} ms per token.")
    elif pick.layout.gpus > 1 or ctx.mode == "ceiling":
        head += f" Layout {pick.layout.words()} at {pick.concurrency} requests per replica."
    return head


def quality_line(ctx: EndpointContext, pick: Deployment) -> RationaleItem:
    q = pick.quality
    tasks = ", ".join(f"{t.task} {t.weight:g}" for t in q.tasks)
    text = (f"Expected accuracy {q.expected_recovery_pct:.2f}% of BF16 (worst case {q.worst_recovery_pct:.2f}%) "
            f"for this workload's tasks ({tasks}), from knowledge/quality.yaml")
    if q.adjustments:
        text += "; risks added: " + "; ".join(f"{a.rule} {a.expected_pct:+g}/{a.worst_pct:+g}" for a in q.adjustments)
    if q.fallback_notes:
        text += f"; {len(q.fallback_notes)} lookup(s) used the nearest evidence, not an exact match (see quality)"
    return RationaleItem(kind="quality", text=text + ".", source=list(q.sources)[:6])


def _pool_facts(ctx: EndpointContext, pool: Sequence[Deployment]) -> list[dict]:
    eight = any(ctx.k.candidates[d.candidate].tier == 8 for d in pool)
    kv8 = {d.candidate for d in pool if ctx.k.formats[ctx.k.kv_formats[d.kv].format].bits >= 8}
    return [{**d.facts, "mem.eight_bit_fits": eight, "mem.kv8_fits": d.candidate in kv8} for d in pool]


def claims(ctx: EndpointContext, pick: Deployment, shown: Sequence[Deployment], ranked: Sequence[Deployment]
           ) -> list[Claim]:
    """Each rule of thumb that applies to the pick or a shown alternative, checked on the best deployment of
    every configuration: do the options it speaks for beat (or trail) the ones it compares them with?"""
    pool, seen = [], set()
    for d in ranked:
        if d.config not in seen:
            seen.add(d.config)
            pool.append(d)
    facts = _pool_facts(ctx, pool)
    index = {id(d): i for i, d in enumerate(pool)}
    relevant = [facts[index[id(d)]] if id(d) in index else {**d.facts, "mem.eight_bit_fits": False,
                                                            "mem.kv8_fits": False} for d in [pick, *shown]]
    out = []
    for cr in ctx.rules:
        e = cr.rule.effect
        if not (e.favours or e.disfavours) or not any(cr.check(f) for f in relevant):
            continue
        on_pick = cr.check(relevant[0])
        hits = [cr.check(f) for f in facts]
        fires = [d for d, hit in zip(pool, hits, strict=True) if hit]
        if cr.versus is not None:
            versus = cr.versus
            others = [d for d, f, hit in zip(pool, facts, hits, strict=True) if not hit and versus(f)]
        else:
            others = [d for d, hit in zip(pool, hits, strict=True) if not hit]
        if not fires or not others:
            continue
        for words_key, better in [(m, True) for m in e.favours] + [(m, False) for m in e.disfavours]:
            metric, words, _ = CLAIM_METRICS[words_key]
            if metric == "balanced_utility" and metric not in pool[0].metrics:
                continue
            sign = 1 if SENSE[metric] == "max" else -1
            best_f = max(fires, key=lambda d: sign * d.metrics[metric])
            best_o = max(others, key=lambda d: sign * d.metrics[metric])
            vf, vo = best_f.metrics[metric], best_o.metrics[metric]
            # within the model's resolution the two are level (0.1 point of accuracy, 2% otherwise)
            level = 0.1 if metric.endswith("_pct") or metric == "balanced_utility" else 0.02 * abs(vo)
            margin = sign * (vf - vo)
            holds = margin >= -level if better else margin <= level
            side = "better" if better else "worse"
            text = (f"it expects {side} {words} where it applies; best there {_fmt(metric, vf)} "
                    f"({notation(ctx, best_f.candidate, best_f.kv)}), best otherwise {_fmt(metric, vo)} "
                    f"({notation(ctx, best_o.candidate, best_o.kv)})")
            out.append(Claim(rule=cr.rule.id, title=cr.rule.title, metric=words_key, on_pick=on_pick, holds=holds,
                             text=text, source=cr.rule.sources))
    return out


def rationale(ctx: EndpointContext, pick: Deployment, base: Deployment | None, base_fit, priority: Priority,
              decided: list[ObjectiveKey], front: int, evaluated: int, ranked: Sequence[Deployment], tried: list[str],
              checked: list[Claim], unmeasured: Sequence[str] = ()) -> list[RationaleItem]:
    items = [
        RationaleItem(kind="numbers", text=against_baseline(
            ctx, pick, base, base_fit, next((d for d in ranked if d.config != pick.config), None)),
            source=["advisor/physics/memory.py", "advisor/physics/performance.py (knowledge/speed.yaml)",
                    "advisor/physics/quality.py (knowledge/quality.yaml)"]),
        RationaleItem(kind="objective", text=objective_line(priority, decided, front, evaluated),
                      source=priority.sources),
        RationaleItem(kind="runtime", text=runtime_line(ctx, pick, ranked, tried, unmeasured),
                      source=["001_e0b658addaba998b.txt", "knowledge/speed.yaml", "knowledge/perf_measurements.yaml"]),
        quality_line(ctx, pick),
    ]
    for c in checked:
        if c.on_pick and c.holds:
            items.append(RationaleItem(kind="rule", rule=c.rule, text=f"{c.title} - the numbers agree: {c.text}.",
                                       source=c.source))
    for c in checked:
        if not c.holds:
            where = "the pick" if c.on_pick else "an alternative"
            items.append(RationaleItem(kind="contradiction", rule=c.rule,
                                       text=f"{c.title} (applies to {where}) - the numbers disagree here: {c.text}.",
                                       source=c.source))
    for note in dict.fromkeys(pick.notes):
        rule = next((f for f in pick.fired if ctx.k.rules[f.id].effect.note == note), None)
        items.append(RationaleItem(kind="note", rule=rule.id if rule else None, text=note,
                                   source=rule.source if rule else []))
    return items

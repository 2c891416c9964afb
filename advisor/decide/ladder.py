"""Around the pick: the 16-bit reference and the step-down ladder (seed 000), the fallback to keep configured,
near misses (options that hold most of an interactive endpoint's requests for more accuracy), what would fit
when nothing does, and the KV-cache formats the picked weights could use.
"""

from __future__ import annotations

import math

from advisor.decide import gates
from advisor.decide.checkpoint import checkpoint_use
from advisor.decide.context import EndpointContext
from advisor.decide.result import Deployment, KVOption, LadderStep, Layout, MemoryFit, NearMiss, WeightsInfo
from advisor.decide.search import MemoryMiss, Outcome, build_deployment
from advisor.fastmodel import construct
from advisor.knowledge.schema import Candidate
from advisor.physics import memory
from advisor.physics.performance import Performance, bands

GPU_COUNTS = (1, 2, 4, 8, 16, 32, 64)
MAX_NODES = 16  # the request's limit (advisor/intake/request.py)


def baseline_id(ctx: EndpointContext) -> str:
    return "bf16" if ctx.gpu.supports_bf16 else "fp16"


def kv_bits(ctx: EndpointContext, kv_id: str) -> int:
    return ctx.k.formats[ctx.k.kv_formats[kv_id].format].bits


def tier(ctx: EndpointContext, dep: Deployment) -> int:
    return ctx.k.candidates[dep.candidate].tier


def notation(ctx: EndpointContext, candidate: str, kv: str) -> str:
    return f"{ctx.k.candidates[candidate].notation} KV-{kv.upper()}"


def finish(ctx: EndpointContext, dep: Deployment) -> Deployment:
    """Add what only shown deployments need: the speed model's assumptions in words and the longest context."""
    if not dep.performance.assumptions:
        perf = dep.performance
        model = ctx.speed_model(ctx.k.candidates[dep.candidate], ctx.k.runtimes[dep.runtime],
                                dep.layout.tensor_parallel, dep.layout.pipeline_parallel)
        dep.performance = construct(Performance, **{**perf.__dict__,
                                                    "assumptions": model.assumptions(dep.concurrency, perf.decode),
                                                    "bands_pct": bands(ctx.k.decision)})
    fit, filled = dep.memory, {}
    if fit.kv_pool_tokens is None:
        runtime, kv = ctx.k.runtimes[dep.runtime], ctx.k.kv_formats[dep.kv]
        filled["kv_pool_tokens"] = memory.kv_pool_tokens(
            ctx.arch, kv, fit.kv_budget_bytes_per_gpu, dep.layout.tensor_parallel, runtime.memory.block_tokens,
            runtime.memory.kv_groups, dep.layout.pipeline_parallel)
    if fit.max_context is None:
        limit = ctx.arch.max_position or 1 << 20
        filled["max_context"] = memory.max_context(ctx.arch, ctx.k.kv_formats[dep.kv], dep.concurrency,
                                                   max(0, fit.kv_budget_bytes_per_gpu), dep.layout.tensor_parallel,
                                                   limit, dep.layout.pipeline_parallel)
    if filled:  # a copy: the same MemoryFit may be shared with the search's caches
        dep.memory = construct(MemoryFit, **{**fit.__dict__, **filled})
    if not dep.fired:
        words = ctx.words(dep.facts)
        dep.fired, dep.notes, dep.flags = list(words.fired), list(words.notes), list(words.flags)
    if dep.weights is None:
        cand, kv = ctx.k.candidates[dep.candidate], ctx.k.kv_formats[dep.kv]
        w = ctx.weights(cand)
        arch = ctx.arch
        dim = arch.mla.cached_dim if arch.mla else arch.head_dim
        kept = [g for g, st in w.layout.groups.items() if not st.quantized and g in w.groups and g != "norms"]
        dep.weights = WeightsInfo(numeric_format=w.format, bits_per_weight=round(w.bits_per_weight, 3),
                                  bits_per_quantized_weight=round(w.bits_per_quantized_weight, 3)
                                  if w.bits_per_quantized_weight else None,
                                  high_precision_groups=kept, kv_bytes_per_element=round(kv.bytes_per_element(dim), 4),
                                  checkpoint=checkpoint_use(ctx, cand, ctx.k.runtimes[dep.runtime]),
                                  exact_bytes=w.exact)
    return dep


def evaluate_at(ctx: EndpointContext, cand: Candidate, kv_id: str, runtime_id: str, layout: Layout,
                concurrency: int) -> tuple[Deployment | None, object]:
    """A deployment's numbers at a given layout and concurrency, whether or not it passes the gates.
    Returns (deployment or None when it does not fit in memory, its MemoryFit)."""
    kv, runtime = ctx.k.kv_formats[kv_id], ctx.k.runtimes[runtime_id]
    fit = gates.memory_fit(ctx, cand, kv, runtime, layout.tensor_parallel, concurrency, layout.pipeline_parallel)
    if not fit.fits:
        return None, fit
    verdict, facts = ctx.verdict(cand, kv, runtime), ctx.facts(cand, kv, runtime)
    quality = ctx.quality(cand, kv, verdict)
    perf = ctx.speed(cand, kv, runtime, layout.tensor_parallel, concurrency, pp=layout.pipeline_parallel)
    total = concurrency * layout.replicas if ctx.mode == "ceiling" else ctx.shape.concurrency
    dep = build_deployment(ctx, cand, kv, runtime, layout, concurrency, total, fit, perf, quality, facts)
    return finish(ctx, dep), fit


def reference(ctx: EndpointContext, pick: Deployment, ranked: list[Deployment],
              gated: list[Deployment] | tuple = ()) -> tuple[Deployment | None, object]:
    """The 16-bit baseline with a 16-bit cache: its best feasible deployment; else one that fits but misses the
    quality floor or a target (`gated`: it fits, so it is compared by its numbers, never called too big); else
    its numbers at the pick's runtime and layout (None when it does not fit there; the MemoryFit then says by how
    much)."""
    base = baseline_id(ctx)
    found = next((d for d in ranked if d.candidate == base and d.kv == base), None)
    if found is None:
        fitting = [d for d in gated if d.candidate == base and d.kv == base]
        found = min(fitting, key=lambda d: d.metrics["gpu_hours_per_million_tokens"]) if fitting else None
    if found is not None:
        return finish(ctx, found), found.memory
    cand = ctx.k.candidates[base]
    runtime = pick.runtime if pick.runtime in cand.runtimes else next(iter(cand.runtimes))
    return evaluate_at(ctx, cand, base, runtime, pick.layout, pick.concurrency)


def ladder(ctx: EndpointContext, pick: Deployment, ranked: list[Deployment], out: Outcome,
           base: Deployment | None, base_fit) -> list[LadderStep]:
    """Seed 000: the 16-bit baseline, then 8-bit before anything lower, then the pick; each with its numbers."""
    base_id = baseline_id(ctx)
    steps = [LadderStep(role="baseline", candidate=base_id, kv=base_id, runtime=base.runtime if base else pick.runtime,
                        fits=base is not None and base in ranked, deployment=base,
                        total_bytes_per_gpu=base_fit.total_bytes_per_gpu if base_fit is not None else None,
                        note="quality anchor" if base is not None and base in ranked else
                        "quality anchor; it does not serve this endpoint here, so measure it once on more GPUs "
                        "(or at a smaller concurrency), on the same prompts")]
    if tier(ctx, pick) < 8:
        eight = next((d for d in ranked if tier(ctx, d) == 8), None)
        if eight is not None:
            steps.append(LadderStep(role="step", candidate=eight.candidate, kv=eight.kv, runtime=eight.runtime,
                                    fits=True, deployment=finish(ctx, eight),
                                    total_bytes_per_gpu=eight.memory.total_bytes_per_gpu,
                                    note="8-bit step: measure it before going lower"))
        else:
            misses = [m for m in out.memory_misses if m.cand.tier == 8]
            gated = [d for d in out.gated if tier(ctx, d) == 8]
            if gated:
                g = gated[0]
                steps.append(LadderStep(role="step", candidate=g.candidate, kv=g.kv, runtime=g.runtime, fits=True,
                                        deployment=finish(ctx, g), total_bytes_per_gpu=g.memory.total_bytes_per_gpu,
                                        note="8-bit fits in memory but misses the quality floor or a target"))
            elif misses:
                m = min(misses, key=lambda x: x.total_bytes_per_gpu)
                steps.append(LadderStep(role="step", candidate=m.cand.id, kv=m.kv.id, runtime=m.runtime.id,
                                        fits=False, deployment=None, total_bytes_per_gpu=m.total_bytes_per_gpu,
                                        note="no 8-bit configuration fits this endpoint, which is why the pick goes "
                                        "lower"))
            else:
                blocked = next((a for a in out.attempts.values() if ctx.k.candidates[a.candidate].tier == 8), None)
                why = blocked.reasons[0].text if blocked and blocked.reasons else "none is available"
                steps.append(LadderStep(role="step", candidate=blocked.candidate if blocked else "fp8-w8a8",
                                        kv=blocked.kv if blocked else "fp8", runtime=pick.runtime, fits=False,
                                        deployment=None, total_bytes_per_gpu=None,
                                        note=f"no 8-bit configuration can be served here ({why})"))
    if (pick.candidate, pick.kv) != (base_id, base_id):
        steps.append(LadderStep(role="pick", candidate=pick.candidate, kv=pick.kv, runtime=pick.runtime,
                                fits=pick.memory.fits, deployment=pick,
                                total_bytes_per_gpu=pick.memory.total_bytes_per_gpu, note="recommended"))
    else:
        steps[0] = steps[0].model_copy(update={"role": "pick", "deployment": pick, "fits": True,
                                               "note": "the 16-bit baseline is the recommendation"})
    return steps


def fallback(ctx: EndpointContext, pick: Deployment, ranked: list[Deployment]) -> tuple[Deployment | None, str]:
    """Seed 000: keep a fallback configured - the next safer option that serves the endpoint (higher weight
    precision, or the same weights with a wider KV cache), best first by the objective; FP32 only if picked."""
    def allowed(d: Deployment) -> bool:
        return d is not pick and (d.candidate != "fp32" or pick.candidate == "fp32")

    pick_tier, pick_kv = tier(ctx, pick), kv_bits(ctx, pick.kv)
    for d in ranked:
        if allowed(d) and (tier(ctx, d) > pick_tier or (d.candidate == pick.candidate and kv_bits(ctx, d.kv) > pick_kv)):
            return finish(ctx, d), "more precision than the pick (weights or KV cache) that also serves this endpoint"
    for d in ranked:
        if allowed(d) and d.config == pick.config and d.runtime != pick.runtime:
            return finish(ctx, d), ("no higher-precision option serves this endpoint; the same precision on another "
                                    "runtime, in case the first misbehaves")
    for d in ranked:
        if allowed(d) and d.candidate != pick.candidate:
            return finish(ctx, d), ("no higher-precision option serves this endpoint; the next best configuration "
                                    "by the same objective")
    return None, "no other configuration serves this endpoint here"


def near_misses(ctx: EndpointContext, pick: Deployment | None, out: Outcome, limit: int = 3) -> list[NearMiss]:
    """Interactive endpoints: options that hold at least the decision.yaml share of the required requests, but
    not all of them, and would be more accurate than the pick - the trade the user should see."""
    if ctx.mode != "requirement":
        return []
    need = ctx.shape.concurrency
    share = ctx.k.decision["near-miss-min-share"].value
    bar = pick.quality.expected_recovery_pct + 0.05 if pick else -1.0
    best: dict[tuple[str, str], MemoryMiss] = {}
    for m in out.memory_misses:
        if not (share * need <= m.max_total < need) or m.quality.expected_recovery_pct <= bar:
            continue
        if out.measured_only and not ctx.speed_measured(m.runtime, m.layout.tensor_parallel, m.max_concurrency):
            continue
        key = (m.cand.id, m.kv.id)
        if key not in best or m.max_total > best[key].max_total:
            best[key] = m
    chosen = sorted(best.values(), key=lambda m: (-m.quality.expected_recovery_pct, -m.max_total))[:limit]
    result = []
    for m in chosen:
        per = m.max_concurrency
        dep, _ = evaluate_at(ctx, m.cand, m.kv.id, m.runtime.id, m.layout, per)
        if dep is None:
            continue
        dep.total_concurrency = m.max_total
        gpus_all = m.layout.gpus_per_replica * math.ceil(need / per)
        words = notation(ctx, m.cand.id, m.kv.id)
        text = f"{words} on {ctx.k.runtimes[m.runtime.id].name} ({m.layout.words()}): {m.max_total} of {need} " \
               f"requests fit at {ctx.shape.context:,} tokens"
        if pick is not None:
            gain = m.quality.expected_recovery_pct - pick.quality.expected_recovery_pct
            text += f", {gain:+.2f} points expected accuracy ({m.quality.expected_recovery_pct:.2f}% vs " \
                    f"{pick.quality.expected_recovery_pct:.2f}%)"
        text += f"; {gpus_all} x {ctx.gpu.name} would hold all {need}"
        result.append(NearMiss(deployment=dep, serves=m.max_total, required=need, text=text))
    return result


def what_would_fit(ctx: EndpointContext, miss: MemoryMiss) -> list[str]:
    """For the option closest to fitting: fewer sequences, a shorter context, or more GPUs."""
    fit, layout, kv = miss.fit, miss.layout, miss.kv
    arch, out = ctx.arch, []
    per_replica = math.ceil(ctx.shape.concurrency / layout.replicas)
    if fit.kv_budget_bytes_per_gpu > 0:
        longest = memory.max_context(arch, kv, per_replica, fit.kv_budget_bytes_per_gpu, layout.tensor_parallel,
                                     arch.max_position or 1 << 20, layout.pipeline_parallel)
        if miss.max_total >= 1:
            out.append(f"fewer concurrent sequences: {miss.max_total} fit at {ctx.shape.context:,} tokens")
        if longest > 0:
            out.append(f"a shorter context: {ctx.shape.concurrency} sequences fit up to {longest:,} tokens")
    if ctx.request.nodes > 1:
        return out + _more_nodes(ctx, miss)
    for n in GPU_COUNTS:
        if n <= ctx.request.gpus or not any(lay.replicas == 1 for lay in gates.layouts(arch, n)):
            continue  # n GPUs must split the heads in one tensor-parallel group
        if gates.memory_fit(ctx, miss.cand, kv, miss.runtime, n, ctx.shape.concurrency).fits:
            out.append(f"more GPUs: {n} x {ctx.gpu.name} (tensor parallel) fit {miss.cand.notation} with "
                       f"{kv.id} KV")
            return out
    return out


def _more_nodes(ctx: EndpointContext, miss: MemoryMiss) -> list[str]:
    """Over several nodes: the fewest more nodes of the same GPUs that would fit, one pipeline stage each (when the
    runtime spans nodes)."""
    gpus, kv = ctx.request.gpus, miss.kv
    if gates.multinode_reasons(miss.runtime):
        return []
    for nodes in range(ctx.request.nodes + 1, MAX_NODES + 1):
        if nodes > ctx.arch.num_layers:
            break
        tp = next((lay.tensor_parallel for lay in gates.layouts(ctx.arch, gpus)), 0)
        if tp and gates.memory_fit(ctx, miss.cand, kv, miss.runtime, tp, ctx.shape.concurrency, nodes).fits:
            return [f"more nodes: {nodes} x {gpus} {ctx.gpu.name} (tensor parallel {tp} x pipeline parallel {nodes}) "
                    f"fit {miss.cand.notation} with {kv.id} KV"]
    return []


def relaxed_targets(ctx: EndpointContext, dep: Deployment) -> list[str]:
    """What the closest option would need from the targets or the quality floor."""
    perf, crit, out = dep.performance, ctx.request.criteria, []
    if crit.quality_floor_pct and dep.quality.expected_recovery_pct < crit.quality_floor_pct:
        out.append(f"a quality floor of {math.floor(dep.quality.expected_recovery_pct * 100) / 100:.2f}% "
                   f"(asked {crit.quality_floor_pct:g}%), or more memory for a higher-precision option")
    if crit.max_ttft_ms and perf.ttft_ms > crit.max_ttft_ms:
        out.append(f"a time-to-first-token target of {perf.ttft_ms:,.0f} ms (asked {crit.max_ttft_ms:g}), "
                   "or shorter prompts")
    if crit.max_tpot_ms and perf.tpot_ms > crit.max_tpot_ms:
        out.append(f"a time-per-token target of {perf.tpot_ms:,.1f} ms (asked {crit.max_tpot_ms:g}), "
                   "or fewer concurrent requests")
    cost = perf.cost_per_million_tokens
    if crit.max_cost_per_million_tokens and cost and cost > crit.max_cost_per_million_tokens:
        out.append(f"a cost target of ${cost:,.2f} per million tokens (asked ${crit.max_cost_per_million_tokens:g})")
    return out


def target_miss(ctx: EndpointContext, dep: Deployment) -> float:
    """How far a deployment is from the floor and targets: the largest ratio to its target."""
    perf, crit = dep.performance, ctx.request.criteria
    ratios = [1.0]
    for value, target in ((perf.ttft_ms, crit.max_ttft_ms), (perf.tpot_ms, crit.max_tpot_ms),
                          (perf.cost_per_million_tokens, crit.max_cost_per_million_tokens)):
        if target and value is not None:
            ratios.append(value / target)
    if crit.quality_floor_pct:
        ratios.append(1 + max(0.0, crit.quality_floor_pct - dep.quality.expected_recovery_pct) / 10)
    return max(ratios)


def kv_options(ctx: EndpointContext, pick: Deployment) -> list[KVOption]:
    cand, runtime = ctx.k.candidates[pick.candidate], ctx.k.runtimes[pick.runtime]
    tp, replicas, pp = pick.layout.tensor_parallel, pick.layout.replicas, pick.layout.pipeline_parallel
    limit = ctx.arch.max_position or 1 << 20
    out = []
    for kv in ctx.k.kv_formats.values():
        blocking = gates.support_reasons(ctx, cand, kv, runtime)
        if not blocking:
            blocking = ctx.verdict(cand, kv, runtime).reasons
        if blocking:
            out.append(KVOption(kv=kv.id, available=False, reason=blocking[0].text))
            continue
        fit = gates.memory_fit(ctx, cand, kv, runtime, tp, pick.concurrency, pp)
        budget = max(0, fit.kv_budget_bytes_per_gpu)
        option = KVOption(kv=kv.id, available=True, fits=fit.fits, max_concurrency=fit.max_concurrency * replicas,
                          max_context=memory.max_context(ctx.arch, kv, pick.concurrency, budget, tp, limit, pp))
        if not fit.fits:
            option.reason = (f"does not fit: room for {fit.max_concurrency * replicas:,} sequences of "
                             f"{ctx.shape.context:,} tokens, {pick.concurrency * replicas:,} needed")
        else:
            perf = ctx.speed(cand, kv, runtime, tp, pick.concurrency, pp=pp)
            quality = ctx.quality(cand, kv, ctx.verdict(cand, kv, runtime))
            option.tpot_ms, option.ttft_ms = perf.tpot_ms, perf.ttft_ms
            option.expected_recovery_pct = quality.expected_recovery_pct
            misses = _target_misses(ctx, perf.tpot_ms, perf.ttft_ms, quality.expected_recovery_pct)
            option.meets_targets = not misses
            option.reason = "; ".join(misses) or None
        out.append(option)
    return out


def _target_misses(ctx: EndpointContext, tpot_ms: float, ttft_ms: float, expected_pct: float) -> list[str]:
    """The request's targets a configuration misses, each with its figure (e.g. 'misses the 50 ms time-per-token
    target: 63 ms')."""
    crit, out = ctx.request.criteria, []
    if crit.max_tpot_ms and tpot_ms > crit.max_tpot_ms:
        out.append(f"misses the {crit.max_tpot_ms:g} ms time-per-token target: {tpot_ms:,.1f} ms")
    if crit.max_ttft_ms and ttft_ms > crit.max_ttft_ms:
        out.append(f"misses the {crit.max_ttft_ms:g} ms first-token target: {ttft_ms:,.0f} ms")
    if crit.quality_floor_pct and expected_pct < crit.quality_floor_pct:
        out.append(f"below the {crit.quality_floor_pct:g}% quality floor: {expected_pct:.2f}%")
    return out

"""The decision per endpoint: search the deployments, keep the Pareto front, let the priority's objective pick,
then build the ladder, fallback, near misses, rejections and the rationale around the pick.

``recommend(request)`` is the entry point; it returns one :class:`RecommendResult` that the plan, the CLI
and the pages render. Errors in the request raise :class:`AdvisorInputError` naming the field.
"""

from __future__ import annotations

from advisor.collector import paused
from advisor.decide import explain, ladder, objective
from advisor.decide.context import EndpointContext
from advisor.decide.offload import offload_options
from advisor.decide.result import Deployment, EndpointResult, RationaleItem, RecommendResult, Rejection
from advisor.decide.rules import evaluate
from advisor.decide.search import Outcome, build_deployment, search
from advisor.errors import AdvisorInputError
from advisor.fastmodel import construct
from advisor.intake.catalog import ResolvedModel, model_from_config, resolve_model
from advisor.intake.request import Request, check_ids, resolve_gpu, resolve_shape
from advisor.knowledge import load_knowledge
from advisor.knowledge.schema import Knowledge
from advisor.physics.architecture import tensor_inventory

REASON_ORDER = {"rule": 0, "hardware": 1, "runtime": 2, "layout": 3, "memory": 4, "quality": 5, "target": 6,
                "unmeasured": 7}


def _rejections(ctx: EndpointContext, out: Outcome, served: set[str]) -> list[Rejection]:
    """One entry per candidate that serves no deployment, with the reasons of its closest attempt; candidates
    stopped for the same reasons under the same notation are merged (the BF16 and FP16 baselines)."""
    rows: list[Rejection] = []
    merged: dict[tuple, Rejection] = {}  # (notation, reason texts) -> its row
    for cand_id, attempt in out.attempts.items():
        if cand_id in served:
            continue
        cand = ctx.k.candidates[cand_id]
        reasons = sorted(attempt.reasons, key=lambda r: REASON_ORDER.get(r.kind, 9))[:4]
        refused = out.single_node.get(attempt.runtime)  # over several nodes: why its runtime could not pipeline
        if refused is not None and refused not in reasons:
            reasons = [*reasons[:3], refused]
        key = (cand.notation, tuple([x.text for x in reasons]))
        same = merged.get(key)
        if same is not None:
            same.candidate += f", {cand_id}"
            continue
        # built from the engine's own values (advisor/fastmodel.py)
        row = merged[key] = construct(
            Rejection, candidate=cand_id, notation=cand.notation, name=cand.name, reasons=reasons, kv=attempt.kv,
            runtime=attempt.runtime, memory=attempt.memory if any(r.kind == "memory" for r in reasons) else None)
        rows.append(row)
    return rows


def _shown(ctx: EndpointContext, ranked: list[Deployment]) -> list[Deployment]:
    """The alternatives a plan lists: the best deployment of each other candidate (best first, up to
    decision.yaml explain-alternatives), then the pick's weights with up to two other KV caches."""
    limit = int(ctx.k.decision["explain-alternatives"].value)
    pick = ranked[0]
    others, same, seen = [], [], {pick.candidate}
    for d in ranked[1:]:
        if d.candidate not in seen and len(others) < limit:
            seen.add(d.candidate)
            others.append(d)
        elif d.candidate == pick.candidate and d.kv != pick.kv and len(same) < 2 \
                and all(s.kv != d.kv for s in same):
            same.append(d)
    return [ladder.finish(ctx, d) for d in others + same]


def recommend_endpoint(ctx: EndpointContext, detail: bool = True) -> EndpointResult:
    """The decision for one endpoint. `detail` False keeps only the pick and the ranking (the GPU picker runs
    the search per GPU kind and count and shows only each pick)."""
    k, shape = ctx.k, ctx.shape
    # Rank what the speed model can back with published measurements for its runtime at its concurrency; the
    # rest compete only when nothing measured serves the endpoint, or when the user named the runtime.
    out = search(ctx, measured_only=not ctx.request.runtime)
    if not out.feasible and out.skipped:
        out = search(ctx, resume=out.resume)  # every runtime, from the first one that pass may have skipped
    priority = k.priorities[shape.priority]
    preference = {r.id: r.preference for r in k.runtimes.values()}
    measured = [d for d in out.feasible if d.metrics["speed_measured"]]
    ranked_runtimes = {d.runtime for d in out.feasible}
    unmeasured = sorted(r for r in out.skipped if r not in ranked_runtimes)
    ranked, front, decided = objective.rank(out.feasible, priority, preference)
    rejected = _rejections(ctx, out, {d.candidate for d in out.feasible})
    tried = [r.id for r in out.runtimes]
    common = dict(shape=shape, concurrency_mode=ctx.mode, rejected=rejected, evaluated=out.evaluated,
                  objective=priority.formula)
    if ranked and not detail:
        return EndpointResult(**common, fits=True, pick=ranked[0], ranked=ranked, pareto=front,
                              runtime_chosen_by="compared on the same numbers")
    if ranked:
        pick = ladder.finish(ctx, ranked[0])
        shown = _shown(ctx, ranked)
        base, base_fit = ladder.reference(ctx, pick, ranked, out.gated)
        fallback, fallback_why = ladder.fallback(ctx, pick, ranked)
        checked = explain.claims(ctx, pick, shown, ranked)
        for dep in {id(d): d for d in [pick, *shown, *([fallback] if fallback else [])]}.values():
            dep.why = explain.deployment_why(ctx, dep, base, base_fit, checked, pick)
        items = explain.rationale(ctx, pick, base, base_fit, priority, decided, len(front), out.evaluated, ranked,
                                  tried, checked, unmeasured)
        if measured and unmeasured:
            names = ", ".join(k.runtimes[r].name for r in unmeasured)
            items.insert(3, RationaleItem(kind="runtime", text=(
                f"Not ranked: options on {names}, whose speed is not backed by published measurements at this "
                "concurrency and GPU count (knowledge/perf_measurements.yaml); name the runtime to plan on it."),
                source=["knowledge/perf_measurements.yaml"]))
        elif not measured and out.feasible:
            items.insert(3, RationaleItem(kind="runtime", text=(
                "No published measurement backs this runtime's speed at this concurrency and GPU count; its speed "
                "and cost figures use assumed fractions (knowledge/speed.yaml) - measure before relying on them."),
                source=["knowledge/speed.yaml", "knowledge/perf_measurements.yaml"]))
        if pick.runtime in out.single_node:  # over several nodes, on a runtime that cannot pipeline across them
            refused = out.single_node[pick.runtime]
            items.append(RationaleItem(kind="runtime", text=f"Not pipelined across the {ctx.request.nodes} nodes: "
                                       f"{refused.text}; each node serves its own replicas.", source=refused.source))
        if pick.layout.pipeline_parallel > 1:
            items.append(RationaleItem(kind="note", text=(
                f"Pipeline parallel over {pick.layout.pipeline_parallel} nodes: each token still passes every stage and "
                "reads all the weights once per step, so the extra nodes add memory, not speed per token; the hops "
                "between nodes use the link's specifications (knowledge/decision.yaml internode-*), not a published "
                "multi-node measurement."),
                source=["knowledge/decision.yaml", "advisor/physics/performance.py"]))
        return EndpointResult(
            **common, fits=True, pick=pick, ranked=ranked, pareto=front, offload=offload_options(ctx, ranked),
            near_misses=ladder.near_misses(ctx, pick, out),
            ladder=ladder.ladder(ctx, pick, ranked, out, base, base_fit),
            kv_options=ladder.kv_options(ctx, pick), fallback=fallback, fallback_why=fallback_why, baseline=base,
            rationale=items, claims=checked,
            validation=[c.id for c in k.validation.values() if evaluate(c.when, pick.facts)],
            runtime_chosen_by="asked for" if ctx.request.runtime else "compared on the same numbers",
        )
    # Nothing passes every gate. Fits in memory but misses the floor or a target: the closest to them.
    if out.gated:
        pick = ladder.finish(ctx, min(out.gated, key=lambda d: (ladder.target_miss(ctx, d),
                                                                -d.quality.expected_recovery_pct)))
        would = ladder.relaxed_targets(ctx, pick)
        chosen_by = "nothing meets the targets; the closest option shown"
    elif out.memory_misses:
        miss = min(out.memory_misses, key=lambda m: (m.total_bytes_per_gpu, -m.quality.expected_recovery_pct))
        per = max(1, min(miss.max_concurrency, shape.concurrency))
        dep, _ = ladder.evaluate_at(ctx, miss.cand, miss.kv.id, miss.runtime.id, miss.layout, per)
        pick = dep or _unfitting(ctx, miss)
        would = ladder.what_would_fit(ctx, miss)
        chosen_by = "nothing fits on any runtime; closest option shown"
    else:
        return EndpointResult(**common, fits=False, pick=None, ranked=[], pareto=[],
                              runtime_chosen_by="nothing can be served here")
    return EndpointResult(
        **common, fits=False, pick=pick, ranked=[], pareto=[], what_would_fit=would, offload=offload_options(ctx),
        near_misses=ladder.near_misses(ctx, None, out) if out.gated else [],
        ladder=ladder.ladder(ctx, pick, [], out, None, None), kv_options=ladder.kv_options(ctx, pick),
        validation=[c.id for c in k.validation.values() if evaluate(c.when, pick.facts)],
        rationale=[RationaleItem(kind="numbers", text="Nothing serves this endpoint as asked; the closest "
                                 "option is shown with what would make it work: " + "; ".join(would),
                                 source=["advisor/physics/memory.py", "advisor/physics/performance.py",
                                         "knowledge/rules.yaml"])],
        runtime_chosen_by=chosen_by,
    )


def _unfitting(ctx: EndpointContext, miss) -> Deployment:
    """The closest option when even one sequence does not fit: its memory, and its speed at one sequence."""
    layout, per = miss.layout, max(1, ctx.shape.concurrency // miss.layout.replicas)
    fit = miss.fit if miss.fit.kv_bytes_per_gpu else miss.fit.model_copy(
        update={"kv_bytes_per_gpu": ctx.kv_per_sequence(miss.kv, layout.tensor_parallel,
                                                         pp=layout.pipeline_parallel) * per})
    perf = ctx.speed(miss.cand, miss.kv, miss.runtime, layout.tensor_parallel, 1, pp=layout.pipeline_parallel)
    dep = build_deployment(ctx, miss.cand, miss.kv, miss.runtime, layout, 1, 1, fit, perf, miss.quality, miss.facts)
    return ladder.finish(ctx, dep)


def recommend(request: Request, knowledge: Knowledge | None = None, detail: bool = True,
              model: ResolvedModel | None = None) -> RecommendResult:
    """Plan every endpoint of a request. Raises AdvisorInputError naming the bad field. `detail` False skips the
    explanation around each pick (ladder, fallback, near misses, claims). `model`: the model already resolved
    (a Hugging Face repo read by advisor.intake.hub); otherwise it is resolved from the request."""
    k = knowledge or load_knowledge()
    check_ids(request, k)
    if model is not None:
        pass
    elif request.custom_model is not None:
        model = model_from_config(request.custom_model, name=request.model, where=f"config.json of {request.model}")
    else:
        model = resolve_model(k, request.model, field="model", revision=request.model_revision)
    gpu = resolve_gpu(request, k)
    results = []
    for endpoint in request.endpoints:
        shape = resolve_shape(request, endpoint, k)
        if model.architecture.max_position and shape.context > model.architecture.max_position:
            raise AdvisorInputError(
                f"endpoint {endpoint.name!r} context",
                f"{shape.context:,} tokens exceeds {model.name}'s limit of {model.architecture.max_position:,}",
            )
        with paused():  # in the main thread: thousands of small objects, no cycles left (advisor/collector.py)
            results.append(recommend_endpoint(EndpointContext(k, request, model, gpu, shape), detail))
    params = sum(t.params for t in tensor_inventory(model.architecture))
    return RecommendResult(request=request, model=model, params_total=params, gpu=gpu, endpoints=results)


def speed_curves(result: RecommendResult, endpoint: int, knowledge: Knowledge | None = None, limit: int = 4,
                 points: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)) -> list[dict]:
    """Output tokens/s and time per token against concurrency (over all replicas) for the pick and the best
    other configurations of one endpoint, marking the concurrencies that no longer fit."""
    k = knowledge or load_knowledge()
    er = result.endpoints[endpoint]
    ctx = EndpointContext(k, result.request, result.model, result.gpu, er.shape)
    chosen: list[Deployment] = []
    for d in ([er.pick] if er.pick else []) + er.ranked:
        if all(d.candidate != c.candidate for c in chosen):
            chosen.append(d)
    series = []
    for dep in chosen[:limit]:
        cand, kv, runtime = k.candidates[dep.candidate], k.kv_formats[dep.kv], k.runtimes[dep.runtime]
        replicas, tp, pp = dep.layout.replicas, dep.layout.tensor_parallel, dep.layout.pipeline_parallel
        room = dep.memory.max_concurrency * replicas
        curve = []
        for c in points:
            per = max(1, -(-c // replicas))
            perf = ctx.speed(cand, kv, runtime, tp, per, pp=pp)
            curve.append({"concurrency": c, "throughput": perf.throughput_tokens_per_s * c / per,
                          "tpot_ms": perf.tpot_ms, "ttft_ms": perf.ttft_ms, "fits": c <= room})
        series.append({"label": f"{cand.notation} KV-{kv.id.upper()} ({cand.id}, {dep.layout.words()})",
                       "pick": dep is er.pick, "points": curve})
    return series

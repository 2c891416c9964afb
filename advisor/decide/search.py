"""Enumerate and evaluate deployments: candidate x KV format x runtime x parallel layout x concurrency.

Gates run cheapest first, and each dropped option keeps its reason: the runtime on this GPU, what the
runtime serves, the rules that reject (once per candidate, KV format and runtime), the layout's splits,
then memory per layout; only what fits gets a speed estimate, and only then the quality floor and the
speed and cost targets apply. Requirement endpoints evaluate their requested concurrency; ceiling
endpoints (batch, offline) a ladder of concurrencies up to what fits, keeping the one the objective prefers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from advisor.decide import gates, objective
from advisor.decide.context import EndpointContext
from advisor.decide.result import Deployment, Layout, MemoryFit, Reason
from advisor.fastmodel import construct
from advisor.intake.catalog import lookup
from advisor.knowledge.schema import Candidate, KVFormat, Runtime
from advisor.physics.performance import Performance
from advisor.physics.quality import Quality


class Attempt:
    """The closest a candidate came to serving the endpoint, with what stopped it."""

    __slots__ = ("candidate", "kv", "runtime", "layout", "_reasons", "_memory", "closeness", "_short")

    def __init__(self, candidate: str, kv: str, runtime: str, layout: Layout | None, reasons: list[Reason] | None,
                 memory: MemoryFit | None = None, short: tuple | None = None, total: int = 0):
        self.candidate, self.kv, self.runtime, self.layout = candidate, kv, runtime, layout
        self._reasons, self._memory, self._short = reasons, memory, short
        if reasons is None:  # only memory stopped it, needing `total` bytes per GPU (:func:`memory_attempt`)
            self.closeness = (0, True, total)
            return
        # hard blockers first, then memory, then the quality floor and targets (the nearest to serving)
        hard = sum(1 for r in reasons if r.kind not in ("memory", "target", "quality", "unmeasured"))
        memory_miss = any(r.kind == "memory" for r in reasons)
        self.closeness = (hard, memory_miss, memory.total_bytes_per_gpu if memory else 0)

    @property
    def memory(self) -> MemoryFit | None:
        """Its memory, when it got as far as memory (an attempt that only memory stopped builds it when read)."""
        if self._memory is None and self._reasons is None:
            ctx, kv, concurrency = self._short  # type: ignore[misc]
            layout = self.layout
            self._memory = gates.memory_fit(ctx, ctx.k.candidates[self.candidate], kv, ctx.k.runtimes[self.runtime],
                                            layout.tensor_parallel, concurrency, layout.pipeline_parallel)
        return self._memory

    @property
    def reasons(self) -> list[Reason]:
        """What stopped it. An attempt that only memory stopped words its reason when first asked: most are replaced
        by a closer attempt before any is shown."""
        if self._reasons is None:
            ctx, kv, concurrency = self._short  # type: ignore[misc]
            self._reasons = [gates.memory_reason(ctx, self.memory, kv, self.layout, concurrency)]
        return self._reasons


def memory_attempt(ctx: EndpointContext, out: Outcome, cand: Candidate, kv: KVFormat, runtime: Runtime,
                   layout: Layout, total: int, concurrency: int) -> None:
    """Note an attempt that only memory stopped (needing `total` bytes per GPU at `concurrency` requests per
    replica), if it is the candidate's closest so far."""
    if out.closer(cand.id, (0, True, total)):
        out.attempt(Attempt(cand.id, kv.id, runtime.id, layout, None, None, (ctx, kv, concurrency), total))


class MemoryMiss:
    """A configuration that only memory stops, at one layout (for near misses and 'what would fit'): by its figures,
    its MemoryFit built when first asked for (most misses are only compared)."""

    __slots__ = ("cand", "kv", "runtime", "layout", "quality", "total_bytes_per_gpu", "max_concurrency", "_concurrency",
                 "_fit", "_ctx")

    def __init__(self, ctx: EndpointContext, cand, kv, runtime, layout, quality, concurrency: int, total: int,
                 most: int):
        self.cand, self.kv, self.runtime, self.layout, self.quality = cand, kv, runtime, layout, quality
        self.total_bytes_per_gpu, self.max_concurrency, self._concurrency = total, most, concurrency
        self._fit: MemoryFit | None = None
        self._ctx = ctx

    @property
    def fit(self) -> MemoryFit:
        """Its memory at its concurrency per replica (gates.memory_fit, the same figures)."""
        if self._fit is None:
            layout = self.layout
            self._fit = gates.memory_fit(self._ctx, self.cand, self.kv, self.runtime, layout.tensor_parallel,
                                         self._concurrency, layout.pipeline_parallel)
        return self._fit

    @property
    def facts(self) -> dict:
        """The configuration's static facts (worked out when first asked for: most misses are never shown)."""
        return self._ctx.facts(self.cand, self.kv, self.runtime)

    @property
    def max_total(self) -> int:
        return self.max_concurrency * self.layout.replicas


class Outcome:
    """Everything the search found for one endpoint."""

    def __init__(self, measured_only: bool = False) -> None:
        self.measured_only = measured_only  # skip options whose runtime speed no measurement backs
        self.skipped: set[str] = set()  # runtimes skipped for that reason
        self.feasible: list[Deployment] = []  # fits and meets every gate
        self.gated: list[Deployment] = []  # fits in memory but misses the quality floor or a target
        self.memory_misses: list[MemoryMiss] = []
        self.attempts: dict[str, Attempt] = {}  # candidate id -> its closest attempt
        self.runtimes: list[Runtime] = []
        self.single_node: dict[str, Reason] = {}  # runtime id -> why it cannot span the request's nodes
        self.evaluated = 0
        # Hard-blocked attempts known before any number (runtime, support, rules, layout splits): every reason they
        # carry is a hard one and they hold no memory figure, so they never tie with an evaluated attempt and the
        # closest is the one with the fewest reasons (the first of equals). Kept as (count, kv, runtime, layout,
        # reason lists) per candidate and made Attempts once, at the end (:meth:`close`).
        self._blocked: dict[str, tuple[int, str, str, Layout | None, tuple[list[Reason], ...]]] = {}
        self.seq = 0  # the search's step: the order candidates first came up in, which the rejections list keeps
        self._first: dict[str, int] = {}
        # In a measured-only pass: (index of the first runtime whose options that pass may skip, a copy of the
        # outcome before it). A second pass that evaluates everything starts from there: the runtimes before it
        # were searched as that pass would search them.
        self.resume: tuple[int, Outcome] | None = None

    def copy(self) -> Outcome:
        """A copy to continue from (its containers copied; the attempts, misses and deployments they hold are never
        changed in place during a search)."""
        other = Outcome(self.measured_only)
        other.skipped, other.feasible, other.gated = set(self.skipped), list(self.feasible), list(self.gated)
        other.memory_misses, other.attempts = list(self.memory_misses), dict(self.attempts)
        other.runtimes, other.single_node, other.evaluated = self.runtimes, dict(self.single_node), self.evaluated
        other._blocked, other.seq, other._first = dict(self._blocked), self.seq, dict(self._first)
        return other

    def settled(self, candidate: str) -> bool:
        """The candidate already came as close as a hard reason can (only memory, targets or speed evidence
        stopped it), so another hard-blocked attempt cannot replace it."""
        best = self.attempts.get(candidate)
        return best is not None and best.closeness[0] == 0

    def attempt(self, a: Attempt) -> None:
        best = self.attempts.get(a.candidate)
        if best is None or a.closeness < best.closeness:
            self.attempts[a.candidate] = a
        self._first.setdefault(a.candidate, self.seq)

    def blocked(self, candidate: str, kv: str, runtime: str, layout: Layout | None, *reasons: list[Reason]) -> None:
        """A hard-blocked attempt (all its reasons hard, no memory figure): kept if it has fewer reasons than the
        candidate's closest such attempt so far."""
        self._first.setdefault(candidate, self.seq)
        count = 0
        for part in reasons:
            count += len(part)
        best = self._blocked.get(candidate)
        if best is None or count < best[0]:
            self._blocked[candidate] = (count, kv, runtime, layout, reasons)

    def beaten(self, candidate: str, reasons: int) -> bool:
        """Could a hard-blocked attempt with at least `reasons` reasons not become the candidate's closest? (Then
        its reasons need not be worked out; the candidate's first appearance is still noted.)"""
        self._first.setdefault(candidate, self.seq)
        best = self._blocked.get(candidate)
        return best is not None and best[0] <= reasons

    def close(self) -> None:
        """Make each candidate's closest hard-blocked attempt an Attempt and order the attempts as the candidates
        first came up (as if each had been recorded when it was met)."""
        for candidate, (_, kv, runtime, layout, reasons) in self._blocked.items():
            best = self.attempts.get(candidate)
            if best is None or best.closeness[0] > 0:  # a settled candidate came closer than any hard block can
                self.attempt(Attempt(candidate, kv, runtime, layout, [r for part in reasons for r in part]))
        self._blocked.clear()
        first = self._first
        self.attempts = dict(sorted(self.attempts.items(), key=lambda item: first[item[0]]))

    def closer(self, candidate: str, closeness: tuple) -> bool:
        """Would an attempt this close replace the candidate's closest so far? (build its reasons only then)"""
        best = self.attempts.get(candidate)
        return best is None or closeness < best.closeness


def candidates(ctx: EndpointContext) -> Iterable[Candidate]:
    """Every candidate, except those offered only for a model whose own checkpoint uses their layout (the ones
    its native layout lists, or, where it lists none, those whose scheme it uses)."""
    layout = ctx.model.native
    native = {layout.scheme, *layout.overrides.values()}
    for cand in ctx.k.candidates.values():
        if cand.only_for_native:
            if layout.candidates and cand.id not in layout.candidates:
                continue
            if not layout.candidates and cand.only_for_native not in native:
                continue
            if cand.only_for_native == "gguf" and cand.id not in layout.candidates:
                continue
        yield cand


def runtimes(ctx: EndpointContext) -> list[Runtime]:
    if ctx.request.runtime:
        return [lookup(ctx.k.runtimes, ctx.request.runtime, "runtime", "runtime")]
    return sorted(ctx.k.runtimes.values(), key=lambda r: r.preference)


def concurrency_options(cap: int) -> list[int]:
    """Powers of two below `cap`, and `cap` itself: where a ceiling endpoint's concurrency is chosen."""
    out, c = [], 1
    while c < cap:
        out.append(c)
        c *= 2
    return out + [cap]


def _metrics(ctx: EndpointContext, layout: Layout, concurrency: int, total: int, fit: tuple[int, int],
             speed: tuple[float, float, float], quality: Quality, measured: bool
             ) -> tuple[dict[str, float], float, float | None]:
    """The objective metrics of a deployment, its throughput over every replica and its cost per million tokens.
    `fit`: (bytes per GPU of weights and KV, sequences one replica holds); `speed`: (TTFT ms, time per output token
    ms, output tokens/s) of one replica at `concurrency`; `total` requests are spread over the replicas."""
    throughput = speed[2] * total / concurrency
    gpus = layout.gpus
    gpu_hours = gpus / (throughput * 3600) * 1e6
    cost = ctx.price * gpu_hours if ctx.price else None
    if ctx.mode == "ceiling":
        gpus_needed = layout.tensor_parallel * layout.pipeline_parallel
    else:
        per_replica = max(1, fit[1])
        gpus_needed = min(gpus, layout.tensor_parallel * layout.pipeline_parallel * math.ceil(total / per_replica))
    return {
        "expected_recovery_pct": quality.expected_recovery_pct,
        "worst_recovery_pct": quality.worst_recovery_pct,
        "gpu_hours_per_million_tokens": gpu_hours,
        "tpot_ms": speed[1],
        "ttft_ms": speed[0],
        "gpus_needed": float(gpus_needed),
        "model_bytes_per_gpu": float(fit[0]),
        "max_total_concurrency": float(fit[1] * layout.replicas),
        "throughput_per_gpu": throughput / gpus,
        "speed_measured": float(measured),
    }, throughput, cost


def build_deployment(ctx: EndpointContext, cand: Candidate, kv: KVFormat, runtime: Runtime, layout: Layout,
                     concurrency: int, total: int, fit: MemoryFit, perf: Performance, quality: Quality,
                     static_facts: dict, explain: bool = False, owned: bool = False) -> Deployment:
    """The deployment's numbers for all replicas: `perf` is one replica at `concurrency`; `total` requests
    are spread over the replicas. `owned`: `perf` was built for this deployment alone (not kept in a cache), so it
    takes the figures over all replicas itself rather than a copy."""
    pp = layout.pipeline_parallel
    metrics, throughput, cost = _metrics(
        ctx, layout, concurrency, total, (fit.weights_bytes_per_gpu + fit.kv_bytes_per_gpu, fit.max_concurrency),
        (perf.ttft_ms, perf.tpot_ms, perf.throughput_tokens_per_s), quality,
        ctx.speed_measured(runtime, layout.tensor_parallel, concurrency))
    if explain:
        perf = ctx.speed(cand, kv, runtime, layout.tensor_parallel, concurrency, explain=True, pp=pp)
    elif owned:
        values = perf.__dict__
        values["throughput_tokens_per_s"], values["cost_per_million_tokens"] = throughput, cost
    if explain or not owned:
        perf = construct(Performance, **{**perf.__dict__, "throughput_tokens_per_s": throughput,
                                         "cost_per_million_tokens": cost})
    facts = {
        **static_facts,
        "deploy.tp": layout.tensor_parallel,
        "deploy.replicas": layout.replicas,
        "deploy.pp": pp,
        "deploy.concurrency": concurrency,
        "mem.fits": fit.fits,
        "perf.ttft_ms": perf.ttft_ms,
        "perf.tpot_ms": perf.tpot_ms,
        "perf.throughput_tokens_per_s": throughput,
        "perf.cost_per_million_tokens": cost,
        "quality.expected_pct": quality.expected_recovery_pct,
        "quality.worst_pct": quality.worst_recovery_pct,
    }
    return construct(
        Deployment, candidate=cand.id, kv=kv.id, runtime=runtime.id, layout=layout, concurrency=concurrency,
        total_concurrency=total, memory=fit, performance=perf, quality=quality, metrics=metrics,
        fired=[], flags=[], notes=[], weights=None, why=[], facts=facts,
    )


class _Point:
    """One concurrency of a ceiling endpoint's configuration, by its numbers only: what the objective compares
    (the attributes :func:`objective.best` reads) before a Deployment is built for the one it keeps."""

    __slots__ = ("candidate", "kv", "runtime", "layout", "concurrency", "metrics")

    def __init__(self, cand: Candidate, kv: KVFormat, runtime: Runtime, layout: Layout, concurrency: int,
                 metrics: dict[str, float]):
        self.candidate, self.kv, self.runtime, self.layout = cand.id, kv.id, runtime.id, layout
        self.concurrency, self.metrics = concurrency, metrics


def _unmeasured(ctx: EndpointContext, out: Outcome, cand: Candidate, kv: KVFormat, runtime: Runtime, layout: Layout,
                concurrency: int, fit: MemoryFit) -> bool:
    """In a measured-only pass, skip (and say why) an option whose runtime speed has no measurement behind it."""
    if not out.measured_only or ctx.speed_measured(runtime, layout.tensor_parallel, concurrency):
        return False
    out.skipped.add(runtime.id)
    if out.closer(cand.id, (0, False, fit.total_bytes_per_gpu)):
        out.attempt(Attempt(cand.id, kv.id, runtime.id, layout, [Reason(
            kind="unmeasured", text=f"fits, but no published measurement backs {runtime.name}'s speed at "
            f"{concurrency} requests on {layout.tensor_parallel} GPU(s) (knowledge/perf_measurements.yaml); name the "
            "runtime to plan on it")], fit))
    return True


def _late(ctx: EndpointContext, dep: Deployment) -> list[Reason]:
    return gates.late_rejections(ctx.rules, dep.facts) if ctx.late_rejects else []


def _evaluate_layout(ctx: EndpointContext, out: Outcome, cand: Candidate, kv: KVFormat, runtime: Runtime,
                     layout: Layout, quality: Quality) -> None:
    tp, replicas, pp = layout.tensor_parallel, layout.replicas, layout.pipeline_parallel
    shape = ctx.shape
    if ctx.mode == "requirement":
        per_replica = math.ceil(shape.concurrency / replicas)
        fits, total, most = gates.fit_figures(ctx, cand, kv, runtime, tp, per_replica, pp)
        if not fits:
            memory_attempt(ctx, out, cand, kv, runtime, layout, total, per_replica)
            out.memory_misses.append(MemoryMiss(ctx, cand, kv, runtime, layout, quality, per_replica, total, most))
            return
        fit = gates.memory_fit(ctx, cand, kv, runtime, tp, per_replica, pp)
        if _unmeasured(ctx, out, cand, kv, runtime, layout, per_replica, fit):
            return
        perf = ctx.speed_model(cand, runtime, tp, pp).at(kv, per_replica)  # evaluated once: not cached
        out.evaluated += 1
        dep = build_deployment(ctx, cand, kv, runtime, layout, per_replica, shape.concurrency, fit, perf, quality,
                               ctx.facts(cand, kv, runtime), owned=True)
        reasons = _late(ctx, dep)
        if reasons:
            out.gated.append(dep)
            out.attempt(Attempt(cand.id, kv.id, runtime.id, layout, reasons, fit))
        else:
            out.feasible.append(dep)
        return
    # ceiling: choose the concurrency per replica, up to what fits, the endpoint's ceiling and the search's cap
    _, total, most = gates.fit_figures(ctx, cand, kv, runtime, tp, 1, pp)
    cap = min(ctx.k.decision["batch-max-concurrency"].value, math.ceil(shape.concurrency / replicas))
    top = min(int(cap), most)
    if top < 1:
        memory_attempt(ctx, out, cand, kv, runtime, layout, total, 1)
        out.memory_misses.append(MemoryMiss(ctx, cand, kv, runtime, layout, quality, 1, total, most))
        return
    passing, failing = [], []
    cheapest = math.inf
    stop = ctx.cost_stop_ratio
    options = concurrency_options(top)
    lo, hi = ctx.measured_range(runtime, tp) or (0, -1)  # the concurrencies measurements back
    if out.measured_only:
        # Concurrencies no measurement backs are skipped unevaluated. Memory grows with the requests held, so of
        # those only the smallest that fits can be the candidate's closest attempt: record just that one.
        unbacked = [c for c in options if not lo <= c <= hi]
        if unbacked:
            c = unbacked[0]
            fit = gates.memory_fit(ctx, cand, kv, runtime, tp, c, pp)
            if fit.fits:
                _unmeasured(ctx, out, cand, kv, runtime, layout, c, fit)
            options = [c for c in options if c not in unbacked]
    if not ctx.late_rejects:
        # Nothing rejects on the numbers, so every concurrency that fits passes: compare them by their figures alone
        # and build the Deployment of the one the objective keeps (its memory fit and speed are the same figures).
        points: list[_Point] = []
        fit_at = gates.fit_numbers(ctx, cand, kv, runtime, tp, pp)
        weights_gpu = ctx.fit_base(cand, runtime, tp, pp)[1]
        model = ctx.speed_model(cand, runtime, tp, pp)
        for c in reversed(options):
            budget, most, kv_gpu = fit_at(c)
            if budget < 0 or kv_gpu > budget:  # a runtime whose overhead grows with the tokens held fits fewer
                continue
            out.evaluated += 1
            metrics = _metrics(ctx, layout, c, c * replicas, (weights_gpu + kv_gpu, most), model.numbers(kv, c),
                               quality, lo <= c <= hi)[0]
            points.append(_Point(cand, kv, runtime, layout, c, metrics))
            cost = metrics["gpu_hours_per_million_tokens"]
            cheapest = min(cheapest, cost)
            if stop and cost > cheapest * stop:
                break  # fewer requests only cost more per token, past what the objective's tolerance keeps
        if points:
            c = (points[0] if len(points) == 1 else objective.best(points, ctx.k.priorities[shape.priority])).concurrency
            fit = gates.memory_fit(ctx, cand, kv, runtime, tp, c, pp)
            out.feasible.append(build_deployment(ctx, cand, kv, runtime, layout, c, c * replicas, fit,
                                                 model.at(kv, c), quality, ctx.facts(cand, kv, runtime), owned=True))
        return
    for c, fit, perf in _fitting(ctx, out, cand, kv, runtime, layout, options):
        dep = build_deployment(ctx, cand, kv, runtime, layout, c, c * replicas, fit, perf, quality,
                               ctx.facts(cand, kv, runtime))
        reasons = _late(ctx, dep)
        (failing if reasons else passing).append((dep, reasons))
        cost = dep.metrics["gpu_hours_per_million_tokens"]
        if not reasons:
            cheapest = min(cheapest, cost)
        if stop and cost > cheapest * stop:
            break  # fewer requests only cost more per token, past what the objective's tolerance keeps
    if passing:
        out.feasible.append(objective.best([d for d, _ in passing], ctx.k.priorities[shape.priority]))
    elif failing:
        dep, reasons = min(failing, key=lambda x: (len(x[1]), x[0].concurrency))
        out.gated.append(dep)
        out.attempt(Attempt(cand.id, kv.id, runtime.id, layout, reasons, dep.memory))


def _fitting(ctx: EndpointContext, out: Outcome, cand: Candidate, kv: KVFormat, runtime: Runtime, layout: Layout,
             options: list[int]) -> Iterator[tuple[int, MemoryFit, Performance]]:
    """A ceiling endpoint's concurrencies that fit, most requests first (the cheapest per token): each with its
    memory fit and speed, counted as evaluated when reached."""
    tp, pp = layout.tensor_parallel, layout.pipeline_parallel
    for c in reversed(options):
        fit = gates.memory_fit(ctx, cand, kv, runtime, tp, c, pp)
        if not fit.fits:  # a runtime whose overhead grows with the tokens held (llama.cpp) fits fewer
            continue
        perf = ctx.speed(cand, kv, runtime, tp, c, pp=pp)
        out.evaluated += 1
        yield c, fit, perf


def _concurrencies(ctx: EndpointContext, layout: Layout) -> tuple[int, int]:
    """The range of requests per replica the search may try at this layout (one value for a requirement)."""
    if ctx.mode == "requirement":
        need = math.ceil(ctx.shape.concurrency / layout.replicas)
        return need, need
    cap = min(ctx.k.decision["batch-max-concurrency"].value, math.ceil(ctx.shape.concurrency / layout.replicas))
    return 1, int(cap)


def _all_measured(ctx: EndpointContext, runtime: Runtime, layouts: list[Layout]) -> bool:
    """Do measurements back this runtime's speed at every concurrency the search may try at every layout? (Then a
    measured-only pass searches it exactly as a full pass does.)"""
    for lay in layouts:
        lo, hi = _concurrencies(ctx, lay)
        tp = lay.tensor_parallel
        if not (ctx.speed_measured(runtime, tp, lo) and ctx.speed_measured(runtime, tp, hi)):
            return False  # (measured at both ends of the range is measured all through it)
    return True


def search(ctx: EndpointContext, measured_only: bool = False, resume: tuple[int, Outcome] | None = None) -> Outcome:
    """Evaluate every deployment; with `measured_only`, only those whose runtime speed published measurements
    back at their concurrency and GPU count (the others keep a reason). `resume`: a measured-only pass's
    :attr:`Outcome.resume`, to search everything from the first runtime that pass may have skipped options of
    (the same outcome as searching everything from the start)."""
    layouts = gates.layouts(ctx.arch, ctx.request.gpus, ctx.request.nodes)
    pipelined = any(lay.pipeline_parallel > 1 for lay in layouts)
    cands = list(candidates(ctx))
    kvs = list(ctx.k.kv_formats.values())
    if resume is not None and not measured_only:
        start, saved = resume
        out = saved.copy()
        out.measured_only = False
    else:
        start, out = 0, Outcome(measured_only)
        out.runtimes = runtimes(ctx)
    for index in range(start, len(out.runtimes)):
        runtime = out.runtimes[index]
        blocked = gates.runtime_reasons(ctx, runtime)
        if measured_only and out.resume is None and not blocked and not _all_measured(ctx, runtime, layouts):
            out.resume = (index, out.copy())
        if blocked:
            for cand in cands:
                out.seq += 1
                out.blocked(cand.id, kvs[0].id, runtime.id, None, blocked)
            continue
        if measured_only and not any(ctx.speed_measured(runtime, lay.tensor_parallel, *_concurrencies(ctx, lay))
                                     for lay in layouts):
            # Nothing this runtime could serve here has a measurement behind its speed: it is not ranked
            # (a second pass evaluates it when no measured runtime serves the endpoint at all).
            out.skipped.add(runtime.id)
            reason = [Reason(kind="runtime", text=f"not evaluated on {runtime.name}: no published measurement backs "
                             "its speed at this concurrency and GPU count (knowledge/perf_measurements.yaml); name "
                             "the runtime to plan on it")]
            for cand in cands:
                if runtime.id in cand.runtimes and not gates.candidate_support(ctx, cand, runtime):
                    # a rule that stops the candidate everywhere says more than the runtime being unranked
                    out.seq += 1
                    out.blocked(cand.id, kvs[0].id, runtime.id, None, ctx.verdict(cand, kvs[0], runtime).reasons,
                                reason)
            continue
        served_kvs = [kv for kv in kvs if not gates.kv_support(ctx.k, kv, runtime)]
        single_node = gates.multinode_reasons(runtime) if pipelined else []
        if single_node:
            out.single_node[runtime.id] = single_node[0]
        for cand in cands:
            out.seq += 1
            reasons = gates.candidate_support(ctx, cand, runtime) + gates.checkpoint_reasons(ctx, cand, runtime)
            if reasons or not served_kvs:
                kv = served_kvs[0] if served_kvs else kvs[0]
                stated = reasons or gates.kv_support(ctx.k, kv, runtime)
                if out.settled(cand.id) or out.beaten(cand.id, len(stated)):
                    continue
                # the rules explain what the support table only states (e.g. FP8 W8A8 runs as W8A16 on Ampere)
                out.blocked(cand.id, kv.id, runtime.id, None, ctx.verdict(cand, kv, runtime).reasons, stated)
                continue
            for kv in served_kvs:
                out.seq += 1
                verdict = ctx.verdict(cand, kv, runtime)
                if verdict.reasons:
                    if not out.settled(cand.id):
                        out.blocked(cand.id, kv.id, runtime.id, None, verdict.reasons)
                    continue
                quality = ctx.quality(cand, kv, verdict)
                for layout in layouts:
                    out.seq += 1
                    if single_node and layout.pipeline_parallel > 1:
                        if not out.settled(cand.id):
                            out.blocked(cand.id, kv.id, runtime.id, layout, single_node)
                        continue
                    split = gates.group_split_reason(ctx, cand, layout.tensor_parallel)
                    if split:
                        out.blocked(cand.id, kv.id, runtime.id, layout, [split])
                        continue
                    _evaluate_layout(ctx, out, cand, kv, runtime, layout, quality)
    out.close()
    return out

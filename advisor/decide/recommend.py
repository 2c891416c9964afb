"""The recommendation engine: enumerate, filter with reasons, score, rank - per endpoint.

For every endpoint it pairs each candidate W/A configuration with each KV-cache format and tries the
runtimes (the one asked for, or all in preference order: runtime first, then the methods it serves).
A combination is dropped when a rule rejects it, the runtime does not serve it on this hardware, or
it does not fit in memory; each drop keeps its reason. Survivors are scored on four dimensions
(quality, latency, throughput, memory) from the candidate's evidence plus the rules that fire, and
ranked by the priority's weights. Everything here is pure: knowledge in, result out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from pydantic import BaseModel, ConfigDict, Field

from advisor.decide.rules import compile_condition, facts_named, specialize
from advisor.errors import AdvisorInputError
from advisor.intake.catalog import ResolvedModel, lookup, model_from_config, resolve_model
from advisor.intake.request import Request, Shape, check_ids, resolve_shape
from advisor.knowledge import load_knowledge
from advisor.knowledge.schema import GPU, Candidate, Knowledge, KVFormat, Rule, Runtime
from advisor.physics import memory
from advisor.physics.performance import Performance, estimate_speed

DIMENSIONS = ("quality", "latency", "throughput", "memory")
KV_RISK_WEIGHT = 0.5  # a KV format's risk counts half a weight format's (it touches attention only)
GPU_COUNTS = (1, 2, 4, 8, 16, 32, 64)


class FiredRule(BaseModel):
    id: str
    title: str
    rationale: str
    effect: str
    source: list[str]


class Reason(BaseModel):
    kind: str  # rule | hardware | runtime | memory | target (a speed or cost target)
    text: str
    rule: str | None = None
    source: list[str] = []


class MemoryFit(BaseModel):
    weights_bytes: int  # checkpoint once
    weights_bytes_per_gpu: int
    kv_bytes_per_gpu: int  # at the endpoint's concurrency and context
    overhead_bytes_per_gpu: int  # activations + non-torch + headroom
    capacity_bytes_per_gpu: int
    kv_budget_bytes_per_gpu: int
    gpus: int
    fits: bool
    max_concurrency: int  # at the endpoint's context

    @property
    def total_bytes_per_gpu(self) -> int:
        return self.weights_bytes_per_gpu + self.kv_bytes_per_gpu + self.overhead_bytes_per_gpu


class Combo(BaseModel):
    """One (candidate, KV format, runtime) evaluated for one endpoint."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    candidate: str
    kv: str
    runtime: str
    reasons: list[Reason] = Field(default_factory=list)
    fired: list[FiredRule] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    total: float = 0.0
    flags: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    memory: MemoryFit | None = None
    performance: Performance | None = None

    @property
    def feasible(self) -> bool:
        return not self.reasons

    @property
    def hardware_ok(self) -> bool:
        """Only memory stands in the way (used when nothing fits)."""
        return all(r.kind == "memory" for r in self.reasons)


class Rejection(BaseModel):
    candidate: str
    notation: str
    name: str
    reasons: list[Reason]
    kv: str | None = None  # the KV format of the closest attempt
    memory: MemoryFit | None = None  # its memory, when memory was what stopped it


class KVOption(BaseModel):
    """The picked weights with each KV-cache format: can the runtime use it, and how much fits."""

    kv: str
    available: bool
    reason: str | None = None
    fits: bool = False
    max_concurrency: int = 0
    max_context: int = 0


class LadderStep(BaseModel):
    role: str  # baseline | step | pick
    candidate: str
    kv: str
    runtime: str | None
    fits: bool
    total_bytes_per_gpu: int | None
    note: str


class EndpointResult(BaseModel):
    shape: Shape
    pick: Combo | None  # best feasible; when nothing fits, the smallest that only memory stops
    fits: bool
    ranked: list[Combo]  # feasible combos, best first (the pick is ranked[0] when it fits)
    rejected: list[Rejection]
    what_would_fit: list[str]
    eight_bit_fits: bool
    ladder: list[LadderStep] = []
    kv_options: list[KVOption] = []
    fallback: Combo | None = None
    runtime_chosen_by: str = ""


class RecommendResult(BaseModel):
    request: Request
    model: ResolvedModel
    gpu: GPU
    endpoints: list[EndpointResult]


# --------------------------------------------------------------------------- context
class _Context:
    """What one endpoint's evaluation needs, computed once (weights per scheme, KV per format...)."""

    def __init__(self, k: Knowledge, request: Request, model: ResolvedModel, gpu: GPU, shape: Shape):
        self.k, self.request, self.model, self.gpu, self.shape = k, request, model, gpu, shape
        self.arch = model.architecture
        self.tp = request.gpus
        self._weights: dict[tuple[str, int | None], tuple[int, int, memory.Layout]] = {}
        self._kv: dict[str, int] = {}
        self._overhead: dict[str, int] = {}
        self.kv8_fits: set[str] = set()
        self.base_facts = {
            "request.priority": shape.priority,
            "request.calibration": request.calibration,
            "request.quality_floor_pct": request.criteria.quality_floor_pct,
            "request.unacceptable": list(request.criteria.unacceptable),
            "endpoint.workload": shape.workload.id,
            "endpoint.concurrency": shape.concurrency,
            "endpoint.context": shape.context,
            "endpoint.prompt_tokens": shape.prompt_tokens,
            "endpoint.output_tokens": shape.output_tokens,
            "endpoint.uses_tools": shape.workload.uses_tools,
            "endpoint.structured_output": shape.workload.structured_output,
            "gpu.id": gpu.id,
            "gpu.vendor": gpu.vendor,
            "gpu.architecture": gpu.architecture,
            "gpu.cc": gpu.cc_value,
            "gpu.native": list(gpu.native_formats),
            "gpu.bf16": gpu.supports_bf16,
            "gpu.count": request.gpus,
            "model.moe": self.arch.is_moe,
            "model.params_b": None,
            "model.mla": self.arch.mla is not None,
            "model.native_quantized": bool(model.native.overrides)
            or model.native.scheme not in ("bf16", "fp16", "fp32"),
            "request.max_ttft_ms": request.criteria.max_ttft_ms,
            "request.max_tpot_ms": request.criteria.max_tpot_ms,
            "request.max_cost_per_million_tokens": request.criteria.max_cost_per_million_tokens,
        }
        self.has_speed_targets = any(
            v is not None for v in (request.criteria.max_ttft_ms, request.criteria.max_tpot_ms,
                                    request.criteria.max_cost_per_million_tokens))
        self._speed: dict[tuple[str, str, str], Performance] = {}
        self.rules = _specialized_rules(k, self.base_facts)
        bf16_w = self.weights(self.k.candidates["bf16"])[0]
        self.bf16_reference = bf16_w + self.kv_bytes(self.k.kv_formats["bf16"])
        self.base_facts["model.params_b"] = (
            sum(m.params for m in memory.weight_breakdown(self.arch, self.weights(self.k.candidates["bf16"])[2])) / 1e9
        )

    def weights(self, cand: Candidate) -> tuple[int, int, memory.Layout]:
        """(bytes per GPU, checkpoint bytes, layout) for a candidate's weights, cached per scheme."""
        key = (cand.weights, cand.group_size)
        if key not in self._weights:
            from advisor.physics.estimate import resolve_layout

            _, layout = resolve_layout(self.k, self.model, cand.weights, cand.group_size)
            total = sum(m.bytes for m in memory.weight_breakdown(self.arch, layout))
            self._weights[key] = (memory.weights_per_gpu(self.arch, layout, self.tp), total, layout)
        return self._weights[key]

    def kv_bytes(self, kv: KVFormat) -> int:
        if kv.id not in self._kv:
            per_seq = memory.kv_bytes_per_sequence(self.arch, kv, self.shape.context, self.tp)
            self._kv[kv.id] = per_seq * self.shape.concurrency
        return self._kv[kv.id]

    def overhead(self, runtime: Runtime) -> int:
        if runtime.id not in self._overhead:
            tokens = self.shape.context * self.shape.concurrency
            self._overhead[runtime.id] = memory.runtime_overhead(runtime.memory, self.arch, self.tp, tokens).per_gpu
        return self._overhead[runtime.id]

    def fit(self, cand: Candidate, kv: KVFormat, runtime: Runtime) -> MemoryFit:
        w_gpu, w_total, _ = self.weights(cand)
        overhead = self.overhead(runtime)
        capacity = self.gpu.memory_bytes
        budget = memory.kv_budget_per_gpu(runtime.memory, capacity, w_gpu, overhead)
        kv_gpu = self.kv_bytes(kv)
        per_seq = kv_gpu // self.shape.concurrency
        headroom = max(0, capacity - w_gpu - overhead - max(budget, 0))
        return MemoryFit(
            weights_bytes=w_total,
            weights_bytes_per_gpu=w_gpu,
            kv_bytes_per_gpu=kv_gpu,
            overhead_bytes_per_gpu=overhead + headroom,
            capacity_bytes_per_gpu=capacity,
            kv_budget_bytes_per_gpu=budget,
            gpus=self.tp,
            fits=budget >= 0 and kv_gpu <= budget,
            max_concurrency=max(0, budget) // per_seq if per_seq else 0,
        )

    def performance(self, cand: Candidate, kv: KVFormat, runtime: Runtime) -> Performance:
        """The speed model for one combination at this endpoint's shape (cached)."""
        key = (cand.id, kv.id, runtime.id)
        if key not in self._speed:
            self._speed[key] = self.performance_at(cand, kv, runtime, self.shape.concurrency)
        return self._speed[key]

    def performance_at(self, cand: Candidate, kv: KVFormat, runtime: Runtime, concurrency: int) -> Performance:
        """The speed model for one combination at this endpoint's prompt and output, any concurrency."""
        from advisor.physics.estimate import gpu_price

        layout = self.weights(cand)[2]
        activations = cand.activations if self.gpu.supports_bf16 or cand.activations != "bf16" else "fp16"
        speed = next(sp for sp in self.k.speed.values() if sp.runtime == runtime.id)
        return estimate_speed(
            self.arch, layout, kv, self.gpu, self.tp, activations, cand.weight_only and cand.tier < 16,
            self.shape.prompt_tokens, self.shape.output_tokens, concurrency, speed,
            self.request.usd_per_gpu_hour or gpu_price(self.k, self.gpu.id))

    def perf_facts(self, cand: Candidate, kv: KVFormat, runtime: Runtime) -> dict:
        perf = self._speed.get((cand.id, kv.id, runtime.id))
        if perf is None:
            return {}
        return {"perf.ttft_ms": perf.ttft_ms, "perf.tpot_ms": perf.tpot_ms,
                "perf.throughput_tokens_per_s": perf.throughput_tokens_per_s,
                "perf.cost_per_million_tokens": perf.cost_per_million_tokens}

    def facts(
        self, cand: Candidate, kv: KVFormat, runtime: Runtime, fit: MemoryFit | None, eight_bit_fits: bool
    ) -> dict:
        weight_format = self.k.schemes[cand.weights].format if cand.weights != "native" else None
        if weight_format is None:
            layout = self.weights(cand)[2]
            weight_format = next((s.format for s in layout.groups.values() if s.quantized), "bf16")
        fmt = self.k.formats[weight_format]
        return {
            **self.base_facts,
            "runtime.id": runtime.id,
            "cand.id": cand.id,
            "cand.native": cand.weights == "native",
            "cand.scenario": cand.scenario,
            "cand.tier": cand.tier,
            "cand.weight_format": weight_format,
            "cand.weight_bits": fmt.bits,
            "cand.activations": cand.activations,
            "cand.weight_only": cand.weight_only,
            "cand.method": cand.method,
            "cand.needs_calibration": bool(cand.method and self.k.methods[cand.method].calibration.needs_data),
            "cand.integer": fmt.family == "integer" and cand.tier < 16,
            "cand.risk": cand.quality.risk,
            "cand.worst_recovery_pct": cand.quality.worst_recovery_pct,
            "kv.id": kv.id,
            "kv.bits": self.k.formats[kv.format].bits,
            "kv.quantized": self.k.formats[kv.format].bits < 16,
            "kv.risk": kv.quality_risk,
            "mem.fits": fit.fits if fit else None,
            "mem.eight_bit_fits": eight_bit_fits,
            "mem.kv8_fits": cand.id in self.kv8_fits,
            **self.perf_facts(cand, kv, runtime),
        }


# --------------------------------------------------------------------------- gates
def _support_reasons(ctx: _Context, cand: Candidate, kv: KVFormat, runtime: Runtime) -> list[Reason]:
    gpu, out = ctx.gpu, []
    cc = gpu.cc_value
    if gpu.vendor not in runtime.vendors:
        out.append(
            Reason(
                kind="runtime", text=f"{runtime.name} does not run on {gpu.vendor.upper()} GPUs", source=runtime.sources
            )
        )
    elif runtime.min_cc and cc is not None and cc < runtime.min_cc:
        out.append(
            Reason(
                kind="runtime",
                text=f"{runtime.name} needs compute capability {runtime.min_cc} or newer; "
                f"{gpu.name} is {gpu.compute_capability}",
                source=runtime.sources,
            )
        )
    support = cand.runtimes.get(runtime.id)
    if support is None:
        served = ", ".join(cand.runtimes) or "none"
        out.append(
            Reason(
                kind="runtime",
                text=f"{runtime.name} does not serve {cand.name} (served by: {served})",
                source=cand.sources,
            )
        )
    else:
        src = [support.source] if isinstance(support.source, str) else list(support.source)
        where = f"{runtime.name} runs {cand.name}"
        if gpu.vendor not in support.vendors:
            out.append(
                Reason(
                    kind="hardware", text=f"{where} on {', '.join(v.upper() for v in support.vendors)} only", source=src
                )
            )
        elif cc is not None:
            if support.min_cc and cc < support.min_cc:
                out.append(
                    Reason(
                        kind="hardware",
                        text=f"{where} from compute capability {support.min_cc}; "
                        f"{gpu.name} is {gpu.compute_capability}",
                        source=src,
                    )
                )
            if support.max_cc and cc >= support.max_cc:
                out.append(
                    Reason(
                        kind="hardware",
                        text=f"{where} only below compute capability {support.max_cc}; "
                        f"{gpu.name} is {gpu.compute_capability}",
                        source=src,
                    )
                )
            if support.exact_cc and cc != support.exact_cc:
                out.append(
                    Reason(
                        kind="hardware",
                        text=f"{where} only on compute capability {support.exact_cc}; "
                        f"{gpu.name} is {gpu.compute_capability}",
                        source=src,
                    )
                )
    if runtime.id not in kv.runtime_flags:
        served = ", ".join(kv.runtime_flags) or "none"
        out.append(
            Reason(
                kind="runtime", text=f"{runtime.name} has no {kv.name} (runtimes that do: {served})", source=kv.sources
            )
        )
    return out


def _memory_reason(ctx: _Context, fit: MemoryFit, kv: KVFormat) -> Reason:
    gib = memory.GIB
    if fit.kv_budget_bytes_per_gpu < 0:
        text = (
            f"weights alone ({fit.weights_bytes_per_gpu / gib:.1f} GiB per GPU) leave no room for the KV cache "
            f"on {ctx.tp} x {ctx.gpu.name}"
        )
    else:
        text = (
            f"does not fit: {ctx.shape.concurrency} x {ctx.shape.context:,} tokens of {kv.id} KV need "
            f"{fit.kv_bytes_per_gpu / gib:.1f} GiB per GPU, {fit.kv_budget_bytes_per_gpu / gib:.1f} GiB left "
            f"after weights and overhead (room for {fit.max_concurrency} sequences)"
        )
    return Reason(kind="memory", text=text)


# --------------------------------------------------------------------------- rules and scores
def _describe(rule: Rule) -> str:
    e = rule.effect
    if e.reject:
        return "reject"
    parts = [f"{d} {v:+g}" for d, v in e.score.items()]
    if e.flags:
        parts.append("needs " + " ".join(e.flags))
    if e.note and not parts:
        parts.append("note")
    return ", ".join(parts)


def _specialized_rules(k: Knowledge, base_facts: dict) -> list[tuple[Rule, Callable]]:
    """The rules that can still fire for this endpoint, each reduced by its fixed facts and compiled."""
    out = []
    for rule in k.rules.values():
        reduced = specialize(rule.when, base_facts)
        if reduced is False:
            continue
        out.append((rule, (lambda facts: True) if reduced is True else compile_condition(reduced)))
    return out


def _apply_rules(ctx: _Context, combo: Combo, facts: dict, *, rejects_only: bool, only_speed: bool = False) -> None:
    for rule, condition in ctx.rules:
        if bool(rule.effect.reject) != rejects_only:
            continue
        if only_speed and not any(f.startswith("perf.") for f in facts_named(rule.when)):
            continue
        if not condition(facts):
            continue
        fired = FiredRule(
            id=rule.id, title=rule.title, rationale=rule.rationale, effect=_describe(rule), source=rule.sources
        )
        combo.fired.append(fired)
        if rule.effect.reject:
            kind = "target" if only_speed else "rule"
            combo.reasons.append(Reason(kind=kind, text=rule.effect.reject, rule=rule.id, source=rule.sources))
            continue
        for dim, delta in rule.effect.score.items():
            combo.scores[dim] = combo.scores.get(dim, 0.0) + delta
        for flag in rule.effect.flags:
            if flag not in combo.flags:
                combo.flags.append(flag)
        if rule.effect.note:
            combo.notes.append(rule.effect.note)


def _base_scores(ctx: _Context, cand: Candidate, kv: KVFormat, fit: MemoryFit) -> dict[str, float]:
    used = fit.weights_bytes_per_gpu + fit.kv_bytes_per_gpu
    return {
        "quality": -(cand.quality.risk + KV_RISK_WEIGHT * kv.quality_risk),
        "latency": cand.base.get("latency", 0.0),
        "throughput": cand.base.get("throughput", 0.0),
        "memory": 2 * math.log2(ctx.bf16_reference / used) if used else 0.0,
    }


def _candidates(ctx: _Context) -> Iterable[Candidate]:
    native = {ctx.model.native.scheme, *ctx.model.native.overrides.values()}
    for cand in ctx.k.candidates.values():
        if cand.only_for_native and cand.only_for_native not in native:
            continue
        yield cand


def _runtimes(ctx: _Context) -> list[Runtime]:
    if ctx.request.runtime:
        return [lookup(ctx.k.runtimes, ctx.request.runtime, "runtime", "runtime")]
    return sorted(ctx.k.runtimes.values(), key=lambda r: r.preference)


def _evaluate(ctx: _Context, cand: Candidate, kv: KVFormat, runtime: Runtime) -> Combo:
    """Gates for one combination: runtime support, rejecting rules, then memory."""
    combo = Combo(candidate=cand.id, kv=kv.id, runtime=runtime.id)
    combo.reasons += _support_reasons(ctx, cand, kv, runtime)
    facts = ctx.facts(cand, kv, runtime, None, False)
    _apply_rules(ctx, combo, facts, rejects_only=True)
    if not combo.reasons:
        combo.memory = ctx.fit(cand, kv, runtime)
        if not combo.memory.fits:
            combo.reasons.append(_memory_reason(ctx, combo.memory, kv))
        elif ctx.has_speed_targets:  # latency and cost targets are gates too, with the same reasons trail
            combo.performance = ctx.performance(cand, kv, runtime)
            _apply_rules(ctx, combo, ctx.facts(cand, kv, runtime, combo.memory, False), rejects_only=True,
                         only_speed=True)
    return combo


def _score(ctx: _Context, combo: Combo, eight_bit_fits: bool) -> None:
    cand, kv = ctx.k.candidates[combo.candidate], ctx.k.kv_formats[combo.kv]
    runtime = ctx.k.runtimes[combo.runtime]
    combo.scores = _base_scores(ctx, cand, kv, combo.memory)  # type: ignore[arg-type]
    facts = ctx.facts(cand, kv, runtime, combo.memory, eight_bit_fits)
    _apply_rules(ctx, combo, facts, rejects_only=False)
    weights = ctx.k.priorities[ctx.shape.priority].weights
    combo.total = round(sum(weights.get(d, 0.0) * combo.scores.get(d, 0.0) for d in DIMENSIONS), 4)


def _rank_key(ctx: _Context, combo: Combo) -> tuple:
    runtime = ctx.k.runtimes[combo.runtime]
    fit = combo.memory
    return (-combo.total, runtime.preference, fit.total_bytes_per_gpu if fit else 0, combo.candidate, combo.kv)


def _summarise_rejections(ctx: _Context, tried: list[Combo], feasible: set[str]) -> list[Rejection]:
    """One entry per candidate with no feasible combination, with the reasons of its closest attempt
    (fewest blocking reasons, then least memory) - not the noise of every KV format tried."""
    by_candidate: dict[str, list[Combo]] = {}
    for combo in tried:
        by_candidate.setdefault(combo.candidate, []).append(combo)

    def closeness(c: Combo) -> tuple:
        """Hard blockers first, then memory, then missed targets: a target miss is the nearest to serving."""
        hard = sum(1 for r in c.reasons if r.kind not in ("memory", "target"))
        memory_miss = any(r.kind == "memory" for r in c.reasons)
        need = c.memory.total_bytes_per_gpu if c.memory else 0
        return (hard, memory_miss, need)

    out = []
    for cand_id, combos in by_candidate.items():
        if cand_id in feasible:
            continue
        cand = ctx.k.candidates[cand_id]
        best = min(combos, key=closeness)
        order = {"rule": 0, "hardware": 1, "runtime": 2, "memory": 3, "target": 4}
        reasons = sorted(best.reasons, key=lambda r: order[r.kind])[:4]
        same = next(
            (
                r
                for r in out
                if r.notation == cand.notation and [x.text for x in r.reasons] == [x.text for x in reasons]
            ),
            None,
        )
        if same is not None:  # e.g. the BF16 and FP16 baselines, ruled out for the same reason
            same.candidate += f", {cand_id}"
            continue
        out.append(
            Rejection(
                candidate=cand_id,
                notation=cand.notation,
                name=cand.name,
                reasons=reasons,
                kv=best.kv,
                memory=best.memory,
            )
        )
    return out


def _what_would_fit(ctx: _Context, pick: Combo) -> list[str]:
    cand, kv = ctx.k.candidates[pick.candidate], ctx.k.kv_formats[pick.kv]
    runtime = ctx.k.runtimes[pick.runtime]
    out = []
    fit = pick.memory
    assert fit is not None
    arch = ctx.arch
    if fit.kv_budget_bytes_per_gpu > 0:
        longest = memory.max_context(
            arch, kv, ctx.shape.concurrency, fit.kv_budget_bytes_per_gpu, ctx.tp, arch.max_position or 1 << 20
        )
        if fit.max_concurrency >= 1:
            out.append(f"fewer concurrent sequences: {fit.max_concurrency} fit at {ctx.shape.context:,} tokens")
        if longest > 0:
            out.append(f"a shorter context: {ctx.shape.concurrency} sequences fit up to {longest:,} tokens")
    for n in GPU_COUNTS:
        if n <= ctx.tp or arch.num_heads % n:
            continue
        if arch.mla is None and arch.num_kv_heads % n and n % arch.num_kv_heads:
            continue
        trial = Request(**{**ctx.request.model_dump(), "gpus": n})
        other = _Context(ctx.k, trial, ctx.model, ctx.gpu, ctx.shape)
        if other.fit(cand, kv, runtime).fits:
            out.append(f"more GPUs: {n} x {ctx.gpu.name} (tensor parallel) fit {cand.notation} with {kv.id} KV")
            break
    return out


def _evaluate_runtime(ctx: _Context, runtime: Runtime) -> tuple[list[Combo], list[Combo]]:
    """Every (candidate, KV) on one runtime: (feasible, all tried)."""
    feasible, tried = [], []
    for cand in _candidates(ctx):
        for kv in ctx.k.kv_formats.values():
            combo = _evaluate(ctx, cand, kv, runtime)
            tried.append(combo)
            if combo.feasible:
                feasible.append(combo)
    return feasible, tried


def _could_fit(ctx: _Context, runtime: Runtime) -> bool:
    """A lower bound: the runtime's smallest weights and smallest KV cache, with its overhead. False means no
    combination on this runtime can fit, so evaluating each one would only repeat the memory reason."""
    served = [c for c in _candidates(ctx) if runtime.id in c.runtimes]
    caches = [kv for kv in ctx.k.kv_formats.values() if runtime.id in kv.runtime_flags]
    if not served or not caches:
        return False
    weights = min(ctx.weights(c)[0] for c in served)
    budget = memory.kv_budget_per_gpu(runtime.memory, ctx.gpu.memory_bytes, weights, ctx.overhead(runtime))
    return budget >= min(ctx.kv_bytes(kv) for kv in caches)


def recommend_endpoint(ctx: _Context) -> EndpointResult:
    """Runtime first (seed 001): the asked-for runtime, or the first in preference order that can serve
    a configuration that fits; then rank that runtime's configurations."""
    feasible: list[Combo] = []
    tried_all: list[Combo] = []
    chosen: list[Combo] = []
    for i, runtime in enumerate(_runtimes(ctx)):
        if i > 0 and not _could_fit(ctx, runtime):
            continue  # no servable weights + KV fit even at their smallest: skip the full evaluation
        feasible, tried = _evaluate_runtime(ctx, runtime)
        tried_all += tried
        chosen = tried
        if feasible:
            break
    else:
        chosen = tried_all  # nothing fits anywhere: reasons and the closest option across runtimes
    _mark_kv_fits(ctx, chosen)
    eight_bit_fits = any(ctx.k.candidates[c.candidate].tier == 8 for c in feasible)
    for combo in feasible:
        _score(ctx, combo, eight_bit_fits)
    feasible.sort(key=lambda c: _rank_key(ctx, c))
    rejected = _summarise_rejections(ctx, chosen, {c.candidate for c in feasible})
    chosen_by = (
        f"asked for: {ctx.request.runtime}"
        if ctx.request.runtime
        else "first runtime in preference order that serves a configuration that fits"
    )
    if feasible:
        pick = feasible[0]
        _with_speed(ctx, _shown(feasible))
        return EndpointResult(
            shape=ctx.shape,
            pick=pick,
            fits=True,
            ranked=feasible,
            rejected=rejected,
            what_would_fit=[],
            eight_bit_fits=eight_bit_fits,
            ladder=_ladder(ctx, pick, feasible, tried_all),
            fallback=_fallback(ctx, pick, feasible),
            runtime_chosen_by=chosen_by,
            kv_options=_kv_options(ctx, pick),
        )
    speed_only = [c for c in tried_all if c.memory is not None and c.memory.fits and c.performance is not None]
    memory_only = [c for c in tried_all if c.hardware_ok and c.memory is not None]
    pick, would = None, []
    if speed_only:
        # Everything that fits in memory misses a speed or cost target: show the one closest to them.
        pick = min(speed_only, key=lambda c: _target_miss(ctx, c))
        would = _relaxed_targets(ctx, pick)
    elif memory_only:
        for combo in memory_only:
            _score(ctx, combo, False)
        # Nothing fits: show the configuration closest to fitting (least memory, then best score).
        pick = min(memory_only, key=lambda c: (c.memory.total_bytes_per_gpu, -c.total))  # type: ignore[union-attr]
        _with_speed(ctx, [pick])
        would = _what_would_fit(ctx, pick)
    return EndpointResult(
        shape=ctx.shape,
        pick=pick,
        fits=False,
        ranked=[],
        rejected=rejected,
        what_would_fit=would,
        eight_bit_fits=False,
        ladder=_ladder(ctx, pick, [], tried_all) if pick else [],
        runtime_chosen_by="nothing fits on any runtime; closest option shown",
        kv_options=_kv_options(ctx, pick) if pick else [],
    )


def _kv_options(ctx: _Context, pick: Combo) -> list[KVOption]:
    cand, runtime = ctx.k.candidates[pick.candidate], ctx.k.runtimes[pick.runtime]
    limit = ctx.arch.max_position or 1 << 20
    out = []
    for kv in ctx.k.kv_formats.values():
        combo = _evaluate(ctx, cand, kv, runtime)
        blocking = [r for r in combo.reasons if r.kind != "memory"]
        if blocking:
            out.append(KVOption(kv=kv.id, available=False, reason=blocking[0].text))
            continue
        fit = combo.memory
        assert fit is not None
        budget = max(0, fit.kv_budget_bytes_per_gpu)
        out.append(
            KVOption(
                kv=kv.id,
                available=True,
                fits=fit.fits,
                max_concurrency=fit.max_concurrency,
                max_context=memory.max_context(ctx.arch, kv, ctx.shape.concurrency, budget, ctx.tp, limit),
            )
        )
    return out


def _tier(ctx: _Context, combo: Combo) -> int:
    return ctx.k.candidates[combo.candidate].tier


def _baseline_id(ctx: _Context) -> str:
    return "bf16" if ctx.gpu.supports_bf16 else "fp16"


def _ladder(ctx: _Context, pick: Combo, feasible: list[Combo], tried: list[Combo]) -> list[LadderStep]:
    """Seed 000: from the 16-bit baseline, one precision step at a time, down to the pick."""
    base_id = _baseline_id(ctx)
    steps: list[LadderStep] = []
    base = next((c for c in feasible if c.candidate == base_id and c.kv == base_id), None)
    if base is None:
        runtime = ctx.k.runtimes[pick.runtime]
        fit = ctx.fit(ctx.k.candidates[base_id], ctx.k.kv_formats[base_id], runtime)
        steps.append(
            LadderStep(
                role="baseline",
                candidate=base_id,
                kv=base_id,
                runtime=pick.runtime,
                fits=fit.fits,
                total_bytes_per_gpu=fit.total_bytes_per_gpu,
                note="quality anchor; it does not fit this setup at this shape, so measure it on more GPUs "
                "(or at a smaller concurrency) once, on the same prompts"
                if not fit.fits
                else "quality anchor",
            )
        )
    else:
        steps.append(
            LadderStep(
                role="baseline",
                candidate=base_id,
                kv=base_id,
                runtime=base.runtime,
                fits=True,
                total_bytes_per_gpu=base.memory.total_bytes_per_gpu if base.memory else None,
                note="quality anchor",
            )
        )
    pick_tier = _tier(ctx, pick)
    if pick_tier < 8:
        eight = [c for c in feasible if _tier(ctx, c) == 8]
        if eight:
            best = eight[0]
            steps.append(
                LadderStep(
                    role="step",
                    candidate=best.candidate,
                    kv=best.kv,
                    runtime=best.runtime,
                    fits=True,
                    total_bytes_per_gpu=best.memory.total_bytes_per_gpu if best.memory else None,
                    note="8-bit step: measure it before going lower",
                )
            )
        else:
            attempts = [c for c in tried if _tier(ctx, c) == 8 and c.memory is not None]
            if attempts:
                closest = min(attempts, key=lambda c: c.memory.total_bytes_per_gpu)  # type: ignore[union-attr]
                candidate, kv, runtime = closest.candidate, closest.kv, closest.runtime
                total = closest.memory.total_bytes_per_gpu if closest.memory else None
                note = "no 8-bit configuration fits this endpoint, which is why the pick goes lower"
            else:
                blocked = next((c for c in tried if _tier(ctx, c) == 8), None)
                why = blocked.reasons[0].text if blocked and blocked.reasons else "none is available"
                candidate, kv = (blocked.candidate, blocked.kv) if blocked else ("fp8-w8a8", "fp8")
                runtime, total = pick.runtime, None
                note = f"no 8-bit configuration can be served here ({why})"
            steps.append(
                LadderStep(
                    role="step",
                    candidate=candidate,
                    kv=kv,
                    runtime=runtime,
                    fits=False,
                    total_bytes_per_gpu=total,
                    note=note,
                )
            )
    if pick.candidate != base_id or pick.kv != base_id:
        steps.append(
            LadderStep(
                role="pick",
                candidate=pick.candidate,
                kv=pick.kv,
                runtime=pick.runtime,
                fits=bool(pick.memory and pick.memory.fits),
                total_bytes_per_gpu=pick.memory.total_bytes_per_gpu if pick.memory else None,
                note="recommended",
            )
        )
    else:
        steps[0].role, steps[0].note = "pick", "the 16-bit baseline is the recommendation"
    return steps


def _fallback(ctx: _Context, pick: Combo, feasible: list[Combo]) -> Combo | None:
    """Seed 000: a configured fallback - the best option with more precision than the pick, else the next best."""
    pick_tier, pick_kv_bits = _tier(ctx, pick), ctx.k.formats[ctx.k.kv_formats[pick.kv].format].bits
    for combo in feasible[1:]:
        kv_bits = ctx.k.formats[ctx.k.kv_formats[combo.kv].format].bits
        if _tier(ctx, combo) > pick_tier or (combo.candidate == pick.candidate and kv_bits > pick_kv_bits):
            return combo
    return next((c for c in feasible[1:] if c.candidate != pick.candidate), None)


SHOWN = 12  # combinations whose speed the plan reports: the pick, the fallback, the alternatives


def _shown(ranked: list[Combo]) -> list[Combo]:
    """The pick and the best combination of each other candidate (what alternatives and fallback use)."""
    out, seen = [], set()
    for combo in ranked:
        if combo.candidate not in seen or combo is ranked[0]:
            seen.add(combo.candidate)
            out.append(combo)
    extra = [c for c in ranked[:SHOWN] if c not in out]
    return (out + extra)[: 2 * SHOWN]


def _with_speed(ctx: _Context, combos: list[Combo]) -> None:
    for combo in combos:
        if combo.performance is None:
            k = ctx.k
            combo.performance = ctx.performance(k.candidates[combo.candidate], k.kv_formats[combo.kv],
                                                k.runtimes[combo.runtime])


def _target_miss(ctx: _Context, combo: Combo) -> float:
    """How far a combination is from the request's speed and cost targets (largest ratio over target)."""
    perf, crit = combo.performance, ctx.request.criteria
    assert perf is not None
    ratios = [1.0]
    for value, target in ((perf.ttft_ms, crit.max_ttft_ms), (perf.tpot_ms, crit.max_tpot_ms),
                          (perf.cost_per_million_tokens, crit.max_cost_per_million_tokens)):
        if target and value is not None:
            ratios.append(value / target)
    return max(ratios)


def _relaxed_targets(ctx: _Context, combo: Combo) -> list[str]:
    perf, crit = combo.performance, ctx.request.criteria
    assert perf is not None
    out = []
    if crit.max_ttft_ms and perf.ttft_ms > crit.max_ttft_ms:
        out.append(f"a time-to-first-token target of {perf.ttft_ms:,.0f} ms (asked {crit.max_ttft_ms:g}), "
                   "or shorter prompts")
    if crit.max_tpot_ms and perf.tpot_ms > crit.max_tpot_ms:
        out.append(f"a time-per-token target of {perf.tpot_ms:,.1f} ms (asked {crit.max_tpot_ms:g}), "
                   "or fewer concurrent requests")
    if crit.max_cost_per_million_tokens and perf.cost_per_million_tokens and \
            perf.cost_per_million_tokens > crit.max_cost_per_million_tokens:
        out.append(f"a cost target of ${perf.cost_per_million_tokens:,.2f} per million tokens "
                   f"(asked ${crit.max_cost_per_million_tokens:g})")
    return out


def _mark_kv_fits(ctx: _Context, combos: list[Combo]) -> None:
    """Per candidate: does some 8-bit-or-better KV cache fit? (for the KV step-down rule)"""
    ctx.kv8_fits = {
        c.candidate for c in combos if c.feasible and ctx.k.formats[ctx.k.kv_formats[c.kv].format].bits >= 8
    }


def recommend(request: Request, knowledge: Knowledge | None = None) -> RecommendResult:
    k = knowledge or load_knowledge()
    check_ids(request, k)
    if request.custom_model is not None:
        model = model_from_config(request.custom_model, name=request.model, where=f"config.json of {request.model}")
    else:
        model = resolve_model(k, request.model, field="model")
    gpu = lookup(k.gpus, request.gpu, "gpu", "GPU")
    memory.check_tensor_parallel(model.architecture, request.gpus, field="gpus")
    results = []
    for endpoint in request.endpoints:
        shape = resolve_shape(request, endpoint, k)
        if model.architecture.max_position and shape.context > model.architecture.max_position:
            raise AdvisorInputError(
                f"endpoint {endpoint.name!r} context",
                f"{shape.context:,} tokens exceeds {model.name}'s limit of {model.architecture.max_position:,}",
            )
        results.append(recommend_endpoint(_Context(k, request, model, gpu, shape)))
    return RecommendResult(request=request, model=model, gpu=gpu, endpoints=results)


def speed_curves(result: RecommendResult, endpoint: int, knowledge: Knowledge | None = None,
                 limit: int = 4, points: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)) -> list[dict]:
    """Output tokens/s and time per token against concurrency for the pick and the best other candidates
    of one endpoint (where the throughput knee is), marking the concurrencies that no longer fit."""
    k = knowledge or load_knowledge()
    er = result.endpoints[endpoint]
    ctx = _Context(k, result.request, result.model, result.gpu, er.shape)
    combos = (_shown(er.ranked) if er.ranked else [er.pick] if er.pick else [])
    seen, chosen = set(), []
    for combo in combos:
        if combo.candidate not in seen:
            seen.add(combo.candidate)
            chosen.append(combo)
    series = []
    for combo in chosen[:limit]:
        cand, kv, runtime = k.candidates[combo.candidate], k.kv_formats[combo.kv], k.runtimes[combo.runtime]
        room = combo.memory.max_concurrency if combo.memory else 0
        curve = []
        for c in points:
            perf = ctx.performance_at(cand, kv, runtime, c)
            curve.append({"concurrency": c, "throughput": perf.throughput_tokens_per_s, "tpot_ms": perf.tpot_ms,
                          "ttft_ms": perf.ttft_ms, "fits": c <= room})
        series.append({"label": f"{cand.notation} KV-{kv.id.upper()} ({cand.id})", "pick": combo is er.pick,
                       "points": curve})
    return series

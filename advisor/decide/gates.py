"""Hard gates, each with a reason the plan can show: what the runtime and GPU serve, which parallel layouts the
model can be split into, what fits in memory, and the rules that reject. Also how a fired rule is described.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from advisor.decide.result import FiredRule, Layout, MemoryFit, Reason
from advisor.decide.rules import facts_named
from advisor.fastmodel import construct
from advisor.knowledge import derived
from advisor.knowledge.schema import Candidate, Knowledge, KVFormat, Rule, Runtime
from advisor.physics import memory
from advisor.physics.architecture import Architecture
from advisor.physics.quality import Adjustment

if TYPE_CHECKING:
    from advisor.decide.context import CompiledRule, EndpointContext

# --------------------------------------------------------------------------- runtime and hardware
def runtime_reasons(ctx: EndpointContext, runtime: Runtime) -> list[Reason]:
    """Can this runtime run on this GPU at all?"""
    gpu, cc = ctx.gpu, ctx.gpu.cc_value
    if gpu.vendor not in runtime.vendors:
        return [Reason(kind="runtime", text=f"{runtime.name} does not run on {gpu.vendor.upper()} GPUs",
                       source=runtime.sources)]
    if runtime.min_cc and cc is not None and cc < runtime.min_cc:
        return [Reason(kind="runtime", text=f"{runtime.name} needs compute capability {runtime.min_cc} or newer; "
                       f"{gpu.name} is {gpu.compute_capability}", source=runtime.sources)]
    return []


def support_reasons(ctx: EndpointContext, cand: Candidate, kv: KVFormat, runtime: Runtime) -> list[Reason]:
    """Does the runtime serve this weights configuration and KV format on this GPU (pinned versions)?"""
    return candidate_support(ctx, cand, runtime) + checkpoint_reasons(ctx, cand, runtime) + kv_support(ctx.k, kv,
                                                                                                     runtime)


def checkpoint_reasons(ctx: EndpointContext, cand: Candidate, runtime: Runtime) -> list[Reason]:
    """Without calibration data, a method that needs it is served only from a published checkpoint: is there one
    this runtime loads? (The rule calibration-none-needs-published-checkpoint covers the case of none at all.)"""
    if ctx.request.calibration != "none" or cand.weights == "native" or not cand.method:
        return []
    support = cand.runtimes.get(runtime.id)
    if support is None or support.how == "online" or not ctx.k.methods[cand.method].calibration.needs_data:
        return []
    published = ctx.published(cand)
    if published is None or ctx.published(cand, runtime) is not None:
        return []
    return [Reason(kind="runtime", text=f"without calibration data this needs a published checkpoint; "
                   f"{published.repo} is {published.format}, which {runtime.name} does not load "
                   f"(loaded by: {', '.join(published.runtimes)})", source=published.sources)]


def candidate_support(ctx: EndpointContext, cand: Candidate, runtime: Runtime) -> list[Reason]:
    """Reasons the runtime cannot serve the candidate on this GPU (cached: knowledge is immutable; a custom GPU by
    its whole description, as two custom GPUs share the id)."""
    cache = ctx.support_cache
    key = (ctx.gpu_key, cand.id, runtime.id)
    reasons = cache.get(key)
    if reasons is None:
        reasons = cache[key] = _candidate_support(ctx, cand, runtime)
    return reasons


def _candidate_support(ctx: EndpointContext, cand: Candidate, runtime: Runtime) -> list[Reason]:
    gpu, out = ctx.gpu, []
    cc = gpu.cc_value
    support = cand.runtimes.get(runtime.id)
    if support is None:
        served = ", ".join(cand.runtimes) or "none"
        return [Reason(kind="runtime", text=f"{runtime.name} does not serve {cand.name} (served by: {served})",
                       source=cand.sources)]
    src = [support.source] if isinstance(support.source, str) else list(support.source)
    where = f"{runtime.name} runs {cand.name}"
    if gpu.vendor not in support.vendors:
        out.append(Reason(kind="hardware", text=f"{where} on {', '.join(v.upper() for v in support.vendors)} only",
                          source=src))
    elif cc is not None:
        for limit, ok, words in ((support.min_cc, lambda v: cc >= v, "from compute capability"),
                                 (support.max_cc, lambda v: cc < v, "only below compute capability"),
                                 (support.exact_cc, lambda v: cc == v, "only on compute capability")):
            if limit and not ok(limit):
                out.append(Reason(kind="hardware", text=f"{where} {words} {limit}; {gpu.name} is "
                                  f"{gpu.compute_capability}", source=src))
    return out


def kv_support(k: Knowledge, kv: KVFormat, runtime: Runtime) -> list[Reason]:
    """Reasons the runtime has no such KV cache (cached)."""
    cache = derived(k, "kv-support", dict)
    key = (kv.id, runtime.id)
    if key not in cache:
        served = ", ".join(kv.runtime_flags) or "none"
        cache[key] = [] if runtime.id in kv.runtime_flags else [
            Reason(kind="runtime", text=f"{runtime.name} has no {kv.name} (runtimes that do: {served})",
                   source=kv.sources)]
    return cache[key]


# --------------------------------------------------------------------------- parallel layouts
def layouts(arch: Architecture, gpus: int, nodes: int = 1) -> list[Layout]:
    """Every split of `nodes` x `gpus` (GPUs per node) into replicas x tensor-parallel GPUs whose TP size divides the
    attention heads and splits or replicates the KV heads (what serving runtimes require), most GPUs per replica first.
    Tensor parallelism never spans nodes: its size divides the GPUs of one node, and over several nodes the replicas
    fill every node. With `nodes` > 1 the same TP sizes also run as `nodes` pipeline stages, one per node (tensor
    parallel x pipeline parallel x replicas = every GPU; not past one layer per stage); at equal GPUs per replica, the
    single-node layout first."""
    out = []
    for tp in range(gpus, 0, -1):
        if gpus % tp or arch.num_heads % tp:
            continue
        if arch.mla is None and arch.num_kv_heads % tp and tp % arch.num_kv_heads:
            continue
        if memory.recurrent_split_problem(arch, tp):  # a hybrid's Mamba / linear-attention heads must split too
            continue
        out.append(Layout(tensor_parallel=tp, replicas=gpus * nodes // tp))
    if nodes > 1 and nodes <= arch.num_layers:
        out = [Layout(tensor_parallel=lay.tensor_parallel, replicas=gpus // lay.tensor_parallel,
                      pipeline_parallel=nodes) for lay in out] + out
        out.sort(key=lambda lay: (-lay.gpus_per_replica, lay.pipeline_parallel))
    return out


def multinode_reasons(runtime: Runtime) -> list[Reason]:
    """Why `runtime` cannot serve a pipeline-parallel layout across nodes (knowledge/runtimes.yaml multinode), or
    nothing when it can."""
    mn = runtime.multinode
    if mn is not None and mn.supported:
        return []
    text = f"{runtime.name} {runtime.version} cannot span nodes: " + (
        mn.reason if mn is not None and mn.reason else "it has no multi-node serving on file")
    return [Reason(kind="runtime", text=text, source=mn.sources if mn is not None else runtime.sources)]


def row_parallel_inputs(arch: Architecture) -> list[tuple[str, int]]:
    """(matrix, input width) of each row-parallel matrix tensor parallelism splits along its input: attention's
    output projection (heads x head_dim, or heads x v_head_dim under MLA), the dense MLP's and the experts' down
    projection."""
    heads_out = arch.num_heads * (arch.mla.v_head_dim if arch.mla else arch.head_dim)
    out = [("attention output", heads_out)]
    if arch.intermediate_size and (not arch.is_moe or len(arch.moe_layers) < arch.num_layers):
        out.append(("MLP down projection", arch.intermediate_size))
    if arch.moe_intermediate_size:
        out.append(("expert down projection", arch.moe_intermediate_size))
    return out


def group_split_reason(ctx: EndpointContext, cand: Candidate, tp: int) -> Reason | None:
    """Group-quantized weights split over `tp` GPUs only in whole groups: each row-parallel matrix's input
    (:func:`row_parallel_inputs`) must divide into groups on every GPU, as vLLM's and TensorRT-LLM's group
    kernels require. The reason names the width, its groups and the share per GPU, e.g. Qwen2.5-72B's
    29,568-wide down projection is 231 groups of 128, which 2, 4 or 8 GPUs cannot share. A checkpoint served
    as published is checked by its own runtime loader, not here (Qwen pads its AWQ/GPTQ checkpoints to 29,696)."""
    if tp == 1 or cand.weights == "native":
        return None
    size = ctx.weights(cand).layout.group_size
    if not size:
        return None
    for what, width in row_parallel_inputs(ctx.arch):
        if width % tp or (width // tp) % size:
            groups = f"{width // size:,} groups of {size}" if width % size == 0 else f"{width / size:,.2f} groups of {size}"
            return Reason(kind="layout", text=f"{tp} GPUs cannot split the {what} ({width:,} inputs = {groups}) "
                          f"into whole groups: tensor parallel {tp} gives each GPU {width / tp:,.0f} inputs "
                          f"= {width / tp / size:,.2f} groups",
                          source=["vllm-project/vllm vllm/model_executor/layers/quantization (input_size_per_partition "
                                  "% group_size == 0)", "shared/reference/runtimes.md section 1.4"])
    return None


# --------------------------------------------------------------------------- memory
def memory_fit(ctx: EndpointContext, cand: Candidate, kv: KVFormat, runtime: Runtime, tp: int,
               concurrency: int, pp: int = 1) -> MemoryFit:
    """Per GPU of one replica holding `concurrency` sequences of the endpoint's context; with `pp` pipeline stages,
    per GPU of the largest stage (cached per endpoint: a second search pass and the ladder ask again)."""
    key = (cand.id, kv.id, runtime.id, tp, concurrency, pp)
    fit = ctx.fits.get(key)
    if fit is None:
        fit = ctx.fits[key] = _memory_fit(ctx, cand, kv, runtime, tp, concurrency, pp)
    return fit


def fit_figures(ctx: EndpointContext, cand: Candidate, kv: KVFormat, runtime: Runtime, tp: int, concurrency: int,
                pp: int = 1) -> tuple[bool, int, int]:
    """(fits, total bytes per GPU, the sequences that fit) of :func:`memory_fit`, the same figures without building
    it (most configurations the search tries that do not fit are only compared)."""
    _, w_gpu, _, _, held, budget = ctx.budget(cand, runtime, tp, concurrency, pp)
    per_seq = ctx.kv_per_sequence(kv, tp, pp=pp)
    kv_gpu = per_seq * concurrency
    return budget >= 0 and kv_gpu <= budget, w_gpu + kv_gpu + held, max(0, budget) // per_seq if per_seq else 0


def fit_numbers(ctx: EndpointContext, cand: Candidate, kv: KVFormat, runtime: Runtime, tp: int, pp: int = 1
                ) -> Callable[[int], tuple[int, int, int]]:
    """The figures :func:`memory_fit` compares, as a function of the requests held. concurrency -> (the KV budget in
    bytes per GPU, negative when the weights alone do not fit; the sequences that fit, at least 0; the KV bytes per
    GPU at that concurrency). It fits when the budget is not negative and holds the KV bytes; the weights per GPU are
    ``ctx.fit_base(...)[1]``."""
    per_seq = ctx.kv_per_sequence(kv, tp, pp=pp)

    def at(concurrency: int) -> tuple[int, int, int]:
        budget = ctx.budget(cand, runtime, tp, concurrency, pp)[5]
        return budget, max(0, budget) // per_seq if per_seq else 0, per_seq * concurrency

    return at


def _memory_fit(ctx: EndpointContext, cand: Candidate, kv: KVFormat, runtime: Runtime, tp: int,
                concurrency: int, pp: int = 1) -> MemoryFit:
    checkpoint, w_gpu, capacity, util, held, budget = ctx.budget(cand, runtime, tp, concurrency, pp)
    per_seq = ctx.kv_per_sequence(kv, tp, pp=pp)
    kv_gpu = per_seq * concurrency
    return construct(
        MemoryFit, weights_bytes=checkpoint, weights_bytes_per_gpu=w_gpu, kv_bytes_per_gpu=kv_gpu,
        overhead_bytes_per_gpu=held, capacity_bytes_per_gpu=capacity,
        kv_budget_bytes_per_gpu=budget, gpus=tp * pp, fits=budget >= 0 and kv_gpu <= budget,
        max_concurrency=max(0, budget) // per_seq if per_seq else 0, max_context=None, utilization=util,
        kv_pool_tokens=None,  # filled in for shown deployments (ladder.finish)
    )


def memory_reason(ctx: EndpointContext, fit: MemoryFit, kv: KVFormat, layout: Layout, concurrency: int) -> Reason:
    gib = memory.GIB
    on = f"{layout.gpus_per_replica} x {ctx.gpu.name}" + (
        f" per replica ({layout.words()})" if layout.replicas > 1 else
        f" ({layout.words()}; per GPU of the largest stage)" if layout.pipeline_parallel > 1 else "")
    if fit.kv_budget_bytes_per_gpu < 0:
        text = (f"weights alone ({fit.weights_bytes_per_gpu / gib:.1f} GiB per GPU) leave no room for the KV cache "
                f"on {on}")
    else:
        text = (f"does not fit: {concurrency} x {ctx.shape.context:,} tokens of {kv.id} KV need "
                f"{fit.kv_bytes_per_gpu / gib:.1f} GiB per GPU on {on}, {fit.kv_budget_bytes_per_gpu / gib:.1f} GiB "
                f"left after weights and overhead (room for {fit.max_concurrency} sequences)")
    return construct(Reason, kind="memory", text=text, rule=None, source=[])  # built per miss: no validation


# --------------------------------------------------------------------------- rules
def describe(rule: Rule) -> str:
    """A rule's effect in a few words."""
    e = rule.effect
    if e.reject:
        return "reject"
    parts = []
    if e.quality:
        parts.append(f"quality {e.quality.expected_pct:+g}/{e.quality.worst_pct:+g} points (expected/worst)")
    if e.favours:
        parts.append("claims better " + ", ".join(e.favours))
    if e.disfavours:
        parts.append("claims worse " + ", ".join(e.disfavours))
    if e.flags:
        parts.append("needs " + " ".join(e.flags))
    if e.note and not parts:
        parts.append("note")
    return ", ".join(parts)


def fired(k: Knowledge, rule: Rule) -> FiredRule:
    """The plan's record of a rule that fired (one shared object per rule)."""
    cache = derived(k, "fired-rules", dict)
    if rule.id not in cache:
        cache[rule.id] = FiredRule(id=rule.id, title=rule.title, rationale=rule.rationale, effect=describe(rule),
                                   source=rule.sources)
    return cache[rule.id]


class StaticVerdict:
    """What the static rules say about one (candidate, KV, runtime): rejections, risks, notes, flags."""

    __slots__ = ("reasons", "fired", "adjustments", "notes", "flags", "_key")

    def __init__(self) -> None:
        self.reasons: list[Reason] = []
        self.fired: list[FiredRule] = []
        self.adjustments: list[Adjustment] = []
        self.notes: list[str] = []
        self.flags: list[str] = []
        self._key: tuple[str, ...] | None = None

    def adjustment_key(self) -> tuple[str, ...]:
        """The ids of the rules whose quality adjustments apply (an adjustment is its rule's: :func:`_adjustment`);
        worked out on first use, once the verdict is complete."""
        if self._key is None:
            self._key = tuple([a.rule for a in self.adjustments])
        return self._key


def _adjustment(k: Knowledge, rule: Rule) -> Adjustment:
    cache = derived(k, "adjustments", dict)
    if rule.id not in cache:
        q = rule.effect.quality
        cache[rule.id] = Adjustment(rule=rule.id, expected_pct=q.expected_pct, worst_pct=q.worst_pct, basis=q.basis)
    return cache[rule.id]


def apply_static(k: Knowledge, rules: Iterable[CompiledRule], facts: dict | None) -> StaticVerdict:
    """What the static rules that fire say. `facts` None: `rules` are already the ones that fire."""
    out = StaticVerdict()
    for cr in rules:
        if facts is not None and (not cr.static or not cr.check(facts)):
            continue
        rule, e = cr.rule, cr.rule.effect
        out.fired.append(fired(k, rule))
        if e.reject:
            out.reasons.append(Reason(kind="rule", text=e.reject, rule=rule.id, source=rule.sources))
            continue
        if e.quality:
            out.adjustments.append(_adjustment(k, rule))
        for flag in e.flags:
            if flag not in out.flags:
                out.flags.append(flag)
        if e.note:
            out.notes.append(e.note)
    return out


def late_rejections(rules: Iterable[CompiledRule], facts: dict) -> list[Reason]:
    """Rejections that need the deployment's numbers: the quality floor and the speed and cost targets."""
    out = []
    for cr in rules:
        e = cr.rule.effect
        if cr.static or not e.reject or not cr.check(facts):
            continue
        named = {f.split(".", 1)[0] for f in facts_named(cr.rule.when)}
        kind = "target" if "perf" in named else "quality" if "quality" in named else "rule"
        out.append(Reason(kind=kind, text=e.reject, rule=cr.rule.id, source=cr.rule.sources))
    return out


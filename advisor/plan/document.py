"""The deployment plan (schema version 2): the decision rendered as a document, dumped as YAML, loaded back.

The plan renders :class:`advisor.decide.result.RecommendResult`; every figure in it comes from the
decision, none is computed here. A plan carries its request, so ``load(dump(plan))`` gives the same request
and therefore the same recommendation. ``load`` also accepts a bare request document and schema-1 plans
(their request section is unchanged).

Schema 2 adds per endpoint: ``deployment`` (runtime, tensor parallel x replicas, requests per replica),
``quality`` (expected and worst-case accuracy vs BF16 with its evidence), ``cost``, ``pareto`` (the
non-dominated options), ``near_misses``, ``claims`` (rules of thumb checked against the numbers) and a
``rationale`` that is never empty.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from advisor import __version__, safeyaml
from advisor.decide.engine import recommend
from advisor.decide.result import Deployment, EndpointResult, RecommendResult
from advisor.errors import AdvisorInputError, shown
from advisor.intake.request import Request, check_ids
from advisor.knowledge import load_knowledge
from advisor.knowledge.schema import Knowledge
from advisor.physics import memory
from advisor.plan.commands import CALIBRATION_SAMPLES, CALIBRATION_SEQ_LEN, runtime_commands

SCHEMA_VERSION = 2
READS = (1, 2, 3)  # schema versions load() accepts (3: a plan with measured results, advisor.plan.verify)
MAX_PLAN_BYTES = 1_000_000
GIB = memory.GIB

POLICY_RETEST_TRIGGERS = [
    "the serving runtime's version changes",
    "the model revision or checkpoint changes",
    "the quantization recipe, method or calibration set changes",
    "the GPU type, driver or CUDA/ROCm version changes",
    "the endpoint's traffic mix or prompt lengths shift",
]


def _gib(n: int | float | None) -> float | None:
    return None if n is None else round(n / GIB, 2)


def notation(k: Knowledge, candidate: str, kv: str) -> str:
    return f"{k.candidates[candidate].notation} KV-{kv.upper()}"


def _scenario(k: Knowledge, dep: Deployment) -> str:
    base = k.candidates[dep.candidate].scenario
    if k.formats[k.kv_formats[dep.kv].format].bits < 16:
        return "D" if base == "baseline" else f"{base}+D"
    return base


def memory_per_gpu(fit) -> dict[str, float | None] | None:
    if fit is None:
        return None
    return {
        "weights": _gib(fit.weights_bytes_per_gpu),
        "kv_cache": _gib(fit.kv_bytes_per_gpu),
        "overhead": _gib(fit.overhead_bytes_per_gpu),
        "total": _gib(fit.total_bytes_per_gpu),
        "capacity": _gib(fit.capacity_bytes_per_gpu),
    }


def performance_section(perf, measured: bool | None = None) -> dict[str, Any] | None:
    if perf is None:
        return None
    out = {
        "ttft_ms": round(perf.ttft_ms, 1),
        "tpot_ms": round(perf.tpot_ms, 2),  # under the endpoint's load: decode step + others' prefill between steps
        "decode_step_ms": round(perf.decode.seconds * 1000, 2) if getattr(perf, "decode", None) else None,
        "decode_tokens_per_s": round(perf.decode_tokens_per_s, 1),
        "throughput_tokens_per_s": round(perf.throughput_tokens_per_s, 1),
        "bound": perf.bound,
        "matmul_precision": perf.matmul_precision,
        "cost_per_million_tokens": None if perf.cost_per_million_tokens is None
        else round(perf.cost_per_million_tokens, 3),
        "usd_per_gpu_hour": perf.usd_per_gpu_hour,
        "assumptions": list(perf.assumptions),
    }
    if getattr(perf, "bands_pct", None):  # +/- % by regime: the speed model's held-out error (README)
        out["bands_pct"] = dict(perf.bands_pct)
    if measured is not None:
        out["speed_backed_by_measurements"] = measured
    return out


def quality_section(dep: Deployment) -> dict[str, Any]:
    q = dep.quality
    return {
        "expected_recovery_pct": round(q.expected_recovery_pct, 2),
        "worst_recovery_pct": round(q.worst_recovery_pct, 2),
        "by_task": [{"task": t.task, "weight": t.weight, "recovery_pct": round(t.recovery_pct, 2),
                     "worst_pct": round(t.worst_pct, 2), "evidence": [c for c in (t.weights_cell, t.kv_cell) if c],
                     "match": t.match} for t in q.tasks],
        "adjustments": [a.model_dump() for a in q.adjustments],
        "nearest_evidence": list(q.fallback_notes),
        "sources": list(q.sources),
    }


def _layout(dep: Deployment) -> dict[str, Any]:
    return {"tensor_parallel": dep.layout.tensor_parallel, "pipeline_parallel": dep.layout.pipeline_parallel,
            "replicas": dep.layout.replicas, "gpus": dep.layout.gpus,
            "requests_per_replica": dep.concurrency, "total_requests": dep.total_concurrency}


def brief(k: Knowledge, dep: Deployment, rank: int | None = None) -> dict[str, Any]:
    """One deployment in a line of numbers: precision, runtime, layout, memory, speed, cost, accuracy."""
    out: dict[str, Any] = {
        "candidate": dep.candidate,
        "kv": dep.kv,
        "name": k.candidates[dep.candidate].name,
        "notation": notation(k, dep.candidate, dep.kv),
        "runtime": dep.runtime,
        "layout": _layout(dep),
        "fits": bool(dep.memory.fits),
        "total_gib_per_gpu": _gib(dep.memory.total_bytes_per_gpu),
        "max_concurrency": dep.memory.max_concurrency * dep.layout.replicas,
        "memory": memory_per_gpu(dep.memory),  # GiB per GPU
        "quality": {"expected_recovery_pct": round(dep.quality.expected_recovery_pct, 2),
                    "worst_recovery_pct": round(dep.quality.worst_recovery_pct, 2), "sources": list(dep.quality.sources)},
        "performance": performance_section(dep.performance, bool(dep.metrics.get("speed_measured"))),
        "cost": {"usd_per_gpu_hour": dep.performance.usd_per_gpu_hour,
                 "cost_per_million_tokens": None if dep.performance.cost_per_million_tokens is None
                 else round(dep.performance.cost_per_million_tokens, 3),
                 "gpu_hours_per_million_tokens": round(dep.metrics["gpu_hours_per_million_tokens"], 4)},
    }
    if dep.why:
        out["why"] = list(dep.why)
    if rank is not None:
        out = {"rank": rank, **out}
    return out


def _model_section(result: RecommendResult) -> dict[str, Any]:
    """What the plan was made for: the model, its architecture and its checkpoint as published."""
    m, native = result.model, result.model.native
    out: dict[str, Any] = {"id": m.id, "name": m.name, "params_total": result.params_total, "source": m.source,
                           "architecture": m.architecture.model_type}
    if m.repo:
        out["repo"] = m.repo
    if result.request.model_revision:
        out["revision"] = result.request.model_revision  # what the serve commands load and validation runs on
    checkpoint: dict[str, Any] = {"quantized": native.quantized, "scheme": native.scheme}
    if native.overrides:
        checkpoint["overrides"] = dict(native.overrides)
    if native.quantized:
        checkpoint.update({"method": native.method, "details": list(native.details),
                           "served_as": list(native.candidates), "base_model": m.base_model})
        if native.ignore:
            checkpoint["ignore"] = list(native.ignore)
        if native.kv_cache:
            checkpoint["kv_cache_scales"] = native.kv_cache
    if native.checkpoint_bytes:
        checkpoint["tensor_bytes"] = native.checkpoint_bytes
        checkpoint["tensor_gb"] = round(native.checkpoint_bytes / 1e9, 2)
        checkpoint["bytes_source"] = native.bytes_source
    out["checkpoint"] = checkpoint
    return out


def _weights_section(k: Knowledge, result: RecommendResult, dep: Deployment) -> dict[str, Any]:
    cand, info = k.candidates[dep.candidate], dep.weights
    native = result.model.native
    return {
        "format": k.formats[info.numeric_format].plan_format,
        "numeric_format": info.numeric_format,
        "scheme": cand.weights if cand.weights != "native" else f"native ({native.scheme}"
        + "".join(f", {g} {s}" for g, s in native.overrides.items()) + ")",
        "method": cand.method,
        "bits_per_weight": info.bits_per_weight,
        "bits_per_quantized_weight": info.bits_per_quantized_weight,
        "granularity": cand.granularity,
        **({"checkpoint": _checkpoint(info.checkpoint), "size_from": "safetensors headers" if info.exact_bytes
            else "computed from the architecture and the scheme"} if info.checkpoint else {}),
    }


def _checkpoint(use) -> dict[str, Any]:
    """The checkpoint a deployment loads: published (by name, with its producer's evaluation), as published,
    quantized online by the runtime, or produced by the recipe."""
    out: dict[str, Any] = {"kind": use.kind, "load": use.load, "note": use.note}
    if use.kind == "published":
        out.update({"repo": use.repo, "producer": use.producer, "tool": use.tool, "catalog_row": use.row,
                    "published_recovery_pct": use.recovery_pct, "published_evaluation": use.evaluation or None,
                    "file_size_gb": use.file_size_gb, "source": use.source})
    return out


def _high_precision_layers(groups: list[str], gpu_bf16: bool) -> list[str]:
    label = "BF16" if gpu_bf16 else "FP16"
    return [f"{g} ({label})" for g in groups] + [
        f"norm scales ({label})", "rotary embeddings and final logits (computed in 16/32-bit, not stored quantized)"]


def _calibration(k: Knowledge, dep: Deployment, shape, native_kv: str | None = None) -> dict[str, Any]:
    cand, kv = k.candidates[dep.candidate], k.kv_formats[dep.kv]
    method = k.methods[cand.method] if cand.method else None
    plan: dict[str, Any]
    if method and method.calibration.needs_data and cand.weights != "native":
        plan = {
            "needed": True,
            "samples": CALIBRATION_SAMPLES,
            "samples_range": "128-512",
            "sequence_length": min(CALIBRATION_SEQ_LEN, max(512, shape.prompt_tokens)),
            "data": f"prompts sampled from this endpoint's own traffic ({shape.workload.name}); short, varied, "
            "representative; never the evaluation set",
            "statistics": "activations after layer norms and at attention/MLP inputs",
            "method_notes": method.calibration.notes,
        }
    else:
        plan = {"needed": False, "why": method.calibration.notes if method else "nothing is quantized"}
    if kv.id == "fp8" and dep.runtime == "vllm":
        plan["kv_cache_scales"] = ("the checkpoint carries calibrated FP8 KV scales (kv_cache_scheme)"
                                   if cand.weights == "native" and native_kv == "fp8" else
                                   "without calibrated KV scales in the checkpoint vLLM uses 1.0; add a "
                                   "kv_cache_scheme to the llm-compressor recipe to calibrate them")
    return plan


def _validation(k: Knowledge, ids: list[str]) -> list[dict[str, Any]]:
    return [{"id": c.id, "check": c.title, "metric": c.metric, "threshold": c.threshold, "why": c.why,
             "phase": c.phase, "source": c.sources} for c in (k.validation[i] for i in ids)]


def _memory_section(dep: Deployment, shape) -> dict[str, Any]:
    fit, g, r = dep.memory, dep.layout.gpus_per_replica, dep.layout.replicas
    pp = dep.layout.pipeline_parallel
    return {
        "weights_gib": _gib(fit.weights_bytes_per_gpu * g),
        "weights_gb_decimal": round(fit.weights_bytes / 1e9, 2),
        "kv_cache_gib": _gib(fit.kv_bytes_per_gpu * g),
        "overhead_gib": _gib(fit.overhead_bytes_per_gpu * g),
        "total_gib": _gib(fit.total_bytes_per_gpu * g),
        "capacity_gib": _gib(fit.capacity_bytes_per_gpu * g),
        "fits": fit.fits,
        "max_concurrency": fit.max_concurrency * r,
        "max_context": fit.max_context,
        "gpus": g,
        "replicas": r,
        "per": "one replica" if r > 1 else "the deployment",
        "includes": "weights (checkpoint share per GPU), KV cache at the replica's requests x context, runtime "
        "activations, CUDA context and the headroom the runtime's memory-utilization setting leaves unused",
        **({"pipeline_parallel": pp, "per_gpu_figures": f"a GPU of the largest of the {pp} pipeline stages (its "
            "layers, the embedding or the LM head); totals are that GPU's figures times the GPUs, an upper bound"}
           if pp > 1 else {}),
    }


def _rejection(r) -> dict[str, Any]:
    out = {"candidate": r.candidate, "notation": r.notation, "reasons": [x.text for x in r.reasons],
           "rules": [x.rule for x in r.reasons if x.rule]}
    if r.memory is not None:
        out["closest_kv"] = r.kv
        out["memory"] = memory_per_gpu(r.memory)  # GiB per GPU of its closest attempt
    return out


def _summary(k: Knowledge, result: RecommendResult, er: EndpointResult, dep: Deployment) -> str:
    cand, kv, runtime = k.candidates[dep.candidate], k.kv_formats[dep.kv], k.runtimes[dep.runtime]
    name, words = result.model.name, notation(k, dep.candidate, dep.kv)
    mem, perf, q = dep.memory, dep.performance, dep.quality
    if er.fits:
        layout = f" as {dep.layout.words()}" if dep.layout.gpus > 1 else ""
        cost = (f", ${perf.cost_per_million_tokens:,.2f} per million tokens" if perf.cost_per_million_tokens
                is not None else "")
        return (f"Serve {name} as {words} ({cand.name}; {kv.name}) on {runtime.name} {runtime.version}{layout}: "
                f"{q.expected_recovery_pct:.1f}% expected accuracy vs BF16, {perf.tpot_ms:,.1f} ms per token, "
                f"{perf.throughput_tokens_per_s:,.0f} tokens/s{cost}; room for "
                f"{mem.max_concurrency * dep.layout.replicas:,} sequences of {er.shape.context:,} tokens.")
    if mem.fits:
        return (f"No configuration meets your targets: the closest, {words}, fits in memory but needs "
                + "; ".join(er.what_would_fit) + ".")
    total, cap = _gib(mem.total_bytes_per_gpu * mem.gpus), _gib(mem.capacity_bytes_per_gpu * mem.gpus)
    offload = (f" Or run a GGUF partly from system RAM with llama.cpp ({len(er.offload)} partial-offload options "
               "below; slow)." if er.offload else "")
    return (f"Does not fit: the smallest option the rules allow for this endpoint, {words}, needs {total} GiB against "
            f"{cap} GiB (the ruled-out list says why smaller ones are excluded). What would fit: "
            + ("; ".join(er.what_would_fit) if er.what_would_fit else "a larger GPU") + "." + offload)


def _endpoint(k: Knowledge, result: RecommendResult, er: EndpointResult) -> dict[str, Any]:
    shape = er.shape
    out: dict[str, Any] = {
        "name": shape.name,
        "workload": shape.workload.id,
        "priority": shape.priority,
        "objective": er.objective,
        "shape": {"prompt_tokens": shape.prompt_tokens, "output_tokens": shape.output_tokens,
                  "concurrency": shape.concurrency, "concurrency_mode": er.concurrency_mode, "context": shape.context},
        "fits": er.fits,
        "evaluated": er.evaluated,
        "quality_probes": list(shape.workload.quality_probes),
    }
    pick = er.pick
    if pick is None:
        out["summary"] = ("Nothing this runtime and GPU can serve fits, even at the lowest precision: see rejected "
                          "for each configuration's reason.")
        out["rationale"] = [{"kind": "numbers", "text": out["summary"], "rule": None, "source": []}]
        out["rejected"] = [_rejection(r) for r in er.rejected]
        return out
    cand, kv, runtime = k.candidates[pick.candidate], k.kv_formats[pick.kv], k.runtimes[pick.runtime]
    act_format = cand.activations if result.gpu.supports_bf16 or cand.activations != "bf16" else "fp16"
    out["summary"] = _summary(k, result, er, pick)
    out["recommendation"] = {
        "candidate": pick.candidate,
        "notation": notation(k, pick.candidate, pick.kv),
        "scenario": _scenario(k, pick),
        "weights": _weights_section(k, result, pick),
        "activations": {"format": k.formats[act_format].plan_format,
                        "granularity": "per-token dynamic scales" if not cand.weight_only
                        else "unquantized (16-bit); weights are dequantized inside the matmul kernels"},
        "kv_cache": {"format": k.formats[kv.format].plan_format, "kv_format": kv.id,
                     "bytes_per_element": pick.weights.kv_bytes_per_element, "granularity": kv.granularity},
        "high_precision_layers": _high_precision_layers(pick.weights.high_precision_groups, result.gpu.supports_bf16),
        "calibration": _calibration(k, pick, shape, result.model.native.kv_cache),
        "quality_evidence": {"risk_class": cand.risk, "note": cand.risk_note,
                             "expected_recovery_pct": round(pick.quality.expected_recovery_pct, 2),
                             "worst_recovery_pct": round(pick.quality.worst_recovery_pct, 2)},
    }
    out["deployment"] = {"runtime": runtime.id, "runtime_version": runtime.version, **_layout(pick),
                         "nodes": result.request.nodes, "gpus_per_node": result.request.gpus}
    out["quality"] = quality_section(pick)
    out["memory"] = _memory_section(pick, shape)
    out["performance"] = performance_section(pick.performance, bool(pick.metrics.get("speed_measured")))
    out["cost"] = {"usd_per_gpu_hour": pick.performance.usd_per_gpu_hour,
                   "cost_per_million_tokens": out["performance"]["cost_per_million_tokens"],
                   "gpu_hours_per_million_tokens": round(pick.metrics["gpu_hours_per_million_tokens"], 4)}
    out["why"] = [item.text for item in er.rationale]
    out["rationale"] = [item.model_dump() for item in er.rationale]
    out["claims"] = [c.model_dump() for c in er.claims]
    if not er.fits:
        out["what_would_fit"] = er.what_would_fit
    out["pareto"] = [{**brief(k, d), "pick": d is pick} for d in er.pareto]
    out["options"] = _options(k, er)
    out["alternatives"] = _alternatives(k, er)
    out["near_misses"] = [{"text": n.text, "serves": n.serves, "required": n.required, **brief(k, n.deployment)}
                          for n in er.near_misses]
    out["rejected"] = [_rejection(r) for r in er.rejected]
    out["fallback"] = None
    if er.fallback:
        fb = brief(k, er.fallback)
        out["fallback"] = {**fb, "why": [er.fallback_why, *fb.get("why", [])]}
    out["ladder"] = [
        {"step": i + 1, "role": s.role, "notation": notation(k, s.candidate, s.kv), "candidate": s.candidate,
         "runtime": s.runtime, "fits": s.fits, "total_gib_per_gpu": _gib(s.total_bytes_per_gpu), "note": s.note,
         **({"quality": {"expected_recovery_pct": round(s.deployment.quality.expected_recovery_pct, 2)},
             "performance": performance_section(s.deployment.performance)} if s.deployment else {})}
        for i, s in enumerate(er.ladder)
    ]
    out["kv_options"] = [o.model_dump() for o in er.kv_options]
    out["validation"] = _validation(k, er.validation)
    out["notes"] = list(pick.notes)
    use = pick.weights.checkpoint if pick.weights else None
    base = use.load if use is not None and use.kind == "online" else (result.model.base_model or result.model.id) \
        if result.model.native.quantized else result.model.id
    commands = runtime_commands(k, base, cand, kv, runtime, result.gpu, pick.layout.tensor_parallel,
                                shape, pick.flags, replicas=pick.layout.replicas, concurrency=pick.concurrency,
                                checkpoint=use, utilization=pick.memory.utilization, arch=result.model.architecture,
                                pipeline_parallel=pick.layout.pipeline_parallel, nodes=result.request.nodes,
                                revision=result.request.model_revision,
                                revision_of=result.model.repo or result.model.id)
    longest = pick.memory.max_context
    if runtime.id == "llama.cpp" and longest and longest > shape.context:
        # llama-server allocates -c at start and splits it over the -np slots: say what the endpoint's context
        # costs and what the GPU would hold, so a user who wants the longer context knows the flag to change
        slots = pick.concurrency
        commands.notes.append(
            f"-c {shape.context * slots:,} gives each of the {slots} slot(s) the endpoint's {shape.context:,}-token "
            f"context; up to {longest:,} tokens per slot fit on this GPU (-c {longest * slots:,} for the longest)")
    out["runtime"] = {**commands.model_dump(), "id": runtime.id, "chosen_by": er.runtime_chosen_by}
    if er.offload:
        out["partial_offload"] = _offload(k, result, er)
    return out


def _offload(k: Knowledge, result: RecommendResult, er: EndpointResult) -> list[dict[str, Any]]:
    """llama.cpp partial offload options (no GGUF fits whole in VRAM): layers on the GPU, the rest in RAM."""
    runtime = k.runtimes["llama.cpp"]
    rows = []
    for o in er.offload:
        cmd = runtime_commands(k, result.model.id, k.candidates[o.candidate], k.kv_formats[o.kv], runtime, result.gpu,
                               1, er.shape, ["--flash-attn on"], concurrency=o.concurrency, checkpoint=o.checkpoint)
        serve = cmd.serve_command.replace("-ngl 99", o.flag)
        rows.append({**o.model_dump(exclude={"checkpoint"}), "load": o.checkpoint.load if o.checkpoint else None,
                     "serve_command": serve,
                     "ram_check": "not checked: give your system RAM (--host-memory-gib, or System RAM in the wizard)"
                     if o.ram_fits is None
                     else ("fits in system RAM" if o.ram_fits else "does NOT fit in system RAM")})
    return rows


MAX_OPTIONS = 60


def _options(k: Knowledge, er: EndpointResult) -> list[dict[str, Any]]:
    """The best deployment of each configuration and runtime the engine ranked (best first, up to
    MAX_OPTIONS), in one line of numbers each: what the trade-off chart draws."""
    front = {id(d) for d in er.pareto}
    out, seen = [], set()
    for d in er.ranked:
        key = (d.candidate, d.kv, d.runtime)
        if key in seen:
            continue
        seen.add(key)
        perf = d.performance
        out.append({
            "notation": notation(k, d.candidate, d.kv), "candidate": d.candidate, "kv": d.kv, "runtime": d.runtime,
            "layout": _layout(d), "expected_recovery_pct": round(d.quality.expected_recovery_pct, 2),
            "worst_recovery_pct": round(d.quality.worst_recovery_pct, 2),
            "cost_per_million_tokens": None if perf.cost_per_million_tokens is None
            else round(perf.cost_per_million_tokens, 3),
            "gpu_hours_per_million_tokens": round(d.metrics["gpu_hours_per_million_tokens"], 4),
            "tpot_ms": round(perf.tpot_ms, 2), "ttft_ms": round(perf.ttft_ms, 1),
            "throughput_tokens_per_s": round(perf.throughput_tokens_per_s, 1),
            "pareto": id(d) in front, "pick": d is er.pick,
        })
        if len(out) >= MAX_OPTIONS:
            break
    return out


def _alternatives(k: Knowledge, er: EndpointResult) -> list[dict[str, Any]]:
    """The best deployment of each other candidate, then the pick's weights with other KV caches (as the
    decision lists them; its `shown` order is the ranked order)."""
    pick = er.pick
    out, seen = [], {pick.candidate}
    limit = int(k.decision["explain-alternatives"].value)
    for d in er.ranked[1:]:
        if d.candidate not in seen and len(out) < limit and d.weights is not None:
            seen.add(d.candidate)
            out.append(brief(k, d, rank=len(out) + 2))
    kv_seen = {pick.kv}
    for d in er.ranked[1:]:
        if d.candidate == pick.candidate and d.kv not in kv_seen and d.weights is not None:
            kv_seen.add(d.kv)
            out.append({**brief(k, d), "rank": None, "note": "same weights, other KV cache"})
    return out


def build(request: Request, knowledge: Knowledge | None = None) -> dict[str, Any]:
    """The whole plan document for a request."""
    k = knowledge or load_knowledge()
    return render(recommend(request, k), k)


def render(result: RecommendResult, knowledge: Knowledge | None = None) -> dict[str, Any]:
    """The plan document of a decision (no figure is recomputed)."""
    k = knowledge or load_knowledge()
    request = result.request
    endpoints = [_endpoint(k, result, er) for er in result.endpoints]
    priorities = {er.shape.name: er.shape.priority for er in result.endpoints}
    fallbacks = [e["fallback"]["notation"] for e in endpoints if e.get("fallback")]
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": f"precision-advisor {__version__}",
        "request": request.model_dump(mode="json"),
        "model": _model_section(result),
        "hardware": {"gpu": result.gpu.id, "name": result.gpu.name, "gpus": request.gpus,
                     "capacity_gib_per_gpu": result.gpu.memory_gib,
                     **({"nodes": request.nodes, "gpus_total": request.gpus * request.nodes} if request.nodes > 1
                        else {})},
        "fits": all(e["fits"] for e in endpoints),
        "policy": {
            "fallback": "keep each endpoint's fallback configured and deployable: " + (
                "; ".join(f"{e['name']}: {e['fallback']['notation']}" for e in endpoints if e.get("fallback"))
                or "no fallback fits this hardware; keep the current deployment as the fallback"),
            "drift_monitoring": k.validation["drift-monitoring"].metric + " - "
            + k.validation["drift-monitoring"].threshold,
            "retest_triggers": POLICY_RETEST_TRIGGERS,
            "rollout": "roll out on the lowest-stakes endpoint first, where rollback is easy, then move to critical ones",
            "source": ["000_989ee71225111c8a.txt", "004_deee4beb30bfc090.txt"],
        },
        "provider_quantizations": {
            "use_when": "consuming this model through a hosted API that accepts a quantization filter (seed 002)",
            "by_endpoint": {name: list(k.priorities[p].provider_quantizations) for name, p in priorities.items()},
            "source": "002_08e7091ddf90b013.txt",
        },
        "endpoints": endpoints,
        "notes": ([f"fallbacks configured: {', '.join(fallbacks)}"] if fallbacks else []),
    }


# --------------------------------------------------------------------------- YAML in and out
class _PlanDumper(yaml.SafeDumper):
    """Multi-line strings (recipes, config files) as literal blocks, so they read and copy as written; no
    anchors or aliases (a plan is read back by a loader that refuses them, and people read it)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_PlanDumper.add_representer(str, _str_representer)


def dump(plan: dict[str, Any]) -> str:
    return yaml.dump(plan, Dumper=_PlanDumper, sort_keys=False, allow_unicode=True, width=110)


def _describe_errors(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in exc.errors()[:6]:
        where = ".".join(str(x) for x in err["loc"])
        parts.append(f"{prefix}{where}: {err['msg']}")
    return "; ".join(parts)


def load(text: str | bytes, knowledge: Knowledge | None = None, where: str = "plan") -> Request:
    """A request from a plan (schema 1 or 2) or request YAML document. Errors list the bad fields."""
    k = knowledge or load_knowledge()
    if len(text) > MAX_PLAN_BYTES:
        raise AdvisorInputError(where, f"file is {len(text)} bytes; plans and requests must be under {MAX_PLAN_BYTES}")
    try:
        data = safeyaml.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None)
        why = f": {shown(problem, 80, quote=False)}" if problem else ""
        raise AdvisorInputError(where, f"not valid YAML{at}{why}") from None
    if not isinstance(data, dict):
        raise AdvisorInputError(where, "expected a YAML mapping (a request, or a plan with a 'request' section)")
    version = data.get("schema_version", SCHEMA_VERSION)
    if version not in READS:
        raise AdvisorInputError(f"{where} schema_version",
                                f"{shown(version)} is not supported; this version reads {', '.join(map(str, READS))}")
    body = data["request"] if "request" in data else {kk: v for kk, v in data.items() if kk != "schema_version"}
    if not isinstance(body, dict):
        raise AdvisorInputError(f"{where} request", "expected a mapping of request fields")
    try:
        request = Request.model_validate(body)
    except ValidationError as exc:
        raise AdvisorInputError(where, _describe_errors(exc)) from None
    check_ids(request, k)
    return request

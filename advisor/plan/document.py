"""The deployment plan (schema version 1): build it from a request, dump it as YAML, load it back.

A plan carries its request, so ``load(dump(plan))`` gives the same request and therefore the same
recommendation. ``load`` also accepts a bare request document (the same fields as :class:`Request`).
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from advisor import __version__
from advisor.decide.recommend import Combo, EndpointResult, RecommendResult, recommend
from advisor.decide.rules import evaluate
from advisor.errors import AdvisorInputError
from advisor.intake.request import Request, check_ids
from advisor.knowledge import load_knowledge
from advisor.knowledge.schema import Knowledge
from advisor.physics import memory
from advisor.plan.commands import CALIBRATION_SAMPLES, CALIBRATION_SEQ_LEN, runtime_commands

SCHEMA_VERSION = 1
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


def _notation(k: Knowledge, combo: Combo) -> str:
    kv = k.kv_formats[combo.kv]
    return f"{k.candidates[combo.candidate].notation} KV-{kv.id.upper()}"


def _scenario(k: Knowledge, combo: Combo) -> str:
    cand, kv = k.candidates[combo.candidate], k.kv_formats[combo.kv]
    base = cand.scenario
    if k.formats[kv.format].bits < 16:
        return "D" if base == "baseline" else f"{base}+D"
    return base


def _weights_section(k: Knowledge, result: RecommendResult, combo: Combo, ctx_layout) -> dict[str, Any]:
    cand = k.candidates[combo.candidate]
    modules = memory.weight_breakdown(result.model.architecture, ctx_layout)
    quantized = [m for m in modules if m.quantized]
    fmt = quantized[0].format if quantized else modules[0].format
    params = sum(m.params for m in modules)
    total = sum(m.bytes for m in modules)
    return {
        "format": k.formats[fmt].plan_format,
        "numeric_format": fmt,
        "scheme": cand.weights
        if cand.weights != "native"
        else f"native ({result.model.native.scheme}"
        + "".join(f", {g} {s}" for g, s in result.model.native.overrides.items())
        + ")",
        "method": cand.method,
        "bits_per_weight": round(8 * total / params, 3),
        "bits_per_quantized_weight": round(8 * sum(m.bytes for m in quantized) / sum(m.params for m in quantized), 3)
        if quantized
        else None,
        "granularity": cand.granularity,
    }


def _high_precision_layers(layout, gpu_bf16: bool, present: set[str]) -> list[str]:
    label = "BF16" if gpu_bf16 else "FP16"
    kept = [g for g, s in layout.groups.items() if not s.quantized and g in present]
    out = [f"{g} ({label})" for g in kept if g != "norms"]
    out.append(f"norm scales ({label})")
    out.append("rotary embeddings and final logits (computed in 16/32-bit, not stored quantized)")
    return out


def _calibration(k: Knowledge, combo: Combo, shape, runtime_id: str) -> dict[str, Any]:
    cand, kv = k.candidates[combo.candidate], k.kv_formats[combo.kv]
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
        why = method.calibration.notes if method else "nothing is quantized"
        plan = {"needed": False, "why": why}
    if kv.id == "fp8" and runtime_id == "vllm":
        plan["kv_cache_scales"] = (
            "without calibrated KV scales in the checkpoint vLLM uses 1.0; add a "
            "kv_cache_scheme to the llm-compressor recipe to calibrate them"
        )
    return plan


def _validation(k: Knowledge, facts: dict) -> list[dict[str, Any]]:
    out = []
    for check in k.validation.values():
        if evaluate(check.when, facts):
            out.append(
                {
                    "id": check.id,
                    "check": check.title,
                    "metric": check.metric,
                    "threshold": check.threshold,
                    "why": check.why,
                    "phase": check.phase,
                    "source": check.sources,
                }
            )
    return out


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


def performance_section(perf) -> dict[str, Any] | None:
    if perf is None:
        return None
    return {
        "ttft_ms": round(perf.ttft_ms, 1),
        "tpot_ms": round(perf.tpot_ms, 2),
        "decode_tokens_per_s": round(perf.decode_tokens_per_s, 1),
        "throughput_tokens_per_s": round(perf.throughput_tokens_per_s, 1),
        "bound": perf.bound,
        "matmul_precision": perf.matmul_precision,
        "cost_per_million_tokens": None if perf.cost_per_million_tokens is None
        else round(perf.cost_per_million_tokens, 3),
        "usd_per_gpu_hour": perf.usd_per_gpu_hour,
        "assumptions": perf.assumptions,
    }


def _combo_brief(k: Knowledge, combo: Combo, rank: int | None = None) -> dict[str, Any]:
    fit = combo.memory
    why = [f.title for f in combo.fired if not f.effect.startswith("reject")][:3]
    out: dict[str, Any] = {
        "candidate": combo.candidate,
        "name": k.candidates[combo.candidate].name,
        "notation": _notation(k, combo),
        "runtime": combo.runtime,
        "score": round(combo.total, 2),
        "total_gib_per_gpu": _gib(fit.total_bytes_per_gpu) if fit else None,
        "fits": bool(fit and fit.fits),
        "max_concurrency": fit.max_concurrency if fit else None,
        "memory_per_gpu_gib": memory_per_gpu(fit),
        "performance": performance_section(combo.performance),
        "favoured_by": why,
    }
    if rank is not None:
        out = {"rank": rank, **out}
    return out


def _alternatives(k: Knowledge, er: EndpointResult, limit: int = 5) -> list[dict[str, Any]]:
    """The best KV choice of each other candidate, then other KV choices of the pick."""
    seen = {(er.pick.candidate if er.pick else None)}
    notations = {_notation(k, er.pick) if er.pick else None}
    out = []
    for combo in er.ranked[1:]:
        # one row per candidate, and none that reads the same as one already listed (the FP16 baseline
        # on a BF16 GPU with a BF16 cache is the BF16 baseline to the reader)
        if combo.candidate in seen or _notation(k, combo) in notations and k.candidates[combo.candidate].tier >= 16:
            continue
        seen.add(combo.candidate)
        notations.add(_notation(k, combo))
        out.append(_combo_brief(k, combo, rank=len(out) + 2))
        if len(out) >= limit:
            break

    def bits(c: Combo) -> int:
        return k.formats[k.kv_formats[c.kv].format].bits

    same, seen_bits = [], {bits(er.pick)} if er.pick else set()
    for c in er.ranked[1:]:
        if er.pick and c.candidate == er.pick.candidate and bits(c) not in seen_bits:
            seen_bits.add(bits(c))
            same.append(c)
    out += [{**_combo_brief(k, c), "rank": None, "note": "same weights, other KV cache"} for c in same]
    return out


def _memory_section(k: Knowledge, result: RecommendResult, er: EndpointResult, combo: Combo) -> dict[str, Any]:
    fit = combo.memory
    assert fit is not None
    g = fit.gpus
    arch = result.model.architecture
    kv = k.kv_formats[combo.kv]
    longest = memory.max_context(
        arch, kv, er.shape.concurrency, max(0, fit.kv_budget_bytes_per_gpu), g, arch.max_position or 1 << 20
    )
    return {
        "weights_gib": _gib(fit.weights_bytes_per_gpu * g),
        "weights_gb_decimal": round(fit.weights_bytes / 1e9, 2),
        "kv_cache_gib": _gib(fit.kv_bytes_per_gpu * g),
        "overhead_gib": _gib(fit.overhead_bytes_per_gpu * g),
        "total_gib": _gib(fit.total_bytes_per_gpu * g),
        "capacity_gib": _gib(fit.capacity_bytes_per_gpu * g),
        "fits": fit.fits,
        "max_concurrency": fit.max_concurrency,
        "max_context": longest,
        "gpus": g,
        "includes": "weights (checkpoint share per GPU), KV cache at concurrency x context, runtime activations, "
        "CUDA context and the headroom the runtime's memory-utilization setting leaves unused",
    }


def build(request: Request, knowledge: Knowledge | None = None) -> dict[str, Any]:
    """The whole plan document for a request."""
    k = knowledge or load_knowledge()
    result = recommend(request, k)
    endpoints = [_endpoint(k, result, er) for er in result.endpoints]
    priorities = {er.shape.name: er.shape.priority for er in result.endpoints}
    fallbacks = [e["fallback"]["notation"] for e in endpoints if e.get("fallback")]
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": f"precision-advisor {__version__}",
        "request": request.model_dump(mode="json"),
        "model": {
            "id": result.model.id,
            "name": result.model.name,
            "params_total": sum(t.params for t in _inventory(result)),
            "source": result.model.source,
        },
        "hardware": {
            "gpu": result.gpu.id,
            "name": result.gpu.name,
            "gpus": request.gpus,
            "capacity_gib_per_gpu": result.gpu.memory_gib,
        },
        "fits": all(e["fits"] for e in endpoints),
        "policy": {
            "fallback": (
                "keep each endpoint's fallback configured and deployable: "
                + (
                    "; ".join(f"{e['name']}: {e['fallback']['notation']}" for e in endpoints if e.get("fallback"))
                    or "no fallback fits this hardware; keep the current deployment as the fallback"
                )
            ),
            "drift_monitoring": k.validation["drift-monitoring"].metric
            + " - "
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


def _inventory(result: RecommendResult):
    from advisor.physics.architecture import tensor_inventory

    return tensor_inventory(result.model.architecture)


def _endpoint(k: Knowledge, result: RecommendResult, er: EndpointResult) -> dict[str, Any]:
    from advisor.physics.estimate import resolve_layout

    shape = er.shape
    out: dict[str, Any] = {
        "name": shape.name,
        "workload": shape.workload.id,
        "priority": shape.priority,
        "shape": {
            "prompt_tokens": shape.prompt_tokens,
            "output_tokens": shape.output_tokens,
            "concurrency": shape.concurrency,
            "context": shape.context,
        },
        "fits": er.fits,
        "quality_probes": list(shape.workload.quality_probes),
    }
    pick = er.pick
    if pick is None:
        out["summary"] = (
            "Nothing this runtime and GPU can serve fits, even at the lowest precision: "
            "see rejected for each configuration's reason."
        )
        out["rejected"] = [_rejection(r) for r in er.rejected]
        return out
    cand, kv, runtime = k.candidates[pick.candidate], k.kv_formats[pick.kv], k.runtimes[pick.runtime]
    _, layout = resolve_layout(k, result.model, cand.weights, cand.group_size)
    present = {m.group for m in memory.weight_breakdown(result.model.architecture, layout)}
    act_format = cand.activations if result.gpu.supports_bf16 or cand.activations != "bf16" else "fp16"
    notation = _notation(k, pick)
    mem = _memory_section(k, result, er, pick)
    if er.fits:
        summary = (
            f"Serve {result.model.name} as {notation} ({cand.name}; {kv.name}) on "
            f"{runtime.name} {runtime.version}: {mem['total_gib']} GiB of {mem['capacity_gib']} GiB, "
            f"room for {mem['max_concurrency']} sequences of {shape.context:,} tokens."
        )
    elif mem["fits"]:  # it fits in memory, but nothing meets the speed or cost targets
        summary = (
            f"No configuration meets your targets: the closest, {notation}, fits in memory but needs "
            + "; ".join(er.what_would_fit) + "."
        )
    else:
        summary = (
            f"Does not fit: even the smallest servable option, {notation}, needs {mem['total_gib']} GiB "
            f"against {mem['capacity_gib']} GiB. What would fit: "
            + ("; ".join(er.what_would_fit) if er.what_would_fit else "a larger GPU")
            + "."
        )
    facts = _facts_for(k, result, er, pick)
    out.update(
        {
            "summary": summary,
            "recommendation": {
                "candidate": pick.candidate,
                "notation": notation,
                "scenario": _scenario(k, pick),
                "weights": _weights_section(k, result, pick, layout),
                "activations": {
                    "format": k.formats[act_format].plan_format,
                    "granularity": "per-token dynamic scales"
                    if not cand.weight_only
                    else "unquantized (16-bit); weights are dequantized inside the matmul kernels",
                },
                "kv_cache": {
                    "format": k.formats[kv.format].plan_format,
                    "kv_format": kv.id,
                    "bytes_per_element": round(
                        kv.bytes_per_element(
                            result.model.architecture.mla.cached_dim
                            if result.model.architecture.mla
                            else result.model.architecture.head_dim
                        ),
                        4,
                    ),
                    "granularity": kv.granularity,
                },
                "high_precision_layers": _high_precision_layers(layout, result.gpu.supports_bf16, present),
                "calibration": _calibration(k, pick, shape, runtime.id),
                "quality_evidence": {
                    "typical_recovery_pct": cand.quality.typical_recovery_pct,
                    "worst_recovery_pct": cand.quality.worst_recovery_pct,
                    "evidence": cand.quality.evidence,
                    "source": cand.quality.source,
                },
            },
            "memory": mem,
        "performance": performance_section(pick.performance),
            "scores": {**{d: round(v, 2) for d, v in pick.scores.items()}, "total": round(pick.total, 2)},
        }
    )
    if not er.fits:
        out["what_would_fit"] = er.what_would_fit
    out["alternatives"] = _alternatives(k, er)
    out["rejected"] = [_rejection(r) for r in er.rejected]
    out["fallback"] = (
        {**_combo_brief(k, er.fallback), "why": "more precision than the pick, or the next best option"}
        if er.fallback
        else None
    )
    out["ladder"] = [
        {
            "step": i + 1,
            "role": s.role,
            "notation": f"{k.candidates[s.candidate].notation} KV-{s.kv.upper()}",
            "candidate": s.candidate,
            "fits": s.fits,
            "total_gib_per_gpu": _gib(s.total_bytes_per_gpu),
            "note": s.note,
        }
        for i, s in enumerate(er.ladder)
    ]
    out["kv_options"] = [o.model_dump() for o in er.kv_options]
    out["validation"] = _validation(k, facts)
    out["rationale"] = [
        {"rule": f.id, "title": f.title, "text": f.rationale, "effect": f.effect, "source": f.source}
        for f in pick.fired
    ]
    out["notes"] = pick.notes
    commands = runtime_commands(
        k, result.model.id, cand, kv, runtime, result.gpu, result.request.gpus, shape, pick.flags
    )
    out["runtime"] = {**commands.model_dump(), "id": runtime.id, "chosen_by": er.runtime_chosen_by}
    return out


def _facts_for(k: Knowledge, result: RecommendResult, er: EndpointResult, combo: Combo) -> dict:
    from advisor.decide.recommend import _Context

    ctx = _Context(k, result.request, result.model, result.gpu, er.shape)
    return ctx.facts(
        k.candidates[combo.candidate],
        k.kv_formats[combo.kv],
        k.runtimes[combo.runtime],
        combo.memory,
        er.eight_bit_fits,
    )


def _rejection(r) -> dict[str, Any]:
    out = {
        "candidate": r.candidate,
        "notation": r.notation,
        "reasons": [x.text for x in r.reasons],
        "rules": [x.rule for x in r.reasons if x.rule],
    }
    if r.memory is not None and any(x.kind == "memory" for x in r.reasons):
        out["closest_kv"] = r.kv
        out["memory_per_gpu_gib"] = memory_per_gpu(r.memory)
    return out


# --------------------------------------------------------------------------- YAML in and out
class _PlanDumper(yaml.SafeDumper):
    """Multi-line strings (recipes, config files) as literal blocks, so they read and copy as written."""


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
    """A request from a plan or request YAML document. Errors list the bad fields; never a traceback."""
    k = knowledge or load_knowledge()
    if len(text) > MAX_PLAN_BYTES:
        raise AdvisorInputError(where, f"file is {len(text)} bytes; plans and requests must be under {MAX_PLAN_BYTES}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise AdvisorInputError(where, f"not valid YAML{at}") from None
    if not isinstance(data, dict):
        raise AdvisorInputError(where, "expected a YAML mapping (a request, or a plan with a 'request' section)")
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise AdvisorInputError(
            f"{where} schema_version", f"{version!r} is not supported; this version reads {SCHEMA_VERSION}"
        )
    body = data["request"] if "request" in data else {kk: v for kk, v in data.items() if kk != "schema_version"}
    if not isinstance(body, dict):
        raise AdvisorInputError(f"{where} request", "expected a mapping of request fields")
    try:
        request = Request.model_validate(body)
    except ValidationError as exc:
        raise AdvisorInputError(where, _describe_errors(exc)) from None
    check_ids(request, k)
    return request

"""Knowledge tables flattened into display rows for the knowledge-base page (pure, no Streamlit).

:func:`table_rows` turns one table of :class:`~advisor.knowledge.Knowledge` into a list of flat dicts:
readable column names, nested fields summarised, lists comma-joined, ``source`` always the last column
(several sources are joined with ``"; "`` because a citation may itself contain commas).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from advisor.knowledge.schema import (
    GPU,
    CalibrationRow,
    Candidate,
    Checkpoint,
    DecisionConstant,
    Knowledge,
    KVFormat,
    Method,
    ModelEntry,
    NumericFormat,
    Priority,
    QualityCell,
    Row,
    Rule,
    RuleEffect,
    Runtime,
    Scaling,
    SeedStatement,
    ValidationCheck,
    WeightScheme,
    Workload,
)

DisplayRow = dict[str, object]

# table id -> (display label, YAML file in knowledge/), in the order the page offers them.
TABLES: dict[str, tuple[str, str]] = {
    "gpus": ("GPUs", "gpus.yaml"),
    "models": ("Models", "models.yaml"),
    "checkpoints": ("Published checkpoints", "checkpoints.yaml"),
    "schemes": ("Weight schemes", "schemes.yaml"),
    "kv_formats": ("KV-cache formats", "kv_formats.yaml"),
    "candidates": ("Candidates (W/A configurations)", "candidates.yaml"),
    "rules": ("Rules", "rules.yaml"),
    "quality": ("Quality evidence", "quality.yaml"),
    "priorities": ("Priorities (objectives)", "priorities.yaml"),
    "decision": ("Decision constants", "decision.yaml"),
    "validation": ("Validation checks", "validation.yaml"),
    "methods": ("Methods", "methods.yaml"),
    "formats": ("Numeric formats", "formats.yaml"),
    "runtimes": ("Runtimes", "runtimes.yaml"),
    "workloads": ("Workload presets", "workloads.yaml"),
    "seed_statements": ("Seed statements", "seed_statements.yaml"),
    "calibration": ("Calibration checkpoints", "calibration.yaml"),
}

# Display format (Streamlit NumberColumn ``format``) of the numeric columns, by column name.
COLUMN_FORMATS: dict[str, str] = {
    "memory GiB": "%.2f",
    "bandwidth TB/s": "%.2f",
    "BF16 TFLOPS": "localized",
    "FP8 TFLOPS": "localized",
    "FP4 TFLOPS": "localized",
    "layers": "localized",
    "hidden": "localized",
    "max context": "localized",
    "bits": "localized",
    "bits/element": "%.3g",
    "block size": "localized",
    "min CC": "%.1f",
    "tier": "localized",
    "recovery %": "%.2f",
    "file GB": "%.2f",
    "worst %": "%.2f",
    "quality risk": "localized",
    "preference": "localized",
    "memory fraction": "%.2f",
    "prompt tokens": "localized",
    "output tokens": "localized",
    "concurrency": "localized",
    "group size": "localized",
    "published GB": "%.3f",
    "tolerance %": "%.1f",
}

_VENDORS = {"nvidia": "NVIDIA", "amd": "AMD"}

_OPS = {
    "eq": "=",
    "ne": "!=",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "in": "in",
    "not_in": "not in",
    "contains": "contains",
}


# --------------------------------------------------------------------------- small formatters
def _join(items: Iterable[object]) -> str:
    return ", ".join(str(item) for item in items)


def _sources(row: Row) -> str:
    return "; ".join(row.sources)


def _mapping(items: Mapping[str, object]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in items.items())


def _value(value: object) -> str:
    if isinstance(value, list | tuple):
        return "[" + _join(value) + "]"
    return str(value)


def condition_text(condition: Mapping[str, Any], *, nested: bool = False) -> str:
    """A rule condition (advisor/rules.py language) in one line, e.g. ``cand.activations = fp8 and not ...``."""
    if not condition:
        return "always"
    for key, word in (("all", " and "), ("any", " or ")):
        if key in condition:
            text = word.join(condition_text(part, nested=True) for part in condition[key])
            return f"({text})" if nested and len(condition[key]) > 1 else text
    if "not" in condition:
        return "not " + condition_text(condition["not"], nested=True)
    fact, op = condition.get("fact"), condition.get("op", "eq")
    if op == "truthy":
        return str(fact)
    if op == "falsy":
        return f"not {fact}"
    other = condition["value_fact"] if "value_fact" in condition else _value(condition.get("value"))
    return f"{fact} {_OPS.get(op, op)} {other}"


def effect_text(effect: RuleEffect) -> str:
    """What a rule does when it fires: reject, a quality risk, a claim checked against the numbers, runtime
    flags, plan note."""
    parts = []
    if effect.reject:
        parts.append(f"reject: {effect.reject}")
    if effect.quality:
        parts.append(f"quality {effect.quality.expected_pct:+g} expected / {effect.quality.worst_pct:+g} worst points")
    claims = [f"better {m}" for m in effect.favours] + [f"worse {m}" for m in effect.disfavours]
    if claims:
        versus = f" than where {condition_text(effect.versus)}" if effect.versus else " than where it does not fire"
        parts.append("claims " + ", ".join(claims) + versus)
    if effect.flags:
        parts.append("needs " + " ".join(effect.flags))
    if effect.note:
        parts.append(f"note: {effect.note}")
    return "; ".join(parts)


def _scaling_text(scaling: Scaling | None) -> str:
    if scaling is None:
        return "none (dense)"
    if scaling.granularity == "group":
        parts = [f"group {scaling.group_size}"]
    elif scaling.granularity == "block":
        parts = [f"block {scaling.block_rows}x{scaling.block_cols}"]
    elif scaling.granularity == "file-average":
        parts = ["whole-file average"]
    else:
        parts = [f"per {scaling.granularity}"]
    if scaling.scale_bits:
        parts.append(f"{scaling.scale_bits}-bit scales")
    if scaling.zero_point_bits:
        parts.append(f"{scaling.zero_point_bits}-bit zero points")
    if scaling.tensor_scale_bits:
        parts.append(f"{scaling.tensor_scale_bits}-bit tensor scale")
    return ", ".join(parts)


def _params_text(count: int) -> str:
    return f"~{count / 1e9:g}B"


# --------------------------------------------------------------------------- one function per table
def _gpu(g: GPU) -> DisplayRow:
    return {
        "id": g.id,
        "name": g.name,
        "vendor": _VENDORS[g.vendor],
        "architecture": g.architecture,
        "compute capability / arch": g.compute_capability or g.amd_arch or "",
        "memory GiB": g.memory_gib,
        "bandwidth TB/s": g.memory_bandwidth_tbps,
        "BF16 TFLOPS": g.dense_tflops.bf16,
        "FP8 TFLOPS": g.dense_tflops.fp8,
        "FP4 TFLOPS": g.dense_tflops.fp4,
        "native formats": _join(g.native_formats),
        "unverified": _join(g.unverified),
        "source": _sources(g),
    }


def _experts_text(config: Mapping[str, Any]) -> str:
    experts = config.get("num_local_experts") or config.get("num_experts") or config.get("n_routed_experts")
    if not experts:
        return ""
    text = str(experts)
    if config.get("n_shared_experts"):
        text += f" + {config['n_shared_experts']} shared"
    if config.get("num_experts_per_tok"):
        text += f" ({config['num_experts_per_tok']} per token)"
    return text


def _model(m: ModelEntry) -> DisplayRow:
    c = m.config
    heads = f"{c.get('num_attention_heads')} / {c.get('num_key_value_heads')}"
    if c.get("kv_lora_rank"):
        heads += " (MLA)"
    native = m.native.scheme
    if m.native.overrides:
        native += ", " + _mapping(m.native.overrides)
    published = ""
    if m.published and m.published.params_total:
        total = m.published.params_total
        published = f"{total:,}" if m.published.exact else _params_text(total)
        if m.published.params_active:
            published += f" ({_params_text(m.published.params_active)} active)"
    return {
        "id": m.id,
        "name": m.name,
        "type": c.get("model_type", ""),
        "layers": c.get("num_hidden_layers"),
        "hidden": c.get("hidden_size"),
        "heads / KV heads": heads,
        "experts": _experts_text(c),
        "max context": c.get("max_position_embeddings"),
        "native layout": native,
        "published params": published,
        "source": _sources(m),
    }


def _scheme(s: WeightScheme) -> DisplayRow:
    return {
        "id": s.id,
        "name": s.name,
        "format": "model's own" if s.model_native else s.format or "",
        "method": s.method or "",
        "bits/element": s.element_bits,
        "scaling": "" if s.model_native else _scaling_text(s.scaling),
        "quantized groups": _join(s.quantized_groups),
        "other groups in": "" if s.model_native else s.high_precision_format,
        "notes": s.notes,
        "source": _sources(s),
    }


def _kv_format(kv: KVFormat) -> DisplayRow:
    scales = []
    if kv.block_size:
        scales.append(f"{kv.block_scale_bits}-bit scale per {kv.block_size}")
    if kv.scale_bytes_per_token_head:
        scales.append(f"{kv.scale_bytes_per_token_head:g} B per token and head")
    return {
        "id": kv.id,
        "name": kv.name,
        "format": kv.format,
        "bits/element": kv.element_bits,
        "granularity": kv.granularity,
        "scales": _join(scales),
        "runtime flags": _mapping(kv.runtime_flags),
        "needs native": kv.requires_native or "",
        "quality risk": kv.quality_risk,
        "notes": kv.notes,
        "source": _sources(kv),
    }


def _candidate(c: Candidate) -> DisplayRow:
    return {
        "id": c.id,
        "name": c.name,
        "notation": c.notation,
        "scenario": c.scenario,
        "tier": c.tier,
        "weights": c.weights,
        "activations": c.activations,
        "method": c.method or "",
        "granularity": c.granularity,
        "native compute": _join(c.native_compute),
        "min CC": c.min_cc,
        "runtimes": _join(c.runtimes),
        "quality risk": c.risk,
        "risk note": c.risk_note,
        "source": _sources(c),
    }


def _rule(r: Rule) -> DisplayRow:
    return {
        "id": r.id,
        "title": r.title,
        "when": condition_text(r.when),
        "effect": effect_text(r.effect),
        "rationale": r.rationale,
        "source": _sources(r),
    }


def _validation(v: ValidationCheck) -> DisplayRow:
    return {
        "id": v.id,
        "title": v.title,
        "metric": v.metric,
        "threshold": v.threshold,
        "why": v.why,
        "applies when": condition_text(v.when),
        "phase": v.phase,
        "source": _sources(v),
    }


def _method(m: Method) -> DisplayRow:
    calibration = "no data needed"
    if m.calibration.needs_data:
        calibration = "needs data" + (f": {m.calibration.typical_samples}" if m.calibration.typical_samples else "")
    return {
        "id": m.id,
        "name": m.name,
        "kind": m.kind,
        "quantizes": _join(m.quantizes),
        "formats": _join(m.formats),
        "calibration": calibration,
        "runtimes": _join(m.runtimes),
        "notes": m.notes,
        "source": _sources(m),
    }


def _format(f: NumericFormat) -> DisplayRow:
    return {
        "id": f.id,
        "name": f.name,
        "family": f.family,
        "bits": f.bits,
        "plan format": f.plan_format,
        "block size": f.block_size,
        "scale format": f.scale_format or "",
        "variants": _join(v.id for v in f.variants),
        "notes": f.notes,
        "source": _sources(f),
    }


def _runtime(r: Runtime) -> DisplayRow:
    return {
        "id": r.id,
        "name": r.name,
        "version": r.version,
        "preference": r.preference,
        "vendors": _join(_VENDORS[v] for v in r.vendors),
        "min CC": r.min_cc,
        "memory fraction": r.memory.utilization_default,
        "memory flag": r.memory.utilization_flag or "",
        "serve command": r.serve.command if r.serve else "",
        "why this preference": r.preference_note,
        "source": _sources(r),
    }


def _workload(w: Workload) -> DisplayRow:
    return {
        "id": w.id,
        "name": w.name,
        "prompt tokens": w.prompt_tokens,
        "output tokens": w.output_tokens,
        "concurrency": w.concurrency,
        "concurrency is": w.concurrency_mode,
        "priority": w.priority,
        "quality tasks": _mapping(w.quality_tasks),
        "uses tools": w.uses_tools,
        "structured output": w.structured_output,
        "quality probes": _join(w.quality_probes),
        "description": w.description,
        "source": _sources(w),
    }


def _seed_statement(s: SeedStatement) -> DisplayRow:
    return {
        "id": s.id,
        "seed": s.seed,
        "statement": s.statement,
        "encoded by": _join(s.encoded_by),
        "not encoded because": s.not_encoded or "",
        "source": _sources(s),
    }


def _checkpoint(c: Checkpoint) -> DisplayRow:
    return {
        "id": c.id,
        "model": c.model,
        "candidate": c.candidate,
        "repo": c.repo,
        "producer": c.producer,
        "tool": c.tool,
        "format": c.format,
        "runtimes": _join(c.runtimes),
        "recovery %": c.evaluation.recovery_pct if c.evaluation else None,
        "file GB": c.file_size_gb,
        "notes": c.notes,
        "source": _sources(c),
    }


def _calibration(c: CalibrationRow) -> DisplayRow:
    return {
        "id": c.id,
        "model": c.model,
        "scheme": c.scheme,
        "group size": c.group_size,
        "published GB": c.published_bytes / 1e9,
        "tolerance %": c.tolerance_pct,
        "checkpoint": c.checkpoint,
        "notes": c.notes,
        "source": _sources(c),
    }


def _quality(c: QualityCell) -> DisplayRow:
    return {
        "id": c.id,
        "kind": c.kind,
        "configs": _join(c.configs),
        "family": c.family,
        "size": c.size,
        "task": c.task,
        "recovery %": c.recovery_pct,
        "worst %": c.worst_pct,
        "benchmarks": c.benchmarks,
        "measured on": c.measured_on,
        "source": _sources(c),
    }


def _priority(p: Priority) -> DisplayRow:
    keys = ", then ".join(k.metric + (f" (within {k.within:g})" if k.within is not None else "")
                          + (f" (within {k.within_pct:g}%)" if k.within_pct is not None else "") for k in p.objective)
    return {"id": p.id, "name": p.name, "objective": p.formula, "keys": keys, "description": p.description,
            "source": _sources(p)}


def _decision(d: DecisionConstant) -> DisplayRow:
    return {"id": d.id, "value": d.value, "unit": d.unit, "meaning": d.meaning, "source": _sources(d)}


_CONVERTERS: dict[str, Callable[[Any], DisplayRow]] = {
    "gpus": _gpu,
    "models": _model,
    "schemes": _scheme,
    "kv_formats": _kv_format,
    "candidates": _candidate,
    "rules": _rule,
    "validation": _validation,
    "methods": _method,
    "formats": _format,
    "runtimes": _runtime,
    "workloads": _workload,
    "seed_statements": _seed_statement,
    "calibration": _calibration,
    "checkpoints": _checkpoint,
    "quality": _quality,
    "priorities": _priority,
    "decision": _decision,
}


def table_rows(knowledge: Knowledge, table_id: str) -> list[DisplayRow]:
    """One flat display dict per row of table ``table_id`` (a key of :data:`TABLES`), in YAML order."""
    if table_id not in _CONVERTERS:
        raise KeyError(f"unknown knowledge table {table_id!r}; known: {', '.join(TABLES)}")
    table = getattr(knowledge, table_id)
    rows = table.values() if isinstance(table, Mapping) else table
    return [_CONVERTERS[table_id](row) for row in rows]


def filter_rows(rows: Sequence[DisplayRow], text: str) -> list[DisplayRow]:
    """The rows where some column contains ``text`` (case-insensitive); all rows for blank text."""
    needle = text.strip().casefold()
    if not needle:
        return list(rows)
    return [row for row in rows if any(needle in str(v).casefold() for v in row.values() if v is not None)]

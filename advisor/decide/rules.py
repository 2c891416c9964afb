"""A tiny rules engine: conditions over a flat dict of facts, as data.

A condition is one of
  {"all": [cond, ...]}   every one holds
  {"any": [cond, ...]}   at least one holds
  {"not": cond}          it does not hold
  {"fact": "gpu.cc", "op": "lt", "value": 8.9}
  {"fact": "quality.expected_pct", "op": "lt", "value_fact": "request.quality_floor_pct"}
Operators: eq ne lt le gt ge in not_in contains truthy falsy. A comparison with a missing (None)
fact is false, so "gpu.cc < 8.9" does not fire on an AMD GPU that has no compute capability.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

# Every fact a condition may name, with what it means. Rules naming anything else fail the tests.
FACTS: dict[str, str] = {
    "request.priority": "quality | balanced | latency | throughput | memory | cost",
    "request.calibration": "none | available",
    "request.quality_floor_pct": "lowest acceptable accuracy recovery vs BF16, percent (or None)",
    "request.unacceptable": "failure modes the team will not accept (list)",
    "endpoint.workload": "workload preset id",
    "endpoint.concurrency": "requests in flight",
    "endpoint.context": "tokens per sequence held in the KV cache",
    "endpoint.prompt_tokens": "prompt length",
    "endpoint.output_tokens": "output length",
    "endpoint.uses_tools": "the endpoint calls tools",
    "endpoint.structured_output": "the endpoint must emit valid structured output",
    "gpu.id": "GPU id",
    "gpu.vendor": "nvidia | amd",
    "gpu.architecture": "Volta ... Blackwell, CDNA3",
    "gpu.cc": "NVIDIA compute capability as a number (None on AMD)",
    "gpu.native": "numeric formats the tensor cores run natively (list)",
    "gpu.bf16": "the GPU has BF16",
    "gpu.count": "GPUs the request has for each endpoint (over all its nodes)",
    "gpu.nodes": "nodes the request's GPUs are spread over (GPUs per node x nodes = gpu.count)",
    "runtime.id": "serving runtime id",
    "runtime.candidates": "candidate ids the runtime serves (list)",
    "runtime.kv_formats": "KV-cache format ids the runtime serves (list)",
    "model.moe": "mixture of experts",
    "model.params_b": "total parameters, billions",
    "model.mla": "multi-head latent attention",
    "model.attention_sinks": "a learned sink logit per attention head (gpt-oss)",
    "model.logit_softcap": "attention logits are soft-capped, cap x tanh(x / cap) (Gemma-2)",
    "model.native_quantized": "the model's own published checkpoint is already quantized (gpt-oss, DeepSeek-V3)",
    "model.post_training_quantized": "the checkpoint is a post-training quantization (AWQ, GPTQ, compressed-tensors, "
    "ModelOpt, bitsandbytes, a GGUF file) of a 16-bit model",
    "model.base_model": "the checkpoint names the 16-bit model it was quantized from (model card base_model)",
    "cand.id": "candidate id",
    "cand.native": "the candidate serves the model's own published checkpoint as it is",
    "cand.scenario": "seed 003 scenario: baseline A B C E",
    "cand.tier": "precision step: 16 8 4 3 2",
    "cand.weight_format": "numeric format of the quantized weights",
    "cand.weight_bits": "nominal bits of the quantized weights",
    "cand.activations": "numeric format of matmul inputs",
    "cand.weight_only": "activations stay 16-bit",
    "cand.method": "method id",
    "cand.needs_calibration": "the method needs calibration data (false when a published checkpoint serves it)",
    "cand.published": "a published checkpoint of this model serves the candidate (knowledge/checkpoints.yaml)",
    "cand.integer": "the quantized weights are integers",
    "cand.risk": "published quality risk class, 0 none .. 4 high (knowledge/candidates.yaml)",
    "kv.id": "KV-cache format id",
    "kv.bits": "nominal bits of the KV cache",
    "kv.quantized": "the KV cache is below 16 bits",
    "kv.risk": "quality risk class of the KV format, 0 none .. 4 high",
    "deploy.tp": "tensor-parallel GPUs in one replica",
    "deploy.replicas": "data-parallel replicas",
    "deploy.pp": "pipeline-parallel stages (one per node) in one replica",
    "deploy.concurrency": "requests one replica runs at once (the batch a decode step serves)",
    "mem.fits": "the deployment fits at the endpoint's shape",
    "mem.eight_bit_fits": "some 8-bit candidate fits this endpoint",
    "mem.kv8_fits": "this candidate also fits with an 8-bit or 16-bit KV cache",
    "quality.expected_pct": "expected accuracy kept vs BF16 for the endpoint's tasks, percent (knowledge/quality.yaml)",
    "quality.worst_pct": "the low end of that estimate, percent",
    "perf.ttft_ms": "modelled time to first token, ms (advisor/performance.py)",
    "perf.tpot_ms": "modelled time per output token, ms",
    "perf.throughput_tokens_per_s": "modelled output tokens/s of all requests",
    "perf.cost_per_million_tokens": "modelled USD per million output tokens",
    "request.max_ttft_ms": "time-to-first-token target, ms (or None)",
    "request.max_tpot_ms": "time-per-token target, ms (or None)",
    "request.max_cost_per_million_tokens": "cost target, USD per million output tokens (or None)",
}

OPS = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "in": lambda a, b: a in b,
    "not_in": lambda a, b: a not in b,
    "contains": lambda a, b: b in a,
}


class ConditionError(ValueError):
    pass


def evaluate(condition: Mapping[str, Any], facts: Mapping[str, Any]) -> bool:
    if not condition:
        return True
    if "all" in condition:
        return all(evaluate(c, facts) for c in condition["all"])
    if "any" in condition:
        return any(evaluate(c, facts) for c in condition["any"])
    if "not" in condition:
        return not evaluate(condition["not"], facts)
    name, op = condition.get("fact"), condition.get("op", "eq")
    if name not in FACTS:
        raise ConditionError(f"unknown fact {name!r}")
    value = facts.get(name)
    if op == "truthy":
        return bool(value)
    if op == "falsy":
        return not value
    if op not in OPS:
        raise ConditionError(f"unknown operator {op!r}")
    other = condition.get("value")
    if "value_fact" in condition:
        if condition["value_fact"] not in FACTS:
            raise ConditionError(f"unknown fact {condition['value_fact']!r}")
        other = facts.get(condition["value_fact"])
        if other is None:
            return False
    if value is None:
        return False
    try:
        return bool(OPS[op](value, other))
    except TypeError:
        return False


def facts_named(condition: Mapping[str, Any]) -> set[str]:
    """Every fact a condition refers to (for validating rule tables)."""
    if not condition:
        return set()
    if "all" in condition or "any" in condition:
        return set().union(*(facts_named(c) for c in condition.get("all", condition.get("any", []))))
    if "not" in condition:
        return facts_named(condition["not"])
    return {condition.get("fact")} | ({condition["value_fact"]} if "value_fact" in condition else set())


Condition = Callable[[Mapping[str, Any]], bool]


def compile_condition(condition: Mapping[str, Any]) -> Condition:
    """The condition as a closure, checked once; evaluating it is then a few dict lookups.
    Same semantics as :func:`evaluate` (which stays as the readable reference and is tested against it)."""
    if not condition:
        return lambda facts: True
    if "all" in condition:
        parts = [compile_condition(c) for c in condition["all"]]
        return lambda facts: all(p(facts) for p in parts)
    if "any" in condition:
        parts = [compile_condition(c) for c in condition["any"]]
        return lambda facts: any(p(facts) for p in parts)
    if "not" in condition:
        inner = compile_condition(condition["not"])
        return lambda facts: not inner(facts)
    name, op = condition.get("fact"), condition.get("op", "eq")
    if name not in FACTS:
        raise ConditionError(f"unknown fact {name!r}")
    if op == "truthy":
        return lambda facts: bool(facts.get(name))
    if op == "falsy":
        return lambda facts: not facts.get(name)
    if op not in OPS:
        raise ConditionError(f"unknown operator {op!r}")
    compare = OPS[op]
    if "value_fact" in condition:
        other_name = condition["value_fact"]
        if other_name not in FACTS:
            raise ConditionError(f"unknown fact {other_name!r}")

        def check_fact(facts: Mapping[str, Any]) -> bool:
            value, other = facts.get(name), facts.get(other_name)
            if value is None or other is None:
                return False
            try:
                return bool(compare(value, other))
            except TypeError:
                return False

        return check_fact
    constant = condition.get("value")

    def check(facts: Mapping[str, Any]) -> bool:
        value = facts.get(name)
        if value is None:
            return False
        try:
            return bool(compare(value, constant))
        except TypeError:
            return False

    return check


def specialize(condition: Mapping[str, Any], known: Mapping[str, Any]) -> Mapping[str, Any] | bool:
    """Partially evaluate a condition with the facts that are fixed for a whole endpoint (GPU, workload,
    request, model): True or False when those decide it, else the smaller condition that is left."""
    if not condition:
        return True
    if "all" in condition or "any" in condition:
        is_all = "all" in condition
        parts = []
        for child in condition["all" if is_all else "any"]:
            value = specialize(child, known)
            if value is (not is_all):  # a False under all, a True under any: decided
                return value
            if value is not is_all:  # an undecided child stays
                parts.append(value)
        if not parts:
            return is_all
        return parts[0] if len(parts) == 1 else {"all" if is_all else "any": parts}
    if "not" in condition:
        inner = specialize(condition["not"], known)
        return (not inner) if isinstance(inner, bool) else {"not": inner}
    names = {condition.get("fact"), condition.get("value_fact")} - {None}
    if names <= set(known):
        return evaluate(condition, known)
    op = condition.get("op", "eq")
    if op not in ("truthy", "falsy") and any(n in known and known[n] is None for n in names):
        return False  # a comparison with a missing (None) fact is false, whatever the other side is
    return condition

"""Choosing by numbers: the Pareto front of the deployments that pass every gate, and the priority's objective
(knowledge/priorities.yaml) applied to it key by key.

A deployment dominates another when it is at least as good on every compared metric and better on one. The
compared metrics are always expected accuracy, cost per million tokens (GPU-hours, so the order holds with or
without a price), time per output token and time to first token, plus whatever else the priority's
objective names (fewest GPUs and bytes for the memory priority, the worst case for quality). The objective
then keeps, for each of its keys in turn, the options within the key's tolerance of the best; what is left
after the last key is broken by the runtime's preference (seed 001: runtime first) and fewer GPUs per replica.
Because it runs on the front, the pick is never dominated by another option the engine evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import itemgetter, le

from advisor.decide.result import Deployment
from advisor.knowledge.schema import METRIC_SENSE, ObjectiveKey, Priority

FRONT_METRICS = ("expected_recovery_pct", "gpu_hours_per_million_tokens", "tpot_ms", "ttft_ms")
DERIVED = ("balanced_utility",)  # a function of metrics already compared


_FRONT: dict[int, tuple[Priority, tuple[str, ...]]] = {}  # id(priority) -> (the priority, its front metrics)
_SENSES: dict[tuple[str, ...], tuple[tuple[str, bool], ...]] = {}  # metrics -> (metric, flipped) pairs


def front_metrics(priority: Priority) -> tuple[str, ...]:
    """The metrics the Pareto front compares under this priority (remembered per priority object)."""
    known = _FRONT.get(id(priority))
    if known is not None and known[0] is priority:
        return known[1]
    extra = [key.metric for key in priority.objective if key.metric not in FRONT_METRICS + DERIVED]
    metrics = FRONT_METRICS + tuple(dict.fromkeys(extra))
    if len(_FRONT) > 64:
        _FRONT.clear()
    _FRONT[id(priority)] = (priority, metrics)
    return metrics


def _senses(metrics: Sequence[str]) -> tuple[tuple[str, bool], ...]:
    """(metric, whether 'higher is better' flips it) for each metric (remembered for tuples)."""
    senses = _SENSES.get(metrics) if isinstance(metrics, tuple) else None
    if senses is None:
        senses = tuple((m, METRIC_SENSE[m] == "max") for m in metrics)
        if isinstance(metrics, tuple) and len(_SENSES) < 256:
            _SENSES[metrics] = senses
    return senses


def oriented(dep: Deployment, metrics: Sequence[str]) -> tuple[float, ...]:
    """Metric values with 'higher is better' flipped, so smaller is better everywhere."""
    values = dep.metrics
    return tuple([-values[m] if flip else values[m] for m, flip in _senses(metrics)])


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a dominates b (oriented: smaller is better)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def pareto(deployments: Sequence[Deployment], metrics: Sequence[str]) -> list[Deployment]:
    """The non-dominated deployments. Sorted best-first lexicographically, a later one can never dominate an
    earlier one, so each is compared only with the front found so far; the front member that last dominated one is
    tried first (options close in the order tend to share a dominator)."""
    senses = _senses(metrics)
    keyed = sorted(((tuple([-d.metrics[m] if flip else d.metrics[m] for m, flip in senses]), d) for d in deployments),
                   key=itemgetter(0))
    front: list[Deployment] = []
    checks: list[tuple[float, ...]] = []  # the front's values, in the order they are tried
    for values, dep in keyed:
        for i, f in enumerate(checks):
            # an earlier f is lexicographically <= values: it dominates when no value is worse and they differ
            if all(map(le, f, values)) and f != values:
                if i:
                    checks.insert(0, checks.pop(i))
                break
        else:
            front.append(dep)
            checks.append(values)
    return front


def add_balanced_utility(deployments: Sequence[Deployment], priority: Priority) -> None:
    """balanced_utility = expected accuracy + points_per_cost_halving x log2(cheapest cost / this cost)."""
    if not deployments:
        return
    cheapest = min(d.metrics["gpu_hours_per_million_tokens"] for d in deployments)
    for d in deployments:
        d.metrics["balanced_utility"] = d.metrics["expected_recovery_pct"] + priority.points_per_cost_halving * \
            math.log2(cheapest / d.metrics["gpu_hours_per_million_tokens"])


def cascade(options: Sequence[Deployment], priority: Priority, preference: dict[str, int] | None = None
            ) -> tuple[Deployment, list[ObjectiveKey]]:
    """The option the objective prefers, and the keys that narrowed the field: for each key in turn, the options
    within its tolerance of the best (`within` points, or `within_pct` percent of the best; none: equal to it); the
    first of those left by the runtime's preference, fewer GPUs per replica, then the ids."""
    row, decided = _cascade(_rows(options, preference), priority)
    return row[0], decided


def _rows(options: Sequence[Deployment], preference: dict[str, int] | None) -> list[tuple]:
    """(option, its metrics, its tie-break key) for :func:`_cascade`."""
    pref = preference or {}
    return [(d, d.metrics, (pref.get(d.runtime, 99), d.layout.tensor_parallel, d.candidate, d.kv, d.concurrency))
            for d in options]


def _cascade(rows: list[tuple], priority: Priority) -> tuple[tuple, list[ObjectiveKey]]:
    left = rows
    decided: list[ObjectiveKey] = []
    for key in priority.objective:
        if len(left) == 1:
            break
        metric = key.metric
        values = [m[metric] for _, m, _ in left]
        best = max(values) if METRIC_SENSE[metric] == "max" else min(values)
        if key.within is not None:
            tolerance = key.within + 1e-9
            narrowed = [x for x, v in zip(left, values, strict=True) if abs(v - best) <= tolerance]
        elif key.within_pct is not None:
            tolerance = abs(best) * key.within_pct / 100 + 1e-12
            narrowed = [x for x, v in zip(left, values, strict=True) if abs(v - best) <= tolerance]
        else:
            narrowed = [x for x, v in zip(left, values, strict=True) if v == best]
        if len(narrowed) < len(left):
            decided.append(key)
        left = narrowed
    return (left[0] if len(left) == 1 else min(left, key=itemgetter(2))), decided


def best(options: Sequence[Deployment], priority: Priority) -> Deployment:
    """The objective's choice among options of one configuration (e.g. its concurrencies)."""
    if priority.points_per_cost_halving:
        add_balanced_utility(options, priority)
    return cascade(pareto(options, front_metrics(priority)), priority)[0]


def rank(deployments: Sequence[Deployment], priority: Priority, preference: dict[str, int]
         ) -> tuple[list[Deployment], list[Deployment], list[ObjectiveKey]]:
    """(every deployment best first, the Pareto front, the metrics that decided the pick).

    The front is ordered by applying the objective repeatedly; the dominated rest follows, ordered by the
    objective's metrics without tolerances."""
    if not deployments:
        return [], [], []
    add_balanced_utility(deployments, priority)
    front = pareto(deployments, front_metrics(priority))
    ordered, decided = [], []
    left = _rows(front, preference)
    while left:
        chosen, why = _cascade(left, priority)
        if not ordered:
            decided = why
        ordered.append(chosen[0])
        left = [r for r in left if r is not chosen]
    on_front = {id(d) for d in front}
    keys = tuple([k.metric for k in priority.objective])  # a tuple: its senses are remembered (oriented)
    rest = sorted((d for d in deployments if id(d) not in on_front),
                  key=lambda d: (oriented(d, keys), preference.get(d.runtime, 99), d.layout.tensor_parallel))
    return ordered + rest, front, decided

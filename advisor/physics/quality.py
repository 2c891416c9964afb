"""Expected accuracy of one deployment against the same model in BF16, from published evaluations.

For a weights configuration (a candidate) and a KV-cache format, per task category the endpoint's workload
weighs (knowledge/workloads.yaml ``quality_tasks``), the nearest evidence cell of knowledge/quality.yaml is
looked up: the model's family (config.json ``model_type``) and size bucket first, then wider. Each step
away from an exact match lowers the worst case by ``quality-fallback-widening`` points and is stated.

Per task:  recovery = weights recovery x KV recovery / 100   (losses compound)
           worst    = weights worst    x KV worst    / 100
The expected recovery is the task-weighted mean; the worst case is the lowest task's worst. Rule
adjustments (risks the brief states, e.g. 4-bit KV drifting on long contexts) are added in points.
Recoveries above 100% in a source are measurement noise: a cell counts at most 100.

Pure functions of the knowledge base; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict

from advisor.knowledge import derived
from advisor.knowledge.schema import TASK_CATEGORIES as TASKS
from advisor.knowledge.schema import Knowledge, QualityCell

# The reference itself: exactly 100%. Both 16-bit caches count as the reference: every published KV-cache
# evaluation compares against one of them (llama.cpp's default cache is f16, vLLM's follows the model's dtype).
IDENTITY = {"weights": ("bf16",), "kv": ("bf16", "fp16")}
SIZES = ("tiny", "small", "medium", "large")


class Adjustment(BaseModel):
    """A rule's stated risk, applied to one deployment."""

    model_config = ConfigDict(frozen=True)
    rule: str
    expected_pct: float
    worst_pct: float
    basis: str


class TaskQuality(BaseModel):
    model_config = ConfigDict(frozen=True)
    task: str
    weight: float
    recovery_pct: float
    worst_pct: float
    weights_cell: str | None  # quality.yaml row id, None for the BF16 reference itself
    kv_cell: str | None
    match: str  # "exact" or what was relaxed to find the nearest evidence


class Quality(BaseModel):
    """Accuracy kept vs BF16, percent: expected (task-weighted mean) and worst case, with the evidence."""

    model_config = ConfigDict(frozen=True)
    expected_recovery_pct: float
    worst_recovery_pct: float
    tasks: tuple[TaskQuality, ...]
    adjustments: tuple[Adjustment, ...] = ()
    sources: tuple[str, ...] = ()
    fallback_notes: tuple[str, ...] = ()  # where no exact cell matched, what was used instead

    @property
    def exact(self) -> bool:
        return not self.fallback_notes


def size_bucket(k: Knowledge, params_b: float) -> str:
    """tiny / small / medium / large by total parameters (billions), thresholds from knowledge/decision.yaml."""
    if params_b <= k.decision["quality-size-tiny-max-b"].value:
        return "tiny"
    if params_b <= k.decision["quality-size-small-max-b"].value:
        return "small"
    if params_b <= k.decision["quality-size-medium-max-b"].value:
        return "medium"
    return "large"


def _levels(family: str, size: str) -> list[tuple[str, str, int, str]]:
    """(family, size, relaxations, words) from the most to the least specific."""
    return [
        (family, size, 0, "exact"),
        (family, "any", 1, f"{family} at any size"),
        ("any", size, 1, f"a cross-model summary at {size} size"),
        ("*", size, 1, f"other families at {size} size"),
        (family, "*", 1, f"{family} at other sizes"),
        ("any", "any", 2, "a cross-model summary"),
        ("*", "*", 2, "other families and sizes"),
    ]


def _index(k: Knowledge) -> dict[tuple[str, str, str], list[QualityCell]]:
    out: dict[tuple[str, str, str], list[QualityCell]] = {}
    for cell in k.quality.values():
        for config in cell.configs:
            out.setdefault((cell.kind, config, cell.task), []).append(cell)
    return out


def _cells_for(k: Knowledge, kind: str, config: str, task: str) -> list[QualityCell]:
    return derived(k, "quality-index", lambda: _index(k)).get((kind, config, task), [])


def nearest(k: Knowledge, kind: str, config: str, family: str, size: str, task: str) -> tuple[list[QualityCell], int, str]:
    """The evidence cells that best match, how many steps were relaxed, and in words what was matched.

    Falls back to the general task (one more step), then to any task (two more), when the task has no cell
    for this configuration. Raises KeyError when the configuration has no evidence at all (a knowledge-base
    gap the loader refuses).
    """
    others = [t for t in TASKS if t not in (task, "general")]
    for t, extra in ((task, 0), ("general", 1), *((o, 2) for o in others)):
        cells = _cells_for(k, kind, config, t)
        if not cells:
            continue
        for fam, sz, steps, words in _levels(family, size):
            hit = [c for c in cells if (fam == "*" or c.family == fam) and (sz == "*" or c.size == sz)]
            if hit:
                what = words if not extra else f"{words}, {t} tasks standing in for {task}"
                return hit, steps + extra, what
    raise KeyError(f"no quality evidence for {kind} {config!r}")


def _cell_figures(cells: list[QualityCell]) -> tuple[float, float]:
    recovery = sum(min(100.0, c.recovery_pct) for c in cells) / len(cells)
    worst = min(min(100.0, c.worst_pct) for c in cells)
    return recovery, worst


def _one(k: Knowledge, kind: str, config: str, family: str, size: str, task: str, widen: float
         ) -> tuple[float, float, str | None, str, list[str], str | None]:
    """(recovery, worst, cell id, match words, sources, fallback note) for one side of one task (cached)."""
    cache = derived(k, "quality-one", dict)
    key = (kind, config, family, size, task, widen)
    if key not in cache:
        cache[key] = _lookup(k, kind, config, family, size, task, widen)
    return cache[key]


def _lookup(k: Knowledge, kind: str, config: str, family: str, size: str, task: str, widen: float
            ) -> tuple[float, float, str | None, str, list[str], str | None]:
    if config in IDENTITY[kind]:
        return 100.0, 100.0, None, "exact", [], None
    cells, steps, words = nearest(k, kind, config, family, size, task)
    recovery, worst = _cell_figures(cells)
    worst -= widen * steps
    sources = [s for c in cells for s in c.sources]
    note = None
    if steps:
        note = (f"{kind} {config} on {task}: no exact evidence for {family} ({size}); used {words} "
                f"({', '.join(c.id for c in cells)}), worst case widened by {widen * steps:g} points")
    return recovery, worst, cells[0].id, words, sources, note


def expected_quality(k: Knowledge, weights_config: str, kv_config: str, family: str, params_b: float,
                     tasks: Mapping[str, float], adjustments: Iterable[Adjustment] = ()) -> Quality:
    """Expected and worst-case accuracy recovery (% of BF16) of weights x KV for a task mix.

    `weights_config` is a candidate id (native checkpoints count as the reference: their published
    evaluations are of those weights), `kv_config` a KV-format id, `family` the config.json model_type,
    `params_b` total parameters in billions, `tasks` task category -> weight (knowledge/workloads.yaml).
    """
    widen = k.decision["quality-fallback-widening"].value
    size = size_bucket(k, params_b)
    per_task, sources, notes = [], [], []
    total_weight = sum(tasks.values()) or 1.0
    for task, weight in tasks.items():
        w_rec, w_worst, w_cell, w_match, w_src, w_note = _one(k, "weights", weights_config, family, size, task, widen)
        kv_rec, kv_worst, kv_cell, kv_match, kv_src, kv_note = _one(k, "kv", kv_config, family, size, task, widen)
        match = "exact" if w_match == kv_match == "exact" else "; ".join(
            m for m in (w_match if w_match != "exact" else "", kv_match if kv_match != "exact" else "") if m)
        per_task.append(TaskQuality(task=task, weight=weight, recovery_pct=w_rec * kv_rec / 100,
                                    worst_pct=w_worst * kv_worst / 100, weights_cell=w_cell, kv_cell=kv_cell,
                                    match=match))
        sources += w_src + kv_src
        notes += [n for n in (w_note, kv_note) if n]
    adjustments = tuple(adjustments)
    expected = sum(t.recovery_pct * t.weight for t in per_task) / total_weight
    worst = min(t.worst_pct for t in per_task)
    expected += sum(a.expected_pct for a in adjustments)
    worst += sum(a.worst_pct for a in adjustments)
    return Quality(
        expected_recovery_pct=round(expected, 3),
        worst_recovery_pct=round(min(worst, expected), 3),
        tasks=tuple(per_task),
        adjustments=adjustments,
        sources=tuple(dict.fromkeys(sources)),
        fallback_notes=tuple(dict.fromkeys(notes)),
    )

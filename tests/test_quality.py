"""The quality model: expected accuracy vs BF16 from knowledge/quality.yaml, per task, weights x KV, with the
nearest evidence and a wider band when no cell matches exactly."""

import pytest

from advisor.knowledge import load_knowledge
from advisor.knowledge.schema import TASK_CATEGORIES
from advisor.physics.quality import Adjustment, expected_quality, nearest, size_bucket

K = load_knowledge()
GENERAL = {"general": 1.0}


def test_the_reference_is_exactly_100():
    q = expected_quality(K, "bf16", "bf16", "llama", 8.0, GENERAL)
    assert q.expected_recovery_pct == q.worst_recovery_pct == 100.0 and q.exact
    assert expected_quality(K, "bf16", "fp16", "llama", 8.0, GENERAL).expected_recovery_pct == 100.0


def test_weights_and_kv_losses_compound():
    w = expected_quality(K, "int4-gptq", "bf16", "llama", 8.0, GENERAL)
    kv = expected_quality(K, "bf16", "int4", "llama", 8.0, GENERAL)
    both = expected_quality(K, "int4-gptq", "int4", "llama", 8.0, GENERAL)
    assert both.expected_recovery_pct == pytest.approx(w.expected_recovery_pct * kv.expected_recovery_pct / 100,
                                                       abs=0.01)
    assert both.expected_recovery_pct < min(w.expected_recovery_pct, kv.expected_recovery_pct)


def test_exact_evidence_is_used_and_cited():
    q = expected_quality(K, "fp8-w8a8", "bf16", "llama", 70.6, GENERAL)
    assert q.exact and q.sources
    cell = K.quality[q.tasks[0].weights_cell]
    assert cell.family == "llama" and cell.size == "medium" and cell.task == "general"
    assert 98.5 <= q.expected_recovery_pct <= 100.0


def test_no_exact_evidence_widens_the_worst_case_and_says_so():
    exact = expected_quality(K, "int4-gptq", "bf16", "llama", 70.6, GENERAL)
    far = expected_quality(K, "int4-gptq", "bf16", "gemma2", 27.2, GENERAL)  # no gemma2 GPTQ cell
    assert not far.exact and far.fallback_notes and "widened" in far.fallback_notes[0]
    assert far.worst_recovery_pct < far.expected_recovery_pct
    assert exact.exact


def test_a_task_without_evidence_falls_back_to_general_and_says_so():
    cells, steps, words = nearest(K, "weights", "int4-awq", "qwen2", "medium", "code")
    assert steps >= 1 and "general" in words and all(c.task == "general" for c in cells)


def test_tasks_are_weighted():
    mix = {"general": 0.75, "reasoning": 0.25}
    q = expected_quality(K, "int8-w8a8", "bf16", "llama", 70.6, mix)
    general = next(t for t in q.tasks if t.task == "general").recovery_pct
    reasoning = next(t for t in q.tasks if t.task == "reasoning").recovery_pct
    assert q.expected_recovery_pct == pytest.approx(0.75 * general + 0.25 * reasoning, abs=0.01)
    assert q.worst_recovery_pct <= min(t.worst_pct for t in q.tasks) + 1e-9


def test_rule_adjustments_are_added_in_points():
    base = expected_quality(K, "bf16", "int4", "llama", 8.0, GENERAL)
    risk = Adjustment(rule="s003-kv-4bit-long-context-drift", expected_pct=-3.0, worst_pct=-20.0, basis="test")
    adjusted = expected_quality(K, "bf16", "int4", "llama", 8.0, GENERAL, (risk,))
    assert adjusted.expected_recovery_pct == pytest.approx(base.expected_recovery_pct - 3.0, abs=0.01)
    assert adjusted.worst_recovery_pct <= base.worst_recovery_pct - 19.9 + 1e-6
    assert adjusted.adjustments == (risk,)


def test_recoveries_above_100_count_as_100():
    for cell in K.quality.values():
        if cell.recovery_pct > 100 and cell.family != "any" and cell.size != "any":
            kind, config = cell.kind, cell.configs[0]
            w, kv = (config, "bf16") if kind == "weights" else ("bf16", config)
            q = expected_quality(K, w, kv, cell.family, {"tiny": 2, "small": 8, "medium": 70, "large": 400}[cell.size],
                                 {cell.task: 1.0})
            assert q.expected_recovery_pct <= 100.0
            return
    pytest.fail("expected at least one published recovery above 100% in the evidence")


def test_size_buckets_follow_the_decision_table():
    assert [size_bucket(K, b) for b in (1.2, 8.0, 70.6, 405.0)] == ["tiny", "small", "medium", "large"]


def test_every_cell_is_well_formed():
    for cell in K.quality.values():
        assert cell.task in TASK_CATEGORIES and cell.benchmarks.strip() and cell.measured_on.strip() and cell.sources
        assert 0 <= cell.worst_pct <= cell.recovery_pct <= 110


def test_every_configuration_has_evidence_somewhere():
    for cand in K.candidates.values():
        evidence = cand.evidence_as or cand.id
        if evidence != "bf16":
            assert nearest(K, "weights", evidence, "llama", "small", "general")[0], cand.id
    for kv in K.kv_formats:
        if kv not in ("bf16", "fp16"):
            assert nearest(K, "kv", kv, "llama", "small", "general")[0], kv


def test_the_engine_uses_the_workload_task_mix():
    from advisor.decide.engine import recommend
    from advisor.intake.request import Endpoint, Request

    result = recommend(Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="h100-sxm",
                               endpoints=[Endpoint(workload="code-generation")]), K)
    tasks = {t.task: t.weight for t in result.endpoints[0].pick.quality.tasks}
    assert tasks == dict(K.workloads["code-generation"].quality_tasks)

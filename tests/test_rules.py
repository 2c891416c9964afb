"""Every rule fires on its example and stays quiet on its counter-example; the engine that reads them."""

import pytest

from advisor.decide.rules import FACTS, ConditionError, evaluate, facts_named
from advisor.knowledge import load_knowledge

K = load_knowledge()
RULES = list(K.rules.values())


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_rule_fires_on_its_example(rule):
    assert evaluate(rule.when, rule.examples.fires), f"{rule.id} should fire on {rule.examples.fires}"


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_rule_is_quiet_on_its_counter_example(rule):
    assert not evaluate(rule.when, rule.examples.quiet), f"{rule.id} should not fire on {rule.examples.quiet}"


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_rule_names_only_known_facts_and_has_an_effect(rule):
    assert facts_named(rule.when) <= set(FACTS)
    assert set(rule.examples.fires) <= set(FACTS) and set(rule.examples.quiet) <= set(FACTS)
    e = rule.effect
    assert e.reject or e.quality or e.favours or e.disfavours or e.note or e.flags
    if e.versus is not None:
        assert facts_named(e.versus) <= set(FACTS)
        assert e.favours or e.disfavours, "versus only means something for a claim"
    assert rule.rationale.strip() and len(rule.rationale) < 200  # one line


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_risks_are_stated_on_facts_known_before_the_numbers(rule):
    """A quality adjustment changes the quality model, so it may only read facts known before memory, speed
    and quality are computed (the search applies it once per candidate, KV format and runtime)."""
    from advisor.decide.context import STATIC_PREFIXES

    if rule.effect.quality:
        assert all(f.startswith(STATIC_PREFIXES) for f in facts_named(rule.when)), rule.id
        assert rule.effect.quality.basis.strip() and "placeholder" not in rule.effect.quality.basis


@pytest.mark.parametrize("check", list(K.validation.values()), ids=list(K.validation))
def test_validation_conditions_name_known_facts(check):
    assert facts_named(check.when) <= set(FACTS)


def test_operators_and_missing_facts():
    assert evaluate({"fact": "gpu.cc", "op": "lt", "value": 8.9}, {"gpu.cc": 8.0})
    assert not evaluate({"fact": "gpu.cc", "op": "lt", "value": 8.9}, {"gpu.cc": None})  # AMD: no CC
    assert evaluate({"not": {"fact": "gpu.cc", "op": "lt", "value": 8.9}}, {"gpu.cc": None})
    assert evaluate({"fact": "gpu.native", "op": "contains", "value": "fp8"}, {"gpu.native": ["fp8"]})
    assert evaluate({"fact": "kv.id", "op": "in", "value": ["fp8", "int8"]}, {"kv.id": "int8"})
    assert evaluate(
        {"any": [{"fact": "kv.quantized", "op": "truthy"}, {"fact": "gpu.bf16", "op": "falsy"}]},
        {"kv.quantized": False, "gpu.bf16": False},
    )
    assert evaluate({}, {})
    floor = {"fact": "quality.expected_pct", "op": "lt", "value_fact": "request.quality_floor_pct"}
    assert evaluate(floor, {"quality.expected_pct": 97, "request.quality_floor_pct": 99})
    assert not evaluate(floor, {"quality.expected_pct": 97, "request.quality_floor_pct": None})


def test_unknown_facts_and_operators_are_refused():
    with pytest.raises(ConditionError, match="unknown fact"):
        evaluate({"fact": "gpu.colour", "op": "eq", "value": "green"}, {})
    with pytest.raises(ConditionError, match="unknown operator"):
        evaluate({"fact": "gpu.cc", "op": "approx", "value": 9}, {"gpu.cc": 9.0})


def test_adding_a_rule_is_a_yaml_edit(tmp_path):
    import shutil

    import yaml

    from advisor.decide.engine import recommend
    from advisor.intake.request import Request
    from advisor.knowledge import KNOWLEDGE_DIR, load_knowledge_from

    target = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, target)
    data = yaml.safe_load((target / "rules.yaml").read_text())
    data["rows"].append(
        {
            "id": "test-no-awq-on-h100",
            "title": "test rule",
            "rationale": "a test",
            "source": "tests/test_rules.py",
            "when": {
                "all": [
                    {"fact": "gpu.id", "op": "eq", "value": "h100-sxm"},
                    {"fact": "cand.method", "op": "eq", "value": "awq"},
                ]
            },
            "effect": {"reject": "AWQ banned by the test rule"},
            "examples": {
                "fires": {"gpu.id": "h100-sxm", "cand.method": "awq"},
                "quiet": {"gpu.id": "l4", "cand.method": "awq"},
            },
        }
    )
    (target / "rules.yaml").write_text(yaml.safe_dump(data))
    k = load_knowledge_from(target)
    result = recommend(Request(model="meta-llama/Llama-3.1-70B-Instruct", gpu="h100-sxm"), k)
    rejected = {r.candidate: r for r in result.endpoints[0].rejected}
    assert "AWQ banned by the test rule" in [x.text for x in rejected["int4-awq"].reasons]


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_compiled_conditions_agree_with_the_reference_evaluator(rule):
    from advisor.decide.rules import compile_condition

    check = compile_condition(rule.when)
    for facts in (rule.examples.fires, rule.examples.quiet, {}):
        assert check(facts) == evaluate(rule.when, facts)


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_specialised_conditions_agree_with_the_reference_evaluator(rule):
    from advisor.decide.rules import compile_condition, specialize

    for facts in (rule.examples.fires, rule.examples.quiet):
        for fixed in (set(), {k for k in facts if k.split(".")[0] in ("gpu", "request", "endpoint", "model")}, set(facts)):
            known = {k: facts[k] for k in fixed}
            reduced = specialize(rule.when, known)
            got = reduced if isinstance(reduced, bool) else compile_condition(reduced)(facts)
            assert got == evaluate(rule.when, facts), (rule.id, fixed)


def test_endpoints_share_a_rules_verdicts_only_when_it_reduced_to_the_same_condition():
    """A compiled rule is keyed by the condition left after the endpoint's fixed facts (verdicts are shared across
    requests by that key), plus the value of any fixed fact the condition still compares with."""
    from advisor.decide.context import EndpointContext
    from advisor.intake.catalog import resolve_model
    from advisor.intake.request import Endpoint, Request, resolve_gpu, resolve_shape

    k = load_knowledge()
    model = resolve_model(k, "Qwen/Qwen3-32B")

    def keys(**fields) -> dict[str, tuple]:
        workload = fields.pop("workload", "interactive-chat")
        req = Request(model=model.id, gpu="h100-sxm", endpoints=[Endpoint(workload=workload)], **fields)
        ctx = EndpointContext(k, req, model, resolve_gpu(req, k), resolve_shape(req, req.endpoints[0], k))
        return {cr.rule.id: cr.key for cr in ctx.rules}

    chat, support = keys(), keys(workload="customer-support")
    shared = [r for r in chat.keys() & support.keys() if chat[r] == support[r]]
    assert shared  # the two workloads' fixed facts differ, yet most rules reduce to the same condition
    floor95, floor99 = keys(criteria={"quality_floor_pct": 95}), keys(criteria={"quality_floor_pct": 99})
    assert floor95["quality-floor"] != floor99["quality-floor"]  # it still compares with the floor itself

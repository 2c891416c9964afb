"""Reading validation results back (advisor/plan/verify.py) from files in the tools' real formats
(tests/fixtures/results/README.md says where each comes from): pass, fail, a missing baseline, bad files, and
drift between two result sets."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from advisor.errors import AdvisorInputError
from advisor.knowledge import load_knowledge
from advisor.plan.validation import validation_plan
from advisor.plan.verify import MAX_RESULT_BYTES, collect_results, read_results, verify

K = load_knowledge()
RESULTS = Path(__file__).parent / "fixtures" / "results"
PLAN = yaml.safe_load((RESULTS / "plan.yaml").read_text())


def files(run: str, step: str | None = None, kind: str | None = None) -> list[tuple[str, bytes]]:
    out = collect_results(RESULTS / run)
    if step:
        out = [f for f in out if f"/{step}/" in f[0]]
    if kind == "lm_eval":
        out = [f for f in out if "/lm_eval/" in f[0]]
    return out


BASELINE = files("run1", "baseline")
PASS = BASELINE + files("run1", "pick")


def endpoint(out):
    assert len(out["endpoints"]) == 1
    return out["endpoints"][0]


def rows(ep, step, status=None):
    return [c for c in ep["checks"] if c["step"] == step and (status is None or c["status"] == status)]


def all_paths(d, prefix=()):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from all_paths(v, (*prefix, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield from all_paths(v, (*prefix, i))
    else:
        yield prefix, d


# --------------------------------------------------------------------------- pass
def test_a_passing_pick_is_kept():
    out = verify(PLAN, PASS, K)
    ep = endpoint(out)
    assert ep["decision"]["action"] == "keep" and ep["decision"]["step"] == "pick"
    assert ep["steps"] == {"baseline": "pass", "pick": "pass", "fallback": "missing"}
    pick = rows(ep, "pick")
    assert pick and all(c["status"] == "pass" for c in pick)
    checks = {c["check"] for c in pick}
    assert {"task-probes", "perplexity-delta", "prefill-decode-separately", "tail-latency"} <= checks
    mmlu = next(c for c in pick if c.get("task") == "mmlu")
    assert mmlu["value"] == 0.6772 and mmlu["baseline"] == 0.6808 and mmlu["ratio"] == pytest.approx(0.9947, abs=1e-4)
    assert {f["kind"] for f in out["files"]} == {"lm_eval", "guidellm"} and len(out["files"]) == 12


def test_the_returned_plan_is_schema_3_with_measured_beside_modelled_and_loses_nothing():
    before = copy.deepcopy(PLAN)
    out = verify(PLAN, PASS, K)
    assert before == PLAN  # the caller's plan is not touched
    new = out["plan"]
    assert new["schema_version"] == 3 and PLAN["schema_version"] == 2
    new_paths = dict(all_paths(new))
    for path, value in all_paths(PLAN):
        if path != ("schema_version",):
            assert new_paths.get(path, object()) == value, path
    ep = new["endpoints"][0]
    assert ep["decision"]["action"] == "keep" and ep["drift"] == []
    measured = ep["measured"]
    on = measured["validated_on"]
    assert on["runtime"] == "sglang" and on["runtime_version"] == "0.5.23"
    assert on["checkpoint"] == "RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8-dynamic"
    assert on["model_revision"] is None and "revision" in on["model_revision_note"]
    assert on["tools"] == {"lm_eval": ["0.4.13"], "guidellm": ["0.8.1"]}
    pick = measured["steps"]["pick"]
    assert pick["quality"]["mmlu"]["acc,none"] == 0.6772 and pick["samples"]["mmlu"] == 1140
    ttft = pick["vs_model"]["ttft_ms"]
    assert ttft["modelled"] == 130.0 and ttft["measured_p50"] == 139.6 and ttft["within_band"] is True
    tpot = pick["vs_model"]["tpot_ms"]
    assert tpot["modelled"] == 57.39 and tpot["measured_p50"] == 60.1
    assert pick["speed"]["decode"]["e2e_ms"]["p99"] == pytest.approx(17480.0)  # guidellm reports seconds
    base = measured["steps"]["baseline"]
    assert base["vs_model"]["ttft_ms"]["modelled"] == 255.5
    yaml.safe_dump(new)  # plain data, ready for dump()


def test_vllm_bench_results_serve_as_well_as_guidellms():
    out = verify(PLAN, files("run1", kind="lm_eval") + files("vllm"), K)
    ep = endpoint(out)
    assert ep["decision"]["action"] == "keep"
    speed = out["plan"]["endpoints"][0]["measured"]["steps"]["pick"]["speed"]
    assert speed["decode"]["tool"] == "vllm-bench" and speed["decode"]["tpot_ms"]["p50"] == 60.1
    assert speed["prefill"]["concurrency"] == 1 and speed["decode"]["e2e_ms"]["p99"] == 17480.0


# --------------------------------------------------------------------------- fail
def test_a_failing_pick_rolls_back_to_the_fallback():
    ep = endpoint(verify(PLAN, BASELINE + files("fail"), K))
    assert ep["decision"]["action"] == "roll-back" and ep["decision"]["step"] == "fallback"
    assert ep["steps"]["pick"] == "fail"
    failed = {(c["check"], c.get("task") or c["metric"]) for c in rows(ep, "pick", "fail")}
    assert failed == {("task-probes", "mmlu"), ("perplexity-delta", "wikitext"),
                      ("prefill-decode-separately", "tpot_ms p50")}
    mmlu = next(c for c in rows(ep, "pick") if c.get("task") == "mmlu")
    assert mmlu["ratio"] < 0.99 and not mmlu.get("within_noise")
    assert {c["task"] for c in rows(ep, "pick", "pass") if c.get("task")} == {"lambada_openai", "ifeval"}


def test_a_difference_within_the_noise_is_flagged():
    def nudge(name, data):
        if "/mmlu/" not in name:
            return data
        doc = json.loads(data)
        for table in ("results", "groups"):  # lm-eval writes a group's row in both
            doc[table]["mmlu"]["acc,none"] = 0.6700  # 98.4% of baseline: below 99%, inside 2 standard errors
        return json.dumps(doc).encode()

    ep = endpoint(verify(PLAN, BASELINE + [(n, nudge(n, d)) for n, d in files("run1", "pick")], K))
    mmlu = next(c for c in rows(ep, "pick") if c.get("task") == "mmlu")
    assert mmlu["status"] == "fail" and mmlu["within_noise"] and "higher --limit" in mmlu["why"]


def test_a_missed_latency_target_fails_the_pick():
    plan = copy.deepcopy(PLAN)
    plan["request"]["criteria"]["max_tpot_ms"] = 50.0
    ep = endpoint(verify(plan, PASS, K))
    target = next(c for c in rows(ep, "pick") if c["check"] == "target-tpot")
    assert target["status"] == "fail" and target["value"] == 60.1 and target["target"] == 50.0
    assert ep["decision"]["action"] == "roll-back"


# --------------------------------------------------------------------------- missing baseline, next step
def test_a_missing_baseline_is_measured_first():
    ep = endpoint(verify(PLAN, files("run1", "pick"), K))
    assert ep["decision"] == {"action": "re-measure-baseline", "step": "baseline",
                              "why": ep["decision"]["why"]}
    assert ep["steps"]["baseline"] == "missing"
    assert all(c["status"] == "missing" for c in rows(ep, "pick") if c["check"] != "target-ttft")


def test_a_baseline_without_a_probe_the_pick_has_is_remeasured():
    base = [f for f in BASELINE if "/wikitext/" not in f[0]]
    ep = endpoint(verify(PLAN, base + files("run1", "pick"), K))
    assert ep["decision"]["action"] == "re-measure-baseline" and "wikitext" in ep["decision"]["why"]


def test_after_a_passing_step_the_next_step_down_is_tried():
    plan = copy.deepcopy(PLAN)
    ladder = plan["endpoints"][0]["ladder"]
    ladder.insert(1, {**copy.deepcopy(ladder[1]), "role": "step", "notation": "W8A8-INT8 KV-BF16",
                      "candidate": "int8-w8a8", "runtime": "vllm", "note": "8-bit step: measure it before going lower"})
    step1 = [(n.replace("/pick/", "/step-1/"), d.replace(b"default-pick", b"default-step-1")
              .replace(b'"step": "pick"', b'"step": "step-1"').replace(b"/pick/", b"/step-1/"))
             for n, d in files("run1", "pick")]
    ep = endpoint(verify(plan, BASELINE + step1, K))
    assert ep["steps"]["step-1"] == "pass" and ep["steps"]["pick"] == "missing"
    assert ep["decision"]["action"] == "try-next-step" and ep["decision"]["step"] == "pick"


def test_a_fallback_the_ladder_already_serves_shares_its_results():
    plan = copy.deepcopy(PLAN)
    ep_plan = plan["endpoints"][0]
    ep_plan["fallback"]["notation"] = ep_plan["recommendation"]["notation"]  # the same configuration as the pick
    ep = endpoint(verify(plan, PASS, K))
    assert ep["steps"]["fallback"] == "pass" and ep["decision"]["action"] == "keep"
    measured = verify(plan, PASS, K)["plan"]["endpoints"][0]["measured"]["steps"]
    assert measured["fallback"]["quality"] == measured["pick"]["quality"]
    assert set(measured["pick"]["quality"]) == {"mmlu", "lambada_openai", "ifeval", "wikitext"}  # no subtasks


def test_unequal_sample_counts_are_not_compared():
    def more(name, data):
        if "/lambada/" not in name:
            return data
        doc = json.loads(data)
        doc["n-samples"]["lambada_openai"]["effective"] = 500
        return json.dumps(doc).encode()

    ep = endpoint(verify(PLAN, BASELINE + [(n, more(n, d)) for n, d in files("run1", "pick")], K))
    lam = next(c for c in rows(ep, "pick") if c.get("task") == "lambada_openai")
    assert lam["status"] == "missing" and "same --limit" in lam["why"]
    assert ep["decision"]["action"] == "finish-measuring"


# --------------------------------------------------------------------------- identifying files
def test_a_file_served_under_the_model_id_is_placed_by_its_path():
    name, data = next(f for f in files("run1", "pick") if "/mmlu/" in f[0])
    doc = json.loads(data)
    doc["model_name"] = "meta-llama/Llama-3.1-8B-Instruct"
    doc["config"]["model_args"]["model"] = "meta-llama/Llama-3.1-8B-Instruct"
    out = verify(PLAN, BASELINE + [("runs/default/pick/lm_eval/mmlu/results.json", json.dumps(doc).encode())], K)
    assert out["files"][-1]["endpoint"] == "default" and out["files"][-1]["step"] == "pick"


def test_a_string_model_args_names_the_step_too():
    name, data = next(f for f in files("run1", "pick") if "/mmlu/" in f[0])
    doc = json.loads(data)
    doc["config"]["model_args"] = "model=default-pick,base_url=http://127.0.0.1:8000/v1/completions"
    doc.pop("model_name")
    out = verify(PLAN, BASELINE + [("mmlu.json", json.dumps(doc).encode())], K)
    assert out["files"][-1]["step"] == "pick"


# --------------------------------------------------------------------------- bad files
@pytest.mark.parametrize(("name", "needle"), [
    ("not-json.json", "is not JSON"),
    ("other-model.json", "another model, 'Llama-3.3-70B-Instruct-pick'"),
    ("no-tasks.json", "none of the tasks this plan asks default/pick for"),
    ("wrong-format.json", "not a guidellm 0.8 report"),
])
def test_a_bad_result_file_gets_one_error_naming_it(name, needle):
    bad = read_results([RESULTS / "bad" / name])
    with pytest.raises(AdvisorInputError) as err:
        verify(PLAN, PASS + bad, K)
    text = str(err.value)
    assert name in text and needle in text and "\n" not in text


@pytest.mark.parametrize(("data", "needle"), [
    (b"[1, 2, 3]", "not an object"),
    (b'{"hello": "world"}', "is not an lm-eval results file, a guidellm report or a vllm bench serve result"),
    (b"\xff\xfe\x00garbage", "is not"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (json.dumps({"results": {"mmlu": 5}, "versions": {}}).encode(), "not a mapping of metrics"),
    (json.dumps({"results": {}, "versions": {}}).encode(), "no task results"),
    (json.dumps({"model_id": "default-pick", "median_ttft_ms": None, "completed": 3}).encode(), "no ttft"),
])
def test_malformed_contents_are_refused_by_name(data, needle):
    with pytest.raises(AdvisorInputError) as err:
        verify(PLAN, PASS + [("results/default/pick/odd.json", data)], K)
    assert "odd.json" in str(err.value) and needle in str(err.value)


def test_oversized_files_are_refused_and_reads_are_bounded(tmp_path):
    big = tmp_path / "default" / "pick" / "guidellm-decode.json"
    big.parent.mkdir(parents=True)
    with big.open("wb") as fh:
        fh.truncate(MAX_RESULT_BYTES * 3)  # sparse: 60 MB on paper
    (name, data), = read_results([big])
    assert len(data) == MAX_RESULT_BYTES + 1
    with pytest.raises(AdvisorInputError, match="over 20 MB"):
        verify(PLAN, PASS + [(name, data)], K)


def test_a_speed_file_that_says_neither_phase_is_refused():
    name, data = next(f for f in files("vllm", "pick") if "decode" in f[0])
    doc = json.loads(data)
    doc.pop("phase")
    doc.pop("total_output_tokens")
    with pytest.raises(AdvisorInputError, match="neither the prefill run"):
        verify(PLAN, PASS + [("elsewhere/x.json", json.dumps(doc).encode())], K)


def test_a_file_with_no_identity_is_refused():
    name, data = next(f for f in files("run1", "pick") if "/mmlu/" in f[0])
    doc = json.loads(data)
    doc.pop("model_name")
    doc["config"]["model_args"].pop("model")
    with pytest.raises(AdvisorInputError, match="which endpoint and step"):
        verify(PLAN, [("somewhere/results.json", json.dumps(doc).encode())], K)


def test_not_a_plan_is_refused():
    with pytest.raises(AdvisorInputError, match="plan"):
        verify({"request": {}}, PASS, K)
    with pytest.raises(AdvisorInputError, match="pair"):
        verify(PLAN, [("x.json",)], K)


# --------------------------------------------------------------------------- drift
def test_a_second_result_set_is_compared_with_the_first():
    first = verify(PLAN, PASS, K)
    second = verify(first["plan"], BASELINE + files("run2"), K)
    ep = endpoint(second)
    assert ep["decision"]["action"] == "keep"  # still faster than the baseline
    drifted = {(d["step"], d["metric"]) for d in ep["drift"] if d["drifted"]}
    assert ("pick", "speed prefill ttft_ms p50") in drifted
    ttft = next(d for d in ep["drift"] if d["metric"] == "speed prefill ttft_ms p50" and d["step"] == "pick")
    assert ttft["before"] == 139.6 and ttft["after"] == 175.2 and ttft["change"] == pytest.approx(0.255, abs=1e-3)
    assert not any(d["drifted"] for d in ep["drift"] if d["metric"].startswith("quality"))
    assert not any(d["drifted"] for d in ep["drift"] if d["step"] == "baseline")
    assert ep["drifted"] is True
    new = second["plan"]["endpoints"][0]
    assert new["drift"] == ep["drift"]
    assert new["measured"]["steps"]["pick"]["speed"]["prefill"]["ttft_ms"]["p50"] == 175.2
    history = new["measured"]["history"]
    assert len(history) == 1 and history[0]["steps"]["pick"]["speed"]["prefill"]["ttft_ms"]["p50"] == 139.6
    third = verify(second["plan"], PASS, K)
    assert len(third["plan"]["endpoints"][0]["measured"]["history"]) == 2


def test_a_runtime_change_between_result_sets_is_flagged():
    first = verify(PLAN, PASS, K)
    plan = copy.deepcopy(first["plan"])
    plan["endpoints"][0]["deployment"]["runtime_version"] = "0.6.0"
    ep = endpoint(verify(plan, PASS, K))
    change = next(d for d in ep["drift"] if d["metric"] == "runtime_version")
    assert change["before"] == "0.5.23" and change["after"] == "0.6.0" and change["drifted"]


def test_the_tolerances_are_knowledge_rows_with_their_basis():
    """The verdict's three tolerances come from knowledge/decision.yaml, so a team can change them in one place."""
    for name in ("verify-speed-noise-pct", "verify-speed-drift-pct", "verify-quality-noise-stderr"):
        row = K.decision[name]
        assert row.value > 0 and row.meaning and row.sources
    speed_rules = [r for ep in validation_plan(PLAN, K)["endpoints"]
                   for s in ep["steps"] for r in s["thresholds"] if r["check"] == "prefill-decode-separately"]
    noise = K.decision["verify-speed-noise-pct"].value
    assert speed_rules and all(r["max_ratio"] == pytest.approx(1 + noise / 100) for r in speed_rules)
    assert all(f"+{noise:g}% for noise" in r["basis"] for r in speed_rules)
    # a looser drift tolerance: the same second result set no longer drifts on speed
    looser = K.model_copy(update={"decision": {**K.decision, "verify-speed-drift-pct": K.decision[
        "verify-speed-drift-pct"].model_copy(update={"value": 50})}})
    first = verify(PLAN, PASS, looser)
    second = verify(first["plan"], BASELINE + files("run2"), looser)
    assert not any(d["drifted"] for d in endpoint(second)["drift"] if d["metric"].startswith("speed"))

"""The validation runs (advisor/plan/validation.py): every generated lm-eval command parses with lm-eval's own
argument parser and names tasks and metrics lm-eval has; the guidellm and vllm bench serve commands match those
tools' flags as read from their wheels (tests/fixtures/tool_flags.json; their parsers need torch); the script is
valid bash, runs each command exactly as the structured form lists it, and no plan text can inject a command."""

from __future__ import annotations

import argparse
import ast
import copy
import json
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from advisor import plan as plan_mod
from advisor.intake.request import Endpoint, Request, SuccessCriteria
from advisor.knowledge import load_knowledge
from advisor.plan import validation as V

K = load_knowledge()
FIXTURES = Path(__file__).parent / "fixtures"
FLAGS = json.loads((FIXTURES / "tool_flags.json").read_text())
FROZEN = yaml.safe_load((FIXTURES / "results" / "plan.yaml").read_text())

REQUESTS = {
    "chat-l4": Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="l4",
                       endpoints=[Endpoint(name="chat", workload="interactive-chat")]),
    "code-agent-a100": Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="a100-80gb",
                               endpoints=[Endpoint(name="code", workload="code-generation"),
                                          Endpoint(name="agent", workload="agent-tool-calling"),
                                          Endpoint(name="reason", workload="reasoning-critical")]),
    "rag-70b": Request(model="meta-llama/Llama-3.1-70B-Instruct", gpu="h100-sxm", gpus=2,
                       criteria=SuccessCriteria(unacceptable=["long-context-drift", "structured-output-errors"],
                                                max_tpot_ms=80, max_ttft_ms=4000, quality_floor_pct=99),
                       endpoints=[Endpoint(name="rag", workload="long-context-rag")]),
    "llamacpp-ladder": Request(model="Qwen/Qwen2.5-7B-Instruct", gpu="rtx-4090", runtime="llama.cpp",
                               endpoints=[Endpoint(name="chat", workload="interactive-chat")]),
}


@pytest.fixture(scope="module")
def plans():
    out = {"frozen": FROZEN}
    for key, req in REQUESTS.items():
        out[key] = plan_mod.build(req, K)
    return out


def all_commands(vplan):
    for ep in vplan["endpoints"]:
        for step in ep["steps"]:
            for q in step["quality"]:
                yield ep, step, "lm_eval", q, q["command"]
            for run in step["speed"]:
                yield ep, step, "guidellm", run, run["guidellm"]
                yield ep, step, "vllm-bench", run, run["vllm_bench"]


# --------------------------------------------------------------------------- lm-eval: its own parser
lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is pinned in requirements-dev.txt")


@pytest.fixture(scope="module")
def task_manager():
    from lm_eval.tasks import TaskManager

    return TaskManager()  # indexes lm-eval's task YAML once (about 15 s)


def parse_lm_eval(argv, monkeypatch):
    from lm_eval._cli.harness import HarnessCLI
    from lm_eval.config.evaluate_config import EvaluatorConfig

    assert argv[:2] == ["lm_eval", "run"]
    monkeypatch.setattr(sys, "argv", list(argv))
    ns = HarnessCLI().parse_args()
    return ns, EvaluatorConfig.from_cli(ns)


def leaf_config(tm, task):
    from lm_eval.tasks._yaml_loader import load_yaml

    name = "mmlu_anatomy" if task == "mmlu" else task  # a group: its subjects share one template
    entry = tm.task_index[name]
    return load_yaml(entry.yaml_path, resolve_func=False, recursive=True)


def test_lm_eval_commands_parse_with_lm_evals_parser_and_name_real_tasks(plans, task_manager, monkeypatch):
    seen = 0
    for key, p in plans.items():
        for ep, step, tool, probe, cmd in all_commands(V.validation_plan(p, K)):
            if tool != "lm_eval":
                continue
            seen += 1
            ns, cfg = parse_lm_eval(cmd["argv"], monkeypatch)
            assert ns.command == "run"
            args = cfg.model_args
            assert args["model"] == f"{ep['slug']}-{step['id']}" == step["served_model_name"]
            assert args["tokenized_requests"] is False and args["num_concurrent"] >= 1
            chat = cfg.model == "local-chat-completions"
            assert cfg.model in ("local-completions", "local-chat-completions"), key
            assert args["base_url"] == "http://127.0.0.1:8000/v1/" + ("chat/completions" if chat else "completions")
            assert bool(cfg.apply_chat_template) == chat
            assert cfg.output_path == f"results/{ep['slug']}/{step['id']}/lm_eval/{probe['probe']}"
            for task in cfg.tasks:
                assert task_manager.match_tasks([task]) == [task], f"{task} is not an lm-eval {V.LM_EVAL_VERSION} task"
                conf = leaf_config(task_manager, task)
                if chat:  # chat completions cannot score log-likelihoods
                    assert conf["output_type"] == "generate_until", task
                if conf.get("unsafe_code"):
                    assert cfg.confirm_run_unsafe_code and cmd["env"].get("HF_ALLOW_CODE_EVAL") == "1"
                names = [str(m["metric"]) for m in conf.get("metric_list", [])]
                filters = {"none"} | {f["name"] for f in conf.get("filter_list") or []}
                for metric_key in probe["metrics"][task]:
                    metric, _, filt = metric_key.partition(",")
                    assert filt in filters, (task, metric_key)
                    assert any(n == metric or n.endswith("." + metric) or (metric == "pass@1" and
                               n.endswith(".pass_at_k")) for n in names), (task, metric_key, names)
            if probe["probe"].startswith("niah"):
                assert args["tokenizer"] and cfg.metadata["max_seq_lengths"][0] <= ep["shape"]["context"]
            if cfg.limit is not None:
                assert cfg.limit == probe["limit"]
    assert seen > 40


def test_lm_eval_optional_log_samples_parses_too(monkeypatch):
    cmd = V.validation_plan(FROZEN, K)["endpoints"][0]["steps"][0]["quality"][0]["command"]
    ns, cfg = parse_lm_eval(cmd["argv"] + ["--log_samples"], monkeypatch)
    assert cfg.log_samples and cfg.output_path


# --------------------------------------------------------------------------- guidellm: documented flags
GL = FLAGS["guidellm"]


def parse_guidellm(argv):
    """guidellm run's options as guidellm 0.8.1 declares them: each registry option one key=value string with a
    registered kind and only that kind's fields."""
    assert argv[: len(GL["command"])] == GL["command"]
    names = {}
    for opt, spec in GL["options"].items():
        for n in [opt, *spec.get("aliases", [])]:
            names[n] = (opt, spec)
    got: dict[str, list] = {}
    rest = argv[len(GL["command"]):]
    i = 0
    while i < len(rest):
        opt, spec = names[rest[i]]  # KeyError: a flag guidellm does not have
        n = spec["takes_value"]
        n = 1 if n is True else 0 if n is False else n
        values = rest[i + 1: i + 1 + n]
        assert len(values) == n and not any(v.startswith("--") for v in values), rest[i]
        assert spec.get("multiple") or opt not in got, f"{opt} given twice"
        got.setdefault(opt, []).append(values)
        i += 1 + n
    for opt, spec in GL["options"].items():
        if spec.get("required"):
            assert opt in got, f"{opt} is required"
        if "registry" not in spec:
            continue
        for (value,) in got.get(opt, []):
            pairs = dict(kv.split("=", 1) for kv in value.split(","))
            kinds = GL["registries"][spec["registry"]]["kinds"]
            assert pairs.get("kind") in kinds, (opt, value)
            fields = GL["fields"][pairs["kind"]]
            allowed = set(fields) | {a for f in fields.values() for a in f.get("aliases", [])}
            assert set(pairs) <= allowed, (opt, set(pairs) - allowed)
            missing = [f for f, info in fields.items() if info["required"] and f not in pairs]
            assert not missing, (opt, missing)
    for (label,) in got.get("--label", []):
        assert "=" in label
    return {opt: [dict(kv.split("=", 1) for kv in v[0].split(",")) if "registry" in GL["options"][opt] else v
                  for v in vals] for opt, vals in got.items()}


def test_guidellm_commands_match_guidellm_0_8_1_flags(plans):
    seen = 0
    for p in plans.values():
        for ep, step, tool, run, cmd in all_commands(V.validation_plan(p, K)):
            if tool != "guidellm":
                continue
            seen += 1
            opts = parse_guidellm(cmd["argv"])
            backend = opts["--backend"][0]
            assert backend["target"] == "http://127.0.0.1:8000" and backend["model"] == step["served_model_name"]
            assert opts["--profile"][0] == {"kind": "concurrent", "streams": str(run["concurrency"])}
            data = opts["--data"][0]
            assert int(data["prompt_tokens"]) == ep["shape"]["prompt_tokens"]
            assert int(data["output_tokens"]) == (1 if run["phase"] == "prefill" else ep["shape"]["output_tokens"])
            assert opts["--output"][0]["path"] == f"results/{ep['slug']}/{step['id']}/guidellm-{run['phase']}.json"
            assert opts["--metrics"][0]["sample_size"] == "0"  # keeps the report small (verify reads <= 20 MB)
            assert {c["kind"] for c in opts["--constraint"]} == {"max_requests", "max_duration"}
    assert seen > 10


def test_guidellm_check_rejects_the_old_0_4_flags():
    with pytest.raises(KeyError):
        parse_guidellm(["guidellm", "run", "--target", "http://localhost:8000", "--rate-type", "concurrent"])
    with pytest.raises(AssertionError):
        parse_guidellm(["guidellm", "run", "--profile", "kind=concurrent,rate=4", "--data",
                        "kind=synthetic_text,prompt_tokens=8"])


# --------------------------------------------------------------------------- vllm bench serve: documented flags
def vllm_parser():
    parser = argparse.ArgumentParser(prog="vllm bench serve", exit_on_error=False)
    types = {"int": int, "float": float}
    for flag in FLAGS["vllm_bench_serve"]["flags"]:
        kw = {}
        if flag["action"] == "store_true":
            kw["action"] = "store_true"
        elif flag["action"] == "boolean_optional":
            kw["action"] = argparse.BooleanOptionalAction
        else:
            if "nargs" in flag:
                kw["nargs"] = flag["nargs"]
            if flag.get("type") in types:
                kw["type"] = types[flag["type"]]
            if "choices" in flag:
                kw["choices"] = flag["choices"]
        parser.add_argument(*flag["names"], **kw)
    return parser


def test_vllm_bench_commands_match_vllm_0_33_flags(plans):
    parser = vllm_parser()
    seen = 0
    for p in plans.values():
        for ep, step, tool, run, cmd in all_commands(V.validation_plan(p, K)):
            if tool != "vllm-bench":
                continue
            seen += 1
            argv = cmd["argv"]
            assert argv[:3] == ["vllm", "bench", "serve"]
            args = parser.parse_args(argv[3:])
            assert args.model == step["served_model_name"] and args.tokenizer
            assert args.dataset_name == "random" and args.backend == "openai" and args.save_result
            assert args.random_input_len == ep["shape"]["prompt_tokens"]
            assert args.random_output_len == (1 if run["phase"] == "prefill" else ep["shape"]["output_tokens"])
            assert args.max_concurrency == run["concurrency"] and args.ignore_eos
            assert set(args.percentile_metrics.split(",")) >= {"ttft", "tpot", "e2el"}
            assert "99" in args.metric_percentiles.split(",")
            assert args.result_dir == f"results/{ep['slug']}/{step['id']}"
            assert args.result_filename == f"vllm-bench-{run['phase']}.json"
            assert f"step={step['id']}" in args.metadata
    assert seen > 10
    with pytest.raises(argparse.ArgumentError):
        parser.parse_args(["--random-input-len", "many"])


# --------------------------------------------------------------------------- the structured form
def test_every_ladder_step_and_the_fallback_are_listed(plans):
    vp = V.validation_plan(plans["llamacpp-ladder"], K)
    steps = vp["endpoints"][0]["steps"]
    assert [s["id"] for s in steps][:3] == ["baseline", "step-1", "pick"]
    assert steps[-1]["id"] == "fallback"
    assert all(s["served_model_name"] == f"chat-{s['id']}" for s in steps)
    pick = next(s for s in steps if s["id"] == "pick")
    assert pick["serve"]["from"] == "plan"
    assert pick["serve"]["argv"] == shlex.split(plans["llamacpp-ladder"]["endpoints"][0]["runtime"]["serve_command"])
    assert pick["serve"]["server_flags"][:2] == ["--alias", "chat-pick"]
    # a GGUF step: the plan names no checkpoint, so no runnable command is made up for it
    step1 = steps[1]
    assert step1["serve"]["available"] is False and "{checkpoint}" in step1["serve"]["template"]
    assert "SERVE_1_STEP_1" in step1["serve"]["note"]


def test_the_baseline_command_comes_from_the_runtime_template_when_the_plan_names_everything():
    steps = V.validation_plan(FROZEN, K)["endpoints"][0]["steps"]
    base = steps[0]
    assert base["id"] == "baseline" and base["serve"]["from"] == "template"
    assert base["serve"]["argv"] == ["vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "1280",
                                     "--max-num-seqs", "16"]
    assert "not an engine output" in base["serve"]["note"]
    fallback = steps[-1]
    assert fallback["id"] == "fallback" and not fallback["serve"]["available"]


def test_probes_follow_the_workload_and_the_unacceptable_failure_modes(plans):
    by_name = {ep["endpoint"]: ep for ep in V.validation_plan(plans["code-agent-a100"], K)["endpoints"]}
    probes = {name: {q["probe"] for q in ep["steps"][0]["quality"]} for name, ep in by_name.items()}
    assert {"code", "gsm8k", "wikitext"} <= probes["code"]
    assert {"jsonschema", "gsm8k"} <= probes["agent"]
    assert "gsm8k" in probes["reason"]
    assert any(n["id"] == "tool-call-validity" for n in by_name["agent"]["not_automated"])
    rag = V.validation_plan(plans["rag-70b"], K)["endpoints"][0]
    quality = {q["probe"] for q in rag["steps"][0]["quality"]}
    assert {"niah-4096", "niah-16384", "jsonschema"} <= quality and rag["niah_lengths"][-1] <= rag["shape"]["context"]
    checks = {t["check"] for t in rag["steps"][-1]["thresholds"]}
    assert {"target-ttft", "target-tpot", "long-context-faithfulness", "tail-latency"} <= checks
    pick = next(s for s in rag["steps"] if s["id"] == "pick")
    floor = next(t for t in pick["thresholds"] if t["check"] == "task-probes")
    assert floor["min_ratio"] == 0.99  # the request's 99% floor, or the 8-bit rule
    if pick["weight_bits"] < 8:
        assert "quality floor" in floor["basis"]


def test_short_contexts_run_probes_zero_shot_and_cap_answers():
    ep = V.validation_plan(FROZEN, K)["endpoints"][0]
    argv = {q["probe"]: q["command"]["argv"] for q in ep["steps"][0]["quality"]}
    assert argv["mmlu"][argv["mmlu"].index("--num_fewshot") + 1] == "0"
    assert argv["ifeval"][argv["ifeval"].index("--gen_kwargs") + 1] == "max_gen_toks=640"
    assert any("few-shot" in n for n in ep["notes"])
    assert any(n["id"] == "long-context-faithfulness" for n in ep["not_automated"])  # 1,280 < RULER's 4,096


def test_thresholds_say_what_knowledge_validation_says():
    """The numbers the checks use are the ones knowledge/validation.yaml states in prose."""
    prose = {c.id: c.threshold for c in K.validation.values()}
    assert "99%" in prose["task-probes"] and "98%" in prose["task-probes"]
    assert "+0.1" in prose["perplexity-delta"] and "+0.5" in prose["perplexity-delta"]
    assert "+1.0" in prose["perplexity-delta"]
    assert "1.2x" in prose["tail-latency"] and "1 point" in prose["long-context-faithfulness"]
    assert "99.5%" in prose["structured-output"] and "99%" in prose["multi-step-reasoning"]
    assert "98%" in prose["code-pass-rate"]
    rules = {(t["check"], t.get("probe")): t for t in V.validation_plan(FROZEN, K)["endpoints"][0]["steps"][1]
             ["thresholds"]}
    assert rules[("task-probes", "mmlu")]["min_ratio"] == 0.99  # the pick is 8-bit
    assert rules[("perplexity-delta", "wikitext")]["max_increase"] == 0.1
    assert rules[("tail-latency", "decode")]["max_ratio"] == 1.2
    assert rules[("task-probes", "mmlu")]["plan_threshold"] == FROZEN["endpoints"][0]["validation"][2]["threshold"]


# --------------------------------------------------------------------------- the script
STUB = r"""#!/usr/bin/env python3
import os, sys, time
with open(os.environ["STUB_LOG"], "a") as f:
    f.write(repr([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\n")
if os.path.basename(sys.argv[0]) in ("python", "llama-server", "trtllm-serve", "text-generation-launcher") or \
        sys.argv[1:2] == ["serve"]:
    open(os.environ["STUB_LOG"] + ".ready", "w").close()  # the health route answers from now on
    time.sleep(120)
"""
CURL = """#!/bin/sh
# the server stub's health route: answers once the server has started
for _ in $(seq 1 100); do
  if [ -e "$STUB_LOG.ready" ]; then rm -f "$STUB_LOG.ready"; exit 0; fi
  sleep 0.1
done
exit 7
"""


def run_script(tmp_path, script, env_extra):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("lm_eval", "guidellm", "vllm", "python", "llama-server", "trtllm-serve", "text-generation-launcher"):
        path = bin_dir / name
        path.write_text(STUB.replace("#!/usr/bin/env python3", f"#!{sys.executable}"))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    curl = bin_dir / "curl"
    curl.write_text(CURL)
    curl.chmod(0o755)
    (tmp_path / "validate.sh").write_text(script)
    log = tmp_path / "calls.log"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "STUB_LOG": str(log), "HOME": str(tmp_path), **env_extra}
    proc = subprocess.run(["bash", str(tmp_path / "validate.sh")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    calls = [ast.literal_eval(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, calls


def expected_calls(vplan, tool_key):
    out = []
    for ep in vplan["endpoints"]:
        for step in ep["steps"]:
            if not step["serve"]["available"] or step["same_as"]:
                continue
            out.append(step["serve"]["argv"] + step["serve"]["server_flags"])
            out += [q["command"]["argv"] for q in step["quality"]]
            out += [r[tool_key]["argv"] for r in step["speed"]]
    return out


def test_bash_syntax_of_every_script(plans, tmp_path):
    for key, p in plans.items():
        path = tmp_path / f"{key}.sh"
        path.write_text(V.validate_script(p, K))
        proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, (key, proc.stderr)


@pytest.mark.parametrize("speed_tool", ["guidellm", "vllm"])
def test_the_script_runs_each_command_exactly_as_listed(tmp_path, speed_tool):
    vp = V.validation_plan(FROZEN, K)
    proc, calls = run_script(tmp_path, V.validate_script(FROZEN, K), {"SPEED_TOOL": speed_tool})
    assert proc.returncode == 0, proc.stderr
    want = expected_calls(vp, "guidellm" if speed_tool == "guidellm" else "vllm_bench")
    assert calls == want
    assert "default/fallback: skipped" in proc.stderr
    assert (tmp_path / "results" / "default" / "pick" / "server.log").exists()


def test_settings_come_from_the_environment(tmp_path):
    env = {"HOST": "10.9.8.7", "PORT": "9001", "RESULTS": "out dir", "STEPS": "default/pick", "SKIP_SPEED": "1",
           "LOG_SAMPLES": "1", "SERVE_1_PICK": "vllm serve ./my-checkpoint", "LM_EVAL": "lm_eval"}
    proc, calls = run_script(tmp_path, V.validate_script(FROZEN, K), env)
    assert proc.returncode == 0, proc.stderr
    assert calls[0][:3] == ["vllm", "serve", "./my-checkpoint"] and calls[0][-4:] == ["--host", "10.9.8.7",
                                                                                        "--port", "9001"]
    lm = [c for c in calls if c[0] == "lm_eval"]
    assert len(lm) == 4 and all(c[-1] == "--log_samples" for c in lm)
    assert "base_url=http://10.9.8.7:9001/v1/completions" in lm[0][5]
    assert lm[0][lm[0].index("--output_path") + 1] == "out dir/default/pick/lm_eval/mmlu"
    assert not [c for c in calls if c[0] == "guidellm"]


def hostile_plan():
    p = copy.deepcopy(FROZEN)
    evil = "x'; touch CANARY1; echo '$(touch CANARY2)`touch CANARY3`\n touch CANARY4 \u2028 ${HOME}"
    p["model"]["id"] = evil
    p["request"]["model"] = evil
    ep = p["endpoints"][0]
    ep["name"] = evil
    ep["summary"] = evil
    ep["ladder"][0]["note"] = evil
    ep["ladder"][0]["notation"] = evil
    ep["runtime"]["serve_command"] = f"vllm serve {shlex.quote(evil)} --max-model-len 1280 $(touch CANARY5)"
    ep["runtime"]["config_file"] = "../../CANARY6"
    ep["runtime"]["config"] = "x: 1\nEOF\n$(touch CANARY7)\n"
    ep["validation"][2]["threshold"] = evil
    return p


def test_plan_text_cannot_inject_commands(tmp_path):
    p = hostile_plan()
    script = V.validate_script(p, K)
    vp = V.validation_plan(p, K)
    assert vp["variables"]["TOKENIZER"] == "<set TOKENIZER>"  # not a Hugging Face repo id, so not used
    proc, calls = run_script(tmp_path, script, {"TOKENIZER": "meta-llama/Llama-3.1-8B-Instruct"})
    assert proc.returncode == 0, proc.stderr
    assert not list(tmp_path.rglob("CANARY*")) and not list(tmp_path.parent.rglob("CANARY*"))
    serve = next(c for c in calls if c[:2] == ["vllm", "serve"])
    assert serve[2] == p["model"]["id"]  # the hostile text arrives as one plain argument
    assert serve[5:7] == ["$(touch", "CANARY5)"]
    slug = vp["endpoints"][0]["slug"]
    assert all(ch.isalnum() or ch in "._-" for ch in slug)
    for line in script.splitlines():
        assert "\u2028" not in line


def test_without_a_tokenizer_the_script_stops_early(tmp_path):
    proc, calls = run_script(tmp_path, V.validate_script(hostile_plan(), K), {})
    assert proc.returncode == 2 and "TOKENIZER" in proc.stderr and calls == []


def test_runtimes_the_script_cannot_start_are_served_externally(tmp_path):
    p = copy.deepcopy(FROZEN)
    p["endpoints"][0]["ladder"][0]["runtime"] = "transformers"
    vp = V.validation_plan(p, K)
    base = vp["endpoints"][0]["steps"][0]
    assert base["serve"]["server_flags"] is None and "external" in base["serve"]["note"]
    proc, calls = run_script(tmp_path, V.validate_script(p, K), {"STEPS": "default/baseline",
                                                                 "SERVE_1_BASELINE": "external"})
    assert proc.returncode == 0, proc.stderr
    assert calls and calls[0][0] == "lm_eval"  # no server started; the probes run against $HOST:$PORT


def test_endpoints_without_a_pick_are_skipped():
    p = copy.deepcopy(FROZEN)
    p["endpoints"][0].pop("recommendation")
    vp = V.validation_plan(p, K)
    assert vp["endpoints"][0]["skipped"] and vp["endpoints"][0]["steps"] == []
    assert "nothing to validate" in V.validate_script(p, K)


def test_tool_pins_match_requirements_dev():
    text = (Path(__file__).parent.parent / "requirements-dev.txt").read_text()
    assert f"lm-eval=={V.LM_EVAL_VERSION}" in text

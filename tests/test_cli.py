"""The CLI contract: `python -m advisor estimate|list`, outputs, and one-line errors with exit 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from advisor.cli import main
from advisor.knowledge import load_knowledge

K = load_knowledge()
ROOT = Path(__file__).resolve().parent.parent
DONE_WHEN = [
    "estimate",
    "--model",
    "meta-llama/Llama-3.1-70B-Instruct",
    "--weights",
    "int4-awq",
    "--kv",
    "fp8",
    "--context",
    "32768",
    "--concurrency",
    "8",
    "--gpu",
    "a100-80gb",
]


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_done_when_command_prints_a_clear_breakdown(capsys):
    status, out, err = run(capsys, *DONE_WHEN, "--format", "table")
    assert status == 0 and err == ""
    for needle in [
        "Llama 3.1 70B",
        "int4-awq",
        "attention",
        "mlp",
        "lm_head",
        "KV cache",
        "overhead",
        "capacity",
        "Most sequences at 32,768 tokens",
        "Longest context for 8 sequences",
        "Assumptions:",
        "Sources:",
        "GiB",
        "GB (decimal)",
        "Against BF16",
    ]:
        assert needle in out, needle
    assert ("FITS" in out) != ("DOES NOT FIT" in out)


def test_json_output_has_the_contract_fields(capsys):
    status, out, _ = run(capsys, *DONE_WHEN, "--format", "json")
    data = json.loads(out)
    for key in [
        "weights_bytes",
        "kv_cache_bytes",
        "overhead_bytes",
        "total_bytes",
        "params_total",
        "params_active",
        "capacity_bytes",
        "fits",
        "max_concurrency",
        "max_context",
        "modules",
    ]:
        assert key in data, key
    assert data["total_bytes"] == data["weights_bytes_per_gpu"] + data["kv_cache_bytes"] + data["overhead_bytes"]
    assert data["kv_cache_bytes"] == 8 * 32768 * 80 * 2 * 8 * 128  # FP8: one byte per element
    assert {m["group"] for m in data["modules"]} == {"embedding", "attention", "mlp", "norms", "lm_head"}


def test_yaml_output_parses_and_matches_json(capsys):
    _, as_yaml, _ = run(capsys, *DONE_WHEN, "--format", "yaml")
    _, as_json, _ = run(capsys, *DONE_WHEN, "--format", "json")
    assert yaml.safe_load(as_yaml) == json.loads(as_json)


def test_defaults(capsys):
    _, out, _ = run(capsys, "estimate", "--model", "Llama-3.1-8B-Instruct", "--weights", "bf16", "--format", "json")
    data = json.loads(out)
    assert (data["kv_format"], data["context"], data["concurrency"], data["gpus"]) == ("bf16", 4096, 1, 1)
    assert data["fits"] is None and data["capacity_bytes"] is None
    _, out, _ = run(
        capsys, "estimate", "--model", "llama-3.2-3b-instruct", "--weights", "fp16", "--gpu", "t4", "--format", "json"
    )
    assert json.loads(out)["kv_format"] == "fp16"  # T4 has no BF16


@pytest.mark.parametrize(
    "name", ["META-LLAMA/LLAMA-3.1-8B-INSTRUCT", "llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B"]
)
def test_model_names_are_case_insensitive_and_short_names_work(capsys, name):
    status, out, _ = run(capsys, "estimate", "--model", name, "--weights", "bf16", "--format", "json")
    assert status == 0 and json.loads(out)["model"] == "meta-llama/Llama-3.1-8B-Instruct"


def test_config_json_path(capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**K.models["Qwen/Qwen3-8B"].config, "_name_or_path": "my-org/my-qwen"}))
    status, out, _ = run(capsys, "estimate", "--model", str(path), "--weights", "fp8", "--format", "json")
    assert status == 0
    data = json.loads(out)
    assert data["model"] == "my-org/my-qwen"
    _, catalog, _ = run(capsys, "estimate", "--model", "Qwen/Qwen3-8B", "--weights", "fp8", "--format", "json")
    assert data["weights_bytes"] == json.loads(catalog)["weights_bytes"]


@pytest.mark.parametrize("table", ["models", "gpus", "schemes", "kv", "runtimes", "workloads"])
def test_list_prints_ids(capsys, table):
    status, out, _ = run(capsys, "list", table)
    attr = {"kv": "kv_formats"}.get(table, table)
    assert status == 0 and out.split() == list(getattr(K, attr))


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (
            ["--model", "llama-3.1-7b-instruct", "--weights", "bf16"],
            ["--model", "llama-3.1-7b-instruct", "Llama-3.1-8B-Instruct"],
        ),
        (["--model", "Llama-3.1-8B-Instruct", "--weights", "int4-awk"], ["--weights", "int4-awk", "int4-awq"]),
        (["--model", "Llama-3.1-8B-Instruct", "--weights", "bf16", "--kv", "fp9"], ["--kv", "fp9", "fp8"]),
        (["--model", "Llama-3.1-8B-Instruct", "--weights", "bf16", "--gpu", "h100"], ["--gpu", "h100", "h100-sxm"]),
        (["--model", "Llama-3.1-8B-Instruct", "--weights", "bf16", "--runtime", "vlm"], ["--runtime", "vlm", "vllm"]),
        (["--model", "Llama-3.1-8B-Instruct", "--weights", "bf16", "--context", "abc"], ["--context", "abc"]),
        (["--model", "Llama-3.1-8B-Instruct", "--weights", "bf16", "--context", "0"], ["--context", "greater than 0"]),
        (["--model", "Llama-3.1-8B-Instruct", "--weights", "bf16", "--gpus", "3"], ["--gpus", "32 attention heads"]),
        (
            ["--model", "Llama-3.1-8B-Instruct", "--weights", "int4-gptq", "--group-size", "100"],
            ["--group-size", "128"],
        ),
        (["--model", "Llama-3.1-8B-Instruct", "--weights", "bf16", "--format", "xml"], ["--format", "xml"]),
        (["--model", "Llama-3.1-8B-Instruct"], ["--weights"]),
        (["--model", "/no/such/config.json", "--weights", "bf16"], ["--model", "cannot read"]),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv, needles):
    status, out, err = run(capsys, "estimate", *argv)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")
    for needle in needles:
        assert needle in err, (needle, err)
    assert "Traceback" not in err


def test_config_missing_fields_names_them(capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "llama", "hidden_size": 4096}))
    status, _, err = run(capsys, "estimate", "--model", str(path), "--weights", "bf16")
    assert status == 2 and "'num_hidden_layers'" in err and "'vocab_size'" in err and "config.json" in err


def test_python_dash_m_advisor_runs_for_real():
    ok = subprocess.run([sys.executable, "-m", "advisor", *DONE_WHEN], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0 and "Assumptions:" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "advisor", "estimate", "--model", "gpt-0ss-20b", "--weights", "native"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().count("\n") == 0 and "openai/gpt-oss-20b" in bad.stderr


# ---------------------------------------------------------------- recommend and plan
def test_recommend_prints_a_plan(capsys):
    status, out, err = run(
        capsys,
        "recommend",
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--gpu",
        "l40s",
        "--workload",
        "batch-summarization",
        "--priority",
        "throughput",
    )
    assert status == 0 and err == ""
    document = yaml.safe_load(out)
    e = document["endpoints"][0]
    assert e["workload"] == "batch-summarization" and e["priority"] == "throughput"
    runtime = e["deployment"]["runtime"]
    assert e["recommendation"]["notation"] and e["runtime"]["id"] == runtime
    command = {"vllm": "vllm serve", "tensorrt-llm": "trtllm-serve", "sglang": "python -m sglang"}[runtime]
    assert e["runtime"]["serve_command"].startswith(command)
    assert e["quality"]["expected_recovery_pct"] > 90 and e["rationale"]


def test_recommend_json_and_shape_flags(capsys):
    status, out, _ = run(
        capsys,
        "recommend",
        "--model",
        "Qwen3-8B",
        "--gpu",
        "rtx-4090",
        "--runtime",
        "llama.cpp",
        "--concurrency",
        "2",
        "--prompt-tokens",
        "3000",
        "--output-tokens",
        "500",
        "--calibration",
        "none",
        "--unacceptable",
        "long-context-drift",
        "--format",
        "json",
    )
    assert status == 0
    data = json.loads(out)
    e = data["endpoints"][0]
    assert e["shape"] == {"prompt_tokens": 3000, "output_tokens": 500, "concurrency": 2,
                          "concurrency_mode": "requirement", "context": 3500}
    assert data["request"]["calibration"] == "none"
    assert data["request"]["criteria"]["unacceptable"] == ["long-context-drift"]
    assert "-np 2" in e["runtime"]["serve_command"] and "-c 7000" in e["runtime"]["serve_command"]


def test_nothing_fits_exits_0_with_fits_false(capsys):
    status, out, _ = run(capsys, "recommend", "--model", "meta-llama/Llama-3.1-405B-Instruct", "--gpu", "t4")
    assert status == 0
    e = yaml.safe_load(out)["endpoints"][0]
    assert e["fits"] is False and e["summary"].startswith("Does not fit") and e["what_would_fit"]


def test_plan_command_reads_a_request_file_and_round_trips(capsys, tmp_path):
    request = tmp_path / "request.yaml"
    request.write_text(
        "model: meta-llama/Llama-3.1-70B-Instruct\ngpu: h100-sxm\ngpus: 2\nendpoints:\n"
        "  - {name: chat, workload: interactive-chat}\n  - {name: rag, workload: long-context-rag}\n"
    )
    status, out, _ = run(capsys, "plan", str(request))
    assert status == 0
    first = yaml.safe_load(out)
    assert [e["name"] for e in first["endpoints"]] == ["chat", "rag"]
    saved = tmp_path / "plan.yaml"
    saved.write_text(out)
    status, again, _ = run(capsys, "plan", str(saved))
    assert status == 0 and yaml.safe_load(again) == first


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (
            ["recommend", "--model", "Llama-3.1-8B-Instruct", "--gpu", "l4", "--workload", "chat"],
            ["--workload", "interactive-chat"],
        ),
        (
            ["recommend", "--model", "Llama-3.1-8B-Instruct", "--gpu", "l4", "--priority", "fast"],
            ["--priority", "'latency'"],
        ),
        (
            ["recommend", "--model", "Llama-3.1-8B-Instruct", "--gpu", "l4", "--calibration", "maybe"],
            ["--calibration", "'none'"],
        ),
        (
            ["recommend", "--model", "Llama-3.1-8B-Instruct", "--gpu", "l4", "--unacceptable", "boredom"],
            ["--unacceptable", "boredom"],
        ),
        (["recommend", "--model", "Llama-3.1-8B-Instruct", "--gpu", "l4", "--runtime", "vllmm"], ["--runtime", "vllm"]),
        (["recommend", "--model", "Llama-3.1-8B-Instruct", "--gpu", "l4", "--concurrency", "0"], ["--concurrency"]),
        (["recommend", "--model", "Llama-3.1-8B-Instruct", "--gpu", "a200"], ["--gpu", "h200", "b200"]),
        (["plan", "/no/such/file.yaml"], ["FILE", "cannot read"]),
    ],
)
def test_recommend_and_plan_bad_input_exit_2(capsys, argv, needles):
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == "" and err.count("\n") == 1
    for needle in needles:
        assert needle in err, (needle, err)


def test_plan_command_reports_bad_fields(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "model: meta-llama/Llama-3.1-8B-Instruct\ngpu: l4\nendpoints: [{workload: interactive-chat, concurrency: -1}]\n"
    )
    status, _, err = run(capsys, "plan", str(bad))
    assert status == 2 and "endpoints.0.concurrency" in err and "greater than 0" in err


def test_estimate_of_a_gguf_scheme_defaults_to_llama_cpp(capsys):
    status, out, _ = run(capsys, "estimate", "--model", "Qwen/Qwen2.5-72B-Instruct", "--weights", "gguf-q4_k_m",
                         "--format", "json")
    data = json.loads(out)
    assert status == 0 and data["runtime"] == "llama.cpp"
    assert round(data["weights_bytes"] / 2**30, 2) == 44.15  # llama.cpp's per-tensor types (gguf-parser: 44.15 GiB)


# ---------------------------------------------------------------- server settings and older releases (issue 10)
def test_kv_pool_as_the_server_logs_it_for_an_older_release(capsys):
    """vllm-project/vllm#10517: vLLM 0.6.4 logged 31,232 tokens for Llama-3.1-8B BF16 on an RTX 3090 at 20,000."""
    args = ["estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--weights", "bf16", "--gpu", "rtx-3090",
            "--context", "20000", "--utilization", "0.9", "--format", "json"]
    assert main(args + ["--runtime-version", "0.6.4"]) == 0
    old = json.loads(capsys.readouterr().out)
    assert abs(old["kv_pool_tokens"] - 31232) / 31232 <= 0.05 and old["fits"]
    assert old["runtime_version"] == "0.6.4" and any("0.6.4 did it" in w for w in old["warnings"])
    assert main(args) == 0
    pinned = json.loads(capsys.readouterr().out)
    assert pinned["runtime_version"] == K.runtimes["vllm"].version and pinned["kv_pool_tokens"] > old["kv_pool_tokens"]


@pytest.mark.parametrize(("extra", "flag"), [
    (["--runtime", "llama.cpp", "--enforce-eager"], "--enforce-eager"),
    (["--runtime", "tensorrt-llm", "--max-num-seqs", "8"], "--max-num-seqs"),
    (["--max-num-seqs", "64", "--max-num-batched-tokens", "16"], "--max-num-batched-tokens"),
    (["--max-num-seqs", "0"], "--max-num-seqs"),
    (["--runtime", "llama.cpp", "--runtime-version", "0.6.4"], "--runtime-version"),
    (["--runtime-version", "latest; rm -rf /"], "--runtime-version"),
])
def test_server_setting_flags_refuse_what_does_not_apply(capsys, extra, flag):
    args = ["estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--weights", "bf16", "--gpu", "l4"]
    assert main(args + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {flag}") and len(err.splitlines()) == 1

"""Property-based fuzzing (hypothesis) of everything a user or an attacker can hand the tool: the CLI's flags, a
config.json, a plan file and a permalink's query string.

Each property is the input contract: the CLI exits 0 or 2, with one line on stderr when it refuses and valid JSON
(no NaN or Infinity) when it answers; the parsers return a model or raise AdvisorInputError naming the field,
never anything else; the URL codec never raises and says what it ignored in a bounded number of short notes;
every call finishes in bounded time. The runs are derandomized so CI sees the same inputs every time.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.cli import main
from advisor.errors import AdvisorInputError
from advisor.intake.catalog import model_from_config
from advisor.knowledge import load_knowledge
from advisor.physics import memory
from advisor.physics.architecture import architecture_from_config, parse_config_text, tensor_inventory
from advisor.plan import document as plan_module
from advisor.plan.permalink import WizardState, check_against, from_query, to_query

K = load_knowledge()
FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=120,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SLOW_CALL_S = 10.0  # a generous ceiling per call on a loaded 2-core CI machine; tests/test_hostile.py measures

# ---------------------------------------------------------------------------------------------------- values
NASTY_TEXT = ["", " ", "\x00", "'", '"', "\n", "a" * 5000, "**bold**[x](https://evil.example)", ":smile:",
              "../../etc/passwd", "/dev/zero", "-1", "1e309", "NaN", "inf", "9" * 400, "h100-sxm ", "H100-SXM",
              "meta-llama/", "/", "\u202e", "🙂"]
numbers = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**7),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**30, 10**300]),
    st.floats(allow_nan=True, allow_infinity=True),
)
texty = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=40))


def mostly(valid, hostile=numbers):
    """Valid values three times in four, so that the runs also reach the engine past the first check."""
    return st.one_of(valid, valid, valid, hostile)


small = st.integers(min_value=1, max_value=4096)


def _as_arg(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------------------------------- the CLI
FLAG_VALUES = {
    "--context": mostly(st.integers(2048, 32768)), "--concurrency": mostly(small),
    "--prompt-tokens": mostly(small), "--output-tokens": mostly(st.integers(1, 1024)), "--gpus": mostly(
        st.sampled_from([1, 2, 4, 8])), "--usd-per-gpu-hour": mostly(st.floats(0.1, 10)),
    "--max-ttft-ms": mostly(st.floats(50, 5000)), "--max-tpot-ms": mostly(st.floats(5, 200)),
    "--max-cost": mostly(st.floats(0.1, 50)), "--quality-floor": mostly(st.floats(50, 100)),
    "--host-memory-gib": mostly(st.floats(8, 512)),
    "--gpu": mostly(st.sampled_from(["h100-sxm", "l4", "rtx-4090", "a100-80gb", "mi300x"]), texty),
    "--workload": mostly(st.sampled_from(list(K.workloads)), texty),
    "--runtime": mostly(st.sampled_from(list(K.runtimes)), texty),
    "--priority": mostly(st.sampled_from(["latency", "cost", "quality", "throughput"]), texty),
    "--unacceptable": mostly(st.sampled_from(["tail-latency", "tool-call-errors"]), texty),
    "--calibration": st.sampled_from(["none", "available", "available", "maybe"]),
}
ESTIMATE_FLAGS = {
    "--context": mostly(st.integers(256, 65536)), "--concurrency": mostly(small), "--gpus": mostly(
        st.sampled_from([1, 2, 4])), "--prompt-tokens": mostly(st.integers(1, 200)),
    "--output-tokens": mostly(st.integers(1, 50)), "--utilization": mostly(st.floats(0.5, 0.95)),
    "--group-size": mostly(st.sampled_from([32, 64, 128, -1])), "--max-num-seqs": mostly(small),
    "--max-num-batched-tokens": mostly(st.integers(256, 16384)), "--usd-per-gpu-hour": mostly(st.floats(0.1, 10)),
    "--gpu": mostly(st.sampled_from(["h100-sxm", "l4", "rtx-3090"]), texty),
    "--weights": mostly(st.sampled_from(["bf16", "fp8", "int4-awq", "gguf-q4_k_m", "native"]), texty),
    "--kv": mostly(st.sampled_from(list(K.kv_formats)), texty),
    "--runtime": mostly(st.sampled_from(list(K.runtimes)), texty),
    "--runtime-version": mostly(st.sampled_from(["0.6.4", "0.11.0", "0.19.0"]), texty),
}
MODELS = mostly(st.sampled_from(["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-30B-A3B", "llama-3.1-8b",
                                  "openai/gpt-oss-20b", "google/gemma-3-27b-it"]), texty)


@st.composite
def cli_argv(draw) -> list[str]:
    command = draw(st.sampled_from(["recommend", "estimate"]))
    flags = FLAG_VALUES if command == "recommend" else ESTIMATE_FLAGS
    argv = [command, "--model", draw(MODELS)]
    if command == "recommend" or draw(st.booleans()):
        argv += ["--gpu", _as_arg(draw(flags["--gpu"]))]
    if command == "estimate":
        argv += ["--weights", _as_arg(draw(flags["--weights"]))]
        if draw(st.booleans()):
            argv.append("--perf")
    chosen = draw(st.lists(st.sampled_from(sorted(flags)), max_size=4, unique=True))
    for flag in chosen:
        if flag not in ("--gpu", "--weights"):
            argv += [flag, _as_arg(draw(flags[flag]))]
    formats = ["json", "yaml", "text"] if command == "recommend" else ["json", "yaml", "table"]
    return argv + ["--format", draw(st.sampled_from(formats))]


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} in JSON output")


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    started = time.perf_counter()
    status = main(argv)
    elapsed = time.perf_counter() - started
    out, err = capsys.readouterr()
    assert elapsed < SLOW_CALL_S, f"{argv!r} took {elapsed:.1f} s"
    assert status in (0, 2), (argv, status, err)
    if status == 2:
        assert out == "" and err.startswith("error: ") and err.count("\n") == 1, (argv, err)
        assert len(err) < 700, (argv, len(err))
        assert "Traceback" not in err
    return status, out, err


@settings(FUZZ, max_examples=200)
@given(argv=cli_argv())
def test_the_cli_exits_0_or_2_with_one_line_and_valid_output(argv, capsys):
    status, out, _ = run_cli(argv, capsys)
    if status == 0 and argv[-1] == "json":
        json.loads(out, parse_constant=_no_constant)
    if status == 0 and argv[-1] == "yaml":
        assert isinstance(yaml.safe_load(out), dict)


@FUZZ
@given(raw=st.lists(st.one_of(texty, st.sampled_from(["recommend", "estimate", "plan", "list", "gpus", "--model",
                                                      "--gpu", "--format", "-h2", "--", "-"])), max_size=6))
def test_arbitrary_argv_never_crashes(raw, capsys):
    if raw[:1] in (["gpus"],):  # the GPU picker tries every GPU: fuzzed separately, with few examples
        raw = ["list", *raw[1:]]
    try:
        run_cli(raw, capsys)
    except SystemExit as exc:  # --help / --version print and exit 0, as argparse does
        assert exc.code == 0, raw


# ---------------------------------------------------------------------------------------------------- config.json
BASE_CONFIG = {"model_type": "llama", "hidden_size": 512, "intermediate_size": 1024, "num_attention_heads": 8,
               "num_key_value_heads": 2, "num_hidden_layers": 4, "vocab_size": 1000, "max_position_embeddings": 4096}
CONFIG_KEYS = [*BASE_CONFIG, "head_dim", "sliding_window", "sliding_window_pattern", "use_sliding_window",
               "max_window_layers", "layer_types", "num_local_experts", "num_experts", "num_experts_per_tok",
               "moe_intermediate_size", "mlp_only_layers", "decoder_sparse_step", "tie_word_embeddings",
               "attn_logit_softcapping", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
               "vision_config", "text_config", "quantization_config", "_name_or_path", "architectures"]
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, texty),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texty, inner, max_size=4)),
    max_leaves=8,
)
MODEL_TYPES = ["llama", "mistral", "qwen2", "qwen3_moe", "gemma2", "gemma3", "mixtral", "deepseek_v3", "gpt_oss",
               "gpt2", "falcon", "phi3", "jamba", "nemotron_h", "qwen3_next", "bogus", ""]


@st.composite
def configs(draw) -> dict:
    cfg = dict(BASE_CONFIG)
    cfg["model_type"] = draw(st.one_of(st.sampled_from(MODEL_TYPES), json_values))
    for key in draw(st.lists(st.sampled_from(CONFIG_KEYS), max_size=6, unique=True)):
        if draw(st.booleans()):
            cfg[key] = draw(json_values)
        else:
            cfg.pop(key, None)
    return cfg


def _accepted(cfg: dict):
    try:
        return architecture_from_config(cfg, where="config.json")
    except AdvisorInputError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 700
        return None


@FUZZ
@given(cfg=configs())
def test_any_config_json_gives_an_architecture_or_one_named_error(cfg):
    started = time.perf_counter()
    arch = _accepted(cfg)
    if arch is not None:  # what is accepted is sane: positive sizes, no negative KV, bounded work
        params = sum(t.params for t in tensor_inventory(arch))
        assert params > 0 and arch.head_dim >= 1 and arch.num_heads % max(1, arch.num_kv_heads) == 0 or arch.mla
        for kv in K.kv_formats.values():
            assert memory.kv_bytes_per_sequence(arch, kv, 4096, 1) >= 0
        with contextlib.suppress(AdvisorInputError):  # e.g. a quantization_config it cannot serve: refused by name
            model_from_config(cfg, name="fuzz")
    assert time.perf_counter() - started < SLOW_CALL_S


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                      st.integers(1, 20000).map(lambda n: b"[" * n + b"]" * n),
                      st.integers(1, 20000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
                      st.sampled_from([b"NaN", b'{"x": Infinity}', b"9" * 5000, b'{"hidden_size": 1e400}'])))
def test_config_json_text_parses_or_is_refused_by_name(data):
    try:
        parsed = parse_config_text(data, where="config.json")
    except AdvisorInputError as exc:
        assert str(exc).startswith("config.json: ")
        return
    assert isinstance(parsed, dict)
    _accepted(parsed)


# ---------------------------------------------------------------------------------------------------- plan files
PLAN_KEYS = ["model", "gpu", "gpus", "runtime", "priority", "calibration", "criteria", "usd_per_gpu_hour",
             "endpoints", "custom_model", "custom_gpu", "host_memory_gib"]


@st.composite
def plan_documents(draw) -> str:
    body: dict[str, Any] = {"model": "meta-llama/Llama-3.1-8B-Instruct", "gpu": "l4",
                            "endpoints": [{"workload": "interactive-chat"}]}
    for key in draw(st.lists(st.sampled_from(PLAN_KEYS), max_size=4, unique=True)):
        body[key] = draw(json_values)
    if draw(st.booleans()):
        body["endpoints"] = draw(st.lists(st.fixed_dictionaries(
            {"workload": st.sampled_from([*K.workloads, "bogus"]), "name": texty},
            optional={"concurrency": numbers, "context": numbers, "prompt_tokens": numbers}), max_size=20))
    document = {"schema_version": draw(st.sampled_from([1, 2, 3, "2", None])), "request": body}
    text = yaml.safe_dump(json.loads(json.dumps(document, default=str)), allow_unicode=True)
    return text + draw(st.sampled_from(["", "\nx: &a [1]\ny: *a\n", "\n" + "- " * 3000, "\nz: " + "9" * 5000]))


@FUZZ
@given(text=st.one_of(plan_documents(), st.text(max_size=200)))
def test_any_plan_file_gives_a_request_or_one_named_error(text):
    started = time.perf_counter()
    try:
        plan_module.load(text, K, where="plan.yaml")
    except AdvisorInputError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 700 and str(exc).startswith("plan.yaml")
    assert time.perf_counter() - started < SLOW_CALL_S


def test_the_cli_reads_plan_files_with_a_bound(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * 2_000_000)
    status, _, err = run_cli(["plan", str(big)], capsys)
    assert status == 2 and "over 1,000,000 bytes" in err
    status, _, err = run_cli(["plan", "/dev/zero"], capsys)
    assert status == 2 and "over 1,000,000 bytes" in err
    status, _, err = run_cli(["plan", str(tmp_path)], capsys)  # a folder
    assert status == 2


# ---------------------------------------------------------------------------------------------------- URL codec
query_values = st.one_of(texty, st.lists(texty, max_size=5))
query_keys = st.one_of(st.sampled_from(["v", "m", "g", "n", "r", "p", "c", "q", "u", "t", "o", "k", "h", "e", "gn",
                                        "gm", "gb", "gc", "hr", "hb"]), texty)


@FUZZ
@given(query=st.dictionaries(query_keys, query_values, max_size=12))
def test_the_url_codec_never_raises_and_notes_stay_short(query):
    state, notes = from_query(query)
    checked, more = check_against(state, K)
    assert isinstance(checked, WizardState)
    assert len(notes) + len(more) <= 30 and all(len(n) < 300 and "\n" not in n for n in notes + more)
    again, _ = from_query(to_query(checked))
    assert to_query(again) == to_query(checked)  # what the codec accepts, it writes back the same link


def test_a_hundred_kilobyte_url_key_is_not_echoed_in_full():
    _, notes = from_query({"z" * 100_000: "1", **{f"x{i}": "1" for i in range(500)}})
    assert len(notes) <= 6 and max(len(n) for n in notes) < 120
    assert notes[-1] == "ignored 496 more unknown parameters"


def test_numbers_never_reach_json_as_nan_or_infinity(capsys):
    for flag in ("--usd-per-gpu-hour", "--max-ttft-ms", "--max-tpot-ms", "--max-cost"):
        for value in ("inf", "nan", "-inf", "1e309"):
            status, _, err = run_cli(["recommend", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "l4",
                                      flag, value, "--format", "json"], capsys)
            assert status == 2 and flag in err, (flag, value, err)
    assert math.isfinite(json.loads(json.dumps(1.0)))


@pytest.mark.parametrize("argv", [
    ["recommend", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "l4", "--context", "100",
     "--output-tokens", "1000"],
    ["recommend", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", ""],
    ["estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--weights", "bf16", "--gpu", ""],
    ["estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--weights", "bf16", "--context", "9" * 300],
    ["estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--weights", "bf16", "--prompt-tokens", "1e152",
     "--perf"],
    ["estimate", "--model", "a" * 300, "--weights", "bf16"],
    ["estimate", "--model", "a/" * 3000, "--weights", "bf16"],
    ["estimate", "--model", "/tmp", "--weights", "bf16"],
])
def test_silent_nonsense_is_refused_with_one_line(argv, capsys):
    status, _, err = run_cli(argv, capsys)
    assert status == 2 and len(err) < 400, err


@st.composite
def valid_requests(draw) -> list[str]:
    """Requests every check lets through, at the edges of the ranges: they must reach the engine and come back
    with a plan (or a refusal by name, e.g. a context over the model's limit)."""
    model = draw(st.sampled_from(list(K.models)))
    argv = ["recommend", "--model", model, "--gpu", draw(st.sampled_from(list(K.gpus))),
            "--gpus", str(draw(st.sampled_from([1, 2, 3, 4, 6, 8, 16, 64]))),
            "--workload", draw(st.sampled_from(list(K.workloads)))]
    for flag, values in (("--concurrency", st.sampled_from([1, 2, 7, 1000, 100_000])),
                         ("--output-tokens", st.sampled_from([1, 2, 4096, 1_000_000])),
                         ("--prompt-tokens", st.sampled_from([1, 3, 100_000])),
                         ("--max-tpot-ms", st.sampled_from([0.001, 1, 600_000])),
                         ("--quality-floor", st.sampled_from([50, 99.9, 100])),
                         ("--runtime", st.sampled_from(list(K.runtimes))),
                         ("--calibration", st.sampled_from(["none", "available"]))):
        if draw(st.integers(0, 3)) == 0:
            argv += [flag, str(draw(values))]
    return argv + ["--format", "json"]


@settings(FUZZ, max_examples=60)
@given(argv=valid_requests())
def test_requests_at_the_edges_of_the_ranges_plan_or_refuse_by_name(argv, capsys):
    status, out, err = run_cli(argv, capsys)
    if status == 0:
        plan = json.loads(out, parse_constant=_no_constant)
        assert plan["endpoints"], argv

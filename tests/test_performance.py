"""The speed model: roofline behaviour, CLI --perf, the GPU picker (published-measurement checks are below)."""

import json

import pytest

from advisor.cli import main
from advisor.decide.engine import recommend
from advisor.decide.gpu_picker import pick_gpus
from advisor.intake.request import Endpoint, Request
from advisor.knowledge import load_knowledge
from advisor.physics.estimate import EstimateRequest, estimate

K = load_knowledge()


def perf(**kw):
    return estimate(EstimateRequest(perf=True, **kw), K).performance


def test_batch_one_decode_is_memory_bound_and_prefill_compute_bound():
    p = perf(model="meta-llama/Llama-3.1-8B-Instruct", weights="bf16", gpu="h100-sxm", context=2048)
    assert p.bound == {"prefill": "compute", "decode": "memory"}
    # 16 GB of weights over 3.35 TB/s: a few milliseconds per token
    assert 4 < p.tpot_ms < 15  # vLLM fitted conservatively (knowledge/speed.yaml)


def test_fewer_weight_bytes_decode_faster_at_batch_one():
    bf16 = perf(model="meta-llama/Llama-3.1-70B-Instruct", weights="bf16", gpu="h200", context=2048)
    int4 = perf(model="meta-llama/Llama-3.1-70B-Instruct", weights="int4-awq", gpu="h200", context=2048)
    assert int4.tpot_ms < bf16.tpot_ms / 2.5


def test_fp8_runs_w8a8_on_hopper_and_w8a16_on_ampere():
    assert perf(model="meta-llama/Llama-3.1-8B-Instruct", weights="fp8", gpu="h100-sxm").matmul_precision == "fp8"
    assert perf(model="meta-llama/Llama-3.1-8B-Instruct", weights="fp8", gpu="a100-80gb").matmul_precision == "bf16"
    forced = perf(model="meta-llama/Llama-3.1-8B-Instruct", weights="fp8", gpu="h100-sxm", activations="bf16")
    assert forced.matmul_precision == "bf16"


def test_activation_quantization_speeds_prefill():
    w8a8 = perf(model="meta-llama/Llama-3.1-70B-Instruct", weights="fp8", gpu="h100-sxm", gpus=2, context=8192)
    w4a16 = perf(model="meta-llama/Llama-3.1-70B-Instruct", weights="int4-awq", gpu="h100-sxm", gpus=2, context=8192)
    assert w8a8.ttft_ms < w4a16.ttft_ms / 1.5  # FP8 peak vs 16-bit peak plus dequantization


def test_large_batches_raise_aggregate_throughput():
    one = perf(model="meta-llama/Llama-3.1-8B-Instruct", weights="fp8", gpu="h100-sxm", concurrency=1)
    many = perf(model="meta-llama/Llama-3.1-8B-Instruct", weights="fp8", gpu="h100-sxm", concurrency=64)
    assert many.throughput_tokens_per_s > 5 * one.throughput_tokens_per_s  # prompt-heavy shape: prefill dominates
    assert many.tpot_ms > one.tpot_ms


def test_moe_decode_reads_only_the_experts_a_batch_touches():
    one = perf(model="Qwen/Qwen3-30B-A3B", weights="bf16", gpu="h100-sxm", concurrency=1)
    dense_like = perf(model="Qwen/Qwen3-32B", weights="bf16", gpu="h100-sxm", concurrency=1)
    assert one.tpot_ms < dense_like.tpot_ms / 3


def test_tensor_parallel_pays_all_reduce():
    p = perf(model="meta-llama/Llama-3.1-70B-Instruct", weights="fp8", gpu="h100-sxm", gpus=4)
    assert p.decode.comm_seconds > 0 and any("all-reduces" in a for a in p.assumptions)


def test_perf_flag_in_the_cli(capsys):
    status = main(["estimate", "--model", "Llama-3.1-8B-Instruct", "--weights", "fp8", "--gpu", "l40s", "--perf",
                   "--output-tokens", "128", "--prompt-tokens", "1000", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert status == 0
    for key in ["ttft_ms", "tpot_ms", "decode_tokens_per_s", "throughput_tokens_per_s", "bound",
                "cost_per_million_tokens"]:
        assert key in data
    assert main(["estimate", "--model", "Llama-3.1-8B-Instruct", "--weights", "fp8", "--perf"]) == 2
    assert "needs a GPU" in capsys.readouterr().err
    assert main(["estimate", "--model", "Llama-3.1-8B-Instruct", "--weights", "fp8", "--gpu", "l4", "--perf",
                 "--activations", "fp7"]) == 2
    assert "--activations" in capsys.readouterr().err


def test_gpu_picker_lists_options_that_fit_and_meet_targets():
    request = Request(model="meta-llama/Llama-3.1-70B-Instruct", gpu="h100-sxm",
                      criteria={"max_tpot_ms": 40}, endpoints=[Endpoint(workload="interactive-chat")])
    options = pick_gpus(request, K, counts=(1, 2), gpu_ids=["h100-sxm", "a100-80gb", "l4", "b200"])
    assert options and all(o.total_gib_per_gpu <= o.capacity_gib_per_gpu and o.tpot_ms <= 40 for o in options)
    assert not any(o.gpu == "l4" and o.gpus == 1 for o in options)  # 70B does not fit one L4
    priced = [o.cost_per_million_tokens for o in options if o.cost_per_million_tokens is not None]
    assert priced == sorted(priced)


def test_price_override_sets_the_cost_of_the_requests_gpu_only():
    base = Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="l40s", endpoints=[Endpoint(workload="batch-summarization")])
    listed = recommend(base, K).endpoints[0].pick.performance
    cheap = recommend(base.model_copy(update={"usd_per_gpu_hour": listed.usd_per_gpu_hour / 2}), K)
    perf = cheap.endpoints[0].pick.performance
    assert perf.usd_per_gpu_hour == pytest.approx(listed.usd_per_gpu_hour / 2)
    assert perf.cost_per_million_tokens == pytest.approx(listed.cost_per_million_tokens / 2, rel=1e-6)
    options = pick_gpus(base.model_copy(update={"usd_per_gpu_hour": 0.01}), K, counts=(1,), gpu_ids=["l40s", "l4"])
    prices = {o.gpu: o.usd_per_gpu_hour for o in options}
    assert prices["l40s"] == 0.01 and prices["l4"] > 0.01  # the other kind keeps its list price


def test_recommend_cli_takes_a_price(capsys):
    argv = ["recommend", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "l40s", "--format", "json"]
    assert main([*argv, "--usd-per-gpu-hour", "0.5"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["endpoints"][0]["performance"]["usd_per_gpu_hour"] == 0.5
    assert main([*argv, "--usd-per-gpu-hour", "-1"]) == 2
    assert "--usd-per-gpu-hour" in capsys.readouterr().err


def test_gpus_command(capsys):
    assert main(["gpus", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--workload", "classification"]) == 0
    out = capsys.readouterr().out
    assert "NVIDIA" in out and "$/M tok" in out
    assert main(["gpus", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--workload", "chat"]) == 2


@pytest.mark.parametrize("runtime", list(K.runtimes))
def test_every_runtime_has_speed_constants(runtime):
    assert any(sp.runtime == runtime for sp in K.speed.values())


# ---------------------------------------------------------------- against published measurements
import math  # noqa: E402
import statistics  # noqa: E402

from advisor.physics.accuracy import TARGETS, held_out, modelled, prepare, regime  # noqa: E402

SPEEDS = {sp.runtime: sp for sp in K.speed.values()}
PREPARED = [p for p in (prepare(r, K) for r in K.perf_measurements.values()) if p is not None]
HELD_OUT = [p for p in PREPARED if held_out(p.row.id)]


def _errors(rows):
    return [(p, 100 * (modelled(p, SPEEDS[p.row.runtime]) - p.row.value) / p.row.value) for p in rows]


def test_every_measurement_can_be_modelled_and_a_third_is_held_out():
    assert len(PREPARED) == len(K.perf_measurements) >= 145
    assert 0.25 <= len(HELD_OUT) / len(PREPARED) <= 0.42


def test_held_out_error_stays_where_the_readme_says():
    """The constants in speed.yaml were fitted without these rows (scripts/fit_speed.py). The issue's targets are 85%
    within target and a median under 15%; the README reports where the model stands (85%, 14.6%): this keeps it
    from sliding back."""
    errors = _errors(HELD_OUT)
    inside = sum(abs(e) <= TARGETS[p.row.metric] for p, e in errors)
    assert inside / len(errors) >= 0.85
    assert statistics.median(abs(e) for _, e in errors) <= 15


def test_bands_are_the_held_out_80th_percentile_by_regime():
    for name in ("prefill", "decode", "throughput"):
        errs = sorted(abs(e) for p, e in _errors(HELD_OUT) if regime(p.row) == name)
        p80 = errs[min(len(errs) - 1, math.ceil(0.8 * len(errs)) - 1)]
        assert K.decision[f"speed-band-{name}-pct"].value == math.ceil(p80 / 5) * 5


def test_the_issue_speed_case():
    """Qwen2.5-72B BF16 on 2 x H100, 8,192-token prompt: measured 30.9-31.3 ms per token and 1,064 ms TTFT
    (tenstorrent/tt-inference-server#143); the model was at 43 ms and 2,019 ms."""
    e = estimate(EstimateRequest(model="Qwen/Qwen2.5-72B-Instruct", weights="bf16", gpu="h100-sxm", gpus=2,
                                 perf=True, prompt_tokens=8192, output_tokens=128, context=8320), K)
    assert abs(e.tpot_ms - 31.3) / 31.3 <= 0.25
    assert abs(e.ttft_ms - 1064) / 1064 <= 0.25
    assert e.performance.bands_pct == {"prefill": 30, "decode": 35, "throughput": 25}


def test_speed_curves_follow_the_pick_and_stop_fitting_past_its_room():
    from advisor.decide.engine import speed_curves

    request = Request(model="meta-llama/Llama-3.1-70B-Instruct", gpu="h100-sxm", gpus=2,
                      endpoints=[Endpoint(workload="interactive-chat", concurrency=16)])  # fmt: skip
    result = recommend(request, K)
    pick = result.endpoints[0].pick
    series = speed_curves(result, 0, K)
    assert 1 < len(series) <= 4 and series[0]["pick"] and not any(s["pick"] for s in series[1:])
    assert len({s["label"] for s in series}) == len(series)
    at_16 = next(p for p in series[0]["points"] if p["concurrency"] == 16)
    assert at_16["throughput"] == pytest.approx(pick.performance.throughput_tokens_per_s)
    throughput = [p["throughput"] for p in series[0]["points"]]
    assert throughput == sorted(throughput)  # more sequences, more tokens/s in all
    assert [p["fits"] for p in series[0]["points"]] == [
        p["concurrency"] <= pick.memory.max_concurrency for p in series[0]["points"]
    ]


def test_pcie_threshold_is_the_knowledge_figure():
    from advisor.physics.performance import PCIE_MAX_GBPS, link_kind

    assert K.decision["pcie-link-max-gbps"].value == PCIE_MAX_GBPS
    assert link_kind(K.gpus["l40s"]) == "pcie" and link_kind(K.gpus["h100-sxm"]) == "nvlink"

"""The memory model against what servers logged (tests/data/memory_logs.yaml, public logs with their sources).

Each row is re-run with the model, GPU, tensor-parallel size and flags of the log, and with the accounting of the
release that logged it (`estimate --runtime-version`, knowledge/runtimes.yaml memory.eras: vLLM's V0 profile before
0.7, its larger sampler profile before 0.12, CUDA graphs kept out of the KV budget before 0.21, SGLang's constant
0.88 fraction before 0.5). Logs without a version are not used for the pool check.

The KV pool must come within 5% of the logged tokens, and every started / refused verdict must match.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from advisor.knowledge import load_knowledge
from advisor.physics.estimate import EstimateRequest, estimate
from advisor.physics.memory import GIB, version_tuple

K = load_knowledge()
ROWS = yaml.safe_load((Path(__file__).parent / "data" / "memory_logs.yaml").read_text())["rows"]


def _estimate(row, context=None):
    flags = row.get("flags") or {}
    version = row["runtime_version"] if version_tuple(row["runtime_version"] or "") else None
    req = dict(model=row["model"], weights=row["weights"].split()[0], kv={"f16": "fp16"}.get(row["kv"], row["kv"]),
               gpu=row["gpu"], gpus=row["gpus"], runtime=row["runtime"], runtime_version=version)
    if row["runtime"] == "vllm":
        req.update(context=context or flags.get("max_model_len") or 4096,
                   utilization=flags.get("gpu_memory_utilization") or 0.9,
                   max_num_seqs=flags.get("max_num_seqs"), max_num_batched_tokens=flags.get("max_num_batched_tokens"),
                   enforce_eager=bool(flags.get("enforce_eager")))
    elif row["runtime"] == "sglang":
        req.update(context=context or 4096, utilization=flags.get("mem_fraction_static"))
    else:
        req.update(context=flags["ctx_size"], runtime_version=None)
    return estimate(EstimateRequest(**req), K)


VLLM_POOLS = [r for r in ROWS if r["runtime"] in ("vllm", "sglang") and r["outcome"] == "started"
              and (r["logged"] or {}).get("kv_tokens") and r["runtime_version"]]
KNOWN_GAPS: dict[str, str] = {}  # row id -> why the model still misses it (strict xfail, so a fix shows up)


@pytest.mark.parametrize("row", [pytest.param(r, marks=pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[r["id"]]))
                                 if r["id"] in KNOWN_GAPS else r for r in VLLM_POOLS],
                         ids=[r["id"] for r in VLLM_POOLS])
def test_kv_pool_tokens_within_5_percent_of_the_log(row):
    est = _estimate(row)
    logged = row["logged"]["kv_tokens"]
    assert abs(est.kv_pool_tokens - logged) / logged <= 0.05, (est.kv_pool_tokens, logged)


VERDICTS = [r for r in ROWS if r["runtime"] == "vllm" and (r["flags"] or {}).get("max_model_len")
            and r["outcome"] in ("started", "refused")]


@pytest.mark.parametrize("row", VERDICTS, ids=[r["id"] for r in VERDICTS])
def test_fit_verdict_matches_the_server(row):
    """vLLM refuses to start when one sequence of max_model_len does not fit its KV pool."""
    est = _estimate(row)
    assert est.fits is (row["outcome"] == "started"), (est.kv_budget_bytes / GIB, est.kv_cache_bytes_per_gpu / GIB)


LOADED = [r for r in ROWS if r["runtime"] == "vllm" and "gpt-oss" in r["model"] and r["logged"].get("weights_gib")
          and r["gpus"] == 1]


@pytest.mark.parametrize("row", LOADED, ids=[r["id"] for r in LOADED])
def test_loaded_weights_follow_the_kernels_repacking(row):
    """gpt-oss's MXFP4 experts take more memory once loaded than in the checkpoint (knowledge/runtimes.yaml repack)."""
    est = _estimate(row)
    assert est.weights_loaded_bytes_per_gpu > est.weights_bytes_per_gpu
    assert abs(est.weights_loaded_bytes_per_gpu / GIB - row["logged"]["weights_gib"]) / row["logged"]["weights_gib"] \
        <= 0.02


LLAMA = [r for r in ROWS if r["runtime"] == "llama.cpp" and r["gpus"] == 1 and r["kv"] in ("f16", "fp16")]


@pytest.mark.parametrize("row", LLAMA, ids=[r["id"] for r in LLAMA])
def test_llama_cpp_kv_and_compute_buffer(row):
    """KV bytes are exact; the compute buffer (the larger of the ubatch's FP32 logits and, without Flash Attention,
    its score matrix) comes within 10% of 'CUDA0 compute buffer size'."""
    flags = row["flags"]
    k = K.model_copy(update={"runtimes": {**K.runtimes, "llama.cpp": K.runtimes["llama.cpp"].model_copy(update={
        "memory": K.runtimes["llama.cpp"].memory.model_copy(update={
            "activation": K.runtimes["llama.cpp"].memory.activation.model_copy(
                update={"flash_attention": bool(flags.get("flash_attn")), "ubatch": flags.get("ubatch", 512)})})})}})
    est = estimate(EstimateRequest(model=row["model"], weights=row["weights"], kv="fp16", gpu=row["gpu"],
                                   runtime="llama.cpp", context=flags["ctx_size"]), k)
    assert est.kv_cache_bytes_per_gpu / GIB == pytest.approx(row["logged"]["kv_cache_gib"], rel=0.01)
    compute_mib = est.overhead.activations_bytes / 2**20
    assert abs(compute_mib - row["logged"]["compute_buffer_mib"]) / row["logged"]["compute_buffer_mib"] <= 0.10


def test_the_issue_cases():
    """Issue 10: Llama-3.1-8B BF16 on an RTX 3090 at 20,000 tokens fits (31,232 tokens logged; max context was
    13,864 before); gpt-oss-120b on one H100 at 131,072 tokens does not (64.38 GiB loaded)."""
    rtx = next(r for r in ROWS if r["id"] == "vllm-10517-llama31-8b-rtx3090")
    est = _estimate(rtx)
    assert est.fits and abs(est.kv_pool_tokens - 31232) / 31232 <= 0.05
    oss = next(r for r in ROWS if r["id"] == "vllm-27508-gpt-oss-120b-h100-131k-refused")
    assert _estimate(oss).fits is False


def test_gpt_oss_120b_on_one_h100_as_vllm_0_11_logged_it():
    """vllm#27508 (vLLM 0.11.0, utilization 0.95, 131,072 tokens): 1.71 GiB left for the KV cache, refused."""
    oss = next(r for r in ROWS if r["id"] == "vllm-27508-gpt-oss-120b-h100-131k-refused")
    est = _estimate(oss)
    assert abs(est.kv_budget_bytes / GIB - 1.71) / 1.71 <= 0.05 and est.fits is False

"""Compatibility gates against the runtimes' own code: what each pinned runtime serves on which GPU
(knowledge/candidates.yaml, knowledge/rules.yaml) and the architecture-aware gates, each checked on every catalog
model (knowledge/models.yaml) against the fact for that model."""

import functools

import pytest

from advisor.decide import gates
from advisor.decide.context import EndpointContext
from advisor.intake.catalog import resolve_model
from advisor.intake.request import Endpoint, Request, resolve_gpu, resolve_shape
from advisor.knowledge import load_knowledge

K = load_knowledge()
CATALOG = list(K.models)


@functools.cache
def context(model: str, gpu: str = "h100-sxm", gpus: int = 1) -> EndpointContext:
    request = Request(model=model, gpu=gpu, gpus=gpus, endpoints=[Endpoint(workload="interactive-chat")])
    return EndpointContext(K, request, resolve_model(K, model), resolve_gpu(request, K),
                           resolve_shape(request, request.endpoints[0], K))


def refusals(ctx: EndpointContext, cand: str, kv: str, runtime: str) -> list[str]:
    """Every hard reason the search gives for (candidate, KV format, runtime) before layouts and memory."""
    c, k, r = K.candidates[cand], K.kv_formats[kv], K.runtimes[runtime]
    reasons = gates.runtime_reasons(ctx, r) + gates.support_reasons(ctx, c, k, r) + ctx.verdict(c, k, r).reasons
    return [x.text for x in reasons]


# ---------------------------------------------------------------- runtime rows
@pytest.mark.parametrize(("gpu", "served"), [("t4", False), ("a100-80gb", True), ("l40s", True), ("l4", True),
                                             ("h100-sxm", False), ("mi300x", False)])
def test_tgi_runs_fp8_as_marlin_w8a16_on_every_cc_8x(gpu, served):
    """TGI's get_fp8_linear picks GPTQMarlinFP8Linear whenever the major compute capability is 8 (8.9 too:
    TGI#2388), so FP8 on TGI is weight-only there and W8A8 from Hopper on."""
    ctx = context("meta-llama/Llama-3.1-8B-Instruct", gpu)
    assert (not refusals(ctx, "fp8-w8a16", "fp16", "tgi")) is served  # TGI's 16-bit cache is "auto" (fp16 row)
    cand = K.candidates["fp8-w8a16"]
    assert cand.activations == "bf16" and cand.weight_only  # the speed model runs its matmuls in 16 bits


def test_tgi_fp8_w8a8_only_from_hopper_and_vllm_keeps_w8a8_on_ada():
    l40s, h100 = context("meta-llama/Llama-3.1-8B-Instruct", "l40s"), context("meta-llama/Llama-3.1-8B-Instruct")
    assert any("9.0" in r for r in refusals(l40s, "fp8-w8a8", "fp16", "tgi"))
    assert not refusals(h100, "fp8-w8a8", "fp16", "tgi")
    assert not refusals(l40s, "fp8-w8a8", "bf16", "vllm")
    assert any("W8A8" in r for r in refusals(l40s, "fp8-w8a16", "bf16", "vllm"))  # vLLM uses FP8 cores on 8.9


def test_the_tgi_fp8_plan_is_weight_only_on_an_a100():
    from advisor.decide.engine import recommend

    request = Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="a100-80gb", runtime="tgi",
                      endpoints=[Endpoint(workload="interactive-chat")])
    er = recommend(request, K).endpoints[0]
    rejected = {c for r in er.rejected for c in r.candidate.split(", ")}
    assert "fp8-w8a8" in rejected and "fp8-w8a16" not in rejected


@pytest.mark.parametrize(("gpu", "served"), [("a100-80gb", False), ("l40s", True), ("h100-sxm", True)])
def test_transformers_serves_fine_grained_fp8_from_cc_8_9(gpu, served):
    """transformers 5.23 runs FineGrainedFP8 checkpoints in FP8 from compute capability 8.9 and dequantizes them to
    BF16 below it (quantizer_finegrained_fp8.py), which would serve none of the memory the plan counts."""
    ctx = context("deepseek-ai/DeepSeek-V3", gpu)
    assert (not refusals(ctx, "native-fp8-block", "bf16", "transformers")) is served


@pytest.mark.parametrize("cand", [c for c in K.candidates if c.startswith("gguf-")])
def test_vllm_0_33_serves_no_gguf_and_says_why(cand):
    """The pinned vLLM wheel has no gguf quantization method or load format (vllm#39583 deprecated it)."""
    reasons = refusals(context("meta-llama/Llama-3.1-8B-Instruct"), cand, "bf16", "vllm")
    assert any("GGUF" in r and "llama.cpp" in r for r in reasons)
    assert "vllm" not in K.candidates[cand].runtimes

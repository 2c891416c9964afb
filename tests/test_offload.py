"""llama.cpp partial offload: offered when no GGUF fits whole in VRAM, with its RAM and its (slow) speed."""

import pytest

from advisor.decide.context import EndpointContext
from advisor.decide.engine import recommend
from advisor.decide.offload import decode_ms
from advisor.intake.catalog import resolve_model
from advisor.intake.request import Endpoint, Request, resolve_gpu, resolve_shape
from advisor.knowledge import load_knowledge
from advisor.plan import document as plan

K = load_knowledge()
RTX_5060_TI = {"name": "RTX 5060 Ti 16GB", "memory_gib": 15.48, "memory_bandwidth_tbps": 0.448,
               "dense_tflops": {"bf16": 95}, "compute_capability": "12.0"}


@pytest.mark.parametrize(("gpu_layers", "published"), [(0, 2.89), (8, 3.58), (16, 4.24), (24, 5.61), (32, 7.26),
                                                       (40, 12.5), (48, 43.18)])
def test_decode_speed_follows_a_published_ngl_sweep(gpu_layers, published):
    """Qwen2.5-Coder-14B Q4_K_M (the Qwen2.5-14B architecture) on an RTX 5060 Ti, llama.cpp, -ngl 0..99
    (inventivehq.com/blog/vram-offload-cliff-gpu-layers-benchmark). The host bandwidth constant was fitted to
    this sweep, so this checks the shape of the model (the cliff), within 15%."""
    request = Request(model="Qwen/Qwen2.5-14B-Instruct", gpu="custom", custom_gpu=RTX_5060_TI,
                      endpoints=[Endpoint(workload="interactive-chat", concurrency=1, prompt_tokens=64,
                                          output_tokens=256)])
    ctx = EndpointContext(K, request, resolve_model(K, request.model), resolve_gpu(request, K),
                          resolve_shape(request, request.endpoints[0], K))
    tokens_per_s = 1000 / decode_ms(ctx, K.candidates["gguf-q4_k_m"], K.kv_formats["fp16"], gpu_layers)
    # every layer on the GPU is the speed model's own figure, held to its 25% decode target (issue 10)
    assert abs(tokens_per_s - published) / published < (0.25 if gpu_layers == 48 else 0.15)


def _offload(model, gpu, **kw):
    request = Request(model=model, gpu=gpu, endpoints=[Endpoint(workload="interactive-chat", concurrency=1)], **kw)
    return request, recommend(request, K).endpoints[0]


def test_offered_when_no_gguf_fits_with_ram_and_speed():
    _, e = _offload("meta-llama/Llama-3.3-70B-Instruct", "rtx-4090", host_memory_gib=32)
    assert e.offload, "a 70B GGUF does not fit a 24 GB card: offload must be offered"
    for o in e.offload:
        assert 0 < o.gpu_layers < o.total_layers == 80
        assert o.vram_gib <= K.gpus["rtx-4090"].memory_gib
        assert o.ram_fits == (o.ram_gib <= 32)
        assert o.tpot_ms > 100  # RAM-bound: far slower than the GPU alone
    # more accuracy costs speed, never both
    assert [o.tpot_ms for o in e.offload] == sorted(o.tpot_ms for o in e.offload)[::-1]


def test_not_offered_when_a_gguf_fits_whole():
    _, e = _offload("meta-llama/Llama-3.1-8B-Instruct", "rtx-4090")
    assert e.offload == []


def test_the_plan_lists_it_with_a_serve_command_and_the_ram_check():
    request, _ = _offload("meta-llama/Llama-3.3-70B-Instruct", "rtx-4090", host_memory_gib=64,
                          host_memory_bandwidth_gbps=60)
    e = plan.build(request, K)["endpoints"][0]
    rows = e["partial_offload"]
    assert rows and all(r["serve_command"].startswith("llama-server") and r["flag"] in r["serve_command"]
                        and "-ngl 99" not in r["serve_command"] for r in rows)
    assert {r["ram_check"] for r in rows} <= {"fits in system RAM", "does NOT fit in system RAM"}
    assert "60 GB/s" in rows[0]["note"]
    q4 = next(r for r in rows if r["candidate"] == "gguf-q4_k_m")
    assert q4["load"].startswith("bartowski/") or q4["load"].endswith(".gguf")

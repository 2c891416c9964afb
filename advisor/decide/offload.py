"""llama.cpp partial offload: when a GGUF does not fit in VRAM, put as many layers as fit on the GPU (``-ngl N``)
and run the rest from system RAM. Offered as an option beside the plan, never hidden and never silently chosen.

Memory: the first N repeating layers (weights and their KV cache) and the output matrix on the GPU, with the
runtime's compute buffer; the other layers, their KV cache and the token embedding (llama.cpp keeps it on the
CPU) in system RAM. Speed: a decode step reads the GPU layers at the GPU's bandwidth and the CPU layers at the
host's effective bandwidth (knowledge/decision.yaml ``host-decode-bandwidth-gbps``, or the request's own figure);
a prompt sends the CPU layers' weights over PCIe once per prompt batch (``host-to-gpu-gbps``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from advisor.decide.checkpoint import checkpoint_use
from advisor.decide.context import EndpointContext
from advisor.decide.result import OffloadOption
from advisor.physics import memory

GIB = memory.GIB


class _Split(NamedTuple):
    gpu_layers: int
    vram: int
    ram: int
    gpu_read: float
    cpu_read: float


def _split(ctx: EndpointContext, cand, kv, concurrency: int, runtime, gpu_layers: int | None = None) -> _Split | None:
    """The most layers that fit on one GPU beside the output matrix, the compute buffer and their KV cache (or
    exactly `gpu_layers`); None when every layer fits or none does."""
    w = ctx.weights(cand)
    groups = {m.group: m.bytes for m in w.breakdown}
    scale = w.checkpoint_bytes / max(1, sum(groups.values()))  # exact (header) bytes when known
    embed = groups.get("embedding", 0) * scale
    head = groups.get("lm_head", 0) * scale if "lm_head" in groups else embed  # tied: the embedding is the output
    layers = ctx.arch.num_layers
    per_layer = max(0.0, w.checkpoint_bytes - embed - (head if "lm_head" in groups else 0)) / layers
    kv_layer = ctx.kv_per_sequence(kv, 1) * concurrency / layers
    overhead = ctx.overhead(runtime, 1, concurrency)
    budget = ctx.gpu.memory_bytes - overhead - head
    if gpu_layers is not None:
        n = max(0, min(layers, gpu_layers))
    else:
        n = min(layers, math.floor(budget / (per_layer + kv_layer))) if per_layer + kv_layer > 0 else layers
        if n < 1 or n >= layers:
            return None
    cpu = layers - n
    return _Split(gpu_layers=n, vram=int(n * (per_layer + kv_layer) + head + overhead),
                  ram=int(cpu * (per_layer + kv_layer) + embed), gpu_read=n * per_layer + head,
                  cpu_read=cpu * per_layer)


def decode_ms(ctx: EndpointContext, cand, kv, gpu_layers: int, concurrency: int = 1) -> float:
    """Modelled time per output token with `gpu_layers` of the model's layers on the GPU (the rest in RAM)."""
    runtime = ctx.k.runtimes["llama.cpp"]
    return _decode_ms(ctx, _split(ctx, cand, kv, concurrency, runtime, gpu_layers),
                      ctx.speed_model(cand, runtime, 1).numbers(kv, concurrency)[1])


def _decode_ms(ctx: EndpointContext, split: _Split | None, tpot_ms: float) -> float:
    """The time per output token `tpot_ms` with every layer on the GPU, with `split`'s CPU layers read from RAM."""
    if split is None or split.cpu_read <= 0:
        return tpot_ms
    host_bw = (ctx.request.host_memory_bandwidth_gbps or ctx.k.decision["host-decode-bandwidth-gbps"].value) * 1e9
    rt = ctx.k.speed["llama.cpp"]
    eff = rt.memory_efficiency_hbm if ctx.gpu.hbm and rt.memory_efficiency_hbm else rt.memory_efficiency
    gpu_bw = ctx.gpu.memory_bandwidth_tbps * 1e12 * eff
    return tpot_ms + (split.cpu_read / host_bw - split.cpu_read / gpu_bw) * 1000


def offload_options(ctx: EndpointContext, ranked: list | None = None, limit: int = 4) -> list[OffloadOption]:
    """Partial-offload options for the quantized GGUF types, none of which fits on one GPU: best expected accuracy
    first (each slower type is shown only when it is faster than the ones above it).
    Offered when nothing serves the endpoint whole, or llama.cpp was asked for and nothing on it does; empty when
    llama.cpp cannot run on this GPU. `ranked`: the deployments that serve the endpoint."""
    k = ctx.k
    runtime = k.runtimes.get("llama.cpp")
    if runtime is None or ctx.gpu.vendor not in runtime.vendors:
        return []
    ranked = ranked or []
    if any(d.runtime == "llama.cpp" for d in ranked) or (ranked and ctx.request.runtime != "llama.cpp"):
        return []
    host_bw = (ctx.request.host_memory_bandwidth_gbps or k.decision["host-decode-bandwidth-gbps"].value) * 1e9
    pcie = k.decision["host-to-gpu-gbps"].value * 1e9
    kv = next((x for x in k.kv_formats.values() if x.id == "q8_0"), None) or k.kv_formats["fp16"]
    concurrency = 1 if ctx.mode == "ceiling" else ctx.shape.concurrency
    out: list[OffloadOption] = []
    for cand in k.candidates.values():
        support = cand.runtimes.get("llama.cpp")
        if support is None or support.how != "gguf" or cand.only_for_native or cand.tier >= 16:
            continue
        if ctx.verdict(cand, kv, runtime).reasons:
            continue  # a rule rules it out here (e.g. 2-bit for interactive use): offloading does not change that
        split = _split(ctx, cand, kv, concurrency, runtime)
        if split is None:
            continue
        ttft_ms, tpot_ms, _ = ctx.speed_model(cand, runtime, 1).numbers(kv, concurrency)  # every layer on the GPU
        # the CPU layers' reads move from the GPU's bandwidth to the host's
        tpot = _decode_ms(ctx, split, tpot_ms)
        ttft = ttft_ms + split.cpu_read / pcie * 1000
        quality = ctx.quality(cand, kv)
        ram_gib = split.ram / GIB
        host = ctx.request.host_memory_gib
        out.append(OffloadOption(
            candidate=cand.id, kv=kv.id, notation=f"{cand.notation} KV-{kv.id.upper()}",
            gpu_layers=split.gpu_layers, total_layers=ctx.arch.num_layers,
            vram_gib=round(split.vram / GIB, 2), ram_gib=round(ram_gib, 2),
            ram_fits=None if host is None else ram_gib <= host,
            tpot_ms=round(tpot, 1), decode_tokens_per_s=round(1000 / tpot, 1), ttft_ms=round(ttft, 0),
            concurrency=concurrency, expected_recovery_pct=round(quality.expected_recovery_pct, 2),
            flag=f"-ngl {split.gpu_layers}", checkpoint=checkpoint_use(ctx, cand, runtime),
            note=(f"{split.gpu_layers} of {ctx.arch.num_layers} layers on the GPU, the rest and the token embedding "
                  f"in {ram_gib:,.1f} GiB of system RAM"
                  + ("" if host is None else f" ({host:g} GiB available)")
                  + f"; decode reads {split.cpu_read / 1e9:,.1f} GB per token from RAM at "
                  f"{host_bw / 1e9:g} GB/s effective"),
        ))
    out.sort(key=lambda o: (-o.expected_recovery_pct, o.tpot_ms))
    kept: list[OffloadOption] = []
    for option in out:  # a Pareto walk: more accuracy, or more speed
        if not kept or option.tpot_ms < kept[-1].tpot_ms:
            kept.append(option)
    return kept[:limit]

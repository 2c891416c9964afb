"""``estimate``: the memory picture of one model, weight scheme, KV format and GPU setup.

The request model is shared by the CLI and the Python API; the result carries every figure, the
per-module breakdown and the assumptions behind it in plain words.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from advisor.errors import AdvisorInputError
from advisor.intake.catalog import ResolvedModel, lookup, resolve_model
from advisor.knowledge import load_knowledge
from advisor.knowledge.schema import GPU, Knowledge, KVFormat, Runtime, WeightScheme
from advisor.physics import gguf, memory
from advisor.physics.architecture import Architecture
from advisor.physics.memory import GIB
from advisor.physics.performance import Performance, chunk_tokens_for, estimate_speed, pipeline_for, with_bands

DEFAULT_CONTEXT = 4096
DEFAULT_RUNTIME = "vllm"
MAX_CONTEXT_CAP = 1 << 20  # used when a config gives no max_position_embeddings
SEED_RULE_OF_THUMB = "003_73dbdf88453a93cf.txt"


class EstimateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = Field(min_length=1, max_length=1024)
    weights: str = "native"
    kv: str | None = None  # default: bf16, or fp16 on GPUs without BF16
    context: int = Field(DEFAULT_CONTEXT, gt=0, le=10_000_000)
    concurrency: int = Field(1, gt=0, le=100_000)
    gpu: str | None = None
    gpus: int = Field(1, gt=0, le=64)  # per node: tensor parallel
    nodes: int = Field(1, gt=0, le=16)  # pipeline stages, one per node
    runtime: str = DEFAULT_RUNTIME
    group_size: int | None = Field(None, ge=-1, le=1 << 16)  # -1: per channel (checked against the scheme)
    utilization: float | None = Field(None, gt=0, le=1)
    perf: bool = False  # add the speed model's figures (needs a GPU)
    prompt_tokens: int | None = Field(None, gt=0, le=10_000_000)  # default: context - output
    output_tokens: int = Field(256, gt=0, le=1_000_000)
    activations: str | None = None  # default: what the weight scheme runs as on that GPU
    usd_per_gpu_hour: float | None = Field(None, gt=0, le=1000)  # default: knowledge/gpu_prices.yaml
    # server settings that change its memory accounting; None: the pinned runtime's default on that GPU
    max_num_seqs: int | None = Field(None, gt=0, le=65536)  # vLLM --max-num-seqs (the sampler profile)
    max_num_batched_tokens: int | None = Field(None, gt=0, le=1 << 20)  # vLLM's profile pass / SGLang's chunk
    enforce_eager: bool = False  # no CUDA graphs (vLLM --enforce-eager)
    # account for memory as this older release did (knowledge/runtimes.yaml memory.eras); None: the pinned version
    runtime_version: str | None = Field(None, max_length=40, pattern=r"^[vV]?\d+(\.\d+){0,3}([.+-]?[A-Za-z0-9]+)?$")


class ModuleRow(BaseModel):
    group: str
    params: int
    active_params: int
    format: str
    quantized: bool
    bits_per_weight: float
    bytes: int


class OverheadDetail(BaseModel):
    activations_bytes: int
    non_torch_bytes: int
    cuda_graph_bytes: int = 0
    max_num_batched_tokens: int | None = None  # the profile pass the runtime runs
    max_num_seqs: int | None = None
    headroom_bytes: int  # what the runtime's utilization setting leaves unused (0 without a GPU)
    activation_class: str
    utilization: float
    utilization_flag: str | None


class Savings(BaseModel):
    weights_factor: float  # BF16 weight bytes / these weight bytes
    kv_factor: float  # BF16 KV bytes / these KV bytes
    weights_rule_of_thumb: float | None  # seed 003: 8-bit about 2x, 4-bit about 4x
    kv_rule_of_thumb: float | None
    high_precision_share: float  # fraction of parameters kept in high precision
    why: str
    source: str = SEED_RULE_OF_THUMB


class Estimate(BaseModel):
    model: str
    model_name: str
    weights_scheme: str
    group_size: int | None
    kv_format: str
    context: int
    concurrency: int
    gpu: str | None
    gpus: int  # all of them: tensor parallel x pipeline stages (nodes)
    runtime: str
    runtime_version: str
    tensor_parallel: int = 1
    pipeline_parallel: int = 1  # nodes, one stage each; per-GPU figures are a GPU of the largest stage

    params_total: int
    params_active: int
    params_active_excluding_embedding: int

    weights_bytes: int  # the whole checkpoint once (compare with published sizes)
    weights_bytes_per_gpu: int
    weights_bits_per_weight: float
    kv_cache_bytes: int  # all GPUs
    kv_cache_bytes_per_gpu: int
    kv_bytes_per_token: float  # one token, all layers, one GPU holding every head
    kv_bytes_per_sequence: int  # one sequence at `context`, all GPUs
    overhead_bytes: int  # all GPUs
    overhead: OverheadDetail  # per GPU
    total_bytes: int  # all GPUs: weights share + KV + overhead

    capacity_bytes: int | None = None  # all GPUs, as the driver reports (nvidia-smi)
    visible_bytes_per_gpu: int | None = None  # what the runtime sees as each GPU's total (CUDA mem_get_info)
    weights_loaded_bytes_per_gpu: int | None = None  # after any repacking at load time
    kv_budget_bytes: int | None = None  # per GPU: the KV pool the server allocates (vLLM "Available KV cache memory")
    kv_pool_tokens: int | None = None  # tokens that pool holds ("GPU KV cache size: N tokens", SGLang "#tokens")
    fits: bool | None = None
    fit_hints: list[str] = []  # server settings under which a configuration that does not fit would start
    max_concurrency: int | None = None
    max_context: int | None = None
    context_limit: int

    modules: list[ModuleRow]
    savings: Savings
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    decode_tokens_per_s: float | None = None
    throughput_tokens_per_s: float | None = None
    bound: dict[str, str] | None = None
    cost_per_million_tokens: float | None = None
    performance: Performance | None = None
    assumptions: list[str]
    warnings: list[str]
    sources: list[str]


def _default_kv(gpu: GPU | None) -> str:
    return "fp16" if gpu is not None and not gpu.supports_bf16 else "bf16"


def resolve_layout(
    knowledge: Knowledge, model: ResolvedModel, scheme_id: str, group_size: int | None
) -> tuple[WeightScheme, memory.Layout]:
    scheme = lookup(knowledge.schemes, scheme_id, "--weights", "weight scheme")
    if scheme.model_native:
        base = knowledge.schemes[model.native.scheme]
        overrides = {g: knowledge.schemes[s] for g, s in model.native.overrides.items()}
        native_group = model.native.group_size if group_size is None and base.group_size_overridable else None
        if native_group is not None and native_group not in base.scaling.allowed_group_sizes:  # type: ignore[union-attr]
            raise AdvisorInputError("quantization_config.group_size", f"{native_group} is not a group size the "
                                    f"{base.id} kernels run", value=str(native_group),
                                    choices=[str(g) for g in base.scaling.allowed_group_sizes])  # type: ignore[union-attr]
        return scheme, memory.build_layout(base, knowledge.formats, overrides=overrides,
                                           group_size=group_size if group_size is not None else native_group)
    overrides = {g: knowledge.schemes[s] for g, s in scheme.group_overrides.items()}
    return scheme, memory.build_layout(scheme, knowledge.formats, overrides=overrides, group_size=group_size)


def estimate(request: EstimateRequest, knowledge: Knowledge | None = None, model: ResolvedModel | None = None
             ) -> Estimate:
    """Memory (and with `perf`, speed) of one configuration. `model`: the model already resolved (an uploaded
    config.json through advisor.intake.catalog.model_from_config); otherwise `request.model` is resolved.
    Raises AdvisorInputError naming the field."""
    k = knowledge or load_knowledge()
    model = model or resolve_model(k, request.model)
    arch = model.architecture
    gpu = lookup(k.gpus, request.gpu, "--gpu", "GPU") if request.gpu else None
    runtime: Runtime = lookup(k.runtimes, request.runtime, "--runtime", "runtime")
    kv: KVFormat = lookup(k.kv_formats, request.kv or _default_kv(gpu), "--kv", "KV-cache format")
    scheme, layout = resolve_layout(k, model, request.weights, request.group_size)
    tp, pp = request.gpus, request.nodes
    memory.check_tensor_parallel(arch, tp)
    if pp > 1:
        if pp > arch.num_layers:
            raise AdvisorInputError("--nodes", f"{pp} pipeline stages is more than {model.name}'s {arch.num_layers} "
                                    "layers", value=str(pp))
        if runtime.multinode is None or not runtime.multinode.supported:
            why = runtime.multinode.reason if runtime.multinode is not None else "no multi-node serving on file"
            raise AdvisorInputError("--nodes", f"{runtime.name} {runtime.version} cannot span nodes: {why}",
                                    value=str(pp), choices=[r.id for r in k.runtimes.values()
                                                            if r.multinode is not None and r.multinode.supported])
    n = tp * pp  # GPUs in all

    modules = memory.weight_breakdown(arch, layout)
    weights = sum(m.bytes for m in modules)
    per_tensor = gguf.scheme_bytes(arch, scheme.id)  # GGUF: llama.cpp's per-tensor types, not the file average
    groups = gguf.scheme_group_bytes(arch, scheme.id) if per_tensor else None
    if per_tensor and groups:
        modules = [m.model_copy(update={"bytes": groups.get(m.group, m.bytes),
                                        "bits_per_weight": 8 * groups.get(m.group, m.bytes) / m.params})
                   for m in modules]
        weights = sum(m.bytes for m in modules)
    params_total = sum(m.params for m in modules)
    params_active = sum(m.active_params for m in modules)
    embedding = next((m.params for m in modules if m.group == "embedding"), 0)
    weights_gpu = memory.weights_per_gpu(arch, layout, tp)
    if pp > 1:  # a GPU of the largest pipeline stage
        weights_gpu = max(math.ceil(m / tp) + math.ceil(v) for m, v in memory.stage_weight_bytes(arch, layout, pp))
    if per_tensor:
        weights_gpu = round(weights_gpu * per_tensor / max(1, sum(m.bytes for m in memory.weight_breakdown(arch, layout))))

    limit = arch.max_position or MAX_CONTEXT_CAP
    kv_seq_gpu = memory.kv_bytes_per_sequence(arch, kv, request.context, tp, pp)
    kv_gpu = kv_seq_gpu * request.concurrency
    gpu_gib = gpu.memory_gib if gpu else 80.0
    if request.runtime_version:
        if not runtime.memory.eras:
            raise AdvisorInputError("--runtime-version", f"{runtime.name} has no older accounting on file; only "
                                    f"the pinned {runtime.version} is modelled",
                                    choices=[r.id for r in k.runtimes.values() if r.memory.eras])
        mem, era_notes = memory.memory_for_version(runtime.memory, request.runtime_version)
        runtime = runtime.model_copy(update={"memory": mem})
    else:
        era_notes = []
    overhead = memory.runtime_overhead(runtime.memory, arch, tp, request.context * request.concurrency,
                                       gpu_gib=gpu_gib, gpu_name=gpu.name if gpu else "",
                                       max_num_seqs=request.max_num_seqs,
                                       max_num_batched_tokens=request.max_num_batched_tokens,
                                       enforce_eager=request.enforce_eager, context=request.context)
    if pp > 1 and tp == 1:  # one GPU per stage, still in a distributed group: the multi-GPU non-torch figure
        overhead = overhead.model_copy(update={"non_torch_per_gpu": memory.non_torch_bytes(runtime.memory, n)})
    reserved = k.decision["driver-reserved-fraction"].value
    util = request.utilization
    if util is None:
        util = (memory.default_utilization(runtime.memory, gpu.visible_bytes(reserved), tp,
                                           request.max_num_batched_tokens) if gpu else
                runtime.memory.utilization_default)

    capacity = fits = max_conc = max_ctx = visible = loaded = budget = pool = None
    headroom_gpu = 0
    hints: list[str] = []
    if gpu is not None:
        visible = gpu.visible_bytes(reserved)
        repack = memory.repack_bytes_per_gpu(runtime.memory, modules, gpu.architecture, tp)
        loaded = weights_gpu + (math.ceil(repack * memory.stage_layer_share(arch.num_layers, pp)) if pp > 1 else repack)
        budget = memory.kv_budget_per_gpu(runtime.memory, visible, loaded, overhead.per_gpu, util,
                                          overhead.non_torch_per_gpu)
        pool = memory.kv_pool_tokens(arch, kv, budget, tp, runtime.memory.block_tokens, runtime.memory.kv_groups, pp)
        headroom_gpu = max(0, gpu.memory_bytes - loaded - overhead.per_gpu - max(budget, 0))
        capacity = gpu.memory_bytes * n
        fits = budget >= kv_gpu and budget >= 0
        max_conc = memory.max_concurrency(arch, kv, request.context, budget, tp, pp)
        max_ctx = memory.max_context(arch, kv, request.concurrency, budget, tp, limit, pp)
        if not fits:
            hints = _fit_hints(runtime, arch, tp, request, visible, loaded, overhead, kv_gpu, util, gpu_gib, gpu,
                               k.decision["fit-hint-max-utilization"].value)

    overhead_gpu = overhead.per_gpu + headroom_gpu
    bf16_layout = memory.build_layout(k.schemes["bf16"], k.formats)
    bf16_weights = sum(m.bytes for m in memory.weight_breakdown(arch, bf16_layout))
    bf16_kv = memory.kv_bytes_per_sequence(arch, k.kv_formats["bf16"], request.context, 1)
    kv_seq_one = memory.kv_bytes_per_sequence(arch, kv, request.context, 1)

    warnings = list(arch.notes)
    if era_notes:
        warnings.append(f"memory accounted as {runtime.name} {request.runtime_version} did it, not the pinned "
                        f"{runtime.version}: " + "; ".join(era_notes))
    warnings += _compatibility_warnings(k, gpu, runtime, kv, layout, request)
    if request.context > limit:
        warnings.append(f"context {request.context} exceeds the model's max_position_embeddings {limit}")

    perf = _performance(k, request, arch, scheme, layout, kv, gpu, runtime) if request.perf else None

    return Estimate(
        model=model.id,
        model_name=model.name,
        weights_scheme=scheme.id,
        group_size=layout.group_size,
        kv_format=kv.id,
        context=request.context,
        concurrency=request.concurrency,
        gpu=gpu.id if gpu else None,
        gpus=n,
        tensor_parallel=tp,
        pipeline_parallel=pp,
        runtime=runtime.id,
        runtime_version=request.runtime_version or runtime.version,
        params_total=params_total,
        params_active=params_active,
        params_active_excluding_embedding=params_active - embedding,
        weights_bytes=weights,
        weights_bytes_per_gpu=weights_gpu,
        weights_bits_per_weight=8 * weights / params_total,
        kv_cache_bytes=kv_gpu * n,
        kv_cache_bytes_per_gpu=kv_gpu,
        kv_bytes_per_token=memory.kv_bytes_per_token_full(arch, kv),
        kv_bytes_per_sequence=kv_seq_gpu * n,
        overhead_bytes=overhead_gpu * n,
        overhead=OverheadDetail(
            activations_bytes=overhead.activation_per_gpu,
            non_torch_bytes=overhead.non_torch_per_gpu,
            cuda_graph_bytes=overhead.cuda_graph_per_gpu,
            max_num_batched_tokens=overhead.max_num_batched_tokens,
            max_num_seqs=overhead.max_num_seqs,
            headroom_bytes=headroom_gpu,
            activation_class=overhead.activation_class,
            utilization=util,
            utilization_flag=runtime.memory.utilization_flag,
        ),
        total_bytes=((loaded or weights_gpu) + kv_gpu + overhead_gpu) * n,
        capacity_bytes=capacity,
        visible_bytes_per_gpu=visible,
        weights_loaded_bytes_per_gpu=loaded,
        kv_budget_bytes=budget,
        kv_pool_tokens=pool,
        fit_hints=hints,
        fits=fits,
        max_concurrency=max_conc,
        max_context=max_ctx,
        context_limit=limit,
        modules=[ModuleRow(**m.model_dump()) for m in modules],
        savings=_savings(k, layout, params_total, modules, weights, bf16_weights, kv, bf16_kv, kv_seq_one),
        assumptions=_assumptions(k, model, scheme, layout, kv, runtime, gpu, tp, overhead, util, arch, modules,
                                 request.runtime_version, pp),
        warnings=warnings,
        sources=_sources(k, model, scheme, layout, kv, runtime, gpu),
        **(_perf_fields(perf) if perf else {}),
    )


def _fit_hints(runtime: Runtime, arch: Architecture, tp: int, request: EstimateRequest, visible: int, loaded: int,
               overhead: memory.Overhead, kv_gpu: int, util: float, gpu_gib: float, gpu: GPU,
               max_utilization: float) -> list[str]:
    """Settings under which a configuration that does not fit would start: a higher memory fraction (up to
    ``max_utilization``, decision.yaml fit-hint-max-utilization),
    or, for a runtime that profiles its sampler, a sequence limit of the concurrency asked for."""
    hints = []
    m = runtime.memory
    if m.utilization_of == "total":
        needed = (loaded + overhead.per_gpu + kv_gpu) / visible
        if util < needed <= max_utilization:
            hints.append(f"it fits at {m.utilization_flag or 'a memory fraction of'} {needed + 0.005:.2f} "
                         f"(instead of {util:g})")
    if m.activation.kind == "profile" and (overhead.max_num_seqs or 0) > request.concurrency:
        small = memory.runtime_overhead(m, arch, tp, 0, gpu_gib=gpu_gib, gpu_name=gpu.name,
                                        max_num_seqs=request.concurrency,
                                        max_num_batched_tokens=request.max_num_batched_tokens,
                                        enforce_eager=request.enforce_eager, context=request.context)
        budget = memory.kv_budget_per_gpu(m, visible, loaded, small.per_gpu, util, small.non_torch_per_gpu)
        if budget >= kv_gpu:
            hints.append(f"it fits with --max-num-seqs {request.concurrency}: the sampler profile of "
                         f"{overhead.max_num_seqs:,} sequences takes {overhead.activation_per_gpu / GIB:.2f} GiB, "
                         f"{request.concurrency} take {small.activation_per_gpu / GIB:.2f} GiB")
    return hints


def default_activations(k: Knowledge, layout: memory.Layout, gpu: GPU) -> str:
    """What the weights run as on this GPU: a weight-activation method quantizes activations to the
    weights' format when the GPU multiplies it natively (FP8 W8A8 on Hopper); otherwise the matmuls
    run at 16 bits (the same FP8 weights run W8A16 through Marlin on an A100)."""
    sixteen = "bf16" if gpu.supports_bf16 else "fp16"
    scheme = k.schemes[layout.scheme]
    method = k.methods.get(scheme.method) if scheme.method else None
    if method is not None and method.kind == "weight-activation" and scheme.format in gpu.native_formats:
        return scheme.format
    return sixteen


def _performance(k: Knowledge, request: EstimateRequest, arch, scheme: WeightScheme, layout: memory.Layout,
                 kv: KVFormat, gpu: GPU | None, runtime: Runtime) -> Performance:
    if gpu is None:
        raise AdvisorInputError("--perf", "needs a GPU: add --gpu", choices=list(k.gpus))
    activations = request.activations or default_activations(k, layout, gpu)
    if activations not in k.formats:
        raise AdvisorInputError("--activations", f"unknown numeric format {activations!r}", value=activations,
                                choices=list(k.formats))
    output = request.output_tokens
    prompt = request.prompt_tokens or max(1, request.context - output)
    speed = next(sp for sp in k.speed.values() if sp.runtime == runtime.id)
    price = request.usd_per_gpu_hour or gpu_price(k, gpu.id)
    quantized = any(st.quantized for g, st in layout.groups.items() if g in ("attention", "mlp", "experts"))
    weight_only = quantized and activations in ("bf16", "fp16")
    chunk = request.max_num_batched_tokens or chunk_tokens_for(runtime.memory, gpu, request.gpus)
    return with_bands(estimate_speed(arch, layout, kv, gpu, request.gpus, activations, weight_only, prompt, output,
                                     request.concurrency, speed, price, chunk,
                                     pipeline_for(k.decision, gpu, request.nodes)), k.decision)


def gpu_price(k: Knowledge, gpu_id: str) -> float | None:
    prices = [p.usd_per_hour for p in k.gpu_prices.values() if p.gpu == gpu_id]
    return min(prices) if prices else None


def _perf_fields(perf: Performance) -> dict:
    return {"ttft_ms": perf.ttft_ms, "tpot_ms": perf.tpot_ms, "decode_tokens_per_s": perf.decode_tokens_per_s,
            "throughput_tokens_per_s": perf.throughput_tokens_per_s, "bound": perf.bound,
            "cost_per_million_tokens": perf.cost_per_million_tokens, "performance": perf}


def _nominal_bits(k: Knowledge, format_id: str) -> int:
    return k.formats[format_id].bits


def _savings(
    k: Knowledge,
    layout: memory.Layout,
    params_total: int,
    modules: list[memory.ModuleBytes],
    weights: int,
    bf16_weights: int,
    kv: KVFormat,
    bf16_kv: int,
    kv_seq: int,
) -> Savings:
    quantized = [m for m in modules if m.quantized]
    high_share = 1 - sum(m.params for m in quantized) / params_total
    formats = {m.format for m in quantized}
    weight_bits = min((_nominal_bits(k, f) for f in formats), default=16)
    thumb = {8: 2.0, 4: 4.0}
    kv_bits = _nominal_bits(k, kv.format)
    reasons = []
    if quantized and high_share > 0.001:
        kept = ", ".join(m.group for m in modules if not m.quantized)
        reasons.append(f"{high_share:.1%} of the parameters stay in high precision ({kept})")
    overhead_bits = [
        m.bits_per_weight - _nominal_bits(k, m.format)
        for m in quantized
        if m.format in k.formats and k.schemes[layout.scheme].scaling is not None
    ]
    if overhead_bits and max(overhead_bits) > 0.01:
        reasons.append(f"scales and zero points add up to {max(overhead_bits):.3f} bits per quantized weight")
    if kv.block_size or kv.scale_bytes_per_token_head:
        reasons.append("the KV format stores scales beside the values")
    if not reasons:
        reasons.append("no quantization overhead: the saving is the plain ratio of bit widths")
    return Savings(
        weights_factor=bf16_weights / weights,
        kv_factor=bf16_kv / kv_seq if kv_seq else 1.0,
        weights_rule_of_thumb=thumb.get(weight_bits) if quantized else None,
        kv_rule_of_thumb=thumb.get(kv_bits),
        high_precision_share=high_share,
        why="Real savings differ from the rule of thumb because " + "; ".join(reasons) + ".",
    )


def _compatibility_warnings(
    k: Knowledge, gpu: GPU | None, runtime: Runtime, kv: KVFormat, layout: memory.Layout, request: EstimateRequest
) -> list[str]:
    out = []
    if runtime.id not in kv.runtime_flags:
        served = ", ".join(kv.runtime_flags) or "none"
        out.append(f"{runtime.name} has no {kv.id} KV cache (runtimes that do: {served})")
    uses_bf16 = kv.format == "bf16" or any(s.format == "bf16" for s in layout.groups.values())
    if gpu is not None and not gpu.supports_bf16 and uses_bf16:
        out.append(f"{gpu.name} has no BF16: runtimes load BF16 tensors as FP16 (same bytes)")
    return out


def _gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def _assumptions(
    k: Knowledge,
    model: ResolvedModel,
    scheme: WeightScheme,
    layout: memory.Layout,
    kv: KVFormat,
    runtime: Runtime,
    gpu: GPU | None,
    tp: int,
    overhead: memory.Overhead,
    util: float,
    arch: Architecture,
    modules: list[memory.ModuleBytes],
    version: str | None = None,
    pp: int = 1,
) -> list[str]:
    present = {m.group for m in modules}
    quantized = [g for g, s in layout.groups.items() if s.quantized and g in present and g != "norms"]
    kept = [g for g, s in layout.groups.items() if not s.quantized and g in present]
    lines = []
    if scheme.model_native:
        lines.append(
            f"Weights: the model's native checkpoint layout ({model.native.scheme}"
            + "".join(f", {g} in {s}" for g, s in model.native.overrides.items())
            + ")."
        )
    else:
        lines.append(
            f"Weights: {scheme.name}. Quantized: {', '.join(quantized) or 'none'}; "
            f"kept in {scheme.high_precision_format.upper()}: {', '.join(kept)}; vectors (norms, biases) "
            f"at {layout.vector_bits} bits. {scheme.keeps_note}".strip()
        )
    if arch.mla is not None:
        kv_shape = f"one MLA latent of {arch.mla.cached_dim} values per token per layer"
    else:
        kv_shape = f"K and V for {arch.num_kv_heads} KV heads x head_dim {arch.head_dim} per token per layer"
    lines.append(
        f"KV cache: {kv.name}, {kv.bytes_per_element(arch.mla.cached_dim if arch.mla else arch.head_dim):.4g} "
        f"byte(s) per element, scales included; {kv_shape} over {arch.num_layers} layers."
    )
    if arch.sliding_layers:
        windows = sorted({w for w in arch.layer_windows if w})
        lines.append(
            f"{arch.sliding_layers} of {arch.num_layers} layers use a sliding window of "
            f"{', '.join(map(str, windows))} tokens and hold at most that many tokens."
        )
    act = runtime.memory.activation
    basis = {"constant": f"{overhead.activation_class}: a measured constant",
             "none": "outside the runtime's memory fraction"}.get(act.kind, overhead.activation_class)
    graphs = f", CUDA graphs {_gib(overhead.cuda_graph_per_gpu)}" if overhead.cuda_graph_per_gpu else ""
    lines.append(
        f"Runtime overhead ({runtime.name} {version or runtime.version}) per GPU: activations "
        f"{_gib(overhead.activation_per_gpu)} ({basis}){graphs}, CUDA context and other non-PyTorch memory "
        f"{_gib(overhead.non_torch_per_gpu)}."
    )
    if gpu is not None:
        share = {"total": "of the memory CUDA reports",
                 "free": "of the memory left after weights and buffers",
                 "preload": "of the memory free before loading for weights plus KV cache"}[runtime.memory.utilization_of]
        lines.append(
            f"{runtime.name} uses {util:.0%} {share}"
            + (f" ({runtime.memory.utilization_flag})" if runtime.memory.utilization_flag else "")
            + "; the rest is counted as headroom in the overhead. Capacity: "
            f"{gpu.memory_gib:g} GiB per {gpu.name} as nvidia-smi reports it"
            + (" (unverified figure)" if "memory_gib" in gpu.unverified else "")
            + f", {gpu.visible_bytes(k.decision['driver-reserved-fraction'].value) / GIB:.2f} GiB as CUDA reports "
            "it to the runtime"
            + ("" if gpu.visible_gib else " (less the driver's usual reserve; no log on file)") + "."
        )
    if tp > 1:
        split = (
            "the MLA latent is replicated on every GPU"
            if arch.mla
            else "KV heads split across GPUs"
            if arch.num_kv_heads >= tp
            else "KV heads replicated (fewer KV heads than GPUs)"
        )
        lines.append(f"Tensor parallelism over {tp} GPUs: weight matrices split evenly, norms replicated, {split}.")
    if pp > 1:
        parts = memory.pipeline_partition(arch.num_layers, pp)
        lines.append(f"Pipeline parallelism over {pp} nodes of {tp} GPU(s), tensor parallel inside each node: layers "
                     f"{' + '.join(map(str, parts))} per stage (vLLM's split), the embedding on the first stage and "
                     "the LM head on the last (both, with tied embeddings); figures per GPU are a GPU of the largest "
                     "stage, its KV cache that stage's share of the layers.")
    lines.append(
        "KV bytes follow the exact formula; runtimes allocate in blocks (vLLM: 16 tokens), "
        "so real capacity can be a block short per sequence."
    )
    lines.append("Units: GiB = 2^30 bytes; checkpoint sizes also in decimal GB (10^9) to compare with file listings.")
    return lines


def _sources(
    k: Knowledge,
    model: ResolvedModel,
    scheme: WeightScheme,
    layout: memory.Layout,
    kv: KVFormat,
    runtime: Runtime,
    gpu: GPU | None,
) -> list[str]:
    """Each source prefixed with what it backs: model config, weights, KV cache, runtime, GPU."""
    used_schemes = [scheme.id] + sorted({s.scheme for s in layout.groups.values()} - {scheme.id})
    parts: list[tuple[str, list[str]]] = [("model config", model.source)]
    parts += [(f"weights {s}", k.schemes[s].sources) for s in used_schemes]
    parts += [
        (f"KV cache {kv.id}", kv.sources),
        (f"runtime {runtime.id}", _as_list(runtime.memory.source) + _as_list(runtime.memory.activation.source)),
    ]
    if gpu is not None:
        parts.append((f"GPU {gpu.id}", gpu.sources))
    out: list[str] = []
    for label, items in parts:
        for item in items:
            line = f"{label}: {item}"
            if line not in out:
                out.append(line)
    return out


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


__all__ = ["AdvisorInputError", "Estimate", "EstimateRequest", "estimate"]

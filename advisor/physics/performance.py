"""Speed: a roofline per phase, prefill and each decode step, for one configuration and workload.

Each phase takes the larger of
  compute time = FLOPs / (dense tensor peak of the precision the matmuls run in x achievable fraction)
  memory time  = bytes moved / (memory bandwidth x achievable fraction)
plus the runtime's fixed per-step cost and, under tensor parallelism, the all-reduces over the GPUs' link.

- Weight-only schemes run their matmuls at the 16-bit peak and pay a dequantization overhead; W8A8 runs at
  the FP8 or INT8 peak; FP4 at the FP4 peak where the GPU has one (else the 16-bit peak).
- A decode step reads the weights once (for MoE: the shared weights plus the experts the batch touches)
  and every sequence's KV cache; attention FLOPs grow with the context.
- Continuous batching: a request's prefill and its share of the batch's decode steps interleave, so the
  aggregate output rate is concurrency x output tokens / (concurrency x prefill time + output x step time).
- Pipeline parallelism over ``pp`` nodes (tensor parallel ``tp`` inside each): every token passes every stage in
  turn, so a decode step still reads all the weights once per micro-batch - the weight-read time does not shrink
  with pp. With b sequences the runtime keeps m = min(b, pp) micro-batches in flight, one per stage; the stages
  work on different micro-batches at once, so a sequence's step is one pass of a micro-batch of b / m sequences
  through all the layers at tensor parallel tp (its matmuls, KV reads and all-reduces are a 1/m share of the
  batch's; the all-reduces' fixed latency is not), plus pp - 1 hops between nodes, each the inter-node latency plus
  the micro-batch's activations over the GPU's inter-node bandwidth. A batch smaller than pp leaves stages idle
  (the pipeline bubble): one sequence alone gets no speed-up at all and pays the hops. A prompt passes the stages in
  sequence: its prefill is the single-node prefill at tp plus the hops with the prompt's activations.

:class:`ModelCost` holds what depends only on the model and its weight layout, so the decision search
computes it once per weight scheme; :class:`SpeedModel` holds one configuration (weights, runtime, GPU count,
workload) and gives its speed with each KV format and at each concurrency the search tries. All pure functions; constants come from
knowledge/speed.yaml and knowledge/gpus.yaml.
"""

from __future__ import annotations

from pydantic import BaseModel

from advisor.fastmodel import construct
from advisor.knowledge.schema import GPU, KVFormat, RuntimeMemory, RuntimeSpeed
from advisor.physics.architecture import Architecture, tensor_inventory
from advisor.physics.memory import Layout, weight_breakdown

SIXTEEN_BIT = ("bf16", "fp16")


class Phase(BaseModel):
    seconds: float
    compute_seconds: float
    memory_seconds: float
    comm_seconds: float
    bound: str  # compute | memory


class Performance(BaseModel):
    ttft_ms: float
    tpot_ms: float
    decode_tokens_per_s: float  # one request
    throughput_tokens_per_s: float  # all requests, output tokens
    bound: dict[str, str]  # prefill / decode -> compute | memory
    matmul_precision: str  # the peak the matmuls ran at
    peak_tflops: float
    cost_per_million_tokens: float | None = None  # output tokens, USD, when a GPU price is known
    usd_per_gpu_hour: float | None = None
    prefill: Phase
    decode: Phase
    assumptions: list[str]
    # +/- percent bands from the held-out error by regime (decision.yaml speed-band-*); None where not attached
    bands_pct: dict[str, float] | None = None


def matmul_precision(gpu: GPU, activations: str) -> str:
    """The tensor-core precision the matmuls run in: the activation format if the GPU runs it natively."""
    table = gpu.dense_tflops
    if activations in ("nvfp4", "mxfp4", "fp4"):
        return "fp4" if table.fp4 else _sixteen(gpu)
    if activations in ("fp8", "mxfp8"):
        return "fp8" if table.fp8 else _sixteen(gpu)
    if activations == "int8":
        return "int8" if table.int8 else _sixteen(gpu)
    return _sixteen(gpu)


def _sixteen(gpu: GPU) -> str:
    return "bf16" if gpu.dense_tflops.bf16 else "fp16"


def _peak_flops(gpu: GPU, precision: str) -> float:
    value = getattr(gpu.dense_tflops, precision) or gpu.dense_tflops.bf16 or gpu.dense_tflops.fp16
    return float(value) * 1e12


class ModelCost:
    """Per-token FLOPs and per-step bytes of one model and weight layout (whole model, before any split)."""

    def __init__(self, arch: Architecture, layout: Layout):
        self.arch = arch
        tensors = tensor_inventory(arch)
        modules = {m.group: m for m in weight_breakdown(arch, layout)}
        # matmul FLOPs per token: 2 x the matrices a token passes through (embedding lookup excluded)
        self.matmul_params = sum(t.active_params for t in tensors if t.is_matrix and t.group != "embedding")
        self.expert_params = sum(t.active_params for t in tensors if t.is_matrix and t.group == "experts")
        self.moe_layers = len(arch.moe_layers) if arch.moe_layers else (arch.num_layers if arch.is_moe else 0)
        self.expert_bytes = modules["experts"].bytes if "experts" in modules else 0
        # the embedding is a lookup: one row per token, negligible next to the matrices
        self.dense_bytes = sum(m.bytes for g, m in modules.items() if g not in ("experts", "embedding"))
        self.routed = arch.num_experts
        self.top_k = arch.experts_per_token
        if arch.mla is not None:
            self.attn_per_head = arch.mla.qk_nope_head_dim + arch.mla.qk_rope_head_dim + arch.mla.v_head_dim
        else:
            self.attn_per_head = 2 * arch.head_dim
        self.windows = arch.window_counts  # (window or None for full attention, layers)
        self.kv_dim = arch.mla.cached_dim if arch.mla else arch.head_dim
        self.kv_vectors = 1 if arch.mla else 2 * arch.num_kv_heads  # cached vectors per token and layer

    def weight_bytes_touched(self, batch: float) -> float:
        """Bytes of weights one step reads: everything dense, plus the experts `batch` tokens select."""
        if not self.routed:
            return self.dense_bytes
        touched = 1 - (1 - self.top_k / self.routed) ** batch  # expected share of experts hit
        return self.dense_bytes + self.expert_bytes * touched

    def attention_flops(self, positions: float, tokens: float) -> float:
        """QK^T and AV FLOPs for `tokens` new tokens attending to `positions` cached ones each, all layers."""
        per = 2 * self.arch.num_heads * self.attn_per_head * tokens
        return sum(per * (positions if w is None else min(positions, w)) * n for w, n in self.windows)

    def kv_token_layers(self, context: float) -> float:
        """Token-layers one sequence of `context` tokens holds (a sliding layer holds at most its window)."""
        return sum((context if w is None else min(context, w)) * n for w, n in self.windows)

    def kv_bytes_per_token_layer(self, kv: KVFormat) -> float:
        """Bytes of K and V one token adds to one layer, all heads (before any split over GPUs)."""
        return kv.bytes_per_vector(self.kv_dim) * self.kv_vectors


PCIE_MAX_GBPS = 128.0  # decision.yaml pcie-link-max-gbps: at or below it, gpus.yaml interconnect_gbps is a PCIe link


def link_kind(gpu: GPU) -> str:
    """nvlink (NVLink / Infinity Fabric) or pcie, from the GPU's per-GPU link bandwidth (gpus.yaml)."""
    return "pcie" if (gpu.interconnect_gbps or 32.0) <= PCIE_MAX_GBPS else "nvlink"


def _allreduce_seconds(arch: Architecture, gpu: GPU, tp: int, tokens: float, speed: RuntimeSpeed) -> float:
    """Two ring all-reduces of the BF16 hidden states per layer, over the link's measured effective bandwidth."""
    if tp <= 1:
        return 0.0
    eff = speed.allreduce_pcie_efficiency if link_kind(gpu) == "pcie" else speed.allreduce_nvlink_efficiency
    link = (gpu.interconnect_gbps or 32.0) * 1e9 * eff  # GB/s per GPU
    message = tokens * arch.hidden_size * 2  # BF16 activations
    per_op = 2 * (tp - 1) / tp * message / link + speed.allreduce_latency_us * 1e-6
    return 2 * arch.num_layers * per_op  # one after attention, one after the MLP, per layer


def _phase(compute: float, memory: float, comm: float, overhead: float) -> Phase:
    core = max(compute, memory)
    return construct(Phase, seconds=core + comm + overhead, compute_seconds=compute, memory_seconds=memory,
                     comm_seconds=comm, bound="compute" if compute >= memory else "memory")


def _saturation(rows: float, half: float) -> float:
    """Share of the large-matmul rate a matmul of `rows` rows reaches (rows / (rows + half))."""
    return rows / (rows + half) if half > 0 else 1.0


def _matmul_seconds(cost: ModelCost, tokens: float, flops_per_param: float, rate: float, half: float) -> float:
    """Time of one pass's weight matmuls over `tokens` tokens: dense layers at `tokens` rows, MoE experts as grouped
    GEMMs at tokens x top-k / experts rows each (per-expert work is not dense work)."""
    dense = (cost.matmul_params - cost.expert_params) * flops_per_param * tokens
    seconds = dense / (rate * _saturation(tokens, half))
    if cost.expert_params:
        per_expert = tokens * cost.top_k / cost.routed
        seconds += cost.expert_params * flops_per_param * tokens / (rate * _saturation(per_expert, half))
    return seconds


class Pipeline:
    """Pipeline parallelism across nodes: `stages` (nodes, tensor parallel inside each), what one hop between nodes
    costs (knowledge/decision.yaml internode-latency-us; internode-gbps-per-gpu unless gpus.yaml gives the GPU's
    internode_gbps) and how many hidden-size BF16 tensors per token a hop carries (pipeline-activation-tensors)."""

    __slots__ = ("stages", "gbps", "latency_us", "tensors")

    def __init__(self, stages: int, gbps: float, latency_us: float, tensors: float = 2.0):
        self.stages, self.gbps, self.latency_us, self.tensors = stages, gbps, latency_us, tensors

    def hop_seconds(self, arch: Architecture, tokens: float) -> float:
        """One hop between stages: the latency plus `tokens` tokens' activations over the GPU's inter-node link."""
        return self.latency_us * 1e-6 + self.tensors * tokens * arch.hidden_size * 2 / (self.gbps * 1e9)

    def hops_seconds(self, arch: Architecture, tokens: float) -> float:
        """The pp - 1 hops one pass (a micro-batch of `tokens` tokens) makes through the stages."""
        return (self.stages - 1) * self.hop_seconds(arch, tokens) if self.stages > 1 else 0.0


def _rig(cost: ModelCost, gpu: GPU, tp: int, activations: str, weight_only: bool, rt: RuntimeSpeed) -> dict:
    """A :class:`SpeedModel`'s rates and fixed costs: its attributes that depend on the weights, GPU, TP size and
    runtime only."""
    precision = matmul_precision(gpu, activations)
    if weight_only and rt.quantized_matmul_precision and getattr(gpu.dense_tflops, rt.quantized_matmul_precision):
        precision, weight_only = rt.quantized_matmul_precision, False  # e.g. llama.cpp MMQ: INT8, no dequant pass
    matmul = gpu.matmul_efficiency  # the best a matmul reaches on this GPU (knowledge/gpus.yaml)
    peak_one = _peak_flops(gpu, precision)
    best = peak_one * matmul * tp
    prefill_eff = rt.prefill_efficiency or rt.compute_efficiency
    cap = float("inf")  # what the runtime's own kernels reach, per GPU
    if rt.max_matmul_tflops_per_sm and gpu.sm_count:
        cap = rt.max_matmul_tflops_per_sm * gpu.sm_count * 1e12 * tp
    elif rt.max_matmul_tflops:
        cap = rt.max_matmul_tflops * 1e12 * tp
    mem_eff = rt.memory_efficiency_hbm if gpu.hbm and rt.memory_efficiency_hbm else rt.memory_efficiency
    dequant = 1 + rt.dequant_overhead if weight_only else 1.0  # quantized weights, 16-bit matmuls
    layers = cost.arch.num_layers
    return {
        "precision": precision, "weight_only": weight_only, "matmul": matmul, "peak_one": peak_one,
        "prefill_eff": prefill_eff, "prefill_rate": min(best * prefill_eff, cap),
        "decode_rate": min(best * rt.compute_efficiency, cap), "half": rt.matmul_half_tokens, "mem_eff": mem_eff,
        "bandwidth": gpu.memory_bandwidth_tbps * 1e12 * mem_eff * tp, "dequant": dequant, "layers": layers,
        "per_param": 2 * dequant,  # FLOPs per active parameter and token
        "moe_floor": cost.moe_layers * rt.moe_layer_floor_us * 1e-6,
        "layer_overhead": rt.step_overhead_per_layer_us * layers * 1e-6,
    }


# (id(cost), id(gpu), tp, activations, weight_only, id(runtime speed)) -> (cost, gpu, speed row, _rig(...), KV bytes)
_RIGS: dict[tuple, tuple] = {}


class SpeedModel:
    """The speed of one configuration at any KV format and concurrency: a replica of `tp` GPUs (with `pipeline`, of
    `pipeline.stages` stages of `tp` GPUs each) serving requests of `prompt_tokens` in and `output_tokens` out
    (module docstring). What depends on neither - the rates, the bandwidth, each pass's matmuls, attention FLOPs
    and all-reduces - is worked out once; the KV format only adds the bytes its cache moves. So the search's KV
    formats and concurrency ladder share one setup per weights, runtime and GPU count; :meth:`at` gives one point.

    `chunk_tokens` is the runtime's prompt tokens per pass on this GPU (default: speed.yaml prefill_chunk_tokens);
    `cache` (optional) keeps the passes' KV-independent parts between models of the same model cost, GPU and
    runtime (the search passes one dict per endpoint).
    """

    def __init__(self, cost: ModelCost, gpu: GPU, tp: int, activations: str, weight_only: bool,
                 prompt_tokens: int, output_tokens: int, rt: RuntimeSpeed, usd_per_gpu_hour: float | None = None,
                 *, cache: dict | None = None, chunk_tokens: int | None = None, pipeline: Pipeline | None = None):
        self.cost, self.gpu, self.tp, self.rt = cost, gpu, tp, rt
        self.prompt_tokens, self.output_tokens, self.usd_per_gpu_hour = prompt_tokens, output_tokens, usd_per_gpu_hour
        self.cache = cache
        # what depends on neither the shape nor the price, shared by models of the same weights, GPU and runtime
        key = (id(cost), id(gpu), tp, activations, weight_only, id(rt))
        rig = _RIGS.get(key)
        if rig is None or rig[0] is not cost or rig[1] is not gpu or rig[2] is not rt:
            if len(_RIGS) > 20_000:
                _RIGS.clear()
            rig = _RIGS[key] = (cost, gpu, rt, _rig(cost, gpu, tp, activations, weight_only, rt), {})
        self.__dict__.update(rig[3])
        self._kv: dict[str, float] = rig[4]  # KV format -> bytes one token adds to one layer (shared)
        self.pipeline = pipeline
        self.pp = pipeline.stages if pipeline is not None and pipeline.stages > 1 else 1
        # decode at the average context over the generation
        self.context = prompt_tokens + output_tokens / 2
        self.token_layers = cost.kv_token_layers(self.context)
        self.chunk_size = chunk_tokens or rt.prefill_chunk_tokens
        self.per_chunk = max(1, self.chunk_size // prompt_tokens)
        self._passes: dict[tuple[float, float], tuple[float, float, float, float]] = {}
        self._prefills: dict[tuple[str, float, float], Phase] = {}
        self._steps: dict[float, tuple[float, float, float]] = {}

    def _kv_bytes(self, kv: KVFormat) -> float:
        per = self._kv.get(kv.id)
        if per is None:
            per = self._kv[kv.id] = self.cost.kv_bytes_per_token_layer(kv)
        return per

    def _pass_parts(self, tokens: float, positions: float) -> tuple[float, float, float, float]:
        """A prefill pass's compute seconds, weight bytes read, all-reduce seconds and fixed overhead: all but the
        KV bytes it writes."""
        parts = self._passes.get((tokens, positions))
        if parts is None:
            cost, rt, cache = self.cost, self.rt, self.cache
            key = (id(cost), self.gpu.id, self.tp, self.precision, self.weight_only, rt.id, tokens, positions)
            parts = cache.get(key) if cache is not None else None
            if parts is None:
                compute = (_matmul_seconds(cost, tokens, self.per_param, self.prefill_rate, self.half)
                           + cost.attention_flops(positions / 2, tokens) / self.prefill_rate)
                parts = (compute, cost.weight_bytes_touched(tokens),
                         _allreduce_seconds(cost.arch, self.gpu, self.tp, tokens, rt),
                         rt.prefill_overhead_ms / 1000 + self.moe_floor)
                if cache is not None:
                    cache[key] = parts
            self._passes[(tokens, positions)] = parts
        return parts

    def _prefill_pass(self, kv: KVFormat, tokens: float, positions: float) -> Phase:
        """`tokens` prompt tokens in one pass, attending to `positions` / 2 on average; through every stage with its
        hops under pipeline parallelism."""
        key = (kv.id, tokens, positions)
        phase = self._prefills.get(key)
        if phase is None:
            compute, weight_bytes, comm, overhead = self._pass_parts(tokens, positions)
            phase = _phase(compute, (weight_bytes + self._kv_bytes(kv) * tokens * self.layers) / self.bandwidth,
                           comm, overhead)
            if self.pp > 1:
                phase = self._with_hops(phase, tokens)
            self._prefills[key] = phase
        return phase

    def _with_hops(self, phase: Phase, tokens: float) -> Phase:
        """A pass through every stage: the same pass plus the hops between nodes (pipeline parallelism only)."""
        hops = self.pipeline.hops_seconds(self.cost.arch, tokens)  # type: ignore[union-attr]
        return construct(Phase, **{**phase.__dict__, "seconds": phase.seconds + hops,
                                   "comm_seconds": phase.comm_seconds + hops})

    def _step_parts(self, mb: float) -> tuple[float, float, float]:
        """A decode step's compute seconds, weight bytes read and all-reduce seconds for a micro-batch of `mb`."""
        parts = self._steps.get(mb)
        if parts is None:
            cost, decode_rate = self.cost, self.decode_rate
            parts = self._steps[mb] = (
                _matmul_seconds(cost, mb, self.per_param, decode_rate, self.half)
                + cost.attention_flops(self.context, mb) / decode_rate,
                cost.weight_bytes_touched(mb),
                _allreduce_seconds(cost.arch, self.gpu, self.tp, mb, self.rt))
        return parts

    def _decode_parts(self, kv: KVFormat, b: int) -> tuple[float, float, float, float, float]:
        """One decode step for `b` sequences at the average context over the generation: its compute, memory,
        all-reduce and overhead seconds, and the micro-batch. With pipeline stages, a micro-batch of b / m sequences
        passes all the layers (weights read in full), m = min(b, pp) in flight."""
        rt = self.rt
        micro = min(b, self.pp)
        mb = b if micro == 1 else b / micro
        compute, weight_bytes, comm = self._step_parts(mb)
        return (compute, (weight_bytes + self._kv_bytes(kv) * self.token_layers * mb) / self.bandwidth, comm,
                (rt.step_overhead_ms + rt.step_overhead_per_seq_ms * b) / 1000 + self.moe_floor + self.layer_overhead,
                mb)

    def _under_load(self, kv: KVFormat, b: int, decode_seconds: float) -> tuple[float, float]:
        """(time per output token in seconds, output tokens/s) of `b` requests whose decode step takes
        `decode_seconds`.

        For throughput, prompts are prefilled together in passes of up to the runtime's prefill_chunk_tokens
        (knowledge/speed.yaml), one weight read per pass, as vLLM's max_num_batched_tokens and TensorRT-LLM's
        max_num_tokens do (TTFT is one prompt alone). Time per output token under this load, as serving benchmarks
        measure it (after the first token): each decode step, plus the other sequences' prefill passes that
        interleave with a sequence's decoding - one each per cycle. The same figure the aggregate throughput
        implies, less the sequence's own prefill."""
        p, output_tokens = self.prompt_tokens, self.output_tokens
        together = min(self.per_chunk, b)
        chunk = self._prefill_pass(kv, p * together, p)
        cycle = b * chunk.seconds / together + output_tokens * decode_seconds
        throughput = b * output_tokens / cycle
        tpot = decode_seconds + (b - 1) * chunk.seconds / together / output_tokens
        return tpot, throughput

    def numbers(self, kv: KVFormat, concurrency: int) -> tuple[float, float, float]:
        """(TTFT ms, time per output token ms, output tokens/s) of :meth:`at`, the same figures without building
        its objects (a ceiling endpoint compares a configuration's concurrencies by these alone)."""
        p = self.prompt_tokens
        compute, memory, comm, overhead, mb = self._decode_parts(kv, concurrency)
        seconds = max(compute, memory) + comm + overhead
        if self.pp > 1:
            seconds = seconds + self.pipeline.hops_seconds(self.cost.arch, mb)  # type: ignore[union-attr]
        tpot, throughput = self._under_load(kv, concurrency, seconds)
        return self._prefill_pass(kv, p, p).seconds * 1000, tpot * 1000, throughput

    def at(self, kv: KVFormat, concurrency: int, *, explain: bool = False) -> Performance:
        """One replica serving `concurrency` requests with a `kv` cache: times in ms, tokens/s and USD per million
        output tokens (None without a price). `explain` adds the assumptions in words (the search leaves them out
        of the hundreds of options it only compares)."""
        tp, pp = self.tp, self.pp
        # prefill: one prompt of P tokens (with pipeline stages: through each stage in turn, then the hops)
        p = self.prompt_tokens
        prefill = self._prefill_pass(kv, p, p)
        b = concurrency
        compute, memory, comm, overhead, mb = self._decode_parts(kv, b)
        decode = _phase(compute, memory, comm, overhead)
        if pp > 1:
            decode = self._with_hops(decode, mb)
        tpot, throughput = self._under_load(kv, b, decode.seconds)
        cost_per_million = None
        usd = self.usd_per_gpu_hour
        if usd:
            cost_per_million = usd * tp * pp / (throughput * 3600) * 1e6
        return construct(
            Performance, ttft_ms=prefill.seconds * 1000,
            tpot_ms=tpot * 1000,
            decode_tokens_per_s=1 / decode.seconds,
            throughput_tokens_per_s=throughput,
            bound={"prefill": prefill.bound, "decode": decode.bound},
            matmul_precision=self.precision,
            peak_tflops=self.peak_one / 1e12,
            cost_per_million_tokens=cost_per_million,
            usd_per_gpu_hour=usd,
            prefill=prefill,
            decode=decode,
            assumptions=self.assumptions(b, decode) if explain else [],
        )

    def assumptions(self, concurrency: int, decode: Phase) -> list[str]:
        """The assumptions behind :meth:`at` `concurrency` in words; `decode` is that point's decode step."""
        cost, rt, gpu, tp, pp, pipeline = self.cost, self.rt, self.gpu, self.tp, self.pp, self.pipeline
        b = concurrency
        micro = min(b, pp)
        mb = b if micro == 1 else b / micro
        half = self.half
        typical = ", typical, not measured" if "matmul_efficiency" in gpu.unverified else ""
        return [
            f"matmuls at the {self.precision.upper()} peak of {self.peak_one / 1e12:,.0f} TFLOPS x "
            f"{self.matmul:.0%} (best matmul on this GPU{typical}) x {self.prefill_eff:.0%} for prefill, "
            f"{rt.compute_efficiency:.0%} for decode steps (runtime)"
            + (f"; a matmul of M tokens runs at M / (M + {half:g}) of that" if half else "")
            + (f", +{rt.dequant_overhead:.0%} for weight dequantization" if self.dequant > 1 else ""),
            f"bandwidth {gpu.memory_bandwidth_tbps} TB/s x {self.mem_eff:.0%} achievable"
            + (" (HBM)" if gpu.hbm and rt.memory_efficiency_hbm else ""),
            f"decode reads the weights once per step and {b} sequence(s) of KV at {self.context:,.0f} tokens on "
            f"average; {rt.step_overhead_ms:g} ms per step" + (f" + {rt.step_overhead_per_seq_ms:g} ms per sequence"
                                                               if rt.step_overhead_per_seq_ms else ""),
            "TTFT is one prompt's prefill with no queueing; under load, requests also wait for each other",
            f"time per output token: a decode step of {b} sequence(s) ({decode.seconds * 1000:,.1f} ms) plus the "
            "other sequences' prompts prefilled between steps, spread over the output",
            f"throughput interleaves prompts (prefilled together, up to {self.chunk_size:,} tokens a pass) "
            "with the batch's decode steps (continuous batching)",
        ] + ([f"MoE experts as grouped GEMMs: {cost.top_k} of {cost.routed} experts per token, "
              f"at least {rt.moe_layer_floor_us:g} us per MoE layer and step"] if cost.routed else []) \
          + ([f"tensor parallel over {tp} GPUs: two all-reduces per layer over {link_kind(gpu)} at "
              f"{gpu.interconnect_gbps or 32:g} GB/s x "
              f"{rt.allreduce_pcie_efficiency if link_kind(gpu) == 'pcie' else rt.allreduce_nvlink_efficiency:.0%}"
              " effective"] if tp > 1 else []) \
          + ([f"pipeline parallel over {pp} nodes: each token passes every stage, so the weights are read in full "
              f"per step; {micro} micro-batch(es) of {mb:,.3g} sequence(s) in flight"
              + (f" ({pp - micro} stage(s) idle: the pipeline bubble)" if micro < pp else "")
              + f"; {pp - 1} hop(s) between nodes per pass, each {pipeline.latency_us:g} us + "  # type: ignore[union-attr]
              f"{pipeline.tensors:g} x hidden x 2 bytes per token at {pipeline.gbps:g} GB/s per GPU (no published "  # type: ignore[union-attr]
              "multi-node measurement backs these figures)"] if pp > 1 else [])


def speed(cost: ModelCost, kv: KVFormat, gpu: GPU, tp: int, activations: str, weight_only: bool,
          prompt_tokens: int, output_tokens: int, concurrency: int, rt: RuntimeSpeed,
          usd_per_gpu_hour: float | None = None, *, explain: bool = False, cache: dict | None = None,
          chunk_tokens: int | None = None, pipeline: Pipeline | None = None) -> Performance:
    """One replica of `tp` GPUs serving `concurrency` requests of `prompt_tokens` in, `output_tokens` out: the
    :class:`SpeedModel` of the configuration at that concurrency (the arguments as there).

    Returns times in ms, tokens/s and USD per million output tokens (None without a price). `explain` adds the
    assumptions in words.
    """
    return SpeedModel(cost, gpu, tp, activations, weight_only, prompt_tokens, output_tokens, rt, usd_per_gpu_hour,
                      cache=cache, chunk_tokens=chunk_tokens, pipeline=pipeline).at(kv, concurrency, explain=explain)


def chunk_tokens_for(memory: RuntimeMemory, gpu: GPU, tp: int = 1) -> int | None:
    """The prompt tokens the runtime prefills per pass on this GPU by default: its memory model's batch tier
    (vLLM: 2,048 below 70 GiB and on A100s, 8,192 above, 16,384 from 160 GiB; SGLang's chunked prefill), or None
    where the runtime has no tiers (speed.yaml prefill_chunk_tokens then)."""
    tier = memory.activation.batch_default(gpu.memory_gib, gpu.name, tp)
    return tier.max_num_batched_tokens if tier and tier.max_num_batched_tokens else None


def with_bands(perf: Performance, decision: dict) -> Performance:
    """`perf` with its +/- bands: prefill (TTFT), decode (time per token) and throughput (tokens/s in all, and the
    cost that follows), from decision.yaml speed-band-*-pct (the held-out error of scripts/fit_speed.py)."""
    return perf.model_copy(update={"bands_pct": bands(decision)})


def bands(decision: dict) -> dict[str, float]:
    """The +/- percent band of each regime: prefill, decode, throughput (decision.yaml speed-band-*-pct)."""
    return {name: decision[f"speed-band-{name}-pct"].value for name in ("prefill", "decode", "throughput")}


def band_text(value: float, pct: float | None, unit: str, digits: int = 0) -> str:
    """'31 ms +/- 30%' style text for a modelled figure."""
    text = f"{value:,.{digits}f} {unit}".rstrip()
    return f"{text} +/- {pct:g}%" if pct else text


def estimate_speed(arch: Architecture, layout: Layout, kv: KVFormat, gpu: GPU, tp: int, activations: str,
                   weight_only: bool, prompt_tokens: int, output_tokens: int, concurrency: int,
                   rt: RuntimeSpeed, usd_per_gpu_hour: float | None = None,
                   chunk_tokens: int | None = None, pipeline: Pipeline | None = None) -> Performance:
    """:func:`speed` for one configuration, with its assumptions in words (the `estimate --perf` path)."""
    return speed(ModelCost(arch, layout), kv, gpu, tp, activations, weight_only, prompt_tokens, output_tokens,
                 concurrency, rt, usd_per_gpu_hour, explain=True, chunk_tokens=chunk_tokens, pipeline=pipeline)


def pipeline_for(decision: dict, gpu: GPU, stages: int) -> Pipeline | None:
    """The :class:`Pipeline` of `stages` nodes of this GPU from decision.yaml (and gpus.yaml internode_gbps); None
    for one stage."""
    if stages <= 1:
        return None
    return Pipeline(stages, gpu.internode_gbps or decision["internode-gbps-per-gpu"].value,
                    decision["internode-latency-us"].value, decision["pipeline-activation-tensors"].value)

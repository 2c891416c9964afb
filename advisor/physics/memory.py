"""The memory model: pure functions over an architecture, a weight layout, a KV format and a runtime.

Bytes are exact integers where the storage is exact (dense formats, group scales, KV caches) and
rounded up per tensor where a layout stores fractional bits (file-average GGUF mixes).
Everything per GPU assumes tensor parallelism over all the GPUs of one replica, or, with pipeline parallelism,
over the GPUs of one stage (the largest stage's share of the layers; :func:`stage_weight_bytes`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from advisor.errors import AdvisorInputError
from advisor.fastmodel import construct
from advisor.knowledge.schema import MODULE_GROUPS, KVFormat, NumericFormat, RuntimeMemory, Scaling, WeightScheme
from advisor.physics.architecture import Architecture, Tensor, tensor_inventory

GIB = 2**30
GB = 10**9


class Storage(BaseModel):
    """How one module group's matrices are stored."""

    model_config = ConfigDict(frozen=True)
    scheme: str  # the scheme id that put them there
    format: str  # numeric format id
    element_bits: float
    scaling: Scaling | None = None
    quantized: bool  # False: kept in the high-precision format

    def matrix_bits(self, rows: int, cols: int) -> float:
        bits = self.element_bits * rows * cols
        s = self.scaling
        if s is None or s.granularity == "file-average":
            return bits
        per_scale = s.scale_bits + s.zero_point_bits
        if s.granularity == "group" and s.group_size:
            bits += per_scale * rows * math.ceil(cols / s.group_size)
        elif s.granularity in ("channel", "group"):  # group without a size = per channel
            bits += per_scale * rows
        elif s.granularity == "block":
            bits += per_scale * math.ceil(rows / (s.block_rows or 1)) * math.ceil(cols / (s.block_cols or 1))
        elif s.granularity == "tensor":
            bits += per_scale
        return bits + s.tensor_scale_bits


class Layout(BaseModel):
    """A complete weight layout: storage per module group plus the bits of vectors."""

    model_config = ConfigDict(frozen=True)
    scheme: str
    groups: dict[str, Storage]
    vector_bits: int
    group_size: int | None = None  # the group size in force for the quantized groups, if any


def with_group_size(scheme: WeightScheme, group_size: int | None) -> Scaling | None:
    """The scheme's scaling, with ``group_size`` overriding its default (-1 = per channel)."""
    if group_size is None:
        return scheme.scaling
    if not scheme.group_size_overridable:
        raise AdvisorInputError(
            "--group-size",
            f"scheme {scheme.id!r} has a fixed layout; only integer schemes take a group size",
        )
    allowed = scheme.scaling.allowed_group_sizes  # type: ignore[union-attr]
    if group_size not in allowed:
        raise AdvisorInputError(
            "--group-size",
            f"{group_size} is not a group size {scheme.id} kernels run",
            value=str(group_size),
            choices=[str(g) for g in allowed],
        )
    if group_size == -1:
        return scheme.scaling.model_copy(update={"granularity": "channel", "group_size": None})  # type: ignore[union-attr]
    return scheme.scaling.model_copy(update={"granularity": "group", "group_size": group_size})  # type: ignore[union-attr]


def build_layout(
    scheme: WeightScheme,
    formats: Mapping[str, NumericFormat],
    *,
    overrides: Mapping[str, WeightScheme] | None = None,
    group_size: int | None = None,
) -> Layout:
    """Storage for every module group under ``scheme`` (plus per-group ``overrides``)."""
    high = formats[scheme.high_precision_format]
    scaling = with_group_size(scheme, group_size)
    groups: dict[str, Storage] = {}
    for group in MODULE_GROUPS:
        if group in scheme.quantized_groups:
            groups[group] = Storage(
                scheme=scheme.id,
                format=scheme.format,
                element_bits=scheme.element_bits,
                scaling=scaling,
                quantized=scheme.format != scheme.high_precision_format,
            )
        else:
            groups[group] = Storage(scheme=scheme.id, format=high.id, element_bits=high.bits, quantized=False)
    for group, other in (overrides or {}).items():
        groups[group] = Storage(
            scheme=other.id, format=other.format, element_bits=other.element_bits, scaling=other.scaling, quantized=True
        )
    in_force = scaling.group_size if scaling and scaling.granularity == "group" else None
    return Layout(scheme=scheme.id, groups=groups, vector_bits=scheme.vector_bits, group_size=in_force)


# --------------------------------------------------------------------------- weights
class ModuleBytes(BaseModel):
    model_config = ConfigDict(frozen=True)
    group: str
    params: int
    active_params: int
    bytes: int
    format: str
    quantized: bool
    bits_per_weight: float  # effective, scales included, over this group's parameters


def _tensor_bytes(tensor: Tensor, layout: Layout) -> int:
    if not tensor.is_matrix:
        return math.ceil(tensor.params * layout.vector_bits / 8)
    storage = layout.groups[tensor.group]
    return math.ceil(storage.matrix_bits(tensor.rows, tensor.cols) * tensor.copies / 8)  # type: ignore[arg-type]


def weight_breakdown(arch: Architecture, layout: Layout) -> list[ModuleBytes]:
    """Bytes per module group, in :data:`MODULE_GROUPS` order; groups the model lacks are left out."""
    totals: dict[str, list[int]] = {}
    for tensor in tensor_inventory(arch):
        row = totals.setdefault(tensor.group, [0, 0, 0])
        row[0] += tensor.params
        row[1] += tensor.active_params
        row[2] += _tensor_bytes(tensor, layout)
    out = []
    for group in MODULE_GROUPS:
        if group not in totals:
            continue
        params, active, nbytes = totals[group]
        storage = layout.groups[group]
        label = storage.format if group != "norms" else f"{'fp32' if layout.vector_bits == 32 else 'bf16'}"
        out.append(
            ModuleBytes(
                group=group,
                params=params,
                active_params=active,
                bytes=nbytes,
                format=label,
                quantized=storage.quantized and group != "norms",
                bits_per_weight=8 * nbytes / params,
            )
        )
    return out


def matrix_vector_bytes(arch: Architecture, layout: Layout) -> tuple[int, int]:
    """(bytes of matrices, bytes of vectors) of the whole model: matrices split under TP, vectors do not."""
    matrix = vector = 0
    for tensor in tensor_inventory(arch):
        nbytes = _tensor_bytes(tensor, layout)
        if tensor.is_matrix:
            matrix += nbytes
        else:
            vector += nbytes
    return matrix, vector


def weights_per_gpu(arch: Architecture, layout: Layout, tensor_parallel: int) -> int:
    """One GPU's share: matrices split evenly across the TP group, vectors replicated."""
    matrix, vector = matrix_vector_bytes(arch, layout)
    return math.ceil(matrix / tensor_parallel) + vector


# --------------------------------------------------------------------------- pipeline parallelism
def pipeline_partition(num_layers: int, stages: int) -> tuple[int, ...]:
    """Layers per pipeline stage as vLLM splits them: num_layers // stages each, the remainder one layer each to the
    stages just before the last (which also runs the final norm and the LM head). 126 layers in 2 stages: 63 + 63;
    61 in 2: 31 + 30; 61 in 4: 15, 15, 16, 15 (vllm-project/vllm vllm/distributed/utils.py get_pp_indices)."""
    if stages <= 1:
        return (num_layers,)
    base, extra = divmod(num_layers, stages)
    parts = [base] * stages
    for i in range(2, extra + 2):
        parts[-i] += 1
    return tuple(parts)


def stage_layer_share(num_layers: int, stages: int) -> float:
    """The largest stage's share of the layers (ceil(layers / stages) / layers; 1.0 without pipeline parallelism)."""
    if stages <= 1 or num_layers <= 0:
        return 1.0
    return max(pipeline_partition(num_layers, stages)) / num_layers


def stage_weight_bytes(arch: Architecture, layout: Layout, stages: int) -> tuple[tuple[float, float], ...]:
    """(matrix bytes, vector bytes) each pipeline stage holds before any tensor-parallel split, as vLLM places them:
    the repeating layers by :func:`pipeline_partition` (a MoE model's expert and router tensors where its MoE layers
    fall, the rest spread evenly over the layers), the token embedding (and a vision tower) on the first stage, the
    final norm and the LM head on the last; with tied embeddings the last stage holds the embedding matrix too, as
    its LM head (vLLM builds embed_tokens on the last rank when tie_word_embeddings is set)."""
    parts = pipeline_partition(arch.num_layers, stages)
    starts = [sum(parts[:i]) for i in range(len(parts))]
    moe = arch.moe_layers
    moe_per_stage = [sum(1 for i in moe if s <= i < s + n) for s, n in zip(starts, parts, strict=True)]
    first, last, layers, experts = [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]
    for tensor in tensor_inventory(arch):
        slot = 0 if tensor.is_matrix else 1
        nbytes = _tensor_bytes(tensor, layout)
        if tensor.group in ("embedding", "vision"):
            first[slot] += nbytes
            if arch.tied_embeddings and tensor.name == "embed_tokens":
                last[slot] += nbytes
        elif tensor.group == "lm_head" or tensor.name == "final_norm":
            last[slot] += nbytes
        elif tensor.group in ("experts", "router") and moe:
            experts[slot] += nbytes
        else:
            layers[slot] += nbytes
    out = []
    for i, n in enumerate(parts):
        stage = [layers[j] * n / arch.num_layers + (experts[j] * moe_per_stage[i] / len(moe) if moe else 0.0)
                 + (first[j] if i == 0 else 0.0) + (last[j] if i == len(parts) - 1 else 0.0) for j in (0, 1)]
        out.append((stage[0], stage[1]))
    return tuple(out)


def repack_bytes_per_gpu(memory: RuntimeMemory, modules: list[ModuleBytes], gpu_architecture: str | None,
                         tensor_parallel: int) -> int:
    """Extra bytes one GPU holds because the runtime's kernels re-lay-out some stored weights at load time
    (knowledge/runtimes.yaml memory.repack: e.g. vLLM's MXFP4 experts on Hopper), 0 where nothing is repacked."""
    extra = 0.0
    for rule in memory.repack:
        if gpu_architecture not in rule.architectures:
            continue
        for m in modules:
            if m.group in rule.groups and m.format == rule.format:
                extra += m.bytes * (rule.factor - 1)
    return math.ceil(extra / max(1, tensor_parallel))


# --------------------------------------------------------------------------- KV cache
def check_tensor_parallel(arch: Architecture, tensor_parallel: int, field: str = "--gpus") -> None:
    """Attention heads must split evenly over the GPUs, as serving runtimes require."""
    if tensor_parallel < 1:
        raise AdvisorInputError(field, f"must be at least 1, got {tensor_parallel}")
    if arch.num_heads % tensor_parallel:
        divisors = [str(d) for d in range(1, arch.num_heads + 1) if arch.num_heads % d == 0 and d <= 64]
        raise AdvisorInputError(
            field,
            f"{tensor_parallel} GPUs cannot split {arch.num_heads} attention heads evenly "
            f"(tensor parallelism); use one of {', '.join(divisors)}",
        )
    if arch.mla is None:
        kv = arch.num_kv_heads
        if kv % tensor_parallel and tensor_parallel % kv:
            raise AdvisorInputError(field, f"{tensor_parallel} GPUs cannot split or replicate {kv} KV heads evenly")
    problem = recurrent_split_problem(arch, tensor_parallel)
    if problem:
        raise AdvisorInputError(field, problem)


def recurrent_split_problem(arch: Architecture, tensor_parallel: int) -> str | None:
    """Why vLLM cannot split a hybrid's linear-attention / Mamba layers over ``tensor_parallel`` GPUs, or None.

    vLLM divides Gated DeltaNet key and value heads and Mamba-2 heads evenly, and Mamba-2's groups too unless
    there is one group (MambaMixer2: "Tensor parallel world size must divide num heads", "... then num_groups
    must equal 1"), and Mamba-1's inner channels (MambaStateShapeCalculator, vllm-project/vllm
    vllm/model_executor/layers/mamba/mamba_utils.py @ 02d710837549a368073552333f66d714477415d2)."""
    r = arch.recurrent
    if r is None or tensor_parallel <= 1:
        return None
    tp = tensor_parallel
    if r.kind == "gated_deltanet" and (r.groups % tp or r.num_heads % tp):
        return f"{tp} GPUs cannot split {r.groups} key / {r.num_heads} value linear-attention heads evenly"
    if r.kind == "mamba2" and (r.num_heads % tp or (r.groups % tp and r.groups != 1)):
        return f"{tp} GPUs cannot split {r.num_heads} Mamba heads in {r.groups} groups evenly"
    if r.kind == "mamba" and r.inner % tp:
        return f"{tp} GPUs cannot split {r.inner} Mamba channels evenly"
    return None


def kv_heads_per_gpu(arch: Architecture, tensor_parallel: int) -> int:
    """KV heads one GPU holds: split when they divide, replicated (at least one) when fewer than GPUs."""
    return max(1, arch.num_kv_heads // tensor_parallel)


def kv_bytes_per_token_layer(arch: Architecture, kv: KVFormat, tensor_parallel: int = 1) -> float:
    """Bytes one token occupies in one attention layer on one GPU."""
    if arch.mla is not None:  # one compressed latent (+ rope key) per token, replicated on every GPU
        return kv.bytes_per_vector(arch.mla.cached_dim)
    return 2 * kv_heads_per_gpu(arch, tensor_parallel) * kv.bytes_per_vector(arch.head_dim)


def kv_bytes_per_sequence(arch: Architecture, kv: KVFormat, context: int, tensor_parallel: int = 1,
                          pipeline_parallel: int = 1) -> int:
    """KV cache plus recurrent state: what one sequence of ``context`` tokens holds on one GPU.

    The KV cache sums over the attention layers only (``arch.window_counts``); a sliding layer holds at most its
    window. A hybrid's linear-attention / Mamba layers add :func:`state_bytes_per_sequence`, which does not grow
    with the context and is kept in its own dtype whatever ``kv`` is. Capacity (concurrency, longest context)
    is computed from this one function, so the state is counted there too. With ``pipeline_parallel`` stages a GPU
    holds its stage's layers only: the largest stage's share (:func:`stage_layer_share`) of the whole.
    """
    per_layer = kv_bytes_per_token_layer(arch, kv, tensor_parallel)
    tokens = sum((context if w is None else min(context, w)) * n for w, n in arch.window_counts)
    whole = math.ceil(tokens * per_layer) + state_bytes_per_sequence(arch, tensor_parallel)
    if pipeline_parallel > 1:
        return math.ceil(whole * stage_layer_share(arch.num_layers, pipeline_parallel))
    return whole


def state_bytes_per_sequence(arch: Architecture, tensor_parallel: int = 1) -> int:
    """The constant recurrent state one sequence holds on one GPU: 0 unless the model is a hybrid.

    Per linear-attention / Mamba layer, as vLLM allocates it (MambaStateShapeCalculator in vllm-project/vllm
    vllm/model_executor/layers/mamba/mamba_utils.py @ 02d710837549a368073552333f66d714477415d2):

    - conv state: conv_channels / TP x (conv_kernel - 1) elements, in the serving dtype (``conv_state_bytes``);
      conv_channels = 2 x key heads x key dim + value heads x value dim (Gated DeltaNet), inner + 2 x n_groups x
      d_state (Mamba-2, groups replicated up to TP when TP does not divide them), inner (Mamba-1);
    - recurrent / SSM state: heads / TP x head dim x state size elements (Gated DeltaNet: value heads x value dim
      x key dim; Mamba-2: heads x head dim x d_state; Mamba-1: inner channels x d_state), in ``ssm_state_bytes``.

    Heads split evenly over TP (:func:`recurrent_split_problem`); a split that is not even is counted per GPU at
    the larger share. vLLM pads each state page up to the attention page size; that padding is not counted.
    """
    r = arch.recurrent
    if r is None:
        return 0
    tp = max(1, tensor_parallel)
    conv = -(-r.conv_channels(tp) // tp) * (r.conv_kernel - 1) * r.conv_state_bytes
    ssm = -(-r.num_heads // tp) * r.head_dim * r.state_size * r.ssm_state_bytes
    return arch.recurrent_layers * (conv + ssm)


def kv_bytes_per_token_full(arch: Architecture, kv: KVFormat) -> float:
    """Bytes per token over all attention layers on one GPU (TP=1), as if each were full attention. Every layer
    is an attention layer except in hybrids, whose recurrent state does not grow per token and is left out."""
    return arch.attention_layers * kv_bytes_per_token_layer(arch, kv, 1)


# --------------------------------------------------------------------------- runtime overhead
def activation_class_keys(arch: Architecture) -> list[str]:
    """Keys to look up in a runtime's activation table, most specific first (qwen2 -> qwen)."""
    prefix = re.match(r"[a-z]*", arch.family).group()  # type: ignore[union-attr]
    if arch.is_moe:
        return [arch.model_type, arch.family, "moe"]
    if arch.vision is not None:  # a vision-language checkpoint: the table's multimodal figure, not its text family's
        return [arch.model_type, "multimodal", "dense"]
    return [arch.model_type, arch.family, prefix, "dense"]


class Overhead(BaseModel):
    """What one GPU keeps outside the weights and the KV pool, as the runtime accounts for it (bytes)."""

    model_config = ConfigDict(frozen=True)
    activation_per_gpu: int  # peak activations of the profiling pass (vLLM) or the compute buffer (llama.cpp)
    non_torch_per_gpu: int  # CUDA context, NCCL buffers
    activation_class: str  # how the activation figure was found, in words
    cuda_graph_per_gpu: int = 0
    max_num_batched_tokens: int | None = None  # the prefill pass the profile ran (vLLM, TGI, TensorRT-LLM)
    max_num_seqs: int | None = None  # sequences the sampler profile ran

    @property
    def per_gpu(self) -> int:
        return self.activation_per_gpu + self.non_torch_per_gpu + self.cuda_graph_per_gpu


def forward_bytes_per_token(arch: Architecture, tensor_parallel: int = 1, dtype_bytes: int = 2) -> float:
    """Activation bytes one prefill token holds on one GPU at the feed-forward block's peak.

    Dense: the gate + up output and the activated product (3 x intermediate / TP; 2 x for a one-projection MLP)
    plus two hidden-size streams (residual and normed input). MoE: vLLM's fused-MoE caches hold, per token, top-k x
    (2 x and 1 x the expert width / TP, plus the hidden size); shared experts add their own 3 x width / TP.
    The larger of the dense and the MoE layers counts. Pure arithmetic from the config, in ``dtype_bytes``."""
    tp = max(1, tensor_parallel)
    width = 3 if arch.gated_mlp else 2
    per = 0.0
    if arch.intermediate_size:
        per = width * arch.intermediate_size / tp
    if arch.is_moe and arch.moe_intermediate_size:
        moe = arch.experts_per_token * (3 * arch.moe_intermediate_size / tp + arch.hidden_size)
        shared = arch.shared_expert_intermediate_size or (arch.moe_intermediate_size * arch.shared_experts)
        moe += 3 * shared / tp
        per = max(per, moe)
    return dtype_bytes * (per + 2 * arch.hidden_size)


def non_torch_bytes(memory: RuntimeMemory, tensor_parallel: int) -> int:
    """CUDA context, NCCL and other memory outside PyTorch's allocator on one GPU (runtimes.yaml non_torch_gib_*)."""
    gib = memory.non_torch_gib_single if tensor_parallel <= 1 else memory.non_torch_gib_multi
    return math.ceil(gib * GIB)


def runtime_overhead(memory: RuntimeMemory, arch: Architecture, tensor_parallel: int, total_tokens: int, *,
                     gpu_gib: float = 80.0, gpu_name: str = "", max_num_seqs: int | None = None,
                     max_num_batched_tokens: int | None = None, enforce_eager: bool = False,
                     context: int = 0) -> Overhead:
    """Activation, CUDA-graph and non-torch bytes one GPU keeps, as the runtime's own accounting finds them.

    ``total_tokens`` is the tokens the KV cache holds (llama.cpp's buffers grow with it); ``gpu_gib`` and
    ``gpu_name`` select the runtime's default batch limits (vLLM: 2,048 tokens / 256 sequences below 70 GiB and on
    A100s, 8,192 / 1,024 above, 16,384 / 1,024 from 160 GiB); ``max_num_seqs`` / ``max_num_batched_tokens``
    override them as the flags do; a tier of 0 tokens (vLLM's V0 releases, :func:`memory_for_version`) profiles
    max(``context``, 2,048) tokens. Sources: knowledge/runtimes.yaml memory.activation (per pinned version).
    """
    act = memory.activation
    tp = max(1, tensor_parallel)
    graph = 0.0
    tokens = seqs = None
    if act.kind == "constant":
        keys = activation_class_keys(arch)
        key = next((k for k in keys if k in act.gib_by_class), None)
        if key is None:
            raise ValueError(f"runtime activation table has none of {keys}")
        activation = act.gib_by_class[key] * GIB
    elif act.kind == "per-head-context":  # a peer's llama.cpp compute-buffer fit
        mib = arch.num_heads * (act.mib_per_head + act.mib_per_head_per_1k_context * total_tokens / 1024)
        activation, key = mib * 2**20, "per-head-context"
    elif act.kind == "llama-compute":
        ub = act.ubatch
        peak = ub * arch.vocab_size * 4  # FP32 logits of a ubatch, every token an output in the reserve graph
        if not act.flash_attention:  # the ubatch x context x heads FP32 score matrix; the allocator reuses buffers
            peak = max(peak, ub * max(total_tokens, ub) * arch.num_heads * 4)
        activation = act.forward_scale * (peak + ub * arch.hidden_size * 4 * 2)  # + FP32 hidden states in flight
        key = f"compute buffer at -ub {ub}" + ("" if act.flash_attention else " without Flash Attention")
    elif act.kind == "none":
        activation, key = 0.0, "outside the runtime's memory fraction"
    else:  # profile
        tier = act.batch_default(gpu_gib, gpu_name, tp)
        tokens = max_num_batched_tokens or (tier.max_num_batched_tokens if tier else 2048) or max(context, 2048)
        seqs = max_num_seqs or (tier.max_num_seqs if tier else 256)
        forward = act.forward_scale * tokens * forward_bytes_per_token(arch, tp)
        sampler = act.sampler_bytes_per_logit * seqs * arch.vocab_size
        activation = max(forward, sampler)
        graph = 0.0 if enforce_eager else (act.cuda_graph_gib + act.cuda_graph_gib_per_layer * arch.num_layers) * GIB
        key = (f"profile pass: {tokens:,} tokens" if forward >= sampler else f"sampler profile: {seqs:,} sequences")
    return construct(Overhead, activation_per_gpu=math.ceil(activation), non_torch_per_gpu=non_torch_bytes(memory, tp),
                     cuda_graph_per_gpu=math.ceil(graph), activation_class=key, max_num_batched_tokens=tokens,
                     max_num_seqs=seqs)


def default_utilization(memory: RuntimeMemory, gpu_bytes: int, tensor_parallel: int = 1,
                        chunked_prefill: int | None = None) -> float:
    """The runtime's default memory fraction on this GPU: ``utilization_default``, or SGLang's per-GPU formula
    (knowledge/runtimes.yaml memory.reserve_mib; sglang memory_hook.handle_gpu_memory_settings)."""
    r = memory.reserve_mib
    if not r:
        return memory.utilization_default
    mib = gpu_bytes / 2**20
    tier = memory.activation.batch_default(mib / 1024, "", tensor_parallel)
    chunk = chunked_prefill or (tier.max_num_batched_tokens if tier else 2048)
    max_bs = tier.max_num_seqs if tier else 8
    if tier and tier.max_num_seqs_tp4 and tensor_parallel >= 4:
        max_bs = tier.max_num_seqs_tp4
    prefill_sizes = len(_sglang_prefill_graph_sizes(chunk))
    reserved = (r["base"] + r["per_token"] * max(chunk, 2048) + r["per_tp"] * tensor_parallel / 8
                + r["per_decode_bs"] * max_bs + r["per_prefill_size"] * prefill_sizes)
    if mib > 60 * 1024:
        reserved = max(reserved, r["floor_mib"])
    return round((mib - reserved) / mib, 3)


def _sglang_prefill_graph_sizes(max_bs: int) -> list[int]:
    """SGLang's prefill CUDA-graph capture sizes up to ``max_bs`` (cuda_graph_hook.generate_prefill_...)."""
    sizes = (list(range(4, 33, 4)) + list(range(48, 257, 16)) + list(range(288, 513, 32))
             + list(range(576, 1025, 64)) + list(range(1280, 4097, 256)) + list(range(4608, max_bs + 1, 512)))
    return [s for s in sizes if s <= max_bs]


def kv_budget_per_gpu(
    memory: RuntimeMemory, capacity: int, weights: int, overhead: int, utilization: float | None = None,
    non_torch: int = 0,
) -> int:
    """Bytes one GPU gives the KV cache after weights and overhead, under the runtime's cap.

    ``capacity`` is what the runtime sees as the GPU's total; ``overhead`` is :attr:`Overhead.per_gpu`.
    total (vLLM, TGI): utilization x capacity - weights - overhead; free (TensorRT-LLM): utilization x (capacity -
    weights - overhead); preload (SGLang): utilization x (capacity - non_torch) - weights, ``non_torch`` being the
    CUDA context already held when it measures."""
    util = memory.utilization_default if utilization is None else utilization
    if memory.utilization_of == "free":
        return math.floor(util * (capacity - weights - overhead))
    if memory.utilization_of == "preload":
        return math.floor(util * (capacity - non_torch)) - weights
    return math.floor(util * capacity) - weights - overhead


def kv_layer_slots(arch: Architecture, grouped: bool) -> int:
    """Layer slots one token's page spans in the pool. Every attention layer, or with vLLM's hybrid allocator
    (``grouped``: models mixing sliding-window and full layers) the layers of each kind split into groups of the
    smallest kind's count, the last group padded: Gemma 3's 52 sliding + 10 full layers take 7 groups of 10 = 70
    slots (vllm/v1/core/kv_cache_utils.py, uniform page size grouping)."""
    counts = [n for _, n in arch.window_counts]
    if not grouped or len(counts) < 2:
        return arch.attention_layers
    size = min(counts)
    return sum(-(-n // size) * size for n in counts)


def kv_pool_tokens(arch: Architecture, kv: KVFormat, budget: int, tensor_parallel: int, block_tokens: int,
                   grouped: bool = False, pipeline_parallel: int = 1) -> int:
    """Tokens the KV pool holds, as the server logs them ("GPU KV cache size", SGLang "#tokens"): whole pages of
    ``block_tokens`` of every attention layer's K and V on one GPU (sliding layers counted as full, as the pool
    is sized; ``grouped``: vLLM's hybrid allocator, :func:`kv_layer_slots`). Recurrent state is not counted."""
    per_token = kv_bytes_per_token_layer(arch, kv, tensor_parallel) * kv_layer_slots(arch, grouped)
    if pipeline_parallel > 1:  # one stage's layers
        per_token *= stage_layer_share(arch.num_layers, pipeline_parallel)
    if budget <= 0 or per_token <= 0:
        return 0
    return int(budget // (per_token * block_tokens)) * block_tokens


def max_concurrency(arch: Architecture, kv: KVFormat, context: int, budget: int, tensor_parallel: int,
                    pipeline_parallel: int = 1) -> int:
    per_seq = kv_bytes_per_sequence(arch, kv, context, tensor_parallel, pipeline_parallel)
    if budget <= 0 or per_seq <= 0:
        return 0
    return budget // per_seq


def max_context(
    arch: Architecture, kv: KVFormat, concurrency: int, budget: int, tensor_parallel: int, limit: int,
    pipeline_parallel: int = 1,
) -> int:
    """The longest context (<= ``limit``) at which ``concurrency`` sequences fit in ``budget``."""
    if budget <= 0:
        return 0
    # kv_bytes_per_sequence with what does not depend on the context worked out once (the same arithmetic)
    per_layer = kv_bytes_per_token_layer(arch, kv, tensor_parallel)
    state = state_bytes_per_sequence(arch, tensor_parallel)
    windows = arch.window_counts
    share = stage_layer_share(arch.num_layers, pipeline_parallel) if pipeline_parallel > 1 else None

    def fits(c: int) -> bool:
        whole = math.ceil(sum((c if w is None else min(c, w)) * n for w, n in windows) * per_layer) + state
        return concurrency * (whole if share is None else math.ceil(whole * share)) <= budget

    if fits(limit):
        return limit
    # fits() holds up to some context and not beyond. Solve the tokens held (linear between window sizes) for the
    # allowance, then settle on fits() itself: the answer a bisection over [0, limit) gives, in a few checks.
    allowance = budget / concurrency / (share or 1)
    guess = _tokens_solve(windows, (allowance - state) / per_layer) if per_layer > 0 else None
    if guess is not None:
        c = max(0, min(limit - 1, math.floor(guess)))
        for _ in range(4):
            if c > 0 and not fits(c):
                c -= 1
            elif c + 1 < limit and fits(c + 1):
                c += 1
            else:
                return c
    lo, hi = 0, limit  # fits(lo) holds, fits(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _tokens_solve(windows: tuple[tuple[int | None, int], ...], tokens: float) -> float | None:
    """The context at which the attention layers hold `tokens` tokens (a sliding layer at most its window), or None
    when they never do."""
    slope = sum(n for _, n in windows)  # every layer grows with the context until its window is full
    held = 0.0  # tokens of the layers whose window is full
    start = 0
    for w, n in sorted(((w, n) for w, n in windows if w is not None), key=lambda x: x[0]):
        if held + slope * w >= tokens:
            break
        held += n * w
        slope -= n
        start = w
    if slope <= 0:
        return None
    return max(start, (tokens - held) / slope)


# --------------------------------------------------------------------------- older releases
def version_tuple(text: str) -> tuple[int, ...]:
    """(0, 6, 4) from '0.6.4', 'v0.6.4' or '0.6.4.post1'; () when no version number is in ``text``."""
    match = re.search(r"\d+(?:\.\d+)*", text or "")
    return tuple(int(p) for p in match.group().split(".")) if match else ()


def memory_for_version(memory: RuntimeMemory, version: str | None) -> tuple[RuntimeMemory, list[str]]:
    """The runtime's memory accounting as release ``version`` did it (knowledge/runtimes.yaml memory.eras), and
    the differences from the pinned release in words. None or a version at or after every era: unchanged."""
    wanted = version_tuple(version or "")
    if not wanted:
        return memory, []
    out, notes, profile_from_context, seqs = memory, [], False, None
    for era in memory.eras:  # newest first; older eras override what newer ones set
        if wanted >= version_tuple(era.before):
            continue
        act = out.activation.model_copy(update=dict(era.activation)) if era.activation else out.activation
        update: dict = {"activation": act}
        if era.repack is not None:
            update["repack"] = era.repack
        if era.utilization_default is not None:
            update.update(utilization_default=era.utilization_default, reserve_mib=era.reserve_mib)
        out = out.model_copy(update=update)
        profile_from_context = profile_from_context or era.profile_tokens_from_context
        seqs = era.max_num_seqs or seqs
        notes.append(f"before {era.before}: {era.what}")
    if profile_from_context or seqs:
        act = out.activation
        tiers = tuple(t.model_copy(update={"max_num_seqs": seqs or t.max_num_seqs,
                                           "max_num_batched_tokens": 0 if profile_from_context else
                                           t.max_num_batched_tokens}) for t in act.batch_defaults)
        out = out.model_copy(update={"activation": act.model_copy(update={"batch_defaults": tiers})})
    return out, notes

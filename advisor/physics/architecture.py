"""Model architecture from a Hugging Face ``config.json``, and its exact tensor inventory.

One code path serves both the catalog (``knowledge/models.yaml`` stores config.json fields) and
uploaded files. Unknown config fields are ignored; missing required ones raise an
:class:`~advisor.errors.AdvisorInputError` naming them.

The inventory lists every weight tensor shape once with how many copies exist (per layer, per
expert), the module group it belongs to, and how many of the copies one token uses (MoE experts).
Parameter counts and weight bytes are sums over it, so they are exact, not heuristics.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from advisor.errors import AdvisorInputError

MAX_CONFIG_BYTES = 1_000_000  # a real config.json is a few KB

# model_type -> family. The family decides the parts a config does not spell out.
FAMILIES: dict[str, str] = {
    "llama": "llama",
    "mistral": "llama",
    "phi3": "llama",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "gemma2": "gemma2",
    "gemma3": "gemma3",
    "gemma3_text": "gemma3",
    "mixtral": "mixtral",
    "qwen3_moe": "qwen3_moe",
    "deepseek_v2": "deepseek_v2",
    "deepseek_v3": "deepseek_v3",
    "gpt_oss": "gpt_oss",
    "gpt2": "gpt2",
    "gptj": "gptj",
    "gpt_neox": "gpt_neox",
    "falcon": "falcon",
    "RefinedWeb": "falcon",
    "RefinedWebModel": "falcon",
    "opt": "opt",
    "qwen3_next": "qwen3_next",
    "nemotron_h": "nemotron_h",
    "jamba": "jamba",
}
SUPPORTED_MODEL_TYPES = tuple(FAMILIES)
MLA_FAMILIES = ("deepseek_v2", "deepseek_v3")
# Hybrids: some layers keep a constant-size recurrent state (Gated DeltaNet, Mamba) instead of a KV cache.
HYBRID_FAMILIES = ("qwen3_next", "nemotron_h", "jamba")
LAYER_KINDS = ("attention", "linear_attention", "mamba", "mlp")  # a layer's token mixer ("mlp": none)
RECURRENT_KINDS = ("linear_attention", "mamba")
# Fields a hybrid's config.json must spell out; those with a transformers default (Jamba's mamba_*) may be absent.
HYBRID_REQUIRED: dict[str, list[str]] = {
    "qwen3_next": ["head_dim", "linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim",
                   "linear_value_head_dim", "linear_conv_kernel_dim"],
    "nemotron_h": ["head_dim", "mamba_num_heads", "mamba_head_dim", "ssm_state_size", "n_groups", "conv_kernel"],
}
# Bytes per element of the SSM / recurrent state for vLLM's --mamba-ssm-cache-dtype values ("auto": the model's
# 16-bit dtype).
STATE_DTYPE_BYTES = {"auto": 2, "bfloat16": 2, "float16": 2, "float32": 4}

# transformers model classes (config.json "architectures") -> model_type, for configs without model_type.
ARCHITECTURE_CLASSES: dict[str, str] = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Phi3ForCausalLM": "phi3",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "Qwen3MoeForCausalLM": "qwen3_moe",
    "Gemma2ForCausalLM": "gemma2",
    "Gemma3ForCausalLM": "gemma3_text",
    "Gemma3ForConditionalGeneration": "gemma3",
    "MixtralForCausalLM": "mixtral",
    "DeepseekV2ForCausalLM": "deepseek_v2",
    "DeepseekV3ForCausalLM": "deepseek_v3",
    "GptOssForCausalLM": "gpt_oss",
    "GPT2LMHeadModel": "gpt2",
    "GPTJForCausalLM": "gptj",
    "GPTNeoXForCausalLM": "gpt_neox",
    "FalconForCausalLM": "falcon",
    "RWForCausalLM": "falcon",
    "OPTForCausalLM": "opt",
    "Qwen3NextForCausalLM": "qwen3_next",
    "NemotronHForCausalLM": "nemotron_h",
    "JambaForCausalLM": "jamba",
}

# GPT-2-era field names -> the names the rest of this module reads.
FIELD_ALIASES: dict[str, dict[str, str]] = {
    "gpt2": {"n_embd": "hidden_size", "n_layer": "num_hidden_layers", "n_head": "num_attention_heads",
             "n_positions": "max_position_embeddings", "n_inner": "intermediate_size"},
    "gptj": {"n_embd": "hidden_size", "n_layer": "num_hidden_layers", "n_head": "num_attention_heads",
             "n_positions": "max_position_embeddings", "n_inner": "intermediate_size"},
    "falcon": {"n_layer": "num_hidden_layers", "n_head": "num_attention_heads", "n_head_kv": "num_kv_heads",
               "ffn_hidden_size": "intermediate_size"},
    "opt": {"ffn_dim": "intermediate_size"},
    # Nemotron-H's older names, as NemotronHConfig.__post_init__ still accepts them (transformers
    # src/transformers/models/nemotron_h/configuration_nemotron_h.py @ 13923c63d59f73faebae79b2ee3fafc7e3a35201)
    "nemotron_h": {"attention_head_dim": "head_dim", "mamba_n_groups": "n_groups", "mamba_d_conv": "conv_kernel",
                   "mamba_conv_bias": "use_conv_bias"},
}

# Hugging Face defaults for tie_word_embeddings per model class (PretrainedConfig defaults to True,
# but most decoder config classes override it).
TIED_BY_DEFAULT = {"gemma2", "gemma3", "gpt2", "opt", "falcon"}


class MLA(BaseModel):
    """Multi-head latent attention (DeepSeek-V2/V3): the cache holds one latent per token."""

    model_config = ConfigDict(frozen=True)
    q_lora_rank: int | None
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int

    @property
    def cached_dim(self) -> int:
        return self.kv_lora_rank + self.qk_rope_head_dim


class Vision(BaseModel):
    """A SigLIP vision tower and the Gemma-3 projector into the text model (a multimodal checkpoint's image side).

    Fields are the config's ``vision_config`` (transformers SiglipVisionConfig defaults where absent: hidden 768,
    intermediate 3072, 12 layers, 3 channels, image 224, patch 16). The projector is Gemma3MultiModalProjector:
    one ``vision hidden x text hidden`` matrix and an RMSNorm over the vision width (transformers
    models/gemma3/modeling_gemma3.py). Runtimes keep all of it 16-bit; quantized checkpoints and recipes leave it
    out of their quantized modules.
    """

    model_config = ConfigDict(frozen=True)
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_channels: int
    image_size: int
    patch_size: int
    projector_dim: int  # the text model's hidden size

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class Recurrent(BaseModel):
    """The mixer of a hybrid's non-attention layers, which keep a constant-size state per sequence, no KV cache.

    ``kind`` is "gated_deltanet" (Qwen3-Next linear attention), "mamba2" (Nemotron-H) or "mamba" (Mamba-1,
    Jamba). The fields follow vLLM's MambaStateShapeCalculator (vllm-project/vllm
    vllm/model_executor/layers/mamba/mamba_utils.py @ 02d710837549a368073552333f66d714477415d2):

    - gated_deltanet: ``num_heads`` value heads of ``head_dim``, ``groups`` key heads of ``state_size``;
      conv state (2 x groups x state_size + num_heads x head_dim) x (conv_kernel - 1), recurrent state
      num_heads x head_dim x state_size.
    - mamba2: ``num_heads`` heads of ``head_dim``, ``groups`` = n_groups, ``state_size`` = ssm_state_size;
      conv state (num_heads x head_dim + 2 x groups x state_size) x (conv_kernel - 1), SSM state
      num_heads x head_dim x state_size.
    - mamba: ``num_heads`` = the inner channels (mamba_expand x hidden_size), ``head_dim`` = 1, ``state_size`` =
      mamba_d_state; conv state channels x (conv_kernel - 1), SSM state channels x state_size.
    """

    model_config = ConfigDict(frozen=True)
    kind: str
    num_heads: int
    head_dim: int
    state_size: int
    groups: int
    conv_kernel: int
    conv_bias: bool = False
    proj_bias: bool = False
    dt_rank: int = 0  # Mamba-1 only: rank of the dt projection
    conv_state_bytes: int = 2  # per element: the serving dtype (BF16) unless the runtime is told otherwise
    ssm_state_bytes: int = 2

    @property
    def inner(self) -> int:
        """Channels the mixer carries: value width (Gated DeltaNet) or Mamba's intermediate size."""
        return self.num_heads * self.head_dim

    def conv_channels(self, tensor_parallel: int = 1) -> int:
        """Channels of the causal convolution over all GPUs. Mamba-2 replicates groups when TP does not divide
        n_groups (MambaStateShapeCalculator.extra_groups_for_head_shards)."""
        if self.kind == "gated_deltanet":
            return 2 * self.groups * self.state_size + self.inner
        if self.kind == "mamba2":
            groups = self.groups
            if groups % tensor_parallel:
                groups = tensor_parallel
            return self.inner + 2 * groups * self.state_size
        return self.inner


class Tensor(BaseModel):
    """One weight tensor shape: ``rows x cols`` (a matrix, cols = in_features) or a vector."""

    model_config = ConfigDict(frozen=True)
    group: str
    name: str
    rows: int
    cols: int | None  # None: a vector (bias, norm weight, sink); never quantized
    copies: int  # layers x experts
    active_copies: int  # copies one token passes through

    @property
    def size(self) -> int:
        return self.rows * (self.cols or 1)

    @property
    def params(self) -> int:
        return self.size * self.copies

    @property
    def active_params(self) -> int:
        return self.size * self.active_copies

    @property
    def is_matrix(self) -> bool:
        return self.cols is not None


class Architecture(BaseModel):
    """The fields the memory model needs, normalised across model families."""

    model_config = ConfigDict(frozen=True)

    model_type: str
    family: str
    num_layers: int
    hidden_size: int
    intermediate_size: int | None
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tied_embeddings: bool
    max_position: int | None
    # per ATTENTION layer: None = full attention, N = sliding window. Every layer is an attention layer except in
    # hybrids, where the Gated DeltaNet / Mamba / MLP-only layers hold no KV cache and are left out.
    layer_windows: tuple[int | None, ...]
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False
    norms_per_layer: int = 2
    attention_sinks: bool = False  # a learned sink logit per head joins every softmax (gpt-oss)
    attn_logit_softcap: float | None = None  # attention logits pass through cap * tanh(x / cap) (Gemma-2: 50)
    vision: Vision | None = None  # a multimodal checkpoint's vision tower and projector (counted, kept 16-bit)
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int | None = None
    shared_experts: int = 0
    moe_layers: tuple[int, ...] = ()
    expert_bias: bool = False
    router_bias: bool = False
    mla: MLA | None = None
    gated_mlp: bool = True  # SwiGLU-style gate + up; False: one up projection (GPT-2, OPT, Falcon, NeoX, GPT-J)
    mlp_bias: bool = False
    norm_bias: bool = False  # LayerNorm with a bias (GPT-2 era) rather than RMSNorm
    learned_positions: int = 0  # rows of a learned position embedding (GPT-2, OPT); 0 with rotary
    lm_head_bias: bool = False
    # hybrids: each layer's token mixer, one of LAYER_KINDS; () = every layer is attention
    layer_kinds: tuple[str, ...] = ()
    recurrent: Recurrent | None = None  # the mixer of the "linear_attention" / "mamba" layers
    attn_output_gate: bool = False  # q_proj also yields a sigmoid gate on the attention output (Qwen3-Next)
    shared_expert_intermediate_size: int | None = None  # when it is not moe_intermediate_size x shared_experts
    shared_expert_gate: bool = False  # a 1 x hidden sigmoid gate on the shared expert (Qwen3-Next)
    ffn_in_every_layer: bool = True  # False: only the "mlp" layers have a feed-forward block (Nemotron-H)
    notes: tuple[str, ...] = ()

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_hybrid(self) -> bool:
        return self.recurrent is not None

    @property
    def mixers(self) -> tuple[str, ...]:
        """Each layer's token mixer: "attention", "linear_attention", "mamba" or "mlp" (no mixer)."""
        return self.layer_kinds or ("attention",) * self.num_layers

    @property
    def attention_layers(self) -> int:
        """Layers that hold a KV cache (every layer, except in hybrids)."""
        return len(self.layer_windows)

    @property
    def recurrent_layers(self) -> int:
        """Layers that hold a constant recurrent state instead of a KV cache."""
        return sum(1 for k in self.layer_kinds if k in RECURRENT_KINDS)

    @cached_property
    def window_counts(self) -> tuple[tuple[int | None, int], ...]:
        """(window, attention layers) pairs: None = full attention. KV sizes sum over these, not over every
        layer; a hybrid's recurrent and MLP-only layers are not in them."""
        counts: dict[int | None, int] = {}
        for w in self.layer_windows:
            counts[w] = counts.get(w, 0) + 1
        return tuple(counts.items())

    @property
    def sliding_layers(self) -> int:
        return sum(1 for w in self.layer_windows if w is not None)


# --------------------------------------------------------------------------- parsing
def _flatten(config: Mapping[str, Any]) -> dict[str, Any]:
    """Merge a nested ``text_config`` (multimodal configs such as Gemma-3) over the top level."""
    merged = dict(config)
    text = config.get("text_config")
    if isinstance(text, Mapping):
        merged.update(text)
        merged["_multimodal"] = True
    return merged


# Upper bounds on what a config.json may state (our design: well above every published model - the largest have
# under 200 layers, hidden sizes under 32k, vocabularies under 300k, 512 experts - and low enough that one request
# stays bounded work: the engine loops over layers and tensors). Anything above is refused with the field named.
FIELD_LIMITS: dict[str, int] = {
    "num_hidden_layers": 1024,
    "hidden_size": 131_072,
    "num_attention_heads": 4096,
    "num_key_value_heads": 4096,
    "num_kv_heads": 4096,
    "head_dim": 4096,
    "vocab_size": 4_194_304,
    "intermediate_size": 1_048_576,
    "moe_intermediate_size": 1_048_576,
    "shared_expert_intermediate_size": 1_048_576,
    "num_local_experts": 4096,
    "num_experts": 4096,
    "n_routed_experts": 4096,
    "num_experts_per_tok": 4096,
    "n_shared_experts": 64,
    "max_position_embeddings": 1 << 31,
    "sliding_window": 1 << 31,
    "kv_lora_rank": 65_536,
    "q_lora_rank": 65_536,
    "qk_nope_head_dim": 4096,
    "qk_rope_head_dim": 4096,
    "v_head_dim": 4096,
}
DEFAULT_FIELD_LIMIT = 1 << 24  # any other count or size a config states (periods, offsets, vision tower sizes)


def _int(cfg: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> int | None:
    """An integer field of a config, type- and range-checked (0 .. FIELD_LIMITS), or None when absent and not
    required. Raises AdvisorInputError naming the field."""
    value = cfg.get(key)
    if value is None:
        if required:
            raise AdvisorInputError(where, f"missing required field {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AdvisorInputError(where, f"field {key!r} must be a non-negative integer, got {_shown(value)}")
    limit = FIELD_LIMITS.get(key, DEFAULT_FIELD_LIMIT)
    if value > limit:
        raise AdvisorInputError(where, f"field {key!r} is {_shown(value)}; the most this tool accepts is {limit:,}")
    return value


def _shown(value: Any, limit: int = 40) -> str:
    """A config value as an error message shows it: repr, cut to `limit` characters."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10 ** 30 else f"an integer of {len(str(abs(value)))} digits"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _int_list(cfg: Mapping[str, Any], key: str, where: str) -> list[int]:
    """A list of non-negative integers (layer indices), or [] when absent."""
    value = cfg.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 4096 or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 20 for v in value):
        raise AdvisorInputError(where, f"field {key!r} must be a list of layer indices, got {_shown(value)}")
    return value


def _missing(cfg: Mapping[str, Any], keys: list[str]) -> list[str]:
    return [k for k in keys if cfg.get(k) is None]


def _layer_windows(cfg: Mapping[str, Any], family: str, layers: int, where: str) -> tuple:
    window = _int(cfg, "sliding_window", where, required=False)  # 0 or null: no window
    layer_types = cfg.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        if len(layer_types) != layers:
            raise AdvisorInputError(
                where, f"layer_types has {len(layer_types)} entries but num_hidden_layers is {layers}"
            )
        if any(t == "sliding_attention" for t in layer_types) and not window:
            raise AdvisorInputError(where, "layer_types names sliding layers but sliding_window is missing")
        return tuple(window if t == "sliding_attention" else None for t in layer_types)
    if not window:
        return (None,) * layers
    if family == "gemma2" or family == "gpt_oss":  # alternate, starting with a sliding layer
        return tuple(window if (i + 1) % 2 else None for i in range(layers))
    if family == "gemma3":  # every Nth layer global
        pattern = _int(cfg, "sliding_window_pattern", where, required=False) or 6
        return tuple(window if (i + 1) % pattern else None for i in range(layers))
    if family in ("qwen2", "qwen3", "qwen3_moe"):
        if not cfg.get("use_sliding_window"):
            return (None,) * layers
        first = _int(cfg, "max_window_layers", where, required=False) or 0
        return tuple(window if i >= first else None for i in range(layers))
    if cfg.get("use_sliding_window") is False:
        return (None,) * layers
    return (window,) * layers  # Mistral v0.1, Phi-3: every layer windowed


def architecture_from_config(config: Mapping[str, Any], where: str = "config.json") -> Architecture:
    """Normalise a Hugging Face config.json mapping. ``where`` names the input in error messages."""
    if not isinstance(config, Mapping):
        raise AdvisorInputError(where, "expected a JSON object with the model's config fields")
    cfg = _flatten(config)
    model_type = _model_type(cfg, where)
    notes: list[str] = []
    family = FAMILIES[model_type]
    for old, new in FIELD_ALIASES.get(family, {}).items():
        if cfg.get(new) is None and cfg.get(old) is not None:
            cfg[new] = cfg[old]
    if family in ("gpt2", "gptj", "falcon") and cfg.get("intermediate_size") is None and \
            isinstance(cfg.get("hidden_size"), int):
        cfg["intermediate_size"] = 4 * cfg["hidden_size"]  # their default: 4 x hidden
    if family == "nemotron_h" and cfg.get("num_hidden_layers") is None and \
            isinstance(cfg.get("hybrid_override_pattern"), str):
        cfg["num_hidden_layers"] = len(cfg["hybrid_override_pattern"])  # newer configs derive it from the pattern

    required = ["num_hidden_layers", "hidden_size", "num_attention_heads", "vocab_size"]
    if family in MLA_FAMILIES:
        required += ["kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"]
    required += HYBRID_REQUIRED.get(family, [])
    missing = _missing(cfg, required)
    expert_key = {
        "mixtral": "num_local_experts",
        "gpt_oss": "num_local_experts",
        "qwen3_moe": "num_experts",
        "qwen3_next": "num_experts",
        "deepseek_v2": "n_routed_experts",
        "deepseek_v3": "n_routed_experts",
        "jamba": "num_experts",
    }.get(family)
    if family == "jamba" and cfg.get("num_experts") == 1:
        expert_key = None  # a Jamba without experts: every feed-forward block is the dense MLP
    if expert_key:
        missing += _missing(cfg, [expert_key, "num_experts_per_tok"])
    if family in ("qwen3_moe", "qwen3_next", *MLA_FAMILIES):
        missing += _missing(cfg, ["moe_intermediate_size"])
    if family not in ("qwen3_moe", "gpt_oss", "qwen3_next", "nemotron_h"):  # those two: only with dense layers
        missing += _missing(cfg, ["intermediate_size"])
    if missing:
        raise AdvisorInputError(where, "missing required field(s) " + ", ".join(repr(m) for m in missing))

    layers = _int(cfg, "num_hidden_layers", where)
    hidden = _int(cfg, "hidden_size", where)
    heads = _int(cfg, "num_attention_heads", where)
    if not layers or not hidden or not heads:
        raise AdvisorInputError(where, "num_hidden_layers, hidden_size and num_attention_heads must be > 0")
    kv_heads = _int(cfg, "num_key_value_heads", where, required=False) or heads
    if family == "falcon":
        if cfg.get("new_decoder_architecture"):
            kv_heads = _int(cfg, "num_kv_heads", where, required=False) or heads
        elif cfg.get("multi_query", True):
            kv_heads = 1
    if cfg.get("head_dim") == 0:
        raise AdvisorInputError(where, "field 'head_dim' is 0; a head needs at least one dimension")
    head_dim = _int(cfg, "head_dim", where, required=False) or hidden // heads
    if head_dim < 1:
        raise AdvisorInputError(where, f"head_dim is 0: hidden_size {hidden:,} / num_attention_heads {heads:,} gives no "
                                "dimension per head; state head_dim")
    if family not in MLA_FAMILIES and (kv_heads < 1 or kv_heads > heads or heads % kv_heads):
        raise AdvisorInputError(where, f"num_key_value_heads {kv_heads:,} must divide num_attention_heads {heads:,} "
                                "(each KV head serves a whole group of query heads)")
    vocab = _int(cfg, "vocab_size", where)
    tied_default = family in TIED_BY_DEFAULT
    tied = cfg.get("tie_word_embeddings")
    tied = tied_default if tied is None else bool(tied)

    fields: dict[str, Any] = dict(
        model_type=model_type,
        family=family,
        num_layers=layers,
        hidden_size=hidden,
        intermediate_size=_int(cfg, "intermediate_size", where, required=False),
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=vocab,
        tied_embeddings=tied,
        max_position=_int(cfg, "max_position_embeddings", where, required=False),
    )
    if family in HYBRID_FAMILIES:
        hybrid = _hybrid_fields(cfg, family, layers, hidden, where)
        notes.extend(hybrid.pop("notes"))
        fields.update(hybrid)
    else:
        fields["layer_windows"] = _layer_windows(cfg, family, layers, where)
    vision = _vision(cfg, family, hidden, where)
    if vision is not None:  # counted in its own 16-bit "vision" module group
        fields["vision"] = vision
    elif cfg.get("_multimodal"):
        notes.append("text model only: the vision encoder and projector are not counted")
    legacy = _legacy_fields(cfg, family, hidden, where)
    if "notes_extra" in legacy:
        notes.append(legacy.pop("notes_extra"))
    fields.update(legacy)

    attention_bias = bool(cfg.get("attention_bias", False))
    if family in ("qwen2", "gpt2", "opt", "gpt_neox"):
        fields["qkv_bias"] = True
        fields["o_bias"] = family != "qwen2"
    elif family == "falcon":
        fields.update(qkv_bias=bool(cfg.get("bias")), o_bias=bool(cfg.get("bias")))
    elif family == "gpt_oss":
        fields.update(qkv_bias=True, o_bias=True, attention_sinks=True)
    elif attention_bias:
        fields.update(qkv_bias=True, o_bias=True)
    if family in ("qwen3", "qwen3_moe", "gemma3", "qwen3_next"):
        fields["qk_norm"] = True
    if family in ("gemma2", "gemma3"):
        fields["norms_per_layer"] = 4
    # Gemma2Config defaults attn_logit_softcapping to 50.0; Gemma3 dropped it (None) for QK-norm
    # (transformers src/transformers/models/gemma2/configuration_gemma2.py, gemma3/configuration_gemma3.py)
    softcap = cfg.get("attn_logit_softcapping", 50.0 if family == "gemma2" else None)
    if isinstance(softcap, (int, float)) and not isinstance(softcap, bool) and 0 < softcap < 1e6:
        fields["attn_logit_softcap"] = float(softcap)

    if expert_key:
        experts = _int(cfg, expert_key, where)
        top_k = _int(cfg, "num_experts_per_tok", where)
        if not experts or not top_k or top_k > experts:
            raise AdvisorInputError(where, f"{expert_key} and num_experts_per_tok must satisfy 0 < k <= experts")
        moe_inter = _int(cfg, "moe_intermediate_size", where, required=False) or fields["intermediate_size"]
        if family in MLA_FAMILIES:
            first_dense = _int(cfg, "first_k_dense_replace", where, required=False) or 0
            freq = _int(cfg, "moe_layer_freq", where, required=False) or 1
            moe_layers = tuple(i for i in range(first_dense, layers) if i % freq == 0)
        elif family in ("qwen3_moe", "qwen3_next"):
            step = _int(cfg, "decoder_sparse_step", where, required=False) or 1
            dense_only = set(_int_list(cfg, "mlp_only_layers", where))
            moe_layers = tuple(i for i in range(layers) if i not in dense_only and (i + 1) % step == 0)
        elif family == "jamba":  # JambaConfig.layers_num_experts: experts where i % period == offset
            period, offset = _period(cfg, "expert_layer_period", 2, "expert_layer_offset", 1, where)
            moe_layers = tuple(i for i in range(layers) if i % period == offset)
        else:
            moe_layers = tuple(range(layers))
        fields.update(
            num_experts=experts,
            experts_per_token=top_k,
            moe_intermediate_size=moe_inter,
            shared_experts=_int(cfg, "n_shared_experts", where, required=False) or 0,
            moe_layers=moe_layers,
            expert_bias=family == "gpt_oss",
            router_bias=family in ("gpt_oss", "deepseek_v3"),
        )
        if family == "qwen3_next":  # one shared expert of its own width, behind a 1 x hidden sigmoid gate
            shared = _int(cfg, "shared_expert_intermediate_size", where, required=False) or 0
            fields.update(shared_experts=1 if shared else 0, shared_expert_intermediate_size=shared or None,
                          shared_expert_gate=bool(shared))
    if family in HYBRID_FAMILIES:
        ffn_layers = layers if fields.get("ffn_in_every_layer", True) else fields["layer_kinds"].count("mlp")
        if ffn_layers > len(fields.get("moe_layers", ())) and not fields["intermediate_size"]:
            raise AdvisorInputError(where, "missing required field(s) 'intermediate_size' (the model has dense "
                                    "MLP layers)")
    if family in MLA_FAMILIES:
        fields["mla"] = MLA(
            q_lora_rank=_int(cfg, "q_lora_rank", where, required=False),
            kv_lora_rank=_int(cfg, "kv_lora_rank", where),
            qk_nope_head_dim=_int(cfg, "qk_nope_head_dim", where),
            qk_rope_head_dim=_int(cfg, "qk_rope_head_dim", where),
            v_head_dim=_int(cfg, "v_head_dim", where),
        )
        if cfg.get("num_nextn_predict_layers"):
            notes.append("the multi-token-prediction (MTP) module is not counted")
    fields["notes"] = tuple(notes)
    return Architecture(**fields)


SIGLIP_DEFAULTS = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_channels": 3,
                   "image_size": 224, "patch_size": 16}


def _vision(cfg: Mapping[str, Any], family: str, text_hidden: int, where: str) -> Vision | None:
    """The SigLIP tower of a Gemma-3 multimodal config (``vision_config``), or None (text-only configs, and
    vision towers of other kinds, which are noted as not counted)."""
    vc = cfg.get("vision_config")
    if family != "gemma3" or not isinstance(vc, Mapping) or vc.get("model_type", "siglip_vision_model") not in (
            "siglip_vision_model", "siglip"):
        return None
    if vc.get("vision_use_head"):
        raise AdvisorInputError(where, "vision_config.vision_use_head is set; a SigLIP pooling head is not counted")
    values = {k: _int(vc, k, f"{where} vision_config", required=False) or d for k, d in SIGLIP_DEFAULTS.items()}
    return Vision(hidden_size=values["hidden_size"], intermediate_size=values["intermediate_size"],
                  num_layers=values["num_hidden_layers"], num_channels=values["num_channels"],
                  image_size=values["image_size"], patch_size=values["patch_size"], projector_dim=text_hidden)


def _model_type(cfg: Mapping[str, Any], where: str) -> str:
    """The config's model_type, or the one its transformers class implies; refused when not supported."""
    model_type = cfg.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise AdvisorInputError(where, f"field 'model_type' must be a string, got {model_type!r}")
    model_type = (model_type or "").strip()
    if not model_type:
        classes = cfg.get("architectures")
        names = [c for c in classes if isinstance(c, str)] if isinstance(classes, list) else []
        model_type = next((ARCHITECTURE_CLASSES[c] for c in names if c in ARCHITECTURE_CLASSES), "")
        if not model_type:
            shown = ", ".join(names[:3]) or "none"
            raise AdvisorInputError(where, f"missing field 'model_type', and its 'architectures' ({shown}) name "
                                    "no supported class", choices=SUPPORTED_MODEL_TYPES)
    if model_type not in FAMILIES:
        raise AdvisorInputError(where, f"model_type {model_type[:80]!r} is not a supported architecture (its tensors "
                                "and cache cannot be counted without guessing)", value=model_type[:80],
                                choices=SUPPORTED_MODEL_TYPES)
    return model_type


def _legacy_fields(cfg: Mapping[str, Any], family: str, hidden: int, where: str) -> dict[str, Any]:
    """What GPT-2-era decoders differ in: one-matrix MLPs with biases, LayerNorm with biases, learned
    positions (GPT-2: n_positions rows; OPT: max_position_embeddings + 2), a biased lm_head (GPT-J)."""
    if family == "gpt2":
        return dict(gated_mlp=False, mlp_bias=True, norm_bias=True,
                    learned_positions=_int(cfg, "max_position_embeddings", where, required=False) or 1024)
    if family == "gptj":
        return dict(gated_mlp=False, mlp_bias=True, norm_bias=True, norms_per_layer=1, lm_head_bias=True)
    if family == "gpt_neox":
        return dict(gated_mlp=False, mlp_bias=True, norm_bias=True)
    if family == "falcon":
        two = bool(cfg.get("new_decoder_architecture"))
        return dict(gated_mlp=False, mlp_bias=bool(cfg.get("bias")), norm_bias=True,
                    norms_per_layer=2 if two else 1)
    if family == "opt":
        extra: dict[str, Any] = dict(gated_mlp=False, mlp_bias=bool(cfg.get("enable_bias", True)), norm_bias=True,
                                     learned_positions=(_int(cfg, "max_position_embeddings", where,
                                                             required=False) or 2048) + 2)
        projection = _int(cfg, "word_embed_proj_dim", where, required=False)
        if projection and projection != hidden:
            extra["notes_extra"] = f"OPT's {projection}-wide embedding projection is not counted"
        return extra
    return {}


def _flag(cfg: Mapping[str, Any], key: str, default: bool) -> bool:
    value = cfg.get(key)
    return default if value is None else bool(value)


def _period(cfg: Mapping[str, Any], period_key: str, period_default: int, offset_key: str, offset_default: int,
            where: str) -> tuple[int, int]:
    """Jamba's every-Nth-layer layout (JambaConfig defaults when absent); the offset must lie inside the period."""
    period = _int(cfg, period_key, where, required=False) or period_default
    offset = _int(cfg, offset_key, where, required=False)
    offset = offset_default if offset is None else offset
    if offset >= period:
        raise AdvisorInputError(where, f"{offset_key} ({offset}) must be smaller than {period_key} ({period})")
    return period, offset


def _hybrid_kinds(cfg: Mapping[str, Any], family: str, layers: int, where: str) -> tuple[str, ...]:
    """Each layer's token mixer, as the model's transformers config derives it."""
    if family == "qwen3_next":
        # Qwen3NextConfig.__post_init__: layer_types, else "full_attention" every full_attention_interval
        # (default 4) layers (transformers src/transformers/models/qwen3_next/configuration_qwen3_next.py
        # @ 008e574391258935f3ecc3035c882e73bbcac419)
        layer_types = cfg.get("layer_types")
        if isinstance(layer_types, list) and layer_types:
            names = {"linear_attention": "linear_attention", "full_attention": "attention"}
            unknown = sorted({str(t) for t in layer_types if t not in names})
            if unknown:
                raise AdvisorInputError(where, f"layer_types names unknown layer type(s) {', '.join(unknown)[:80]}")
            kinds = tuple(names[t] for t in layer_types)
        else:
            interval = _int(cfg, "full_attention_interval", where, required=False) or 4
            kinds = tuple("attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(layers))
    elif family == "nemotron_h":
        # hybrid_override_pattern: M = Mamba-2, * = attention, - = MLP, E = MoE; or the layers_block_type list
        # (NemotronHConfig._pattern_to_list, configuration_nemotron_h.py @ 13923c63d59f73faebae79b2ee3fafc7e3a35201)
        pattern = cfg.get("hybrid_override_pattern")
        block_types = cfg.get("layers_block_type") or cfg.get("layer_types")
        if isinstance(pattern, str) and pattern:
            names = {"M": "mamba", "*": "attention", "-": "mlp", "E": "moe"}
            items = list(pattern)
            field = "hybrid_override_pattern"
        elif isinstance(block_types, list) and block_types:
            names = {"mamba": "mamba", "linear_attention": "mamba", "attention": "attention",
                     "full_attention": "attention", "mlp": "mlp", "moe": "moe"}
            items = block_types
            field = "layers_block_type"
        else:
            raise AdvisorInputError(where, "missing required field(s) 'hybrid_override_pattern'")
        unknown = sorted({str(t) for t in items if t not in names})
        if unknown:
            raise AdvisorInputError(where, f"{field} has unknown layer type(s) {', '.join(unknown)[:80]}")
        kinds = tuple(names[t] for t in items)
        if "moe" in kinds:
            raise AdvisorInputError(where, f"{field} has MoE layers ('E'); Nemotron-H's latent-projection experts "
                                    "are not supported (their tensors cannot be counted without guessing)")
    else:  # jamba: JambaConfig.layers_block_type, attention where i % attn_layer_period == attn_layer_offset
        period, offset = _period(cfg, "attn_layer_period", 8, "attn_layer_offset", 4, where)
        kinds = tuple("attention" if i % period == offset else "mamba" for i in range(layers))
    if len(kinds) != layers:
        raise AdvisorInputError(where, f"the layer pattern has {len(kinds)} layers but num_hidden_layers is {layers}")
    if "attention" not in kinds:
        raise AdvisorInputError(where, "the layer pattern has no attention layer")
    return kinds


def _hybrid_fields(cfg: Mapping[str, Any], family: str, layers: int, hidden: int, where: str) -> dict[str, Any]:
    """Layer kinds, the recurrent mixer and the per-family block layout of Qwen3-Next, Nemotron-H and Jamba.

    Recurrent state dtypes follow vLLM: conv and recurrent state in the serving dtype (BF16) by default
    (CacheConfig.mamba_cache_dtype = mamba_ssm_cache_dtype = "auto", MambaStateDtypeCalculator._mamba_state_dtype,
    vllm/model_executor/layers/mamba/mamba_utils.py @ 02d710837549a368073552333f66d714477415d2), except Nemotron-H,
    whose SSM state vLLM keeps in the config's mamba_ssm_cache_dtype, float32 when absent
    (NemotronHForCausalLMConfig.DEFAULT_MAMBA_SSM_CACHE_DTYPE in vllm/model_executor/models/config.py,
    https://docs.vllm.ai/en/latest/api/vllm/model_executor/models/config/).
    """
    kinds = _hybrid_kinds(cfg, family, layers, where)
    out: dict[str, Any] = {"layer_kinds": kinds, "layer_windows": (None,) * kinds.count("attention")}
    if family == "qwen3_next":
        # Qwen3NextGatedDeltaNet (transformers src/transformers/models/qwen3_next/modeling_qwen3_next.py
        # @ 01cdc6081c7500f9e50c98b1b943c90ecb665db3); the attention's q_proj is twice wide (query + output gate)
        k_heads = _int(cfg, "linear_num_key_heads", where)
        v_heads = _int(cfg, "linear_num_value_heads", where)
        if not k_heads or not v_heads or v_heads % k_heads:
            raise AdvisorInputError(where, "linear_num_value_heads must be a positive multiple of linear_num_key_heads")
        recurrent = Recurrent(kind="gated_deltanet", num_heads=v_heads,
                              head_dim=_int(cfg, "linear_value_head_dim", where) or 0,
                              state_size=_int(cfg, "linear_key_head_dim", where) or 0, groups=k_heads,
                              conv_kernel=_int(cfg, "linear_conv_kernel_dim", where) or 0)
        out.update(attn_output_gate=True)
        mixer = "Gated DeltaNet linear-attention"
        notes = ["the multi-token-prediction (MTP) module the checkpoint ships (mtp.*) is not counted"]
    elif family == "nemotron_h":
        # NemotronHMamba2Mixer / NemotronHBlock: one norm and one mixer per layer; "-" layers are a non-gated
        # relu2 MLP (transformers src/transformers/models/nemotron_h/modeling_nemotron_h.py
        # @ 008d9e9577b0eb0149aa6bb0c44da582b10e0b6e)
        heads = _int(cfg, "mamba_num_heads", where)
        groups = _int(cfg, "n_groups", where)
        if not heads or not groups or heads % groups:
            raise AdvisorInputError(where, "mamba_num_heads must be a positive multiple of n_groups")
        ssm_dtype = str(cfg.get("mamba_ssm_cache_dtype") or "float32")
        if ssm_dtype not in STATE_DTYPE_BYTES:
            raise AdvisorInputError(where, f"mamba_ssm_cache_dtype {ssm_dtype[:40]!r} is not one of "
                                    f"{', '.join(STATE_DTYPE_BYTES)}")
        recurrent = Recurrent(kind="mamba2", num_heads=heads, head_dim=_int(cfg, "mamba_head_dim", where) or 0,
                              state_size=_int(cfg, "ssm_state_size", where) or 0, groups=groups,
                              conv_kernel=_int(cfg, "conv_kernel", where) or 0,
                              conv_bias=_flag(cfg, "use_conv_bias", True),
                              proj_bias=_flag(cfg, "use_bias", False) or _flag(cfg, "mamba_proj_bias", False),
                              ssm_state_bytes=STATE_DTYPE_BYTES[ssm_dtype])
        out.update(norms_per_layer=1, ffn_in_every_layer=False, gated_mlp=False,
                   mlp_bias=_flag(cfg, "mlp_bias", False))
        mixer = "Mamba-2"
        notes = []
        if cfg.get("num_nextn_predict_layers"):
            notes.append("the multi-token-prediction (MTP) module is not counted")
    else:
        # JambaMambaMixer, Mamba-1 with dt/B/C RMSNorms (transformers src/transformers/models/jamba/modeling_jamba.py
        # @ 008f5c8c29be84d4721dc6d1e0fcd72300580be4); JambaConfig defaults for absent mamba_* fields
        expand = _int(cfg, "mamba_expand", where, required=False) or 2
        dt_rank = cfg.get("mamba_dt_rank")
        dt_rank = -(-hidden // 16) if dt_rank in (None, "auto") else _int(cfg, "mamba_dt_rank", where)
        recurrent = Recurrent(kind="mamba", num_heads=expand * hidden, head_dim=1,
                              state_size=_int(cfg, "mamba_d_state", where, required=False) or 16, groups=0,
                              conv_kernel=_int(cfg, "mamba_d_conv", where, required=False) or 4,
                              conv_bias=_flag(cfg, "mamba_conv_bias", True),
                              proj_bias=_flag(cfg, "mamba_proj_bias", False), dt_rank=dt_rank or 0)
        mixer = "Mamba"
        notes = []
    if not (recurrent.num_heads and recurrent.head_dim and recurrent.state_size and recurrent.conv_kernel):
        raise AdvisorInputError(where, "the linear-attention / Mamba head, state and conv sizes must be > 0")
    attention, stateful = kinds.count("attention"), sum(1 for k in kinds if k in RECURRENT_KINDS)
    notes.append(f"hybrid: {attention} of {layers} layers are attention and hold a KV cache; {stateful} "
                 f"{mixer} layers keep a fixed-size state per sequence instead, counted with the KV cache")
    out.update(recurrent=recurrent, notes=notes)
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a config.json from disk with a size bound and a readable error on bad JSON."""
    p = Path(path)
    where = p.name or str(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise AdvisorInputError("--model", f"cannot read {str(path)!r}: {exc.strerror}") from None
    if size > MAX_CONFIG_BYTES:
        raise AdvisorInputError(where, f"file is {size} bytes; a config.json must be under {MAX_CONFIG_BYTES}")
    return parse_config_text(p.read_bytes(), where)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_config_text(data: bytes | str, where: str = "config.json") -> dict[str, Any]:
    """A config.json's text parsed: bounded size, no NaN/Infinity, no deep nesting. Raises AdvisorInputError."""
    if len(data) > MAX_CONFIG_BYTES:
        raise AdvisorInputError(where, f"file is {len(data)} bytes; a config.json must be under {MAX_CONFIG_BYTES}")
    try:
        parsed = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise AdvisorInputError(where, "not a config.json: its JSON is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, NaN/Infinity, integers over 4,300 digits
        raise AdvisorInputError(where, f"not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(parsed, dict):
        raise AdvisorInputError(where, "expected a JSON object with the model's config fields")
    return parsed


# --------------------------------------------------------------------------- inventory
_INVENTORIES: dict[int, tuple[Architecture, tuple[Tensor, ...]]] = {}  # id(arch) -> (arch, its tensors)


def tensor_inventory(arch: Architecture) -> tuple[Tensor, ...]:
    """Every weight tensor of the model, grouped by module, with copy counts (cached by the architecture object:
    architectures are frozen, and the search asks for the same one many times per request)."""
    hit = _INVENTORIES.get(id(arch))
    if hit is not None and hit[0] is arch:
        return hit[1]
    if len(_INVENTORIES) > 256:
        _INVENTORIES.clear()
    tensors = _inventory(arch)
    _INVENTORIES[id(arch)] = (arch, tensors)
    return tensors


def _inventory(arch: Architecture) -> tuple[Tensor, ...]:
    h, n_layers = arch.hidden_size, arch.num_layers
    out: list[Tensor] = []

    def add(group: str, name: str, rows: int, cols: int | None, copies: int, active: int | None = None):
        if copies > 0 and rows > 0:
            out.append(
                Tensor(
                    group=group,
                    name=name,
                    rows=rows,
                    cols=cols,
                    copies=copies,
                    active_copies=copies if active is None else active,
                )
            )

    add("embedding", "embed_tokens", arch.vocab_size, h, 1)
    if arch.learned_positions:
        add("embedding", "position_embeddings", arch.learned_positions, h, 1)
    if not arch.tied_embeddings:
        add("lm_head", "lm_head", arch.vocab_size, h, 1)
    if arch.lm_head_bias:
        add("lm_head", "lm_head_bias", arch.vocab_size, None, 1)
    norm = 2 * h if arch.norm_bias else h  # LayerNorm keeps a bias beside its scale
    add("norms", "final_norm", norm, None, 1)
    add("norms", "layer_norms", norm, None, n_layers * arch.norms_per_layer)

    # attention (every layer, except in hybrids)
    n_attn = arch.attention_layers
    if arch.mla is not None:
        m = arch.mla
        qk_dim = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            add("attention", "q_a_proj", m.q_lora_rank, h, n_attn)
            add("norms", "q_a_layernorm", m.q_lora_rank, None, n_attn)
            add("attention", "q_b_proj", arch.num_heads * qk_dim, m.q_lora_rank, n_attn)
        else:
            add("attention", "q_proj", arch.num_heads * qk_dim, h, n_attn)
        add("attention", "kv_a_proj_with_mqa", m.kv_lora_rank + m.qk_rope_head_dim, h, n_attn)
        add("norms", "kv_a_layernorm", m.kv_lora_rank, None, n_attn)
        add("attention", "kv_b_proj", arch.num_heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank, n_attn)
        add("attention", "o_proj", h, arch.num_heads * m.v_head_dim, n_attn)
    else:
        q_dim = arch.num_heads * arch.head_dim
        kv_dim = arch.num_kv_heads * arch.head_dim
        add("attention", "q_proj", 2 * q_dim if arch.attn_output_gate else q_dim, h, n_attn)
        add("attention", "k_proj", kv_dim, h, n_attn)
        add("attention", "v_proj", kv_dim, h, n_attn)
        add("attention", "o_proj", h, q_dim, n_attn)
        if arch.qkv_bias:
            add("attention", "qkv_bias", q_dim + 2 * kv_dim, None, n_attn)
        if arch.o_bias:
            add("attention", "o_bias", h, None, n_attn)
        if arch.qk_norm:
            add("norms", "qk_norm", 2 * arch.head_dim, None, n_attn)
        if arch.attention_sinks:
            add("attention", "sinks", arch.num_heads, None, n_attn)
    if arch.recurrent is not None:
        _recurrent_tensors(arch.recurrent, h, arch.recurrent_layers, add)

    # feed-forward (every layer, except Nemotron-H's, where only the "mlp" layers have one)
    moe_layers = len(arch.moe_layers)
    dense_layers = (n_layers if arch.ffn_in_every_layer else arch.layer_kinds.count("mlp")) - moe_layers
    if dense_layers:
        inter = arch.intermediate_size or 0
        if arch.gated_mlp:
            add("mlp", "gate_up_proj", 2 * inter, h, dense_layers)
        else:
            add("mlp", "up_proj", inter, h, dense_layers)
        add("mlp", "down_proj", h, inter, dense_layers)
        if arch.mlp_bias:
            add("mlp", "mlp_bias", inter + h, None, dense_layers)
    if moe_layers:
        e, k, inter = arch.num_experts, arch.experts_per_token, arch.moe_intermediate_size or 0
        add("experts", "experts.gate_up_proj", 2 * inter, h, moe_layers * e, moe_layers * k)
        add("experts", "experts.down_proj", h, inter, moe_layers * e, moe_layers * k)
        if arch.expert_bias:
            add("experts", "experts.biases", 2 * inter + h, None, moe_layers * e, moe_layers * k)
        if arch.shared_experts:
            shared = arch.shared_expert_intermediate_size or inter * arch.shared_experts
            add("experts", "shared_experts.gate_up_proj", 2 * shared, h, moe_layers)
            add("experts", "shared_experts.down_proj", h, shared, moe_layers)
        if arch.shared_expert_gate:
            add("router", "shared_expert_gate", 1, h, moe_layers)
        add("router", "router", e, h, moe_layers)
        if arch.router_bias:
            add("router", "router_bias", e, None, moe_layers)
    if arch.vision is not None:
        _vision_tensors(arch.vision, add)
    return tuple(out)


def _vision_tensors(v: Vision, add) -> None:
    """SiglipVisionModel (transformers models/siglip/modeling_siglip.py: patch Conv2d with bias, learned position
    embedding, per layer q/k/v/out projections and fc1/fc2 with biases and two LayerNorms with biases, a post
    LayerNorm) and Gemma3MultiModalProjector. No text token passes through them: no active copies."""
    d, inter, n = v.hidden_size, v.intermediate_size, v.num_layers
    add("vision", "patch_embedding", d, v.num_channels * v.patch_size ** 2, 1, 0)
    add("vision", "position_embedding", v.num_patches, d, 1, 0)
    add("vision", "attention.qkvo_proj", d, d, 4 * n, 0)
    add("vision", "mlp.fc1", inter, d, n, 0)
    add("vision", "mlp.fc2", d, inter, n, 0)
    add("vision", "biases", 4 * d + inter + d, None, n, 0)  # per layer: q k v o, fc1, fc2
    add("vision", "layer_norms", 4 * d, None, n, 0)  # two LayerNorms, weight and bias
    add("vision", "patch_bias_post_layernorm", d + 2 * d, None, 1, 0)
    add("vision", "multi_modal_projector", v.projector_dim, d, 1, 0)
    add("vision", "mm_soft_emb_norm", d, None, 1, 0)


def _recurrent_tensors(r: Recurrent, h: int, layers: int, add) -> None:
    """The token mixer of a hybrid's linear-attention / Mamba layers. Projections are matrices (group
    "attention", the mixer's slot); the depthwise conv, dt/A/D and norm weights are vectors, which runtimes keep
    unquantized. Shapes from the transformers modules cited in :func:`_hybrid_fields`."""
    conv = r.conv_channels()
    if r.kind == "gated_deltanet":  # Qwen3NextGatedDeltaNet
        key_dim = r.groups * r.state_size
        add("attention", "linear_attn.in_proj_qkvz", 2 * key_dim + 2 * r.inner, h, layers)
        add("attention", "linear_attn.in_proj_ba", 2 * r.num_heads, h, layers)
        add("attention", "linear_attn.conv1d", conv * r.conv_kernel, None, layers)  # no bias
        add("attention", "linear_attn.dt_bias_A_log", 2 * r.num_heads, None, layers)
        add("norms", "linear_attn.norm", r.head_dim, None, layers)  # one gated RMSNorm over a value head
        add("attention", "linear_attn.out_proj", h, r.inner, layers)
    elif r.kind == "mamba2":  # NemotronHMamba2Mixer: in_proj -> [gate z, x B C, dt]
        add("attention", "mixer.in_proj", r.inner + conv + r.num_heads, h, layers)
        if r.proj_bias:
            add("attention", "mixer.in_proj_bias", r.inner + conv + r.num_heads, None, layers)
        add("attention", "mixer.conv1d", conv * r.conv_kernel + (conv if r.conv_bias else 0), None, layers)
        add("attention", "mixer.dt_bias_A_log_D", 3 * r.num_heads, None, layers)
        add("norms", "mixer.norm", r.inner, None, layers)  # grouped gated RMSNorm over the inner width
        add("attention", "mixer.out_proj", h, r.inner, layers)
        if r.proj_bias:
            add("attention", "mixer.out_proj_bias", h, None, layers)
    else:  # JambaMambaMixer (Mamba-1): in_proj -> [x, gate], x_proj -> [dt, B, C], dt_proj, A_log (inner x state)
        add("attention", "mamba.in_proj", 2 * r.inner, h, layers)
        if r.proj_bias:
            add("attention", "mamba.in_proj_bias", 2 * r.inner, None, layers)
        add("attention", "mamba.conv1d", conv * r.conv_kernel + (conv if r.conv_bias else 0), None, layers)
        add("attention", "mamba.x_proj", r.dt_rank + 2 * r.state_size, r.inner, layers)
        add("attention", "mamba.dt_proj", r.inner, r.dt_rank, layers)
        add("attention", "mamba.dt_proj_bias_A_log_D", r.inner * (r.state_size + 2), None, layers)
        add("norms", "mamba.dt_b_c_layernorm", r.dt_rank + 2 * r.state_size, None, layers)
        add("attention", "mamba.out_proj", h, r.inner, layers)
        if r.proj_bias:
            add("attention", "mamba.out_proj_bias", h, None, layers)

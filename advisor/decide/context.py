"""What one endpoint's search needs, computed once: the model's layouts per weight scheme, bytes per GPU for
each tensor-parallel size, KV bytes per sequence, runtime overheads, speed inputs, quality per configuration,
and the facts the rules read.

Everything is cached per endpoint: the search asks for the same weights at several layouts and runtimes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

from advisor.decide.gates import StaticVerdict, apply_static
from advisor.decide.rules import compile_condition, facts_named, specialize
from advisor.intake.catalog import ResolvedModel
from advisor.intake.request import CUSTOM_GPU_ID, Request, Shape
from advisor.knowledge import derived
from advisor.knowledge.schema import GPU, Candidate, Checkpoint, Knowledge, KVFormat, Rule, Runtime, RuntimeSpeed
from advisor.physics import gguf, memory
from advisor.physics.architecture import tensor_inventory
from advisor.physics.estimate import gpu_price, resolve_layout
from advisor.physics.performance import ModelCost, Performance, SpeedModel, chunk_tokens_for, pipeline_for, with_bands
from advisor.physics.quality import Quality, expected_quality, size_bucket

# Facts known before memory, speed and quality are computed; rules naming only these run once per
# (candidate, KV format, runtime). Rules naming any other fact run per deployment, or when explaining.
# quant_method values of post-training quantization tools: such a checkpoint has a 16-bit original (its base
# model); FP8 / MXFP4 checkpoints may be the release itself (DeepSeek-V3, gpt-oss).
POST_TRAINING_TOOLS = ("awq", "gptq", "compressed-tensors", "modelopt", "bitsandbytes", "gguf")
STATIC_PREFIXES = ("request.", "endpoint.", "gpu.", "runtime.", "model.", "cand.", "kv.")


class CompiledRule:
    """A rule reduced by the endpoint's fixed facts and compiled, with the phase it runs in and its scope: which
    of the candidate's, KV format's and runtime's facts it still reads (a rule on the candidate alone is
    evaluated once per candidate, not once per candidate x KV format x runtime)."""

    def __init__(self, rule: Rule, check: Callable[[dict], bool], static: bool, versus: Callable | None,
                 scope: tuple[bool, bool, bool], key: tuple):
        self.rule, self.check, self.static, self.versus, self.scope = rule, check, static, versus, scope
        self.key = key  # (rule id, the condition left after the fixed facts, fixed facts it still reads)


class Weights:
    """One weight scheme of the model: layout, checkpoint bytes, bytes per GPU at any TP size, speed inputs."""

    def __init__(self, k: Knowledge, model: ResolvedModel, cand: Candidate):
        _, self.layout = resolve_layout(k, model, cand.weights, cand.group_size)
        arch = model.architecture
        breakdown = memory.weight_breakdown(arch, self.layout)
        self.checkpoint_bytes = sum(m.bytes for m in breakdown)
        self.params = sum(m.params for m in breakdown)
        quantized = [m for m in breakdown if m.quantized]
        self.bits_per_weight = 8 * self.checkpoint_bytes / self.params if self.params else 0.0
        self.bits_per_quantized_weight = (8 * sum(m.bytes for m in quantized) / sum(m.params for m in quantized)
                                          if quantized else None)
        self.format = quantized[0].format if quantized else breakdown[0].format
        self.groups = tuple(m.group for m in breakdown)
        self.breakdown = breakdown
        self._arch = arch
        self._split = self._computed = memory.matrix_vector_bytes(arch, self.layout)
        self._stages: dict[tuple[int, int], int] = {}
        # speed reads the text model: no decode step passes through a vision tower
        self.cost = ModelCost(arch.model_copy(update={"vision": None}) if arch.vision else arch, self.layout)
        native = model.native
        self.exact = bool(native.checkpoint_bytes) and (
            cand.weights == "native" or (not native.quantized and cand.weights == native.scheme))
        # a GGUF type: llama.cpp's own per-tensor type choices, not a file average (advisor/physics/gguf.py)
        per_tensor = None if self.exact else gguf.scheme_bytes(arch, cand.weights)
        if self.exact or per_tensor:  # exact bytes replace the computed size; vectors are not split
            exact = int(per_tensor or native.checkpoint_bytes)  # type: ignore[arg-type]
            scale = exact / self.checkpoint_bytes if self.checkpoint_bytes else 1.0
            self.checkpoint_bytes = exact
            self.bits_per_weight = 8 * exact / self.params if self.params else 0.0
            if self.bits_per_quantized_weight is not None:
                self.bits_per_quantized_weight *= scale
            self._split = (max(0, exact - self._split[1]), self._split[1])

    def per_gpu(self, tp: int, pp: int = 1) -> int:
        """One GPU's share at tensor parallel `tp`; with `pp` pipeline stages, a GPU of the largest stage
        (memory.stage_weight_bytes; exact checkpoint bytes scale its matrices the way they scale the whole)."""
        if pp > 1:
            return self._stage_per_gpu(tp, pp)
        matrix, vector = self._split
        return math.ceil(matrix / tp) + vector

    def _stage_per_gpu(self, tp: int, pp: int) -> int:
        key = (tp, pp)
        if key not in self._stages:
            scale = self._split[0] / self._computed[0] if self._computed[0] else 1.0
            self._stages[key] = max(math.ceil(m * scale / tp) + math.ceil(v)
                                    for m, v in memory.stage_weight_bytes(self._arch, self.layout, pp))
        return self._stages[key]

    def loaded_per_gpu(self, runtime: Runtime, gpu: GPU, tp: int, pp: int = 1) -> int:
        """One GPU's weights as the runtime holds them after loading (repacked kernels' layouts included; with `pp`
        stages, the largest stage's share of what is repacked)."""
        repack = memory.repack_bytes_per_gpu(runtime.memory, self.breakdown, gpu.architecture, tp)
        if pp > 1 and repack:
            repack = math.ceil(repack * memory.stage_layer_share(self._arch.num_layers, pp))
        return self.per_gpu(tp, pp) + repack


HOST_CACHE_ENTRIES = 4096  # the most entries one model-and-GPU cache keeps (_Host.trim)


class _Host:
    """The caches of what depends on the model and GPU but not on the endpoint (weights, loaded bytes, memory
    budgets, overheads, KV bytes per sequence, prefill passes, candidate facts): shared by every endpoint on the
    same model and GPU, e.g. a request's endpoints, or the wizard's reruns. Keys carry any endpoint figure they
    depend on (the context)."""

    __slots__ = ("model", "params_b", "weights", "kv", "overhead", "util", "phases", "chunks", "loaded", "fit_base",
                 "budgets", "parts", "pipelines")

    def __init__(self, model: ResolvedModel, same: _Host | None = None):
        self.model = model  # held, so that its id (part of the key) is not reused while this lives
        # what depends on the model alone is shared with `same`, the same model on another GPU
        self.params_b = same.params_b if same else sum(t.params for t in tensor_inventory(model.architecture)) / 1e9
        self.weights: dict = same.weights if same else {}
        self.parts: dict = same.parts if same else {}  # the candidates' facts (and the KV formats' and runtimes')
        self.kv: dict = {}
        self.overhead: dict = {}
        self.util: dict = {}
        self.phases: dict = {}
        self.chunks: dict = {}
        self.loaded: dict = {}
        self.fit_base: dict = {}
        self.budgets: dict = {}
        self.pipelines: dict = {}

    def trim(self) -> None:
        """Empty any cache past HOST_CACHE_ENTRIES entries: those keyed by an endpoint figure (context, concurrency,
        prompt length) grow with every new one a long-lived server is asked for (a catalog sweep uses at most ~500).
        Another session's thread may be reading one meanwhile: each read takes the value once (dict.get), never a
        check and then a second lookup."""
        for name in ("kv", "overhead", "phases", "loaded", "fit_base", "budgets"):
            cache = getattr(self, name)
            if len(cache) > HOST_CACHE_ENTRIES:
                cache.clear()


def _host(k: Knowledge, model: ResolvedModel, gpu_key) -> _Host:
    """The shared caches of this model (by identity: a catalog model is resolved once) on this GPU."""
    hosts = derived(k, "hosts", dict)
    key = (id(model), gpu_key)
    host = hosts.get(key)
    if host is None or host.model is not model:
        if len(hosts) >= 32:  # bounded: a custom model is a new object each request
            hosts.clear()
        # (a copy of the values: the app's session threads may add to the table meanwhile)
        same = next((h for h in list(hosts.values()) if h.model is model), None)
        host = hosts[key] = _Host(model, same)
    else:
        host.trim()
    return host


class EndpointContext:
    """The endpoint's fixed inputs and the caches the search shares."""

    def __init__(self, k: Knowledge, request: Request, model: ResolvedModel, gpu: GPU, shape: Shape):
        self.k, self.request, self.model, self.gpu, self.shape = k, request, model, gpu, shape
        self.arch = model.architecture
        # what identifies the GPU in caches shared across requests: a table row by its id, a custom GPU (whose id
        # every custom GPU shares) by its whole description
        self.gpu_key = gpu.id if gpu.id != CUSTOM_GPU_ID else (gpu.id, gpu.model_dump_json())
        self.price = request.usd_per_gpu_hour or gpu_price(k, gpu.id)
        host = _host(k, model, self.gpu_key)
        self.params_b = host.params_b
        self.tasks = dict(shape.workload.quality_tasks)
        self.mode = shape.workload.concurrency_mode
        # caches that do not depend on the endpoint: shared by every endpoint on the same model and GPU (_Host)
        self._weights: dict[tuple[str, int | None], Weights] = host.weights
        self._kv: dict[tuple[str, int, int, int], int] = host.kv
        self._overhead: dict[tuple, int] = host.overhead
        self._visible: int | None = None
        self._util: dict[tuple[str, int, int], tuple[float, int]] = host.util
        self._phases: dict[tuple, object] = host.phases  # prefill passes (but their KV bytes) by model cost, runtime, TP and tokens
        self._speed_ranges: dict | None = None
        self._chunks: dict[tuple[str, int], int | None] = host.chunks  # prompt tokens per pass, by runtime and TP
        self._loaded: dict[tuple[str, str, int, int], int] = host.loaded
        self._fit_base: dict[tuple, tuple[int, int, int, float, int]] = host.fit_base
        self._budgets: dict[tuple, tuple[int, int, int, float, int, int]] = host.budgets  # see budget()
        self._parts: dict[tuple[str, str], dict] = host.parts
        self._pipelines: dict[int, object] = host.pipelines  # pipeline stages -> performance.Pipeline (hop costs)
        self.fits: dict[tuple, object] = {}  # MemoryFit by candidate, KV, runtime, TP and concurrency (gates.memory_fit)
        self._speeds: dict[tuple, Performance] = {}
        self._speed_models: dict[tuple, SpeedModel] = {}
        # quality is shared across requests of the same model type, size, tasks and native scheme (quality())
        self._quality: dict[tuple, Quality] = derived(k, "quality", dict)
        if len(self._quality) > 50_000:
            self._quality.clear()
        sigs, numbers = derived(k, "quality-signatures", lambda: ({}, itertools.count()))  # numbers never repeat
        if len(sigs) > 10_000:
            sigs.clear()
        sig = (self.arch.model_type, size_bucket(k, self.params_b), tuple(self.tasks.items()), model.native.scheme)
        self._quality_sig = sigs.get(sig)
        if self._quality_sig is None:
            self._quality_sig = sigs[sig] = next(numbers)
        self._facts: dict[tuple[str, str, str], dict] = {}
        # a rule's verdict on a candidate, KV format and runtime, shared across requests (see CompiledRule.key)
        self._fires: dict[tuple, bool] = derived(k, "rule-fires", dict)
        n = model.native
        self.model_key = (model.id, model.base_model, n.scheme, tuple(sorted(n.overrides.items())), n.candidates)
        if len(self._fires) > 200_000:
            self._fires.clear()
        self.support_cache: dict[tuple, list] = derived(k, "candidate-support", dict)  # gates.candidate_support
        self._speed_rows: dict[str, RuntimeSpeed] = derived(k, "speed-rows", lambda: {
            sp.runtime: sp for sp in k.speed.values()})
        crit = request.criteria
        self.base_facts = {
            "request.priority": shape.priority,
            "request.calibration": request.calibration,
            "request.quality_floor_pct": crit.quality_floor_pct,
            "request.unacceptable": _canonical(k, tuple(crit.unacceptable)),
            "request.max_ttft_ms": crit.max_ttft_ms,
            "request.max_tpot_ms": crit.max_tpot_ms,
            "request.max_cost_per_million_tokens": crit.max_cost_per_million_tokens,
            "endpoint.workload": shape.workload.id,
            "endpoint.concurrency": shape.concurrency,
            "endpoint.context": shape.context,
            "endpoint.prompt_tokens": shape.prompt_tokens,
            "endpoint.output_tokens": shape.output_tokens,
            "endpoint.uses_tools": shape.workload.uses_tools,
            "endpoint.structured_output": shape.workload.structured_output,
            "gpu.id": gpu.id,
            "gpu.vendor": gpu.vendor,
            "gpu.architecture": gpu.architecture,
            "gpu.cc": gpu.cc_value,
            "gpu.native": _canonical(k, tuple(gpu.native_formats)),
            "gpu.bf16": gpu.supports_bf16,
            "gpu.count": request.gpus * request.nodes,
            "gpu.nodes": request.nodes,
            "model.moe": self.arch.is_moe,
            "model.params_b": self.params_b,
            "model.mla": self.arch.mla is not None,
            "model.attention_sinks": self.arch.attention_sinks,
            "model.logit_softcap": self.arch.attn_logit_softcap is not None,
            "model.native_quantized": model.native.quantized,
            "model.post_training_quantized": model.native.quantized and model.native.method in POST_TRAINING_TOOLS,
            "model.base_model": bool(model.base_model),
        }
        self.rules = self._compile_rules()
        self._served_table = derived(k, "served", lambda: {
            r: (tuple([c.id for c in k.candidates.values() if r in c.runtimes]),
                tuple([kv.id for kv in k.kv_formats.values() if r in kv.runtime_flags])) for r in k.runtimes})
        # The search only needs the rules that reject or change quality; the words (notes, flags, claims) of
        # the rest are added to the few deployments a plan shows (ladder.finish).
        self.gate_rules = [cr for cr in self.rules if cr.static and (cr.rule.effect.reject or cr.rule.effect.quality)]
        # Verdicts are shared across requests whose gate rules reduced to the same conditions for the same model:
        # the rules' keys carry the fixed facts they were reduced by (CompiledRule.key).
        signatures = derived(k, "gate-signatures", dict)
        sig = (self.model_key, tuple(cr.key for cr in self.gate_rules))
        self._gate_sig = signatures.setdefault(sig, len(signatures))
        self._verdicts: dict[tuple, StaticVerdict] = derived(k, "verdicts", dict)
        if len(self._verdicts) > 200_000:
            self._verdicts.clear()
            signatures.clear()
            self._gate_sig = signatures.setdefault(sig, 0)
        self.static_rules = [cr for cr in self.rules if cr.static]
        # numbered from a counter that never repeats, so either table may be cleared on its own
        words_sigs, numbers = derived(k, "words-signatures", lambda: ({}, itertools.count()))
        if len(words_sigs) > 50_000:
            words_sigs.clear()
        sig = (self.model_key, tuple(cr.key for cr in self.static_rules))
        self._words_sig = words_sigs.get(sig)
        if self._words_sig is None:
            self._words_sig = words_sigs[sig] = next(numbers)
        self._words: dict[tuple, StaticVerdict] = derived(k, "words", dict)
        self.late_rejects = any(not cr.static and cr.rule.effect.reject for cr in self.rules)
        self.cost_stop_ratio = _cost_stop_ratio(k.priorities[shape.priority])

    # ------------------------------------------------------------------ rules
    def _compile_rules(self) -> list[CompiledRule]:
        """Each rule reduced by this endpoint's fixed facts and compiled. Rules are data and knowledge is frozen,
        so the reduction is shared by every endpoint whose fixed facts agree on what the rule reads; and the whole
        list by every endpoint whose fixed facts agree on what any rule reads."""
        read = derived(self.k, "rule-base-facts", lambda: sorted(
            {f for rule in self.k.rules.values() for f in _rule_facts(self.k, rule)} & set(self.base_facts)))
        lists = derived(self.k, "compiled-rule-lists", dict)
        whole = tuple([_hashable(self.base_facts[f]) for f in read])
        out = lists.get(whole)
        if out is None:
            if len(lists) > 5_000:
                lists.clear()
            out = lists[whole] = self._compile_each()
        return out

    def _compile_each(self) -> list[CompiledRule]:
        shared = derived(self.k, "compiled-rules", dict)
        out = []
        for rule in self.k.rules.values():
            names = _rule_facts(self.k, rule)
            key = (rule.id, tuple((f, _hashable(self.base_facts[f])) for f in names if f in self.base_facts))
            compiled = shared.get(key)
            if compiled is None:
                if len(shared) > 20_000:
                    shared.clear()
                reduced = specialize(rule.when, self.base_facts)
                compiled = None
                if reduced is not False:
                    check = (lambda facts: True) if reduced is True else compile_condition(reduced)
                    static = all(f.startswith(STATIC_PREFIXES) for f in names)
                    versus = compile_condition(rule.effect.versus) if rule.effect.versus else None
                    left = facts_named(reduced) if isinstance(reduced, dict) else set()
                    scope = tuple(any(f.startswith(p) for f in left) for p in ("cand.", "kv.", "runtime."))
                    # keyed by what is left of the condition (and the value of any fixed fact it still compares
                    # with): endpoints whose fixed facts differ but reduce the rule to the same condition share
                    # its verdicts (CompiledRule.key)
                    still = tuple((f, _hashable(self.base_facts[f])) for f in sorted(left) if f in self.base_facts)
                    compiled = CompiledRule(rule, check, static, versus, scope, (rule.id, repr(reduced), still))
                shared[key] = compiled or False
            if compiled:
                out.append(compiled)
        return out

    # ------------------------------------------------------------------ physics, cached
    def weights(self, cand: Candidate) -> Weights:
        key = (cand.weights, cand.group_size)
        weights = self._weights.get(key)  # (read once: another session's thread may empty a shared cache)
        if weights is None:
            shared = derived(self.k, "weights", dict)  # across requests: the same model and scheme, same bytes
            n = self.model.native
            native = (n.scheme, tuple(sorted(n.overrides.items())), n.group_size, n.checkpoint_bytes)
            full = (self.arch, native, *key)
            weights = shared.get(full)
            if weights is None:
                if len(shared) > 4096:  # the catalog's 25 models x 40 candidates stay; custom models cycle out
                    shared.clear()
                weights = shared[full] = Weights(self.k, self.model, cand)
            self._weights[key] = weights
        return weights

    def _evidence(self, cand: Candidate) -> str:
        """Whose quality evidence a candidate uses: a GGUF file's own type, else its evidence_as, else itself."""
        if cand.only_for_native == "gguf":
            scheme = self.model.native.scheme
            if scheme in self.k.candidates and scheme != "native-gguf":
                return scheme
        return cand.evidence_as or cand.id

    def published(self, cand: Candidate, runtime: Runtime | None = None) -> Checkpoint | None:
        """The published checkpoint of this model (or the base model a quantized checkpoint names) in the
        candidate's configuration (knowledge/checkpoints.yaml): the first one `runtime` loads, or with no runtime
        the first listed; None if there is none."""
        table = derived(self.k, "published", lambda: _published_table(self.k))
        for model_id in (self.model.id, self.model.base_model):
            rows = table.get((model_id, cand.id), []) if model_id else []
            for row in rows:
                if runtime is None or runtime.id in row.runtimes:
                    return row
            if rows and runtime is not None:
                return None
        return None

    def kv_per_sequence(self, kv: KVFormat, tp: int, context: int | None = None, pp: int = 1) -> int:
        """Bytes one sequence of the endpoint's context holds on one GPU of a `tp`-GPU replica (of the largest of
        `pp` pipeline stages)."""
        context = context or self.shape.context
        key = (kv.id, tp, context, pp)
        found = self._kv.get(key)
        if found is None:
            found = self._kv[key] = memory.kv_bytes_per_sequence(self.arch, kv, context, tp, pp)
        return found

    def overhead(self, runtime: Runtime, tp: int, concurrency: int, pp: int = 1) -> int:
        """Activations, CUDA graphs and non-torch memory per GPU, as the runtime accounts for them: llama.cpp's
        compute buffer grows with the tokens held; vLLM's sampler profile runs the --max-num-seqs the plan sets
        (the concurrency). With `pp` pipeline stages each stage profiles its own pass: the same activations per GPU
        as at tensor parallel `tp`, and every GPU keeps the multi-GPU non-torch (NCCL) memory."""
        kind = runtime.memory.activation.kind
        tokens = self.shape.context * concurrency if kind in ("per-head-context", "llama-compute") else 0
        seqs = concurrency if kind == "profile" else None
        key = (runtime.id, tp, tokens, seqs, pp)
        per_gpu = self._overhead.get(key)
        if per_gpu is None:
            per_gpu = memory.runtime_overhead(
                runtime.memory, self.arch, tp, tokens, gpu_gib=self.gpu.memory_gib, gpu_name=self.gpu.name,
                max_num_seqs=seqs).per_gpu
            if pp > 1 and tp == 1:  # one GPU per stage, but still in a distributed group
                per_gpu += memory.non_torch_bytes(runtime.memory, pp) - memory.non_torch_bytes(runtime.memory, 1)
            self._overhead[key] = per_gpu
        return per_gpu

    def loaded(self, cand: Candidate, runtime: Runtime, tp: int, pp: int = 1) -> int:
        """One GPU's weights as `runtime` holds them at tensor parallel `tp` (of the largest of `pp` stages; cached)."""
        key = (cand.id, runtime.id, tp, pp)
        found = self._loaded.get(key)
        if found is None:
            found = self._loaded[key] = self.weights(cand).loaded_per_gpu(runtime, self.gpu, tp, pp)
        return found

    def fit_base(self, cand: Candidate, runtime: Runtime, tp: int, pp: int = 1) -> tuple[int, int, int, float, int]:
        """What a memory fit takes that does not depend on the KV format or the requests held: (checkpoint bytes,
        one GPU's loaded weights, the GPU's visible bytes, the runtime's memory fraction, its non-torch bytes)."""
        key = (cand.id, runtime.id, tp, pp)
        base = self._fit_base.get(key)
        if base is None:
            # the same weights on the same GPU and runtime: shared across requests (the endpoint plays no part)
            weights = self.weights(cand)
            shared = derived(self.k, "fit-base", dict)
            full = (id(weights), runtime.id, self.gpu_key, tp, pp)
            entry = shared.get(full)
            if entry is None or entry[0] is not weights:  # the weights object keeps its id from being reused
                if len(shared) > 100_000:
                    shared.clear()
                util, non_torch = self.utilization(runtime, tp, pp)
                entry = shared[full] = (weights, (weights.checkpoint_bytes, self.loaded(cand, runtime, tp, pp),
                                                  self.visible_bytes(), util, non_torch))
            base = self._fit_base[key] = entry[1]
        return base

    def budget(self, cand: Candidate, runtime: Runtime, tp: int, concurrency: int, pp: int = 1
               ) -> tuple[int, int, int, float, int, int]:
        """A memory fit's figures that do not depend on the KV format, per GPU at `concurrency` requests: (checkpoint
        bytes, loaded weights, visible bytes, the runtime's memory fraction, the overhead with the headroom that
        fraction leaves, the KV budget: memory.kv_budget_per_gpu, negative when the weights alone do not fit).
        Cached: the search asks for each KV format in turn."""
        key = (cand.id, runtime.id, tp, concurrency, pp, self.shape.context)
        figures = self._budgets.get(key)
        if figures is None:
            checkpoint, w_gpu, capacity, util, non_torch = self.fit_base(cand, runtime, tp, pp)
            overhead = self.overhead(runtime, tp, concurrency, pp)
            budget = memory.kv_budget_per_gpu(runtime.memory, capacity, w_gpu, overhead, util, non_torch)
            headroom = max(0, capacity - w_gpu - overhead - max(budget, 0))
            figures = self._budgets[key] = (checkpoint, w_gpu, capacity, util, overhead + headroom, budget)
        return figures

    def visible_bytes(self) -> int:
        """What the runtime sees as one GPU's total (gpus.yaml visible_gib, or less the driver's reserve)."""
        if self._visible is None:
            self._visible = self.gpu.visible_bytes(self.k.decision["driver-reserved-fraction"].value)
        return self._visible

    def utilization(self, runtime: Runtime, tp: int, pp: int = 1) -> tuple[float, int]:
        """The runtime's default memory fraction on this GPU (SGLang's depends on the GPU's memory) and the
        non-torch bytes per GPU at this TP size (and `pp` pipeline stages)."""
        key = (runtime.id, tp, pp)
        if key not in self._util:
            m = runtime.memory
            self._util[key] = (memory.default_utilization(m, self.visible_bytes(), tp),
                               memory.non_torch_bytes(m, tp * pp))
        return self._util[key]

    def activations(self, cand: Candidate) -> str:
        return cand.activations if self.gpu.supports_bf16 or cand.activations != "bf16" else "fp16"

    def speed(self, cand: Candidate, kv: KVFormat, runtime: Runtime, tp: int, concurrency: int,
              explain: bool = False, pp: int = 1) -> Performance:
        """One replica's speed at `concurrency` requests of the endpoint's prompt and output lengths, over `pp`
        pipeline stages of `tp` GPUs (cached unless explained)."""
        key = (cand.id, kv.id, runtime.id, tp, concurrency, pp)
        if not explain:
            perf = self._speeds.get(key)
            if perf is not None:
                return perf
        perf = self.speed_model(cand, runtime, tp, pp).at(kv, concurrency, explain=explain)
        if explain:
            return with_bands(perf, self.k.decision)
        self._speeds[key] = perf
        return perf

    def speed_model(self, cand: Candidate, runtime: Runtime, tp: int, pp: int = 1) -> SpeedModel:
        """The :class:`SpeedModel` of these weights on `runtime` and `tp` x `pp` GPUs for this endpoint's workload
        (cached: the KV formats and concurrencies the search tries share its setup and passes)."""
        key = (cand.id, runtime.id, tp, pp)
        model = self._speed_models.get(key)
        if model is None:
            model = self._speed_models[key] = SpeedModel(
                self.weights(cand).cost, self.gpu, tp, self.activations(cand),
                cand.weight_only and cand.tier < 16, self.shape.prompt_tokens, self.shape.output_tokens,
                self._speed_rows[runtime.id], self.price, cache=self._phases,
                chunk_tokens=self._chunk_tokens(runtime, tp), pipeline=self.pipeline(pp))
        return model

    def pipeline(self, pp: int):
        """The hop costs of `pp` pipeline stages across nodes (None for one stage)."""
        if pp <= 1:
            return None
        found = self._pipelines.get(pp)
        if found is None:
            found = self._pipelines[pp] = pipeline_for(self.k.decision, self.gpu, pp)
        return found

    def _chunk_tokens(self, runtime: Runtime, tp: int) -> int | None:
        key = (runtime.id, tp)
        if key not in self._chunks:
            self._chunks[key] = chunk_tokens_for(runtime.memory, self.gpu, tp)
        return self._chunks[key]

    def quality(self, cand: Candidate, kv: KVFormat, verdict: StaticVerdict | None = None) -> Quality:
        """Expected quality of the candidate's weights with this KV cache, with the risks the rules' `verdict` adds
        (none without one); cached, and shared across requests of the same evidence, model and tasks."""
        key = (self._quality_sig, cand.id, kv.id, verdict.adjustment_key() if verdict is not None else ())
        quality = self._quality.get(key)
        if quality is None:
            adjustments = tuple(verdict.adjustments) if verdict is not None else ()
            quality = self._quality[key] = expected_quality(self.k, self._evidence(cand), kv.id, self.arch.model_type,
                                                            self.params_b, self.tasks, adjustments)
        return quality

    def speed_measured(self, runtime: Runtime, tp: int, concurrency: int, up_to: int | None = None) -> bool:
        """Do published measurements (knowledge/perf_measurements.yaml) back this runtime's speed constants at
        this concurrency per replica (or anywhere from `concurrency` to `up_to`) and GPU count? Outside that
        range the roofline runs on assumed fractions."""
        span = self.measured_range(runtime, tp)
        return span is not None and span[0] <= (concurrency if up_to is None else up_to) and concurrency <= span[1]

    def measured_range(self, runtime: Runtime, tp: int) -> tuple[int, int] | None:
        """(lowest, highest) concurrency per replica at which published measurements back this runtime's speed at
        `tp` GPUs (:meth:`speed_measured` at each), or None where none do."""
        if self._speed_ranges is None:
            self._speed_ranges = derived(self.k, "speed-evidence", lambda: _speed_evidence(self.k))
        bounds = self._speed_ranges.get(runtime.id)
        return (bounds[0], bounds[1]) if bounds and tp <= bounds[2] else None

    def verdict(self, cand: Candidate, kv: KVFormat, runtime: Runtime) -> StaticVerdict:
        """What the rejecting and quality rules say about one candidate, KV format and runtime (cached; each rule
        is evaluated once per distinct value of the facts it reads)."""
        shared_key = (self._gate_sig, cand.id, kv.id, runtime.id)
        verdict = self._verdicts.get(shared_key)
        if verdict is None:
            verdict = self._fired(self.gate_rules, cand.id, kv.id, runtime.id, lambda: self.facts(cand, kv, runtime))
            self._verdicts[shared_key] = verdict
        return verdict

    def _fired(self, rules: list[CompiledRule], cand_id: str, kv_id: str, runtime_id: str,
               facts: Callable[[], dict]) -> StaticVerdict:
        """What those of `rules` that fire on one candidate, KV format and runtime say. Each rule's answer is shared
        across requests by what its reduced condition still reads (CompiledRule.key and scope; a candidate's facts
        depend on the model too), and the verdict by the set of rules that fired. `facts`: the static facts, asked
        for only when a rule's answer is not known yet."""
        fired: list[CompiledRule] = []
        known = None
        cand_slot = (cand_id, self.model_key)
        for cr in rules:
            use_c, use_k, use_r = cr.scope
            slot = (cr.key, cand_slot if use_c else None, kv_id if use_k else None, runtime_id if use_r else None)
            hit = self._fires.get(slot)
            if hit is None:
                if known is None:
                    known = facts()
                hit = self._fires[slot] = cr.check(known)
            if hit:
                fired.append(cr)
        by_rules = derived(self.k, "verdict-by-rules", dict)
        names = tuple(cr.rule.id for cr in fired)
        verdict = by_rules.get(names)
        if verdict is None:
            verdict = by_rules[names] = apply_static(self.k, fired, None)
        return verdict

    def facts(self, cand: Candidate, kv: KVFormat, runtime: Runtime) -> dict:
        """The static facts of one candidate, KV format and runtime (cached)."""
        key = (cand.id, kv.id, runtime.id)
        facts = self._facts.get(key)
        if facts is None:
            facts = self._facts[key] = self.static_facts(cand, kv, runtime)
        return facts

    def words(self, facts: dict) -> StaticVerdict:
        """Every static rule that fires on a deployment: its fired list, notes and runtime flags. Static rules read
        only the static facts, so the answer is one per candidate, KV format and runtime, shared across requests
        whose static rules reduced to the same conditions for the same model (as :meth:`verdict` is)."""
        shared_key = (self._words_sig, facts["cand.id"], facts["kv.id"], facts["runtime.id"])
        verdict = self._words.get(shared_key)
        if verdict is None:
            if len(self._words) > 50_000:
                self._words.clear()
            verdict = self._words[shared_key] = self._fired(self.static_rules, facts["cand.id"], facts["kv.id"],
                                                            facts["runtime.id"], lambda: facts)
        return verdict

    def _served(self, runtime_id: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self._served_table[runtime_id]

    # ------------------------------------------------------------------ facts
    def static_facts(self, cand: Candidate, kv: KVFormat, runtime: Runtime) -> dict:
        """Every fact known before memory, speed and quality: the endpoint's, the candidate's, the KV format's and
        the runtime's (each part computed once)."""
        return {**self.base_facts, **self._cand_facts(cand), **self._kv_facts(kv), **self._runtime_facts(runtime)}

    def _cand_facts(self, cand: Candidate) -> dict:
        part = self._parts.get(("cand", cand.id))
        if part is None:
            native = cand.weights == "native"
            published = self.published(cand)
            weight_format = self.weights(cand).format if native else self.k.schemes[cand.weights].format
            fmt = self.k.formats[weight_format]
            method = self.k.methods[cand.method] if cand.method else None
            part = self._parts[("cand", cand.id)] = {
                "cand.id": cand.id,
                "cand.native": native,
                "cand.scenario": cand.scenario,
                "cand.tier": cand.tier,
                "cand.weight_format": weight_format,
                "cand.weight_bits": fmt.bits,
                "cand.activations": cand.activations,
                "cand.weight_only": cand.weight_only,
                "cand.method": cand.method,
                "cand.published": published is not None,
                "cand.needs_calibration": bool(method and method.calibration.needs_data and not native
                                               and published is None),
                "cand.integer": fmt.family == "integer" and cand.tier < 16,
                "cand.risk": cand.risk,
            }
        return part

    def _kv_facts(self, kv: KVFormat) -> dict:
        part = self._parts.get(("kv", kv.id))
        if part is None:
            bits = self.k.formats[kv.format].bits
            part = self._parts[("kv", kv.id)] = {"kv.id": kv.id, "kv.bits": bits, "kv.quantized": bits < 16,
                                                 "kv.risk": kv.quality_risk}
        return part

    def _runtime_facts(self, runtime: Runtime) -> dict:
        part = self._parts.get(("runtime", runtime.id))
        if part is None:
            served = self._served(runtime.id)
            part = self._parts[("runtime", runtime.id)] = {"runtime.id": runtime.id, "runtime.candidates": served[0],
                                                           "runtime.kv_formats": served[1]}
        return part


def _published_table(k: Knowledge) -> dict[tuple[str, str], list[Checkpoint]]:
    table: dict[tuple[str, str], list[Checkpoint]] = {}
    for row in k.checkpoints.values():
        table.setdefault((row.model, row.candidate), []).append(row)
    return table


def _rule_facts(k: Knowledge, rule: Rule) -> tuple[str, ...]:
    table = derived(k, "rule-facts", dict)
    if rule.id not in table:
        table[rule.id] = tuple(sorted(facts_named(rule.when)))
    return table[rule.id]


def _canonical(k: Knowledge, value: tuple) -> tuple:
    """One shared tuple per value. The facts' sequences are tuples that outlive a request, so the fact dicts the
    search builds (thousands per request, holding only strings, numbers and these) stay out of the cyclic garbage
    collector's walks (CPython tracks a dict only while it holds a tracked object; a collection untracks a tuple
    of such values, and knowledge loaded before a process freezes its heap is never walked again)."""
    table = derived(k, "canonical-tuples", dict)
    if len(table) > 10_000:
        table.clear()
    return table.setdefault(value, value)


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def _speed_evidence(k: Knowledge) -> dict[str, tuple[int, int, int]]:
    """runtime -> (lowest, highest concurrency, most GPUs) among its published measurements."""
    out: dict[str, tuple[int, int, int]] = {}
    for row in k.perf_measurements.values():
        lo, hi, gpus = out.get(row.runtime, (row.concurrency, row.concurrency, row.gpus))
        out[row.runtime] = (min(lo, row.concurrency), max(hi, row.concurrency), max(gpus, row.gpus))
    return out


def _cost_stop_ratio(priority) -> float | None:
    """For a ceiling endpoint, the cost ratio past which fewer requests per replica can no longer win: when the
    objective's first key after accuracy is cost (or the accuracy-for-cost trade), its tolerance, doubled
    for safety. None when speed comes first (then every concurrency is evaluated)."""
    for key in priority.objective:
        if key.metric in ("expected_recovery_pct", "worst_recovery_pct"):
            continue
        if key.metric == "gpu_hours_per_million_tokens":
            return 1 + 2 * (key.within_pct or 0) / 100 + 1e-9
        if key.metric == "balanced_utility" and priority.points_per_cost_halving:
            return 2 ** (2 * (key.within or 0) / priority.points_per_cost_halving) + 1e-9
        return None
    return None

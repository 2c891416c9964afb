"""Which checkpoint a deployment serves: the model as published, a published quantized checkpoint of it
(knowledge/checkpoints.yaml), the runtime quantizing at load time, or the output of a quantization recipe."""

from __future__ import annotations

from advisor.decide.context import EndpointContext
from advisor.decide.result import CheckpointUse
from advisor.knowledge import derived
from advisor.knowledge.schema import Candidate, Runtime


def _short(model_id: str) -> str:
    return model_id.rstrip("/").rsplit("/", 1)[-1].removesuffix(".json") or "model"


def gguf_outtype(cand: Candidate) -> str:
    """llama.cpp convert_hf_to_gguf.py's --outtype for an unquantized candidate: bf16, f16 or f32."""
    return {"fp16": "f16", "fp32": "f32"}.get(cand.id, "bf16")


def checkpoint_use(ctx: EndpointContext, cand: Candidate, runtime: Runtime) -> CheckpointUse:
    """What the serve command loads for `cand` on `runtime`, and why (see :class:`CheckpointUse`). A pure function
    of the model's names, the candidate and the runtime: one shared answer per combination (results never change it)."""
    model = ctx.model
    key = (model.id, model.repo, model.name, model.from_file, model.base_model, model.native.quantized, cand.id,
           runtime.id)
    cache = derived(ctx.k, "checkpoint-use", dict)
    use = cache.get(key)
    if use is None:
        if len(cache) > 20_000:
            cache.clear()
        use = cache[key] = _checkpoint_use(ctx, cand, runtime)
    return use


def _checkpoint_use(ctx: EndpointContext, cand: Candidate, runtime: Runtime) -> CheckpointUse:
    model = ctx.model
    # what is served: the Hub repo or local folder; an uploaded config.json: the folder it came from (named)
    own = model.repo or (f"./{_short(model.name)}" if model.from_file and not model.id.endswith(".gguf") else model.id)
    base = model.base_model if model.native.quantized and model.base_model else own
    support = cand.runtimes.get(runtime.id)
    if cand.weights == "native":
        return CheckpointUse(kind="as-published", load=own, note="the checkpoint as published; no quantization step")
    if cand.tier >= 16 and support and support.how == "gguf":  # llama.cpp loads GGUF files only
        outtype = gguf_outtype(cand)
        return CheckpointUse(kind="recipe", load=f"./{_short(base)}-{outtype}.gguf",
                             note=f"llama.cpp loads GGUF files only: convert {base} to a {outtype.upper()} GGUF "
                             "(no quantization)")
    if cand.tier >= 16:
        if base != own:
            return CheckpointUse(kind="base-model", load=base, note=f"the 16-bit model {own} was quantized from")
        return CheckpointUse(kind="unquantized", load=own, note="the 16-bit checkpoint as published")
    published = ctx.published(cand, runtime)
    if published is not None:
        load = published.repo
        if support and support.how == "gguf" and ":" not in load and support.quantization_flag:
            load = f"{load}:{support.quantization_flag}"
        ev = published.evaluation
        return CheckpointUse(kind="published", load=load, repo=published.repo.split(":")[0],
                             producer=published.producer, tool=published.tool, row=published.id,
                             flag=published.flags.get(runtime.id),
                             recovery_pct=ev.recovery_pct if ev else None, evaluation=ev.benchmarks if ev else "",
                             file_size_gb=published.file_size_gb, source=published.sources,
                             note=f"published by {published.producer} ({published.tool}); no quantization step")
    published = ctx.published(cand)
    elsewhere = (f"; the published {published.repo} ({published.format}) is not a format {runtime.name} loads"
                 if published is not None else "")
    if support and support.how == "online":
        return CheckpointUse(kind="online", load=base,
                             note=f"{runtime.name} quantizes {base} at load time (no calibration data){elsewhere}")
    if support and support.how == "gguf":
        return CheckpointUse(kind="recipe", load=f"./{_short(base)}-{support.quantization_flag}.gguf",
                             note=f"no published GGUF of this type in knowledge/checkpoints.yaml; convert {base} with "
                             "llama.cpp")
    why = elsewhere.removeprefix("; ") if published is not None else "no published checkpoint in knowledge/checkpoints.yaml"
    return CheckpointUse(kind="recipe", load=f"./{_short(base)}-{cand.id}", note=f"{why}; quantize {base} with the recipe")

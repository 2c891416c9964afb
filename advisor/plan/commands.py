"""Runtime commands for a picked configuration: the serve command with the runtime's real flags for its
pinned version, and the quantization recipe that produces the checkpoint (both from knowledge/)."""

from __future__ import annotations

from pydantic import BaseModel

from advisor.decide.checkpoint import gguf_outtype
from advisor.decide.result import CheckpointUse
from advisor.intake.request import Shape
from advisor.knowledge.schema import GPU, Candidate, Knowledge, KVFormat, Recipe, Runtime
from advisor.physics.architecture import Architecture

CALIBRATION_SAMPLES = 256  # inside seed 003's 128-512 range; llm-compressor's docs start at 128-256
CALIBRATION_SEQ_LEN = 2048  # vLLM's INT4/INT8 examples


class Quantization(BaseModel):
    needed: bool
    note: str
    tool: str | None = None
    tool_version: str | None = None
    language: str | None = None
    recipe: str | None = None
    source: list[str] = []


HEAD_NODE = "HEAD_NODE_IP"  # what the per-node commands call the first node's address


class NodeCommands(BaseModel):
    """What to run on one node of a multi-node deployment, in order."""

    node: int  # node rank, 0 = the head node
    role: str  # head | worker | server (an independent server behind a load balancer)
    commands: list[str]


class RuntimeCommands(BaseModel):
    name: str
    version: str
    serve_command: str  # multi-node: the head node's serve command (node_commands has every node's)
    config_file: str | None = None
    config: str | None = None
    extra_flags: list[str] = []  # added by rules (e.g. --flash-attn on)
    nodes: int = 1
    node_commands: list[NodeCommands] = []  # multi-node only: every node's commands
    notes: list[str] = []
    quantization: Quantization
    source: list[str] = []


def _fill(template: str, values: dict[str, object]) -> str:
    """Replace only known {placeholders}, so braces in code or YAML stay as they are."""
    out = template
    for key, value in values.items():
        out = out.replace("{" + key + "}", str(value))
    return out


def _short(model_id: str) -> str:
    return model_id.rstrip("/").rsplit("/", 1)[-1].removesuffix(".json") or "model"


def checkpoint_for(model_id: str, cand: Candidate, runtime: Runtime) -> str:
    """What the serve command loads: the model itself, or the quantized output of the recipe."""
    support = cand.runtimes.get(runtime.id)
    if cand.weights == "native" or (support and support.how == "online"):
        return model_id
    if support and support.how == "gguf":  # llama.cpp loads GGUF files only: 16-bit weights are converted too
        return f"./{_short(model_id)}-{support.quantization_flag or gguf_outtype(cand)}.gguf"
    if cand.tier >= 16:
        return model_id
    return f"./{_short(model_id)}-{cand.id}"



# The MoE router of each family as llm-compressor's regex ignore entries name it: the router is a small Linear the
# top-k choice hangs on, so it stays 16-bit (llm-compressor examples/quantizing_moe: mixtral_example.py
# "re:.*block_sparse_moe.gate", qwen_example.py "re:.*mlp.gate$" and "re:.*mlp.shared_expert_gate$",
# deepseek_r1_example.py "re:.*mlp.gate$"). gpt-oss's router is GptOssTopKRouter (mlp.router, a bare Parameter,
# not a Linear), named anyway so the list says what stays 16-bit.
ROUTER_IGNORE: dict[str, tuple[str, ...]] = {
    "mixtral": ("re:.*block_sparse_moe.gate$",),
    "qwen3_moe": ("re:.*mlp.gate$",),
    "qwen3_next": ("re:.*mlp.gate$", "re:.*mlp.shared_expert_gate$"),
    "deepseek_v2": ("re:.*mlp.gate$",),
    "deepseek_v3": ("re:.*mlp.gate$",),
    "gpt_oss": ("re:.*mlp.router$",),
    "jamba": ("re:.*feed_forward.router$",),
}
# A multimodal checkpoint's vision tower and projector stay 16-bit (transformers Gemma3Model: vision_tower,
# multi_modal_projector; llm-compressor's multimodal examples ignore both).
VISION_IGNORE = ("re:.*vision_tower.*", "re:.*multi_modal_projector.*")


def ignore_list(arch: Architecture | None) -> list[str]:
    """llm-compressor `ignore` entries for a model: lm_head always, the MoE router of its family, and the vision
    tower and projector of a multimodal checkpoint. Without an architecture, just lm_head."""
    out = ["lm_head"]
    if arch is None:
        return out
    if arch.is_moe:
        out += ROUTER_IGNORE.get(arch.family, ("re:.*gate$",))
    if arch.vision is not None:
        out += VISION_IGNORE
    return out


def _recipe(k: Knowledge, cand: Candidate, runtime: Runtime) -> Recipe | None:
    for recipe in k.recipes.values():
        if cand.method in recipe.methods and runtime.id in recipe.runtimes:
            return recipe
    return None


def quantization_for(
    k: Knowledge, model_id: str, cand: Candidate, kv: KVFormat, runtime: Runtime, shape: Shape,
    arch: Architecture | None = None,
) -> Quantization:
    """How the candidate's checkpoint is made: the recipe with its placeholders filled, `{ignore}` from
    :func:`ignore_list` (the model's router and vision tower stay 16-bit)."""
    support = cand.runtimes.get(runtime.id)
    if cand.tier >= 16 and support and support.how == "gguf" and cand.weights != "native":
        outtype = gguf_outtype(cand)
        return Quantization(
            needed=False, tool="llama.cpp convert_hf_to_gguf.py", tool_version="master 2026", language="bash",
            note=f"Unquantized, but llama.cpp loads GGUF files only: convert the published checkpoint to a "
            f"{outtype.upper()} GGUF (no quantization), then serve that file.",
            recipe=f"python convert_hf_to_gguf.py <path to {model_id}> --outtype {outtype} "
            f"--outfile {checkpoint_for(model_id, cand, runtime)}",
            source=["ggml-org/llama.cpp convert_hf_to_gguf.py (--outtype f32, f16, bf16, q8_0)"])
    if cand.tier >= 16:
        return Quantization(needed=False, note="Unquantized: serve the published checkpoint.")
    if cand.weights == "native":
        return Quantization(
            needed=False, note="Serve the published checkpoint as it is; it already ships in this layout."
        )
    recipe = _recipe(k, cand, runtime)
    online = bool(support and support.how == "online")
    if recipe is None:
        return Quantization(
            needed=not online,
            note=f"No recipe in the knowledge base for {cand.method} on {runtime.name}; "
            "use a published checkpoint of this configuration.",
        )
    values = {
        "model": model_id,
        "output": checkpoint_for(model_id, cand, runtime) if not online else f"./{_short(model_id)}-{cand.id}",
        "samples": CALIBRATION_SAMPLES,
        "seq_len": min(CALIBRATION_SEQ_LEN, max(512, shape.prompt_tokens)),
        "scheme": recipe.schemes.get(cand.id, ""),
        "qformat": recipe.schemes.get(cand.id, ""),
        "kv_qformat": {"fp8": "fp8", "nvfp4": "nvfp4"}.get(kv.id, "none"),
        "gguf_type": support.quantization_flag if support else "",
        "bits": f"{k.schemes[cand.weights].element_bits:.1f}" if cand.weights in k.schemes else "",
        "ignore": "[" + ", ".join(f'"{x}"' for x in ignore_list(arch)) + "]",
    }
    note = (
        f"{runtime.name} quantizes at load time (--quantization {support.quantization_flag}); the recipe below "
        "saves a reusable checkpoint instead."
        if online and support
        else f"Produce the checkpoint with {recipe.tool}, then serve it."
    )
    return Quantization(
        needed=not online,
        note=note,
        tool=recipe.tool,
        tool_version=recipe.tool_version,
        language=recipe.language,
        recipe=_fill(recipe.template, values).rstrip() + "\n",
        source=recipe.sources,
    )


def runtime_commands(
    k: Knowledge,
    model_id: str,
    cand: Candidate,
    kv: KVFormat,
    runtime: Runtime,
    gpu: GPU,
    gpus: int,
    shape: Shape,
    extra_flags: list[str],
    replicas: int = 1,
    concurrency: int | None = None,
    checkpoint: CheckpointUse | None = None,
    utilization: float | None = None,
    arch: Architecture | None = None,
    pipeline_parallel: int = 1,
    nodes: int = 1,
    revision: str | None = None,
    revision_of: str | None = None,
) -> RuntimeCommands:
    """The serve command for one deployment: `gpus` tensor-parallel GPUs per replica, `replicas` data-parallel
    copies, `concurrency` requests per replica (default: the endpoint's), `checkpoint` what the deployment loads
    (advisor.decide.checkpoint; without it, the model itself or the recipe's output), `utilization` the memory
    fraction the deployment's memory budget assumed (default: the runtime's), `arch` the model's architecture (for
    the recipe's ignore list). Over `nodes` nodes: with `pipeline_parallel` stages (one per node), the runtime's
    multi-node commands for every node (knowledge/runtimes.yaml multinode); without, one server per node holding its
    share of the replicas, behind a load balancer. `revision`: the Hub revision of the repo `revision_of` (default
    `model_id`), passed to the runtimes that take one (their `revision` flag) when the command loads that repo, not
    another repo (a published checkpoint, the base model) or a converted file."""
    if nodes > 1 and pipeline_parallel <= 1 and replicas % nodes == 0:
        one = runtime_commands(k, model_id, cand, kv, runtime, gpu, gpus, shape, extra_flags, replicas // nodes,
                               concurrency, checkpoint, utilization, arch, revision=revision, revision_of=revision_of)
        return one.model_copy(update={
            "nodes": nodes,
            "node_commands": [NodeCommands(node=i, role="server", commands=[one.serve_command]) for i in range(nodes)],
            "notes": [*one.notes, f"{nodes} independent servers, one per node, each with {replicas // nodes} "
                      f"replica(s) of {gpus} GPU(s): run the same command on every node and put a load balancer in "
                      "front of them"]})
    serve = runtime.serve
    concurrency = concurrency or shape.concurrency
    use = checkpoint
    if use is not None and use.kind in ("as-published", "unquantized", "base-model", "published"):
        quant = Quantization(needed=False, note=f"Serve {use.load}: {use.note}.", source=use.source)
    else:
        quant = quantization_for(k, model_id, cand, kv, runtime, shape, arch)
    if serve is None:
        return RuntimeCommands(
            name=runtime.name,
            version=runtime.version,
            serve_command="",
            quantization=quant,
            notes=["no serve template for this runtime"],
        )
    support = cand.runtimes.get(runtime.id)
    kv_quantized = k.formats[kv.format].bits < 16
    sixteen_bit_half = not gpu.supports_bf16
    values: dict[str, object] = {
        "checkpoint": use.load if use is not None else checkpoint_for(model_id, cand, runtime),
        "gpus": gpus,
        "context": shape.context,
        "total_context": shape.context * concurrency,
        "concurrency": concurrency,
        "replicas": replicas,
        "utilization": f"{utilization if utilization is not None else runtime.memory.utilization_default:g}",
        "kv_flag": kv.runtime_flags.get(runtime.id, ""),
        "prompt_tokens": shape.prompt_tokens,
        "tensor_parallel": "true" if gpus > 1 else "false",
    }
    quant_flag = support.quantization_flag if support and support.how in ("online", "checkpoint") else None
    if use is not None and use.kind == "published":
        quant_flag = use.flag  # the runtime detects the checkpoint's layout, except ModelOpt's in vLLM and SGLang
    wanted = {
        "tensor_parallel": gpus > 1,
        "data_parallel": replicas > 1,
        "max_context": True,
        "max_prompt": True,
        "max_sequences": True,
        "memory_fraction": True,
        "kv_cache": kv_quantized or runtime.id == "exllamav2",
        "quantization": bool(quant_flag),
        "half": sixteen_bit_half and not quant_flag,
        "revision": bool(revision) and values["checkpoint"] == (revision_of or model_id),  # that repo's history
    }
    values["revision"] = revision or ""
    values["quant_flag"] = quant_flag or ""
    pipelined = pipeline_parallel > 1 and runtime.multinode is not None and runtime.multinode.supported
    if pipelined:
        wanted["data_parallel"] = False  # each replica is its own set of processes over every node (notes below)
        values.update({"pipeline_parallel": pipeline_parallel, "nodes": nodes, "head": HEAD_NODE})
    command = serve.hub_command if use is not None and use.kind == "published" and serve.hub_command else serve.command
    parts = [_fill(command, values)]
    for purpose, template in serve.flags.items():
        if wanted.get(purpose, False):
            parts.append(_fill(template, values))
    if pipelined:
        parts += [_fill(template, values) for template in runtime.multinode.flags.values()]  # type: ignore[union-attr]
    parts += [f for f in extra_flags if f not in parts]
    config = (
        _fill(serve.config_template, values)
        if serve.config_template and (kv_quantized or runtime.id == "exllamav2")
        else None
    )
    notes = [serve.notes] if serve.notes else []
    if replicas > 1 and pipelined:
        notes.append(f"{replicas} replicas: run {replicas} copies of these commands, each on its own {gpus} GPU(s) of "
                     "every node (CUDA_VISIBLE_DEVICES) with its own ports, behind a load balancer")
    elif replicas > 1 and "data_parallel" not in serve.flags:
        notes.append(f"{runtime.name} has no data-parallel flag: run {replicas} copies of this command, each on its "
                     f"own {gpus} GPU(s) (CUDA_VISIBLE_DEVICES), behind a load balancer")
    serve_command = " ".join(parts)
    node_commands: list[NodeCommands] = []
    source = _src(serve.source)
    if pipelined:
        mn = runtime.multinode
        node_commands, serve_command = _pipeline_nodes(mn, serve_command, values, nodes)  # type: ignore[arg-type]
        notes.append(f"{nodes} nodes of {gpus} GPU(s): tensor parallel {gpus} inside each node, pipeline parallel "
                     f"{pipeline_parallel} across them (one stage per node); {HEAD_NODE} is the first node's address "
                     "on the fast (InfiniBand / RoCE) network. " + mn.notes)  # type: ignore[union-attr]
        source += mn.sources  # type: ignore[union-attr]
    return RuntimeCommands(
        name=runtime.name,
        version=runtime.version,
        serve_command=serve_command,
        config_file=serve.config_file if config else None,
        config=config,
        extra_flags=list(extra_flags),
        nodes=nodes if pipelined else 1,
        node_commands=node_commands,
        notes=notes,
        quantization=quant,
        source=source,
    )


def _pipeline_nodes(mn, serve_command: str, values: dict[str, object], nodes: int) -> tuple[list[NodeCommands], str]:
    """Every node's commands for a pipeline-parallel deployment, and the head node's serve command: the runtime's
    head commands then the serve command on node 0 (Ray: started once, there), its worker commands on the others,
    and with serve_on_every_node the serve command on every node with its own rank."""
    out = []
    head_serve = _fill(serve_command, {**values, "node_rank": 0})
    for rank in range(nodes):
        filled = {**values, "node_rank": rank}
        if rank == 0:
            cmds = [_fill(c, filled) for c in mn.head] + [head_serve]
        else:
            cmds = [_fill(c, filled) for c in mn.workers]
            if mn.serve_on_every_node:
                cmds.append(_fill(serve_command, filled))
        out.append(NodeCommands(node=rank, role="head" if rank == 0 else "worker", commands=cmds))
    return out, head_serve


def _src(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)

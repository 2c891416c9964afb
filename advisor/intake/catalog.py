"""Resolve what a user typed (model id or config.json, scheme, KV format, GPU, runtime) to knowledge rows."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from advisor.errors import AdvisorInputError
from advisor.knowledge import derived
from advisor.knowledge.schema import Knowledge, NativeLayout, PublishedCounts
from advisor.physics.architecture import Architecture, architecture_from_config, read_config_file

T = TypeVar("T")


class ResolvedModel(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    name: str
    architecture: Architecture
    native: NativeLayout
    published: PublishedCounts | None = None
    source: list[str]
    from_file: bool = False


def lookup(table: Mapping[str, T], value: str, field: str, what: str) -> T:
    """A row by id, case-insensitively; otherwise an error naming the closest ids."""
    if value in table:
        return table[value]
    lowered = {k.lower(): k for k in table}
    if value.lower() in lowered:
        return table[lowered[value.lower()]]
    raise AdvisorInputError(field, f"unknown {what} {value!r}", value=value, choices=list(table))


def _catalog_match(knowledge: Knowledge, text: str) -> str | None:
    needle = text.strip().lower()
    for model in knowledge.models.values():
        names = [model.id, *model.aliases]
        if any(needle == n.lower() for n in names):
            return model.id
    tails = [
        m.id
        for m in knowledge.models.values()
        if any(needle == n.lower().rsplit("/", 1)[-1] for n in (m.id, *m.aliases))
    ]
    return tails[0] if len(tails) == 1 else None


def native_from_config(config: Mapping[str, Any]) -> NativeLayout:
    """The checkpoint's own layout, read from its dtype and quantization_config."""
    qc = config.get("quantization_config")
    if isinstance(qc, Mapping):
        method = str(qc.get("quant_method", "")).lower()
        if method == "fp8":
            scheme = "fp8-block" if qc.get("weight_block_size") else "fp8"
            return NativeLayout(scheme=scheme, notes=f"quantization_config: fp8 ({scheme})")
        if method == "mxfp4":
            return NativeLayout(
                scheme="bf16",
                overrides={"experts": "mxfp4"},
                notes="quantization_config: mxfp4 experts, BF16 elsewhere",
            )
        if method == "awq":
            return NativeLayout(scheme="int4-awq", notes="quantization_config: awq")
        if method == "gptq":
            return NativeLayout(scheme="int4-gptq", notes="quantization_config: gptq")
        if method == "compressed-tensors":
            weights = ((qc.get("config_groups") or {}).get("group_0") or {}).get("weights") or {}
            bits, kind = weights.get("num_bits"), weights.get("type")
            guess = {(4, "int"): "int4-gptq", (8, "int"): "int8", (8, "float"): "fp8", (4, "float"): "nvfp4"}
            if (bits, kind) in guess:
                return NativeLayout(
                    scheme=guess[(bits, kind)], notes=f"quantization_config: compressed-tensors {bits}-bit {kind}"
                )
        return NativeLayout(scheme="bf16", notes=f"quantization_config {method or '?'} not recognised; BF16 assumed")
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16").lower()
    scheme = {"float16": "fp16", "float32": "fp32", "bfloat16": "bf16"}.get(dtype, "bf16")
    return NativeLayout(scheme=scheme, notes=f"config dtype {dtype}")


def resolve_model(knowledge: Knowledge, text: str, field: str = "--model") -> ResolvedModel:
    """A catalog id (case-insensitive, or just the part after the '/') or a path to a config.json."""
    text = (text or "").strip()
    if not text:
        raise AdvisorInputError(field, "a model is required", choices=list(knowledge.models))
    model_id = _catalog_match(knowledge, text)
    if model_id is not None:
        resolved = derived(knowledge, "catalog-models", dict)  # frozen: parse each catalog config once
        if model_id not in resolved:
            entry = knowledge.models[model_id]
            resolved[model_id] = ResolvedModel(
                id=entry.id,
                name=entry.name,
                architecture=architecture_from_config(entry.config, where=f"models.yaml {entry.id}"),
                native=entry.native,
                published=entry.published,
                source=entry.sources,
            )
        return resolved[model_id]
    path = Path(text)
    if text.endswith(".json") or path.is_file():
        config = read_config_file(path)
        return model_from_config(config, name=path.name, where=path.name)
    raise AdvisorInputError(
        field, f"{text!r} is not a catalog model nor a config.json path", value=text, choices=list(knowledge.models)
    )


def model_from_config(config: Mapping[str, Any], *, name: str, where: str = "config.json") -> ResolvedModel:
    arch = architecture_from_config(config, where=where)
    label = str(config.get("_name_or_path") or name)
    return ResolvedModel(
        id=label,
        name=label,
        architecture=arch,
        native=native_from_config(config),
        source=[f"uploaded {name}"],
        from_file=True,
    )

"""Resolve what a user typed (model id or config.json, scheme, KV format, GPU, runtime) to knowledge rows."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from advisor.errors import AdvisorInputError, shown
from advisor.intake.quantization import native_layout
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
    repo: str | None = None  # what the serve command loads: a Hugging Face repo id or a local checkpoint folder
    base_model: str | None = None  # a quantized checkpoint's 16-bit original (model card base_model)


def lookup(table: Mapping[str, T], value: str, field: str, what: str) -> T:
    """A row by id, case-insensitively; otherwise an error naming the closest ids."""
    if value in table:
        return table[value]
    lowered = {k.lower(): k for k in table}
    if value.lower() in lowered:
        return table[lowered[value.lower()]]
    raise AdvisorInputError(field, f"unknown {what} {shown(value)}", value=value, choices=list(table))


def catalog_id(knowledge: Knowledge, text: str) -> str | None:
    """The catalog id ``text`` names (the id or an alias, any case, or just the part after the '/'), or None."""
    return _catalog_match(knowledge, text)


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


def resolve_model(knowledge: Knowledge, text: str, field: str = "--model", revision: str | None = None
                  ) -> ResolvedModel:
    """A catalog id (case-insensitive, or just the part after the '/'), a path to a config.json, or any Hugging
    Face repo id (advisor.intake.hub: config, quantization metadata, card and safetensors headers). `revision`: the
    Hub revision to read a repo at (a catalog model's architecture is the one on file; the revision only pins what
    is served); a local file or folder has none (AdvisorInputError on `model_revision`)."""
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
    if len(text) > MAX_MODEL_TEXT:
        raise AdvisorInputError(field, f"is {len(text):,} characters; a model id or path has at most {MAX_MODEL_TEXT:,}")
    from advisor.intake import hub  # imported here: the Hub client loads only when a model needs it

    if not LOCAL_FILES.get():  # a web request: the server's own files are never read (nor probed)
        if hub.REPO_ID.match(text) and not text.lower().endswith((".json", ".gguf")):
            return hub.resolve_hub_model(text, revision=revision, field=field)
        raise AdvisorInputError(field, f"{shown(text)} is not a catalog model nor a Hugging Face repo id "
                                "(owner/name); files on the server are not read here: upload the config.json",
                                value=text, choices=list(knowledge.models))
    try:
        local = _local_model(knowledge, text, field)
    except OSError as exc:  # a name too long for the file system, a loop of links, no permission
        raise AdvisorInputError(field, f"cannot read {shown(text)}: {exc.strerror or exc}") from None
    if local is not None:
        if revision is not None:
            raise AdvisorInputError("model_revision", f"{shown(revision)} is a Hub revision; {shown(text)} is a local "
                                    "file or folder, which has none: leave the revision out")
        return local
    if hub.looks_like_repo_id(text):
        return hub.resolve_hub_model(text, revision=revision, field=field)
    raise AdvisorInputError(
        field, f"{shown(text)} is not a catalog model, a Hugging Face repo id (owner/name), a checkpoint folder, a "
        "config.json path nor a .gguf file",
        value=text, choices=list(knowledge.models)
    )


MAX_MODEL_TEXT = 1024  # characters of a --model value (repo ids are under 100; paths under PATH_MAX)
# May a model name a file or folder on this machine? Yes for the CLI and the Python API; the pages set it to False
# for their script run (ui.frame.page_frame), so a link or an import can never make the server read its own files.
# A ContextVar: each Streamlit session's script thread has its own value, other threads keep the default.
LOCAL_FILES: ContextVar[bool] = ContextVar("advisor_local_files", default=True)


def _local_model(knowledge: Knowledge, text: str, field: str) -> ResolvedModel | None:
    """A model from a file or folder on this machine, or None when `text` names none."""
    path = Path(text)
    if text.lower().endswith(".gguf"):
        return model_from_gguf(knowledge, path, field=field)
    if path.is_dir():
        from advisor.intake.local import model_from_directory

        return model_from_directory(path, field=field)
    if text.endswith(".json") or path.is_file():
        config = read_config_file(path)
        if path.name == "config.json":  # a checkpoint's own config: the folder names the model and is what is served
            from advisor.intake.local import model_from_directory

            return model_from_directory(path.parent, field=field)
        return model_from_config(config, name=path.stem, where=path.name)
    return None


def model_from_gguf(knowledge: Knowledge, path: Path, field: str = "--model") -> ResolvedModel:
    """A local .gguf file: its architecture from the header metadata, served as published with llama.cpp, sized
    from its tensors' exact bytes (advisor.physics.gguf.read_gguf; the weights are never read)."""
    from advisor.physics import gguf

    info = gguf.read_gguf(path)
    arch = architecture_from_config(info.config, where=path.name)
    file_type = (info.file_type or "").upper()
    scheme = f"gguf-{file_type.lower()}"
    if scheme not in knowledge.schemes:
        scheme = "gguf-q4_k_m"
    details = [f"file type {file_type or 'not stated'}", f"{len(info.tensors)} tensors",
               f"{info.file_size / 1e9:,.2f} GB on disk", *info.notes]
    native = NativeLayout(scheme=scheme, candidates=("native-gguf",), method="gguf", details=tuple(details),
                          checkpoint_bytes=info.tensor_bytes, bytes_source=f"tensor headers of {path.name}",
                          notes=f"GGUF {file_type}: " + "; ".join(details))
    name = str(info.name or path.stem)[:200]
    return ResolvedModel(id=str(path), name=name, architecture=arch, native=native,
                         source=[f"GGUF file {path.name} (header metadata)"], from_file=True)


def config_name(config: Mapping[str, Any]) -> str | None:
    """transformers' _name_or_path when it names a model (a repo id or a folder), not a temporary path."""
    value = config.get("_name_or_path")
    if not isinstance(value, str) or not value.strip() or value.startswith(("/tmp", "/var/", "C:\\")):
        return None
    return value.strip().rstrip("/")


def model_from_config(config: Mapping[str, Any], *, name: str, where: str = "config.json",
                      files: Mapping[str, Mapping[str, Any]] | None = None, repo: str | None = None,
                      base_model: str | None = None, source: list[str] | None = None,
                      checkpoint_bytes: int | None = None, bytes_source: str = "") -> ResolvedModel:
    """A model from its config.json (and quantization side files): architecture and native layout.

    `checkpoint_bytes` (exact tensor bytes from the safetensors headers) replaces the computed checkpoint size.
    Raises AdvisorInputError naming the field for an unsupported architecture or quantization."""
    arch = architecture_from_config(config, where=where)
    label = str(repo or config_name(config) or name)[:200]
    native = native_layout(config, files)
    if checkpoint_bytes:
        native = native.model_copy(update={"checkpoint_bytes": checkpoint_bytes, "bytes_source": bytes_source})
    return ResolvedModel(
        id=label,
        name=label,
        architecture=arch,
        native=native,
        source=source or [f"uploaded {name}"],
        from_file=repo is None,
        repo=repo,
        base_model=base_model,
    )

"""A checkpoint folder on this machine: config.json, its quantization side files, the model card's front matter
and every safetensors file's header (read from disk, bounded: the header only, never the tensor data)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from advisor.errors import AdvisorInputError
from advisor.intake.catalog import ResolvedModel, config_name, model_from_config
from advisor.physics.architecture import MAX_CONFIG_BYTES, parse_config_text

SIDE_FILES = ("hf_quant_config.json", "quantize_config.json")
MAX_HEADER_BYTES = 100_000_000  # safetensors refuses headers above 100 MB too
MAX_FILES = 512
MAX_CARD_BYTES = 64_000


def safetensors_bytes(path: Path) -> int:
    """Tensor bytes one safetensors file holds, from its header (the sum of every tensor's data span)."""
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise AdvisorInputError(path.name, "not a safetensors file: shorter than its 8-byte header length")
        (size,) = struct.unpack("<Q", head)
        if size > MAX_HEADER_BYTES:
            raise AdvisorInputError(path.name, f"safetensors header of {size} bytes is over {MAX_HEADER_BYTES}")
        raw = fh.read(size)
    try:
        header = json.loads(raw)
    except ValueError:
        raise AdvisorInputError(path.name, "safetensors header is not valid JSON") from None
    total = 0
    for name, info in header.items() if isinstance(header, dict) else ():
        if name == "__metadata__" or not isinstance(info, dict):
            continue
        start, end = (info.get("data_offsets") or [0, 0])[:2]
        if isinstance(start, int) and isinstance(end, int) and end >= start:
            total += end - start
    return total


def model_from_directory(folder: Path, field: str = "--model") -> ResolvedModel:
    """A model from a local checkpoint folder, served from that folder. Raises AdvisorInputError naming the file."""
    from advisor.intake.hub import card_base_model

    config_path = folder / "config.json"
    if not config_path.is_file():
        raise AdvisorInputError(field, f"{folder} has no config.json (for a GGUF file, pass the .gguf path)")
    with config_path.open("rb") as fh:
        config = parse_config_text(fh.read(MAX_CONFIG_BYTES + 1), where=str(config_path))
    files = {}
    for name in SIDE_FILES:
        side = folder / name
        if side.is_file():
            with side.open("rb") as fh:
                files[name] = parse_config_text(fh.read(MAX_CONFIG_BYTES + 1), where=str(side))
    base_model = None
    readme = folder / "README.md"
    if readme.is_file():
        with readme.open("rb") as fh:
            base_model = card_base_model(fh.read(MAX_CARD_BYTES))
    shards = sorted(folder.glob("*.safetensors"))[: MAX_FILES + 1]
    exact, source = None, "no safetensors files in the folder: tensor sizes computed"
    if len(shards) > MAX_FILES:
        source = f"more than {MAX_FILES} safetensors files: tensor sizes computed"
    elif shards:
        exact = sum(safetensors_bytes(p) for p in shards) or None
        source = f"safetensors headers in {folder.name} ({len(shards)} file{'s' if len(shards) != 1 else ''})"
    read = ["config.json", *files, "README.md front matter" if base_model else None]
    model = model_from_config(config, name=folder.name, where=str(config_path), files=files, repo=str(folder),
                              base_model=base_model, source=[f"local folder {folder} ({', '.join(r for r in read if r)})"],
                              checkpoint_bytes=exact, bytes_source=source)
    label = config_name(config) or folder.name or str(folder)
    update = {"id": label, "name": label, "from_file": True}
    if exact is None:
        update["native"] = model.native.model_copy(update={"bytes_source": source})
    return model.model_copy(update=update)

"""Any Hugging Face model id: read its config.json, quantization metadata, model card and safetensors headers.

Uses ``huggingface_hub`` (its cache; ``HF_TOKEN`` for gated repos; ``HF_HUB_OFFLINE=1`` reads only the cache;
``HF_ENDPOINT`` points at another hub). Nothing but metadata is fetched: config files of a few KB, the first
64 KB of the README for its front matter, and each safetensors file's header bytes (ranged requests), never
the weights. The environment is read at each call, so a test or a server can change it without re-importing.

Errors are :class:`~advisor.errors.AdvisorInputError` naming the repo and the reason: not found, gated without a
token, offline and not cached, not a decoder LLM the engine supports, or the hub unreachable.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from advisor import safeyaml
from advisor.errors import AdvisorInputError
from advisor.intake.catalog import ResolvedModel, model_from_config
from advisor.physics.architecture import MAX_CONFIG_BYTES, parse_config_text

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
SIDE_FILES = ("hf_quant_config.json", "quantize_config.json")
MAX_CARD_BYTES = 64_000  # the front matter sits at the top of README.md
MAX_SHARDS = 512  # bounded work per request: the largest public checkpoints have a few hundred shards
TIMEOUT_S = 10.0
_CACHE: OrderedDict[tuple, ResolvedModel] = OrderedDict()
_LOCK = threading.Lock()


def _quiet() -> None:
    """huggingface_hub logs every retry as a warning; the engine reports one line of its own instead."""
    from huggingface_hub.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def looks_like_repo_id(text: str) -> bool:
    """``owner/name`` as the Hub spells repo ids (not a path that exists, not a .json file)."""
    from advisor.intake.catalog import LOCAL_FILES  # here: catalog imports this module

    text = (text or "").strip()
    if not REPO_ID.match(text) or text.endswith((".json", ".gguf")):
        return False
    return not (LOCAL_FILES.get() and Path(text).exists())  # a web request never probes the server's files


def _settings() -> dict[str, Any]:
    home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return {
        "endpoint": (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/"),
        "cache_dir": os.environ.get("HF_HUB_CACHE") or str(Path(home) / "hub"),
        "token": os.environ.get("HF_TOKEN") or None,
        "offline": offline,
    }


def _reachable(endpoint: str, timeout: float = 3.0) -> bool:
    """Can a TCP connection to the hub's host be opened? (One quick try, instead of the client's five retries
    with back-off when there is no network.)"""
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _error(repo: str, field: str, exc: Exception, offline: bool, what: str) -> AdvisorInputError:
    """One line naming the repo and why it cannot be read."""
    from huggingface_hub import errors

    if isinstance(exc, errors.GatedRepoError):
        return AdvisorInputError(field, f"{repo} is gated: accept its license on the Hub, then set HF_TOKEN to a token "
                                 "of that account")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return AdvisorInputError(field, f"{repo} was not found on the Hub (a private repo needs HF_TOKEN); catalog "
                                 "models work offline")
    if offline and isinstance(exc, errors.LocalEntryNotFoundError | FileNotFoundError):
        return AdvisorInputError(field, f"{repo}: offline (HF_HUB_OFFLINE) and its {what} is not in the Hugging Face "
                                 "cache; fetch it once online, or use a catalog model or a config.json")
    if isinstance(exc, errors.EntryNotFoundError | errors.RemoteEntryNotFoundError) \
            and not isinstance(exc, errors.LocalEntryNotFoundError):
        return AdvisorInputError(field, f"{repo} has no {what}: not a transformers model repo (for a GGUF repo, "
                                 "download the .gguf file and pass its path)")
    if isinstance(exc, errors.LocalEntryNotFoundError | ConnectionError) or (
            isinstance(exc, OSError) and not isinstance(exc, errors.HfHubHTTPError)):
        return AdvisorInputError(field, f"{repo}: the Hub could not be reached and its {what} is not in the Hugging "
                                 "Face cache; check the network (or HF_ENDPOINT), or use a catalog model or a "
                                 "config.json")
    return AdvisorInputError(field, f"{repo}: could not read its {what} from the Hub ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:160] if str(exc) else 'no detail'})")


def _download(repo: str, filename: str, s: dict[str, Any], revision: str | None) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo, filename, revision=revision, cache_dir=s["cache_dir"], token=s["token"],
                                endpoint=s["endpoint"], local_files_only=s["offline"], etag_timeout=TIMEOUT_S))


def _optional(repo: str, filename: str, s: dict[str, Any], revision: str | None, limit: int) -> bytes | None:
    """A small side file if the repo has it (bounded read); None if it does not or it cannot be read offline."""
    from huggingface_hub import errors

    try:
        path = _download(repo, filename, s, revision)
    except (errors.EntryNotFoundError, errors.RemoteEntryNotFoundError, errors.LocalEntryNotFoundError,
            FileNotFoundError):
        return None
    with path.open("rb") as fh:
        return fh.read(limit)


def card_base_model(readme: bytes | None) -> str | None:
    """``base_model`` from a model card's YAML front matter (the first one when it lists several)."""
    if not readme:
        return None
    text = readme.decode("utf-8", errors="replace")
    match = re.match(r"^\ufeff?---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
    if not match:
        return None
    try:
        meta = safeyaml.load(match.group(1))
    except Exception:  # a malformed card is not our input's fault: no base model then
        return None
    base = meta.get("base_model") if isinstance(meta, dict) else None
    if isinstance(base, list):
        base = next((b for b in base if isinstance(b, str)), None)
    return base.strip()[:200] if isinstance(base, str) and REPO_ID.match(base.strip()) else None


def _header_bytes(repo: str, s: dict[str, Any], revision: str | None) -> tuple[int | None, str]:
    """Exact tensor bytes from the safetensors headers (sum of each tensor's data span), and where they came from.
    Offline, or for a repo without safetensors, None and the reason."""
    from huggingface_hub import HfApi, errors

    if s.get("unreachable"):
        return None, "the Hub could not be reached: read from the cache, tensor sizes computed from the architecture"
    if s["offline"]:
        return None, "offline: tensor sizes computed from the architecture (the headers are not cached)"
    api = HfApi(endpoint=s["endpoint"], token=s["token"])
    try:
        meta = api.get_safetensors_metadata(repo, revision=revision, timeout=TIMEOUT_S)
    except errors.NotASafetensorsRepoError:
        return None, "no safetensors files: tensor sizes computed from the architecture"
    except Exception as exc:  # noqa: BLE001 - the size falls back to the computed one, with the reason shown
        return None, f"safetensors headers unreadable ({type(exc).__name__}): tensor sizes computed"
    if len(meta.files_metadata) > MAX_SHARDS:
        return None, f"{len(meta.files_metadata)} shards (more than {MAX_SHARDS}): tensor sizes computed"
    total = 0
    for file_meta in meta.files_metadata.values():
        for info in file_meta.tensors.values():
            start, end = info.data_offsets
            total += max(0, int(end) - int(start))
    shards = len(meta.files_metadata)
    return total or None, f"safetensors headers of {repo} ({shards} file{'s' if shards != 1 else ''})"


def resolve_hub_model(repo: str, *, revision: str | None = None, field: str = "--model") -> ResolvedModel:
    """A model from its Hugging Face repo id: architecture, native (quantized) layout, base model, exact bytes.

    Cached per repo, revision and hub settings for the life of the process (configs do not change under a
    revision; `main` may, which a restart picks up). Raises AdvisorInputError naming `field` and the repo.
    """
    repo = (repo or "").strip()
    if not REPO_ID.match(repo):
        raise AdvisorInputError(field, f"{repo[:80]!r} is not a Hugging Face repo id (owner/name)")
    s = _settings()
    key = (repo, revision, s["endpoint"], s["offline"], bool(s["token"]))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    _quiet()
    if not s["offline"] and not _reachable(s["endpoint"]):
        s = {**s, "offline": True, "unreachable": True}  # read what the cache holds; say why if it holds nothing
    try:
        config_path = _download(repo, "config.json", s, revision)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line naming the repo and the reason
        if s.get("unreachable"):
            raise AdvisorInputError(field, f"{repo}: the Hub at {s['endpoint']} could not be reached and its "
                                    "config.json is not in the Hugging Face cache; check the network (or HF_ENDPOINT), "
                                    "or use a catalog model or a config.json") from None
        raise _error(repo, field, exc, s["offline"], "config.json") from None
    with config_path.open("rb") as fh:
        data = fh.read(MAX_CONFIG_BYTES + 1)
    config = parse_config_text(data, where=f"{repo} config.json")
    files: dict[str, Any] = {}
    for name in SIDE_FILES:
        raw = _optional(repo, name, s, revision, MAX_CONFIG_BYTES + 1)
        if raw is not None:
            try:
                files[name] = json.loads(raw[:MAX_CONFIG_BYTES])
            except ValueError:
                raise AdvisorInputError(field, f"{repo} {name} is not valid JSON") from None
    base_model = card_base_model(_optional(repo, "README.md", s, revision, MAX_CARD_BYTES))
    exact, bytes_source = _header_bytes(repo, s, revision)
    read = ["config.json", *files, "README.md front matter" if base_model else None]
    source = [f"{s['endpoint']}/{repo} ({', '.join(r for r in read if r)})"]
    try:
        model = model_from_config(config, name=repo, where=f"{repo} config.json", files=files, repo=repo,
                                  base_model=base_model if base_model != repo else None, source=source,
                                  checkpoint_bytes=exact, bytes_source=bytes_source)
    except AdvisorInputError as exc:
        if "model_type" in str(exc) or "architectures" in str(exc):
            raise AdvisorInputError(field, f"{repo} is not a decoder LLM the engine supports: {exc}") from None
        raise
    if exact is None:
        model = model.model_copy(update={"native": model.native.model_copy(update={"bytes_source": bytes_source})})
    with _LOCK:
        _CACHE[key] = model
        while len(_CACHE) > 64:
            _CACHE.popitem(last=False)
    return model

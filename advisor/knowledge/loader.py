"""Loading the knowledge tables: read each YAML file in ``knowledge/`` with a safe loader, validate its rows
into the frozen models of :mod:`advisor.knowledge.schema`, and check that every id a row names exists.

:func:`load_knowledge` validates all tables once per process; a broken edit fails loudly at load with the
table, the row and the problem (:class:`KnowledgeError`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from advisor.knowledge.schema import TABLES, CalibrationRow, Knowledge, KnowledgeError, Row

KNOWLEDGE_DIR = Path(__file__).resolve().parent.parent.parent / "knowledge"


# libyaml's safe loader when PyYAML was built with it (the wheels are): the same safe subset as
# yaml.safe_load, about 9x faster on these tables (28 vs 246 ms), which counts on a cold app start.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse_yaml(text: str) -> Any:
    loader = _SAFE_LOADER(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _read_rows(path: Path) -> list[dict[str, Any]]:
    try:
        data = _parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise KnowledgeError(f"{path.name}: not valid YAML: {exc}") from None
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise KnowledgeError(f"{path.name}: expected a mapping with a 'rows' list")
    return rows


def _validate_rows(name: str, row_type: type[Row], rows: list[dict[str, Any]]) -> list[Row]:
    out = []
    for index, raw in enumerate(rows):
        try:
            out.append(row_type.model_validate(raw))
        except ValidationError as exc:
            ident = raw.get("id", f"#{index}") if isinstance(raw, dict) else f"#{index}"
            raise KnowledgeError(f"{name}.yaml row {ident}: {exc}") from None
    return out


def _index(name: str, rows: list[Row]) -> dict[str, Row]:
    table: dict[str, Row] = {}
    for row in rows:
        if row.id in table:
            raise KnowledgeError(f"{name}.yaml: duplicate id {row.id!r}")
        table[row.id] = row
    return table


def _check_references(k: Knowledge) -> None:
    problems: list[str] = []

    def need(table: dict[str, Any], ident: str | None, where: str) -> None:
        if ident is not None and ident not in table:
            problems.append(f"{where} names unknown id {ident!r}")

    for fmt in k.formats.values():
        if fmt.bits and fmt.id == "fp8" and not fmt.variants:
            problems.append("formats.fp8 must list its variants")
    for m in k.methods.values():
        for f in m.formats:
            need(k.formats, f, f"methods.{m.id}.formats")
        for r in m.runtimes:
            need(k.runtimes, r, f"methods.{m.id}.runtimes")
    for s in k.schemes.values():
        if s.model_native:
            continue
        need(k.formats, s.format, f"schemes.{s.id}.format")
        need(k.methods, s.method, f"schemes.{s.id}.method")
        need(k.formats, s.high_precision_format, f"schemes.{s.id}.high_precision_format")
        for group, other in s.group_overrides.items():
            need(k.schemes, other, f"schemes.{s.id}.group_overrides.{group}")
    for kv in k.kv_formats.values():
        need(k.formats, kv.format, f"kv_formats.{kv.id}.format")
        for r in kv.runtime_flags:
            need(k.runtimes, r, f"kv_formats.{kv.id}.runtime_flags")
    for g in k.gpus.values():
        for f in g.native_formats:
            need(k.formats, f, f"gpus.{g.id}.native_formats")
        if (g.vendor == "nvidia") != (g.compute_capability is not None):
            problems.append(f"gpus.{g.id}: NVIDIA GPUs need compute_capability, AMD ones amd_arch")
    for mdl in k.models.values():
        need(k.schemes, mdl.native.scheme, f"models.{mdl.id}.native.scheme")
        for group, scheme in mdl.native.overrides.items():
            need(k.schemes, scheme, f"models.{mdl.id}.native.overrides.{group}")
        for c_id in mdl.native.candidates:
            need(k.candidates, c_id, f"models.{mdl.id}.native.candidates")
    for kv in k.kv_formats.values():
        need(k.formats, kv.requires_native, f"kv_formats.{kv.id}.requires_native")
    for w in k.workloads.values():
        need(k.priorities, w.priority, f"workloads.{w.id}.priority")
    for c in k.candidates.values():
        need(k.schemes, c.weights, f"candidates.{c.id}.weights")
        need(k.formats, c.activations, f"candidates.{c.id}.activations")
        need(k.methods, c.method, f"candidates.{c.id}.method")
        if c.only_for_native != "gguf":  # "gguf": any GGUF file's own layout
            need(k.schemes, c.only_for_native, f"candidates.{c.id}.only_for_native")
        need(k.candidates, c.evidence_as, f"candidates.{c.id}.evidence_as")
        if c.only_for_native and c.weights != "native":
            problems.append(f"candidates.{c.id}: only_for_native candidates serve weights 'native'")
        for f in c.native_compute:
            need(k.formats, f, f"candidates.{c.id}.native_compute")
        for r in c.runtimes:
            need(k.runtimes, r, f"candidates.{c.id}.runtimes")
    for rc in k.recipes.values():
        for m in rc.methods:
            need(k.methods, m, f"recipes.{rc.id}.methods")
        for r in rc.runtimes:
            need(k.runtimes, r, f"recipes.{rc.id}.runtimes")
    tables = {
        "rules": k.rules,
        "validation": k.validation,
        "candidates": k.candidates,
        "schemes": k.schemes,
        "kv_formats": k.kv_formats,
        "methods": k.methods,
        "formats": k.formats,
        "workloads": k.workloads,
        "priorities": k.priorities,
        "runtimes": k.runtimes,
        "gpus": k.gpus,
    }
    for st in k.seed_statements.values():
        if not st.encoded_by and not st.not_encoded:
            problems.append(f"seed_statements.{st.id}: neither encoded nor explained")
        for ref in st.encoded_by:
            table, _, ident = ref.partition(":")
            if table == "engine":
                continue
            if table not in tables:
                problems.append(f"seed_statements.{st.id}: unknown table in {ref!r}")
            else:
                need(tables[table], ident, f"seed_statements.{st.id}.encoded_by")
    for sp in k.speed.values():
        need(k.runtimes, sp.runtime, f"speed.{sp.id}.runtime")
    missing_speed = set(k.runtimes) - {sp.runtime for sp in k.speed.values()}
    if missing_speed:
        problems.append(f"speed.yaml has no row for runtimes {sorted(missing_speed)}")
    for pm in k.perf_measurements.values():
        need(k.models, pm.model, f"perf_measurements.{pm.id}.model")
        need(k.gpus, pm.gpu, f"perf_measurements.{pm.id}.gpu")
        need(k.runtimes, pm.runtime, f"perf_measurements.{pm.id}.runtime")
        need(k.schemes, pm.weights, f"perf_measurements.{pm.id}.weights")
        need(k.formats, pm.activations, f"perf_measurements.{pm.id}.activations")
        need(k.kv_formats, pm.kv, f"perf_measurements.{pm.id}.kv")
    for cell in k.quality.values():
        table = k.candidates if cell.kind == "weights" else k.kv_formats
        for config in cell.configs:
            need(table, config, f"quality.{cell.id}.configs")
    for kv in k.kv_formats.values():  # the 16-bit caches are the reference (advisor/physics/quality.py)
        if kv.id not in ("bf16", "fp16") and not any(c.kind == "kv" and kv.id in c.configs for c in k.quality.values()):
            problems.append(f"quality.yaml has no evidence for KV format {kv.id!r}")
    for cand in k.candidates.values():
        evidence = cand.evidence_as or cand.id
        if evidence != "bf16" and not any(c.kind == "weights" and evidence in c.configs for c in k.quality.values()):
            problems.append(f"quality.yaml has no evidence for candidate {evidence!r}")
    for name in ("quality-size-tiny-max-b", "quality-size-small-max-b", "quality-size-medium-max-b", "quality-fallback-widening",
                 "near-miss-min-share", "batch-max-concurrency", "explain-alternatives"):
        if name not in k.decision:
            problems.append(f"decision.yaml needs a row {name!r}")
    for price in k.gpu_prices.values():
        need(k.gpus, price.gpu, f"gpu_prices.{price.id}.gpu")
    seen: dict[tuple[str, str, str], str] = {}
    for ck in k.checkpoints.values():
        need(k.models, ck.model, f"checkpoints.{ck.id}.model")
        need(k.candidates, ck.candidate, f"checkpoints.{ck.id}.candidate")
        need(k.kv_formats, ck.kv_cache, f"checkpoints.{ck.id}.kv_cache")
        for r in ck.runtimes:
            need(k.runtimes, r, f"checkpoints.{ck.id}.runtimes")
        key = (ck.model, ck.candidate, ck.format)
        if key in seen:
            problems.append(f"checkpoints.{ck.id}: {ck.model} x {ck.candidate} in {ck.format} is already {seen[key]}")
        seen[key] = ck.id
    for row in k.calibration:
        need(k.models, row.model, f"calibration.{row.id}.model")
        need(k.schemes, row.scheme, f"calibration.{row.id}.scheme")
    if problems:
        raise KnowledgeError("; ".join(problems))


def load_knowledge_from(directory: Path) -> Knowledge:
    tables: dict[str, Any] = {}
    for name, row_type in TABLES.items():
        path = directory / f"{name}.yaml"
        if not path.exists():
            raise KnowledgeError(f"missing knowledge table {path}")
        tables[name] = _index(name, _validate_rows(name, row_type, _read_rows(path)))
    calibration = _validate_rows("calibration", CalibrationRow, _read_rows(directory / "calibration.yaml"))
    _index("calibration", calibration)
    knowledge = Knowledge(**tables, calibration=tuple(calibration))
    _check_references(knowledge)
    return knowledge


_DERIVED: dict[int, tuple[Knowledge, dict[str, Any]]] = {}
_LAST: list[tuple[Knowledge | None, dict[str, Any]]] = [(None, {})]  # the entry asked for last
_MISSING = object()


def derived(knowledge: Knowledge, name: str, build: Callable[[], Any]) -> Any:
    """A value computed once from a knowledge base and kept beside it (indexes, caches of pure functions of the
    tables). Knowledge is frozen, so the value stays valid; a few knowledge bases are kept at most."""
    entry = _LAST[0]  # the engine asks hundreds of times per request, nearly always of the same knowledge base
    if entry[0] is not knowledge:
        entry = _DERIVED.get(id(knowledge))
    if entry is None or entry[0] is not knowledge:
        if len(_DERIVED) >= 4:
            _DERIVED.pop(next(iter(_DERIVED)))
        entry = _DERIVED[id(knowledge)] = (knowledge, {})
    _LAST[0] = entry
    store = entry[1]
    value = store.get(name, _MISSING)
    if value is _MISSING:
        value = store[name] = build()
    return value


@functools.cache
def load_knowledge() -> Knowledge:
    """The shipped knowledge base, validated once per process."""
    return load_knowledge_from(KNOWLEDGE_DIR)

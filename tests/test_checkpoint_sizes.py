"""The engine's checkpoint bytes against the published size of real quantized checkpoints.

Rows, sources and fixtures: tests/fixtures/checkpoints/sizes.yaml (real config.json and quantization side files
of each checkpoint). The comparison itself is scripts/checkpoint_sizes.py; the tolerances per kind of published
figure are its TOLERANCE_PCT, justified in docs/evidence/checkpoint-sizes.md. A row the engine is known to miss
by more than its tolerance is a strict xfail carrying the cause, never a wider tolerance. No network is used.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from advisor.knowledge import load_knowledge

ROOT = Path(__file__).resolve().parent.parent
_SPEC = importlib.util.spec_from_file_location("checkpoint_sizes", ROOT / "scripts" / "checkpoint_sizes.py")
assert _SPEC and _SPEC.loader
sizes = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("checkpoint_sizes", sizes)
_SPEC.loader.exec_module(sizes)

ROWS = sizes.load_rows()
SAFETENSORS = [r for r in ROWS if r["published_what"] != sizes.GGUF]
GGUF_ROWS = [r for r in ROWS if r["published_what"] == sizes.GGUF]
FORMATS_REQUIRED = ("awq", "gptq", "ct-int4-w4a16+ignore", "fp8-block-128", "modelopt-nvfp4", "mxfp4",
                    "ct-fp8-channel", "ct-int8-w8a8", "bnb-nf4", "gguf")


@pytest.fixture(scope="module")
def knowledge():
    return load_knowledge()


def _param(row: dict):
    marks = []
    if row.get("expected") == "xfail":
        marks.append(pytest.mark.xfail(strict=True, reason=" ".join(str(row["reason"]).split())))
    return pytest.param(row, id=row["id"], marks=marks)


def test_sizes_file_is_complete():
    """Every row names its source and fixture files, and the required formats are all covered."""
    assert len(SAFETENSORS) >= 10
    assert {r["format"] for r in ROWS} >= set(FORMATS_REQUIRED)
    ids = [r["id"] for r in ROWS]
    assert len(ids) == len(set(ids))
    for row in ROWS:
        assert row["source"] and row["config_source"], row["id"]
        assert row["published_what"] in sizes.TOLERANCE_PCT, row["id"]
        assert int(row["published_bytes"]) > 0
        # the listing's rounding may use at most half of the tolerance
        rounding_pct = 100 * int(row["published_error_bytes"]) / int(row["published_bytes"])
        assert rounding_pct <= sizes.TOLERANCE_PCT[row["published_what"]] / 2, row["id"]
        if row.get("expected") == "xfail":
            assert row.get("reason"), row["id"]
        config, side = sizes.fixture_files(row)
        assert config.get("model_type"), row["id"]


@pytest.mark.parametrize("row", [_param(r) for r in SAFETENSORS])
def test_safetensors_checkpoint_size(knowledge, row):
    result = sizes.compute(knowledge, row)
    assert result.within, (f"{row['repo']}: engine {result.ours:,} B vs published {result.published:,} B "
                           f"({result.error_pct:+.3f} %, tolerance {result.tolerance_pct} %)")


@pytest.mark.parametrize("row", [_param(r) for r in GGUF_ROWS])
def test_gguf_file_size(knowledge, row):
    """GGUF: tensor data sized per tensor by advisor.physics.gguf, against the whole file (header included)."""
    result = sizes.compute(knowledge, row)
    if result.ours is None:  # the GGUF sizing module is written separately; until it lands the row is pending
        pytest.xfail("pending: advisor.physics.gguf.gguf_bytes is not available")
    assert result.within, f"{row['id']}: {result.error_pct:+.3f} % (tolerance {result.tolerance_pct} %)"
    if "header_bytes" in row:  # the header was measured: the tensor data must agree to within rope_freqs (256 B)
        data = result.published - int(row["header_bytes"])
        assert abs(result.ours - data) <= 512, f"tensor data {result.ours:,} B vs {data:,} B in the file"


def test_table_prints_every_row(knowledge):
    text = sizes.table(sizes.compute_all(knowledge, ROWS))
    for row in ROWS:
        assert row["repo"] in text

#!/usr/bin/env python3
"""Measure a GPU for the advisor's knowledge (issue 10, item 6): one prepared script, one run, sourced rows.

What it measures, on the first CUDA device, in this order, inside a hard wall-clock budget (default 420 s):

1. identity: device name, total memory as torch reports it, driver and CUDA versions, SM count, L2 size.
2. matmul: TFLOPS by precision (BF16 ``torch.matmul``; FP8 e4m3 ``torch._scaled_mm`` with and without fast
   accumulation; INT8 ``torch._int_mm``) and shape (decode-like M = 1, 8, 32, 128 and prefill-like M = 2048, 8192,
   16384, each with N x K = 4096 x 4096, 8192 x 8192, 28672 x 8192), as a fraction of the datasheet's dense peak.
3. bandwidth: device-to-device copy, read-only reduction and fill of a 4 GiB tensor, in GB/s counting bytes read
   plus written, as a fraction of the datasheet's HBM peak.
4. models: Llama-3.1-8B-Instruct and Qwen2.5-7B-Instruct built from their config.json (embedded below; random
   weights, nothing downloaded) in transformers: weight memory, peak memory, KV bytes per token read off the cache
   tensors, prefill time (TTFT) for a 1024-token prompt and the time per output token of a batch-1 decode of 128
   tokens, eager and (where capture works) replayed from a CUDA graph.

Each figure becomes one row ({id, kind, machine, date, precision, shape, value, unit, fraction_of_peak, source}
plus details); a step that fails or is skipped for time still writes its rows, with ``error`` or ``skipped``.
The file is rewritten after every step, so a run killed part-way keeps what it had measured.

    python3 scripts/device_measure.py --out $OUT/device_rows.yaml    # on the GPU machine (torch + transformers)
    python3 scripts/device_measure.py --dry-run                      # the plan and its time, no torch needed
    python3 scripts/device_measure.py --check device_rows.yaml       # validate a rows file, no torch needed
    python3 scripts/device_measure.py --smoke --device cpu --out /tmp/rows.yaml   # tiny shapes: check the code

Only the standard library is imported at module level; torch and transformers are imported inside the steps.
Nothing in the advisor imports this script or needs a GPU: docs/device-measurements.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPT = "scripts/device_measure.py"
DEFAULT_BUDGET_S = 420.0
RESERVE_S = 10.0  # kept back from the budget for writing the file and the closing table

# Dense (no-sparsity) peaks by device-name substring. TFLOPS for the matrix units, TB/s (1e12 B/s) for HBM.
PEAKS: dict[str, dict[str, Any]] = {
    "H200": {
        "bf16": 989.4,
        "fp8": 1978.9,
        "int8": 1978.9,
        "hbm_tbps": 4.8,
        "source": "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM): dense figures, half the with-sparsity ones; "
        "HBM3e 4.8 TB/s",
    },
}

# --------------------------------------------------------------------------------------------- the plan
DECODE_M = (1, 8, 32, 128)
PREFILL_M = (2048, 8192, 16384)
# (N, K) of the weight: Llama-3.1-8B q/o projection, Llama-3.1-70B q/o projection, Llama-3.1-70B gate/up projection
NK = ((4096, 4096), (8192, 8192), (28672, 8192))
EXTRA_MNK = ((8192, 8192, 8192),)  # the usual cube; M=8192 with 8192 x 8192 is already in the grid (deduplicated)
PRECISIONS = ("bf16", "fp8", "fp8_fast_accum", "int8")
PEAK_KEY = {"bf16": "bf16", "fp8": "fp8", "fp8_fast_accum": "fp8", "int8": "int8"}
INT_MM_MIN_M = 17  # torch._int_mm on CUDA: "self.size(0) needs to be greater than 16"
INT_MM_PAD_M = 32  # INT8 at M <= 16 is timed at this M and reported on the real M's useful work
CHECK_MNK = (128, 4096, 4096)  # the shape each precision is also checked for correctness at

BANDWIDTH_BYTES = 4 * 2**30
BANDWIDTH_TESTS = ("copy", "read", "write")

PROMPT_TOKENS = 1024
NEW_TOKENS = 128

# config.json as published (no download there): https://huggingface.co/<id>/blob/main/config.json; the advisor
# keeps the fields it reads in knowledge/models.yaml (same values).
MODEL_CONFIGS: dict[str, dict[str, Any]] = {
    "meta-llama/Llama-3.1-8B-Instruct": {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 128000,
        "eos_token_id": [128001, 128008, 128009],
        "hidden_act": "silu",
        "hidden_size": 4096,
        "initializer_range": 0.02,
        "intermediate_size": 14336,
        "max_position_embeddings": 131072,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "num_key_value_heads": 8,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {
            "factor": 8.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.43.0.dev0",
        "use_cache": True,
        "vocab_size": 128256,
    },
    "Qwen/Qwen2.5-7B-Instruct": {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "hidden_act": "silu",
        "hidden_size": 3584,
        "initializer_range": 0.02,
        "intermediate_size": 18944,
        "max_position_embeddings": 32768,
        "max_window_layers": 28,
        "model_type": "qwen2",
        "num_attention_heads": 28,
        "num_hidden_layers": 28,
        "num_key_value_heads": 4,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 131072,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.43.1",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 152064,
    },
}
# Published parameter totals (knowledge/models.yaml `published.params_total`; Qwen: 7.61 B on its model card).
PUBLISHED_PARAMS = {"meta-llama/Llama-3.1-8B-Instruct": 8030261248}

# --smoke: the same code on tiny shapes, so that it can be run where torch is installed but no GPU is at hand.
SMOKE_DECODE_M = (1, 32)
SMOKE_PREFILL_M = (256,)
SMOKE_NK = ((128, 128), (256, 128))
SMOKE_BANDWIDTH_BYTES = 64 * 2**20
SMOKE_PROMPT_TOKENS = 32
SMOKE_NEW_TOKENS = 8
SMOKE_MODEL_OVERRIDES = {"num_hidden_layers": 2, "hidden_size": 256, "intermediate_size": 512,
                         "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1024,
                         "max_window_layers": 2}

KINDS = ("matmul", "bandwidth", "model_memory", "model_decode")
# (id part, kind, unit) of the rows each model gets
MODEL_FIGURES = (("weights", "model_memory", "GiB"), ("peak", "model_memory", "GiB"),
                 ("kv-per-token", "model_memory", "bytes/token"), ("ttft", "model_decode", "ms"),
                 ("tpot-eager", "model_decode", "ms"), ("tpot-graph", "model_decode", "ms"))
UNITS = {
    "matmul": {"TFLOPS"},
    "bandwidth": {"GB/s"},
    "model_memory": {"GiB", "bytes/token"},
    "model_decode": {"ms", "tokens/s"},
}
REQUIRED_FIELDS = ("id", "kind", "machine", "date", "precision", "shape", "value", "unit", "fraction_of_peak",
                   "source")
MAX_FRACTION = 1.0  # a measured figure above the datasheet peak means the measurement is wrong


# --------------------------------------------------------------------------------------------- pure helpers
def matmul_flops(m: int, n: int, k: int) -> float:
    """Floating-point (or integer) operations of one (M x K) @ (K x N) product: a multiply and an add each."""
    return 2.0 * m * n * k


def tflops(m: int, n: int, k: int, ms: float) -> float:
    """TFLOPS (1e12 operations per second) of one M x N x K product that took `ms` milliseconds."""
    if ms <= 0:
        raise ValueError("time must be positive")
    return matmul_flops(m, n, k) / (ms * 1e-3) / 1e12


def gb_per_s(n_bytes: float, ms: float) -> float:
    """GB/s (1e9 bytes per second) for `n_bytes` moved in `ms` milliseconds."""
    if ms <= 0:
        raise ValueError("time must be positive")
    return n_bytes / (ms * 1e-3) / 1e9


def bandwidth_bytes_moved(test: str, n_bytes: int) -> int:
    """Bytes a bandwidth test moves through HBM: a copy reads and writes the tensor, a read or a fill once."""
    factors = {"copy": 2, "read": 1, "write": 1}
    return factors[test] * n_bytes


def fraction_of_peak(value: float | None, peak: float | None) -> float | None:
    """value / peak rounded to 4 digits; None where either is unknown."""
    if value is None or not peak:
        return None
    return round(value / peak, 4)


def operand_bytes(precision: str, rows: int, cols: int) -> int:
    """Bytes of a rows x cols operand stored in `precision` (bf16: 2 bytes, fp8 and int8: 1)."""
    return rows * cols * (2 if precision == "bf16" else 1)


def copies_to_defeat_l2(nbytes: int, l2_bytes: int, factor: int = 4, cap: int = 64) -> int:
    """How many copies of a weight to rotate through so that consecutive products never find it in L2."""
    if nbytes <= 0:
        return 1
    return max(1, min(cap, math.ceil(factor * l2_bytes / nbytes)))


def calls_per_timing(per_call_ms: float, target_ms: float = 2.0, cap: int = 1000) -> int:
    """Calls inside one timed region, so that the region lasts about `target_ms` (events resolve ~0.5 us)."""
    if per_call_ms <= 0:
        return cap
    return max(1, min(cap, math.ceil(target_ms / per_call_ms)))


def int8_timed_m(m: int) -> int:
    """The M that torch._int_mm is run at: M itself above 16, else INT_MM_PAD_M (it refuses M <= 16)."""
    return m if m >= INT_MM_MIN_M else INT_MM_PAD_M


def matmul_cases(smoke: bool = False) -> list[tuple[int, int, int]]:
    """(M, N, K) of every matmul case, decode-like first, without duplicates."""
    decode_m, prefill_m, nk = (SMOKE_DECODE_M, SMOKE_PREFILL_M, SMOKE_NK) if smoke else (DECODE_M, PREFILL_M, NK)
    cases: list[tuple[int, int, int]] = [(m, n, k) for m in decode_m for n, k in nk]
    cases += [(m, n, k) for m in prefill_m for n, k in nk]
    if not smoke:
        cases += list(EXTRA_MNK)
    seen: set[tuple[int, int, int]] = set()
    return [c for c in cases if not (c in seen or seen.add(c))]


def estimate_matmul_s(m: int, n: int, k: int, precision: str, peaks: dict[str, Any] | None = None) -> float:
    """Rough seconds for one case: operand set-up plus warm-up and 7 timed regions of >= 2 ms each."""
    peaks = peaks or PEAKS["H200"]
    rate = 0.7 * peaks[PEAK_KEY[precision]] * 1e12
    bw = 0.85 * peaks["hbm_tbps"] * 1e12
    mm = max(m, INT_MM_PAD_M) if precision == "int8" else m
    per_call_s = max(matmul_flops(mm, n, k) / rate, operand_bytes(precision, n, k) / bw) + 10e-6
    timed_s = 9 * max(2e-3, per_call_s) + 3 * per_call_s
    setup_s = 0.3 + (n * k + mm * k) * 3e-11  # random operands drawn on the device, graph capture
    return setup_s + timed_s


def estimate_plan_s(smoke: bool = False, models: Iterable[str] = tuple(MODEL_CONFIGS)) -> dict[str, float]:
    """Seconds each step is expected to take on an H200 (leads, not promises), by step name."""
    matmul = sum(estimate_matmul_s(m, n, k, p) for (m, n, k) in matmul_cases(smoke) for p in PRECISIONS)
    bandwidth_bytes = SMOKE_BANDWIDTH_BYTES if smoke else BANDWIDTH_BYTES
    est = {
        "identity": 20.0,  # torch import and CUDA context creation
        "matmul": round(matmul + 5.0, 1),
        "bandwidth": round(3 * (1.0 + 13 * 2 * bandwidth_bytes / 4.0e12), 1),
    }
    for model in models:
        est[f"model:{model}"] = 10.0 if smoke else 75.0  # import, build on the GPU, prefill x4, 2 x 128 decode steps
    return est


@dataclass
class Budget:
    """A hard wall-clock budget, checked between steps: a step runs only if its estimate fits in what is left."""

    total_s: float
    clock: Callable[[], float] = time.monotonic
    reserve_s: float = RESERVE_S
    start: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.start = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def left(self) -> float:
        return self.total_s - self.elapsed()

    def allows(self, estimate_s: float) -> bool:
        """True when a step expected to take `estimate_s` ends before the budget less the reserve."""
        return self.elapsed() + estimate_s <= self.total_s - self.reserve_s


def machine_string(identity: dict[str, Any]) -> str:
    """'NVIDIA H200 (139.8 GiB), driver 580.159.03, CUDA 13.0, torch 2.11.0+cu130' from the identity step."""
    gib = identity.get("total_memory_gib")
    name = identity.get("name", "unknown device")
    head = f"{name} ({gib} GiB)" if gib is not None else name
    return (f"{head}, driver {identity.get('driver', 'unknown')}, CUDA {identity.get('cuda_runtime', 'unknown')}, "
            f"torch {identity.get('torch', 'unknown')}")


def machine_slug(name: str) -> str:
    """A short id part for a device name: 'NVIDIA H200' -> 'h200'."""
    for key in PEAKS:
        if key.lower() in name.lower():
            return key.lower()
    slug = "".join(c if c.isalnum() else "-" for c in name.lower().replace("nvidia", "")).strip("-")
    return "-".join(p for p in slug.split("-") if p) or "device"


def peaks_for(name: str) -> dict[str, Any] | None:
    """The PEAKS entry whose key is in the device name, else None (fractions of peak are then left empty)."""
    for key, peaks in PEAKS.items():
        if key.lower() in name.lower():
            return peaks
    return None


def sig(x: float, digits: int = 5) -> float:
    """`x` rounded to `digits` significant digits (the rows' numbers: enough for the knowledge, no noise)."""
    return float(f"{float(x):.{digits}g}")


def median(values: list[float]) -> float:
    return float(statistics.median(values))


# --------------------------------------------------------------------------------------------- rows file
def plain(x: Any) -> Any:
    """`x` as plain str / int / float / bool / None / list / dict (torch's version string is a str subclass)."""
    if x is None or type(x) in (str, int, float, bool):
        return x
    if isinstance(x, bool):
        return bool(x)
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        return float(x)
    if isinstance(x, str):
        return str(x)
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    return str(x)


def dump_rows(path: Path, doc: dict[str, Any]) -> str:
    """Write the rows document as YAML (PyYAML) or, without PyYAML, as JSON (also valid YAML). Atomic."""
    doc = plain(doc)
    try:
        import yaml  # noqa: PLC0415

        text = yaml.safe_dump(doc, sort_keys=False, width=120, allow_unicode=True)
        fmt = "yaml"
    except ImportError:
        text = json.dumps(doc, indent=1) + "\n"
        fmt = "json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return fmt


def load_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a rows file (JSON or YAML; a mapping with `rows`, or a plain list)."""
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        try:
            import yaml  # noqa: PLC0415
        except ImportError as exc:
            raise ValueError(f"{path} is not JSON and PyYAML is not installed to read it as YAML") from exc
        doc = yaml.safe_load(text)
    rows = doc.get("rows") if isinstance(doc, dict) else doc
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a list of rows or a mapping with 'rows'")
    return rows


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_rows(rows: list[Any]) -> list[str]:
    """Problems in a rows file (empty when valid): fields present, kinds and units known, numbers positive."""
    problems: list[str] = []
    if not rows:
        return ["no rows"]
    seen: set[str] = set()
    for i, row in enumerate(rows):
        where = f"row {i}"
        if not isinstance(row, dict):
            problems.append(f"{where}: not a mapping")
            continue
        rid = row.get("id")
        if isinstance(rid, str) and rid:
            where = f"row {i} ({rid})"
            if rid in seen:
                problems.append(f"{where}: duplicate id")
            seen.add(rid)
        missing = [f for f in REQUIRED_FIELDS if f not in row]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        for f in ("id", "machine", "precision", "shape", "source"):
            if not isinstance(row[f], str) or not row[f].strip():
                problems.append(f"{where}: {f} must be a non-empty string")
        if row["kind"] not in KINDS:
            problems.append(f"{where}: kind {row['kind']!r} is not one of {', '.join(KINDS)}")
        elif row["unit"] not in UNITS[row["kind"]]:
            problems.append(f"{where}: unit {row['unit']!r} does not fit kind {row['kind']}")
        try:
            dt.date.fromisoformat(str(row["date"]))
        except ValueError:
            problems.append(f"{where}: date {row['date']!r} is not an ISO date (YYYY-MM-DD)")
        failed = row.get("error") or row.get("skipped")
        if failed:
            if not isinstance(failed, str):
                problems.append(f"{where}: error / skipped must be a string")
            if row["value"] is not None:
                problems.append(f"{where}: a failed or skipped row carries no value")
            continue
        if not _is_number(row["value"]) or row["value"] <= 0:
            problems.append(f"{where}: value {row['value']!r} must be a positive number")
        frac = row["fraction_of_peak"]
        if frac is not None and (not _is_number(frac) or not 0 < frac <= MAX_FRACTION):
            problems.append(f"{where}: fraction_of_peak {frac!r} must be empty or in (0, {MAX_FRACTION}]")
    return problems


# --------------------------------------------------------------------------------------------- the run
class Run:
    """One measurement run: identity, rows, budget and the output file, rewritten after every step."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.budget = Budget(args.budget)
        self.started = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.date = self.started.date().isoformat()
        self.identity: dict[str, Any] = {"name": "unknown device"}
        self.rows: list[dict[str, Any]] = []
        self.steps: dict[str, dict[str, Any]] = {}
        self.torch: Any = None
        self.device = "cpu"
        self.peaks: dict[str, Any] | None = None
        self.later_s = 0.0  # seconds kept for the steps after the current one

    # ---- rows
    @property
    def machine(self) -> str:
        return machine_string(self.identity)

    def row(self, rid: str, kind: str, precision: str, shape: str, value: float | None, unit: str,
            fraction: float | None = None, **extra: Any) -> dict[str, Any]:
        prefix = f"{machine_slug(self.identity.get('name', 'device'))}-{self.date}"
        if self.args.smoke:
            prefix += "-smoke"
        row = {
            "id": f"{prefix}-{rid}",
            "kind": kind,
            "machine": self.machine,
            "date": self.date,
            "precision": precision,
            "shape": shape,
            "value": None if value is None else sig(value),
            "unit": unit,
            "fraction_of_peak": fraction,
            "source": f"{SCRIPT} run on {self.machine} {self.date}",
        }
        row.update({k: v for k, v in extra.items() if v is not None})
        self.rows.append(row)
        return row

    def write(self) -> None:
        if not self.args.out:
            return
        doc = {
            "generated_by": SCRIPT,
            "issue": "10 item 6",
            "started_at": self.started.isoformat().replace("+00:00", "Z"),
            "elapsed_s": round(self.budget.elapsed(), 1),
            "budget_s": self.args.budget,
            "smoke": bool(self.args.smoke),
            "machine": self.identity,
            "peaks": self.peaks,
            "steps": self.steps,
            "rows": self.rows,
        }
        dump_rows(Path(self.args.out), doc)

    def log(self, msg: str) -> None:
        print(f"[{self.budget.elapsed():6.1f}s] {msg}", flush=True)

    # ---- timing
    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def elapsed_ms(self, fn: Callable[[], Any]) -> float:
        """Milliseconds `fn` keeps the device busy: CUDA events around it on the GPU, a host clock on the CPU."""
        torch = self.torch
        if self.device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end))
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3

    def time_calls(self, calls: list[Callable[[], Any]], reps: int = 7, warmup: int = 2,
                   target_ms: float = 2.0, graph_below_ms: float = 0.05) -> dict[str, Any]:
        """Median milliseconds per call, cycling through `calls` (operand copies that defeat L2).

        Warm-up first; then each of `reps` timed regions holds enough calls to last about `target_ms`. Calls
        shorter than `graph_below_ms` are captured in a CUDA graph and the graph is replayed, so that launch gaps
        do not count; if capture fails, they are timed eagerly and the row says why.
        """
        torch = self.torch
        n = len(calls)
        for _ in range(warmup):
            for c in calls:
                c()
        self.sync()
        per_call = self.elapsed_ms(lambda: [c() for c in calls]) / n
        inner = calls_per_timing(per_call, target_ms)

        def eager() -> None:
            for i in range(inner):
                calls[i % n]()

        run, method = eager, "eager"
        if self.device == "cuda" and per_call < graph_below_ms:
            try:
                graph = torch.cuda.CUDAGraph()
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for c in calls:
                        c()
                torch.cuda.current_stream().wait_stream(side)
                with torch.cuda.graph(graph):
                    eager()
                graph.replay()
                self.sync()
                run, method = graph.replay, "cuda-graph"
            except Exception as exc:  # noqa: BLE001 - any capture failure falls back to eager timing
                method = f"eager (CUDA graph capture failed: {type(exc).__name__}: {str(exc)[:120]})"
                with contextlib.suppress(Exception):
                    self.sync()
        times = [self.elapsed_ms(run) / inner for _ in range(reps)]
        return {"ms": median(times), "times_ms": [round(t, 5) for t in times], "calls_per_timing": inner,
                "method": method}

    # ---- steps
    def step(self, name: str, estimate_s: float, fn: Callable[[], None],
             on_skip: Callable[[str], None] | None = None) -> None:
        """Run one step if the budget allows it; record its outcome; rewrite the output file."""
        if not self.budget.allows(estimate_s):
            reason = (f"time budget: {self.budget.left():.0f} s left of {self.args.budget:.0f} s, "
                      f"step needs about {estimate_s:.0f} s")
            self.log(f"skip {name}: {reason}")
            self.steps[name] = {"status": "skipped", "reason": reason}
            if on_skip:
                on_skip(reason)
            self.write()
            return
        t0 = self.budget.elapsed()
        self.log(f"start {name} (estimate {estimate_s:.0f} s)")
        try:
            fn()
            self.steps[name] = {"status": "ok", "seconds": round(self.budget.elapsed() - t0, 1)}
        except Exception as exc:  # noqa: BLE001 - one failed step must not lose the others
            self.log(f"{name} failed: {type(exc).__name__}: {exc}")
            traceback.print_exc()
            self.steps[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:500],
                                "seconds": round(self.budget.elapsed() - t0, 1)}
        self.free()  # outside the except block, whose exception still holds the failed step's frames
        self.write()

    def free(self) -> None:
        import gc  # noqa: PLC0415

        gc.collect()
        if self.device == "cuda" and self.torch is not None:
            with contextlib.suppress(Exception):
                self.torch.cuda.empty_cache()

    def identity_step(self) -> None:
        import torch  # noqa: PLC0415

        self.torch = torch
        want = self.args.device
        if want == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device (use --smoke --device cpu to check the code on a CPU)")
        self.device = want
        ident: dict[str, Any] = {
            "torch": torch.__version__,
            "cuda_runtime": torch.version.cuda or "none",
            "python": platform.python_version(),
            "date_utc": self.started.isoformat().replace("+00:00", "Z"),
        }
        try:
            import transformers  # noqa: PLC0415

            ident["transformers"] = transformers.__version__
        except Exception as exc:  # noqa: BLE001
            ident["transformers"] = f"not importable: {exc}"
        if want == "cuda":
            props = torch.cuda.get_device_properties(0)
            free, total = torch.cuda.mem_get_info(0)
            ident.update({
                "name": torch.cuda.get_device_name(0),
                "total_memory_bytes": int(total),
                "total_memory_gib": round(total / 2**30, 2),
                "free_memory_bytes_at_start": int(free),
                "props_total_memory_bytes": int(props.total_memory),
                "compute_capability": f"{props.major}.{props.minor}",
                "sm_count": int(props.multi_processor_count),
                "l2_cache_bytes": int(getattr(props, "L2_cache_size", 0)) or None,
                "driver": _driver_version(),
                "cuda_driver_api": _cuda_driver_api(torch),
                "cudnn": torch.backends.cudnn.version(),
            })
        else:
            ident.update({"name": f"CPU ({platform.processor() or platform.machine()})", "driver": "none",
                          "total_memory_gib": None})
        self.identity = ident
        self.peaks = peaks_for(ident["name"]) if want == "cuda" else None
        self.log(f"device: {self.machine}; peaks: {self.peaks or 'none known (fractions left empty)'}")

    # matmul ----------------------------------------------------------------------------------------------
    def make_matmul(self, precision: str, m: int, n: int, k: int, copies: int) -> tuple[list[Callable[[], Any]], Any]:
        """Calls computing (M x K) @ (K x N) in `precision`, one per weight copy, and a reference function.

        The weight is stored as nn.Linear stores it, (N, K) row-major, and passed transposed: a (K, N)
        column-major view, which torch._scaled_mm requires of its second operand and torch._int_mm runs fastest
        with. FP8 uses per-tensor float32 scales (scalar tensors) and a bf16 output.
        """
        torch = self.torch
        dev = self.device
        if precision == "bf16":
            a = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
            ws = [torch.randn(n, k, device=dev, dtype=torch.bfloat16) for _ in range(copies)]
            calls = [lambda w=w: torch.matmul(a, w.t()) for w in ws]
            return calls, lambda: (a.float() @ ws[0].float().t(), calls[0]().float())
        if precision in ("fp8", "fp8_fast_accum"):
            fp8 = torch.float8_e4m3fn
            fast = precision == "fp8_fast_accum"
            a = torch.randn(m, k, device=dev, dtype=torch.bfloat16).to(fp8)
            ws = [torch.randn(n, k, device=dev, dtype=torch.bfloat16).to(fp8) for _ in range(copies)]
            scale_a = torch.tensor(0.5, device=dev, dtype=torch.float32)
            scale_b = torch.tensor(0.25, device=dev, dtype=torch.float32)
            calls = [lambda w=w: torch._scaled_mm(a, w.t(), scale_a=scale_a, scale_b=scale_b,
                                                  out_dtype=torch.bfloat16, use_fast_accum=fast) for w in ws]
            return calls, lambda: ((a.float() @ ws[0].float().t()) * 0.125, calls[0]().float())
        if precision == "int8":
            a = torch.randint(-128, 128, (m, k), device=dev, dtype=torch.int8)
            ws = [torch.randint(-128, 128, (n, k), device=dev, dtype=torch.int8) for _ in range(copies)]
            calls = [lambda w=w: torch._int_mm(a, w.t()) for w in ws]
            # float64 holds every int32 sum exactly (|sum| <= K * 128 * 128 < 2**53)
            return calls, lambda: (a.double() @ ws[0].double().t(), calls[0]().double())
        raise ValueError(f"unknown precision {precision}")

    def matmul_step(self) -> None:
        smoke = self.args.smoke
        l2 = self.identity.get("l2_cache_bytes") or 50 * 2**20
        cases = matmul_cases(smoke)
        for m, n, k in cases:
            for precision in PRECISIONS:
                shape = f"M={m} N={n} K={k}"
                rid = f"matmul-{precision.replace('_', '-')}-m{m}-n{n}-k{k}"
                common = {"m": m, "n": n, "k": k, "regime": "decode" if m <= 128 else "prefill"}
                est = estimate_matmul_s(m, n, k, precision)
                if not self.budget.allows(est + self.later_s):
                    self.row(rid, "matmul", precision, shape, None, "TFLOPS",
                             skipped=f"time budget ({self.budget.left():.0f} s left)", **common)
                    continue
                timed_m = int8_timed_m(m) if precision == "int8" else m
                try:
                    copies = copies_to_defeat_l2(operand_bytes(precision, n, k), l2)
                    calls, reference = self.make_matmul(precision, timed_m, n, k, copies)
                    check = None
                    if (m, n, k) == CHECK_MNK or (smoke and (m, n, k) == cases[-1]):
                        ref, out = reference()
                        rel = float((out - ref).norm() / ref.norm())
                        limit = 0.0 if precision == "int8" else 2e-2
                        check = {"rel_err": float(f"{rel:.3g}"), "limit": limit, "pass": rel <= limit}
                    t = self.time_calls(calls)
                    value = tflops(m, n, k, t["ms"])  # useful work: the real M, also where INT8 ran padded
                    peak = (self.peaks or {}).get(PEAK_KEY[precision])
                    wbytes = operand_bytes(precision, n, k)
                    extra = {
                        "time_ms": round(t["ms"], 5),
                        "times_ms": t["times_ms"],
                        "timing": t["method"],
                        "calls_per_timing": t["calls_per_timing"],
                        "weight_copies": copies,
                        "weight_gb_per_s": round(gb_per_s(wbytes, t["ms"]), 1),
                        "fraction_of_hbm_peak": fraction_of_peak(gb_per_s(wbytes, t["ms"]) / 1e3,
                                                                 (self.peaks or {}).get("hbm_tbps")),
                        "op": {"bf16": "torch.matmul(a, w.t())",
                               "fp8": "torch._scaled_mm(a, w.t(), scale_a, scale_b, out_dtype=bf16)",
                               "fp8_fast_accum": "torch._scaled_mm(..., use_fast_accum=True)",
                               "int8": "torch._int_mm(a, w.t()) -> int32"}[precision],
                        "check": check,
                    }
                    if timed_m != m:
                        extra["timed_m"] = timed_m
                        extra["note"] = (f"torch._int_mm refuses M <= 16: timed at M={timed_m}, TFLOPS counted "
                                         f"on M={m}")
                    self.row(rid, "matmul", precision, shape, value, "TFLOPS", fraction_of_peak(value, peak),
                             **common, **extra)
                    self.log(f"  {precision:15s} {shape:24s} {value:9.2f} TFLOPS  {t['ms'] * 1e3:10.2f} us "
                             f"({t['method'][:10]})")
                except Exception as exc:  # noqa: BLE001 - record the failure, go on with the next case
                    self.row(rid, "matmul", precision, shape, None, "TFLOPS",
                             error=f"{type(exc).__name__}: {str(exc)[:300]}", **common)
                    self.log(f"  {precision:15s} {shape:24s} error: {type(exc).__name__}: {str(exc)[:120]}")
                finally:
                    calls = reference = None  # noqa: F841 - drop the operands before the next case
                    self.free()

    def matmul_skipped(self, reason: str) -> None:
        for m, n, k in matmul_cases(self.args.smoke):
            for precision in PRECISIONS:
                self.row(f"matmul-{precision.replace('_', '-')}-m{m}-n{n}-k{k}", "matmul", precision,
                         f"M={m} N={n} K={k}", None, "TFLOPS", skipped=reason, m=m, n=n, k=k)

    # bandwidth -------------------------------------------------------------------------------------------
    def bandwidth_step(self) -> None:
        torch = self.torch
        nbytes = SMOKE_BANDWIDTH_BYTES if self.args.smoke else BANDWIDTH_BYTES
        numel = nbytes // 2
        shape = f"{nbytes / 2**30:g} GiB bf16 ({numel} elements)"
        peak_gbs = (self.peaks or {}).get("hbm_tbps")
        peak_gbs = peak_gbs * 1e3 if peak_gbs else None
        src = torch.randn(numel, device=self.device, dtype=torch.bfloat16)
        dst = torch.empty_like(src)
        ops = {
            "copy": lambda: dst.copy_(src),
            "read": lambda: torch.sum(src, dtype=torch.float32),
            "write": lambda: dst.fill_(1.0),
        }
        described = {"copy": "dst.copy_(src): reads and writes the tensor",
                     "read": "torch.sum(src, dtype=float32): reads the tensor once",
                     "write": "dst.fill_(1.0): writes the tensor once"}
        for test in BANDWIDTH_TESTS:
            rid = f"bandwidth-{test}"
            try:
                t = self.time_calls([ops[test]], reps=10, warmup=3, target_ms=0.0)
                moved = bandwidth_bytes_moved(test, nbytes)
                value = gb_per_s(moved, t["ms"])
                self.row(rid, "bandwidth", "bf16", shape, value, "GB/s", fraction_of_peak(value, peak_gbs),
                         test=test, op=described[test], bytes_moved=moved, time_ms=round(t["ms"], 4),
                         times_ms=t["times_ms"], timing=t["method"])
                self.log(f"  {test:6s} {value:9.1f} GB/s ({t['ms']:.3f} ms for {moved / 1e9:.2f} GB)")
            except Exception as exc:  # noqa: BLE001
                self.row(rid, "bandwidth", "bf16", shape, None, "GB/s", error=f"{type(exc).__name__}: {exc}"[:300],
                         test=test)
        # src and dst are freed when the step returns (Run.step empties the cache after every step)

    def bandwidth_skipped(self, reason: str) -> None:
        for test in BANDWIDTH_TESTS:
            self.row(f"bandwidth-{test}", "bandwidth", "bf16", "bandwidth test", None, "GB/s", skipped=reason,
                     test=test)

    # models ----------------------------------------------------------------------------------------------
    def model_rows_failed(self, model: str, how: str, reason: str) -> None:
        """A row with `how` ('error' or 'skipped') for each of a model's figures that has no row yet."""
        slug = _model_slug(model)
        shape = self.model_shape()
        have = {r["id"] for r in self.rows}
        for rid, kind, unit in MODEL_FIGURES:
            full = f"{kind.replace('_', '-')}-{slug}-{rid}"
            if not any(h.endswith(full) for h in have):
                self.row(full, kind, "bf16", shape, None, unit, model=model, **{how: reason})

    def model_shape(self) -> str:
        prompt, new = self.decode_lengths()
        return f"batch=1 prompt={prompt} new={new}"

    def decode_lengths(self) -> tuple[int, int]:
        return (SMOKE_PROMPT_TOKENS, SMOKE_NEW_TOKENS) if self.args.smoke else (PROMPT_TOKENS, NEW_TOKENS)

    def model_step(self, model_id: str) -> None:
        torch = self.torch
        import transformers  # noqa: PLC0415
        from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache, StaticCache  # noqa: PLC0415

        slug = _model_slug(model_id)
        shape = self.model_shape()
        prompt, new = self.decode_lengths()
        cfg_dict = dict(MODEL_CONFIGS[model_id])
        if self.args.smoke:
            cfg_dict.update({k: v for k, v in SMOKE_MODEL_OVERRIDES.items() if k in cfg_dict})
        with tempfile.TemporaryDirectory() as folder:  # read as a checkpoint's config.json is read
            (Path(folder) / "config.json").write_text(json.dumps(cfg_dict), encoding="utf-8")
            config = AutoConfig.from_pretrained(folder)
        common = {"model": model_id, "transformers": transformers.__version__}
        peak_bw = (self.peaks or {}).get("hbm_tbps")
        peak_bf16 = (self.peaks or {}).get("bf16")

        self.free()
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() if self.device == "cuda" else 0
        torch.manual_seed(0)
        t0 = time.perf_counter()
        with torch.device(self.device):  # parameters are created and randomly initialised on the device
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.eval()
        self.sync()
        build_s = time.perf_counter() - t0
        n_params = sum(p.numel() for p in model.parameters())
        param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        buffer_bytes = sum(b.numel() * b.element_size() for b in model.buffers())
        weights_alloc = (torch.cuda.memory_allocated() - base) if self.device == "cuda" else param_bytes + buffer_bytes
        common["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
        published = PUBLISHED_PARAMS.get(model_id)
        self.row(f"model-memory-{slug}-weights", "model_memory", "bf16", shape, weights_alloc / 2**30, "GiB",
                 bytes=int(weights_alloc), params=int(n_params), param_bytes=int(param_bytes),
                 buffer_bytes=int(buffer_bytes), published_params=None if self.args.smoke else published,
                 build_s=round(build_s, 1),
                 note="torch.cuda.memory_allocated() after building the model on the GPU (random bf16 weights)",
                 **common)
        self.log(f"  built {model_id}: {n_params / 1e9:.3f} B parameters, {weights_alloc / 2**30:.2f} GiB, "
                 f"{build_s:.1f} s")
        vocab = int(config.vocab_size)
        gen = torch.Generator(device=self.device).manual_seed(1)
        ids = torch.randint(0, vocab, (1, prompt), device=self.device, generator=gen)

        with torch.inference_mode():
            # prefill: one warm-up, then three timed, each into a fresh cache
            def prefill(cache: Any) -> Any:
                return model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)

            prefill(DynamicCache(config=model.config))
            self.sync()
            if self.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            ttfts = []
            held: dict[str, Any] = {}

            def timed_prefill() -> None:
                held["cache"] = DynamicCache(config=model.config)  # fresh and empty, created before the clock
                ttfts.append(self.elapsed_ms(lambda: held.__setitem__("out", prefill(held["cache"]))))

            for _ in range(3):
                timed_prefill()
            cache, out = held.pop("cache"), held.pop("out")
            ttft = median(ttfts)
            flops_prefill = 2.0 * n_params * prompt
            self.row(f"model-decode-{slug}-ttft", "model_decode", "bf16", shape, ttft, "ms",
                     fraction_of_peak(flops_prefill / (ttft * 1e-3) / 1e12, peak_bf16), times_ms=ttfts,
                     note="prefill of the prompt (one forward, logits of the last position), median of 3; "
                     "fraction_of_peak: 2 x parameters x prompt tokens over the time, against the bf16 peak",
                     **common)

            # eager decode, dynamic cache: events per step, no host synchronisation between steps
            tok = out.logits[:, -1:].argmax(-1)
            first_token = tok.clone()
            eager_tokens = torch.empty(new, dtype=torch.long, device=self.device)
            steps_ms: list[float] = []
            if self.device == "cuda":
                events = [torch.cuda.Event(enable_timing=True) for _ in range(new + 1)]
                events[0].record()
                for i in range(new):
                    o = model(input_ids=tok, past_key_values=cache, use_cache=True, logits_to_keep=1)
                    tok = o.logits[:, -1:].argmax(-1)
                    events[i + 1].record()
                    eager_tokens[i] = tok[0, 0]  # a device copy after the event: counted in the next step
                events[-1].synchronize()
                steps_ms = [events[i].elapsed_time(events[i + 1]) for i in range(new)]
            else:
                for i in range(new):
                    t1 = time.perf_counter()
                    o = model(input_ids=tok, past_key_values=cache, use_cache=True, logits_to_keep=1)
                    tok = o.logits[:, -1:].argmax(-1)
                    steps_ms.append((time.perf_counter() - t1) * 1e3)
                    eager_tokens[i] = tok[0, 0]
            peak_alloc = (torch.cuda.max_memory_allocated() - base) if self.device == "cuda" else None
            kv_bytes, kv_tokens = _cache_bytes(cache)
            kv_per_token = kv_bytes / kv_tokens if kv_tokens else None
            tpot = median(steps_ms)
            decode_note = ("fraction_of_peak: weight bytes over the time, against the HBM peak (the weight-streaming "
                           "bound of batch-1 decode)")
            self.row(f"model-decode-{slug}-tpot-eager", "model_decode", "bf16", shape, tpot, "ms",
                     fraction_of_peak(param_bytes / (tpot * 1e-3) / 1e12, peak_bw),
                     tokens_per_s=round(1e3 / tpot, 2), mean_ms=round(statistics.fmean(steps_ms), 4),
                     p90_ms=round(sorted(steps_ms)[int(0.9 * (len(steps_ms) - 1))], 4),
                     cache="DynamicCache", timing="eager, CUDA events per step" if self.device == "cuda" else "eager",
                     note="median time per output token of a batch-1 decode after the prompt, transformers eager "
                     "(includes its Python overhead); " + decode_note, **common)
            if peak_alloc is not None:
                self.row(f"model-memory-{slug}-peak", "model_memory", "bf16", shape, peak_alloc / 2**30, "GiB",
                         bytes=int(peak_alloc), note="torch.cuda.max_memory_allocated() over prefill and decode, "
                         "less what was allocated before the model was built", **common)
            self.row(f"model-memory-{slug}-kv-per-token", "model_memory", "bf16", shape, kv_per_token,
                     "bytes/token", kv_cache_bytes=int(kv_bytes), kv_tokens=int(kv_tokens),
                     note="sum of the key and value tensors of every layer of the DynamicCache after the decode, "
                     "over the tokens it holds", **common)
            self.log(f"  TTFT {ttft:.2f} ms, TPOT eager {tpot:.3f} ms, KV {kv_per_token} B/token")
            cache = out = o = tok = None  # the dynamic cache is not needed any more
            self.free()

            # decode replayed from a CUDA graph: static cache, one captured step that feeds its own argmax back.
            # Without CUDA (--smoke --device cpu) the same static-cache step runs eagerly, to check the code.
            rid = f"model-decode-{slug}-tpot-graph"
            graph = self.device == "cuda"
            if not self.budget.allows(15.0):
                self.row(rid, "model_decode", "bf16", shape, None, "ms",
                         skipped=f"time budget ({self.budget.left():.0f} s left)", **common)
            else:
                try:
                    tpot_g, times_g, static_tokens, static_first, cache_len = self._static_decode(
                        model, StaticCache, ids, prompt, new, graph=graph)
                    same = _common_prefix(eager_tokens.tolist(), static_tokens.tolist())
                    self.row(rid, "model_decode", "bf16", shape, tpot_g, "ms",
                             fraction_of_peak(param_bytes / (tpot_g * 1e-3) / 1e12, peak_bw),
                             tokens_per_s=round(1e3 / tpot_g, 2), mean_ms=round(statistics.fmean(times_g), 4),
                             p90_ms=round(sorted(times_g)[int(0.9 * (len(times_g) - 1))], 4),
                             cache="StaticCache",
                             timing="CUDA graph replay, CUDA events per step" if graph else
                             "eager static-cache steps (no CUDA graph without CUDA)",
                             check={"cache_length_after": cache_len, "expected": prompt + new,
                                    "pass": cache_len == prompt + new},
                             same_first_token_as_eager=bool(torch.equal(first_token, static_first)),
                             tokens_matching_eager=same, tokens_compared=new,
                             note=("median time per output token, one decode step captured in a CUDA graph and "
                                   "replayed (no Python overhead)" if graph else
                                   "median time per output token of the static-cache step run eagerly (smoke run "
                                   "without CUDA: checks the code, not a speed)") +
                             "; check: every step advanced the static cache by one token, from the prompt; "
                             "tokens_matching_eager: leading generated tokens identical to the eager decode's "
                             "(with random weights a weak check either way); " +
                             decode_note, **common)
                    self.log(f"  TPOT {'graph' if graph else 'static eager'} {tpot_g:.3f} ms, "
                             f"{same}/{new} tokens as eager")
                except Exception as exc:  # noqa: BLE001
                    self.row(rid, "model_decode", "bf16", shape, None, "ms",
                             error=f"{type(exc).__name__}: {str(exc)[:300]}", **common)
                    self.log(f"  static/graph decode failed: {type(exc).__name__}: {str(exc)[:200]}")
        # the model is freed when this returns (Run.step empties the CUDA cache after every step)

    def _static_decode(self, model: Any, static_cache_cls: Any, ids: Any, prompt: int, new: int, graph: bool
                       ) -> tuple[float, list[float], Any, Any, int]:
        """(median ms per step, ms per step, the `new` tokens, the first token, the cache length after the
        decode) of a static-cache decode: the length must be prompt + new if every step advanced the cache once.

        The prompt is prefilled into a StaticCache; the decode step reads its input token from one tensor and
        writes its argmax back into it, and takes its position from the cache's device-side length, which every
        step advances: so the captured step can be replayed `new` times. Warm-up steps run on a side stream before
        capture, as torch.cuda.graph asks; they are undone by starting again from a fresh prefill.
        """
        torch = self.torch
        warm = 3

        def prefill() -> tuple[Any, Any]:
            cache = static_cache_cls(config=model.config, max_cache_len=prompt + new + 8)
            out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
            return cache, out.logits[:, -1:].argmax(-1)  # (1, 1) int64: the step's static input

        cache, tok = prefill()
        first = tok.clone()
        tokens = torch.empty(new, dtype=torch.long, device=self.device)

        def step() -> None:
            o = model(input_ids=tok, past_key_values=cache, use_cache=True, logits_to_keep=1)
            tok.copy_(o.logits[:, -1:].argmax(-1))

        cuda_graph = None
        if graph:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(warm):
                    step()
            torch.cuda.current_stream().wait_stream(side)
            torch.cuda.synchronize()
            cuda_graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(cuda_graph):
                step()
        else:
            for _ in range(warm):  # the same steps as the warm-up before a capture, so the reset below is tested
                step()
        # the warm-up steps moved the cache on: reset it to the prompt, in place (a captured graph holds the
        # addresses of the cache tensors and of `tok`)
        fresh_cache, fresh_tok = prefill()
        for layer, fresh in zip(cache.layers, fresh_cache.layers, strict=True):
            layer.keys.copy_(fresh.keys)
            layer.values.copy_(fresh.values)
            layer.cumulative_length.copy_(fresh.cumulative_length)
        tok.copy_(fresh_tok)
        del fresh_cache, fresh_tok
        if cuda_graph is None:
            times = []
            for i in range(new):
                t1 = time.perf_counter()
                step()
                times.append((time.perf_counter() - t1) * 1e3)
                tokens[i] = tok[0, 0]
            return median(times), times, tokens, first, int(cache.layers[0].cumulative_length)

        torch.cuda.synchronize()
        events = [torch.cuda.Event(enable_timing=True) for _ in range(new + 1)]
        events[0].record()
        for i in range(new):
            cuda_graph.replay()
            events[i + 1].record()
            tokens[i] = tok[0, 0]  # a device copy after the event: counted in the next step
        events[-1].synchronize()
        times = [events[i].elapsed_time(events[i + 1]) for i in range(new)]
        return median(times), times, tokens, first, int(cache.layers[0].cumulative_length)

    def models_step(self) -> None:
        for model in self.args.models:
            est = estimate_plan_s(self.args.smoke, [model])[f"model:{model}"]
            self.step(f"model:{model}", est, lambda m=model: self.model_step(m),
                      on_skip=lambda reason, m=model: self.model_rows_failed(m, "skipped", reason))
            name = f"model:{model}"
            if self.steps.get(name, {}).get("status") == "error":
                self.model_rows_failed(model, "error", self.steps[name]["error"])
                self.write()


def _common_prefix(a: list[Any], b: list[Any]) -> int:
    """How many leading items two sequences share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _model_slug(model_id: str) -> str:
    return model_id.split("/")[-1].lower().replace(".", "-")


def _cache_bytes(cache: Any) -> tuple[int, int]:
    """(bytes of every key and value tensor, tokens held) of a transformers cache (v5 `layers` or legacy)."""
    total, tokens = 0, 0
    layers = getattr(cache, "layers", None)
    pairs: list[tuple[Any, Any]] = []
    if layers is not None:
        pairs = [(getattr(layer, "keys", None), getattr(layer, "values", None)) for layer in layers]
    elif hasattr(cache, "key_cache"):
        pairs = list(zip(cache.key_cache, cache.value_cache, strict=True))
    for k, v in pairs:
        for t in (k, v):
            if t is not None and hasattr(t, "numel") and t.numel():
                total += t.numel() * t.element_size()
        if k is not None and hasattr(k, "shape") and len(k.shape) >= 2:
            tokens = max(tokens, int(k.shape[-2]))
    return total, tokens


def _driver_version() -> str:
    """The NVIDIA driver version: nvidia-smi, else NVML, else 'unknown'."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout.strip()
        if out:
            return out.splitlines()[0].strip()
    except Exception:  # noqa: BLE001
        pass
    try:
        import pynvml  # noqa: PLC0415

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # noqa: BLE001
        return "unknown"


def _cuda_driver_api(torch: Any) -> str | None:
    """The CUDA version the driver supports (e.g. '13.0'), where torch exposes it."""
    getter = getattr(torch._C, "_cuda_getDriverVersion", None)
    if getter is None:
        return None
    try:
        v = int(getter())
        return f"{v // 1000}.{(v % 1000) // 10}"
    except Exception:  # noqa: BLE001
        return None


# --------------------------------------------------------------------------------------------- command line
def plan_text(args: argparse.Namespace) -> str:
    """The dry-run plan: steps, shapes, precisions and estimated seconds."""
    est = estimate_plan_s(args.smoke, args.models)
    cases = matmul_cases(args.smoke)
    total = sum(v for k, v in est.items() if k == "identity" or k in args.steps or
                (k.startswith("model:") and "models" in args.steps))
    nbytes = SMOKE_BANDWIDTH_BYTES if args.smoke else BANDWIDTH_BYTES
    prompt, new = (SMOKE_PROMPT_TOKENS, SMOKE_NEW_TOKENS) if args.smoke else (PROMPT_TOKENS, NEW_TOKENS)
    lines = [f"device_measure plan{' (smoke: tiny shapes)' if args.smoke else ''}: device {args.device}, "
             f"budget {args.budget:.0f} s, steps {', '.join(args.steps)}"]
    lines.append(f"1. identity (~{est['identity']:.0f} s): device name, torch.cuda.mem_get_info total (bytes, GiB), "
                 "driver, CUDA, SM count, L2, date (UTC)")
    lines.append(f"2. matmul (~{est['matmul']:.0f} s): {len(cases)} shapes x {len(PRECISIONS)} precisions "
                 f"= {len(cases) * len(PRECISIONS)} rows, TFLOPS and fraction of the dense peak")
    lines.append("   precisions: bf16 torch.matmul; fp8 e4m3 torch._scaled_mm (per-tensor fp32 scales, bf16 out), "
                 "without and with use_fast_accum; int8 torch._int_mm (int32 out; M <= 16 timed at M=32)")
    decode = [c for c in cases if c[0] <= 128]
    prefill = [c for c in cases if c[0] > 128]
    lines.append("   decode-like (M N K): " + ", ".join(f"{m} {n} {k}" for m, n, k in decode))
    lines.append("   prefill-like (M N K): " + ", ".join(f"{m} {n} {k}" for m, n, k in prefill))
    lines.append("   timing: warm-up, then median of 7 CUDA-event regions of >= 2 ms (CUDA graph below 50 us a "
                 "call); weights rotated through copies totalling >= 4 x L2; correctness checked at "
                 f"M N K = {' '.join(map(str, CHECK_MNK))}")
    if "bandwidth" in args.steps:
        lines.append(f"3. bandwidth (~{est['bandwidth']:.0f} s): {nbytes / 2**30:g} GiB bf16 tensor: "
                     "copy (read + write), torch.sum (read), fill_ (write); GB/s and fraction of the HBM peak")
    if "models" in args.steps:
        for i, model in enumerate(args.models):
            lines.append(f"{4 + i}. model {model} (~{est['model:' + model]:.0f} s): from config.json, random bf16 "
                         f"weights on the GPU; weights and peak memory, KV bytes/token, TTFT at a {prompt}-token "
                         f"prompt, TPOT of {new} batch-1 decode steps (eager DynamicCache; CUDA-graph StaticCache)")
    peaks = PEAKS["H200"]
    lines.append(f"H200 dense peaks: bf16 {peaks['bf16']}, fp8 {peaks['fp8']}, int8 {peaks['int8']} TFLOPS, "
                 f"HBM {peaks['hbm_tbps']} TB/s ({peaks['source']})")
    lines.append(f"estimated total: ~{total:.0f} s of the {args.budget:.0f} s budget; steps that no longer fit are "
                 "skipped and written with 'skipped'")
    lines.append(f"output: {args.out or '(none: --out not given)'}, rewritten after every step")
    return "\n".join(lines)


def summary_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'id':80s} {'value':>12s} {'unit':12s} {'frac':>6s}"]
    for r in rows:
        if r.get("error") or r.get("skipped"):
            status = "ERROR" if r.get("error") else "skipped"
            lines.append(f"{r['id'][:80]:80s} {status:>12s}")
            continue
        frac = "" if r["fraction_of_peak"] is None else f"{r['fraction_of_peak']:.3f}"
        lines.append(f"{r['id'][:80]:80s} {r['value']:12.4g} {r['unit']:12s} {frac:>6s}")
    return "\n".join(lines)


STEP_NAMES = ("identity", "matmul", "bandwidth", "models")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="device_measure.py",
        description="Measure a GPU (matmul rate by precision and shape, HBM bandwidth, a catalog model's memory and "
        "batch-1 decode speed) and write each figure as a sourced row. Needs torch and transformers only for a run; "
        "--dry-run and --check need neither.",
    )
    p.add_argument("--out", help="rows file to write (YAML, or JSON where PyYAML is missing), e.g. "
                   "$OUT/device_rows.yaml")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S,
                   help=f"hard wall-clock budget in seconds, checked between steps (default {DEFAULT_BUDGET_S:.0f})")
    p.add_argument("--dry-run", action="store_true", help="print the plan and its estimated time; import no torch")
    p.add_argument("--check", metavar="FILE", help="validate a rows file (fields, kinds, units, positive numbers) "
                   "and exit 0 if valid, 1 if not; imports no torch")
    p.add_argument("--steps", default=",".join(STEP_NAMES),
                   help=f"comma-separated steps to run, of {', '.join(STEP_NAMES)} (identity always runs)")
    p.add_argument("--models", default=",".join(MODEL_CONFIGS),
                   help="comma-separated catalog models, in order (the second is skipped if time is short)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny shapes and a 2-layer model, to check the code (with --device cpu: no GPU needed)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cuda (default), or cpu with --smoke")
    args = p.parse_args(argv)
    args.steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [s for s in args.steps if s not in STEP_NAMES]
    if unknown:
        p.error(f"unknown step(s): {', '.join(unknown)}")
    bad = [m for m in args.models if m not in MODEL_CONFIGS]
    if bad:
        p.error(f"unknown model(s): {', '.join(bad)}; known: {', '.join(MODEL_CONFIGS)}")
    if args.device == "cpu" and not args.smoke:
        p.error("--device cpu only with --smoke (the full shapes are sized for a GPU)")
    if args.budget <= RESERVE_S:
        p.error(f"--budget must exceed {RESERVE_S:.0f} s")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.check:
        try:
            rows = load_rows(Path(args.check))
        except (OSError, ValueError) as exc:
            print(f"check: cannot read {args.check}: {exc}")
            return 1
        problems = check_rows(rows)
        failed = sum(1 for r in rows if isinstance(r, dict) and (r.get("error") or r.get("skipped")))
        if problems:
            print(f"check: {len(problems)} problem(s) in {args.check}:")
            for problem in problems:
                print(f"  - {problem}")
            return 1
        print(f"check: {args.check} is valid: {len(rows)} rows ({len(rows) - failed} measured, "
              f"{failed} with error or skipped)")
        return 0
    if args.dry_run:
        print(plan_text(args))
        return 0

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: configs are embedded
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    run = Run(args)
    print(plan_text(args), flush=True)
    run.step("identity", 0.0, run.identity_step)
    if run.steps["identity"]["status"] != "ok":
        run.write()
        print("identity step failed: nothing else can be measured", flush=True)
        return 2
    est = estimate_plan_s(args.smoke, args.models)
    if "matmul" in args.steps:
        # cases are checked one by one against the budget less what the later steps need, so the matmul grid
        # can never eat the time of the bandwidth and model steps
        run.later_s = sum(v for k, v in est.items() if (k == "bandwidth" and "bandwidth" in args.steps) or
                          (k.startswith("model:") and "models" in args.steps))
        run.step("matmul", 5.0, run.matmul_step, on_skip=run.matmul_skipped)
        run.later_s = 0.0
    if "bandwidth" in args.steps:
        run.step("bandwidth", est["bandwidth"], run.bandwidth_step, on_skip=run.bandwidth_skipped)
    if "models" in args.steps:
        run.models_step()
    run.write()
    print(summary_table(run.rows), flush=True)
    problems = check_rows(run.rows)
    failed_checks = [r["id"] for r in run.rows if isinstance(r.get("check"), dict) and not r["check"].get("pass")]
    if failed_checks:
        print(f"correctness check FAILED in {len(failed_checks)} row(s): {', '.join(failed_checks)}", flush=True)
    measured = sum(1 for r in run.rows if not (r.get("error") or r.get("skipped")))
    print(f"{measured} of {len(run.rows)} rows measured in {run.budget.elapsed():.0f} s; "
          f"{len(problems)} check problem(s){': ' + '; '.join(problems[:5]) if problems else ''}; "
          f"written to {args.out or '(nowhere: no --out)'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

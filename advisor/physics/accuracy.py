"""How far the speed model is from published measurements (knowledge/perf_measurements.yaml).

For each row, the model predicts the same metric at the same model, GPU count, runtime, precision and
shape. Offline throughput runs queue thousands of requests; a server can only run as many at once as fit
in memory, so the modelled concurrency is the smaller of the two (the memory model's max concurrency).
"""

from __future__ import annotations

import zlib
from typing import Any

from pydantic import BaseModel, ConfigDict

from advisor.errors import AdvisorInputError
from advisor.knowledge import load_knowledge
from advisor.knowledge.schema import GPU, Knowledge, KVFormat, PerfMeasurement, RuntimeSpeed
from advisor.physics.estimate import EstimateRequest, estimate

TARGETS = {  # issue 5: TTFT and batch-1 decode within 25%, aggregate throughput at high concurrency within 35%
    "ttft_ms": 25.0,
    "tpot_ms": 25.0,
    "decode_tokens_per_s": 25.0,
    "prefill_tokens_per_s": 25.0,
    "throughput_tokens_per_s": 35.0,
}


class Check(BaseModel):
    row: str
    metric: str
    published: float
    modelled: float | None
    error_pct: float | None  # (modelled - published) / published
    concurrency_used: int | None
    note: str = ""

    @property
    def within_target(self) -> bool:
        return self.error_pct is not None and abs(self.error_pct) <= TARGETS[self.metric]


def predict(row: PerfMeasurement, knowledge: Knowledge | None = None) -> Check:
    k = knowledge or load_knowledge()
    context = row.prompt_tokens + row.output_tokens
    base = dict(model=row.model, weights=row.weights, kv=row.kv, context=context, gpu=row.gpu, gpus=row.gpus,
                runtime=row.runtime, prompt_tokens=row.prompt_tokens, output_tokens=row.output_tokens,
                activations=row.activations)
    note = ""
    concurrency = row.concurrency
    try:
        if row.metric == "throughput_tokens_per_s":
            room = estimate(EstimateRequest(**base, concurrency=1), k).max_concurrency or 0
            if room < 1:
                return Check(row=row.id, metric=row.metric, published=row.value, modelled=None, error_pct=None,
                             concurrency_used=0, note="does not fit in memory in our model")
            if room < concurrency:
                note = f"{concurrency} requests queued; {room} fit at once"
                concurrency = room
        perf = estimate(EstimateRequest(**base, concurrency=concurrency, perf=True), k).performance
    except AdvisorInputError as exc:
        return Check(row=row.id, metric=row.metric, published=row.value, modelled=None, error_pct=None,
                     concurrency_used=None, note=str(exc))
    assert perf is not None
    modelled = {
        "ttft_ms": perf.ttft_ms,
        "tpot_ms": perf.tpot_ms,
        "decode_tokens_per_s": perf.decode_tokens_per_s,
        "prefill_tokens_per_s": row.prompt_tokens / perf.prefill.seconds,
        "throughput_tokens_per_s": perf.throughput_tokens_per_s,
    }[row.metric]
    return Check(row=row.id, metric=row.metric, published=row.value, modelled=modelled,
                 error_pct=100 * (modelled - row.value) / row.value, concurrency_used=concurrency, note=note)


def check_all(knowledge: Knowledge | None = None) -> list[Check]:
    k = knowledge or load_knowledge()
    return [predict(row, k) for row in k.perf_measurements.values()]


# --------------------------------------------------------------------------- held-out calibration
def held_out(row_id: str) -> bool:
    """Whether a measurement belongs to the held-out third: a stable hash of its id, never its value, so the split
    does not move when rows are added and nobody picks it. The speed constants are fitted on the other rows."""
    return zlib.crc32(row_id.encode()) % 3 == 0


def source_of(row: PerfMeasurement) -> str:
    """The publication a row comes from (its URL without the anchor), for leave-one-source-out checks."""
    return row.source.split("#")[0].split(" ")[0] if isinstance(row.source, str) else str(row.source[0])


class Prepared(BaseModel):
    """One measurement with everything the speed model needs except the runtime's constants."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    row: PerfMeasurement
    cost: Any  # ModelCost
    kv: KVFormat
    gpu: GPU
    activations: str
    weight_only: bool
    concurrency: int
    chunk_tokens: int | None = None  # the runtime's prompt tokens per pass on this GPU
    note: str = ""


def prepare(row: PerfMeasurement, k: Knowledge) -> Prepared | None:
    """The inputs :func:`advisor.physics.performance.speed` takes for this row (None: it cannot be modelled)."""
    from advisor.intake.catalog import resolve_model
    from advisor.physics.estimate import default_activations, resolve_layout
    from advisor.physics.performance import ModelCost, chunk_tokens_for

    check = predict(row, k)
    if check.modelled is None:
        return None
    model = resolve_model(k, row.model)
    _, layout = resolve_layout(k, model, row.weights, None)
    gpu = k.gpus[row.gpu]
    activations = row.activations or default_activations(k, layout, gpu)
    quantized = any(st.quantized for g, st in layout.groups.items() if g in ("attention", "mlp", "experts"))
    return Prepared(row=row, cost=ModelCost(model.architecture, layout), kv=k.kv_formats[row.kv], gpu=gpu,
                    activations=activations, weight_only=quantized and activations in ("bf16", "fp16"),
                    concurrency=check.concurrency_used or row.concurrency, note=check.note,
                    chunk_tokens=chunk_tokens_for(k.runtimes[row.runtime].memory, gpu, row.gpus))


def modelled(p: Prepared, rt: RuntimeSpeed) -> float:
    """The speed model's figure for the row's metric with runtime constants `rt`."""
    from advisor.physics.performance import speed

    r = p.row
    perf = speed(p.cost, p.kv, p.gpu, r.gpus, p.activations, p.weight_only, r.prompt_tokens, r.output_tokens,
                 p.concurrency, rt, chunk_tokens=p.chunk_tokens)
    return {
        "ttft_ms": perf.ttft_ms,
        "tpot_ms": perf.tpot_ms,
        "decode_tokens_per_s": perf.decode_tokens_per_s,
        "prefill_tokens_per_s": r.prompt_tokens / perf.prefill.seconds,
        "throughput_tokens_per_s": perf.throughput_tokens_per_s,
    }[r.metric]


def regime(row: PerfMeasurement) -> str:
    """The band a figure belongs to: prefill (TTFT, prompt tokens/s), decode (time per token or tokens/s of one
    request) or throughput (all requests)."""
    if row.metric in ("ttft_ms", "prefill_tokens_per_s"):
        return "prefill"
    if row.metric in ("tpot_ms", "decode_tokens_per_s"):
        return "decode"
    return "throughput"

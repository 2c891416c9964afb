"""How far the speed model is from published measurements (knowledge/perf_measurements.yaml).

For each row, the model predicts the same metric at the same model, GPU count, runtime, precision and
shape. Offline throughput runs queue thousands of requests; a server can only run as many at once as fit
in memory, so the modelled concurrency is the smaller of the two (the memory model's max concurrency).
"""

from __future__ import annotations

from pydantic import BaseModel

from advisor.errors import AdvisorInputError
from advisor.knowledge import load_knowledge
from advisor.knowledge.schema import Knowledge, PerfMeasurement
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

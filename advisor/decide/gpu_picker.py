"""GPU picker: for one model and endpoint, every catalog GPU kind and count that fits, ranked by cost per
million output tokens among those that meet the speed targets, each with the deployment the same search
recommends there (precision, runtime, layout) and its numbers."""

from __future__ import annotations

from pydantic import BaseModel

from advisor.decide.engine import recommend
from advisor.errors import AdvisorInputError
from advisor.intake.catalog import model_from_config, resolve_model
from advisor.intake.request import Request
from advisor.knowledge import load_knowledge
from advisor.knowledge.schema import Knowledge
from advisor.physics.architecture import tensor_inventory

GPU_COUNTS = (1, 2, 4, 8)


class GPUOption(BaseModel):
    gpu: str
    gpu_name: str
    gpus: int
    notation: str
    candidate: str
    kv: str
    runtime: str
    tensor_parallel: int
    replicas: int
    expected_recovery_pct: float
    speed_measured: bool  # published measurements back the runtime's speed at this concurrency and GPU count
    total_gib_per_gpu: float
    capacity_gib_per_gpu: float
    ttft_ms: float | None
    tpot_ms: float | None
    throughput_tokens_per_s: float | None
    usd_per_gpu_hour: float | None
    cost_per_million_tokens: float | None


def pick_gpus(
    request: Request,
    knowledge: Knowledge | None = None,
    counts: tuple[int, ...] = GPU_COUNTS,
    gpu_ids: list[str] | None = None,
) -> list[GPUOption]:
    """For each GPU kind, the fewest GPUs (of `counts`) that fit the endpoint and meet its targets, with the
    deployment the search recommends there; cheapest per million output tokens first (unpriced ones last). More
    GPUs of a kind that already serves the endpoint are not tried: that bounds the work to about one search per
    kind for a model that fits one GPU (a recommendation for a chosen count comes from the Plan page)."""
    k = knowledge or load_knowledge()
    if len(request.endpoints) != 1:
        raise AdvisorInputError("endpoints", "the GPU picker takes one endpoint")
    model = (model_from_config(request.custom_model, name=request.model, where=f"config.json of {request.model}")
             if request.custom_model is not None else resolve_model(k, request.model, field="model",
                                                                             revision=request.model_revision))
    # No candidate stores a weight in fewer bits than the smallest scheme in the catalog (IQ2_M's 2.93), nor a
    # published checkpoint in fewer bytes than it has: a count whose memory cannot hold that is not searched.
    used = {c.weights for c in k.candidates.values()}
    min_bits = min((s.element_bits for s in k.schemes.values() if s.id in used and s.element_bits), default=1.0)
    floor_bytes = sum(t.params for t in tensor_inventory(model.architecture)) * min(min_bits, 16) / 8
    if model.native.checkpoint_bytes:
        floor_bytes = min(floor_bytes, model.native.checkpoint_bytes)
    options = []
    for gpu_id in gpu_ids or list(k.gpus):
        stop = False
        for n in sorted(counts):
            if stop:
                break
            if floor_bytes > n * k.gpus[gpu_id].memory_gib * 2**30:
                continue
            # A price override is for the request's own GPU kind; the others use their list prices.
            price = request.usd_per_gpu_hour if gpu_id == request.gpu else None
            # one node of n GPUs: the picker compares GPU kinds and counts, not clusters
            trial = request.model_copy(update={"gpu": gpu_id, "gpus": n, "nodes": 1, "usd_per_gpu_hour": price})
            try:
                result = recommend(trial, k, detail=False, model=model)
            except AdvisorInputError:  # e.g. this count cannot split the attention heads
                continue
            er = result.endpoints[0]
            if not er.fits or er.pick is None or er.pick.memory is None:
                continue
            stop = True  # this kind serves the endpoint at n GPUs: the next counts are not tried
            pick, perf = er.pick, er.pick.performance
            gib = 2**30
            options.append(
                GPUOption(
                    gpu=gpu_id,
                    gpu_name=k.gpus[gpu_id].name,
                    gpus=n,
                    notation=f"{k.candidates[pick.candidate].notation} KV-{pick.kv.upper()}",
                    candidate=pick.candidate,
                    kv=pick.kv,
                    runtime=pick.runtime,
                    tensor_parallel=pick.layout.tensor_parallel,
                    replicas=pick.layout.replicas,
                    expected_recovery_pct=round(pick.quality.expected_recovery_pct, 2),
                    speed_measured=bool(pick.metrics.get("speed_measured")),
                    total_gib_per_gpu=round(pick.memory.total_bytes_per_gpu / gib, 2),
                    capacity_gib_per_gpu=round(pick.memory.capacity_bytes_per_gpu / gib, 2),
                    ttft_ms=perf.ttft_ms if perf else None,
                    tpot_ms=perf.tpot_ms if perf else None,
                    throughput_tokens_per_s=perf.throughput_tokens_per_s if perf else None,
                    usd_per_gpu_hour=perf.usd_per_gpu_hour if perf else None,
                    cost_per_million_tokens=perf.cost_per_million_tokens if perf else None,
                )
            )
    return sorted(
        options,
        key=lambda o: (o.cost_per_million_tokens is None, o.cost_per_million_tokens or 0, o.gpus, o.tpot_ms or 0),
    )

"""The second search pass (every runtime, when nothing measured serves the endpoint) starts from the first runtime
the measured-only pass may have skipped options of; its outcome is the one a full search from the start gives."""

import pytest

from advisor.decide.context import EndpointContext
from advisor.decide.engine import recommend
from advisor.decide.search import Outcome, search
from advisor.intake.catalog import resolve_model
from advisor.intake.request import Endpoint, Request, resolve_gpu, resolve_shape
from advisor.knowledge import load_knowledge

CASES = [  # (model, GPU, GPUs, workload): requests the measured-only pass leaves without a feasible option
    ("meta-llama/Llama-3.1-8B-Instruct", "rtx-3060-12gb", 1, "long-context-rag"),
    ("meta-llama/Llama-3.1-405B-Instruct", "h100-sxm", 1, "interactive-chat"),
    ("meta-llama/Llama-3.1-405B-Instruct", "rtx-4090", 1, "classification"),
    ("meta-llama/Llama-3.1-405B-Instruct", "l4", 2, "batch-summarization"),
    ("meta-llama/Llama-3.1-405B-Instruct", "a30", 4, "code-generation"),
]


def _context(model: str, gpu: str, gpus: int, workload: str) -> EndpointContext:
    k = load_knowledge()
    request = Request(model=model, gpu=gpu, gpus=gpus, endpoints=[Endpoint(workload=workload)])
    return EndpointContext(k, request, resolve_model(k, model), resolve_gpu(request, k),
                           resolve_shape(request, request.endpoints[0], k))


def _state(out: Outcome) -> dict:
    return {
        "feasible": [(d.key, d.concurrency, d.metrics) for d in out.feasible],
        "gated": [(d.key, d.concurrency, d.metrics) for d in out.gated],
        "misses": [(m.cand.id, m.kv.id, m.runtime.id, m.layout, m.fit) for m in out.memory_misses],
        "attempts": [(c, a.kv, a.runtime, a.layout, [r.text for r in a.reasons], a.closeness)
                     for c, a in out.attempts.items()],
        "evaluated": out.evaluated, "skipped": out.skipped, "single_node": out.single_node, "seq": out.seq,
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_the_second_pass_resumes_where_the_first_may_have_skipped(case):
    first = search(_context(*case), measured_only=True)
    assert not first.feasible and first.skipped and first.resume is not None and first.resume[0] > 0
    resumed = search(_context(*case), resume=first.resume)
    assert _state(resumed) == _state(search(_context(*case)))


def test_when_the_measured_pass_serves_the_endpoint_it_is_the_answer():
    # one H100 serving the default chat: measurements back vLLM there, so no second pass runs
    out = search(_context("meta-llama/Llama-3.1-8B-Instruct", "h100-sxm", 1, "interactive-chat"), measured_only=True)
    assert out.feasible and out.feasible[0].runtime == "vllm"
    result = recommend(Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="h100-sxm"))
    assert result.endpoints[0].evaluated == out.evaluated

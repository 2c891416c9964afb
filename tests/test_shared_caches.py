"""Caches shared across requests (per model and GPU, per quality signature, per gate-rule signature) carry every
input their answers depend on: the same requests give the same plans whatever ran before them."""

import sys
import threading

import pytest

from advisor.decide.engine import recommend
from advisor.intake.request import Endpoint, Request
from advisor.knowledge import derived, load_knowledge
from advisor.knowledge.loader import KNOWLEDGE_DIR, load_knowledge_from

CASES = [  # (model, GPU, GPUs, runtime): a dense model, a MoE model on two GPUs, consumer GPUs where llama.cpp (its
    # compute buffer, which without Flash Attention grows with the context) and partial offload count
    ("meta-llama/Llama-3.1-8B-Instruct", "l40s", 1, None),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "h100-sxm", 2, None),
    ("Qwen/Qwen2.5-14B-Instruct", "rtx-4090", 1, None),
    ("Qwen/Qwen2.5-14B-Instruct", "rtx-4090", 1, "llama.cpp"),
    ("meta-llama/Llama-3.1-70B-Instruct", "rtx-3090", 1, "llama.cpp"),
]


def _plans(k, model: str, gpu: str, gpus: int, runtime: str | None, workloads: list[str]) -> dict[str, str]:
    return {w: recommend(Request(model=model, gpu=gpu, gpus=gpus, runtime=runtime, endpoints=[Endpoint(workload=w)]),
                         k).model_dump_json() for w in workloads}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].split('/')[1]}-{c[1]}x{c[2]}-{c[3] or 'any'}")
def test_every_workload_plans_the_same_after_the_others_and_from_empty_caches(case):
    k = load_knowledge()
    workloads = list(k.workloads)
    warm = _plans(k, *case, workloads)  # each endpoint after the ones before it, on the same model and GPU
    fresh = load_knowledge_from(KNOWLEDGE_DIR)  # a new Knowledge: every derived cache starts empty
    assert fresh is not k
    cold = _plans(fresh, *case, workloads[::-1])
    assert list(warm) == workloads
    for workload in workloads:
        assert warm[workload] == cold[workload], workload


def test_a_model_and_gpu_cache_past_its_bound_is_emptied_before_the_next_request():
    k = load_knowledge_from(KNOWLEDGE_DIR)
    request = Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="l4", endpoints=[Endpoint(workload="classification")])
    first = recommend(request, k).model_dump_json()
    (host,) = derived(k, "hosts", dict).values()
    used = len(host.budgets)
    assert 0 < used < 4096
    host.budgets.update({("filler", i): None for i in range(4096)})  # as if asked for thousands of other contexts
    assert recommend(request, k).model_dump_json() == first
    assert len(host.budgets) == used  # emptied, then filled again by this request alone


def test_sessions_in_threads_plan_the_same_while_the_shared_caches_are_emptied(monkeypatch):
    """The app plans each session in its own thread; two sessions on the same model and GPU share its caches, and
    one may empty them (past their bound) while the other reads them."""
    from advisor.decide import context

    k = load_knowledge_from(KNOWLEDGE_DIR)
    case = ("Qwen/Qwen2.5-14B-Instruct", "rtx-4090", 1, None)
    workloads = list(k.workloads)
    alone = _plans(k, *case, workloads)
    monkeypatch.setattr(context, "HOST_CACHE_ENTRIES", 0)  # every request empties what the others are reading
    results, errors = [], []

    def session() -> None:
        try:
            results.append(_plans(k, *case, workloads))
        except Exception as exc:  # noqa: BLE001 - any failure in a thread is the test's failure
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns often, so a read can fall between another's two steps
    try:
        threads = [threading.Thread(target=session) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors and len(results) == 4, errors[:1]
    assert all(r == alone for r in results)

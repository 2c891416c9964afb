"""The garbage collector's pause around a recommendation (advisor/collector.py): it leaves the collector as it
found it, also after an error, only the main thread pauses, and a recommendation leaves no reference cycles behind."""

import gc
import threading

import pytest

from advisor.collector import paused
from advisor.decide.engine import recommend
from advisor.errors import AdvisorInputError
from advisor.intake.request import Endpoint, Request
from advisor.knowledge import load_knowledge


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_paused_restores_the_collector_also_after_an_error(collector_on):
    with paused():
        assert not gc.isenabled()
        with paused():  # nested
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_paused_leaves_a_disabled_collector_disabled(collector_on):
    gc.disable()
    with paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_other_threads_leave_the_collector_alone(collector_on):
    # a server planning in threads (Streamlit's sessions) must not switch the process's collector off
    seen = []

    def other():
        with paused():
            seen.append(gc.isenabled())

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(5)
    assert seen == [True]
    assert gc.isenabled()


def test_recommend_leaves_the_collector_on_and_no_reference_cycles(collector_on):
    k = load_knowledge()
    requests = [Request(model=model, gpu=gpu, endpoints=[Endpoint(workload=workload)])
                for model in ("meta-llama/Llama-3.1-8B-Instruct", "mistralai/Mixtral-8x7B-Instruct-v0.1")
                for gpu in ("h100-sxm", "rtx-4090") for workload in ("interactive-chat", "classification")]
    recommend(requests[0], k)  # warm the shared caches, which live as long as the process
    gc.collect()
    gc.disable()
    try:
        for request in requests:
            assert recommend(request, k).endpoints[0].pick is not None
        # everything a recommendation threw away was freed by reference counting: no cycle is left to collect
        assert gc.collect() == 0
    finally:
        gc.enable()
    with pytest.raises(AdvisorInputError):
        recommend(Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="h100-sxm",
                          endpoints=[Endpoint(workload="interactive-chat", context=10_000_000)]), k)
    assert gc.isenabled()


def test_a_recommendation_leaves_little_for_the_collector_to_walk():
    """What a recommendation returns is walked by the next collection: its deployments' fact dicts hold only strings,
    numbers and shared tuples, so CPython does not track them, and the models the engine builds share one set of
    field names instead of one each (advisor/fastmodel.py)."""
    k = load_knowledge()
    recommend(Request(model="Qwen/Qwen2.5-7B-Instruct", gpu="l40s", endpoints=[Endpoint(workload="classification")]), k)
    gc.collect()  # untracks the shared tuples the first request made, as any collection would
    result = recommend(Request(model="Qwen/Qwen2.5-7B-Instruct", gpu="l40s",
                               endpoints=[Endpoint(workload="interactive-chat")]), k)
    ranked = result.endpoints[0].ranked
    assert len(ranked) > 5
    assert not any(gc.is_tracked(d.facts) for d in ranked)
    assert len({id(d.memory.model_fields_set) for d in ranked}) == 1
    assert ranked[0].memory.model_fields_set == set(type(ranked[0].memory).model_fields)

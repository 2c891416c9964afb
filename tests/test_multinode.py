"""Multi-node serving (issue 12, part 4): `nodes` x `gpus` GPUs, tensor parallel inside a node, pipeline parallel
across nodes. Layouts, memory per GPU of the largest stage, the speed model's pipeline terms, the runtimes that can
and cannot span nodes, the per-node commands and the plan document."""

import math

import pytest

from advisor.cli import main
from advisor.decide import gates
from advisor.decide.context import EndpointContext
from advisor.decide.engine import recommend
from advisor.decide.result import Layout
from advisor.intake.catalog import resolve_model
from advisor.intake.request import Request, resolve_gpu, resolve_shape
from advisor.knowledge import load_knowledge
from advisor.physics import memory
from advisor.physics.estimate import EstimateRequest, estimate
from advisor.physics.performance import Pipeline, pipeline_for
from advisor.plan import document

K = load_knowledge()
L405 = "meta-llama/Llama-3.1-405B-Instruct"
DSV3 = "deepseek-ai/DeepSeek-V3"


def context(model: str, gpu: str = "h100-sxm", gpus: int = 8, nodes: int = 2, **endpoint) -> EndpointContext:
    req = Request(model=model, gpu=gpu, gpus=gpus, nodes=nodes, **({"endpoints": [endpoint]} if endpoint else {}))
    return EndpointContext(K, req, resolve_model(K, model), resolve_gpu(req, K), resolve_shape(req, req.endpoints[0], K))


@pytest.fixture(scope="module")
def plan_405b():
    """405B BF16 on 2 x 8 H100 SXM, priority quality (the highest expected accuracy: the 16-bit weights)."""
    req = Request(model=L405, gpu="h100-sxm", gpus=8, nodes=2, priority="quality", runtime="vllm")
    return recommend(req, K), document.build(req, K)


# --------------------------------------------------------------------------- layouts
def test_single_node_layouts_are_unchanged():
    arch = resolve_model(K, L405).architecture
    assert gates.layouts(arch, 8) == gates.layouts(arch, 8, 1) == [
        Layout(tensor_parallel=8, replicas=1), Layout(tensor_parallel=4, replicas=2),
        Layout(tensor_parallel=2, replicas=4), Layout(tensor_parallel=1, replicas=8)]
    assert Layout(tensor_parallel=8, replicas=1).words() == "tensor parallel 8"
    assert Layout(tensor_parallel=4, replicas=2).words() == "2 replicas of tensor parallel 4"


def test_multi_node_layouts_keep_tensor_parallel_inside_a_node():
    arch = resolve_model(K, L405).architecture
    lays = gates.layouts(arch, 8, 2)
    assert all(lay.gpus == 16 for lay in lays)
    assert all(lay.tensor_parallel <= 8 and lay.pipeline_parallel in (1, 2) for lay in lays)
    assert lays[0] == Layout(tensor_parallel=8, replicas=1, pipeline_parallel=2)  # most GPUs per replica first
    assert Layout(tensor_parallel=8, replicas=2) in lays  # replicas may span nodes, one per node
    assert Layout(tensor_parallel=4, replicas=2, pipeline_parallel=2) in lays
    assert lays[0].words() == "tensor parallel 8 x pipeline parallel 2 (2 nodes)"
    assert Layout(tensor_parallel=4, replicas=2, pipeline_parallel=2).words() == \
        "2 replicas of tensor parallel 4 x pipeline parallel 2 (2 nodes)"
    tiny = arch.model_copy(update={"num_layers": 3})
    assert all(lay.pipeline_parallel == 1 for lay in gates.layouts(tiny, 8, 4))  # never more stages than layers


def test_vllm_layer_partition():
    assert memory.pipeline_partition(126, 2) == (63, 63)
    assert memory.pipeline_partition(61, 2) == (31, 30)
    assert memory.pipeline_partition(61, 4) == (15, 15, 16, 15)  # vLLM's own documented example
    assert memory.pipeline_partition(22, 4) == (5, 6, 6, 5)
    assert memory.stage_layer_share(61, 2) == 31 / 61


# --------------------------------------------------------------------------- the decision and memory
def test_405b_bf16_on_two_nodes_picks_tp8_x_pp2(plan_405b):
    result, _ = plan_405b
    er = result.endpoints[0]
    assert er.fits
    pick = er.pick
    assert (pick.candidate, pick.kv) == ("bf16", "bf16")
    assert (pick.layout.tensor_parallel, pick.layout.pipeline_parallel, pick.layout.replicas) == (8, 2, 1)
    assert pick.memory.gpus == 16 and pick.facts["deploy.pp"] == 2
    # one node cannot hold it: the 16-bit weights alone overflow 8 GPUs
    one_node = gates.memory_fit(context(L405), K.candidates["bf16"], K.kv_formats["bf16"], K.runtimes["vllm"], 8, 16)
    assert not one_node.fits and one_node.kv_budget_bytes_per_gpu < 0
    assert any("Pipeline parallel over 2 nodes" in item.text for item in er.rationale)


def test_405b_memory_per_gpu_by_hand(plan_405b):
    result, _ = plan_405b
    fit = result.endpoints[0].pick.memory
    # Llama-3.1-405B: hidden 16,384, 126 layers, 128 heads / 8 KV heads of 128, MLP 53,248, vocabulary 128,256,
    # untied embeddings. Stage 0: layers 0-62 + embedding; stage 1: layers 63-125 + final norm + LM head (larger by
    # the final norm). BF16 = 2 bytes; matrices split over the 8 GPUs of a stage, norms replicated.
    h, inter, vocab = 16384, 53248, 128256
    layer_matrices = (2 * h * h + 2 * 8 * 128 * h + 3 * h * inter) * 2
    stage = 63 * layer_matrices + vocab * h * 2
    norms = (63 * 2 * h + h) * 2
    assert fit.weights_bytes_per_gpu == math.ceil(stage / 8) + norms == 50_735_316_992
    # KV: 63 of 126 layers, one of 8 KV heads per GPU, K and V of 128 BF16 values, 1,280 tokens x 16 sequences
    assert fit.kv_bytes_per_gpu == 16 * math.ceil(1280 * 126 * 2 * 128 * 2 * 63 / 126)
    assert fit.fits and fit.total_bytes_per_gpu <= fit.capacity_bytes_per_gpu


def test_tied_embeddings_sit_on_both_ends():
    arch = resolve_model(K, L405).architecture.model_copy(update={"tied_embeddings": True})
    layout = memory.build_layout(K.schemes["bf16"], K.formats)
    stages = memory.stage_weight_bytes(arch, layout, 2)
    embed = arch.vocab_size * arch.hidden_size * 2
    untied = memory.stage_weight_bytes(resolve_model(K, L405).architecture, layout, 2)
    assert stages[0][0] == untied[0][0]  # the first stage: its layers + the embedding either way
    assert stages[1][0] == untied[1][0]  # the last: its LM head is the embedding matrix (vLLM builds it there)
    assert sum(m for m, _ in stages) == pytest.approx(sum(m for m, _ in untied))
    assert stages[1][0] - stages[0][0] == pytest.approx(untied[1][0] - untied[0][0]) and embed > 0


def test_deepseek_v3_experts_follow_their_layers():
    arch = resolve_model(K, DSV3).architecture
    layout = memory.build_layout(K.schemes["bf16"], K.formats)
    first, last = memory.stage_weight_bytes(arch, layout, 2)
    # layers 0-30 (3 dense + 28 MoE) and 30 MoE layers 31-60: the second stage holds more experts
    assert last[0] > first[0]
    total = sum(memory.matrix_vector_bytes(arch, layout))
    assert sum(m + v for m, v in (first, last)) == pytest.approx(total)


# --------------------------------------------------------------------------- speed
def test_pipeline_speed_has_no_magic_speed_up():
    ctx = context(L405)
    cand, kv, rt = K.candidates["bf16"], K.kv_formats["bf16"], K.runtimes["vllm"]
    hop = 20e-6 + 2 * 1 * 16384 * 2 / 50e9  # decision.yaml: latency, two BF16 tensors of one token, 50 GB/s
    one = ctx.speed(cand, kv, rt, 8, 1)
    piped = ctx.speed(cand, kv, rt, 8, 1, pp=2)
    # one sequence: the stages run in turn (the bubble) - exactly one node's step plus the hop
    assert piped.decode.comm_seconds - one.decode.comm_seconds == pytest.approx(hop)
    assert piped.tpot_ms > one.tpot_ms
    assert piped.tpot_ms == pytest.approx(one.tpot_ms + hop * 1000)
    # the prompt passes the stages in sequence: one node's prefill plus one hop with 1,024 tokens of activations
    assert piped.ttft_ms == pytest.approx(one.ttft_ms + (20e-6 + 2 * 1024 * 16384 * 2 / 50e9) * 1000)
    for b in (2, 16, 64):
        node = ctx.speed(cand, kv, rt, 8, b)
        per_micro = ctx.speed(cand, kv, rt, 8, b // 2)
        piped = ctx.speed(cand, kv, rt, 8, b, pp=2)
        # the weights are read in full each step: never below one node's step at a micro-batch of b / 2
        assert piped.decode.seconds > per_micro.decode.seconds
        assert piped.decode.memory_seconds >= node.decode.memory_seconds * 0.5
        weights_only = ctx.weights(cand).cost.weight_bytes_touched(b) / (8 * 3.35e12 * 0.675)
        assert piped.decode.seconds > weights_only
        # two nodes share the KV reads and the all-reduce bytes, not the weights: within a few percent of one node
        assert piped.tpot_ms > 0.9 * node.tpot_ms
        assert piped.decode.comm_seconds >= hop


def test_inter_node_bandwidth_comes_from_the_gpu_when_given():
    gpu = K.gpus["h100-sxm"]
    default = pipeline_for(K.decision, gpu, 2)
    slow = pipeline_for(K.decision, gpu.model_copy(update={"internode_gbps": 12.5}), 2)
    assert isinstance(default, Pipeline) and default.gbps == 50 and slow.gbps == 12.5
    arch = resolve_model(K, L405).architecture
    assert slow.hop_seconds(arch, 1024) > default.hop_seconds(arch, 1024)
    assert pipeline_for(K.decision, gpu, 1) is None


# --------------------------------------------------------------------------- DeepSeek-V3
def test_deepseek_v3_bf16_needs_three_nodes_of_h100():
    ctx = context(DSV3)
    cand, kv, rt = K.candidates["bf16"], K.kv_formats["bf16"], K.runtimes["vllm"]
    two = gates.memory_fit(ctx, cand, kv, rt, 8, 16, 2)
    assert not two.fits and two.weights_bytes_per_gpu > 80 * 2**30  # 1.34 TB of BF16 over 16 x 80 GB: no
    three = gates.memory_fit(context(DSV3, nodes=3), cand, kv, rt, 8, 16, 3)
    assert three.fits


def test_deepseek_v3_native_fp8_two_h100_nodes_or_one_h200_node():
    two = recommend(Request(model=DSV3, gpu="h100-sxm", gpus=8, nodes=2, priority="quality", runtime="vllm"), K)
    pick = two.endpoints[0].pick
    assert two.endpoints[0].fits and pick.candidate.startswith("native")
    assert (pick.layout.tensor_parallel, pick.layout.pipeline_parallel) == (8, 2)
    bf16 = next(r for r in two.endpoints[0].rejected if "bf16" in r.candidate.split(", "))
    assert bf16.reasons[0].kind == "memory"
    one = recommend(Request(model=DSV3, gpu="h200", gpus=8, priority="quality", runtime="vllm"), K)
    pick = one.endpoints[0].pick
    assert one.endpoints[0].fits and pick.candidate.startswith("native") and pick.layout.pipeline_parallel == 1
    h100 = context(DSV3, nodes=1)
    native = next(c for c in K.candidates.values() if c.id == pick.candidate)
    assert not gates.memory_fit(h100, native, K.kv_formats["bf16"], K.runtimes["vllm"], 8, 16).fits


# --------------------------------------------------------------------------- runtimes and commands
@pytest.mark.parametrize("runtime", ["tgi", "llama.cpp", "transformers", "exllamav2", "tensorrt-llm"])
def test_runtimes_without_multi_node_serving_are_refused(runtime):
    rt = K.runtimes[runtime]
    reasons = gates.multinode_reasons(rt)
    assert reasons and rt.name in reasons[0].text and "cannot span nodes" in reasons[0].text and reasons[0].source
    assert not gates.multinode_reasons(K.runtimes["vllm"]) and not gates.multinode_reasons(K.runtimes["sglang"])


def test_a_named_single_node_runtime_says_why_it_did_not_pipeline():
    result = recommend(Request(model=L405, gpu="h100-sxm", gpus=8, nodes=2, priority="quality", runtime="tgi"), K)
    er = result.endpoints[0]
    assert er.pick.layout.pipeline_parallel == 1
    bf16 = next(r for r in er.rejected if "bf16" in r.candidate.split(", "))
    assert any("Hugging Face TGI" in r.text and "cannot span nodes" in r.text for r in bf16.reasons)
    assert any("Not pipelined across the 2 nodes" in item.text for item in er.rationale)


def test_vllm_multi_node_commands(plan_405b):
    _, plan = plan_405b
    e = plan["endpoints"][0]
    rt = e["runtime"]
    serve = rt["serve_command"]
    for flag in ("vllm serve meta-llama/Llama-3.1-405B-Instruct", "--tensor-parallel-size 8",
                 "--pipeline-parallel-size 2", "--distributed-executor-backend ray"):
        assert flag in serve
    assert "--data-parallel-size" not in serve
    nodes = rt["node_commands"]
    assert [n["role"] for n in nodes] == ["head", "worker"] and rt["nodes"] == 2
    assert nodes[0]["commands"] == ["ray start --head --port=6379", serve]
    assert nodes[1]["commands"] == ["ray start --address=HEAD_NODE_IP:6379"]
    assert any("pipeline parallel 2 across them" in n for n in rt["notes"])
    assert any("parallelism_scaling" in s for s in rt["source"])


def test_sglang_runs_the_server_on_every_node():
    plan = document.build(Request(model=L405, gpu="h100-sxm", gpus=8, nodes=2, priority="quality",
                                  runtime="sglang"), K)
    rt = plan["endpoints"][0]["runtime"]
    nodes = rt["node_commands"]
    assert len(nodes) == 2
    for rank, node in enumerate(nodes):
        (cmd,) = node["commands"]
        assert "--tp-size 8" in cmd and "--pp-size 2" in cmd and "--nnodes 2" in cmd
        assert f"--node-rank {rank}" in cmd and "--dist-init-addr HEAD_NODE_IP:5000" in cmd


def test_replicas_across_nodes_are_one_server_per_node():
    plan = document.build(Request(model="meta-llama/Llama-3.1-70B-Instruct", gpu="h100-sxm", gpus=8, nodes=2,
                                  runtime="vllm"), K)
    e = plan["endpoints"][0]
    assert e["deployment"]["pipeline_parallel"] == 1 and e["deployment"]["nodes"] == 2
    rt = e["runtime"]
    per_node = e["deployment"]["replicas"] // 2
    assert [n["role"] for n in rt["node_commands"]] == ["server", "server"]
    assert all(n["commands"] == [rt["serve_command"]] for n in rt["node_commands"])
    if per_node > 1:
        assert f"--data-parallel-size {per_node}" in rt["serve_command"]


# --------------------------------------------------------------------------- plan document and CLI
def test_plan_renders_the_layout_and_loads_back(plan_405b):
    _, plan = plan_405b
    assert plan["schema_version"] == 2
    assert plan["hardware"]["nodes"] == 2 and plan["hardware"]["gpus_total"] == 16
    d = plan["endpoints"][0]["deployment"]
    assert (d["tensor_parallel"], d["pipeline_parallel"], d["nodes"], d["gpus_per_node"], d["gpus"]) == (8, 2, 2, 8, 16)
    assert plan["endpoints"][0]["memory"]["pipeline_parallel"] == 2
    back = document.load(document.dump(plan), K)
    assert back.nodes == 2 and back == plan_405b[0].request
    assert document.load("model: meta-llama/Llama-3.1-8B-Instruct\ngpu: h100-sxm\nnodes: 3\n", K).nodes == 3


def test_single_node_plans_carry_pipeline_parallel_one():
    plan = document.build(Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="l4"), K)
    e = plan["endpoints"][0]
    assert e["deployment"]["pipeline_parallel"] == 1 and e["deployment"]["nodes"] == 1
    assert "nodes" not in plan["hardware"] and e["runtime"]["node_commands"] == []


def test_cli_nodes_flag(capsys):
    status = main(["recommend", "--model", L405, "--gpu", "h100-sxm", "--gpus", "8", "--nodes", "2",
                   "--priority", "quality", "--runtime", "vllm", "--format", "text"])
    out, err = capsys.readouterr()
    assert status == 0 and err == ""
    assert "TP8 x PP2 (2 nodes)" in out and "node 1    (worker) ray start --address=HEAD_NODE_IP:6379" in out
    for bad in ("0", "17"):
        status = main(["recommend", "--model", L405, "--gpu", "h100-sxm", "--nodes", bad])
        out, err = capsys.readouterr()
        assert status == 2 and err.startswith("error: --nodes:") and err.count("\n") == 1
    status = main(["estimate", "--model", L405, "--weights", "bf16", "--gpu", "h100-sxm", "--gpus", "8",
                   "--nodes", "2", "--runtime", "tgi"])
    out, err = capsys.readouterr()
    assert status == 2 and err.startswith("error: --nodes:") and "TGI" in err


def test_estimate_with_nodes_matches_the_search():
    est = estimate(EstimateRequest(model=L405, weights="bf16", gpu="h100-sxm", gpus=8, nodes=2, context=1280,
                                   concurrency=16, max_num_seqs=16, perf=True), K)  # the plan sets --max-num-seqs
    fit = gates.memory_fit(context(L405), K.candidates["bf16"], K.kv_formats["bf16"], K.runtimes["vllm"], 8, 16, 2)
    assert (est.gpus, est.tensor_parallel, est.pipeline_parallel) == (16, 8, 2)
    assert est.weights_bytes_per_gpu == fit.weights_bytes_per_gpu
    assert est.kv_cache_bytes_per_gpu == fit.kv_bytes_per_gpu
    assert est.fits and est.max_concurrency == fit.max_concurrency
    assert any("pipeline parallel over 2 nodes" in a for a in est.performance.assumptions)

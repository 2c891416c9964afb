"""Command line: ``python -m advisor estimate|recommend|plan|list``.

Bad input exits with status 2 and one line on stderr that names the bad value and the closest
valid ids; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import ValidationError

from advisor import safeyaml
from advisor.decide.gpu_picker import GPUOption, pick_gpus
from advisor.errors import MAX_MESSAGE, AdvisorInputError, shown
from advisor.intake.catalog import lookup
from advisor.intake.request import CUSTOM_GPU_ID, FAILURE_MODES, PRIORITIES, TFLOPS_FORMATS, Request
from advisor.knowledge import load_knowledge
from advisor.knowledge.schema import KnowledgeError
from advisor.physics.estimate import Estimate, EstimateRequest, estimate
from advisor.physics.memory import GB, GIB
from advisor.physics.performance import band_text
from advisor.plan import document as plan_module
from advisor.plan.bundle import bundle
from advisor.plan.document import MAX_PLAN_BYTES
from advisor.plan.text import render_text
from advisor.plan.validation import validate_script
from advisor.plan.verify import carry_validation, collect_results, read_results, verdict_text, verify

LISTS = {
    "models": "models",
    "gpus": "gpus",
    "schemes": "schemes",
    "kv": "kv_formats",
    "runtimes": "runtimes",
    "workloads": "workloads",
}


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage problem as one line instead of usage text plus exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "...")


def build_parser() -> Parser:
    parser = Parser(prog="python -m advisor", description="Precision Advisor: LLM serving precision and memory.")
    sub = parser.add_subparsers(dest="command", metavar="{estimate,recommend,plan,gpus,bundle,verify,list}", parser_class=Parser)
    sub.required = True

    est = sub.add_parser("estimate", help="memory for a model, weight scheme, KV format and GPUs")
    est.add_argument(
        "--model", required=True, help="catalog id (case-insensitive; the part after '/' works) or a config.json path"
    )
    est.add_argument("--weights", required=True, metavar="SCHEME", help="weight scheme id (see: list schemes)")
    est.add_argument("--kv", metavar="KV", help="KV-cache format id (default bf16; fp16 on GPUs without BF16)")
    est.add_argument("--context", type=int, default=4096, metavar="N", help="tokens per sequence (default 4096)")
    est.add_argument("--concurrency", type=int, default=1, metavar="N", help="sequences held at once (default 1)")
    est.add_argument("--gpu", metavar="GPU", help="GPU id (see: list gpus); enables the fit check")
    est.add_argument("--gpus", type=int, default=1, metavar="N", help="GPUs, tensor parallel (default 1)")
    est.add_argument("--nodes", type=int, default=1, metavar="M",
                     help="nodes of --gpus GPUs each, one pipeline stage per node (default 1; up to 16)")
    est.add_argument("--runtime", metavar="RUNTIME",
                     help="serving runtime id (default vllm; llama.cpp for GGUF weight schemes)")
    est.add_argument(
        "--group-size", type=int, metavar="N", help="override the group size of an integer scheme (-1 = per channel)"
    )
    est.add_argument(
        "--utilization", type=float, metavar="F", help="override the runtime's memory-utilization fraction"
    )
    est.add_argument(
        "--format", choices=["json", "yaml", "table"], default="table", help="output format (default table)"
    )
    est.add_argument("--perf", action="store_true", help="add the speed model: TTFT, time per token, throughput, cost")
    est.add_argument(
        "--prompt-tokens", type=int, metavar="N", help="prompt length for --perf (default: context - output)"
    )
    est.add_argument(
        "--output-tokens", type=int, default=256, metavar="N", help="output length for --perf (default 256)"
    )
    est.add_argument(
        "--activations",
        metavar="FORMAT",
        help="format the matmuls take (default: what the weights run as on the GPU, e.g. fp8 W8A8 on Hopper)",
    )
    est.add_argument("--usd-per-gpu-hour", type=float, metavar="USD", help="GPU price for cost per million tokens")
    est.add_argument("--max-num-seqs", type=int, metavar="N",
                     help="the server's sequence limit (vLLM --max-num-seqs; default: the runtime's for the GPU)")
    est.add_argument("--max-num-batched-tokens", type=int, metavar="N",
                     help="tokens per prefill pass (vLLM --max-num-batched-tokens, SGLang --chunked-prefill-size)")
    est.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs (vLLM --enforce-eager)")
    est.add_argument("--runtime-version", metavar="V",
                     help="account for memory as this older release did (e.g. 0.6.4; default: the pinned version)")

    rec = sub.add_parser("recommend", help="a deployment plan for one endpoint")
    _add_request_flags(rec, gpu_required=True)
    _add_plan_format(rec)

    picker = sub.add_parser("gpus", help="every GPU kind and count that fits one endpoint, cheapest first")
    _add_request_flags(picker, gpu_required=False)
    picker.add_argument("--format", choices=["table", "json", "yaml"], default="table", help="output format")

    pln = sub.add_parser("plan", help="the full plan for a request or plan YAML file (several endpoints)")
    pln.add_argument("file", help="a request or plan YAML file ('-' for standard input)")
    _add_plan_format(pln)

    bnd = sub.add_parser("bundle", help="the plan as a zip: plan.yaml, validate.sh, Docker and Kubernetes files per "
                         "endpoint, a README")
    bnd.add_argument("file", help="a request or plan YAML file ('-' for standard input); the plan is made anew from "
                     "its request")
    bnd.add_argument("--output", "-o", required=True, metavar="ZIP", help="where to write the zip")

    ver = sub.add_parser("verify", help="validation results (lm-eval, guidellm, vllm bench JSON) against a plan: "
                         "pass / fail per check and the next step")
    ver.add_argument("plan", help="the plan YAML the results were measured for (plan.yaml from the bundle, or a "
                     "plan verify wrote before)")
    ver.add_argument("results", nargs="+", help="result files, or folders searched for them (results/)")
    ver.add_argument("--output", "-o", metavar="YAML", help="write the plan with the measured results, the "
                     "decision and drift (schema 3) here")
    ver.add_argument("--format", choices=["text", "yaml", "json"], default="text", help="output format")

    lst = sub.add_parser("list", help="print the ids of a knowledge table")
    lst.add_argument("table", choices=list(LISTS), help="which table")
    return parser


def _add_request_flags(parser: argparse.ArgumentParser, *, gpu_required: bool) -> None:
    """The flags of one request with one endpoint (recommend, gpus)."""
    parser.add_argument("--model", required=True, help="catalog id, any Hugging Face repo id (owner/name; HF_TOKEN for gated repos, HF_HUB_OFFLINE=1 reads only the cache), a local checkpoint folder, a config.json path or a local .gguf file")
    parser.add_argument("--model-revision", metavar="REV",
                        help="the model repo's Hub branch, tag or commit to plan and serve (default: its main branch); "
                        "the serve commands pin it and validation results are judged against it")
    if gpu_required:
        parser.add_argument("--gpu", required=True, metavar="GPU",
                            help="GPU id (see: list gpus), or 'custom' with the --gpu-* flags below")
        parser.add_argument("--gpus", type=int, default=1, metavar="N", help="GPUs, tensor parallel (default 1)")
        parser.add_argument("--nodes", type=int, default=1, metavar="M",
                            help="nodes of --gpus GPUs each: tensor parallel inside a node, pipeline parallel or "
                            "replicas across nodes (default 1; up to 16)")
        custom = parser.add_argument_group("custom GPU (with --gpu custom)")
        custom.add_argument("--gpu-name", metavar="NAME", help="a name for the plan (default 'Custom GPU')")
        custom.add_argument("--gpu-vendor", metavar="nvidia|amd", help="default nvidia")
        custom.add_argument("--gpu-memory-gib", type=float, metavar="GIB", help="memory the driver reports, GiB")
        custom.add_argument("--gpu-bandwidth-tbps", type=float, metavar="TBPS", help="memory bandwidth, TB/s")
        custom.add_argument("--gpu-tflops", metavar="FMT=N,...",
                            help="dense tensor TFLOPS per precision, e.g. bf16=165,fp8=330,int8=660 "
                            f"(formats: {', '.join(TFLOPS_FORMATS)}); the ones given run natively")
        custom.add_argument("--gpu-cc", metavar="X.Y", help="NVIDIA compute capability, e.g. 8.9")
        parser.add_argument(
            "--usd-per-gpu-hour", type=float, metavar="USD", help="your GPU price (default: knowledge/gpu_prices.yaml)"
        )
    parser.add_argument("--host-memory-gib", type=float, metavar="GIB",
                        help="system RAM, checked for llama.cpp partial offload (default: not checked)")
    parser.add_argument("--host-memory-bandwidth", type=float, metavar="GBPS",
                        help="GB/s a CPU decode reads from system RAM, for partial offload "
                        "(default: knowledge/decision.yaml host-decode-bandwidth-gbps)")
    parser.add_argument("--runtime", metavar="RUNTIME", help="serving runtime id; default: the engine picks")
    parser.add_argument(
        "--workload", default="interactive-chat", metavar="PRESET", help="workload preset (see: list workloads)"
    )
    parser.add_argument("--concurrency", type=int, metavar="N", help="requests in flight (default: the preset's)")
    parser.add_argument("--prompt-tokens", type=int, metavar="N", help="prompt length (default: the preset's)")
    parser.add_argument("--output-tokens", type=int, metavar="N", help="output length (default: the preset's)")
    parser.add_argument("--context", type=int, metavar="N", help="tokens held per sequence (default: prompt + output)")
    parser.add_argument(
        "--priority", metavar="PRIORITY", help=f"one of {', '.join(PRIORITIES)} (default: the preset's)"
    )
    parser.add_argument(
        "--calibration",
        default="available",
        metavar="none|available",
        help="whether you can run calibration on your own data (default available)",
    )
    parser.add_argument(
        "--quality-floor", type=float, metavar="PCT", help="lowest accuracy kept vs BF16 you accept, percent"
    )
    parser.add_argument("--max-ttft-ms", type=float, metavar="MS", help="time-to-first-token target")
    parser.add_argument("--max-tpot-ms", type=float, metavar="MS", help="time-per-output-token target")
    parser.add_argument("--max-cost", type=float, metavar="USD", help="cost target per million output tokens")
    parser.add_argument(
        "--unacceptable", metavar="MODES", help=f"comma-separated failure modes: {', '.join(FAILURE_MODES)}"
    )


def _add_plan_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=["yaml", "json", "text"],
        default="yaml",
        help="yaml (the plan document, default), json, or text (a short summary)",
    )


def _recommend_request(args: argparse.Namespace) -> Request:
    endpoint = {
        "workload": args.workload,
        "concurrency": args.concurrency,
        "prompt_tokens": args.prompt_tokens,
        "output_tokens": args.output_tokens,
        "context": args.context,
    }
    unacceptable = [m.strip() for m in (args.unacceptable or "").split(",") if m.strip()]
    fields = {
        "model": args.model,
        "model_revision": args.model_revision,
        # the GPU picker (no --gpu flag) tries every GPU itself; an empty --gpu is refused below, not defaulted
        "gpu": getattr(args, "gpu", "h100-sxm"),
        "gpus": getattr(args, "gpus", 1),
        "nodes": getattr(args, "nodes", 1),
        "runtime": args.runtime,
        "priority": args.priority,
        "calibration": args.calibration,
        "criteria": {
            "quality_floor_pct": args.quality_floor,
            "unacceptable": unacceptable,
            "max_ttft_ms": args.max_ttft_ms,
            "max_tpot_ms": args.max_tpot_ms,
            "max_cost_per_million_tokens": args.max_cost,
        },
        "usd_per_gpu_hour": getattr(args, "usd_per_gpu_hour", None),
        "host_memory_gib": args.host_memory_gib,
        "host_memory_bandwidth_gbps": args.host_memory_bandwidth,
        "endpoints": [{k: v for k, v in endpoint.items() if v is not None}],
    }
    if getattr(args, "gpu", None) == CUSTOM_GPU_ID:
        fields["custom_gpu"] = _custom_gpu(args)
    else:
        given = [f"--gpu-{n.replace('_', '-')}" for n in ("name", "vendor", "memory_gib", "bandwidth_tbps", "tflops",
                                                        "cc") if getattr(args, f"gpu_{n}", None) is not None]
        if given:
            raise AdvisorInputError(given[0], "describes a custom GPU; use it with --gpu custom")
    k = load_knowledge()
    if not str(fields["gpu"] or "").strip():
        raise AdvisorInputError("--gpu", "a GPU is required", choices=[*k.gpus, CUSTOM_GPU_ID])
    try:
        request = Request.model_validate(fields)
    except ValidationError as exc:
        raise AdvisorInputError(*_cli_field(exc)) from None
    if getattr(args, "gpu", None) and args.gpu != CUSTOM_GPU_ID:
        lookup(k.gpus, args.gpu, "--gpu", "GPU")
    lookup(k.workloads, args.workload, "--workload", "workload preset")
    if args.runtime:
        lookup(k.runtimes, args.runtime, "--runtime", "runtime")
    return request


def _custom_gpu(args: argparse.Namespace) -> dict:
    """The --gpu-* flags as a custom_gpu mapping (validated with the request; errors name the flag)."""
    tflops: dict[str, float] = {}
    for item in (args.gpu_tflops or "").split(","):
        if not item.strip():
            continue
        fmt, sep, value = item.partition("=")
        fmt = fmt.strip().lower()
        if not sep:
            raise AdvisorInputError("--gpu-tflops", f"{item.strip()!r} is not FORMAT=NUMBER (e.g. bf16=165,fp8=330)")
        if fmt not in TFLOPS_FORMATS:
            raise AdvisorInputError("--gpu-tflops", f"unknown precision {fmt!r}", value=fmt, choices=TFLOPS_FORMATS)
        try:
            tflops[fmt] = float(value)
        except ValueError:
            raise AdvisorInputError("--gpu-tflops", f"{item.strip()!r} is not FORMAT=NUMBER") from None
    missing = [flag for flag, v in (("--gpu-memory-gib", args.gpu_memory_gib),
                                    ("--gpu-bandwidth-tbps", args.gpu_bandwidth_tbps),
                                    ("--gpu-tflops", tflops or None)) if v is None]
    if missing:
        raise AdvisorInputError(missing[0], "--gpu custom needs --gpu-memory-gib, --gpu-bandwidth-tbps, --gpu-tflops "
                                "and (NVIDIA) --gpu-cc")
    out = {"memory_gib": args.gpu_memory_gib, "memory_bandwidth_tbps": args.gpu_bandwidth_tbps,
           "dense_tflops": tflops, "compute_capability": args.gpu_cc, "vendor": args.gpu_vendor or "nvidia"}
    if args.gpu_name:
        out["name"] = args.gpu_name
    return out


CLI_NAMES = {
    "endpoints.0.workload": "--workload",
    "endpoints.0.concurrency": "--concurrency",
    "endpoints.0.prompt_tokens": "--prompt-tokens",
    "endpoints.0.output_tokens": "--output-tokens",
    "endpoints.0.context": "--context",
    "criteria.quality_floor_pct": "--quality-floor",
    "criteria.unacceptable": "--unacceptable",
    "criteria.max_ttft_ms": "--max-ttft-ms",
    "criteria.max_tpot_ms": "--max-tpot-ms",
    "criteria.max_cost_per_million_tokens": "--max-cost",
    "usd_per_gpu_hour": "--usd-per-gpu-hour",
    "custom_gpu.memory_gib": "--gpu-memory-gib",
    "custom_gpu.memory_bandwidth_tbps": "--gpu-bandwidth-tbps",
    "custom_gpu.dense_tflops": "--gpu-tflops",
    "custom_gpu.compute_capability": "--gpu-cc",
    "custom_gpu.vendor": "--gpu-vendor",
    "custom_gpu.name": "--gpu-name",
    "custom_gpu": "--gpu-cc",
    "host_memory_gib": "--host-memory-gib",
    "host_memory_bandwidth_gbps": "--host-memory-bandwidth",
    "model_revision": "--model-revision",
}


def _cli_field(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    for prefix, flag in CLI_NAMES.items():
        if loc.startswith(prefix):
            name = flag
            break
    else:
        name = "--" + loc.split(".")[0].replace("_", "-")
    message = err["msg"].removeprefix("Value error, ")
    if isinstance(err.get("input"), dict | list) or not err.get("loc"):  # a whole object: its values say nothing
        return name, message
    if err.get("type") == "string_pattern_mismatch" and loc == "model_revision":
        return name, ("a revision is a Hub branch, tag or commit: letters, digits and . _ / - only, got "
                      f"{shown(err.get('input'))}")
    if err.get("type") == "string_pattern_mismatch" and loc.endswith("compute_capability"):
        return name, f"a compute capability is major.minor, e.g. 8.9, got {shown(err.get('input'))}"
    return name, f"{message[:1].lower() + message[1:]}, got {shown(err.get('input'))}"


def _read_plan_file(path: str) -> tuple[str, str]:
    """A plan or request file's text, read with a bound whatever the file is (/dev/zero, a FIFO, a huge file)."""
    if path == "-":
        raw, where = sys.stdin.buffer.read(MAX_PLAN_BYTES + 1), "stdin"
    else:
        p = Path(path)
        where = shown(p.name or path, 80, quote=False)
        try:
            with p.open("rb") as fh:
                raw = fh.read(MAX_PLAN_BYTES + 1)
        except OSError as exc:
            raise AdvisorInputError("FILE", f"cannot read {shown(path)}: {exc.strerror or exc}") from None
    if len(raw) > MAX_PLAN_BYTES:
        raise AdvisorInputError(where, f"is over {MAX_PLAN_BYTES:,} bytes; plans and requests must be smaller")
    try:
        return raw.decode("utf-8"), where
    except UnicodeDecodeError:
        raise AdvisorInputError(where, "not a text file (UTF-8)") from None


def _verify(args: argparse.Namespace) -> int:
    """`verify PLAN RESULTS...`: the plan as it was exported (its numbers are what the results are judged against;
    a bare request is planned first), every result file read with a bound, the verdict printed."""
    text, where = _read_plan_file(args.plan)
    request = plan_module.load(text, where=where)  # bad YAML or a bad request: one line naming it
    document = safeyaml.load(text)
    if not (isinstance(document, dict) and isinstance(document.get("endpoints"), list)
            and isinstance(document.get("request"), dict)):
        document = plan_module.build(request)
    results = []
    for item in args.results:
        path = Path(item)
        results += collect_results(path) if path.is_dir() else read_results([path])
    if not results:
        raise AdvisorInputError("RESULTS", "no result files found (lm-eval results_*.json, guidellm or vllm bench "
                                "JSON)")
    out = verify(document, results)
    if args.format == "json":
        print(json.dumps({k: v for k, v in out.items() if k != "plan"}, indent=2, allow_nan=False, default=str))
    elif args.format == "yaml":
        print(plan_module.dump({k: v for k, v in out.items() if k != "plan"}).rstrip())
    else:
        print(verdict_text(out))
    if args.output:
        _write_output(args.output, plan_module.dump(out["plan"]).encode("utf-8"))
    return 0


def _write_output(path: str, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise AdvisorInputError("--output", f"cannot write {shown(path)}: {exc.strerror or exc}") from None


def _print_plan(document: dict, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(document, indent=2, allow_nan=False))
    elif fmt == "text":
        print(render_text(document))
    else:
        print(plan_module.dump(document).rstrip())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Exit status 0 with the output, or 2 (3: a broken knowledge base) with one line on stderr
    naming what is wrong - also for failures nobody foresaw (the last-resort handler below)."""
    try:
        return _main(argv)
    except BrokenPipeError:  # the reader went away (`| head`): not an error of ours, and nothing left to say
        _silence_stdout()
        return 0
    except RecursionError:
        return _fail("input nested too deeply to process")
    except MemoryError:
        return _fail("input too large to process")
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, never a traceback
        return _fail(f"could not process this input ({type(exc).__name__}: {shown(str(exc), 160, quote=False)}); "
                     "please report it with the command line")


def run() -> int:
    """The command line's entry point: main(), then stdout flushed here, so a reader that went away at the very
    end (`| head -1`) still ends in status 0 and no traceback."""
    status = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    return status


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so Python's own flush at exit does not fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "list":
            table = getattr(load_knowledge(), LISTS[args.table])
            print("\n".join(table))
            return 0
        if args.command == "recommend":
            _print_plan(plan_module.build(_recommend_request(args)), args.format)
            return 0
        if args.command == "gpus":
            options = pick_gpus(_recommend_request(args))
            print(render_gpu_options(options, args.format))
            return 0
        if args.command == "plan":
            text, where = _read_plan_file(args.file)
            document = plan_module.build(plan_module.load(text, where=where))
            # a plan verify wrote: its measured results come along, marked stale if they no longer apply
            _print_plan(carry_validation(safeyaml.load(text), document), args.format)
            return 0
        if args.command == "bundle":
            text, where = _read_plan_file(args.file)
            document = plan_module.build(plan_module.load(text, where=where))
            data = bundle(document, validate_script(document))
            _write_output(args.output, data)
            print(f"wrote {shown(args.output, 120, quote=False)} ({len(data):,} bytes): plan.yaml, validate.sh, "
                  "README.md and manifests/ per endpoint; run validate.sh, then: python -m advisor verify plan.yaml "
                  "results/")
            return 0
        if args.command == "verify":
            return _verify(args)
        request = _request(args)
        result = estimate(request)
        print(render(result, args.format))
        return 0
    except UsageError as exc:
        return _fail(str(exc))
    except AdvisorInputError as exc:
        return _fail(str(exc))
    except KnowledgeError as exc:
        return _fail(f"knowledge base is broken: {exc}", status=3)


def _request(args: argparse.Namespace) -> EstimateRequest:
    # The flags are named after the request's fields (--group-size -> group_size).
    fields = {name: getattr(args, name) for name in EstimateRequest.model_fields}
    for name in ("gpu", "kv", "runtime", "activations", "weights"):  # given but blank: refused, never "not given"
        if fields.get(name) is not None and not str(fields[name]).strip():
            raise AdvisorInputError(f"--{name}", "is empty; leave the flag out or name a value (see: list)")
    if not fields.get("runtime"):  # GGUF files run on llama.cpp; everything else defaults to vLLM
        fields["runtime"] = "llama.cpp" if str(fields.get("weights") or "").lower().startswith("gguf-") else "vllm"
    profile = {"max_num_seqs": "--max-num-seqs", "max_num_batched_tokens": "--max-num-batched-tokens",
               "enforce_eager": "--enforce-eager"}
    if fields["runtime"] not in ("vllm", "sglang"):
        given = [flag for name, flag in profile.items() if fields.get(name)]
        if given:
            raise AdvisorInputError(given[0], f"is a vLLM / SGLang server setting; it does not apply to "
                                    f"--runtime {fields['runtime']}", choices=["vllm", "sglang"])
    seqs, tokens = fields.get("max_num_seqs"), fields.get("max_num_batched_tokens")
    if seqs and tokens and tokens < seqs:  # vLLM refuses this at start-up
        raise AdvisorInputError("--max-num-batched-tokens", f"{tokens} is smaller than --max-num-seqs {seqs}; vLLM "
                                "refuses to start with that")
    try:
        return EstimateRequest(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "--" + str(err["loc"][0]).replace("_", "-")
        raise AdvisorInputError(name, f"{err['msg'].lower()}, got {shown(err.get('input'))}") from None


def _fail(message: str, status: int = 2) -> int:
    line = " ".join(message.split())
    print(f"error: {line}", file=sys.stderr)
    return status


# --------------------------------------------------------------------------- rendering
def render(result: Estimate, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result.model_dump(mode="json"), indent=2, allow_nan=False)
    if fmt == "yaml":
        return yaml.safe_dump(result.model_dump(mode="json"), sort_keys=False, allow_unicode=True).rstrip()
    return render_table(result)


def _smaller(factor: float) -> str:
    if abs(factor - 1) < 0.005:
        return "the same size"
    return f"{factor:.2f}x smaller" if factor > 1 else f"{1 / factor:.2f}x larger"


def _g(n: float) -> str:
    return f"{n / GIB:,.2f} GiB"


def _count(n: int) -> str:
    return f"{n / 1e9:,.2f} B" if n >= 1e8 else f"{n / 1e6:,.2f} M"


def render_table(r: Estimate) -> str:
    k = load_knowledge()
    gpu = k.gpus[r.gpu] if r.gpu else None
    lines = [f"{r.model_name}  ({r.model})"]
    setup = (
        f"weights {r.weights_scheme}"
        + (f" g{r.group_size}" if r.group_size else "")
        + f" | KV {r.kv_format} | context {r.context:,} x {r.concurrency} sequence"
        + ("s" if r.concurrency != 1 else "")
        + f" | runtime {r.runtime} {r.runtime_version}"
    )
    if gpu:
        setup += f" | {r.gpus} x {gpu.name}" + (f" ({r.pipeline_parallel} nodes x {r.tensor_parallel}, pipeline "
                                                f"parallel; per GPU: the largest stage)" if r.pipeline_parallel > 1
                                                else "")
    lines += [setup, ""]
    active = ""
    if r.params_active != r.params_total:
        active = (
            f", {_count(r.params_active)} active per token"
            f" ({_count(r.params_active_excluding_embedding)} without the embedding)"
        )
    lines.append(f"Parameters: {_count(r.params_total)} total{active}")
    lines.append("")
    lines.append(f"  {'module':<11}{'params':>12}  {'stored as':<10}{'bits/weight':>12}{'size':>14}")
    for m in r.modules:
        lines.append(
            f"  {m.group:<11}{_count(m.params):>12}  {m.format:<10}{m.bits_per_weight:>12.3f}{_g(m.bytes):>14}"
        )
    lines.append(
        f"  {'weights':<11}{_count(r.params_total):>12}  {'':<10}{r.weights_bits_per_weight:>12.3f}"
        f"{_g(r.weights_bytes):>14}   = {r.weights_bytes / GB:,.2f} GB (decimal)"
    )
    s = r.savings
    thumb = f" (rule of thumb {s.weights_rule_of_thumb:g}x)" if s.weights_rule_of_thumb else ""
    kv_thumb = f" (rule of thumb {s.kv_rule_of_thumb:g}x)" if s.kv_rule_of_thumb else ""
    lines.append("")
    lines.append(
        f"Against BF16: weights {_smaller(s.weights_factor)}{thumb}; KV {_smaller(s.kv_factor)}{kv_thumb}."
    )
    lines.append(f"  {s.why}")
    lines.append("")
    per = "per GPU" if r.gpus > 1 else ""
    lines.append(f"Memory{' (' + str(r.gpus) + ' GPUs; per GPU in brackets)' if r.gpus > 1 else ''}:")
    o = r.overhead

    def row(label: str, total: int, per_gpu: int, note: str = "") -> str:
        extra = f"  [{_g(per_gpu)} {per}]" if r.gpus > 1 else ""
        return f"  {label:<10}{_g(total):>14}{extra}  {note}".rstrip()

    kv_note = (
        f"{r.concurrency} x {r.context:,} tokens; {r.kv_bytes_per_token / 1024:,.1f} KiB per token "
        "if every layer held it"
    )
    loaded = r.weights_loaded_bytes_per_gpu or r.weights_bytes_per_gpu
    repacked = loaded - r.weights_bytes_per_gpu
    lines.append(
        row(
            "weights",
            loaded * r.gpus,
            loaded,
            ("split over the GPUs" if r.gpus > 1 else "")
            + (f"{'; ' if r.gpus > 1 else ''}as loaded: the checkpoint's {_g(r.weights_bytes_per_gpu)} per GPU + "
               f"{_g(repacked)} re-laid-out for the kernels" if repacked > 0 else ""),
        )
    )
    lines.append(row("KV cache", r.kv_cache_bytes, r.kv_cache_bytes_per_gpu, kv_note))
    oh_note = (f"activations {_g(o.activations_bytes)}" + (f" + CUDA graphs {_g(o.cuda_graph_bytes)}"
               if o.cuda_graph_bytes else "") + f" + CUDA/non-torch {_g(o.non_torch_bytes)}")
    if gpu:
        oh_note += f" + unused headroom {_g(o.headroom_bytes)} at {o.utilization:.0%} utilization"
    lines.append(
        row("overhead", r.overhead_bytes, r.overhead_bytes // r.gpus, oh_note + (" (per GPU)" if r.gpus > 1 else ""))
    )
    lines.append(row("total", r.total_bytes, r.total_bytes // r.gpus))
    if gpu and r.capacity_bytes is not None:
        lines.append(row("capacity", r.capacity_bytes, r.capacity_bytes // r.gpus, f"{r.gpus} x {gpu.memory_label}"))
        lines.append("")
        if r.kv_budget_bytes is not None:
            lines.append(f"KV pool ({r.runtime} {r.runtime_version}, per GPU): {_g(max(0, r.kv_budget_bytes))} = "
                         f"{r.kv_pool_tokens:,} tokens (what the server logs at start-up); the runtime sees "
                         f"{_g(r.visible_bytes_per_gpu or 0)} per GPU")
        if r.fits:
            lines.append(f"FITS: {_g(r.kv_budget_bytes - r.kv_cache_bytes_per_gpu)} of KV pool to spare per GPU.")
        elif r.kv_budget_bytes is not None and r.kv_budget_bytes < 0:
            lines.append(f"DOES NOT FIT: the weights and overhead alone are over the runtime's budget by "
                         f"{_g(-r.kv_budget_bytes)} per GPU.")
        else:
            lines.append(f"DOES NOT FIT: the KV cache needs {_g(r.kv_cache_bytes_per_gpu)} per GPU, the pool holds "
                         f"{_g(max(0, r.kv_budget_bytes or 0))}.")
        for hint in r.fit_hints:
            lines.append(f"  but {hint}")
        if r.fits and r.kv_pool_tokens is not None and r.kv_pool_tokens < r.context * r.concurrency:
            lines.append(f"  ({r.concurrency} x {r.context:,} tokens fit in a pool of {r.kv_pool_tokens:,} tokens: "
                         "the pool counts every layer, and this model's sliding-window layers hold at most their "
                         "window)")
        lines.append(f"  Most sequences at {r.context:,} tokens: {r.max_concurrency:,}")
        lines.append(
            f"  Longest context for {r.concurrency} sequence{'s' if r.concurrency != 1 else ''}: "
            f"{r.max_context:,} tokens (model limit {r.context_limit:,})"
        )
    else:
        lines.append("  (no GPU given: pass --gpu for the fit check, max concurrency and max context)")
    if r.performance is not None:
        p = r.performance
        lines += ["", f"Speed ({r.runtime} {r.runtime_version}, matmuls at {p.matmul_precision.upper()}):"]
        b = getattr(p, "bands_pct", None) or {}
        lines.append(f"  time to first token  {band_text(p.ttft_ms, b.get('prefill'), 'ms')}   "
                     f"({p.bound['prefill']}-bound prefill)")
        lines.append(
            f"  time per token       {band_text(p.tpot_ms, b.get('decode'), 'ms', 1)}   ({p.bound['decode']}-bound "
            f"decode at {r.concurrency} sequence{'s' if r.concurrency != 1 else ''})"
        )
        lines.append(f"  per request          {band_text(p.decode_tokens_per_s, b.get('decode'), 'tokens/s')}")
        lines.append(f"  all requests         {band_text(p.throughput_tokens_per_s, b.get('throughput'), 'output tokens/s')}"
                     "   (prefill included)")
        if b:
            lines.append("  (bands: the 80th percentile of the model's error on held-out published measurements; "
                         "README 'Accuracy')")
        if p.cost_per_million_tokens is not None:
            lines.append(
                f"  cost                 ${p.cost_per_million_tokens:,.2f}"
                + (f" +/- {b['throughput']:g}%" if b.get("throughput") else "")
                + f" per million output tokens at ${p.usd_per_gpu_hour:g}/GPU-hour"
            )
        lines += [f"  - {a}" for a in p.assumptions]
    if r.warnings:
        lines += ["", "Warnings:"] + [f"  ! {w}" for w in r.warnings]
    lines += ["", "Assumptions:"] + [f"  - {a}" for a in r.assumptions]
    lines += ["", "Sources:"] + [f"  {src}" for src in r.sources]
    return "\n".join(lines)


def render_gpu_options(options: list[GPUOption], fmt: str) -> str:
    data = [o.model_dump() for o in options]
    if fmt == "json":
        return json.dumps(data, indent=2)
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False).rstrip()
    if not options:
        return "No GPU kind and count up to 8 fits this endpoint and meets its targets."
    head = (f"{'GPU':<28}{'n':>3}  {'precision':<22}{'runtime':<13}{'layout':<8}{'acc %':>7}{'GiB/GPU':>9}"
            f"{'TTFT ms':>9}{'ms/tok':>8}{'tok/s':>9}{'$/M tok':>9}")
    lines = [head, "-" * len(head)]
    for o in options:
        cost = f"{o.cost_per_million_tokens:,.2f}" if o.cost_per_million_tokens is not None else "-"
        layout = f"TP{o.tensor_parallel}" if o.replicas == 1 else f"{o.replicas}xTP{o.tensor_parallel}"
        speed = "" if o.speed_measured else "*"
        lines.append(
            f"{o.gpu_name[:27]:<28}{o.gpus:>3}  {o.notation[:21]:<22}{o.runtime[:12]:<13}{layout:<8}"
            f"{o.expected_recovery_pct:>7.2f}{o.total_gib_per_gpu:>9.1f}{o.ttft_ms or 0:>9,.0f}{o.tpot_ms or 0:>8.1f}"
            f"{o.throughput_tokens_per_s or 0:>9,.0f}{cost:>9}{speed}"
        )
    lines.append(
        "Modelled speed (roofline, knowledge/speed.yaml); cost at knowledge/gpu_prices.yaml on-demand prices. "
        "'-': no price on file. '*': no published measurement backs this runtime's speed here."
    )
    return "\n".join(lines)

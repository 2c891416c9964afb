"""The plan's validation, made runnable: for each endpoint with a pick, each ladder step (the 16-bit baseline,
each step down, the pick, the fallback) is served, probed for quality with lm-evaluation-harness against the
served OpenAI-compatible endpoint, and benchmarked for speed with guidellm (or ``vllm bench serve``), prefill
and decode measured apart (seed 003).

:func:`validation_plan` gives the structured form (steps, their commands as argument lists and as shell text,
and the thresholds each result is judged by); :func:`validate_script` the bash script that runs them.
:mod:`advisor.plan.verify` reads the results back.

The plan renders the engine's result and is never recomputed here: the pick's serve command is the plan's own
(its ``runtime`` section). A plan carries no serve command for the other steps, so for those the script says so
and offers the runtime's template from knowledge/runtimes.yaml with what the plan states filled in; a step whose
command cannot be completed from the plan runs only when its ``SERVE_<n>_<STEP>`` variable is set.

Every string that comes from the plan is treated as hostile: it reaches the script only through
:func:`shlex.quote`, and comment lines are cut to one printable line.

Tool versions and the command-line flags used were read from the tools themselves: lm-eval 0.4.13
(``lm_eval/_cli/run.py``, ``lm_eval/models/openai_completions.py``, ``lm_eval/models/api_models.py``, task names
from ``lm_eval/tasks``), guidellm 0.8.1 (``guidellm/cli/run.py`` and the pydantic argument models under
``guidellm/schemas``: ``guidellm run --backend kind=...``; the ``guidellm benchmark --target`` form of the 0.3/0.4
releases is gone) and vllm 0.33.0 (``vllm/benchmarks/serve.py`` ``add_cli_args``,
``vllm/benchmarks/datasets/datasets.py``). tests/test_validation_commands.py parses every generated command with
lm-eval's own parser and against the flag lists in tests/fixtures/tool_flags.json.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from advisor import __version__
from advisor.intake.request import MAX_REVISION, REVISION_NAME
from advisor.knowledge import load_knowledge
from advisor.knowledge.schema import Knowledge

LM_EVAL_VERSION = "0.4.13"  # pypi lm-eval
GUIDELLM_VERSION = "0.8.1"  # pypi guidellm
VLLM_BENCH_VERSION = "0.33.0"  # pypi vllm (vllm bench serve); the runtime pin in knowledge/runtimes.yaml

# The script's variables and their defaults; commands refer to them, the structured form resolves them.
DEFAULTS = {"HOST": "127.0.0.1", "PORT": "8000", "RESULTS": "results"}
TAIL_FACTOR = 1.2  # tail-latency: p99 no worse than 1.2x the baseline's (knowledge/validation.yaml)
SUSTAIN_SECONDS = 600  # tail-latency: sustained for 10 minutes (knowledge/validation.yaml)
PREFILL_REQUESTS = 100
MAX_EVAL_CONCURRENCY = 64  # lm-eval's num_concurrent: enough to keep a server busy, not a load test
RULER_LENGTHS = (4096, 8192, 16384, 32768, 65536, 131072)  # lm_eval/tasks/ruler/niah_single_1.yaml metric_list
FEWSHOT_CONTEXT = 4096  # below this context few-shot prompts may not fit; probes run zero-shot (same for every step)

# The served model name a runtime answers to, its host and port flags, and its health route. None: the runtime
# is not an HTTP server the script can start (transformers) or reads them from its own config (TabbyAPI).
SERVER_FLAGS: dict[str, dict[str, Any] | None] = {
    "vllm": {"name": "--served-model-name", "host": "--host", "port": "--port", "health": "/health",
             "source": "vllm 0.33.0 wheel: vllm/engine/arg_utils.py (--served-model-name), "
             "vllm/entrypoints/common/cli_args.py (host, port), vllm/entrypoints/serve/instrumentator/health.py"},
    "sglang": {"name": "--served-model-name", "host": "--host", "port": "--port", "health": "/health",
               "source": "sglang 0.5.23 wheel: sglang/srt/arg_groups/fields/serving.py (host, port, "
               "served_model_name)"},
    "llama.cpp": {"name": "--alias", "host": "--host", "port": "--port", "health": "/health",
                  "source": "ggml-org/llama.cpp common/arg.cpp ({\"-a\", \"--alias\"}), tools/server/README.md"},
    "tgi": {"name": None, "host": "--hostname", "port": "--port", "health": "/health",
            "extra": ["--enable-prefill-logprobs"],
            "source": "huggingface/text-generation-inference docs/source/reference/launcher.md @032fc4c "
            "(--hostname, --port, --enable-prefill-logprobs; no served-model-name flag)"},
    "tensorrt-llm": {"name": None, "host": "--host", "port": "--port", "health": "/health",
                     "source": "NVIDIA/TensorRT-LLM tensorrt_llm/commands/serve.py @00209af (--host, --port; "
                     "no served-model-name flag)"},
    "transformers": None,
    "exllamav2": None,
}
HF_LOADERS = ("vllm", "sglang", "tensorrt-llm", "tgi")  # runtimes that load a Hugging Face checkpoint by repo id
_HF_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_REVISION = re.compile(f"^{REVISION_NAME}$")  # as Request.model_revision allows (length checked beside it)


# --------------------------------------------------------------------------- shell words
@dataclass(frozen=True)
class Var:
    """A reference to one of the script's variables inside a command word."""

    name: str


Word = tuple  # of str (literal text) and Var parts, concatenated into one shell word


def _w(*parts: str | Var) -> Word:
    return tuple(p for p in parts if not (isinstance(p, str) and p == ""))


def shell_word(word: Word) -> str:
    """One shell word: literal parts through shlex.quote, variables as "${NAME}"."""
    if not word:
        return "''"
    return "".join(f'"${{{p.name}}}"' if isinstance(p, Var) else shlex.quote(p) for p in word)


def resolve_word(word: Word, values: dict[str, str]) -> str:
    return "".join(values[p.name] if isinstance(p, Var) else p for p in word)


def one_line(text: object, limit: int = 200) -> str:
    """Plan text fit for a comment line: printable, one line, cut."""
    s = "".join(ch if ch.isprintable() else " " for ch in str(text))
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


@dataclass
class Cmd:
    """One command: its argv (words), environment assignments and the tool it runs."""

    tool: str  # lm_eval | guidellm | vllm-bench | serve
    argv: list[Word]
    env: dict[str, str] = field(default_factory=dict)
    # in the script the program is an overridable variable (LM_EVAL, GUIDELLM, VLLM): argv[:skip] is replaced
    program_var: str | None = None
    skip: int = 0

    def shell(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        head = [f'"${{{self.program_var}_CMD[@]}}"'] if self.program_var else []
        words = head + [shell_word(w) for w in self.argv[self.skip if self.program_var else 0:]]
        return (env + " " if env else "") + " ".join(words)

    def resolved(self, values: dict[str, str]) -> list[str]:
        return [resolve_word(w, values) for w in self.argv]

    def as_dict(self, values: dict[str, str]) -> dict[str, Any]:
        return {"tool": self.tool, "argv": self.resolved(values), "env": dict(self.env),
                "shell": self.shell()}


def _lit(*args: object) -> list[Word]:
    return [_w(str(a)) for a in args]


# --------------------------------------------------------------------------- quality probes
@dataclass(frozen=True)
class Probe:
    """One lm-eval run: its tasks, the metrics compared, how it is sent, and the validation check it serves."""

    id: str
    title: str
    tasks: tuple[str, ...]
    metrics: dict[str, tuple[str, ...]]  # task -> "metric,filter" keys compared between steps
    check: str  # knowledge/validation.yaml id whose threshold applies
    chat: bool  # local-chat-completions with the chat template; else local-completions (loglikelihood works)
    higher_is_better: bool = True
    limit: int | None = None
    fewshot: int | None = None  # None: the task's own
    gen_tokens: int | None = None  # the task's max_gen_toks (capped to the context)
    unsafe_code: bool = False
    source: str = ""


PROBES: dict[str, Probe] = {p.id: p for p in (
    Probe("mmlu", "MMLU subset (20 questions per subject, 1,140 in all)", ("mmlu",), {"mmlu": ("acc,none",)},
          "task-probes", chat=False, limit=20, fewshot=5, source="lm_eval/tasks/mmlu/default/_mmlu.yaml"),
    Probe("lambada", "LAMBADA (OpenAI version), 1,000 passages", ("lambada_openai",),
          {"lambada_openai": ("acc,none",)}, "task-probes", chat=False, limit=1000, fewshot=0,
          source="lm_eval/tasks/lambada/lambada_openai.yaml"),
    Probe("ifeval", "IFEval instruction following (stands in for Arena-Hard, an LLM-judged set lm-eval lacks)",
          ("ifeval",), {"ifeval": ("prompt_level_strict_acc,none", "inst_level_strict_acc,none")},
          "task-probes", chat=True, limit=200, gen_tokens=1280, source="lm_eval/tasks/ifeval/ifeval.yaml"),
    Probe("wikitext", "WikiText-2 word perplexity", ("wikitext",), {"wikitext": ("word_perplexity,none",)},
          "perplexity-delta", chat=False, higher_is_better=False, source="lm_eval/tasks/wikitext/wikitext.yaml"),
    Probe("gsm8k", "GSM8K, 250 problems", ("gsm8k",), {"gsm8k": ("exact_match,flexible-extract",)},
          "multi-step-reasoning", chat=True, limit=250, fewshot=5, gen_tokens=256,
          source="lm_eval/tasks/gsm8k/gsm8k.yaml"),
    Probe("code", "HumanEval (all 164) and MBPP (200) pass@1", ("humaneval", "mbpp"),
          {"humaneval": ("pass@1,create_test",), "mbpp": ("pass_at_1,none",)}, "code-pass-rate", chat=False,
          limit=200, fewshot=None, gen_tokens=1024, unsafe_code=True,
          source="lm_eval/tasks/humaneval/humaneval.yaml, lm_eval/tasks/mbpp/mbpp.yaml"),
    Probe("jsonschema", "JSONSchemaBench (easy), 200 schemas: JSON validity and schema compliance",
          ("jsonschema_bench_easy",),
          {"jsonschema_bench_easy": ("json_validity,none", "schema_compliance,none")}, "structured-output",
          chat=True, limit=200, gen_tokens=512, source="lm_eval/tasks/jsonschema_bench/jsonschema_bench_easy.yaml"),
)}
NIAH_TASKS = ("niah_single_1", "niah_single_2", "niah_multikey_1")  # lm_eval/tasks/ruler
NIAH_LIMIT = 50

# Checks and probes lm-eval cannot run: what to do instead.
NOT_AUTOMATED = {
    "arena-hard": "Arena-Hard is judged by an LLM and is not an lm-eval task; IFEval runs in its place, and "
                  "the production-like prompts check covers open-ended chat",
    "safety-refusals": "no refusal-rate task in lm-eval 0.4.13: run a harmful-prompt and a benign-prompt set "
                       "against each served step and compare refusal rates (safety-behaviour)",
    "safety-behaviour": "no refusal-rate task in lm-eval 0.4.13: compare refusal and over-refusal rates by hand",
    "tool-call-validity": "no tool-calling task in lm-eval 0.4.13: run a BFCL subset plus your own tools against "
                          "each served step; JSONSchemaBench covers the argument-schema part",
    "tool-call-reliability": "no tool-calling task in lm-eval 0.4.13 (see tool-call-validity)",
    "internal-prompts": "your own prompts: replay a sample of production traffic against each served step",
    "compare-methods": "serve a second checkpoint of the same precision made by another method and run the same "
                       "probes; keep the better one",
    "calibration-data": "a property of the recipe, checked when the checkpoint is made",
    "drift-monitoring": "after rollout: re-run verify on fresh results; drift against the stored ones is flagged",
}


# --------------------------------------------------------------------------- the structured form
@dataclass
class Step:
    id: str  # baseline | step-N | pick | fallback
    role: str
    notation: str
    candidate: str
    runtime: str
    runtime_version: str | None
    weight_bits: int | None
    fits: bool | None
    note: str
    served_name: str
    env_var: str
    serve: Cmd | None  # the plan's own command (the pick's), or a completed template
    serve_from: str  # "plan" | "template" | "none"
    serve_note: str
    template: str | None
    config_file: str | None = None
    config: str | None = None
    same_as: str | None = None
    modelled: dict[str, Any] = field(default_factory=dict)
    expected: dict[str, Any] = field(default_factory=dict)
    quality: list[dict[str, Any]] = field(default_factory=list)  # probe runs (with their Cmd under "_cmd")
    speed: list[dict[str, Any]] = field(default_factory=list)
    thresholds: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EndpointRuns:
    index: int
    name: str
    slug: str
    workload: str
    shape: dict[str, Any]
    concurrency: int
    criteria: dict[str, Any]
    health: str
    steps: list[Step]
    probes: list[Probe]
    niah_lengths: list[int]
    not_automated: list[dict[str, str]]
    notes: list[str]
    skipped: str | None = None


def slug(name: str) -> str:
    """An endpoint name as a served-model-name and a directory: letters, digits, dot, dash, underscore."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._-")[:48]
    return s or "endpoint"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any, default: int) -> int:
    v = _num(value)
    return int(v) if v is not None and v >= 1 else default


def _str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def weight_bits(k: Knowledge, candidate: str, notation: str) -> int | None:
    """The step's weight precision: the candidate's tier in knowledge, else the W<bits> of its notation."""
    cand = k.candidates.get(candidate)
    if cand is not None:
        return int(cand.tier)
    m = re.match(r"W(\d+)", notation or "")
    return int(m.group(1)) if m else None


def model_id(plan: dict[str, Any]) -> str:
    model = _dict(plan.get("model"))
    ck = _dict(model.get("checkpoint"))
    base = ck.get("base_model") if ck.get("quantized") else None
    return _str(base) or _str(model.get("id")) or _str(_dict(plan.get("request")).get("model"))


def tokenizer_default(plan: dict[str, Any]) -> str:
    """The tokenizer lm-eval and the benchmarks size prompts with: the model's Hugging Face repo, when it is one."""
    mid = model_id(plan)
    return mid if _HF_REPO.match(mid) else ""


def _modelled(perf: Any) -> dict[str, Any]:
    perf = _dict(perf)
    out = {"ttft_ms": _num(perf.get("ttft_ms")), "tpot_ms": _num(perf.get("tpot_ms"))}
    bands = _dict(perf.get("bands_pct"))
    if bands:
        out["bands_pct"] = {k: v for k, v in bands.items() if _num(v) is not None}
    return out


def _template(k: Knowledge, runtime: str, values: dict[str, Any], half: bool) -> str | None:
    """The runtime's serve template with `values` filled in; with a `revision` value (the plan's model revision,
    given only when the step loads that repo), its revision flag too."""
    rt = k.runtimes.get(runtime)
    if rt is None or rt.serve is None:
        return None
    parts = [rt.serve.command]
    for purpose in ("tensor_parallel", "max_context", "max_prompt", "max_sequences"):
        flag = rt.serve.flags.get(purpose)
        if flag and (purpose != "tensor_parallel" or _int(values.get("gpus"), 1) > 1):
            parts.append(flag)
    if half and rt.serve.flags.get("half"):
        parts.append(rt.serve.flags["half"])
    if values.get("revision") and rt.serve.flags.get("revision"):
        parts.append(rt.serve.flags["revision"])
    out = " ".join(parts)
    for key, value in values.items():
        if value is not None:
            out = out.replace("{" + key + "}", str(value))
    return out


def _split(command: str) -> list[str] | None:
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    return argv or None


def _serve_cmd(argv: list[str]) -> Cmd:
    return Cmd("serve", [_w(a) for a in argv])


def _carried_serve(section: dict[str, Any]) -> tuple[str, str | None, str | None] | None:
    """A serve command a (future) plan may carry with a ladder step or the fallback."""
    for holder in (section, _dict(section.get("runtime_commands")), _dict(section.get("commands")),
                   _dict(section.get("runtime"))):
        cmd = holder.get("serve_command")
        if isinstance(cmd, str) and cmd.strip():
            return cmd, _str(holder.get("config_file")) or None, _str(holder.get("config")) or None
    return None


def _steps(k: Knowledge, plan: dict[str, Any], ep: dict[str, Any], index: int, ep_slug: str) -> list[Step]:
    rec, dep, runtime = _dict(ep.get("recommendation")), _dict(ep.get("deployment")), _dict(ep.get("runtime"))
    shape = _dict(ep.get("shape"))
    pick_runtime = _str(dep.get("runtime")) or _str(runtime.get("id"))
    pick_version = _str(dep.get("runtime_version")) or _str(runtime.get("version")) or None
    pick_argv = _split(_str(runtime.get("serve_command")))
    context = _int(shape.get("context"), 0) or None
    concurrency = _int(dep.get("requests_per_replica"), _int(shape.get("concurrency"), 1))
    mid = model_id(plan)

    rows: list[tuple[str, dict[str, Any]]] = []
    ladder = [s for s in _list(ep.get("ladder")) if isinstance(s, dict)]
    n = 0
    for s in ladder:
        role = _str(s.get("role"))
        if role == "baseline":
            rows.append(("baseline", s))
        elif role == "pick":
            rows.append(("pick", s))
        else:
            n += 1
            rows.append((f"step-{n}", s))
    if not any(sid == "pick" for sid, _ in rows):
        rows.append(("pick", {"role": "pick", "notation": rec.get("notation"), "candidate": rec.get("candidate"),
                              "runtime": pick_runtime, "fits": ep.get("fits"), "note": "recommended"}))
    fallback = _dict(ep.get("fallback"))
    if fallback:
        rows.append(("fallback", {**fallback, "role": "fallback", "note": "; ".join(
            one_line(w) for w in _list(fallback.get("why"))[:1]) or "configured fallback"}))

    steps: list[Step] = []
    for sid, s in rows:
        cand, notation = _str(s.get("candidate")), _str(s.get("notation"))
        rt = _str(s.get("runtime")) or pick_runtime
        bits = weight_bits(k, cand, notation)
        env_var = f"SERVE_{index}_{sid.upper().replace('-', '_')}"
        known = k.runtimes.get(rt)
        version = pick_version if sid == "pick" else (known.version if known else None)
        step = Step(id=sid, role=_str(s.get("role"), sid), notation=notation, candidate=cand, runtime=rt,
                    runtime_version=version, weight_bits=bits, fits=s.get("fits") if isinstance(s.get("fits"), bool)
                    else None, note=one_line(s.get("note", "")), served_name=f"{ep_slug}-{sid}", env_var=env_var,
                    serve=None, serve_from="none", serve_note="", template=None)
        if sid == "pick":
            step.modelled = _modelled(ep.get("performance"))
            q = _dict(ep.get("quality"))
            step.expected = {"expected_recovery_pct": _num(q.get("expected_recovery_pct")),
                             "worst_recovery_pct": _num(q.get("worst_recovery_pct"))}
            if pick_argv:
                step.serve, step.serve_from = _serve_cmd(pick_argv), "plan"
                step.serve_note = "the plan's serve command (runtime section)"
                step.config_file = _str(runtime.get("config_file")) or None
                step.config = _str(runtime.get("config")) or None
            else:
                step.serve_note = ("the plan's serve command could not be read as a command line"
                                   if _str(runtime.get("serve_command")).strip() else "the plan has no serve command "
                                   "for the pick (" + one_line("; ".join(map(str, _list(runtime.get("notes"))))) + ")")
        else:
            step.modelled = _modelled(s.get("performance"))
            q = _dict(s.get("quality"))
            step.expected = {"expected_recovery_pct": _num(q.get("expected_recovery_pct")),
                             "worst_recovery_pct": _num(q.get("worst_recovery_pct"))}
            carried = _carried_serve(s)
            argv = _split(carried[0]) if carried else None
            if argv:
                step.serve, step.serve_from = _serve_cmd(argv), "plan"
                step.serve_note = "the plan's serve command for this step"
                step.config_file, step.config = carried[1], carried[2]
            else:
                layout = _dict(s.get("layout"))
                gpus = _int(layout.get("tensor_parallel"), _int(dep.get("tensor_parallel"), 1))
                conc = _int(layout.get("requests_per_replica"), concurrency)
                sixteen = bits is not None and bits >= 16
                ckpt = mid if sixteen and rt in HF_LOADERS and mid else None
                known_rt = k.runtimes.get(rt)
                half_flag = known_rt.serve.flags.get("half") if known_rt and known_rt.serve else None
                half = bool(pick_argv and half_flag and rt == pick_runtime and half_flag in " ".join(pick_argv))
                model = _dict(plan.get("model"))
                # the plan's model revision names the requested repo: pinned when the step loads that repo
                revision = _str(model.get("revision")) if ckpt and ckpt == (
                    _str(model.get("repo")) or _str(model.get("id"))) else ""
                if not _REVISION.match(revision) or len(revision) > MAX_REVISION:  # a plan file edited by hand
                    revision = ""
                template = _template(k, rt, {"checkpoint": ckpt, "gpus": gpus, "context": context,
                                             "total_context": context * conc if context else None,
                                             "concurrency": conc, "prompt_tokens": shape.get("prompt_tokens"),
                                             "revision": revision or None},
                                     half)
                step.template = template
                why = ("the plan carries a serve command for the pick only; this is the runtime's template from "
                       "knowledge/runtimes.yaml")
                if template and "{" not in template and step.fits is not False:
                    argv = _split(template)
                    if argv:
                        step.serve, step.serve_from = _serve_cmd(argv), "template"
                        step.serve_note = (f"{why}, filled with the plan's model, context and concurrency (not an "
                                           "engine output: check the GPU count, and set " + env_var + " to change "
                                           "it)")
                if step.serve is None:
                    if template is None:
                        step.serve_note = f"no serve template for runtime {one_line(rt, 40)!r} in the knowledge base"
                    elif step.fits is False:
                        step.serve_note = (f"{why}; the plan says this step does not fit this hardware at the "
                                           f"endpoint's load ({step.note}): set {env_var} to serve it elsewhere")
                    else:
                        step.serve_note = (f"{why}; its checkpoint (" + (notation or cand) + ") is not named in the "
                                           f"plan: set {env_var} to the full command to measure this step")
        steps.append(step)
    # a fallback the ladder already serves is measured once
    seen: dict[tuple[str, str], str] = {}
    for step in steps:
        key = (step.notation, step.runtime)
        if step.id == "fallback" and key in seen:
            step.same_as = seen[key]
        seen.setdefault(key, step.id)
    return steps


def _probes(ep: dict[str, Any], checks: set[str], unacceptable: set[str], context: int) -> tuple[
        list[Probe], list[int], list[dict[str, str]]]:
    wanted = set(_list(ep.get("quality_probes")))
    out: list[str] = []

    def add(pid: str) -> None:
        if pid not in out:
            out.append(pid)

    if "task-probes" in checks or "mmlu-subset" in wanted:
        add("mmlu")
    if "task-probes" in checks:
        add("lambada")
    if "arena-hard" in wanted:
        add("ifeval")
    if "perplexity-delta" in checks or "perplexity" in wanted:
        add("wikitext")
    if "multi-step-reasoning" in checks or "gsm8k" in wanted:
        add("gsm8k")
    if "code-pass-rate" in checks or "humaneval" in wanted:
        add("code")
    if ({"structured-output", "tool-call-reliability"} & checks or {"json-schema-validity", "tool-call-validity"}
            & wanted or {"structured-output-errors", "tool-call-errors"} & unacceptable):
        add("jsonschema")
    lengths: list[int] = []
    not_automated: list[dict[str, str]] = []
    if ("long-context-faithfulness" in checks or {"needle-in-haystack", "long-context-faithfulness"} & wanted
            or "long-context-drift" in unacceptable):
        lengths = [n for n in RULER_LENGTHS if n <= context]
        if not lengths:
            not_automated.append({"id": "long-context-faithfulness", "what": (
                f"RULER's shortest length is {RULER_LENGTHS[0]:,} tokens and this endpoint serves {context:,}: "
                "no needle-in-a-haystack run fits; compare long prompts from your own traffic instead")})
    for key in sorted((wanted | checks) & set(NOT_AUTOMATED)):
        not_automated.append({"id": key, "what": NOT_AUTOMATED[key]})
    return [PROBES[p] for p in out], lengths, not_automated


def _rules(k: Knowledge, ep: dict[str, Any], step: Step, criteria: dict[str, Any], probes: list[Probe],
           niah: list[int]) -> list[dict[str, Any]]:
    """The thresholds a step's results are judged by: the plan's validation checks made numeric ("no slower than
    the baseline" allows decision.yaml verify-speed-noise-pct)."""
    noise = k.decision["verify-speed-noise-pct"].value / 100
    prose = {_str(c.get("id")): one_line(c.get("threshold", ""), 300)
             for c in _list(ep.get("validation")) if isinstance(c, dict)}

    def text(check: str) -> str:
        if prose.get(check):
            return prose[check]
        return one_line(k.validation[check].threshold, 300) if check in k.validation else ""

    bits = step.weight_bits
    floor = _num(criteria.get("quality_floor_pct"))
    rules: list[dict[str, Any]] = []
    for probe in probes:
        base = {"check": probe.check, "probe": probe.id, "plan_threshold": text(probe.check),
                "metrics": {t: list(m) for t, m in probe.metrics.items()}}
        if probe.check == "task-probes":
            ratio = 0.99 if bits is None or bits >= 8 else 0.98
            basis = f"{bits or '?'}-bit weights: {ratio:.0%} of baseline"
            if floor is not None and floor / 100 > ratio:
                ratio, basis = floor / 100, f"your quality floor, {floor:g}% of baseline"
            rules.append({**base, "kind": "ratio", "min_ratio": ratio, "basis": basis})
        elif probe.check in ("multi-step-reasoning", "code-pass-rate"):
            ratio = 0.99 if probe.check == "multi-step-reasoning" else 0.98
            rules.append({**base, "kind": "ratio", "min_ratio": ratio, "basis": f"{ratio:.0%} of baseline"})
        elif probe.check == "structured-output":
            rules.append({**base, "kind": "ratio", "min_ratio": 1.0, "min_value": 0.995,
                          "basis": "no lower than baseline, and at least 99.5% valid"})
        elif probe.check == "perplexity-delta":
            delta = 0.1 if bits is None or bits >= 8 else 0.5 if bits >= 4 else 1.0
            rules.append({**base, "kind": "delta", "max_increase": delta,
                          "basis": f"{bits or '?'}-bit weights: at most +{delta:g} over baseline"})
    if niah:
        rules.append({"check": "long-context-faithfulness", "probe": "niah", "kind": "drop", "max_drop": 0.01,
                      "plan_threshold": text("long-context-faithfulness"),
                      "metrics": {t: [f"{n},none" for n in niah] for t in NIAH_TASKS},
                      "basis": "at most 1 point (0.01 of a 0-1 score) below baseline at every length"})
    pd = text("prefill-decode-separately")
    rules.append({"check": "prefill-decode-separately", "probe": "prefill", "kind": "speed", "metric": "ttft_ms",
                  "stat": "p50", "max_ratio": 1 + noise, "plan_threshold": pd,
                  "basis": f"median TTFT at concurrency 1 no slower than baseline (+{noise:.0%} for noise)"})
    rules.append({"check": "prefill-decode-separately", "probe": "decode", "kind": "speed", "metric": "tpot_ms",
                  "stat": "p50", "max_ratio": 1 + noise, "plan_threshold": pd,
                  "basis": f"median TPOT at the endpoint's concurrency no slower than baseline (+{noise:.0%} "
                           "for noise)"})
    rules.append({"check": "tail-latency", "probe": "decode", "kind": "speed", "metric": "e2e_ms", "stat": "p99",
                  "max_ratio": TAIL_FACTOR, "plan_threshold": text("tail-latency"),
                  "basis": f"p99 end-to-end latency no worse than {TAIL_FACTOR:g}x the baseline's"})
    for metric, key, phase in (("ttft_ms", "max_ttft_ms", "prefill"), ("tpot_ms", "max_tpot_ms", "decode")):
        target = _num(criteria.get(key))
        if target is not None:
            rules.append({"check": f"target-{metric.split('_')[0]}", "probe": phase, "kind": "target",
                          "metric": metric, "stat": "p50", "max_value": target,
                          "plan_threshold": f"your target: {key} {target:g}",
                          "basis": f"median {metric.split('_')[0].upper()} within your {target:g} ms target"})
    return rules


def _lm_eval(probe: Probe, step: Step, ep: EndpointRuns, context: int, tasks: tuple[str, ...] | None = None,
             out_name: str | None = None, metadata: str | None = None, limit: int | None = None) -> Cmd:
    route = "/v1/chat/completions" if probe.chat else "/v1/completions"
    concurrent = min(max(ep.concurrency, 1), MAX_EVAL_CONCURRENCY)
    args: list[Word] = [_w(f"model={step.served_name},base_url=http://", Var("HOST"), ":", Var("PORT"),
                           f"{route},num_concurrent={concurrent},max_retries=3,tokenized_requests=False")]
    if not probe.chat or metadata:
        args[0] = args[0] + _w(",tokenizer=", Var("TOKENIZER"))
    if context:
        args[0] = args[0] + _w(f",max_length={context}")
    argv: list[Word] = _lit("lm_eval", "run", "--model", "local-chat-completions" if probe.chat
                            else "local-completions", "--model_args") + args
    argv += _lit("--tasks", ",".join(tasks or probe.tasks))
    fewshot = probe.fewshot
    if fewshot and context < FEWSHOT_CONTEXT:
        fewshot = 0
    if fewshot is not None:
        argv += _lit("--num_fewshot", fewshot)
    lim = limit if limit is not None else probe.limit
    if lim is not None:
        argv += _lit("--limit", lim)
    if probe.chat:
        argv += _lit("--apply_chat_template")
    if probe.gen_tokens and context and probe.gen_tokens > context // 2:
        argv += _lit("--gen_kwargs", f"max_gen_toks={max(128, context // 2)}")
    if metadata:
        argv += _lit("--metadata", metadata)
    if probe.unsafe_code:
        argv += _lit("--confirm_run_unsafe_code")
    argv += _lit("--seed", "1234")
    argv += [_w("--output_path"), _w(Var("RESULTS"), f"/{ep.slug}/{step.id}/lm_eval/{out_name or probe.id}")]
    env = {"HF_ALLOW_CODE_EVAL": "1"} if probe.unsafe_code else {}
    return Cmd("lm_eval", argv, env, program_var="LM_EVAL", skip=1)


def _speed_cmds(step: Step, ep: EndpointRuns) -> list[dict[str, Any]]:
    shape = ep.shape
    prompt = _int(shape.get("prompt_tokens"), 1024)
    output = _int(shape.get("output_tokens"), 256)
    runs = []
    for phase, out_tokens, streams, count, seconds in (
            ("prefill", 1, 1, PREFILL_REQUESTS, SUSTAIN_SECONDS),
            ("decode", output, ep.concurrency, max(500, ep.concurrency * 50), SUSTAIN_SECONDS)):
        base = f"{ep.slug}/{step.id}"
        guidellm = Cmd("guidellm", _lit("guidellm", "run", "--backend") + [
            _w("kind=openai_http,target=http://", Var("HOST"), ":", Var("PORT"),
               f",model={step.served_name},request_format=/v1/completions"),
            _w("--tokenizer"), _w("kind=huggingface_auto,model=", Var("TOKENIZER")),
        ] + _lit("--profile", f"kind=concurrent,streams={streams}",
                 "--data", f"kind=synthetic_text,prompt_tokens={prompt},output_tokens={out_tokens}",
                 "--constraint", f"kind=max_requests,count={count}",
                 "--constraint", f"kind=max_duration,seconds={seconds}",
                 "--metrics", "kind=generative,sample_size=0",
                 "--output") + [_w("kind=json,path=", Var("RESULTS"), f"/{base}/guidellm-{phase}.json")]
            + _lit("--label", f"endpoint={ep.slug}", "--label", f"step={step.id}", "--label", f"phase={phase}",
                   "--disable-console-interactive"), program_var="GUIDELLM", skip=1)
        prompts = PREFILL_REQUESTS if phase == "prefill" else min(max(200, 10 * ep.concurrency), 4000)
        vllm = Cmd("vllm-bench", _lit("vllm", "bench", "serve", "--backend", "openai", "--base-url") + [
            _w("http://", Var("HOST"), ":", Var("PORT"))] + _lit(
            "--endpoint", "/v1/completions", "--model", step.served_name, "--tokenizer") + [_w(Var("TOKENIZER"))]
            + _lit("--dataset-name", "random", "--random-input-len", prompt, "--random-output-len", out_tokens,
                   "--random-range-ratio", "0.0", "--ignore-eos", "--max-concurrency", streams,
                   "--num-prompts", prompts, "--request-rate", "inf", "--percentile-metrics", "ttft,tpot,itl,e2el",
                   "--metric-percentiles", "50,95,99", "--seed", "0", "--save-result", "--result-dir")
            + [_w(Var("RESULTS"), f"/{base}")] + _lit("--result-filename", f"vllm-bench-{phase}.json",
                                                        "--metadata", f"endpoint={ep.slug}", f"step={step.id}",
                                                        f"phase={phase}"),
            program_var="VLLM", skip=1)
        runs.append({"phase": phase, "prompt_tokens": prompt, "output_tokens": out_tokens, "concurrency": streams,
                     "requests": count if phase == "decode" else PREFILL_REQUESTS, "max_seconds": seconds,
                     "measures": "TTFT at the endpoint's prompt length, one request at a time" if phase == "prefill"
                     else "TPOT, TTFT under load and end-to-end latency at the endpoint's shape and concurrency "
                     f"({seconds // 60} minutes or {count:,} requests, whichever ends first)",
                     "_guidellm": guidellm, "_vllm": vllm})
    return runs


def _endpoints(plan: dict[str, Any], k: Knowledge | None = None) -> list[EndpointRuns]:
    k = k or load_knowledge()
    request = _dict(plan.get("request"))
    criteria = _dict(request.get("criteria"))
    unacceptable = {u for u in _list(criteria.get("unacceptable")) if isinstance(u, str)}
    out: list[EndpointRuns] = []
    used: set[str] = set()
    for i, ep in enumerate(e for e in _list(plan.get("endpoints")) if isinstance(e, dict)):
        name = _str(ep.get("name"), f"endpoint-{i + 1}")
        s = slug(name)
        while s in used:
            s = f"{s}_{i + 1}"
        used.add(s)
        shape = _dict(ep.get("shape"))
        dep = _dict(ep.get("deployment"))
        context = _int(shape.get("context"), 0)
        concurrency = _int(dep.get("total_requests"), _int(shape.get("concurrency"), 1))
        runs = EndpointRuns(index=i + 1, name=name, slug=s, workload=_str(ep.get("workload")), shape=shape,
                            concurrency=concurrency, criteria=criteria, health="/health", steps=[], probes=[],
                            niah_lengths=[], not_automated=[], notes=[])
        if not isinstance(ep.get("recommendation"), dict):
            runs.skipped = "nothing to validate: no configuration serves this endpoint on this hardware"
            out.append(runs)
            continue
        checks = {_str(c.get("id")) for c in _list(ep.get("validation")) if isinstance(c, dict)}
        runs.probes, runs.niah_lengths, runs.not_automated = _probes(ep, checks, unacceptable, context)
        runs.steps = _steps(k, plan, ep, i + 1, s)
        for step in runs.steps:
            server = SERVER_FLAGS.get(step.runtime)
            if server is None:
                step.serve_note += ("; " if step.serve_note else "") + (
                    f"{one_line(step.runtime, 40)} is not started by this script (not an HTTP server, or it reads "
                    f"its host and port from its own config): serve it yourself on $HOST:$PORT as "
                    f"{step.served_name} and run the script with {step.env_var}=external")
            step.thresholds = _rules(k, ep, step, criteria, runs.probes, runs.niah_lengths)
            for probe in runs.probes:
                step.quality.append({"probe": probe.id, "title": probe.title, "check": probe.check,
                                     "tasks": list(probe.tasks), "metrics": {t: list(m) for t, m in
                                                                             probe.metrics.items()},
                                     "higher_is_better": probe.higher_is_better, "limit": probe.limit,
                                     "source": f"lm-eval {LM_EVAL_VERSION} {probe.source}",
                                     "_cmd": _lm_eval(probe, step, runs, context)})
            for n in runs.niah_lengths:
                probe = Probe("niah", f"RULER needle-in-a-haystack at {n:,} tokens", NIAH_TASKS,
                              {t: (f"{n},none",) for t in NIAH_TASKS}, "long-context-faithfulness", chat=False,
                              limit=NIAH_LIMIT, source="lm_eval/tasks/ruler")
                step.quality.append({"probe": f"niah-{n}", "title": probe.title, "check": probe.check,
                                     "tasks": list(NIAH_TASKS), "metrics": {t: [f"{n},none"] for t in NIAH_TASKS},
                                     "higher_is_better": True, "limit": NIAH_LIMIT,
                                     "source": f"lm-eval {LM_EVAL_VERSION} {probe.source}",
                                     "_cmd": _lm_eval(probe, step, runs, context, out_name=f"niah-{n}",
                                                      metadata=f'{{"max_seq_lengths": [{n}]}}')})
            step.speed = _speed_cmds(step, runs)
        if context and context < FEWSHOT_CONTEXT:
            runs.notes.append(f"the endpoint's context is {context:,} tokens: few-shot probes run zero-shot and "
                              "answers are capped to half the context, the same for every step, because each step "
                              "is served with the plan's own context limit")
        out.append(runs)
    return out


def _values(plan: dict[str, Any]) -> dict[str, str]:
    return {**DEFAULTS, "TOKENIZER": tokenizer_default(plan) or "<set TOKENIZER>"}


def validation_plan(plan: dict[str, Any], knowledge: Knowledge | None = None) -> dict[str, Any]:
    """The validation runs of a plan, structured for the plan document and the UI: per endpoint, each step with
    its serve command, its lm-eval and benchmark commands (argv with the script's defaults filled in, and the
    shell text of the script) and the thresholds :mod:`advisor.plan.verify` judges its results by."""
    values = _values(plan)
    endpoints = []
    for ep in _endpoints(plan, knowledge):
        entry: dict[str, Any] = {"endpoint": ep.name, "slug": ep.slug, "workload": ep.workload}
        if ep.skipped:
            endpoints.append({**entry, "skipped": ep.skipped, "steps": []})
            continue
        steps = []
        for st in ep.steps:
            server = SERVER_FLAGS.get(st.runtime)
            steps.append({
                "id": st.id, "role": st.role, "notation": st.notation, "candidate": st.candidate,
                "runtime": st.runtime, "runtime_version": st.runtime_version, "weight_bits": st.weight_bits,
                "fits": st.fits, "note": st.note, "served_model_name": st.served_name,
                "results_dir": f"{values['RESULTS']}/{ep.slug}/{st.id}", "same_as": st.same_as,
                "serve": {"available": st.serve is not None, "from": st.serve_from, "note": st.serve_note,
                          "env_var": st.env_var, "template": st.template,
                          "argv": st.serve.resolved(values) if st.serve else None,
                          "server_flags": _server_flags(st, server, values) if server else None,
                          "health": server["health"] if server else None,
                          "config_file": st.config_file, "config": st.config},
                "modelled": st.modelled, "expected": st.expected,
                "quality": [{**{kk: v for kk, v in q.items() if not kk.startswith("_")},
                             "command": q["_cmd"].as_dict(values)} for q in st.quality],
                "speed": [{**{kk: v for kk, v in r.items() if not kk.startswith("_")},
                           "guidellm": r["_guidellm"].as_dict(values), "vllm_bench": r["_vllm"].as_dict(values)}
                          for r in st.speed],
                "thresholds": st.thresholds,
            })
        endpoints.append({**entry, "shape": ep.shape, "concurrency": ep.concurrency, "criteria": ep.criteria,
                          "niah_lengths": ep.niah_lengths, "not_automated": ep.not_automated, "notes": ep.notes,
                          "steps": steps})
    return {
        "tools": {"lm_eval": LM_EVAL_VERSION, "guidellm": GUIDELLM_VERSION, "vllm_bench": VLLM_BENCH_VERSION},
        "variables": values,
        "model": model_id(plan),
        "endpoints": endpoints,
    }


def _server_flags(step: Step, server: dict[str, Any], values: dict[str, str] | None) -> list[Any]:
    words: list[Word] = []
    if server.get("name"):
        words += [_w(server["name"]), _w(step.served_name)]
    words += [_w(server["host"]), _w(Var("HOST")), _w(server["port"]), _w(Var("PORT"))]
    words += [_w(x) for x in server.get("extra", [])]
    return [resolve_word(w, values) for w in words] if values is not None else words


# --------------------------------------------------------------------------- the script
_PRELUDE = r'''set -euo pipefail

# Settings: every one can be given in the environment.
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
RESULTS="${RESULTS:-results}"
SPEED_TOOL="${SPEED_TOOL:-guidellm}"      # guidellm, or vllm for `vllm bench serve`
HEALTH_TIMEOUT="${HEALTH_TIMEOUT:-1800}"  # seconds to wait for a server's health route
STEPS="${STEPS:-all}"                     # e.g. "chat/baseline chat/pick": only these steps
SKIP_QUALITY="${SKIP_QUALITY:-0}"
SKIP_SPEED="${SKIP_SPEED:-0}"
LOG_SAMPLES="${LOG_SAMPLES:-0}"           # 1: lm-eval also writes every sample (--log_samples)
# The tools, pinned: pip install "lm-eval[api]==@LM@" "guidellm==@GL@" (or "vllm==@VL@" for
# SPEED_TOOL=vllm). lm-eval's API models need its [api] extra. A command may be several words,
# e.g. LM_EVAL="uvx --from lm-eval[api]==@LM@ lm_eval".
read -r -a LM_EVAL_CMD <<< "${LM_EVAL:-lm_eval}"
read -r -a GUIDELLM_CMD <<< "${GUIDELLM:-guidellm}"
read -r -a VLLM_CMD <<< "${VLLM:-vllm}"
LOG_SAMPLES_ARGS=()
if [ "$LOG_SAMPLES" = 1 ]; then LOG_SAMPLES_ARGS=(--log_samples); fi

SERVER_PID=""
alive() {  # alive PID: still running (exited or a zombie is not)
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { kill -0 "$1" 2>/dev/null; return; }
  s=${s##*) }
  [ "${s%% *}" != Z ]
}
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  local pid="$SERVER_PID" waited=0
  SERVER_PID=""
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  while [ "$waited" -lt 60 ] && alive "$pid"; do sleep 1; waited=$((waited + 1)); done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

# start_server LOG COMMAND EXTRA...: the command (one string, as a shell would read it) with EXTRA appended,
# in its own process group so that stopping it stops its workers too.
start_server() {
  local log="$1" command="$2"; shift 2
  setsid bash -c "$command"' "$@"' serve "$@" >"$log" 2>&1 &
  SERVER_PID=$!
}

wait_health() {
  local url="http://$HOST:$PORT$1" log="$2" deadline=$((SECONDS + HEALTH_TIMEOUT))
  until curl -fsS -o /dev/null "$url"; do
    if ! alive "$SERVER_PID"; then
      echo "the server exited before $url answered; its log: $log" >&2; tail -n 20 "$log" >&2 || true; return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then echo "no answer from $url in $HEALTH_TIMEOUT s; log: $log" >&2; return 1; fi
    sleep 5
  done
}

wanted() {  # wanted ENDPOINT STEP
  [ "$STEPS" = all ] && return 0
  local s; for s in $STEPS; do [ "$s" = "$1/$2" ] && return 0; done; return 1
}
'''


def _line(text: str) -> str:
    return "# " + one_line(text, 180)


def validate_script(plan: dict[str, Any], knowledge: Knowledge | None = None) -> str:
    """A bash script that serves each step of each endpoint in turn, waits for its health route, runs the
    quality probes and the speed runs, and stops it. Results land in $RESULTS/<endpoint>/<step>/."""
    eps = _endpoints(plan, knowledge)
    mid = model_id(plan)
    tok = tokenizer_default(plan)
    out = ["#!/usr/bin/env bash",
           _line(f"Validation runs for {mid or 'the model'}: generated by precision-advisor {__version__} from the "
                 "plan (advisor/plan/validation.py)."),
           "# For each endpoint and ladder step: start the server, wait for its health route, run the quality "
           f"probes (lm-eval {LM_EVAL_VERSION}),",
           f"# the prefill and decode speed runs (guidellm {GUIDELLM_VERSION}, or vllm bench serve "
           f"{VLLM_BENCH_VERSION} with SPEED_TOOL=vllm),",
           "# stop the server. Results: $RESULTS/<endpoint>/<step>/. Read them back with verify "
           "(advisor/plan/verify.py).",
           "# The quality probes score each step against the baseline on the same prompts; the sample counts "
           "(--limit) keep a step to about an hour.",
           _PRELUDE.replace("@LM@", LM_EVAL_VERSION).replace("@GL@", GUIDELLM_VERSION).replace(
               "@VL@", VLLM_BENCH_VERSION)]
    out += ["# The tokenizer that sizes prompts (the model's Hugging Face repo).",
            f"TOKENIZER=\"${{TOKENIZER:-}}\"\nif [ -z \"$TOKENIZER\" ]; then TOKENIZER={shlex.quote(tok)}; fi",
            'if [ -z "$TOKENIZER" ]; then echo "set TOKENIZER to the Hugging Face repo of the model\'s tokenizer" '
            '>&2; exit 2; fi', ""]
    calls = []
    for ep in eps:
        out.append(_line(f"Endpoint {ep.index}: {ep.name} ({ep.workload}); results under $RESULTS/{ep.slug}/"))
        if ep.skipped:
            out += [_line(ep.skipped), ""]
            continue
        for note in ep.notes:
            out.append(_line(note))
        for item in ep.not_automated:
            out.append(_line(f"not run here ({item['id']}): {item['what']}"))
        for st in ep.steps:
            fn = f"run_{ep.index}_{st.id.replace('-', '_')}"
            server = SERVER_FLAGS.get(st.runtime)
            out.append("")
            out.append(_line(f"{ep.slug}/{st.id}: {st.notation} on {st.runtime} {st.runtime_version or ''} "
                             f"({st.note}); served as {st.served_name}"))
            out.append(_line(f"serve: {st.serve_note}"))
            if st.template and st.serve_from != "plan":
                out.append(_line(f"template: {st.template}"))
            default = shlex.join(st.serve.resolved({})) if st.serve and server is not None else ""
            out.append(f'{st.env_var}="${{{st.env_var}:-}}"')
            out.append(f"if [ -z \"${st.env_var}\" ]; then {st.env_var}={shlex.quote(default)}; fi")
            out.append(f"{fn}() {{")
            out.append(f"  local dir=\"$RESULTS\"/{shlex.quote(ep.slug)}/{shlex.quote(st.id)}")
            if st.same_as:
                out.append(f"  echo {shlex.quote(f'{ep.slug}/{st.id}: the same configuration as {st.same_as}, measured there')}")
                out.append("}")
                calls.append((ep.slug, st.id, fn))
                continue
            out.append(f"  if [ -z \"${st.env_var}\" ] || [ \"${st.env_var}\" = skip ]; then")
            out.append(f"    echo {shlex.quote(f'{ep.slug}/{st.id}: skipped: no serve command (set {st.env_var})')}"
                       " >&2; return 0")
            out.append("  fi")
            out.append('  mkdir -p "$dir"')
            if st.config_file and st.config:
                if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", st.config_file):
                    out.append(f"  printf '%s' {shlex.quote(st.config)} > {shlex.quote(st.config_file)}"
                               "  # the plan's config file, where its command reads it")
                else:
                    out.append(_line(f"  the plan's config file name {st.config_file!r} is not a plain file name: "
                                     "write it yourself"))
            out.append(f"  if [ \"${st.env_var}\" = external ]; then")
            out.append(f"    echo {shlex.quote(f'{ep.slug}/{st.id}: using the server already on ')}\"$HOST:$PORT\"")
            if server is not None:
                flags = " ".join(shell_word(w) for w in _server_flags(st, server, None))
                out.append("  else")
                out.append(f'    start_server "$dir/server.log" "${st.env_var}" {flags}')
                out.append(f"    wait_health {shlex.quote(server['health'])} \"$dir/server.log\"")
            else:
                out.append("  else")
                out.append(f"    echo {shlex.quote(f'{ep.slug}/{st.id}: this script cannot start {st.runtime}: serve it on ')}"
                           f"\"$HOST:$PORT\"{shlex.quote(f' as {st.served_name}, then run again with {st.env_var}=external')}"
                           " >&2; return 0")
            out.append("  fi")
            out.append('  if [ "$SKIP_QUALITY" != 1 ]; then')
            for q in st.quality:
                out.append(f"    {q['_cmd'].shell()} ${{LOG_SAMPLES_ARGS[@]+\"${{LOG_SAMPLES_ARGS[@]}}\"}}")
            out.append("  fi")
            out.append('  if [ "$SKIP_SPEED" != 1 ]; then')
            for run in st.speed:
                out.append('    if [ "$SPEED_TOOL" = vllm ]; then')
                out.append(f"      {run['_vllm'].shell()}")
                out.append("    else")
                out.append(f"      {run['_guidellm'].shell()}")
                out.append("    fi")
            out.append("  fi")
            out.append("  stop_server")
            out.append("}")
            calls.append((ep.slug, st.id, fn))
        out.append("")
    out.append("# Run the steps in ladder order: baseline first, then each step down, the pick and the fallback.")
    for ep_slug, sid, fn in calls:
        out.append(f"if wanted {shlex.quote(ep_slug)} {shlex.quote(sid)}; then {fn}; fi")
    out.append('echo "done: results in $RESULTS/"')
    return "\n".join(out) + "\n"

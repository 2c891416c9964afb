"""Validation results read back into the plan: each step's quality and speed against its thresholds and against
the 16-bit baseline, a decision per endpoint, and the measured figures beside the modelled ones.

Reads the files the validation script (:mod:`advisor.plan.validation`) leaves:

* lm-evaluation-harness results (``results_<date>.json``; lm-eval 0.4.13 ``lm_eval/result_schema.py``
  ``EvalResults``): ``results`` {task: {"acc,none": .., "acc_stderr,none": ..}}, ``groups``,
  ``group_subtasks``, ``n-samples`` {task: {original, effective}}, ``config`` {model, model_args, limit, ...},
  ``versions``, ``model_name``, ``lm_eval_version``;
* guidellm reports (``--output kind=json``; guidellm 0.8.1 ``benchmark/schemas/report.py``
  ``GenerativeBenchmarksReport``): ``metadata`` {version: 2, guidellm_version}, ``config`` (the scenario:
  ``spec.backend.model``, ``metadata.labels``), ``benchmarks`` [{``config.strategy`` {type_, streams},
  ``metrics`` {time_to_first_token_ms, time_per_output_token_ms, request_latency (seconds), ...}}], each metric
  a status breakdown {successful, errored, incomplete, total} of distributions {mean, median, percentiles
  {p50, p95, p99, ...}} (``schemas/base/statistics.py``);
* ``vllm bench serve --save-result`` files (vllm 0.33.0 ``vllm/benchmarks/serve.py``): ``model_id``,
  ``max_concurrency``, ``completed``, ``mean_ttft_ms``, ``median_ttft_ms``, ``p99_ttft_ms`` (one ``p<N>_`` key per
  ``--metric-percentiles`` value), the same for ``tpot``, ``itl`` and ``e2el``, ``output_throughput``, and the
  ``--metadata`` keys.

Each file names its endpoint and step by the served model name ``<endpoint>-<step>`` (the labels or metadata
the script adds, or its path ``.../<endpoint>/<step>/...``). A bad file (not JSON, not one of these formats,
another model, none of the tasks asked for, over 20 MB) stops with one :class:`AdvisorInputError` naming it.

:func:`verify` returns the verdict and the plan with, per endpoint, ``measured`` (measured speed beside the
modelled, quality per task, the runtime and model they were validated on, earlier measurements kept under
``history``), ``decision`` and ``drift``; the plan's ``schema_version`` becomes 3 in the returned copy only.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.errors import AdvisorInputError, shown
from advisor.knowledge import load_knowledge
from advisor.knowledge.schema import Knowledge
from advisor.plan import validation as V

SCHEMA_VERSION = 3
MAX_RESULT_BYTES = 20 * 1024 * 1024
MAX_FILES = 500
HISTORY_KEEP = 20  # earlier measured snapshots kept in the plan, newest first
RESULT_GLOBS = ("results_*.json", "guidellm-*.json", "vllm-bench-*.json")


# --------------------------------------------------------------------------- reading files
def read_results(paths: Iterable[Path | str]) -> list[tuple[str, bytes]]:
    """The files as :func:`verify` takes them, each read no further than the size limit."""
    out = []
    for i, p in enumerate(paths):
        if i >= MAX_FILES:
            raise AdvisorInputError("results", f"more than {MAX_FILES} result files; verify them in parts")
        path = Path(p)
        try:
            with path.open("rb") as fh:
                data = fh.read(MAX_RESULT_BYTES + 1)
        except OSError as exc:
            raise AdvisorInputError(f"result file {shown(str(path), 120, quote=False)}",
                                    f"cannot be read ({exc.strerror or type(exc).__name__})") from None
        out.append((str(path), data))
    return out


def collect_results(root: Path | str) -> list[tuple[str, bytes]]:
    """Every result file the validation script writes under a results directory (lm-eval's samples files and
    server logs are left out), in a stable order."""
    root = Path(root)
    found = sorted({p for pattern in RESULT_GLOBS for p in root.rglob(pattern) if p.is_file()})
    return read_results(found)


def _err(name: str, message: str) -> AdvisorInputError:
    return AdvisorInputError(f"result file {shown(name, 120, quote=False)}", message)


def _load_json(name: str, data: bytes | str) -> dict[str, Any]:
    if len(data) > MAX_RESULT_BYTES:
        raise _err(name, f"is over {MAX_RESULT_BYTES // (1024 * 1024)} MB; result files are small (run guidellm "
                         "with --metrics kind=generative,sample_size=0 and vllm bench without --save-detailed)")
    try:
        doc = json.loads(data)
    except UnicodeDecodeError:
        raise _err(name, "is not text (expected a JSON result file)") from None
    except RecursionError:
        raise _err(name, "is nested too deeply to be a result file") from None
    except ValueError as exc:
        at = f" at line {exc.lineno}" if hasattr(exc, "lineno") else ""
        raise _err(name, f"is not JSON{at}") from None
    if not isinstance(doc, dict):
        raise _err(name, "is JSON but not an object (expected an lm-eval, guidellm or vllm bench result)")
    return doc


# --------------------------------------------------------------------------- one result
@dataclass
class Result:
    file: str
    kind: str  # lm_eval | guidellm | vllm-bench
    endpoint: str = ""
    step: str = ""
    phase: str | None = None  # speed runs: prefill | decode
    served_name: str | None = None
    quality: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> metric -> value
    stderr: dict[str, dict[str, float]] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    speed: dict[str, Any] = field(default_factory=dict)
    tool_version: str | None = None
    model_revision: str | None = None
    notes: list[str] = field(default_factory=list)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def _d(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _kind(doc: dict[str, Any]) -> str | None:
    if isinstance(doc.get("results"), dict) and any(k in doc for k in ("versions", "n-samples", "config",
                                                                           "configs", "lm_eval_version")):
        return "lm_eval"
    meta = _d(doc.get("metadata"))
    if isinstance(doc.get("benchmarks"), list) and ("guidellm_version" in meta or any(
            _d(b).get("type_") == "generative_benchmark" for b in doc["benchmarks"][:5])):
        return "guidellm"
    if "model_id" in doc and any(k in doc for k in ("median_ttft_ms", "mean_ttft_ms", "median_e2el_ms",
                                                      "mean_e2el_ms")):
        return "vllm-bench"
    return None


def _model_args_name(args: Any) -> str | None:
    if isinstance(args, dict):
        v = args.get("model") or args.get("pretrained")
        return v if isinstance(v, str) else None
    if isinstance(args, str):
        for part in args.split(","):
            key, _, value = part.partition("=")
            if key.strip() in ("model", "pretrained") and value:
                return value.strip()
    return None


def _lm_eval(name: str, doc: dict[str, Any]) -> Result:
    r = Result(name, "lm_eval")
    cfg = _d(doc.get("config"))
    r.served_name = _model_args_name(cfg.get("model_args")) or (
        doc["model_name"] if isinstance(doc.get("model_name"), str) else None)
    r.tool_version = doc.get("lm_eval_version") if isinstance(doc.get("lm_eval_version"), str) else None
    for key in ("model_revision", "model_sha"):
        if isinstance(cfg.get(key), str) and cfg[key]:
            r.model_revision = cfg[key]
            break
    for table in (_d(doc.get("results")), _d(doc.get("groups"))):  # a group's row is in both; results wins
        for task, metrics in table.items():
            if not isinstance(task, str) or not isinstance(metrics, dict):
                raise _err(name, f"is not an lm-eval results file: results[{shown(task, 40)}] is not a mapping "
                                 "of metrics")
            for key, value in metrics.items():
                v = _num(value)
                if not isinstance(key, str) or "," not in key or v is None:
                    continue
                metric, _, filt = key.partition(",")
                if metric.endswith("_stderr"):
                    r.stderr.setdefault(task, {}).setdefault(f"{metric[:-7]},{filt}", v)
                else:
                    r.quality.setdefault(task, {}).setdefault(key, v)
    if not r.quality:
        raise _err(name, "is an lm-eval results file with no task results")
    counts = _d(doc.get("n-samples"))
    subtasks = _d(doc.get("group_subtasks"))

    def effective(task: str, depth: int = 0) -> int | None:
        row = _d(counts.get(task))
        if _num(row.get("effective")) is not None:
            return int(row["effective"])
        if depth > 8 or not isinstance(subtasks.get(task), list):
            return None
        parts = [effective(t, depth + 1) for t in subtasks[task] if isinstance(t, str)]
        known = [p for p in parts if p is not None]
        return sum(known) if known else None

    for task in r.quality:
        n = effective(task)
        if n is not None:
            r.samples[task] = n
    return r


def _dist(summary: Any, scale: float = 1.0) -> dict[str, float] | None:
    """guidellm StatusDistributionSummary -> {p50, p95, p99, mean} of its successful requests."""
    s = _d(_d(summary).get("successful"))
    pct = _d(s.get("percentiles"))
    out = {"p50": _num(pct.get("p50")) if _num(pct.get("p50")) is not None else _num(s.get("median")),
           "p95": _num(pct.get("p95")), "p99": _num(pct.get("p99")), "mean": _num(s.get("mean"))}
    if all(v is None for v in out.values()):
        return None
    return {k: round(v * scale, 4) for k, v in out.items() if v is not None}


def _guidellm(name: str, doc: dict[str, Any]) -> Result:
    r = Result(name, "guidellm")
    meta = _d(doc.get("metadata"))
    r.tool_version = meta.get("guidellm_version") if isinstance(meta.get("guidellm_version"), str) else None
    scenario = _d(doc.get("config"))
    spec = _d(scenario.get("spec"))
    backend = _d(spec.get("backend"))
    r.served_name = backend.get("model") if isinstance(backend.get("model"), str) and backend.get("model") else None
    labels = _d(_d(scenario.get("metadata")).get("labels"))
    r.endpoint = labels.get("endpoint", "") if isinstance(labels.get("endpoint"), str) else ""
    r.step = labels.get("step", "") if isinstance(labels.get("step"), str) else ""
    phase = labels.get("phase")
    data = [d for d in spec.get("data", []) if isinstance(d, dict)] if isinstance(spec.get("data"), list) else []
    benches = [b for b in doc["benchmarks"] if isinstance(b, dict)]
    if not benches:
        raise _err(name, "is a guidellm report with no benchmarks")
    bench = benches[-1]
    metrics = bench.get("metrics")
    if not isinstance(metrics, dict) or not isinstance(metrics.get("time_to_first_token_ms"), dict):
        raise _err(name, "is not a guidellm 0.8 report: benchmarks[].metrics.time_to_first_token_ms is missing")
    strategy = _d(_d(bench.get("config")).get("strategy"))
    out_tokens = _num(data[0].get("output_tokens")) if data else None
    prompt_tokens = _num(data[0].get("prompt_tokens")) if data else None
    if phase not in ("prefill", "decode"):
        phase = "prefill" if out_tokens == 1 else "decode" if out_tokens else None
    r.phase = phase
    totals = _d(metrics.get("request_totals"))
    r.speed = {
        "tool": "guidellm",
        "concurrency": _num(strategy.get("streams")),
        "prompt_tokens": prompt_tokens,
        "output_tokens": out_tokens,
        "requests": _num(totals.get("successful")),
        "errored": _num(totals.get("errored")),
        "ttft_ms": _dist(metrics.get("time_to_first_token_ms")),
        "tpot_ms": _dist(metrics.get("time_per_output_token_ms")),
        "itl_ms": _dist(metrics.get("inter_token_latency_ms")),
        "e2e_ms": _dist(metrics.get("request_latency"), 1000.0),  # request_latency is in seconds
        "output_tokens_per_s": (_dist(metrics.get("output_tokens_per_second")) or {}).get("mean"),
    }
    if r.speed["ttft_ms"] is None:
        raise _err(name, "is not a guidellm 0.8 report: time_to_first_token_ms has no successful requests")
    return r


def _vllm(name: str, doc: dict[str, Any]) -> Result:
    r = Result(name, "vllm-bench")
    r.served_name = doc.get("model_id") if isinstance(doc.get("model_id"), str) else None
    r.endpoint = doc.get("endpoint", "") if isinstance(doc.get("endpoint"), str) else ""
    r.step = doc.get("step", "") if isinstance(doc.get("step"), str) else ""

    def stats(metric: str) -> dict[str, float] | None:
        out = {"p50": _num(doc.get(f"p50_{metric}_ms")) if _num(doc.get(f"p50_{metric}_ms")) is not None
               else _num(doc.get(f"median_{metric}_ms")),
               "p95": _num(doc.get(f"p95_{metric}_ms")), "p99": _num(doc.get(f"p99_{metric}_ms")),
               "mean": _num(doc.get(f"mean_{metric}_ms"))}
        return {k: v for k, v in out.items() if v is not None} or None

    completed = _num(doc.get("completed"))
    out_total = _num(doc.get("total_output_tokens"))
    phase = doc.get("phase")
    if phase not in ("prefill", "decode"):
        phase = ("prefill" if out_total / completed <= 1.5 else "decode") if completed and out_total else None
    r.phase = phase
    r.speed = {"tool": "vllm-bench", "concurrency": _num(doc.get("max_concurrency")),
               "prompt_tokens": round(_num(doc.get("total_input_tokens")) / completed, 1)
               if completed and _num(doc.get("total_input_tokens")) else None,
               "output_tokens": round(out_total / completed, 1) if completed and out_total else None,
               "requests": completed, "errored": _num(doc.get("failed")),
               "ttft_ms": stats("ttft"), "tpot_ms": stats("tpot"), "itl_ms": stats("itl"), "e2e_ms": stats("e2el"),
               "output_tokens_per_s": _num(doc.get("output_throughput"))}
    if r.speed["ttft_ms"] is None and r.speed["e2e_ms"] is None:
        raise _err(name, "is not a vllm bench serve result: no ttft or e2el figures")
    return r


def parse_result(name: str, data: bytes | str) -> Result:
    doc = _load_json(name, data)
    kind = _kind(doc)
    if kind == "lm_eval":
        return _lm_eval(name, doc)
    if kind == "guidellm":
        return _guidellm(name, doc)
    if kind == "vllm-bench":
        return _vllm(name, doc)
    raise _err(name, "is not an lm-eval results file, a guidellm report or a vllm bench serve result "
                     "(expected 'results', 'benchmarks' or 'model_id' with latency figures)")


# --------------------------------------------------------------------------- which step
def _identify(r: Result, names: dict[str, tuple[str, str]], pairs: set[tuple[str, str]], aliases: set[str]) -> None:
    by_label = (r.endpoint, r.step) if (r.endpoint, r.step) in pairs else None
    by_name = names.get(r.served_name or "")
    parts = Path(r.file.replace("\\", "/")).parts
    by_path = next(((a, b) for a, b in zip(parts, parts[1:], strict=False) if (a, b) in pairs), None)
    found = by_label or by_name
    if found is None and r.served_name and r.served_name not in aliases:
        expected = ", ".join(sorted(names)[:4]) + (", ..." if len(names) > 4 else "")
        raise _err(r.file, f"holds results for another model, {shown(r.served_name, 60)}; this plan's steps are "
                           f"served as {expected}")
    found = found or by_path
    if found is None:
        raise _err(r.file, "does not say which endpoint and step it measured: serve each step as "
                           "<endpoint>-<step> (the validation script does) or keep it under "
                           "<results>/<endpoint>/<step>/")
    r.endpoint, r.step = found
    if r.kind != "lm_eval" and r.phase is None:
        low = r.file.lower()
        r.phase = "prefill" if "prefill" in low else "decode" if "decode" in low else None
        if r.phase is None:
            raise _err(r.file, "is a speed result that is neither the prefill run (1 output token) nor the decode "
                               "run; name it *-prefill.json or *-decode.json")


# --------------------------------------------------------------------------- judging
def _stat(speed: dict[str, Any] | None, metric: str, stat: str) -> float | None:
    return _num(_d(_d(speed).get(metric)).get(stat))


def _check_quality(rule: dict[str, Any], step: dict[str, Any], base: dict[str, Any], noise_se: float
                   ) -> list[dict[str, Any]]:
    rows = []
    for task, metrics in rule["metrics"].items():
        for metric in metrics:
            v = _num(_d(step["quality"].get(task)).get(metric))
            b = _num(_d(base["quality"].get(task)).get(metric))
            if v is not None and v < 0 and rule["kind"] == "drop":
                v = None  # RULER scores a length it did not run as -1
            if b is not None and b < 0 and rule["kind"] == "drop":
                b = None
            row: dict[str, Any] = {"check": rule["check"], "probe": rule["probe"], "task": task, "metric": metric,
                                   "value": v, "baseline": b, "threshold": rule["basis"],
                                   "plan_threshold": rule.get("plan_threshold", "")}
            if v is None or b is None:
                row["status"] = "missing"
                row["why"] = ("no result for this step" if v is None else "no baseline result to compare with")
                row["missing"] = "step" if v is None else "baseline"
                rows.append(row)
                continue
            n_step, n_base = step["samples"].get(task), base["samples"].get(task)
            if n_step is not None and n_base is not None and n_step != n_base:
                row.update(status="missing", missing="comparable",
                           why=f"scored on {n_step} samples against the baseline's {n_base}: rerun with the same "
                               "--limit")
                rows.append(row)
                continue
            if rule["kind"] == "ratio":
                ratio = v / b if b > 0 else (1.0 if v >= b else 0.0)
                row["ratio"] = round(ratio, 4)
                ok = ratio >= rule["min_ratio"] - 1e-9
                row["status"] = "pass" if ok else "fail"
                floor = rule.get("min_value")
                if floor is not None and v < floor:
                    if b < floor:
                        row["status"] = "warn" if ok else "fail"
                        row["why"] = (f"{v:.4g} is below {floor:g}, and so is the baseline's {b:.4g}: the gap is "
                                      "not this step's doing (constrained decoding closes it)")
                    else:
                        row["status"] = "fail"
                        row["why"] = f"{v:.4g} is below {floor:g}"
            elif rule["kind"] == "delta":
                row["change"] = round(v - b, 4)
                row["status"] = "pass" if v - b <= rule["max_increase"] + 1e-9 else "fail"
            else:  # drop
                row["change"] = round(v - b, 4)
                row["status"] = "pass" if b - v <= rule["max_drop"] + 1e-9 else "fail"
            se_v, se_b = _num(_d(step["stderr"].get(task)).get(metric)), _num(_d(base["stderr"].get(task)).get(metric))
            if row["status"] == "fail" and se_v is not None and se_b is not None:
                noise = noise_se * math.hypot(se_v, se_b)
                if abs(v - b) < noise:
                    row["within_noise"] = True
                    row["why"] = (f"the difference ({v - b:+.4g}) is within {noise_se:g} standard errors "
                                  f"({noise:.4g}; decision.yaml verify-quality-noise-stderr): rerun with more samples "
                                  "(a higher --limit) before acting on it")
            rows.append(row)
    return rows


def _check_speed(rule: dict[str, Any], step: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
    phase, metric, stat = rule["probe"], rule["metric"], rule["stat"]
    v = _stat(step["speed"].get(phase), metric, stat)
    row: dict[str, Any] = {"check": rule["check"], "probe": phase, "metric": f"{metric} {stat}", "value": v,
                           "threshold": rule["basis"], "plan_threshold": rule.get("plan_threshold", "")}
    if rule["kind"] == "target":
        row["target"] = rule["max_value"]
        if v is None:
            return {**row, "status": "missing", "missing": "step", "why": f"no {phase} run for this step"}
        return {**row, "status": "pass" if v <= rule["max_value"] else "fail"}
    b = _stat(_d(base)["speed"].get(phase), metric, stat) if base else None
    row["baseline"] = b
    if v is None or b is None:
        return {**row, "status": "missing", "missing": "step" if v is None else "baseline",
                "why": f"no {phase} run " + ("for this step" if v is None else "for the baseline")}
    c_step = _num(_d(step["speed"].get(phase)).get("concurrency"))
    c_base = _num(_d(base["speed"].get(phase)).get("concurrency")) if base else None
    if c_step is not None and c_base is not None and c_step != c_base:
        return {**row, "status": "missing", "missing": "comparable",
                "why": f"measured at concurrency {c_step:g} against the baseline's {c_base:g}"}
    ratio = v / b if b > 0 else 1.0
    return {**row, "ratio": round(ratio, 4), "status": "pass" if ratio <= rule["max_ratio"] + 1e-9 else "fail"}


def _vs_model(step_plan: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    """Measured speed beside the modelled one, and whether it falls inside the speed model's band."""
    model = _d(step_plan.get("modelled"))
    bands = _d(model.get("bands_pct"))
    out = {}
    for metric, phase, band in (("ttft_ms", "prefill", "prefill"), ("tpot_ms", "decode", "decode")):
        m = _num(model.get(metric))
        got = _d(_d(measured.get(phase)).get(metric))
        entry: dict[str, Any] = {"modelled": m, "measured_p50": _num(got.get("p50")),
                                 "measured_p95": _num(got.get("p95")), "measured_p99": _num(got.get("p99")),
                                 "band_pct": _num(bands.get(band))}
        if m and entry["measured_p50"] is not None:
            entry["error_pct"] = round((entry["measured_p50"] / m - 1) * 100, 1)
            if entry["band_pct"] is not None:
                entry["within_band"] = abs(entry["error_pct"]) <= entry["band_pct"]
        out[metric] = entry
    return out


def _empty_step() -> dict[str, Any]:
    return {"quality": {}, "stderr": {}, "samples": {}, "speed": {}, "files": [], "served_model_name": None}


def _gather(results: list[Result], slug: str, steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each step's results; of lm-eval's tasks only those the step's probes score (a group's subtasks are left
    out of the plan)."""
    got = {s["id"]: _empty_step() for s in steps}
    wanted = {s["id"]: {t for q in s["quality"] for t in q["tasks"]} for s in steps}
    for r in results:
        if r.endpoint != slug or r.step not in got:
            continue
        g = got[r.step]
        g["files"].append(r.file)
        g["served_model_name"] = g["served_model_name"] or r.served_name
        if r.kind == "lm_eval":
            for task, metrics in r.quality.items():
                if task in wanted[r.step]:
                    g["quality"].setdefault(task, {}).update(metrics)
            for task, metrics in r.stderr.items():
                if task in wanted[r.step]:
                    g["stderr"].setdefault(task, {}).update(metrics)
            g["samples"].update({t: n for t, n in r.samples.items() if t in wanted[r.step]})
        elif r.phase:
            g["speed"][r.phase] = r.speed
    for s in steps:  # a fallback the ladder already serves shares that step's results
        if s.get("same_as") in got and not got[s["id"]]["files"]:
            got[s["id"]] = {**got[s["same_as"]], "files": list(got[s["same_as"]]["files"])}
    return got


def _has_any(g: dict[str, Any]) -> bool:
    return bool(g["quality"] or g["speed"])


def _decide(steps: list[dict[str, Any]], status: dict[str, str], anchor: str,
            checks: list[dict[str, Any]], got: dict[str, dict[str, Any]]) -> dict[str, Any]:
    fallback = next((s for s in steps if s["id"] == "fallback"), None)
    if not _has_any(got[anchor]):
        return {"action": "re-measure-baseline", "step": anchor,
                "why": f"no results for {anchor}: every step is judged against it, so measure it first"}
    lacking = sorted({f"{c['task']}" if c.get("task") else c["probe"] for c in checks
                      if c["status"] == "missing" and c.get("missing") == "baseline" and _has_any(got[c["step"]])})
    if lacking:
        return {"action": "re-measure-baseline", "step": anchor,
                "why": f"the baseline lacks {', '.join(lacking)}, which later steps were measured on"}
    order = [s for s in steps if s["id"] not in (anchor, "fallback")]
    passed = [anchor]
    for s in order:
        st = status[s["id"]]
        if st == "missing":
            return {"action": "try-next-step", "step": s["id"],
                    "why": f"{', '.join(passed)} passed; measure {s['id']} ({s['notation']}) next"}
        if st == "incomplete":
            gaps = sorted({c.get("task") or c["probe"] for c in checks if c["step"] == s["id"]
                           and c["status"] == "missing"})
            return {"action": "finish-measuring", "step": s["id"],
                    "why": f"{s['id']} has no comparable result for {', '.join(gaps)}"}
        if st == "fail":
            failed = sorted({c["check"] for c in checks if c["step"] == s["id"] and c["status"] == "fail"})
            why = f"{s['id']} ({s['notation']}) fails {', '.join(failed)}"
            if fallback is not None and status.get("fallback") != "fail":
                measured = status.get("fallback") == "pass"
                return {"action": "roll-back", "step": "fallback",
                        "why": why + ("; the fallback passes" if measured else
                                      "; switch to the configured fallback (measure it before relying on it)")}
            return {"action": "roll-back", "step": passed[-1],
                    "why": why + (f"; the fallback fails too, so keep {passed[-1]}" if fallback else
                                  f"; no fallback is configured, so keep {passed[-1]}")}
        passed.append(s["id"])
    last = order[-1]["id"] if order else anchor
    return {"action": "keep", "step": last, "why": f"{last} passes every automated check"
            + (f" ({', '.join(passed[1:-1])} passed on the way down)" if len(passed) > 2 else "")}


def _flat(snapshot: dict[str, Any]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for sid, s in _d(snapshot.get("steps")).items():
        for task, metrics in _d(_d(s).get("quality")).items():
            for metric, v in _d(metrics).items():
                if _num(v) is not None:
                    out[(sid, f"quality {task} {metric}")] = float(v)
        for phase, speed in _d(_d(s).get("speed")).items():
            for metric in ("ttft_ms", "tpot_ms", "e2e_ms"):
                for stat in ("p50", "p99"):
                    v = _stat(speed, metric, stat)
                    if v is not None:
                        out[(sid, f"speed {phase} {metric} {stat}")] = v
    return out


def _drift(before: dict[str, Any], now: dict[str, Any], rules: dict[str, list[dict[str, Any]]],
           speed_drift: float) -> list[
        dict[str, Any]]:
    old, new = _flat(before), _flat(now)
    out = []
    for key in sorted(old.keys() & new.keys()):
        sid, what = key
        a, b = old[key], new[key]
        limit, how = speed_drift, "relative"
        if what.startswith("quality"):
            _, task, metric = what.split(" ", 2)
            rule = next((r for r in rules.get(sid, []) if task in r.get("metrics", {})
                         and metric in r["metrics"][task]), None)
            if rule and rule["kind"] == "ratio":
                limit = max(1 - rule["min_ratio"], 0.005)
            elif rule and rule["kind"] == "delta":
                limit, how = rule["max_increase"], "absolute"
            elif rule and rule["kind"] == "drop":
                limit, how = rule["max_drop"], "absolute"
            else:
                limit = 0.01
        change = (b - a) if how == "absolute" else ((b / a - 1) if a else 0.0)
        out.append({"step": sid, "metric": what, "before": a, "after": b,
                    "change": round(change, 4), "limit": round(limit, 4), "measure": how,
                    "drifted": abs(change) > limit + 1e-9})
    vb, vn = _d(before.get("validated_on")), _d(now.get("validated_on"))
    for key in ("runtime", "runtime_version", "model", "checkpoint", "model_revision"):
        if vb.get(key) is not None and vn.get(key) is not None and vb[key] != vn[key]:
            out.append({"step": "*", "metric": key, "before": vb[key], "after": vn[key], "drifted": True,
                        "why": "a retest trigger: results on different software are not comparable"})
    return out


# --------------------------------------------------------------------------- verify
def verify(plan: dict[str, Any], results: list[tuple[str, bytes]], knowledge: Knowledge | None = None
           ) -> dict[str, Any]:
    """Judge validation results against a plan. ``results`` are (file name, contents) pairs, as
    :func:`read_results` or :func:`collect_results` give them. Returns ``{"schema_version": 3, "endpoints":
    [verdict per endpoint], "files": [what each file was], "plan": the plan with measured, decision and drift}``.
    """
    if not isinstance(plan, dict) or not isinstance(plan.get("endpoints"), list):
        raise AdvisorInputError("plan", "expected a plan document with an 'endpoints' list (schema 2 or 3)")
    if not isinstance(results, list | tuple):
        raise AdvisorInputError("results", "expected a list of (file name, contents) pairs")
    if len(results) > MAX_FILES:
        raise AdvisorInputError("results", f"more than {MAX_FILES} result files; verify them in parts")
    k = knowledge or load_knowledge()
    vplan = V.validation_plan(plan, k)
    noise_se = k.decision["verify-quality-noise-stderr"].value
    speed_drift = k.decision["verify-speed-drift-pct"].value / 100
    names: dict[str, tuple[str, str]] = {}
    pairs: set[tuple[str, str]] = set()
    for ep in vplan["endpoints"]:
        for s in ep["steps"]:
            names[s["served_model_name"]] = (ep["slug"], s["id"])
            pairs.add((ep["slug"], s["id"]))
    model = _d(plan.get("model"))
    aliases = {a for a in (vplan["model"], model.get("id"), _d(model.get("checkpoint")).get("base_model"))
               if isinstance(a, str) and a}
    for ep in plan["endpoints"]:
        load = _d(_d(_d(ep).get("recommendation")).get("weights")).get("checkpoint")
        if isinstance(_d(load).get("load"), str):
            aliases.add(load["load"])
    parsed: list[Result] = []
    for item in results:
        if not (isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], bytes | str)):
            raise AdvisorInputError("results", "each result must be a (file name, contents) pair")
        r = parse_result(item[0], item[1])
        _identify(r, names, pairs, aliases)
        parsed.append(r)
    # an lm-eval file must hold at least one task its step asks for
    wanted_tasks = {(ep["slug"], s["id"]): {t for q in s["quality"] for t in q["tasks"]}
                    for ep in vplan["endpoints"] for s in ep["steps"]}
    for r in parsed:
        if r.kind == "lm_eval":
            wanted = wanted_tasks.get((r.endpoint, r.step), set())
            if wanted and not wanted & set(r.quality):
                raise _err(r.file, f"holds none of the tasks this plan asks {r.endpoint}/{r.step} for: it has "
                                   f"{shown(', '.join(sorted(r.quality)[:6]), 80, quote=False)}; the plan asks for "
                                   f"{', '.join(sorted(wanted))}")

    new_plan = copy.deepcopy(plan)
    new_plan["schema_version"] = SCHEMA_VERSION
    verdicts = []
    plan_eps = [e for e in new_plan["endpoints"]]
    by_name = {}
    for e in plan_eps:
        if isinstance(e, dict) and isinstance(e.get("name"), str):
            by_name.setdefault(e["name"], e)
    for ep in vplan["endpoints"]:
        target = by_name.get(ep["endpoint"])
        if ep.get("skipped"):
            verdicts.append({"endpoint": ep["endpoint"], "skipped": ep["skipped"]})
            continue
        steps = ep["steps"]
        got = _gather(parsed, ep["slug"], steps)
        anchor = next((s["id"] for s in steps if s["role"] == "baseline"), "pick")
        checks: list[dict[str, Any]] = []
        status: dict[str, str] = {}
        for s in steps:
            g = got[s["id"]]
            rows: list[dict[str, Any]] = []
            if s["id"] != anchor:
                for rule in s["thresholds"]:
                    if rule["kind"] in ("ratio", "delta", "drop"):
                        rows += _check_quality(rule, g, got[anchor], noise_se)
                    else:
                        rows.append(_check_speed(rule, g, got[anchor]))
            else:
                rows += [_check_speed(rule, g, None) for rule in s["thresholds"] if rule["kind"] == "target"]
            for row in rows:
                row["step"] = s["id"]
            checks += rows
            gating = [r["status"] for r in rows]
            if not _has_any(g):
                status[s["id"]] = "missing"
            elif "fail" in gating and s["id"] != anchor:
                status[s["id"]] = "fail"
            elif "missing" in gating:
                status[s["id"]] = "incomplete"
            else:
                status[s["id"]] = "pass"
        decision = _decide(steps, status, anchor, checks, got)
        files = sorted({f for g in got.values() for f in g["files"]})
        revisions = sorted({r.model_revision for r in parsed if r.endpoint == ep["slug"] and r.model_revision})
        tools = {}
        for r in parsed:
            if r.endpoint == ep["slug"] and r.tool_version:
                tools.setdefault(r.kind, set()).add(r.tool_version)
        pick = next((s for s in steps if s["id"] == "pick"), steps[-1] if steps else None)
        weights = _d(_d(_d(target).get("recommendation")).get("weights")) if target else {}
        measured = {
            "validated_on": {
                "runtime": pick["runtime"] if pick else None,
                "runtime_version": pick["runtime_version"] if pick else None,
                "runtime_version_from": "the plan (the result files do not record the server's version)",
                "model": vplan["model"],
                "checkpoint": _d(weights.get("checkpoint")).get("load") if weights else None,
                "model_revision": (revisions[0] if len(revisions) == 1 else revisions) if revisions
                else model.get("revision"),
                "model_revision_note": None if revisions else
                "the revision the plan serves (model.revision; the result files record none)" if model.get("revision")
                else "not recorded in the result files nor the plan: plan with --model-revision to pin it",
                "tools": {k: sorted(v) for k, v in tools.items()},
            },
            "steps": {
                s["id"]: {
                    "notation": s["notation"], "runtime": s["runtime"], "runtime_version": s["runtime_version"],
                    "served_model_name": got[s["id"]]["served_model_name"], "status": status[s["id"]],
                    "quality": got[s["id"]]["quality"], "samples": got[s["id"]]["samples"],
                    "speed": got[s["id"]]["speed"], "vs_model": _vs_model(s, got[s["id"]]["speed"]),
                    "files": got[s["id"]]["files"],
                } for s in steps if _has_any(got[s["id"]])
            },
            "files": files,
        }
        previous = _d(target.get("measured")) if target else {}
        rules = {s["id"]: s["thresholds"] for s in steps}
        drift = _drift(previous, measured, rules, speed_drift) if previous else []
        if previous:
            earlier = [{k: v for k, v in previous.items() if k != "history"}] + list(previous.get("history", []))
            measured["history"] = earlier[:HISTORY_KEEP]
        verdict = {"endpoint": ep["endpoint"], "slug": ep["slug"], "decision": decision, "steps": status,
                   "checks": checks, "drift": drift, "drifted": any(d["drifted"] for d in drift),
                   "not_automated": ep["not_automated"]}
        verdicts.append(verdict)
        if target is not None:
            target["measured"] = measured
            target["decision"] = decision
            target["drift"] = drift
    return {
        "schema_version": SCHEMA_VERSION,
        "endpoints": verdicts,
        "files": [{"file": r.file, "kind": r.kind, "endpoint": r.endpoint, "step": r.step, "phase": r.phase,
                   "served_model_name": r.served_name} for r in parsed],
        "plan": new_plan,
    }


def _value(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}"
    return "-" if v is None else str(v)


def verdict_text(out: dict[str, Any]) -> str:
    """:func:`verify`'s answer as plain text for the CLI: per endpoint the decision, each step's status, every
    check (value, baseline, threshold, pass / fail / missing), drift, and what no tool checks automatically."""
    lines: list[str] = []
    for ep in out.get("endpoints", []):
        name = shown(ep.get("endpoint"), 60, quote=False)
        if ep.get("skipped"):
            lines += [f"endpoint {name}: not verified ({V.one_line(ep['skipped'])})", ""]
            continue
        d = ep.get("decision") or {}
        lines.append(f"endpoint {name}: {d.get('action', '?')}"
                     + (f" ({d['step']})" if d.get("step") else "") + f" - {V.one_line(d.get('why', ''))}")
        lines.append("  steps: " + ", ".join(f"{k} {v}" for k, v in (ep.get("steps") or {}).items()))
        for c in ep.get("checks", []):
            metric = c.get("task") or c.get("probe") or c.get("check")
            base = f", baseline {_value(c.get('baseline'))}" if c.get("baseline") is not None else ""
            lines.append(f"  [{c.get('status', '?'):>7}] {c.get('step')}: {c.get('check')} {metric} "
                         f"{c.get('metric', '')} = {_value(c.get('value'))}{base}; {V.one_line(c.get('threshold', ''))}")
        for row in ep.get("drift", []):
            if row.get("drifted"):
                change = f" ({row['change']:+.4g}, limit {row['limit']:g})" if "change" in row else ""
                lines.append(f"  drift: {row.get('step')} {V.one_line(row.get('metric'), 80)} "
                             f"{_value(row.get('before'))} -> {_value(row.get('after'))}{change}")
        if ep.get("not_automated"):
            lines.append("  not checked automatically: " + ", ".join(
                V.one_line(x.get("id") if isinstance(x, dict) else x, 80) for x in ep["not_automated"]))
        lines.append("")
    return "\n".join(lines).rstrip()


def carry_validation(previous: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    """A plan made anew (``plan``) from a plan that holds measured results (``previous``, schema 3): each endpoint's
    ``measured``, ``decision`` and ``drift`` carried over by endpoint name, and a ``validation_status`` saying
    whether those results still describe what the new plan serves. They go stale (a retest trigger, seeds 000
    and 004) when the pinned runtime version, the runtime, the model or the picked configuration changed since
    they were measured, or the model revision the plan serves differs from the one they name (both must name one).
    Returns ``plan`` itself when ``previous`` holds no measured results; otherwise a copy at
    schema 3."""
    old = {e.get("name"): e for e in previous.get("endpoints", []) if isinstance(e, dict)} \
        if isinstance(previous, dict) and isinstance(previous.get("endpoints"), list) else {}
    if not any(isinstance(e.get("measured"), dict) for e in old.values()):
        return plan
    out = copy.deepcopy(plan)
    out["schema_version"] = SCHEMA_VERSION
    model = _d(out.get("model")).get("id")
    revision = _d(out.get("model")).get("revision")
    for ep in out.get("endpoints", []):
        before = old.get(ep.get("name"))
        measured = _d(before.get("measured")) if before else {}
        if not measured:
            continue
        ep["measured"], ep["decision"], ep["drift"] = measured, before.get("decision"), before.get("drift", [])
        on = _d(measured.get("validated_on"))
        pick = _d(_d(measured.get("steps")).get("pick"))
        now = {"runtime": _d(ep.get("deployment")).get("runtime"),
               "runtime_version": _d(ep.get("deployment")).get("runtime_version"), "model": model,
               "model_revision": revision, "pick": _d(ep.get("recommendation")).get("notation")}
        then = {"runtime": on.get("runtime"), "runtime_version": on.get("runtime_version"), "model": on.get("model"),
                "model_revision": on.get("model_revision"), "pick": pick.get("notation")}
        why = [f"{key.replace('_', ' ')} was {V.one_line(then[key], 80)}, now {V.one_line(now[key], 80)}"
               for key in now if then[key] is not None and now[key] is not None and then[key] != now[key]]
        ep["validation_status"] = {
            "status": "stale" if why else "current",
            "why": why or ["the runtime, its pinned version, the model (and its revision, where both name one) and the "
                           "pick are those the results were measured on"],
            "retest": "re-run validate.sh for this endpoint and verify again" if why else None,
        }
    return out

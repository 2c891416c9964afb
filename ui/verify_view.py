"""What the Verify page (pages/verify.py) needs besides Streamlit's widgets: the uploads read with bounds (a plan,
result files, a zip of the results folder), each verdict held per session so a rerun does not verify again, the
rows of its tables and the data and figures of its charts.

The judging itself is :func:`advisor.plan.verify.verify`; nothing here decides anything. Every name and text in a
verdict can come from an uploaded file: the page escapes what it draws as Markdown (ui.frame.safe_text), and the
figures here escape what Plotly would read as its HTML subset.
"""

from __future__ import annotations

import fnmatch
import html
import io
import re
import struct
import zipfile
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import plotly.graph_objects as go

from advisor import safeyaml
from advisor.errors import AdvisorInputError, shown
from advisor.knowledge.schema import Knowledge
from advisor.plan import document as plan_module
from advisor.plan import verify as verify_module
from advisor.plan.bundle import bundle
from advisor.plan.document import MAX_PLAN_BYTES
from advisor.plan.validation import validate_script, validation_plan
from ui.charts import AMBER, EMERALD, FONT, GREY, PRIMARY, PRIMARY_LIGHT, RED, TEMPLATE, TEXT
from ui.frame import pack_plan, unpack_plan

MAX_UPLOAD_MB = verify_module.MAX_RESULT_BYTES // (1024 * 1024)  # each result file or zip, as uploaded
MAX_PLAN_MB = 1  # the uploader's bound; MAX_PLAN_BYTES (just under 1 MB) is checked on the bytes
MAX_TOTAL_BYTES = 100 * 1024 * 1024  # all result files together, once unzipped
MAX_ZIP_ENTRIES = 5_000  # entries of one zip, of every kind (lm-eval writes a samples file beside each result)
MAX_ZIP_RATIO = 100  # uncompressed : compressed, for an entry over ZIP_RATIO_FROM bytes
ZIP_RATIO_FROM = 1024 * 1024

# The session-state keys the page holds its uploads' readings under.
PLAN = "_verify_plan"  # Plan: the last plan that read cleanly
PLAN_ERROR = "_verify_plan_error"  # (file id, message) of the plan upload that did not
VERDICT = "_verify_out"  # (key, verify()'s answer packed) for the uploads now in the widgets
VERDICT_ERROR = "_verify_error"  # (key, message)
LAST = "_verify_last"  # (plan file id, packed answer): the last verdict that read cleanly, kept on screen under an error

ACTIONS = {  # decision -> (alert kind, headline); {step} is the step it names
    "keep": ("success", "Keep {step}"),
    "try-next-step": ("info", "Try the next step: {step}"),
    "roll-back": ("error", "Roll back to {step}"),
    "re-measure-baseline": ("warning", "Re-measure the baseline"),
    "finish-measuring": ("info", "Finish measuring {step}"),
}
STATUS_COLOURS = {"pass": EMERALD, "fail": RED, "warn": AMBER, "incomplete": AMBER, "missing": GREY}
STATUS_MARKDOWN = {"pass": "green", "fail": "red", "warn": "orange", "incomplete": "orange", "missing": "gray"}
LOWER_IS_BETTER = ("perplexity", "bits_per_byte", "byte_perplexity")


class Upload(Protocol):
    """What the page reads of a Streamlit UploadedFile."""

    file_id: str
    name: str
    size: int

    def getvalue(self) -> bytes: ...


# What a session keeps (a plan, a verdict) as one bytes object, as the Plan page keeps its plan (ui.frame.pack_plan)
pack, unpack = pack_plan, unpack_plan


@dataclass(frozen=True)
class Plan:
    file_id: str
    name: str
    packed: bytes  # the plan document, pack()ed
    from_request: bool  # the file was a request: planned now, against today's knowledge

    @property
    def document(self) -> dict[str, Any]:
        return unpack(self.packed)


@dataclass(frozen=True)
class Verdict:
    packed: bytes | None  # verify()'s answer for the uploads, or the last good one under an error, pack()ed
    error: str | None = None  # one line naming the file at fault
    stale: bool = False  # the answer is the last good one, not one for the uploads now in the widget

    @property
    def out(self) -> dict[str, Any] | None:
        return None if self.packed is None else unpack(self.packed)


def bundle_bytes(document: dict[str, Any]) -> bytes:
    """The Plan page's bundle: plan.yaml, validate.sh, manifests per endpoint, README.md and results/ in one zip."""
    return bundle(document, validate_script(document))


# --------------------------------------------------------------------------- reading uploads
def read_plan(name: str, data: bytes, knowledge: Knowledge | None = None) -> tuple[dict[str, Any], bool]:
    """(the plan document, whether it was planned now from a request). The plan as exported (plan.yaml from the
    bundle, or a schema-3 plan this page wrote) is used as it is: its figures are what the results are judged
    against; its request is checked like any plan's. Raises AdvisorInputError naming the file."""
    where = shown(name, 80, quote=False)
    if len(data) > MAX_PLAN_BYTES:
        raise AdvisorInputError(where, f"is over {MAX_PLAN_BYTES:,} bytes; plans are smaller")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AdvisorInputError(where, "is not a text file (expected the plan.yaml from the bundle)") from None
    try:
        request = plan_module.load(text, knowledge, where=where)  # the YAML and its request, each error named
        document = safeyaml.load(text)
        if isinstance(document, dict) and isinstance(document.get("endpoints"), list) \
                and isinstance(document.get("request"), dict):
            return document, False
        return plan_module.build(request, knowledge), True
    except AdvisorInputError as exc:
        if str(exc).startswith(where):
            raise
        raise AdvisorInputError(where, str(exc)) from None  # an unknown id names its field: name the file too


def _is_result(path: str) -> bool:
    base = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(base, pattern) for pattern in verify_module.RESULT_GLOBS)


def _zip_entries(data: bytes) -> int | None:
    """The entry count the zip's end record declares (before Python reads its directory), None if there is none."""
    tail = data[-(65_535 + 22):]
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 12:
        return None
    return struct.unpack("<H", tail[at + 10: at + 12])[0]


def read_zip(name: str, data: bytes) -> list[tuple[str, bytes]]:
    """The result files in a zip of the results folder (lm-eval results_*.json, guidellm-*.json, vllm-bench-*.json;
    samples files and logs are left out), each named <zip>/<path inside it> so verify still finds the endpoint and
    step in the path. Bounded: entry count, each file's size, the compression ratio and the total."""
    where = f"results archive {shown(name, 80, quote=False)}"
    count = _zip_entries(data)
    if count is None:
        raise AdvisorInputError(where, "is not a zip file")
    if count >= 0xFFFF or count > MAX_ZIP_ENTRIES:
        raise AdvisorInputError(where, f"has more than {MAX_ZIP_ENTRIES:,} entries; zip the results folder only")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise AdvisorInputError(where, "is not a readable zip file") from None
    if len(infos) > MAX_ZIP_ENTRIES:
        raise AdvisorInputError(where, f"has more than {MAX_ZIP_ENTRIES:,} entries; zip the results folder only")
    chosen = [i for i in infos if not i.is_dir() and _is_result(i.filename)]
    if not chosen:
        raise AdvisorInputError(where, "holds no result files (results_*.json, guidellm-*.json or "
                                       "vllm-bench-*.json)")
    if len(chosen) > verify_module.MAX_FILES:
        raise AdvisorInputError(where, f"holds more than {verify_module.MAX_FILES} result files; verify them in parts")
    out: list[tuple[str, bytes]] = []
    total = 0
    for info in chosen:
        entry = f"{name}/{info.filename}"
        what = f"result file {shown(entry, 120, quote=False)}"
        if info.flag_bits & 0x1:
            raise AdvisorInputError(what, "is encrypted; zip the results without a password")
        if info.file_size > verify_module.MAX_RESULT_BYTES:
            raise AdvisorInputError(what, f"is over {MAX_UPLOAD_MB} MB; result files are small")
        if info.file_size > ZIP_RATIO_FROM and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
            raise AdvisorInputError(what, f"is compressed more than {MAX_ZIP_RATIO}:1, which no result file is")
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise AdvisorInputError(where, f"holds more than {MAX_TOTAL_BYTES // (1024 * 1024)} MB of results")
        try:
            with archive.open(info) as fh:
                body = fh.read(verify_module.MAX_RESULT_BYTES + 1)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, ValueError, EOFError) as exc:
            raise AdvisorInputError(what, f"cannot be read from the zip ({type(exc).__name__})") from None
        if len(body) > verify_module.MAX_RESULT_BYTES:
            raise AdvisorInputError(what, f"is over {MAX_UPLOAD_MB} MB; result files are small")
        out.append((entry, body))
    return out


def result_files(uploads: Sequence[Upload]) -> list[tuple[str, bytes]]:
    """The uploads as verify takes them: (file name, contents) pairs, a zip's result files in its place."""
    files: list[tuple[str, bytes]] = []
    total = 0
    for upload in uploads:
        if upload.size > verify_module.MAX_RESULT_BYTES:
            raise AdvisorInputError(f"result file {shown(upload.name, 120, quote=False)}",
                                    f"is over {MAX_UPLOAD_MB} MB; result files are small")
        data = upload.getvalue()
        if data[:4] == b"PK\x03\x04" or upload.name.lower().endswith(".zip"):
            unpacked = read_zip(upload.name, data)
        else:
            unpacked = [(upload.name, data)]
        files += unpacked
        total += sum(len(body) for _, body in unpacked)
        if total > MAX_TOTAL_BYTES:
            raise AdvisorInputError("results", f"more than {MAX_TOTAL_BYTES // (1024 * 1024)} MB in all; "
                                               "verify them in parts")
        if len(files) > verify_module.MAX_FILES:
            raise AdvisorInputError("results", f"more than {verify_module.MAX_FILES} result files; verify them "
                                               "in parts")
    return files


def _failure(where: str, exc: BaseException) -> str:
    """One line for an error nobody foresaw (a plan edited by hand into a shape the engine does not expect)."""
    return f"{where}: could not be read ({type(exc).__name__}); check it is the file this app or the CLI wrote"


# --------------------------------------------------------------------------- per-session memory
def held_plan(state: MutableMapping[str, Any], upload: Upload | None, knowledge: Knowledge | None = None
              ) -> tuple[Plan | None, str | None]:
    """The plan to verify against and the error of the plan upload, if it did not read. Each upload is read once;
    a bad upload keeps the plan read before it (named in the error) until the upload is removed."""
    if upload is None:
        for key in (PLAN, PLAN_ERROR, VERDICT, VERDICT_ERROR, LAST):
            state.pop(key, None)
        return None, None
    held: Plan | None = state.get(PLAN)
    failed = state.get(PLAN_ERROR)
    if held is not None and held.file_id == upload.file_id:
        return held, None
    if failed is not None and failed[0] == upload.file_id:
        return held, failed[1]
    try:
        document, from_request = read_plan(upload.name, upload.getvalue(), knowledge)
    except AdvisorInputError as exc:
        message = str(exc)
    except (RecursionError, MemoryError) as exc:
        message = _failure(shown(upload.name, 80, quote=False), exc)
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        message = _failure(shown(upload.name, 80, quote=False), exc)
    else:
        held = Plan(upload.file_id, upload.name, pack(document), from_request)
        state[PLAN] = held
        state.pop(PLAN_ERROR, None)
        return held, None
    state[PLAN_ERROR] = (upload.file_id, message)
    return held, message


def held_verdict(state: MutableMapping[str, Any], plan: Plan, uploads: Sequence[Upload],
                 knowledge: Knowledge | None = None) -> Verdict | None:
    """verify()'s answer for the plan and the uploads, computed once per set of uploads. When a file is bad: its
    error, and the last answer that read cleanly for the same plan (stale), so nothing on screen is lost."""
    if not uploads:
        return None
    key = (plan.file_id, tuple(u.file_id for u in uploads))
    done = state.get(VERDICT)
    if done is not None and done[0] == key:
        return Verdict(done[1])
    failed = state.get(VERDICT_ERROR)
    if failed is None or failed[0] != key:
        try:
            packed = pack(verify_module.verify(plan.document, result_files(uploads), knowledge))
        except AdvisorInputError as exc:
            failed = (key, str(exc))
        except Exception as exc:  # noqa: BLE001 - one line, never a traceback
            failed = (key, _failure("results", exc))
        else:
            state[VERDICT] = (key, packed)
            state[LAST] = (plan.file_id, packed)
            state.pop(VERDICT_ERROR, None)
            return Verdict(packed)
        state[VERDICT_ERROR] = failed
    last = state.get(LAST)
    stale = last[1] if last is not None and last[0] == plan.file_id else None
    return Verdict(stale, failed[1], stale is not None)


# --------------------------------------------------------------------------- what the page shows
def decision_view(decision: dict[str, Any]) -> tuple[str, str]:
    """(alert kind, headline) of a decision; the headline names the step as the plan does (plain text)."""
    kind, headline = ACTIONS.get(str(decision.get("action")), ("info", str(decision.get("action") or "?")))
    return kind, headline.format(step=decision.get("step") or "?")


def step_notations(plan: dict[str, Any], knowledge: Knowledge | None = None) -> dict[str, dict[str, str]]:
    """endpoint name -> step id -> its notation (W8A8-FP8 KV-FP8), for the steps line."""
    try:
        vplan = validation_plan(plan, knowledge)
    except Exception:  # noqa: BLE001 - a label only; verify already read this plan
        return {}
    return {str(ep.get("endpoint")): {str(s["id"]): str(s.get("notation") or "") for s in ep.get("steps", [])}
            for ep in vplan.get("endpoints", [])}


def _metric(name: object) -> str:
    """'acc,none' -> 'acc' (lm-eval's default filter), 'ttft_ms p50' unchanged."""
    text = str(name or "")
    return text[:-5] if text.endswith(",none") else text


def check_rows(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The checks table: step, check, task / metric, value, baseline, threshold, status, and why where given."""
    rows = []
    for c in checks:
        what = " ".join(x for x in (str(c.get("task") or c.get("probe") or ""), _metric(c.get("metric"))) if x)
        threshold = str(c.get("threshold") or "")
        if c.get("target") is not None:
            threshold = threshold or f"at most {c['target']:g}"
        rows.append({"step": str(c.get("step") or ""), "check": str(c.get("check") or ""), "task / metric": what,
                     "value": c.get("value"), "baseline": c.get("baseline"), "threshold": threshold,
                     "status": str(c.get("status") or ""), "why": str(c.get("why") or "")})
    return rows


def drift_rows(drift: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The drift table: what moved since the results the plan held before, drifted rows first."""
    rows = []
    for d in sorted(drift, key=lambda d: not d.get("drifted")):
        change = d.get("change")
        rows.append({"step": str(d.get("step") or ""), "metric": _metric(d.get("metric")),
                     "before": str(d.get("before")), "after": str(d.get("after")),
                     "change": "" if change is None else (f"{change:+.2%}" if d.get("measure") == "relative"
                                                          else f"{change:+.4g}"),
                     "limit": "" if d.get("limit") is None else (f"{d['limit']:.0%}" if d.get("measure") == "relative"
                                                                  else f"{d['limit']:g}"),
                     "drifted": "yes" if d.get("drifted") else "no"})
    return rows


def not_automated_lines(items: list[Any]) -> list[tuple[str, str]]:
    """(id, what) of each check no tool runs automatically."""
    out = []
    for x in items:
        if isinstance(x, dict):
            out.append((str(x.get("id") or ""), str(x.get("what") or "")))
        else:
            out.append((str(x), ""))
    return out


def plan_endpoint(out: dict[str, Any], name: str) -> dict[str, Any]:
    """The endpoint of verify()'s plan a verdict is about (its measured figures)."""
    for ep in out.get("plan", {}).get("endpoints", []):
        if isinstance(ep, dict) and ep.get("name") == name:
            return ep
    return {}


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def quality_rows(verdict: dict[str, Any]) -> list[dict[str, Any]]:
    """Each quality check a step has both figures for: its score as a ratio to the baseline's, with the status."""
    rows = []
    for c in verdict.get("checks", []):
        v, b = _num(c.get("value")), _num(c.get("baseline"))
        if not c.get("task") or v is None or b is None or not b:
            continue
        metric = _metric(c.get("metric"))
        rows.append({"step": str(c.get("step")), "task": str(c["task"]), "metric": metric, "ratio": v / b,
                     "status": str(c.get("status") or ""),
                     "lower_is_better": any(w in metric for w in LOWER_IS_BETTER)})
    return rows


def speed_rows(endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    """Per measured step, TTFT and TPOT p50 as measured beside the speed model's figure and its band."""
    rows = []
    steps = (endpoint.get("measured") or {}).get("steps") or {}
    for sid, step in steps.items():
        vs = (step or {}).get("vs_model") or {}
        for metric in ("ttft_ms", "tpot_ms"):
            entry = vs.get(metric) or {}
            measured, modelled = _num(entry.get("measured_p50")), _num(entry.get("modelled"))
            if measured is None and modelled is None:
                continue
            rows.append({"step": str(sid), "notation": str(step.get("notation") or ""), "metric": metric,
                         "measured": measured, "modelled": modelled, "band_pct": _num(entry.get("band_pct")),
                         "within_band": entry.get("within_band")})
    return rows


def _esc(text: object) -> str:
    """Text for a Plotly label: its HTML subset (<b>, <a href>, <br>) made literal."""
    return html.escape(re.sub(r"\s+", " ", str(text)).strip()[:80], quote=False)


ROW_PX = 46  # one labelled bar: the label above it and the bar (as ui.charts.latency_figure)


def _base(*, height: int, top: int, **extra: Any) -> dict[str, Any]:
    """The app's chart look (ui.charts: template, font, hover label) for a figure without a title or legend."""
    return {"template": TEMPLATE, "font": FONT, "height": height, "margin": {"l": 10, "r": 20, "t": top, "b": 10},
            "hoverlabel": {"bgcolor": "white", "font": {"size": 12}}, **extra}


def quality_figure(rows: list[dict[str, Any]]) -> go.Figure:
    """One bar per step and task from the baseline's line (1.0) to the step's ratio, coloured by the check's
    status, each bar's name written above it so a phone keeps the width for the bars."""
    labels = [f"{_esc(r['step'])} · {_esc(r['task'])} {_esc(r['metric'])}"
              + (" (lower is better)" if r["lower_is_better"] else "") for r in rows]
    ratios = [float(r["ratio"]) for r in rows]
    low, high = min([*ratios, 1.0]), max([*ratios, 1.0])
    pad = max((high - low) * 0.35, 0.01)
    keys = [f"r{i}" for i in range(len(rows))]  # one category per row (labels may repeat)
    trace = {
        "type": "bar", "orientation": "h", "y": keys, "x": [x - 1 for x in ratios], "base": 1.0,
        "marker": {"color": [STATUS_COLOURS.get(r["status"], GREY) for r in rows], "line": {"width": 0}},
        "text": [f"{x:.3f} {r['status']}" for x, r in zip(ratios, rows, strict=True)], "textposition": "outside",
        "cliponaxis": False, "textfont": {"size": 12, "color": TEXT}, "customdata": labels,
        "hovertemplate": "%{customdata}: %{text}<extra></extra>", "showlegend": False,
    }
    annotations = [{"x": 0, "xref": "paper", "y": k, "yref": "y", "text": label, "showarrow": False,
                    "xanchor": "left", "yanchor": "bottom", "yshift": 11, "font": {"size": 12, "color": TEXT},
                    "bgcolor": "rgba(255,255,255,0.85)"}  # over the baseline's line (ui.charts.apply_theme darkens it)
                   for k, label in zip(keys, labels, strict=True)]
    height = 70 + ROW_PX * len(rows)
    layout = _base(
        height=height, top=12, bargap=0.55, annotations=annotations,
        shapes=[{"type": "line", "x0": 1, "x1": 1, "xref": "x", "y0": 0, "y1": 1, "yref": "paper",
                 "line": {"color": GREY, "dash": "dash", "width": 1.5}}],
        xaxis={"title": {"text": "Score ÷ baseline's (1 = the baseline)"}, "range": [low - pad, high + pad],
               "nticks": 5, "gridcolor": "#EEF0F3", "zeroline": False},
        yaxis={"autorange": "reversed", "showticklabels": False, "showgrid": False, "categoryorder": "array",
               "categoryarray": keys},
    )
    return go.Figure(data=[trace], layout=layout, _validate=False)


SPEED_PANELS = (("ttft_ms", "Time to first token, p50 (ms)"), ("tpot_ms", "Time per output token, p50 (ms)"))


def speed_figure(rows: list[dict[str, Any]]) -> go.Figure:
    """Two panels (TTFT, TPOT): per measured step, the measured p50 (indigo, amber when outside the speed model's
    band) above the modelled figure (light indigo), each bar's name and the band written above it."""
    panels = []
    for metric, title in SPEED_PANELS:
        bars = []
        for r in (r for r in rows if r["metric"] == metric):
            band = r["band_pct"]
            if r["measured"] is not None:
                outside = r["within_band"] is False
                bars.append({"label": f"{_esc(r['step'])} · measured" + (" · outside the band" if outside else ""),
                             "value": r["measured"], "colour": AMBER if outside else PRIMARY})
            if r["modelled"] is not None:
                m = r["modelled"]
                span = f" (band ±{band:g}%: {m * (1 - band / 100):,.0f}–{m * (1 + band / 100):,.0f})" if band else ""
                bars.append({"label": f"{_esc(r['step'])} · modelled{span}", "value": m, "colour": PRIMARY_LIGHT})
        if bars:
            panels.append((metric, title, bars))
    per_panel = [20 + ROW_PX * len(bars) for _, _, bars in panels]
    gap = 64
    plot = max(sum(per_panel) + gap * max(len(panels) - 1, 0), 1)
    data, annotations, axes = [], [], {}
    top = 1.0
    for n, ((metric, title, bars), px) in enumerate(zip(panels, per_panel, strict=True), start=1):
        domain = [max(top - px / plot, 0.0), top]
        top = domain[0] - gap / plot
        xa, ya = ("x", "y") if n == 1 else (f"x{n}", f"y{n}")
        keys = [f"{metric}{i}" for i in range(len(bars))]
        upper = max((b["value"] for b in bars), default=0.0) or 1.0
        data.append({
            "type": "bar", "orientation": "h", "xaxis": xa, "yaxis": ya, "y": keys, "x": [b["value"] for b in bars],
            "marker": {"color": [b["colour"] for b in bars], "line": {"width": 0}},
            "text": [f"{b['value']:,.1f}" for b in bars], "textposition": "outside", "cliponaxis": False,
            "textfont": {"size": 12, "color": TEXT}, "customdata": [b["label"] for b in bars],
            "hovertemplate": "%{customdata}: %{x:,.1f} ms<extra></extra>", "showlegend": False,
        })
        annotations.append({"x": 0, "xref": "paper", "y": domain[1], "yref": "paper", "yanchor": "bottom",
                            "xanchor": "left", "yshift": 4, "text": title, "showarrow": False,
                            "font": {"size": 14, "color": TEXT}})
        annotations += [{"x": 0, "xref": "paper", "y": k, "yref": ya, "text": b["label"], "showarrow": False,
                         "xanchor": "left", "yanchor": "bottom", "yshift": 11, "font": {"size": 12, "color": TEXT}}
                        for b, k in zip(bars, keys, strict=True)]
        axes["xaxis" if n == 1 else f"xaxis{n}"] = {
            "anchor": ya, "range": [0, upper * 1.25], "nticks": 4, "gridcolor": "#EEF0F3", "zeroline": False}
        axes["yaxis" if n == 1 else f"yaxis{n}"] = {
            "anchor": xa, "domain": domain, "autorange": "reversed", "showticklabels": False, "showgrid": False,
            "categoryorder": "array", "categoryarray": keys}
    layout = _base(height=plot + 40 + 28, top=28, bargap=0.45, annotations=annotations, **axes)
    return go.Figure(data=data, layout=layout, _validate=False)


def download_name(plan: dict[str, Any]) -> str:
    """<model>-<gpu>.verified.plan.yaml, from the plan's own fields (only file-name characters kept)."""
    model = plan.get("model") if isinstance(plan.get("model"), dict) else {}
    hardware = plan.get("hardware") if isinstance(plan.get("hardware"), dict) else {}
    stem = str(model.get("id") or "plan").rsplit("/", 1)[-1]
    parts = [re.sub(r"[^A-Za-z0-9._-]+", "-", str(p)).strip("-.")[:80] for p in (stem, hardware.get("gpu") or "")]
    return "-".join(p for p in parts if p) + ".verified.plan.yaml" if any(parts) else "verified.plan.yaml"


def deferred_plan_yaml(packed: bytes):
    """The download button's data for a verdict's plan (schema 3): built on click from the packed answer, holding
    nothing else of the page run."""
    return lambda: plan_module.dump(unpack(packed)["plan"])

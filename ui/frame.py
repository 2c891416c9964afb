"""What every page does first, whether or not the router ran (a cold deep link can skip it):
page config, knowledge, URL seeding. Plus the cached engine calls the pages share."""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Mapping
from typing import Any

import streamlit as st
from pydantic import ValidationError
from streamlit.errors import StreamlitPageNotFoundError

from advisor.decide.engine import RecommendResult, recommend
from advisor.errors import AdvisorInputError
from advisor.intake import catalog
from advisor.intake.request import Request
from advisor.knowledge import load_knowledge
from advisor.knowledge.schema import Knowledge
from advisor.plan import document as plan_module
from advisor.plan.permalink import WizardState, to_request
from ui import state as ui_state

APP_TITLE = "Precision Advisor"

# --------------------------------------------------------------------------- text a user controls
# Anyone can open a link or upload a file on a shared server, so every piece of text that came from input (a
# model or endpoint name, a file name, a URL key or value, an error that quotes a bad value) goes through
# safe_text / safe_message before Streamlit renders it as Markdown (st.markdown, alerts, captions, labels,
# help). Backslash escapes stop links, images, emphasis, HTML and LaTeX; they do not stop GFM autolinks
# (https://..., www., a@b.c) nor Streamlit's :shortcode: emoji, :material/icon: and :colour[...] syntax, so a
# zero-width space goes after each ':' (and in 'www.' and after '@'). Nothing here uses unsafe_allow_html.
ECHO_LIMIT = 80  # characters of echoed input shown, then an ellipsis
ZWSP = "\u200b"
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|<>~$&])")
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")


def cap(value: object, limit: int | None = ECHO_LIMIT) -> str:
    """Text on one line, cut to `limit` characters and an ellipsis."""
    text = " ".join(str(value).split())
    return text if limit is None or len(text) <= limit else text[:limit].rstrip() + "\u2026"


def safe_text(value: object, limit: int | None = ECHO_LIMIT) -> str:
    """User text made inert for Streamlit Markdown: one line, capped, every Markdown special escaped.
    ``limit=None`` escapes without cutting (for the engine's own sentences, which embed names)."""
    text = _SPECIAL.sub(r"\\\1", cap(value, limit))
    text = re.sub(r":(?=\S)", ":" + ZWSP, text)  # :smile:, :material/x:, :red[..], https://, mailto:
    text = re.sub(r"(?i)(www)\.", "\\1" + ZWSP + ".", text)  # GFM www. autolinks
    text = text.replace("@", "@" + ZWSP)  # GFM e-mail autolinks
    text = re.sub(r"^(\d+)\.", r"\1\\.", text)  # "1. " would start an ordered list
    return "\\" + text if text[:1] in "-=" else text  # a list item / setext underline


def safe_message(text: object, limit: int | None = ECHO_LIMIT, total: int = 600) -> str:
    """A message that quotes input ('...' or "..."): each quoted echo capped at `limit`, the whole at `total`,
    then escaped like safe_text."""

    def shorten(match: re.Match) -> str:
        quoted = match.group(0)
        return quoted if limit is None or len(quoted) <= limit + 2 else quoted[: limit + 1] + "\u2026" + quoted[0]

    return safe_text(_QUOTED.sub(shorten, " ".join(str(text).split())), total)


PAGES = (  # file, label, icon: the router's navigation, repeated for runs that bypass it
    ("pages/wizard.py", "Plan", ":material/tune:"),
    ("pages/compare.py", "Compare", ":material/compare_arrows:"),
    ("pages/gpus.py", "GPU picker", ":material/developer_board:"),
    ("pages/estimate.py", "Memory calculator", ":material/memory:"),
    ("pages/knowledge.py", "Knowledge base", ":material/table:"),
    ("pages/verify.py", "Verify", ":material/fact_check:"),
)


_router_pages: tuple = ()  # built by the first run in this process, see router_pages


def router_pages() -> list:
    """The router's st.Page list (PAGES, the first the default). Each st.Page resolves its file on disk (about 0.5 ms
    a page, on every run), so they are built once per process and each run gets shallow copies: st.navigation marks
    the page it will run on the copy, so concurrent sessions never share that mark."""
    global _router_pages
    if not _router_pages:
        _router_pages = tuple(st.Page(path, title=label, icon=icon, default=i == 0)
                              for i, (path, label, icon) in enumerate(PAGES))
    return [copy.copy(page) for page in _router_pages]


def page_frame(title: str) -> Knowledge:
    st.set_page_config(page_title=f"{APP_TITLE} - {title}", page_icon=":material/tune:", layout="wide")
    catalog.LOCAL_FILES.set(False)  # this script run: a link or an import never makes the server read its files
    knowledge = load_knowledge()
    ui_state.seed_from_url_once(knowledge)
    if not st.session_state.pop("_via_router", False):
        _fallback_navigation()
    return knowledge


def _fallback_navigation() -> None:
    """A cold deep link to a page (the first request a server sees) runs it in Streamlit's legacy
    pages/ mode, without the router's navigation bar (shared/reference/streamlit.md section 1).
    Draw the same links so the user is never stranded; they keep the URL's settings."""
    query = {k: st.query_params.get_all(k) for k in st.query_params}
    for column, (path, label, icon) in zip(st.columns(len(PAGES)), PAGES, strict=True):
        with column:
            try:
                st.page_link(path, label=label, icon=icon, query_params=query)
            except StreamlitPageNotFoundError:  # the page was started on its own (streamlit run pages/x.py)
                return


def current_state() -> WizardState:
    """The wizard state the widgets hold, with the URL synced to it; explains and stops when invalid."""
    state, error = ui_state.read_state()
    if state is None:
        st.error(f"These settings cannot be used: {safe_message(error)}.", icon=":material/error:")
        st.stop()
    ui_state.sync_url(state)
    return state


def try_plan(custom_models: dict) -> tuple[WizardState | None, Request | None, dict | None, str | None]:
    """The widgets' state, its request and its plan, or the first of them that failed with one line naming the
    field (never stops the run: the wizard keeps the last good result on screen)."""
    values_state, error = ui_state.read_state()
    if values_state is None:
        return None, None, None, error
    custom = custom_models.get(values_state.model)
    try:
        request = to_request(values_state, custom_model=custom)
    except ValidationError as exc:
        return values_state, None, None, ui_state.error_line(exc, ())
    document, error = build_plan(request)
    return values_state, request, document, error


def dark_theme() -> bool:
    """Whether the page is drawn dark: the browser's theme when it told us, else the server's theme.base."""
    kind = getattr(getattr(st.context, "theme", None), "type", None)
    if kind is None:
        kind = st.get_option("theme.base")
    return kind == "dark"


def show_chart(fig, key: str) -> None:
    """A Plotly figure in the page's theme (light or dark), full width, no mode bar."""
    from ui.charts import apply_theme

    st.plotly_chart(apply_theme(fig, dark_theme()), key=key, width="stretch", config={"displayModeBar": False})


def or_stop(value, error: str | None):
    """The engine's answer, or a readable error and an end to this run (never a traceback)."""
    if value is None:
        st.error(f"These settings cannot be planned: {safe_message(error)}", icon=":material/error:")
        st.stop()
    return value


def request_for(state: WizardState) -> Request:
    """The request the wizard asks for; an incomplete input (a custom GPU without its memory) explains and stops."""
    custom = st.session_state.get(ui_state.CUSTOM_MODELS, {}).get(state.model)
    try:
        return to_request(state, custom_model=custom)
    except ValidationError as exc:
        stop_on_invalid(exc)
        raise  # st.stop() raises; this line is for type checkers


def stop_on_invalid(exc: ValidationError) -> None:
    """One line naming the first invalid field of a request the page built, then stop the page's run."""
    err = exc.errors()[0]
    where = ".".join(str(x) for x in err["loc"]) or "request"
    problem = safe_message(f"{where}: {err['msg']}")
    st.error(f"These settings cannot be planned: {problem}.", icon=":material/error:")
    st.stop()


@st.cache_data(max_entries=64, show_spinner=False, ttl=3600)
def _model_found(model: str, custom_json: str | None) -> tuple[dict | None, str | None]:
    import json

    from advisor.intake.catalog import model_from_config, resolve_model
    from advisor.physics.architecture import tensor_inventory

    try:
        if custom_json:
            m = model_from_config(json.loads(custom_json), name=model)
        else:
            m = resolve_model(load_knowledge(), model, field="model")
    except AdvisorInputError as exc:
        return None, str(exc)
    arch, native = m.architecture, m.native
    params = sum(t.params for t in tensor_inventory(arch))
    return {
        "architecture": arch.model_type, "params_b": params / 1e9, "layers": arch.num_layers,
        "moe": f"{arch.num_experts} experts, {arch.experts_per_token} per token" if arch.is_moe else "",
        "quantized": native.quantized, "method": native.method, "scheme": native.scheme,
        "details": list(native.details), "base_model": m.base_model, "repo": m.repo,
        "tensor_gb": native.checkpoint_bytes / 1e9 if native.checkpoint_bytes else None,
        "bytes_source": native.bytes_source,
    }, None


def model_choices(knowledge: Knowledge, custom: Mapping[str, Any], chosen: str | None) -> list[str]:
    """The model box's options: the catalog, then uploaded config.json models, then the model typed in (a Hugging
    Face id) so that it stays selected."""
    ids = [*knowledge.models, *(m for m in custom if m not in knowledge.models)]
    if chosen and chosen not in ids:
        ids.append(chosen)
    return ids


def found_caption(found: dict) -> str:
    """'Found: ...' under the model box: what the model resolved to. Every part may come from an uploaded
    config.json or a Hub repo, so each is escaped."""
    parts = [safe_text(found["architecture"]), f"{found['params_b']:,.2f} B parameters", f"{found['layers']} layers"]
    if found.get("moe"):
        parts.append(safe_text(found["moe"]))
    if found["quantized"]:
        parts.append(f"published quantized: {safe_text(found['method'])} ({safe_text(found['scheme'])}"
                     + (f"; {safe_text(', '.join(found['details'][:3]), 160)}" if found.get("details") else "")
                     + ")")
        parts.append(f"base model {safe_text(found['base_model'])}" if found.get("base_model")
                     else "no base model named")
    if found.get("tensor_gb"):
        parts.append(f"{found['tensor_gb']:,.2f} GB of tensors ({safe_text(found['bytes_source'])})")
    return "Found: " + " · ".join(parts)


def model_found(model: str) -> tuple[dict | None, str | None]:
    """What the model resolves to (architecture, parameters, the checkpoint's quantization), or the error line.
    Hugging Face ids are read from the Hub (cached for an hour)."""
    import json

    custom = st.session_state.get(ui_state.CUSTOM_MODELS, {}).get(model)
    return _model_found(model, json.dumps(custom, sort_keys=True) if custom else None)


_held = threading.local()  # this script thread's latest decision (request JSON, RecommendResult), see _decide


def _decide(request_json: str) -> RecommendResult:
    """The engine's decision for a request. The plan document and the Speed tab's curves both start from it, so the
    one a script run has made is held for the rest of that run (its thread; released by release_decision) and a Speed
    tab open on the same request does not decide again (about 16 ms). Held per run, not in a shared cache: a decision
    is some 1,250 objects that every garbage collection would walk for as long as it is kept."""
    held = getattr(_held, "decision", None)
    if held is not None and held[0] == request_json:
        return held[1]
    result = recommend(Request.model_validate_json(request_json))
    _held.decision = (request_json, result)
    return result


def release_decision() -> None:
    """End of a script run (the router's): let go of the decision _decide held, before Streamlit's post-run garbage
    collection, which would otherwise walk it (and, with many users, every other run's too)."""
    _held.decision = None


@st.cache_data(max_entries=64, show_spinner=False)
def _plan_cached(request_json: str) -> tuple[dict | None, str | None]:
    try:  # plan_module.build(request), with the decision kept for _speed_cached
        return plan_module.render(_decide(request_json)), None
    except AdvisorInputError as exc:
        return None, str(exc)


@st.cache_data(max_entries=16, show_spinner=False)
def _recommend_cached(request_json: str) -> tuple[RecommendResult | None, str | None]:
    try:
        return recommend(Request.model_validate_json(request_json)), None
    except AdvisorInputError as exc:
        return None, str(exc)


@st.cache_data(max_entries=32, show_spinner=False)
def _speed_cached(request_json: str, endpoint: int) -> list[dict]:
    from advisor.decide.engine import speed_curves

    return speed_curves(_decide(request_json), endpoint)


def speed_series(request: Request, endpoint: int) -> list[dict]:
    """Throughput and latency against concurrency for the pick and its best alternatives."""
    return _speed_cached(request.model_dump_json(), endpoint)


def build_plan(request: Request) -> tuple[dict | None, str | None]:
    """(plan document, None) or (None, a readable error naming the field)."""
    return _plan_cached(request.model_dump_json())


def recommend_result(request: Request) -> tuple[RecommendResult | None, str | None]:
    return _recommend_cached(request.model_dump_json())


def plan_yaml(document: dict) -> str:
    return plan_module.dump(document)


def pack_plan(document: dict) -> bytes:
    """A plan document as one bytes object, for what a session keeps after its run (the last good plan, the Download
    button's deferred YAML). As a dict it is some 300 containers, and Streamlit's garbage collection after every
    script run walks what every session on the server keeps: with 20 sessions that was several ms per run. JSON, not
    pickle: a plan is plain data (the CLI prints it as JSON), and nothing unpacked here can run code."""
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")


def unpack_plan(packed: bytes) -> Any:
    return json.loads(packed)


MAX_NOTES = 8  # notes listed one by one; a link with hundreds of bad keys gets a count for the rest


def show_url_notes() -> None:
    """What the link held that could not be used, each echoed value escaped and capped."""
    notes = ui_state.url_notes()
    if notes:
        shown = [safe_message(n) for n in notes[:MAX_NOTES]]
        if len(notes) > MAX_NOTES:
            shown.append(f"and {len(notes) - MAX_NOTES} more")
        st.warning(
            "Some settings in the link could not be used and were replaced by defaults: " + "; ".join(shown) + ".",
            icon=":material/link_off:",
        )

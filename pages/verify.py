"""Verify: the plan and the results its validation script measured -> per endpoint, keep / try the next step /
roll back / re-measure the baseline / finish measuring, each check against the baseline and the plan's thresholds,
and the plan with the measurements added (schema 3).

Thin page: uploads -> ui/verify_view.py (bounded reading, one verdict per set of files) -> advisor.plan.verify ->
render. A bad file is named in one error; the plan and the last verdict that read cleanly stay on screen.
"""

import pandas as pd
import streamlit as st

from ui import verify_view as vv
from ui.frame import page_frame, safe_message, safe_text, show_chart

knowledge = page_frame("Verify")


def show_endpoint(ep: dict, plan_endpoint: dict, notations: dict, key: str) -> None:
    """One endpoint's verdict: the decision, each step's status, the charts, the checks, drift, what is manual."""
    if ep.get("skipped"):
        st.info(f"Not verified: {safe_text(ep['skipped'], None)}", icon=":material/block:")
        return
    kind, headline = vv.decision_view(ep["decision"])
    alert = {"success": st.success, "info": st.info, "warning": st.warning, "error": st.error}[kind]
    alert(f"**{safe_text(headline, 120)}** · {safe_text(ep['decision'].get('why', ''), None)}",
          icon=":material/fact_check:")
    st.markdown("**Steps:** " + " · ".join(
        safe_text(sid, 40) + (f" ({safe_text(notations[sid], 60)})" if notations.get(sid) else "")
        + f" :{vv.STATUS_MARKDOWN.get(status, 'gray')}[{safe_text(status, 20)}]"
        for sid, status in ep["steps"].items()))
    if ep.get("drifted"):
        st.warning("Drift: some figures moved past their limit since the results the plan held before (table below).",
                   icon=":material/trending_up:")

    quality, speed = vv.quality_rows(ep), vv.speed_rows(plan_endpoint)
    left, right = st.columns(2)
    for column, title, rows, figure, name, empty in (
        (left, "Quality: each task's score ÷ the baseline's", quality, vv.quality_figure, "quality",
         "No step has both its own and the baseline's quality results yet."),
        (right, "Speed: measured p50 against the speed model", speed, vv.speed_figure, "speed",
         "No speed results yet (the prefill and decode runs)."),
    ):
        with column:
            st.markdown(f"**{title}**")
            if rows:
                show_chart(figure(rows), key=f"{key}_{name}")
            else:
                st.caption(empty)

    st.markdown("**Checks**")
    st.dataframe(pd.DataFrame(vv.check_rows(ep["checks"])), hide_index=True, width="stretch",
                 column_config={"value": st.column_config.NumberColumn(format="%.4g"),
                                "baseline": st.column_config.NumberColumn(format="%.4g")})
    if ep.get("drift"):
        st.markdown("**Drift since the results the plan held before**")
        st.dataframe(pd.DataFrame(vv.drift_rows(ep["drift"])), hide_index=True, width="stretch")
    lines = vv.not_automated_lines(ep.get("not_automated") or [])
    if lines:
        with st.expander(f"Not checked automatically ({len(lines)})", icon=":material/checklist:"):
            st.markdown("\n".join(f"- **{safe_text(i, 60)}**" + (f": {safe_text(w, None)}" if w else "")
                                  for i, w in lines))


def show() -> None:
    """A function, so that what a run reads (the plan, the verdict) is gone when it ends (see pages/wizard.py)."""
    st.title("Verify")
    st.caption("Read back what validation measured: each step against the 16-bit baseline and the plan's "
               "thresholds, a decision per endpoint, and the plan with the measured figures beside the modelled ones.")
    left, right = st.columns(2)
    with left:
        plan_upload = st.file_uploader("Plan: plan.yaml from the bundle, or a plan this page wrote",
                                       type=["yaml", "yml"], key="verify_plan", max_upload_size=vv.MAX_PLAN_MB)
    with right:
        result_uploads = st.file_uploader(
            "Results: the JSON files under results/, or the folder as one .zip", type=["json", "zip"],
            accept_multiple_files=True, key="verify_results", max_upload_size=vv.MAX_UPLOAD_MB,
            help=f"lm-eval results_*.json, guidellm-*.json and vllm-bench-*.json files: up to {vv.MAX_UPLOAD_MB} MB "
            f"each and {vv.verify_module.MAX_FILES} files.") or []

    plan, plan_error = vv.held_plan(st.session_state, plan_upload, knowledge)
    if plan_error:
        still = f" Still verifying against {safe_text(plan.name)}." if plan is not None else ""
        st.error(f"{safe_message(plan_error)}.{still}", icon=":material/error:")
    if plan is None:
        if not plan_error:
            st.info("Upload the **plan.yaml** from the bundle the Plan page downloads (Download bundle), then the "
                    "result files validate.sh wrote under results/, one by one or the folder as a .zip.\n\n"
                    "Each step is judged against the baseline and the plan's thresholds; you get a decision per "
                    "endpoint and the plan with the measurements added.", icon=":material/upload_file:")
        return

    document = plan.document
    model = document.get("model") if isinstance(document.get("model"), dict) else {}
    names = [str(e.get("name")) for e in document["endpoints"] if isinstance(e, dict)]
    st.caption(f"Plan {safe_text(plan.name)}: {safe_text(model.get('name') or model.get('id') or 'a model')}, "
               f"endpoint{'s' if len(names) != 1 else ''} {safe_text(', '.join(names), 160)}"
               + (" (a request: planned now, so the results are judged against today's figures)"
                  if plan.from_request else "") + ".")

    verdict = vv.held_verdict(st.session_state, plan, result_uploads, knowledge)
    if verdict is None:
        steps = "; ".join(f"{safe_text(ep, 32)}: " + ", ".join(f"{safe_text(s, 32)} ({safe_text(n, 60)})"
                                                                 for s, n in ids.items())
                          for ep, ids in vv.step_notations(document, knowledge).items())
        st.info("Now upload the result files. The steps to measure, baseline first: " + (steps or "none") + ".",
                icon=":material/upload_file:")
        return
    if verdict.error:
        keep = (" The verdict below is still the one from the files before it: remove that file (its ✕) or "
                "replace it to update it." if verdict.stale else " Remove that file (its ✕) or replace it.")
        st.error(f"{safe_message(verdict.error)}.{keep}", icon=":material/error:")
    out = verdict.out
    if out is None:
        return

    count, download = st.columns([3, 1], vertical_alignment="bottom")
    count.caption(f"{len(out['files'])} result file{'s' if len(out['files']) != 1 else ''} read"
                  + (", before the file named above" if verdict.stale else "") + ".")
    with download:
        st.download_button("Download the plan with these results", data=vv.deferred_plan_yaml(verdict.packed),
                           file_name=vv.download_name(out["plan"]), mime="application/yaml", on_click="ignore",
                           icon=":material/download:", key="verify_download", width="stretch",
                           help="Schema 3: the plan as uploaded, plus per endpoint the measured figures, the decision "
                           "and drift. Upload it here with the next results to see what drifted.")
    notations = vv.step_notations(out["plan"], knowledge)
    endpoints = out["endpoints"]
    tabs = [st.container()] if len(endpoints) == 1 else st.tabs([safe_text(ep["endpoint"], 32) for ep in endpoints])
    for i, (tab, ep) in enumerate(zip(tabs, endpoints, strict=True)):
        with tab:
            show_endpoint(ep, vv.plan_endpoint(out, ep["endpoint"]), notations.get(ep["endpoint"], {}), f"v{i}")

    with st.expander("Files read", icon=":material/description:"):
        st.dataframe(pd.DataFrame([{"file": f["file"], "kind": f["kind"], "endpoint": f["endpoint"],
                                    "step": f["step"], "phase": f["phase"] or "",
                                    "served as": f["served_model_name"] or ""} for f in out["files"]]),
                     hide_index=True, width="stretch")


show()

"""Wizard: success criteria -> model -> GPUs and runtime -> endpoints -> recommendation.

Thin page: widgets (seeded from the URL once) -> WizardState -> advisor plan -> render; the URL follows.
"""

import re

import streamlit as st

from advisor.errors import AdvisorInputError
from advisor.intake.request import CUSTOM_GPU_ID, FAILURE_MODES, MAX_REVISION, PRIORITIES, CustomGPU
from advisor.physics.architecture import architecture_from_config, parse_config_text
from advisor.physics.estimate import gpu_price
from advisor.plan import document as plan_module
from advisor.plan.permalink import MAX_ENDPOINTS, custom_gpu_of
from ui import state as ui_state
from ui.frame import (
    cap,
    found_caption,
    model_choices,
    model_found,
    pack_plan,
    page_frame,
    plan_yaml,
    safe_message,
    safe_text,
    show_url_notes,
    speed_series,
    try_plan,
    unpack_plan,
)
from ui.verify_view import bundle_bytes
from ui.views import render_endpoint

MAX_UPLOAD_MB = 1
knowledge = page_frame("Plan")
custom_models: dict = st.session_state.setdefault(ui_state.CUSTOM_MODELS, {})


# --------------------------------------------------------------------------- callbacks (run before the rerun)
def _reset_shape(i: int) -> None:
    """A new workload preset brings its own shape; the user can then edit it."""
    preset = knowledge.workloads[st.session_state[ui_state.endpoint_key(i, "workload")]]
    st.session_state[ui_state.endpoint_key(i, "concurrency")] = preset.concurrency
    st.session_state[ui_state.endpoint_key(i, "prompt_tokens")] = preset.prompt_tokens
    st.session_state[ui_state.endpoint_key(i, "output_tokens")] = preset.output_tokens
    st.session_state[ui_state.endpoint_key(i, "context")] = 0


def _add_config() -> None:
    upload = st.session_state.get("upload_config")
    st.session_state.pop("_config_error", None)
    if upload is None:
        return
    try:
        config = parse_config_text(upload.getvalue(), where=upload.name)
        architecture_from_config(config, where=upload.name)
    except AdvisorInputError as exc:
        st.session_state["_config_error"] = str(exc)
        return
    stem = upload.name.removesuffix(".json")
    name = str(config.get("_name_or_path") or (stem if stem != "config" else "uploaded-model"))[:200]
    custom_models[name] = config
    st.session_state[ui_state.FIELDS["model"]] = name
    for key in ("_plan_error", "_plan_imported", "_plan_lost"):  # an earlier upload's notice no longer applies
        st.session_state.pop(key, None)


def _import_plan() -> None:
    """Restore what the file holds; what the wizard cannot hold is listed, never dropped in silence."""
    upload = st.session_state.get("upload_plan")
    for key in ("_plan_error", "_plan_imported", "_plan_lost"):
        st.session_state.pop(key, None)
    if upload is None:
        return
    try:
        request = plan_module.load(upload.getvalue(), knowledge, where=cap(upload.name))
    except AdvisorInputError as exc:
        st.session_state["_plan_error"] = str(exc)
        return
    current = st.session_state.get(ui_state.FIELDS["model"]) or ui_state.WizardState().model
    restored, lost = ui_state.restore_request(request, knowledge, custom_models, current)
    if restored is None:
        st.session_state["_plan_error"] = f"{cap(upload.name)} could not be restored: " + "; ".join(lost)
        return
    ui_state.write_state(restored)
    st.session_state.pop("_config_error", None)  # an earlier upload's error no longer applies
    st.session_state["_plan_imported"] = upload.name
    st.session_state["_plan_lost"] = lost


# --------------------------------------------------------------------------- inputs
with st.sidebar:
    st.subheader("1 · Success criteria")
    st.selectbox(
        "Priority",
        ["auto", *PRIORITIES],
        key=ui_state.FIELDS["priority"],
        persist_state="session",
        format_func=lambda p: "from each workload" if p == "auto" else p,
        help="What to optimise when several configurations fit (seed 004: start from the constraint).",
    )
    st.number_input(
        "Quality floor (% of BF16 accuracy kept)",
        min_value=0.0,
        max_value=100.0,
        step=0.5,
        key=ui_state.FIELDS["quality_floor"],
        persist_state="session",
        help="0 = no floor. Configurations whose published results go below it are ruled out.",
    )
    st.multiselect(
        "Unacceptable failure modes", list(FAILURE_MODES), key=ui_state.FIELDS["unacceptable"], persist_state="session"
    )
    with st.expander(
        "Speed and cost targets",
        expanded=bool(
            any(st.session_state.get(ui_state.FIELDS[f]) for f in ("max_ttft_ms", "max_tpot_ms", "max_cost"))
        ),
    ):
        for field, label, step, help_text in (
            ("max_ttft_ms", "Time to first token, at most (ms)", 50.0, "Modelled at each endpoint's prompt length."),
            ("max_tpot_ms", "Time per output token, at most (ms)", 5.0, "Modelled at each endpoint's concurrency."),
            ("max_cost", "Cost per million output tokens, at most ($)", 0.5, "At the GPU price below."),
        ):
            st.number_input(
                label,
                min_value=0.0,
                step=step,
                key=ui_state.FIELDS[field],
                persist_state="session",
                help=f"0 = no target. {help_text} Configurations that miss it are ruled out, "
                "with the modelled figure as the reason.",
            )
    st.segmented_control(
        "Calibration data",
        ["available", "none"],
        key=ui_state.FIELDS["calibration"],
        persist_state="session",
        help="Can you run calibration on prompts from your own traffic?",
    )

    st.subheader("2 · Model")
    st.selectbox(
        "Model: a catalog entry or any Hugging Face id",
        model_choices(knowledge, custom_models, st.session_state.get(ui_state.FIELDS["model"])),
        key=ui_state.FIELDS["model"],
        persist_state="session",
        accept_new_options=True,
        format_func=lambda m: (
            f"{knowledge.models[m].name} · {m}" if m in knowledge.models
            else f"{m} (uploaded config.json)" if m in custom_models else f"{m} (Hugging Face)"
        ),
        help="Type to search the catalog, or type any Hugging Face repo id (owner/name) and press Enter: its "
        "config.json, quantization metadata and safetensors headers are read from the Hub (the server's HF_TOKEN "
        "for gated repos).",
    )
    st.text_input(
        "Revision (optional)", key=ui_state.FIELDS["model_revision"], persist_state="session", max_chars=MAX_REVISION,
        placeholder="main",
        help="The Hub branch, tag or commit of the model's repo to serve. The serve commands pin it (--revision) and "
        "results you verify are tied to it: a plan made again for another revision marks them stale.",
    )
    found, found_error = model_found(st.session_state.get(ui_state.FIELDS["model"]) or "")
    if found_error:
        st.error(safe_message(found_error), icon=":material/error:")
    elif found:
        st.caption(found_caption(found))
    st.file_uploader(
        "…or upload a config.json",
        type=["json"],
        key="upload_config",
        on_change=_add_config,
        max_upload_size=MAX_UPLOAD_MB,
    )
    if st.session_state.get("_config_error"):
        st.error(safe_message(st.session_state["_config_error"]), icon=":material/error:")

    st.subheader("3 · GPUs and runtime")
    st.selectbox(
        "GPU",
        [*knowledge.gpus, CUSTOM_GPU_ID],
        key=ui_state.FIELDS["gpu"],
        persist_state="session",
        format_func=lambda g: "A GPU not in the list…" if g == CUSTOM_GPU_ID
        else f"{knowledge.gpus[g].name} ({knowledge.gpus[g].memory_gib:g} GiB)",
    )
    if st.session_state.get(ui_state.FIELDS["gpu"]) == CUSTOM_GPU_ID:
        st.text_input("GPU name", key=ui_state.FIELDS["gpu_name"], max_chars=60, persist_state="session")
        a, b = st.columns(2)
        a.number_input("Memory (GiB)", 0.0, 4096.0, step=1.0, key=ui_state.FIELDS["gpu_memory_gib"],
                       persist_state="session", help="What nvidia-smi / rocm-smi reports, in GiB (MiB / 1024).")
        b.number_input("Bandwidth (TB/s)", 0.0, 100.0, step=0.1, key=ui_state.FIELDS["gpu_bandwidth_tbps"],
                       persist_state="session")
        a.text_input("Compute capability", key=ui_state.FIELDS["gpu_cc"], max_chars=4, persist_state="session",
                     placeholder="8.9", help="NVIDIA compute capability; it decides which kernels run.")
        b.number_input("BF16 TFLOPS (dense)", 0.0, 1_000_000.0, step=10.0, key=ui_state.FIELDS["gpu_bf16"],
                       persist_state="session")
        a.number_input("FP8 TFLOPS (0 = none)", 0.0, 1_000_000.0, step=10.0, key=ui_state.FIELDS["gpu_fp8"],
                       persist_state="session")
        b.number_input("INT8 TOPS (0 = none)", 0.0, 1_000_000.0, step=10.0, key=ui_state.FIELDS["gpu_int8"],
                       persist_state="session")
        a.number_input("FP4 TFLOPS (0 = none)", 0.0, 1_000_000.0, step=10.0, key=ui_state.FIELDS["gpu_fp4"],
                       persist_state="session")
        st.caption("Dense figures, without 2:4 sparsity. The precisions given a figure are the ones it runs natively.")
        custom_state = ui_state.read_state()[0]
        custom_spec = custom_gpu_of(custom_state) if custom_state else None
        try:
            custom_gpu = CustomGPU.model_validate(custom_spec).to_gpu() if custom_spec else None
        except ValueError:
            custom_gpu = None  # the plan below names the missing or bad field
        if custom_gpu is not None:
            st.caption(f"{safe_text(custom_gpu.name)}: {custom_gpu.architecture}, {custom_gpu.memory_gib:g} GiB, runs "
                       f"{', '.join(f for f in custom_gpu.native_formats if f != 'fp32')} natively; matmul "
                       "efficiency assumed 0.8 (typical of measured NVIDIA parts).")
    st.number_input(  # no widget bounds: an out-of-range value is named in a banner, never clamped in silence
        "GPUs (tensor parallel)", step=1, key=ui_state.FIELDS["gpus"], persist_state="session",
        help="1 to 64 GPUs in one tensor-parallel replica (per node, with several nodes).",
    )
    st.number_input(
        "Nodes", step=1, key=ui_state.FIELDS["nodes"], persist_state="session",
        help="1 to 16 machines of that many GPUs each: tensor parallel inside a node, pipeline parallel across "
        "nodes (vLLM on a Ray cluster, SGLang), or one replica per node.",
    )
    st.selectbox(
        "Runtime",
        ["auto", *knowledge.runtimes],
        key=ui_state.FIELDS["runtime"],
        persist_state="session",
        format_func=lambda r: (
            "choose for me" if r == "auto" else f"{knowledge.runtimes[r].name} {knowledge.runtimes[r].version}"
        ),
    )
    list_price = gpu_price(knowledge, st.session_state.get(ui_state.FIELDS["gpu"], ""))
    st.number_input(
        "Your price per GPU-hour ($)",
        min_value=0.0,
        max_value=1000.0,
        step=0.1,
        key=ui_state.FIELDS["usd_per_gpu_hour"],
        persist_state="session",
        help="0 = the on-demand list price on file"
        + (f" (${list_price:g} for this GPU)." if list_price else " (none on file for this GPU).")
        + " Used for cost per million tokens.",
    )

    with st.expander("System RAM (for llama.cpp partial offload)",
                     expanded=bool(st.session_state.get(ui_state.FIELDS["host_memory_gib"]))):
        st.number_input("System RAM (GiB, 0 = not checked)", 0.0, 65536.0, step=8.0,
                        key=ui_state.FIELDS["host_memory_gib"], persist_state="session",
                        help="When no GGUF fits in VRAM, llama.cpp can keep layers in system RAM; this checks they fit.")
        st.number_input("RAM bandwidth a CPU decode reaches (GB/s, 0 = default)", 0.0, 10_000.0, step=10.0,
                        key=ui_state.FIELDS["host_memory_bandwidth_gbps"], persist_state="session",
                        help="Default 26 GB/s, fitted to a published llama.cpp -ngl sweep (knowledge/decision.yaml); "
                        "dual-channel DDR5 peaks at 64-90 GB/s.")

    st.subheader("4 · Endpoints")
    count = st.number_input(
        "How many endpoints", min_value=1, max_value=MAX_ENDPOINTS, key=ui_state.N_ENDPOINTS, persist_state="session"
    )
    for i in range(MAX_ENDPOINTS):
        if i >= count:
            break
        with st.expander(
            f"Endpoint {i + 1}: {safe_text(st.session_state.get(ui_state.endpoint_key(i, 'name'), ''), 32)}",
            expanded=i == 0,
        ):
            st.text_input(
                "Name",
                key=ui_state.endpoint_key(i, "name"),
                max_chars=32,
                persist_state="session",
                help="Letters, digits, - and _",
            )
            st.selectbox(
                "Workload",
                list(knowledge.workloads),
                key=ui_state.endpoint_key(i, "workload"),
                on_change=_reset_shape,
                args=(i,),
                persist_state="session",
                format_func=lambda w: knowledge.workloads[w].name,
            )
            st.selectbox(
                "Priority",
                ["auto", *PRIORITIES],
                key=ui_state.endpoint_key(i, "priority"),
                persist_state="session",
                format_func=lambda p: "request's / preset's" if p == "auto" else p,
            )
            a, b = st.columns(2)
            preset = knowledge.workloads.get(st.session_state.get(ui_state.endpoint_key(i, "workload")) or "")
            ceiling = preset is not None and preset.concurrency_mode == "ceiling"
            # No widget bounds on these: a value out of range is named in a banner above the last good result,
            # never clamped to the nearest bound in silence.
            a.number_input(
                "Concurrent requests, at most" if ceiling else "Concurrent requests",
                step=1,
                key=ui_state.endpoint_key(i, "concurrency"),
                persist_state="session",
                help="1 to 100,000. Batch work: the most requests in flight; the engine chooses how many each replica "
                "runs." if ceiling else "1 to 100,000 requests served at once; all of them must fit.",
            )
            b.number_input(
                "Context (0 = prompt + output)",
                step=1024,
                key=ui_state.endpoint_key(i, "context"),
                persist_state="session",
                help="Tokens per sequence, up to the model's own limit; 0 = prompt + output.",
            )
            a.number_input(
                "Prompt tokens", step=1, key=ui_state.endpoint_key(i, "prompt_tokens"), persist_state="session",
                help="1 to 10,000,000, within the context.",
            )
            b.number_input(
                "Output tokens", step=1, key=ui_state.endpoint_key(i, "output_tokens"), persist_state="session",
                help="1 to 1,000,000, within the context.",
            )

    st.subheader("Import")
    st.file_uploader(
        "Restore from a plan or request YAML",
        type=["yaml", "yml"],
        key="upload_plan",
        on_change=_import_plan,
        max_upload_size=MAX_UPLOAD_MB,
    )
    if st.session_state.get("_plan_error"):
        st.error(safe_message(st.session_state["_plan_error"]), icon=":material/error:")
    elif st.session_state.get("_plan_imported"):
        source = safe_text(st.session_state["_plan_imported"])
        lost = st.session_state.get("_plan_lost") or []
        if lost:
            st.warning(f"Restored from {source}, except:\n\n" + "\n".join(f"- {safe_message(x)}" for x in lost),
                       icon=":material/warning:")
        else:
            st.success(f"Restored from {source}.", icon=":material/check:")

# --------------------------------------------------------------------------- recommendation
st.title("Precision Advisor")
st.caption(
    "Which precision to serve your model at - weights, activations and KV cache - whether it fits, "
    "and how to validate it. Every rule and figure cites its source; GiB = 2^30 bytes."
)
show_url_notes()

LAST_GOOD = "_last_good"  # the last settings that planned, with their plan: kept on screen while a field is bad


def show_plan() -> None:
    """The plan for the widgets' settings, or the last good one. A function, so that what it builds (the plan document
    above all) is gone when the run ends: the widgets' callbacks keep this page's globals alive for as long as the
    session lasts, and Streamlit's garbage collection after every script run walks what every session keeps."""
    state, request, document, problem = try_plan(custom_models)
    if problem is None:
        ui_state.sync_url(state)
        packed = pack_plan(document)  # what the session keeps of the plan (ui.frame.pack_plan says why)
        st.session_state[LAST_GOOD] = (state, request, packed)
    elif st.session_state.get(LAST_GOOD) is None:
        st.error(f"These settings cannot be planned: {safe_message(problem)}", icon=":material/error:")
        st.stop()
    else:
        state, request, packed = st.session_state[LAST_GOOD]
        document = unpack_plan(packed)
        st.error(f"**Not updated.** {safe_message(problem)}. The plan below is still the last good one, for the "
                 "settings before this change (the link too); correct the field to update it.", icon=":material/error:")

    share, download = st.columns([5, 2], vertical_alignment="bottom")  # room for "Download bundle (.zip)"
    with share:
        st.code(ui_state.permalink(state), language=None, wrap_lines=True)
        if state.model in custom_models:
            st.caption("This link cannot carry an uploaded config.json: share the downloaded plan instead.")
    with download:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", state.model.rsplit("/", 1)[-1]).strip("-") or "model"
        st.download_button(
            "Download plan",
            data=lambda: plan_yaml(unpack_plan(packed)),  # built only when clicked
            file_name=f"{slug}-{state.gpu}.plan.yaml",
            mime="application/yaml",
            on_click="ignore",
            icon=":material/download:",
            key="download_plan",
            width="stretch",
        )
        st.download_button(
            "Download bundle (.zip)",
            data=lambda: bundle_bytes(unpack_plan(packed)),  # plan.yaml, validate.sh, manifests, README; on click
            file_name=f"{slug}-{state.gpu}.bundle.zip",
            mime="application/zip",
            on_click="ignore",
            icon=":material/folder_zip:",
            key="download_bundle",
            width="stretch",
            wrap=True,  # a narrow column (a laptop with the sidebar open) wraps the label instead of cutting it
            help="plan.yaml, validate.sh (the validation runs), Docker and Kubernetes files per endpoint and a README. "
            "Run validate.sh, then upload plan.yaml and results/ on the Verify page.",
        )

    endpoints = document["endpoints"]

    def curves(i: int):
        return lambda: speed_series(request, i)

    if len(endpoints) == 1:
        render_endpoint(endpoints[0], knowledge, key="ep0", speed=curves(0))
    else:
        labels = [safe_text(e["name"], 32) for e in endpoints]
        for i, (tab, endpoint) in enumerate(zip(st.tabs(labels), endpoints, strict=True)):
            with tab:
                render_endpoint(endpoint, knowledge, key=f"ep{i}", speed=curves(i))


show_plan()

"""The Verify page (pages/verify.py, ui/verify_view.py) and the Plan page's bundle (issue 12): uploads read with
bounds, one verdict per set of files, a bad file named in one error with the plan and the last verdict kept, the
tables and charts, and every name from a file shown escaped."""

from __future__ import annotations

import io
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from apptools import app, clear_streamlit_caches, plain  # noqa: F401 (the fixture is autouse)
from streamlit.testing.v1 import AppTest
from test_page_injection import IMAGE, LINK, assert_inert, bodies

from advisor.errors import AdvisorInputError
from advisor.knowledge import load_knowledge
from advisor.plan import document as plan_module
from advisor.plan import verify as verify_module
from advisor.plan.document import MAX_PLAN_BYTES
from ui import verify_view as vv

K = load_knowledge()
RESULTS = Path(__file__).parent / "fixtures" / "results"
PLAN_BYTES = (RESULTS / "plan.yaml").read_bytes()
PLAN = yaml.safe_load(PLAN_BYTES)


def tree(*parts: str) -> list[Path]:
    return sorted(p for p in RESULTS.joinpath(*parts).rglob("*.json"))


RUN1 = tree("run1")


def as_uploads(paths: list[Path]) -> list[tuple[str, bytes, str]]:
    """What a browser sends: each file's own name, without its folders."""
    return [(p.name, p.read_bytes(), "application/json") for p in paths]


def zipped(paths: list[Path], root: Path = RESULTS) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in paths:
            z.write(p, f"results/{p.relative_to(root)}")
        z.writestr("results/default/pick/server.log", "INFO started\n")  # not a result file: left out
    return buf.getvalue()


def verify_page() -> AppTest:
    return app(page="verify")


def upload_plan(at: AppTest, data: bytes = PLAN_BYTES, name: str = "plan.yaml") -> AppTest:
    at.file_uploader(key="verify_plan").upload(name, data, "application/yaml").run()
    return at


def upload_results(at: AppTest, files: list[tuple[str, bytes, str]]) -> AppTest:
    uploader = at.file_uploader(key="verify_results")
    for name, data, mime in files:
        uploader.upload(name, data, mime)
    at.run()
    return at


def alerts(at: AppTest, kind: str) -> list[str]:
    return [plain(x.value).replace("**", "") for x in at.main.get(kind)]


def everything(at: AppTest) -> str:
    return " ".join(plain(x) for x in bodies(at))


# ---------------------------------------------------------------- the page
def test_the_empty_page_says_what_to_upload():
    at = verify_page()
    assert not at.exception
    assert at.title[0].value == "Verify"
    info = alerts(at, "info")
    assert len(info) == 1 and "plan.yaml" in info[0] and "results/" in info[0] and ".zip" in info[0]
    assert not at.main.error and not at.main.success
    assert at.file_uploader(key="verify_results").accept_multiple_files
    assert set(at.file_uploader(key="verify_results").allowed_type) == {".json", ".zip"}


def test_the_page_runs_without_the_router():
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "pages" / "verify.py"), default_timeout=60).run()
    assert not at.exception and at.title[0].value == "Verify"


def test_plan_then_run1_results_keep_the_pick_with_the_checks_and_charts():
    at = upload_plan(verify_page())
    assert not at.exception
    info = alerts(at, "info")
    assert "baseline (W16A16 KV-BF16), pick (W8A8-FP8 KV-FP8)" in info[0]
    assert "Llama 3.1 8B Instruct, endpoint default" in everything(at)
    at = upload_results(at, as_uploads(RUN1))
    assert not at.exception and not at.main.error
    assert alerts(at, "success") == ["Keep pick · pick passes every automated check"]
    steps = next(m.value for m in at.markdown if m.value.startswith("**Steps:**"))
    assert ":green[pass]" in steps and ":gray[missing]" in steps and "fallback" in steps
    checks = at.dataframe[0].value
    assert list(checks.columns) == ["step", "check", "task / metric", "value", "baseline", "threshold", "status",
                                    "why"]
    mmlu = checks[(checks["step"] == "pick") & (checks["task / metric"] == "mmlu acc")].iloc[0]
    assert mmlu["value"] == 0.6772 and mmlu["baseline"] == 0.6808 and mmlu["status"] == "pass"
    assert set(checks[checks["step"] == "fallback"]["status"]) == {"missing"}
    assert len(at.get("plotly_chart")) == 2
    assert any(e.label.startswith("Not checked automatically (6)") for e in at.expander)
    assert "12 result files read." in everything(at)
    files = at.dataframe[-1].value
    assert len(files) == 12 and set(files["step"]) == {"baseline", "pick"}
    button = at.get("download_button")
    assert len(button) == 1 and button[0].label == "Download the plan with these results"


def test_a_bad_result_file_is_named_once_and_the_plan_and_last_verdict_stay():
    at = upload_results(upload_plan(verify_page()), as_uploads(RUN1))
    at = upload_results(at, as_uploads([RESULTS / "bad" / "not-json.json"]))
    assert not at.exception
    errors = alerts(at, "error")
    assert len(errors) == 1
    assert errors[0].startswith("result file not-json.json: is not JSON at line 1.")
    assert "still the one from the files before it" in errors[0]
    assert alerts(at, "success") == ["Keep pick · pick passes every automated check"]  # nothing lost on screen
    assert "Plan plan.yaml" in everything(at) and "before the file named above" in everything(at)
    assert at.file_uploader(key="verify_plan").value.name == "plan.yaml"
    assert len(at.get("download_button")) == 1


@pytest.mark.parametrize("bad, says", [
    ("other-model.json", "holds results for another model"),
    ("no-tasks.json", "holds none of the tasks"),
    ("wrong-format.json", "not a guidellm 0.8 report"),
])
def test_each_bad_fixture_gets_one_error_naming_it(bad, says):
    at = upload_results(upload_plan(verify_page()), as_uploads([RESULTS / "bad" / bad]))
    assert not at.exception
    errors = alerts(at, "error")
    assert len(errors) == 1 and errors[0].startswith(f"result file {bad}: ") and says in errors[0], errors
    assert "Remove that file" in errors[0] and not at.main.success


def test_the_results_folder_as_a_zip():
    at = upload_results(upload_plan(verify_page()), [("results.zip", zipped(RUN1), "application/zip")])
    assert not at.exception and not at.main.error
    assert alerts(at, "success")[0].startswith("Keep pick")
    assert "12 result files read." in everything(at)
    assert all(f.startswith("results.zip/results/run1/default/") for f in at.dataframe[-1].value["file"])


def test_failing_and_unmeasured_results_roll_back_and_ask_for_the_baseline():
    at = upload_results(upload_plan(verify_page()), as_uploads(tree("run1", "default", "baseline") + tree("fail")))
    assert not at.exception
    errors = alerts(at, "error")
    assert errors and errors[0].startswith("Roll back to fallback · pick (W8A8-FP8 KV-FP8) fails")
    checks = at.dataframe[0].value
    assert "fail" in set(checks[checks["step"] == "pick"]["status"])
    at = upload_results(upload_plan(verify_page()), as_uploads(tree("fail")))
    assert alerts(at, "warning")[0].startswith("Re-measure the baseline · no results for baseline")


def test_the_verified_plan_downloads_and_a_second_result_set_shows_drift():
    first = verify_module.verify(PLAN, verify_module.collect_results(RESULTS / "run1"), K)
    measured = plan_module.dump(first["plan"]).encode()
    at = upload_plan(verify_page(), measured, "Meta-Llama-3.1-8B-Instruct-l4.verified.plan.yaml")
    assert not at.exception and not at.main.error
    at = upload_results(at, as_uploads(tree("run1", "default", "baseline") + tree("run2")))
    assert not at.exception
    assert any(w.startswith("Drift:") for w in alerts(at, "warning"))
    drift = at.dataframe[1].value
    assert list(drift.columns) == ["step", "metric", "before", "after", "change", "limit", "drifted"]
    assert drift.iloc[0]["drifted"] == "yes" and "ttft" in drift.iloc[0]["metric"]


def test_the_download_is_the_schema_3_plan_with_nothing_lost():
    state: dict = {}
    plan, _ = vv.held_plan(state, FakeUpload("plan.yaml", PLAN_BYTES), K)
    verdict = vv.held_verdict(state, plan, uploads(RUN1), K)
    text = vv.deferred_plan_yaml(verdict.packed)()
    written = yaml.safe_load(text)
    assert written["schema_version"] == 3 and written["endpoints"][0]["decision"]["action"] == "keep"
    assert {k: v for k, v in written.items() if k not in ("schema_version", "endpoints")} == \
        {k: v for k, v in PLAN.items() if k not in ("schema_version", "endpoints")}
    assert plan_module.load(text, K).model == "meta-llama/Llama-3.1-8B-Instruct"
    assert vv.download_name(written) == "Llama-3.1-8B-Instruct-l4.verified.plan.yaml"


def test_a_bad_plan_is_named_and_a_good_one_before_it_is_kept():
    at = upload_plan(verify_page(), b"model: [unclosed\n", "broken.yaml")
    assert not at.exception
    errors = alerts(at, "error")
    assert len(errors) == 1 and errors[0].startswith("broken.yaml: not valid YAML")
    at = upload_plan(verify_page())
    at.file_uploader(key="verify_plan").set_value(("other.yaml", b"model: not-a-model\ngpu: l4\n",
                                                   "application/yaml")).run()
    assert not at.exception
    errors = alerts(at, "error")
    assert len(errors) == 1 and errors[0].startswith("other.yaml") and "Still verifying against plan.yaml" in errors[0]
    at = upload_results(at, as_uploads(RUN1))
    assert alerts(at, "success")[0].startswith("Keep pick")


def test_a_request_instead_of_a_plan_is_planned_now():
    at = upload_plan(verify_page(), b"model: meta-llama/Llama-3.1-8B-Instruct\ngpu: l4\nendpoints:\n"
                                    b"  - workload: interactive-chat\n", "request.yaml")
    assert not at.exception and not at.main.error
    assert "a request: planned now" in everything(at)


def test_names_from_files_are_escaped():
    at = upload_plan(verify_page(), PLAN_BYTES, f"{LINK}{IMAGE}.yaml")
    at = upload_results(at, [(f"{LINK} {IMAGE} :smile:.json", b"<html>502</html>", "application/json")])
    assert not at.exception
    error = at.main.error[0].value
    assert r"\[click here\]\(https:" in error
    assert_inert(bodies(at))


# ---------------------------------------------------------------- reading uploads (ui/verify_view.py)
@dataclass
class FakeUpload:
    name: str
    data: bytes
    file_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def size(self) -> int:
        return len(self.data)

    def getvalue(self) -> bytes:
        return self.data


def uploads(paths: list[Path]) -> list[FakeUpload]:
    return [FakeUpload(p.name, p.read_bytes()) for p in paths]


def test_each_set_of_uploads_is_verified_once(monkeypatch):
    calls = []
    real = verify_module.verify
    monkeypatch.setattr(verify_module, "verify", lambda *a, **k: calls.append(1) or real(*a, **k))
    state: dict = {}
    plan, error = vv.held_plan(state, FakeUpload("plan.yaml", PLAN_BYTES), K)
    assert error is None and plan.document == PLAN and not plan.from_request
    files = uploads(RUN1)
    first = vv.held_verdict(state, plan, files, K)
    again = vv.held_verdict(state, plan, files, K)
    assert first.out == again.out and first.out["endpoints"][0]["decision"]["action"] == "keep" and len(calls) == 1
    bad = [*files, FakeUpload("x.json", b"{")]
    for _ in range(2):
        verdict = vv.held_verdict(state, plan, bad, K)
        assert verdict.error.startswith("result file x.json: is not JSON") and verdict.stale
        assert verdict.out == first.out
    assert len(calls) == 2
    assert vv.held_verdict(state, plan, [], K) is None
    assert vv.held_plan(state, None, K) == (None, None) and not state  # removing the plan forgets everything


def test_a_verdict_under_another_plan_is_not_shown_as_the_last_one():
    state: dict = {}
    plan, _ = vv.held_plan(state, FakeUpload("plan.yaml", PLAN_BYTES), K)
    vv.held_verdict(state, plan, uploads(RUN1), K)
    other, _ = vv.held_plan(state, FakeUpload("again.yaml", PLAN_BYTES), K)
    verdict = vv.held_verdict(state, other, [FakeUpload("x.json", b"nope")], K)
    assert verdict.error and verdict.out is None and not verdict.stale


def test_plan_bounds():
    with pytest.raises(AdvisorInputError, match=r"^big.yaml: is over 1,000,000 bytes"):
        vv.read_plan("big.yaml", b"#" * (MAX_PLAN_BYTES + 1), K)
    with pytest.raises(AdvisorInputError, match="not a text file"):
        vv.read_plan("bin.yaml", b"\xff\xfe\x00", K)
    with pytest.raises(AdvisorInputError, match="expected a YAML mapping"):
        vv.read_plan("list.yaml", b"- 1\n", K)


def test_unforeseen_plan_shapes_get_one_line_not_a_traceback():
    broken = dict(PLAN, endpoints=[{"name": "default", "recommendation": "not a mapping"}])
    state: dict = {}
    plan, error = vv.held_plan(state, FakeUpload("plan.yaml", plan_module.dump(broken).encode()), K)
    assert error is None
    verdict = vv.held_verdict(state, plan, uploads(RUN1), K)
    assert verdict.out is None and verdict.error and "\n" not in verdict.error


def zip_of(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_zip_reading_keeps_only_result_files_with_their_paths():
    files = vv.result_files([FakeUpload("r.zip", zipped(RUN1)), FakeUpload("extra.json", b"{}")])
    assert len(files) == 13 and files[-1] == ("extra.json", b"{}")
    assert all(name.startswith("r.zip/results/run1/default/") for name, _ in files[:-1])
    assert not any(name.endswith(".log") for name, _ in files)


@pytest.mark.parametrize("data, says", [
    (b"PK\x03\x04 not really a zip", "is not a zip file"),
    (zip_of({"notes.txt": b"x", "dir/": b""}), "holds no result files"),
    (zip_of({"a/results_1.json": b"{" + b" " * (2 * 1024 * 1024) + b"}"}), "is compressed more than 100:1"),
    (zip_of({f"r/{i}/results_x.json": b"{}" for i in range(vv.MAX_ZIP_ENTRIES + 1)}, zipfile.ZIP_STORED),
     "more than 5,000 entries"),
    (zip_of({f"r/{i}/results_x.json": b"{}" for i in range(verify_module.MAX_FILES + 1)}, zipfile.ZIP_STORED),
     "more than 500 result files"),
])
def test_zip_bounds(data, says):
    with pytest.raises(AdvisorInputError, match=says):
        vv.result_files([FakeUpload("r.zip", data)])


def test_a_zip_entry_over_the_size_limit_is_named():
    big = b"{" + b"0123456789abcdef" * (verify_module.MAX_RESULT_BYTES // 16) + b"}"
    with pytest.raises(AdvisorInputError, match=r"^result file r.zip/x/guidellm-decode.json: is over 20 MB"):
        vv.result_files([FakeUpload("r.zip", zip_of({"x/guidellm-decode.json": big}))])


def test_result_upload_bounds(monkeypatch):
    with pytest.raises(AdvisorInputError, match=r"^result file big.json: is over 20 MB"):
        vv.result_files([FakeUpload("big.json", b" " * (verify_module.MAX_RESULT_BYTES + 1))])
    monkeypatch.setattr(vv, "MAX_TOTAL_BYTES", 10)
    with pytest.raises(AdvisorInputError, match="MB in all"):
        vv.result_files([FakeUpload("a.json", b"{}" * 4), FakeUpload("b.json", b"{}" * 4)])
    monkeypatch.setattr(verify_module, "MAX_FILES", 1)
    monkeypatch.setattr(vv, "MAX_TOTAL_BYTES", 10**6)
    with pytest.raises(AdvisorInputError, match="more than 1 result files"):
        vv.result_files([FakeUpload("a.json", b"{}"), FakeUpload("b.json", b"{}")])


# ---------------------------------------------------------------- tables and charts
def run1_verdict() -> dict:
    return verify_module.verify(PLAN, verify_module.collect_results(RESULTS / "run1"), K)


def test_chart_rows_are_the_ratio_to_baseline_and_measured_against_modelled():
    out = run1_verdict()
    ep = out["endpoints"][0]
    quality = vv.quality_rows(ep)
    assert {(r["step"], r["task"]) for r in quality} == {("pick", t) for t in
                                                        ("mmlu", "lambada_openai", "ifeval", "wikitext")}
    mmlu = next(r for r in quality if r["task"] == "mmlu")
    assert mmlu["ratio"] == pytest.approx(0.6772 / 0.6808) and mmlu["metric"] == "acc" and mmlu["status"] == "pass"
    assert next(r for r in quality if r["task"] == "wikitext")["lower_is_better"]
    speed = vv.speed_rows(vv.plan_endpoint(out, "default"))
    pick_ttft = next(r for r in speed if r["step"] == "pick" and r["metric"] == "ttft_ms")
    assert pick_ttft["measured"] == 139.6 and pick_ttft["modelled"] == 130.0 and pick_ttft["band_pct"] == 30.0
    assert {r["step"] for r in speed} == {"baseline", "pick"}


def test_the_figures_hold_the_rows_and_escape_names():
    rows = [{"step": "pick", "task": "<a href='x'>t</a>", "metric": "acc", "ratio": 0.9, "status": "fail",
             "lower_is_better": False},
            {"step": "pick", "task": "wikitext", "metric": "word_perplexity", "ratio": 1.01, "status": "pass",
             "lower_is_better": True}]
    fig = vv.quality_figure(rows)
    bar = fig.data[0]
    assert list(bar.x) == pytest.approx([-0.1, 0.01]) and bar.base == 1.0
    assert list(bar.marker.color) == [vv.STATUS_COLOURS["fail"], vv.STATUS_COLOURS["pass"]]
    texts = [a.text for a in fig.layout.annotations]
    assert texts[0] == "pick · &lt;a href='x'&gt;t&lt;/a&gt; acc" and texts[1].endswith("(lower is better)")
    lo, hi = fig.layout.xaxis.range
    assert lo < 0.9 and hi > 1.01
    speed = vv.speed_rows(vv.plan_endpoint(run1_verdict(), "default"))
    fig = vv.speed_figure(speed)
    assert [t.type for t in fig.data] == ["bar", "bar"]
    assert list(fig.data[0].x) == [270.4, 255.5, 139.6, 130.0]
    labels = [a.text for a in fig.layout.annotations]
    assert "Time to first token, p50 (ms)" in labels and "pick · modelled (band ±30%: 91–169)" in labels
    assert fig.layout.yaxis.domain[0] > fig.layout.yaxis2.domain[1]  # TTFT above TPOT


def test_decisions_read_as_actions():
    assert vv.decision_view({"action": "keep", "step": "pick"}) == ("success", "Keep pick")
    assert vv.decision_view({"action": "roll-back", "step": "fallback"}) == ("error", "Roll back to fallback")
    assert vv.decision_view({"action": "try-next-step", "step": "pick"})[1] == "Try the next step: pick"
    assert vv.decision_view({"action": "re-measure-baseline", "step": "baseline"}) == ("warning",
                                                                                       "Re-measure the baseline")
    assert vv.decision_view({"action": "finish-measuring", "step": "pick"})[1] == "Finish measuring pick"


# ---------------------------------------------------------------- the Plan page's bundle
def test_the_plan_page_offers_the_bundle_beside_the_plan():
    at = app({"m": "meta-llama/Llama-3.1-8B-Instruct", "g": "l4"})
    assert not at.exception
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download plan", "Download bundle (.zip)"]


def test_the_bundle_holds_the_plan_validation_and_manifests():
    from advisor.intake.request import Request

    document = plan_module.build(Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="l4"), K)
    data = vv.bundle_bytes(document)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = set(z.namelist())
        assert {"plan.yaml", "validate.sh", "README.md", "manifests/default/kubernetes.yaml",
                "manifests/default/docker-run.sh", "results/"} <= names
        assert yaml.safe_load(z.read("plan.yaml")) == yaml.safe_load(plan_module.dump(document))
    assert vv.bundle_bytes(document) == data  # deterministic

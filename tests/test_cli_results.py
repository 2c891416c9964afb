"""`python -m advisor bundle` and `verify` (issue 12): the bundle a team runs, and its results read back in."""

import io
import zipfile
from pathlib import Path

import yaml

from advisor.cli import main
from advisor.plan import document

FIX = Path(__file__).resolve().parent / "fixtures" / "results"


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_bundle_holds_the_plan_validation_and_manifests(capsys, tmp_path):
    request = tmp_path / "request.yaml"
    request.write_text("model: meta-llama/Llama-3.1-8B-Instruct\ngpu: l4\nendpoints:\n  - workload: interactive-chat\n")
    out_zip = tmp_path / "plan.zip"
    status, out, err = run(capsys, "bundle", request, "-o", out_zip)
    assert status == 0, err
    assert "wrote" in out and "verify plan.yaml results/" in out
    with zipfile.ZipFile(io.BytesIO(out_zip.read_bytes())) as z:
        names = set(z.namelist())
        assert {"plan.yaml", "README.md", "validate.sh", "manifests/default/kubernetes.yaml",
                "manifests/default/docker-run.sh", "results/"} <= names
        plan_text = z.read("plan.yaml").decode()
        script = z.read("validate.sh").decode()
    assert document.load(plan_text).model == "meta-llama/Llama-3.1-8B-Instruct"
    assert "lm_eval" in script and "exit 1" not in script.splitlines()[-1]


def test_verify_pass_prints_keep_and_writes_a_schema_3_plan(capsys, tmp_path):
    out_plan = tmp_path / "measured.yaml"
    status, out, err = run(capsys, "verify", FIX / "plan.yaml", FIX / "run1", "-o", out_plan)
    assert status == 0, err
    assert out.startswith("endpoint default: keep (pick)")
    assert "[   pass] pick: task-probes mmlu" in out
    written = yaml.safe_load(out_plan.read_text())
    assert written["schema_version"] == 3
    assert written["endpoints"][0]["decision"]["action"] == "keep"
    # the written plan is a plan: it loads and plans again
    status, out, err = run(capsys, "plan", out_plan, "--format", "text")
    assert status == 0, err


def test_verify_fail_rolls_back_and_missing_baseline_asks_for_it(capsys):
    status, out, _ = run(capsys, "verify", FIX / "plan.yaml", FIX / "run1" / "default" / "baseline", FIX / "fail")
    assert status == 0 and out.startswith("endpoint default: roll-back")
    assert "[   fail] pick: task-probes mmlu" in out
    status, out, _ = run(capsys, "verify", FIX / "plan.yaml", FIX / "fail")
    assert status == 0 and out.startswith("endpoint default: re-measure-baseline")


def test_verify_json_format_and_drift_on_a_second_result_set(capsys, tmp_path):
    first = tmp_path / "first.yaml"
    assert run(capsys, "verify", FIX / "plan.yaml", FIX / "run1", "-o", first)[0] == 0
    status, out, err = run(capsys, "verify", first, FIX / "run1" / "default" / "baseline", FIX / "run2",
                           "--format", "json")
    assert status == 0, err
    assert '"drifted": true' in out


def test_bad_result_files_get_one_line_and_exit_2(capsys, tmp_path):
    for bad in sorted((FIX / "bad").iterdir()):
        status, out, err = run(capsys, "verify", FIX / "plan.yaml", bad)
        assert status == 2 and out == ""
        assert err.count("\n") == 1 and err.startswith("error: result file"), (bad.name, err)
    empty = tmp_path / "empty"
    empty.mkdir()
    status, _, err = run(capsys, "verify", FIX / "plan.yaml", empty)
    assert status == 2 and "no result files found" in err
    status, _, err = run(capsys, "verify", FIX / "plan.yaml", tmp_path / "missing.json")
    assert status == 2 and "cannot be read" in err
    status, _, err = run(capsys, "bundle", FIX / "plan.yaml", "-o", tmp_path / "no" / "such" / "dir.zip")
    assert status == 2 and err.startswith("error: --output")


def test_planning_a_verified_plan_again_keeps_its_results_and_says_when_they_are_stale(capsys, tmp_path):
    measured = tmp_path / "measured.yaml"
    assert run(capsys, "verify", FIX / "plan.yaml", FIX / "run1", "-o", measured)[0] == 0
    status, out, err = run(capsys, "plan", measured, "--format", "yaml")
    assert status == 0, err
    again = yaml.safe_load(out)
    ep = again["endpoints"][0]
    assert again["schema_version"] == 3 and ep["measured"]["steps"]["pick"]["status"] == "pass"
    assert ep["validation_status"]["status"] == "current"
    assert isinstance(ep["validation"], list)  # the plan's own checks stay
    # the results were measured on another runtime release: a retest trigger
    older = tmp_path / "older.yaml"
    text = measured.read_text()
    version = yaml.safe_load(text)["endpoints"][0]["measured"]["validated_on"]["runtime_version"]
    older.write_text(text.replace(f"runtime_version: {version}", "runtime_version: 0.0.1"))
    status, out, err = run(capsys, "plan", older, "--format", "text")
    assert status == 0, err
    assert f"validated stale: last decision keep (pick); runtime version was 0.0.1, now {version}" in out
    # a plain plan (no measured results) is unchanged: schema 2, no validation_status
    status, out, _ = run(capsys, "plan", FIX / "plan.yaml", "--format", "yaml")
    assert yaml.safe_load(out)["schema_version"] == 2 and "validation_status" not in out


def test_verify_with_a_plan_that_is_not_yaml_names_it(capsys, tmp_path):
    bad = tmp_path / "plan.yaml"
    bad.write_text("a: [\n")
    status, out, err = run(capsys, "verify", bad, FIX / "run1")
    assert status == 2 and out == "" and err.startswith("error: plan.yaml") and "please report" not in err

"""The model revision (issue 12, drift and re-test): a request may pin the Hub revision of the model's repo; the plan
names it, the serve commands that load that repo pass it, validation results record it, and a plan made again for
another revision marks the results measured on the first one stale."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from advisor.cli import main
from advisor.errors import AdvisorInputError
from advisor.intake.catalog import LOCAL_FILES, resolve_model
from advisor.intake.request import Request
from advisor.knowledge import load_knowledge
from advisor.plan.document import build
from advisor.plan.verify import collect_results, verify

K = load_knowledge()
FIX = Path(__file__).resolve().parent / "fixtures" / "results"
SHA = "0e9e39f249a16976918f6564b8830bc894c89659"


@pytest.mark.parametrize("bad", ["../main", "main/", "-rf", "a b", "refs/pr/1.lock", "x" * 129])
def test_a_revision_must_be_a_branch_tag_or_commit_name(bad):
    with pytest.raises(ValidationError, match="model_revision"):
        Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="h100-sxm", model_revision=bad)


def test_the_plan_names_the_revision_and_the_commands_that_load_the_repo_pin_it():
    # TGI quantizes the model's own repo at load time: that repo at that revision is what it loads
    tgi = build(Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="h100-sxm", runtime="tgi", model_revision=SHA), K)
    assert tgi["model"]["revision"] == SHA and tgi["request"]["model_revision"] == SHA
    serve = tgi["endpoints"][0]["runtime"]["serve_command"]
    assert "--model-id meta-llama/Llama-3.1-8B-Instruct" in serve and serve.endswith(f"--revision {SHA}")
    # vLLM serves a published FP8 checkpoint, another repo: the model's revision says nothing about it
    vllm = build(Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="h100-sxm", runtime="vllm", model_revision=SHA), K)
    serve = vllm["endpoints"][0]["runtime"]["serve_command"]
    assert "RedHatAI/" in serve and "--revision" not in serve
    # without a revision, no flag and no field
    plain = build(Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="h100-sxm", runtime="tgi"), K)
    assert "revision" not in plain["model"] and "--revision" not in plain["endpoints"][0]["runtime"]["serve_command"]


def test_a_local_config_has_no_revision(tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4096, '
                      '"num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, '
                      '"intermediate_size": 14336, "vocab_size": 128256, "max_position_embeddings": 131072}')
    token = LOCAL_FILES.set(True)
    try:
        assert resolve_model(K, str(config)).architecture.num_layers == 32
        with pytest.raises(AdvisorInputError, match="model_revision"):
            resolve_model(K, str(config), revision="main")
    finally:
        LOCAL_FILES.reset(token)


def test_results_are_recorded_against_the_plans_revision():
    plan = yaml.safe_load((FIX / "plan.yaml").read_text())
    plan["model"]["revision"] = SHA
    out = verify(plan, collect_results(FIX / "run1"), K)
    on = out["plan"]["endpoints"][0]["measured"]["validated_on"]
    assert on["model_revision"] == SHA and "model.revision" in on["model_revision_note"]


def test_planning_again_for_another_revision_marks_the_results_stale(capsys, tmp_path):
    measured = tmp_path / "measured.yaml"
    assert main(["verify", str(FIX / "plan.yaml"), str(FIX / "run1"), "-o", str(measured)]) == 0
    doc = yaml.safe_load(measured.read_text())
    doc["endpoints"][0]["measured"]["validated_on"]["model_revision"] = "v1.0"
    doc["request"]["model_revision"] = "v1.1"
    moved = tmp_path / "moved.yaml"
    moved.write_text(yaml.safe_dump(doc, sort_keys=False))
    capsys.readouterr()
    assert main(["plan", str(moved), "--format", "yaml"]) == 0
    again = yaml.safe_load(capsys.readouterr().out)
    status = again["endpoints"][0]["validation_status"]
    assert again["model"]["revision"] == "v1.1"
    assert status["status"] == "stale" and "model revision was v1.0, now v1.1" in status["why"]
    # the same revision on both sides: current
    doc["request"]["model_revision"] = "v1.0"
    moved.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert main(["plan", str(moved), "--format", "yaml"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["endpoints"][0]["validation_status"]["status"] == "current"


def test_the_cli_flag_reaches_the_plan(capsys):
    assert main(["recommend", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm", "--runtime", "tgi",
                 "--model-revision", SHA, "--format", "yaml"]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    assert doc["model"]["revision"] == SHA
    assert main(["recommend", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm",
                 "--model-revision", "../x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --model-revision: a revision is a Hub branch, tag or commit")


def test_the_validation_script_pins_the_revision_for_steps_that_load_the_repo():
    from advisor.plan.validation import validate_script, validation_plan

    plan = build(Request(model="meta-llama/Llama-3.1-8B-Instruct", gpu="h100-sxm", runtime="tgi", model_revision=SHA), K)
    steps = {s["id"]: s for s in validation_plan(plan, K)["endpoints"][0]["steps"]}
    assert f"--revision {SHA}" in steps["baseline"]["serve"]["template"]  # the 16-bit baseline loads the repo itself
    # a plan file edited by hand: a revision that is not a branch, tag or commit name never reaches the script
    plan["model"]["revision"] = "main; touch /tmp/planted"
    script = validate_script(plan)
    assert "planted" not in script

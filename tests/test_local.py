"""A checkpoint folder on this machine: read like a Hub repo, from disk, and served from that folder."""

import json

import pytest
from hubserver import safetensors

from advisor.errors import AdvisorInputError
from advisor.intake.catalog import resolve_model
from advisor.intake.local import safetensors_bytes
from advisor.intake.request import Endpoint, Request
from advisor.knowledge import load_knowledge
from advisor.plan import document as plan

K = load_knowledge()
CONFIG = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 512,
          "intermediate_size": 1024, "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 2,
          "head_dim": 64, "vocab_size": 2048, "max_position_embeddings": 8192, "torch_dtype": "float16",
          "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm",
                                  "zero_point": True}}


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "Tiny-Mistral-AWQ"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(CONFIG))
    (d / "README.md").write_text("---\nbase_model: acme/Tiny-Mistral\n---\n# card\n")
    (d / "model-00001-of-00002.safetensors").write_bytes(safetensors({"a": ("F16", [2048, 512])}, data=True))
    (d / "model-00002-of-00002.safetensors").write_bytes(safetensors({"b": ("I32", [512, 128])}, data=True))
    return d


def test_a_folder_is_read_from_disk_with_exact_bytes_and_its_base_model(folder):
    model = resolve_model(K, str(folder))
    assert model.name == "Tiny-Mistral-AWQ" and model.repo == str(folder)
    assert model.native.scheme == "int4-awq" and model.base_model == "acme/Tiny-Mistral"
    assert model.native.checkpoint_bytes == 2048 * 512 * 2 + 512 * 128 * 4
    assert "safetensors headers" in model.native.bytes_source
    assert resolve_model(K, str(folder / "config.json")).repo == str(folder)  # its config.json: the same folder


def test_the_plan_serves_the_folder(folder):
    e = plan.build(Request(model=str(folder), gpu="h100-sxm", endpoints=[Endpoint()]), K)["endpoints"][0]
    command = e["runtime"]["serve_command"]
    assert str(folder) in command or "acme/Tiny-Mistral" in command  # the folder, or the base model it names


def test_an_uploaded_config_is_served_from_a_named_folder_not_config_json(tmp_path):
    path = tmp_path / "ms24-awq.json"
    path.write_text(json.dumps(CONFIG))
    e = plan.build(Request(model=str(path), gpu="l40s", endpoints=[Endpoint()]), K)["endpoints"][0]
    assert " ./ms24-awq " in e["runtime"]["serve_command"] + " "
    assert "config.json" not in e["runtime"]["serve_command"]


def test_bad_folders_and_headers_get_one_line(tmp_path):
    with pytest.raises(AdvisorInputError, match="has no config.json"):
        resolve_model(K, str(tmp_path))
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\xff" * 8)
    with pytest.raises(AdvisorInputError, match="header of .* bytes is over"):
        safetensors_bytes(bad)
    bad.write_bytes(b"\x04\0\0\0\0\0\0\0nope")
    with pytest.raises(AdvisorInputError, match="not valid JSON"):
        safetensors_bytes(bad)

"""Knowledge-base page: the table flattening (advisor/knowledge_tables.py) and the page itself (AppTest)."""

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from advisor.knowledge import KNOWLEDGE_DIR, load_knowledge
from advisor.knowledge.tables import TABLES, condition_text, effect_text, filter_rows, table_rows

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "knowledge.py")


def _row_count(table_id: str) -> int:
    table = getattr(load_knowledge(), table_id)
    return len(table)


# --------------------------------------------------------------------------- pure conversion
def test_tables_in_page_order():
    assert [label for label, _ in TABLES.values()] == [
        "GPUs",
        "Models",
        "Published checkpoints",
        "Weight schemes",
        "KV-cache formats",
        "Candidates (W/A configurations)",
        "Rules",
        "Quality evidence",
        "Priorities (objectives)",
        "Decision constants",
        "Validation checks",
        "Methods",
        "Numeric formats",
        "Runtimes",
        "Workload presets",
        "Seed statements",
        "Calibration checkpoints",
    ]


@pytest.mark.parametrize("table_id", list(TABLES))
def test_every_row_is_flat_with_a_source_last(table_id):
    rows = table_rows(load_knowledge(), table_id)
    assert len(rows) == _row_count(table_id) > 0
    columns = list(rows[0])
    assert columns[0] == "id" and columns[-1] == "source"
    for row in rows:
        assert list(row) == columns
        assert isinstance(row["source"], str) and row["source"].strip()
        for name, value in row.items():
            assert value is None or isinstance(value, str | int | float | bool), (table_id, row["id"], name)


@pytest.mark.parametrize("table_id", list(TABLES))
def test_yaml_file_exists(table_id):
    assert (KNOWLEDGE_DIR / TABLES[table_id][1]).is_file()


def test_unknown_table_is_a_key_error():
    with pytest.raises(KeyError, match="unknown knowledge table"):
        table_rows(load_knowledge(), "recipes-typo")


def test_gpu_rows_mark_unverified_fields():
    k = load_knowledge()
    rows = {r["id"]: r for r in table_rows(k, "gpus")}
    assert rows["l40s"]["unverified"] == "dense_tflops, matmul_efficiency"  # its matmul fraction is the typical one
    assert rows["h100-sxm"]["unverified"] == ""
    assert rows["mi300x"]["compute capability / arch"] == "gfx942"
    assert rows["h100-sxm"]["compute capability / arch"] == "9.0"


def test_model_rows_summarise_the_config():
    rows = {r["id"]: r for r in table_rows(load_knowledge(), "models")}
    llama = rows["meta-llama/Llama-3.1-8B-Instruct"]
    assert (llama["layers"], llama["hidden"], llama["heads / KV heads"], llama["experts"]) == (32, 4096, "32 / 8", "")
    assert llama["published params"] == "8,030,261,248"
    assert rows["openai/gpt-oss-20b"]["native layout"] == "bf16, experts: mxfp4"
    assert "per token" in rows["mistralai/Mixtral-8x7B-Instruct-v0.1"]["experts"]


def test_condition_and_effect_text():
    either = {"any": [{"fact": "b", "op": "truthy"}, {"fact": "c", "op": "in", "value": ["x", "y"]}]}
    cond = {"all": [{"fact": "a", "op": "eq", "value": 1}, {"not": either}]}
    assert condition_text(cond) == "a = 1 and not (b or c in [x, y])"
    assert condition_text({}) == "always"
    rule = load_knowledge().rules["fp8-compute-needs-ada"]
    assert effect_text(rule.effect).startswith("reject: ")


def test_filter_is_case_insensitive_over_all_columns():
    rows = [{"id": "a", "name": "NVIDIA H100", "n": 1}, {"id": "b", "name": "L4", "n": None}]
    assert filter_rows(rows, "h100") == rows[:1]
    assert filter_rows(rows, "  ") == rows
    assert filter_rows(rows, "1") == rows[:1]
    assert filter_rows(rows, "zzz") == []


# --------------------------------------------------------------------------- the page
@pytest.fixture(autouse=True)
def _clear_streamlit_caches():
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def page():
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    assert not at.exception
    return at


def test_page_shows_gpus_by_default(page):
    assert page.title[0].value == "Knowledge base"
    assert page.segmented_control(key="kb_table").value == "gpus"
    df = page.dataframe[0].value
    assert len(df) == _row_count("gpus")
    assert list(df.columns)[-1] == "source"
    assert "unverified" in df.columns
    assert any(f"{_row_count('gpus')} rows" in c.value and "gpus.yaml" in c.value for c in page.caption)


def test_every_table_renders_all_its_rows(page):
    for table_id, (label, yaml_file) in TABLES.items():
        page.segmented_control(key="kb_table").set_value(table_id).run()
        assert not page.exception, table_id
        df = page.dataframe[0].value
        assert len(df) == _row_count(table_id), table_id
        assert df["source"].str.strip().ne("").all(), table_id
        assert any(yaml_file in c.value and label in c.value for c in page.caption), table_id


def test_filter_h100_keeps_only_h100_rows(page):
    page.text_input(key="kb_filter").input("h100").run()
    assert not page.exception
    df = page.dataframe[0].value
    assert sorted(df["id"]) == ["h100-nvl", "h100-pcie", "h100-sxm"]
    assert all("H100" in name for name in df["name"])
    assert any(f"3 of {_row_count('gpus')} rows" in c.value for c in page.caption)


def test_filter_with_no_match_says_so(page):
    page.text_input(key="kb_filter").input("no-such-thing-xyz").run()
    assert not page.exception
    assert not page.dataframe
    assert "No row" in page.info[0].value


def test_filter_applies_to_the_chosen_table(page):
    page.segmented_control(key="kb_table").set_value("rules").run()
    page.text_input(key="kb_filter").input("FP8").run()
    df = page.dataframe[0].value
    assert 0 < len(df) < _row_count("rules")
    assert all(df.apply(lambda r: "fp8" in " ".join(map(str, r.values)).lower(), axis=1))

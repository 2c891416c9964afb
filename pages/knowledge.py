"""Knowledge base: browse the YAML tables the advisor reasons from, each row with its source.

Thin page: pick a table, filter its rows, show them. The flattening lives in advisor/knowledge_tables.py.
"""

import pandas as pd
import streamlit as st

from advisor.knowledge.tables import COLUMN_FORMATS, TABLES, filter_rows, table_rows
from ui.frame import page_frame, safe_text

knowledge = page_frame("Knowledge base")

st.title("Knowledge base")
st.caption(
    "Every row carries a source. The tables are YAML files in `knowledge/`: adding a GPU, a model or a rule "
    "is a YAML edit."
)

table_id = st.segmented_control(
    "Table",
    list(TABLES),
    default="gpus",
    required=True,
    format_func=lambda t: TABLES[t][0],
    key="kb_table",
    persist_state="session",
)
query = st.text_input(
    "Filter rows",
    placeholder="Text to look for in any column, e.g. h100, fp8, awq",
    key="kb_filter",
    persist_state="session",
)

label, yaml_file = TABLES[table_id]
all_rows = table_rows(knowledge, table_id)
rows = filter_rows(all_rows, query)
columns = list(all_rows[0])

column_config = {
    name: st.column_config.NumberColumn(name, format=COLUMN_FORMATS[name]) for name in columns if name in COLUMN_FORMATS
}
# A pinned column is not auto-sized: fit it to the longest id (about 6 px a character), within limits.
id_width = min(24 + 6 * max(len(str(row["id"])) for row in all_rows), 300)
column_config["id"] = st.column_config.TextColumn("id", pinned=True, width=id_width)
column_config["source"] = st.column_config.TextColumn("source", width="large")
if table_id == "gpus":
    column_config["unverified"] = st.column_config.TextColumn(
        "unverified", help="Fields whose figures are not from a primary source (see the row's notes in gpus.yaml)"
    )

if rows:
    st.dataframe(
        pd.DataFrame(rows, columns=columns),
        hide_index=True,
        width="stretch",
        column_config=column_config,
        height=35 * (min(len(rows), 15) + 1) + 3,  # up to 15 rows before scrolling (35 px per row)
        placeholder="-",
        alt=f"Knowledge table: {label}",
    )
else:
    st.info(f"No row of {label} contains \u201c{safe_text(query.strip())}\u201d.")

count = f"{len(rows)} of {len(all_rows)} rows" if query.strip() else f"{len(all_rows)} rows"
st.caption(f"{label}: {count}, from `knowledge/{yaml_file}`")

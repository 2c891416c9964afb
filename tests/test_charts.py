"""Figure builders in ui/charts.py: assert on the figure data, not on pixels."""

import json
import math
import subprocess
import sys
from pathlib import Path

import plotly.graph_objects as go
import pytest

from ui.charts import GREY, PRIMARY, RED, apply_theme, kv_capacity_figure, memory_figure, pareto_figure

ROOT = Path(__file__).resolve().parents[1]

MEMORY_ROWS = [
    {"label": "W4A16 KV-FP8", "weights_gib": 38.1, "kv_cache_gib": 20.0, "overhead_gib": 4.2, "fits": True,
     "role": "pick"},
    {"label": "FP8 W8A8", "weights_gib": 67.7, "kv_cache_gib": 20.0, "overhead_gib": 4.2, "fits": False,
     "role": "alternative"},
    {"label": "BF16", "weights_gib": 131.4, "kv_cache_gib": 40.0, "overhead_gib": 4.2, "fits": False,
     "role": "baseline"},
]  # fmt: skip

KV_ROWS = [
    {"kv": "bf16", "value": 12, "picked": False, "available": True},
    {"kv": "fp8", "value": 24_000, "picked": True, "available": True},
    {"kv": "int4", "value": 0, "picked": False, "available": False},
]


# ---------------------------------------------------------------- memory_figure
def test_memory_traces_are_the_three_segments_in_order():
    fig = memory_figure(MEMORY_ROWS, 79.65)
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["Weights", "KV cache", "Overhead"]
    assert all(t.type == "bar" and t.orientation == "h" for t in fig.data)
    assert fig.layout.barmode == "stack"
    assert list(fig.data[0].x) == [38.1, 67.7, 131.4]
    assert list(fig.data[1].x) == [20.0, 20.0, 40.0]
    assert list(fig.data[2].x) == [4.2, 4.2, 4.2]
    assert len({t.marker.color for t in fig.data}) == 3  # one consistent colour per segment


def test_memory_labels_mark_the_pick_and_the_misfits_in_row_order():
    fig = memory_figure(MEMORY_ROWS, 79.65)
    labels = ["★ W4A16 KV-FP8", "FP8 W8A8 (does not fit)", "BF16 (does not fit)"]
    for trace in fig.data:
        assert list(trace.y) == labels
    assert fig.layout.yaxis.autorange == "reversed"  # the first row is drawn at the top
    assert fig.layout.yaxis.ticktext[0] == "<b>★ W4A16 KV-FP8</b>"


def test_memory_capacity_line_and_label():
    fig = memory_figure(MEMORY_ROWS, 79.65)
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 1
    line = lines[0]
    assert line.x0 == line.x1 == 79.65
    assert line.line.dash == "dash" and line.line.color == RED
    assert any(a.text == "capacity 79.65 GiB" for a in fig.layout.annotations)
    assert fig.layout.xaxis.title.text == "GiB per GPU"
    assert fig.layout.xaxis.range[1] > 175.6  # the longest bar runs past the line and stays in view


def test_memory_overflow_is_shown_only_when_something_does_not_fit():
    fig = memory_figure(MEMORY_ROWS, 79.65)
    texts = [a.text for a in fig.layout.annotations]
    assert "62.30" in texts
    assert "91.90  <b>+12.25 over</b>" in texts
    assert [s.type for s in fig.layout.shapes].count("rect") == 1  # the red band past capacity
    assert list(fig.data[0].marker.pattern.shape) == ["", "/", "/"]  # overflowing bars are hatched

    fitting = memory_figure(MEMORY_ROWS[:1], 79.65)
    assert [s.type for s in fitting.layout.shapes] == ["line"]
    assert fitting.layout.xaxis.range[1] > 79.65


def test_memory_hover_shows_each_segment_and_the_total():
    fig = memory_figure(MEMORY_ROWS, 79.65)
    hover = fig.data[0].hovertemplate
    for part in ("Weights: %{customdata[0]:.2f} GiB", "KV cache: %{customdata[1]:.2f} GiB",
                 "Overhead: %{customdata[2]:.2f} GiB", "Total: %{customdata[3]:.2f} GiB"):  # fmt: skip
        assert part in hover
    assert fig.data[0].customdata[0][3] == pytest.approx(62.3)


def test_memory_height_title_and_empty_title():
    assert memory_figure(MEMORY_ROWS, 79.65, title="").layout.height == 120 + 38 * 3
    assert memory_figure(MEMORY_ROWS, 79.65, title="").layout.title.text is None
    assert memory_figure(MEMORY_ROWS, 79.65).layout.title.text == "Memory per GPU"
    assert memory_figure(MEMORY_ROWS * 3, 79.65, title="").layout.height == 120 + 38 * 9
    assert memory_figure(MEMORY_ROWS, 79.65).layout.template.layout.paper_bgcolor == "white"  # plotly_white


def test_memory_repeated_labels_stay_separate_bars():
    fig = memory_figure([{**MEMORY_ROWS[0], "role": "alternative"}] * 2, 79.65)
    assert len(set(fig.data[0].y)) == 2


@pytest.mark.parametrize(
    ("change", "capacity"),
    [({"role": "winner"}, 79.65), ({"weights_gib": -1.0}, 79.65), ({}, 0), ({}, -5)],
)
def test_memory_bad_input_is_refused(change, capacity):
    with pytest.raises(ValueError):
        memory_figure([{**MEMORY_ROWS[0], **change}], capacity)


# ---------------------------------------------------------------- kv_capacity_figure
def test_kv_bars_values_and_colours():
    fig = kv_capacity_figure(KV_ROWS, "max_concurrency")
    assert len(fig.data) == 1
    bar = fig.data[0]
    assert list(bar.y) == ["bf16", "fp8", "int4"]
    assert list(bar.x) == [12, 24_000, 0]
    colours = list(bar.marker.color)
    assert colours[1] == PRIMARY  # the pick
    assert colours[0] not in (PRIMARY, GREY)
    assert colours[2] == GREY  # unavailable
    assert list(bar.text) == ["12", "24,000", "n/a"]
    assert fig.layout.xaxis.title.text == "Sequences that fit at this context"
    assert "★ fp8" in fig.layout.yaxis.ticktext[1]


def test_kv_context_metric_axis_title_and_title():
    fig = kv_capacity_figure(KV_ROWS, "max_context", title="Context")
    assert fig.layout.xaxis.title.text == "Longest context at this concurrency (tokens)"
    assert fig.layout.title.text == "Context"
    assert kv_capacity_figure(KV_ROWS, "max_context").layout.title.text is None


@pytest.mark.parametrize("metric", ["concurrency", "", "MAX_CONTEXT"])
def test_kv_unknown_metric_raises(metric):
    with pytest.raises(ValueError, match="metric"):
        kv_capacity_figure(KV_ROWS, metric)


# ---------------------------------------------------------------- pareto_figure
PARETO_ROWS = [
    {"label": "W8A8-FP8 KV-FP8", "expected_recovery_pct": 99.7, "cost": 1.2, "tpot_ms": 20.0, "pareto": True,
     "pick": True},
    {"label": "W4A16 KV-FP8", "expected_recovery_pct": 98.5, "cost": 0.9, "tpot_ms": 15.0, "pareto": True,
     "pick": False},
    {"label": "W16A16 KV-BF16", "expected_recovery_pct": 99.6, "cost": 2.0, "tpot_ms": 30.0, "pareto": False,
     "pick": False},
]


def test_pareto_marks_the_pick_and_fades_dominated_options():
    fig = pareto_figure(PARETO_ROWS)
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"Pick", "Pareto front", "Dominated"}
    assert by_name["Pick"].marker.symbol == "star" and list(by_name["Pick"].text) == ["W8A8-FP8 KV-FP8"]
    assert by_name["Dominated"].marker.opacity < by_name["Pareto front"].marker.opacity == 1.0
    assert list(by_name["Pareto front"].x) == [0.9] and list(by_name["Pareto front"].y) == [98.5]
    assert fig.layout.yaxis.title.text.startswith("Expected accuracy")
    assert list(by_name["Dominated"].marker.color) == [30.0]  # colour = time per token


def test_pareto_axis_names_the_cost_unit():
    rows = [{**r, "cost_unit": "GPU-hours per million output tokens"} for r in PARETO_ROWS]
    assert pareto_figure(rows).layout.xaxis.title.text == "GPU-hours per million output tokens"


# ---------------------------------------------------------------- the app's unvalidated figures
def _spec(fig: go.Figure) -> dict:
    """What st.plotly_chart sends the browser: the figure's dict as JSON, read back."""
    import plotly.io

    return json.loads(plotly.io.to_json(fig.to_dict(), validate=False))


KV_FULL_ROWS = [{**KV_ROWS[0], "reason": "misses the time-per-token target", "meets_targets": False, "tpot_ms": 41.5,
                 "expected_recovery_pct": 99.9},
                {**KV_ROWS[1], "tpot_ms": 20.04, "expected_recovery_pct": 99.71}, KV_ROWS[2]]  # fmt: skip
BUILDERS = {
    "memory": lambda v, title: memory_figure(MEMORY_ROWS, 79.65, validate=v, **({"title": title} if title else {})),
    "memory, all fit": lambda v, title: memory_figure(MEMORY_ROWS[:1], 79.65, title=title, validate=v),
    "memory, repeated labels": lambda v, title: memory_figure(
        [{**MEMORY_ROWS[0], "role": "rejected", "fits": False}] * 2, 79.65, title=title, validate=v),
    "kv": lambda v, title: kv_capacity_figure(KV_FULL_ROWS, "max_concurrency", title=title, validate=v),
    "kv context": lambda v, title: kv_capacity_figure(KV_ROWS, "max_context", title=title, validate=v),
    "pareto": lambda v, title: pareto_figure(PARETO_ROWS, title=title, validate=v),
    "pareto, one row": lambda v, title: pareto_figure(PARETO_ROWS[:1], title=title, validate=v),
    "pareto, empty": lambda v, title: pareto_figure([], title=title, validate=v),
}


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
@pytest.mark.parametrize("title", ["", "A title"])
@pytest.mark.parametrize("name", list(BUILDERS))
def test_unvalidated_figures_send_the_same_spec(name, title, dark):
    """The pages build these figures with validate=False (plotly's per-property checks cost about 10 ms per chart on
    every widget change of a shared server): what the browser gets must be exactly what the validated figure gives,
    in either theme, so a property plotly would reject or coerce shows up here."""
    checked = apply_theme(BUILDERS[name](True, title), dark)
    fast = apply_theme(BUILDERS[name](False, title), dark)
    assert _spec(fast) == _spec(checked)


def test_only_the_validated_build_checks_properties():
    """Why the comparison above matters: validate=False passes a misspelt property through to the browser."""
    from ui import charts

    layout = charts._layout(title="", height=100, top=10, heigth=300)
    with pytest.raises(ValueError, match="heigth"):
        charts._figure([], layout, validate=True)
    assert charts._figure([], layout, validate=False).to_dict()["layout"]["heigth"] == 300


# ---------------------------------------------------------------- module hygiene
def test_importing_charts_does_not_import_streamlit():
    code = "import ui.charts, sys; assert 'streamlit' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_overflowing_rows_keep_their_colour_under_the_hatching():
    # With the default fillmode "replace" the white hatch replaced the fill and the bar vanished on white.
    fig = memory_figure([{**MEMORY_ROWS[0], "fits": False, "role": "rejected"}], 79.65)
    assert all(t.marker.pattern.fillmode == "overlay" for t in fig.data)


# ---------------------------------------------------------------- speed and cost
SPEED_SERIES = [
    {"label": "FP8", "pick": True, "points": [
        {"concurrency": c, "throughput": 40.0 * c, "fits": c <= 64} for c in (1, 2, 4, 8, 16, 32, 64, 128, 256)]},
    {"label": "W4A16", "pick": False, "points": [
        {"concurrency": c, "throughput": 30.0 * c, "fits": True} for c in (1, 2, 4, 8, 16, 32, 64, 128, 256)]},
]  # fmt: skip


def test_throughput_solid_where_it_fits_dotted_beyond():
    from ui.charts import throughput_figure

    fig = throughput_figure(SPEED_SERIES, current=16)
    solid = [t for t in fig.data if not t.line.dash]
    dotted = [t for t in fig.data if t.line.dash == "dot"]
    assert [t.name for t in solid] == ["★ FP8", "W4A16"]
    assert list(solid[0].x) == [1, 2, 4, 8, 16, 32, 64] and solid[0].line.width > solid[1].line.width
    assert len(dotted) == 1 and list(dotted[0].x) == [64, 128, 256]  # joined to the last point that fits


def test_throughput_axis_spans_the_data_not_the_marker():
    """Regression: a vline annotation on a log axis once stretched the axis to 10^16."""
    from ui.charts import throughput_figure

    fig = throughput_figure(SPEED_SERIES, current=16)
    low, high = fig.layout.xaxis.range
    assert 10**low < 1 < 256 < 10**high < 300
    assert list(fig.layout.xaxis.tickvals) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert [a.text for a in fig.layout.annotations] == ["this endpoint: 16"]
    assert fig.layout.annotations[0].x == pytest.approx(math.log10(16))


def test_latency_two_panels_same_rows():
    from ui.charts import latency_figure

    rows = [{"label": "FP8", "ttft_ms": 120.0, "tpot_ms": 24.4, "pick": True},
            {"label": "BF16", "ttft_ms": 236.6, "tpot_ms": 42.2}]  # fmt: skip
    fig = latency_figure(rows)
    assert [list(t.x) for t in fig.data] == [[120.0, 236.6], [24.4, 42.2]]
    assert list(fig.data[0].y) == ["★ FP8", "BF16"] and fig.data[0].marker.color[0] == PRIMARY


def test_cost_bars_cheapest_highlighted():
    from ui.charts import cost_figure

    rows = [{"gpus": 1, "gpu": "l40s", "notation": "W4A16", "cost_per_million_tokens": 1.94},
            {"gpus": 2, "gpu": "h100-sxm", "notation": "FP8", "cost_per_million_tokens": 2.5}]  # fmt: skip
    fig = cost_figure(rows)
    bar = fig.data[0]
    assert list(bar.y) == ["1 x l40s", "2 x h100-sxm"] and list(bar.x) == [1.94, 2.5]
    assert bar.marker.color[0] == PRIMARY and bar.marker.color[1] != PRIMARY
    assert bar.text[0] == "$1.94 · W4A16"

"""Plotly figure builders for the app: memory per GPU, KV-cache capacity, the accuracy-cost trade-off, speed.

Pure functions from plain Python data (lists of dicts) to ``go.Figure``; no Streamlit import, so they
can be tested and reused outside the app. The memory chart's job: people should *see*, not read, why
a configuration does not fit — the stacked bar runs past the dashed capacity line into a red band.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.colors import sequential

PRIMARY = "#4F46E5"  # indigo, the app theme's primary colour
SKY = "#0EA5E9"
AMBER = "#F59E0B"
EMERALD = "#10B981"
PRIMARY_LIGHT = "#A5B4FC"  # indigo-300: the bars that are not the pick
GREY = "#9CA3AF"  # unavailable
GREY_TEXT = "#6B7280"  # grey text readable on white (4.8:1) and on a dark theme
RED = "#DC2626"  # capacity line and overflow
TEXT = "#374151"

# The parts of plotly's "plotly_white" template these charts use. Applying the full named template
# deep-copies it on every figure (about 6 ms each), which showed in the wizard's per-change latency.
_GRID = {
    "gridcolor": "#EBF0F8",
    "linecolor": "#EBF0F8",
    "zerolinecolor": "#EBF0F8",
    "ticks": "",
    "automargin": True,
    "zerolinewidth": 2,
}
TEMPLATE = go.layout.Template(
    layout={"paper_bgcolor": "white", "plot_bgcolor": "white", "xaxis": _GRID, "yaxis": _GRID, "hovermode": "closest"}
)
FONT = {"family": "Inter, system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 13, "color": TEXT}

PICK_PREFIX = "★ "
NO_FIT_SUFFIX = " (does not fit)"
ROLES = ("pick", "alternative", "rejected", "baseline")

# (trace name, row key, colour): the stacking order, left to right.
MEMORY_SEGMENTS = (
    ("Weights", "weights_gib", PRIMARY),
    ("KV cache", "kv_cache_gib", SKY),
    ("Overhead", "overhead_gib", AMBER),
)

KV_METRICS = {
    "max_concurrency": ("Sequences that fit at this context", "sequences"),
    "max_context": ("Longest context at this concurrency (tokens)", "tokens"),
}

# Viridis reversed, as the colour stops plotly.js takes ("Viridis_r" is a plotly.py name that its validation expands to
# exactly these; the pareto figure is built without that validation in the app).
VIRIDIS_R = [[i / (len(sequential.Viridis) - 1), colour] for i, colour in enumerate(sequential.Viridis[::-1])]

SERIES_COLOURS = (PRIMARY, SKY, AMBER, EMERALD, "#8B5CF6", "#EC4899", "#64748B")


def _unique(labels: list[str]) -> list[str]:
    """Plotly merges bars that share a category; keep repeated labels apart with invisible suffixes."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        n = seen.get(label, 0)
        seen[label] = n + 1
        out.append(label + "\u200b" * n)
    return out


TITLE_PX = 34  # room for the title, when there is one
LEGEND_PX = 30  # room for a horizontal legend above the plot


def _layout(*, title: str, height: int, top: int, legend: bool = False, **extra) -> dict:
    """The shared look as one layout dict; ``top`` is the margin above the plot, not counting the title and
    legend rows. Figures are built once from dicts: each Plotly add_*/update_* call validates again, which
    cost about 100 ms per page run with three charts."""
    title_px = TITLE_PX if title else 0
    layout = {
        "template": TEMPLATE,
        "font": FONT,
        "height": height,
        "margin": {"l": 10, "r": 20, "t": top + title_px + (LEGEND_PX if legend else 0), "b": 10},
        "title": {"text": title, "x": 0, "xanchor": "left", "y": 1 - 8 / height, "yanchor": "top",
                  "yref": "container", "font": {"size": 16}} if title else None,
        "hoverlabel": {"bgcolor": "white", "font": {"size": 12}},
    }
    if legend:
        layout["showlegend"] = True
        layout["legend"] = {"orientation": "h", "x": 0, "xref": "container", "xanchor": "left",
                            "y": 1 - (title_px + 4) / height, "yanchor": "top", "yref": "container",
                            "traceorder": "normal"}
    layout.update(extra)
    return layout


def _figure(data: list[dict], layout: dict, validate: bool) -> go.Figure:
    """The figure from plain dicts. ``validate=False`` (the app's pages): plotly keeps the dicts as they are instead of
    checking and coercing every property, which cost about 10 ms per chart on each widget change of the shared server;
    the spec sent to the browser is the same (tests/test_charts.py compares the two for every builder and theme)."""
    return go.Figure(data=data, layout=layout, _validate=validate)


def _base_layout(fig: go.Figure, *, title: str, height: int, top: int, legend: bool = False) -> None:
    fig.update_layout(_layout(title=title, height=height, top=top, legend=legend))


def memory_label(row: dict) -> str:
    """The y-axis label of one memory row: ``★ `` for the pick, `` (does not fit)`` when it overflows."""
    label = str(row["label"])
    if row.get("role") == "pick":
        label = PICK_PREFIX + label
    if not row["fits"]:
        label += NO_FIT_SUFFIX
    return label


def memory_figure(
    rows: list[dict], capacity_gib: float, title: str = "Memory per GPU", validate: bool = True
) -> go.Figure:
    """Horizontal stacked bars (weights, KV cache, overhead per GPU, GiB) against a dashed capacity line.

    One bar per row in the given order, the first at the top. The pick gets a ``★ `` prefix (and a bold
    tick label); rows that do not fit get a `` (does not fit)`` suffix, hatched bars, and a red
    "+x.xx GiB over" note at the bar's end; the area past capacity is tinted red.
    """
    if not capacity_gib or capacity_gib <= 0:
        raise ValueError(f"capacity_gib must be positive, got {capacity_gib!r}")
    for row in rows:
        if row.get("role") not in ROLES:
            raise ValueError(
                f"role must be one of {', '.join(ROLES)}; got {row.get('role')!r} for {row.get('label')!r}"
            )
        for _, key, _ in MEMORY_SEGMENTS:
            if row[key] < 0:
                raise ValueError(f"{key} must not be negative for {row['label']!r}")

    labels = _unique([memory_label(r) for r in rows])
    totals = [sum(float(r[key]) for _, key, _ in MEMORY_SEGMENTS) for r in rows]
    custom = [
        [float(r["weights_gib"]), float(r["kv_cache_gib"]), float(r["overhead_gib"]), total, total - capacity_gib]
        for r, total in zip(rows, totals, strict=True)
    ]
    hover = (
        "<b>%{y}</b><br>"
        "Weights: %{customdata[0]:.2f} GiB<br>"
        "KV cache: %{customdata[1]:.2f} GiB<br>"
        "Overhead: %{customdata[2]:.2f} GiB<br>"
        f"<b>Total: %{{customdata[3]:.2f}} GiB</b> of {capacity_gib:.2f} GiB"
        "<extra>%{fullData.name}</extra>"
    )
    # Rows that are not the pick are slightly faded; the rejected ones more so. Overflowing rows are hatched.
    opacity = [{"pick": 1.0, "alternative": 0.8, "baseline": 0.8, "rejected": 0.55}[r["role"]] for r in rows]
    pattern = {
        "shape": ["/" if not r["fits"] else "" for r in rows],
        "fillmode": "overlay",  # hatch over the bar's colour; "replace" (the default) left white-on-white bars
        "fgcolor": "white",
        "fgopacity": 0.45,
        "size": 6,
        "solidity": 0.25,
    }

    traces = [
        {"type": "bar", "name": name, "orientation": "h", "y": labels, "x": [float(r[key]) for r in rows],
         "marker": {"color": colour, "opacity": opacity, "line": {"width": 0}, "pattern": pattern},
         "customdata": custom, "hovertemplate": hover}
        for name, key, colour in MEMORY_SEGMENTS
    ]
    longest = max([capacity_gib, *totals])
    # Room for the total written after each bar ("175.60  +95.95 over" is longer than "62.30").
    x_max = longest * (1.4 if longest > capacity_gib else 1.14)
    shapes = []
    if longest > capacity_gib:  # the area past capacity, tinted red
        shapes.append({"type": "rect", "xref": "x", "yref": "y domain", "x0": capacity_gib, "x1": x_max, "y0": 0,
                       "y1": 1, "fillcolor": RED, "opacity": 0.06, "line": {"width": 0}, "layer": "below"})
    shapes.append({"type": "line", "xref": "x", "yref": "y domain", "x0": capacity_gib, "x1": capacity_gib,
                   "y0": 0, "y1": 1, "line": {"color": RED, "width": 2, "dash": "dash"}})
    annotations = [{"x": capacity_gib, "xref": "x", "y": 1, "yref": "y domain", "text": f"capacity {capacity_gib:.2f} GiB",
                    "showarrow": False, "yanchor": "bottom", "font": {"color": RED, "size": 12},
                    # to the left of the line when it sits in the right half, so a narrow chart never cuts it
                    "xanchor": "right" if capacity_gib > x_max / 2 else "left"}]
    for label, row, total in zip(labels, rows, totals, strict=True):
        over = total - capacity_gib
        annotations.append({
            "x": total, "y": label, "text": f"{total:.2f}" if row["fits"] else f"{total:.2f}  <b>+{over:.2f} over</b>",
            "xanchor": "left", "xshift": 4, "showarrow": False,
            "font": {"size": 12, "color": TEXT if row["fits"] else RED},
            # a total may sit on the capacity line; an overflowing one is in the red band, with no box
            **({"bgcolor": "rgba(255,255,255,0.85)"} if row["fits"] else {}),
        })
    ticktext = [f"<b>{label}</b>" if r["role"] == "pick" else label for label, r in zip(labels, rows, strict=True)]
    height = 120 + 38 * len(rows) + (TITLE_PX if title else 0)
    layout = _layout(
        title=title, height=height, top=22, legend=True, barmode="stack", bargap=0.35, shapes=shapes,
        annotations=annotations,
        xaxis={"title": {"text": "GiB per GPU"}, "range": [0, x_max], "zeroline": False, "gridcolor": "#EEF0F3",
               "nticks": 5},
        yaxis={"autorange": "reversed", "tickmode": "array", "tickvals": labels, "ticktext": ticktext,
               "ticksuffix": "  ", "automargin": True},
    )
    return _figure(traces, layout, validate)


def kv_note(row: dict) -> str:
    """Why a KV format is what it is on the chart, with the figure: the engine's reason where it gives one."""
    if not row["available"]:
        return str(row.get("reason") or "not usable on this runtime/GPU")
    if row.get("reason"):
        return str(row["reason"])
    if row["picked"]:
        return "picked"
    return "fits and meets every target" if row.get("meets_targets", True) else "not picked"


def kv_capacity_figure(rows: list[dict], metric: str, title: str = "", validate: bool = True) -> go.Figure:
    """One bar per KV-cache format (given order): how many sequences, or how long a context, fits.

    The picked format is indigo, the others light indigo; formats the runtime/GPU cannot use are grey
    with the text "n/a"; a format that misses a target or does not fit (``meets_targets`` false) is marked
    with a cross. Values are written on the bars with thousands separators; the hover says why, with the
    figure, from each row's ``reason`` (the plan's ``kv_options``) and its ``tpot_ms`` where given.
    """
    if metric not in KV_METRICS:
        raise ValueError(f"metric must be one of {', '.join(KV_METRICS)}; got {metric!r}")
    axis_title, unit = KV_METRICS[metric]

    names = _unique([str(r["kv"]) for r in rows])
    values = [int(r["value"]) for r in rows]
    misses = [r["available"] and not r.get("meets_targets", True) for r in rows]
    colours = [(GREY if not r["available"] else PRIMARY if r["picked"] else PRIMARY_LIGHT) for r in rows]
    texts = [(f"{v:,}" + (" \u2717" if miss else "")) if r["available"] else "n/a"
             for r, v, miss in zip(rows, values, misses, strict=True)]
    notes = []
    for r in rows:
        note = kv_note(r)
        if r["available"] and r.get("tpot_ms") is not None:
            note += f"<br>{float(r['tpot_ms']):,.1f} ms per token at this load"
        if r["available"] and r.get("expected_recovery_pct") is not None:
            note += f", {float(r['expected_recovery_pct']):.2f}% expected accuracy"
        notes.append(note)

    trace = {
        "type": "bar", "orientation": "h", "y": names, "x": values,
        "marker": {"color": colours, "line": {"width": 0}}, "text": texts, "textposition": "outside",
        "cliponaxis": False, "textfont": {"size": 13, "color": [TEXT if r["available"] else GREY_TEXT for r in rows]},
        "customdata": notes, "hovertemplate": f"<b>%{{y}}</b>: %{{x:,}} {unit}<br>%{{customdata}}<extra></extra>",
        "showlegend": False,
    }
    ticktext = [f"<b>{PICK_PREFIX}{n}</b>" if r["picked"] else n for n, r in zip(names, rows, strict=True)]
    top = max(values, default=0)
    layout = _layout(
        title=title, height=110 + 40 * len(rows) + (TITLE_PX if title else 0), top=14, bargap=0.35,
        xaxis={"title": {"text": axis_title}, "tickformat": ",", "range": [0, (top or 1) * (1.3 if any(misses) else 1.15)],
               "gridcolor": "#EEF0F3", "zeroline": False, "nticks": 4},
        yaxis={"autorange": "reversed", "tickmode": "array", "tickvals": names, "ticktext": ticktext,
               "ticksuffix": "  ", "title": {"text": "KV cache"}},
    )
    return _figure([trace], layout, validate)


def pareto_figure(rows: list[dict], title: str = "", validate: bool = True) -> go.Figure:
    """Expected accuracy against cost per million output tokens, one point per option; colour = time per
    output token. Options on the Pareto front are solid, dominated ones faded; the pick is a large star.

    Each row: label, expected_recovery_pct, cost (USD per million tokens, or GPU-hours when no price),
    tpot_ms, pareto (bool), pick (bool). ``cost_unit`` on the first row names the x-axis unit.
    """
    unit = rows[0].get("cost_unit", "$ per million output tokens") if rows else ""
    tpots = [float(r["tpot_ms"]) for r in rows] or [1.0]
    low, high = min(tpots), max(tpots)
    traces = []
    for group, opacity, size, symbol in (("dominated", 0.25, 9, "circle"), ("front", 1.0, 12, "circle"),
                                         ("pick", 1.0, 22, "star")):
        chosen = [r for r in rows if (group == "pick" and r["pick"]) or (group == "front" and r["pareto"]
                  and not r["pick"]) or (group == "dominated" and not r["pareto"] and not r["pick"])]
        if not chosen:
            continue
        traces.append({
            "type": "scatter", "mode": "markers", "x": [r["cost"] for r in chosen],
            "y": [r["expected_recovery_pct"] for r in chosen],
            "name": {"pick": "Pick", "front": "Pareto front", "dominated": "Dominated"}[group],
            "text": [r["label"] for r in chosen], "customdata": [[r["tpot_ms"]] for r in chosen],
            "marker": {"size": size, "symbol": symbol, "opacity": opacity, "color": [r["tpot_ms"] for r in chosen],
                       "colorscale": VIRIDIS_R, "cmin": low, "cmax": max(high, low + 1e-9),
                       "line": {"width": 1.5 if group == "pick" else 0, "color": TEXT},
                       "showscale": group == "front" or (group == "pick" and len(rows) == 1),
                       "colorbar": {"title": {"text": "ms/token"}, "thickness": 12}},
            "hovertemplate": "<b>%{text}</b><br>expected accuracy %{y:.2f}%<br>cost %{x:.3~f}<br>"
            "%{customdata[0]:.1f} ms per token<extra></extra>",
        })
    layout = _layout(title=title, height=380, top=8, legend=True,
                     xaxis={"title": {"text": unit}, "rangemode": "tozero"},
                     yaxis={"title": {"text": "Expected accuracy vs BF16 (%)"}})
    return _figure(traces, layout, validate)


def throughput_figure(series: list[dict], current: int | None = None, point: dict | None = None) -> go.Figure:
    """Aggregate output tokens/s against concurrency, one line per configuration; dotted where it no
    longer fits in memory. Shows where each precision's knee is.

    ``point`` (concurrency, throughput, tpot_ms): the endpoint's own figures, drawn as a diamond on the
    pick's line so the chart shows the same tokens/s and time per token as the metrics above it."""
    fig = go.Figure()
    for i, s in enumerate(series):
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        fitting = [p for p in s["points"] if p["fits"]]
        over = [p for p in s["points"] if not p["fits"]]
        name = (PICK_PREFIX if s.get("pick") else "") + s["label"]
        fig.add_trace(
            go.Scatter(
                x=[p["concurrency"] for p in fitting],
                y=[p["throughput"] for p in fitting],
                mode="lines+markers",
                name=name,
                line={"color": colour, "width": 3 if s.get("pick") else 2},
                legendgroup=name,
                hovertemplate="%{x} sequences: %{y:,.0f} tokens/s<extra>" + name + "</extra>",
            )
        )
        if over:
            joined = (fitting[-1:] if fitting else []) + over
            fig.add_trace(
                go.Scatter(
                    x=[p["concurrency"] for p in joined],
                    y=[p["throughput"] for p in joined],
                    mode="lines",
                    name=name + " (does not fit)",
                    line={"color": colour, "dash": "dot", "width": 1.5},
                    legendgroup=name,
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
    if point:
        fig.add_trace(go.Scatter(
            x=[point["concurrency"]], y=[point["throughput"]], mode="markers", name="this endpoint",
            marker={"symbol": "diamond", "size": 12, "color": PRIMARY, "line": {"width": 1.5, "color": "white"}},
            customdata=[[point["tpot_ms"]]], showlegend=False,
            hovertemplate="this endpoint: %{x} sequences, %{y:,.0f} tokens/s, %{customdata[0]:,.1f} ms per token"
            "<extra></extra>"))
    xs = [p["concurrency"] for s in series for p in s["points"]] + ([current] if current else [])
    low, high = (min(xs), max(xs)) if xs else (1, 2)
    if current:
        # On a log axis shapes take data values but annotations take log10 values, so the label is
        # placed separately; passing annotation_text to add_vline stretches the axis to 10^current.
        fig.add_vline(x=current, line={"color": GREY, "dash": "dash", "width": 1})
        fig.add_annotation(
            x=math.log10(current),
            y=1,
            yref="paper",
            text=f"this endpoint: {current}",
            showarrow=False,
            xanchor="left",
            yanchor="top",
            font={"color": GREY_TEXT, "size": 12},
        )
    ticks = [2**k for k in range(max(0, int(math.log2(low))), int(math.log2(high)) + 1)]
    _base_layout(fig, title="", height=360, top=10, legend=True)
    fig.update_layout(
        xaxis={
            "title": {"text": "Concurrent sequences"},
            "type": "log",
            "tickvals": ticks,
            "range": [math.log10(low) - 0.05, math.log10(high) + 0.05],
            "gridcolor": "#EEF0F3",
        },
        yaxis={"title": {"text": "Output tokens/s, all requests"}, "gridcolor": "#EEF0F3", "rangemode": "tozero"},
    )
    return fig


def latency_figure(rows: list[dict]) -> go.Figure:
    """Time to first token and time per output token, one bar per configuration, in two panels one above the other,
    each bar's name written above it (side by side, with names as tick labels, a phone kept about 90 px for the
    bars and the titles and values ran off the edge)."""
    from plotly.subplots import make_subplots

    row_px = 46
    per_panel = 20 + row_px * len(rows)
    gap = 60
    height = 50 + 2 * per_panel + gap
    fig = make_subplots(
        rows=2,
        cols=1,
        subplot_titles=("Time to first token (ms)", "Time per output token (ms)"),
        vertical_spacing=gap / (height - 50),
    )
    labels = [(PICK_PREFIX if r.get("pick") else "") + r["label"] for r in rows]
    colours = [PRIMARY if r.get("pick") else PRIMARY_LIGHT for r in rows]
    annotations = []
    for panel, key in ((1, "ttft_ms"), (2, "tpot_ms")):
        top = max([float(r[key]) for r in rows], default=0) or 1
        fig.add_trace(
            go.Bar(
                x=[r[key] for r in rows],
                y=labels,
                orientation="h",
                marker={"color": colours},
                text=[f"{r[key]:,.1f}" for r in rows],
                textposition="outside",
                cliponaxis=False,
                showlegend=False,
                hovertemplate="%{y}: %{x:,.1f} ms<extra></extra>",
            ),
            row=panel,
            col=1,
        )
        fig.update_xaxes(range=[0, top * 1.25], nticks=4, row=panel, col=1)
        suffix = "" if panel == 1 else "2"
        annotations += [{"x": 0, "y": label, "xref": f"x{suffix}", "yref": f"y{suffix}", "text": label,
                         "showarrow": False, "xanchor": "left", "yanchor": "bottom", "yshift": 11,
                         "font": {"size": 12, "color": TEXT}} for label in labels]
    _base_layout(fig, title="", height=height, top=24)
    for annotation in fig.layout.annotations:  # the panel titles start at the plot's left edge, not centred
        annotation.update(x=0, xanchor="left")
    fig.update_layout(annotations=[*fig.layout.annotations, *annotations], bargap=0.55)
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(gridcolor="#EEF0F3")
    return fig


def cost_figure(rows: list[dict]) -> go.Figure:
    """Modelled $ per million output tokens, one bar per GPU choice (rows from ``advisor.decide.gpu_picker``),
    cheapest first and highlighted."""
    fig = go.Figure(
        go.Bar(
            x=[r["cost_per_million_tokens"] for r in rows],
            y=[f"{r['gpus']} x {r['gpu']}" for r in rows],
            orientation="h",
            marker={"color": [PRIMARY if i == 0 else PRIMARY_LIGHT for i in range(len(rows))]},
            text=[f"${r['cost_per_million_tokens']:,.2f} · {r['notation']}" for r in rows],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: $%{x:,.2f} per million tokens<extra></extra>",
        )
    )
    _base_layout(fig, title="", height=120 + 30 * len(rows), top=10)
    fig.update_layout(
        margin={"r": 160},
        xaxis={"title": {"text": "$ per million output tokens (modelled)"}, "rangemode": "tozero"},
        yaxis={"autorange": "reversed"},
    )
    return fig


# --------------------------------------------------------------------------- dark theme
DARK_TEXT = "#E5E7EB"  # gray-200: 13:1 on Streamlit's dark background
DARK_GRID = "#3F4451"
_LIGHT_TEXTS = {TEXT.lower(), GREY_TEXT.lower()}


def apply_theme(fig: go.Figure, dark: bool) -> go.Figure:
    """The figure readable on the page's theme: on a dark theme, transparent backgrounds (the page's own),
    light text and grid lines, and the label boxes behind totals made dark. Light: unchanged."""
    if not dark:
        return fig
    axes = {name: {"gridcolor": DARK_GRID, "linecolor": DARK_GRID, "zerolinecolor": DARK_GRID}
            for name in fig.layout if name.startswith(("xaxis", "yaxis"))} or {
        "xaxis": {"gridcolor": DARK_GRID}, "yaxis": {"gridcolor": DARK_GRID}}
    fig.update_layout(paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
                      font={"color": DARK_TEXT}, title_font_color=DARK_TEXT, legend_font_color=DARK_TEXT,
                      hoverlabel={"bgcolor": "#262730", "font": {"color": DARK_TEXT}}, **axes)
    for annotation in fig.layout.annotations or ():
        colour = (annotation.font.color or "").lower() if annotation.font else ""
        if not colour or colour in _LIGHT_TEXTS:
            annotation.font.color = DARK_TEXT
        if annotation.bgcolor:
            annotation.bgcolor = "rgba(14,17,23,0.85)"
    for trace in fig.data:
        font = getattr(trace, "textfont", None)
        if font is not None and font.color is not None:
            colours = font.color if isinstance(font.color, list | tuple) else [font.color]
            mapped = [DARK_TEXT if str(c).lower() in _LIGHT_TEXTS else c for c in colours]
            font.color = mapped if isinstance(font.color, list | tuple) else mapped[0]
        marker = getattr(trace, "marker", None)
        if marker is not None and getattr(marker, "line", None) is not None and marker.line.color == TEXT:
            marker.line.color = DARK_TEXT
    return fig

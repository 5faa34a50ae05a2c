"""The bench report's charts, drawn by plotly (axis titles with units, a legend, hover, log-scaled concurrency):
aggregate throughput and TTFT against concurrency, and the open-loop rate achieved against the rate offered.
Each series has its own marker and dash, so two endpoints with the same figures stay two visible lines."""

from __future__ import annotations

from collections.abc import Callable

import plotly.graph_objects as go

from .results import EndpointResult

MARKERS = ("circle", "square", "diamond", "triangle-up", "x", "cross", "star", "hexagon")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
HOVER = "%{fullData.name}<br>%{x}: %{y:.1f} %{meta}<extra></extra>"


def _style(index: int) -> dict[str, object]:
    """A marker, a dash, and a size that shrinks with the index: a series drawn over an identical one leaves the
    one beneath showing around it."""
    step = index % 3
    return {
        "mode": "lines+markers",
        "marker": {"symbol": MARKERS[index % len(MARKERS)], "size": 14 - 4 * step},
        "line": {"dash": DASHES[index % len(DASHES)], "width": 5 - 2 * step},
    }


def _figure(title: str, x_title: str, y_title: str, log_x: bool) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(
        title={"text": title},
        xaxis={"title": {"text": x_title}, "type": "log" if log_x else "linear"},
        yaxis={"title": {"text": y_title}, "rangemode": "tozero"},
        legend={"title": {"text": "endpoint"}},
        hovermode="closest",
        template="plotly_white",
        width=760,
        height=400,
    )
    return figure


def _series(
    figure: go.Figure,
    results: list[EndpointResult],
    name: Callable[[EndpointResult], str],
    unit: str,
    points: Callable[[EndpointResult], list[tuple[float, float | None]]],
) -> go.Figure:
    """One trace per endpoint that has any of these points (x, y); a missing y is left out."""
    for index, r in enumerate(results):
        shown = [(x, y) for x, y in points(r) if y is not None]
        if shown:
            xs, ys = zip(*shown, strict=True)
            figure.add_trace(go.Scatter(x=xs, y=ys, name=name(r), meta=unit, hovertemplate=HOVER, **_style(index)))
    return figure


def figures(results: list[EndpointResult], name: Callable[[EndpointResult], str]) -> list[go.Figure]:
    """The report's charts, each only when some endpoint has its figures."""
    out = []
    if any(r.levels for r in results):
        x_title = "concurrency (requests in flight)"
        levels = sorted({lv.concurrency for r in results for lv in r.levels})
        throughput = _figure("Aggregate throughput, closed loop", x_title, "aggregate throughput (tok/s)", True)
        ttft = _figure("TTFT p50 under load", x_title, "TTFT p50 (ms)", True)
        out += [
            _series(
                throughput, results, name, "tok/s", lambda r: [(lv.concurrency, lv.aggregate_tok_s) for lv in r.levels]
            ),
            _series(ttft, results, name, "ms", lambda r: [(lv.concurrency, lv.ttft_ms.get("p50")) for lv in r.levels]),
        ]
        for figure in out:
            figure.update_xaxes(tickvals=levels)
    if any(r.rates for r in results):
        rates = _figure(
            "Open loop (Poisson arrivals)", "offered rate (requests/s)", "achieved rate (requests/s)", False
        )
        out.append(_series(rates, results, name, "req/s", lambda r: [(rr.rate_rps, rr.achieved_rps) for rr in r.rates]))
    return out


def charts_html(results: list[EndpointResult], name: Callable[[EndpointResult], str]) -> str:
    """The charts as HTML fragments, plotly.js inlined once before the first: the report is one file that draws
    without a network (a Spark's bench is often read where the internet is not)."""
    parts = []
    for index, figure in enumerate(figures(results, name)):
        parts.append(
            figure.to_html(
                full_html=False, include_plotlyjs=index == 0, config={"displaylogo": False}, div_id=f"chart-{index}"
            )
        )
    return "\n".join(parts)

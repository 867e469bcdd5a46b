"""Server-rendered SVG charts for the console: pure functions from numbers to markup.

Each chart is a ``<figure>`` holding an ``<svg role="img">`` whose ``<title>`` and ``<desc>`` say
what it shows in words, and a ``<details>`` table with every number drawn (each cell's exact value
in ``data-value``), so a screen reader, a copy-paste or a test reads the same figures the picture
shows. No JavaScript and no front-end build: the page is complete as the server sends it
(docs/adr/0018-console-charts.md says why).

Values that are ``None`` (a window with too few labels, an undefined interval) are gaps, never
zeros; non-finite numbers are treated as ``None``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

__all__ = [
    "Bar",
    "Line",
    "Span",
    "bar_chart",
    "distribution_chart",
    "interval_chart",
    "line_chart",
    "sparkline",
]

WIDTH, HEIGHT = 640, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 16, 36
# Colours with at least 4.5:1 contrast on white (text) and distinguishable without colour
# (dashes and markers differ too).
PALETTE = ("#1f4e9c", "#9a3412", "#166534", "#6b21a8")
_BASELINE, _THRESHOLD, _SHADE, _AXIS = "#344054", "#b42318", "#fde2e1", "#475467"


@dataclass(frozen=True)
class Line:
    """One series of a line chart: a value per x position (``None`` is a gap)."""

    name: str
    values: Sequence[float | None]
    dashed: bool = False


@dataclass(frozen=True)
class Span:
    """A shaded stretch of x positions, ``start`` to ``end`` inclusive (an alert episode)."""

    start: int
    end: int
    label: str


@dataclass(frozen=True)
class Bar:
    """One bar: a named value, marked when it is past the chart's reference line."""

    name: str
    value: float | None
    marked: bool = False
    note: str = ""


@dataclass(frozen=True)
class _Scale:
    low: float
    high: float
    start: float
    stop: float

    def __call__(self, value: float) -> float:
        span = self.high - self.low or 1.0
        return self.start + (value - self.low) / span * (self.stop - self.start)


@dataclass
class _Figure:
    title: str
    description: str
    columns: list[str]
    rows: list[list[str | float | None]] = field(default_factory=list)


def _finite(value: float | None) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _bounds(values: Sequence[float | None], *, include_zero: bool = False) -> tuple[float, float]:
    known = [v for v in (_finite(v) for v in values) if v is not None]
    if include_zero:
        known.append(0.0)
    if not known:
        return 0.0, 1.0
    low, high = min(known), max(known)
    pad = (high - low) * 0.08 or (abs(high) * 0.1 or 0.5)
    return low - pad, high + pad


def _svg(width: int, height: int, figure: _Figure, body: list[str]) -> str:
    # Ids from the content, not a counter: the same numbers give the same markup (pure), and
    # two different charts on one page never share an id.
    content = "\0".join([figure.title, figure.description, *body])
    number = hashlib.sha256(content.encode()).hexdigest()[:12]
    title_id, desc_id = f"chart-title-{number}", f"chart-desc-{number}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-labelledby="{title_id} {desc_id}" class="chart">'
        f'<title id="{title_id}">{escape(figure.title)}</title>'
        f'<desc id="{desc_id}">{escape(figure.description)}</desc>' + "".join(body) + "</svg>"
    )


def _table(figure: _Figure) -> str:
    head = "".join(f'<th scope="col">{escape(c)}</th>' for c in figure.columns)
    body = []
    for row in figure.rows:
        cells = []
        for index, cell in enumerate(row):
            if isinstance(cell, float) or cell is None:
                tag = "td"
                cells.append(f'<{tag} data-value="{"" if cell is None else repr(cell)}">')
                cells[-1] += f"{_fmt(cell)}</{tag}>"
            elif index == 0:
                cells.append(f'<th scope="row">{escape(str(cell))}</th>')
            else:
                cells.append(f"<td>{escape(str(cell))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<details class='chart-numbers'><summary>numbers</summary>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></details>"
    )


def _wrap(figure: _Figure, svg: str, css: str) -> str:
    return (
        f'<figure class="{css}"><figcaption>{escape(figure.title)}</figcaption>'
        f"{svg}{_table(figure)}</figure>"
    )


def _y_axis(scale: _Scale, width: int) -> list[str]:
    parts = []
    for step in range(5):
        value = scale.low + (scale.high - scale.low) * step / 4
        y = scale(value)
        parts.append(
            f'<line x1="{_LEFT}" x2="{width - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#eaecf0"/><text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="11" fill="{_AXIS}">{value:.3g}</text>'
        )
    return parts


def _path(points: list[tuple[float, float] | None]) -> str:
    """An SVG path through the points; ``None`` breaks the line (a gap, not a zero)."""
    commands, pen_down = [], False
    for point in points:
        if point is None:
            pen_down = False
            continue
        commands.append(f"{'L' if pen_down else 'M'}{point[0]:.1f},{point[1]:.1f}")
        pen_down = True
    return " ".join(commands)


def line_chart(
    title: str,
    lines: Sequence[Line],
    *,
    x_labels: Sequence[str],
    baseline: float | None = None,
    thresholds: Sequence[tuple[str, float | None]] = (),
    spans: Sequence[Span] = (),
    unit: str = "",
) -> str:
    """Series over time with an optional baseline, threshold lines and shaded spans.

    A second :class:`Line` (dashed) is how an estimate sits beside the realised metric.
    """
    points = len(x_labels)
    lines = [Line(line.name, [_finite(v) for v in line.values], line.dashed) for line in lines]
    guides = [v for v in (_finite(baseline), *(_finite(t) for _, t in thresholds)) if v is not None]
    low, high = _bounds([*(v for line in lines for v in line.values), *guides])
    y = _Scale(low, high, HEIGHT - _BOTTOM, _TOP)
    x = _Scale(0, max(points - 1, 1), _LEFT, WIDTH - _RIGHT)
    body = _y_axis(y, WIDTH)
    step = (WIDTH - _LEFT - _RIGHT) / max(points - 1, 1)
    for span in spans:
        left = max(x(span.start) - step / 2, _LEFT)
        right = min(x(span.end) + step / 2, WIDTH - _RIGHT)
        body.append(
            f'<rect x="{left:.1f}" y="{_TOP}" width="{max(right - left, 2):.1f}" '
            f'height="{HEIGHT - _TOP - _BOTTOM}" fill="{_SHADE}" class="episode">'
            f"<title>{escape(span.label)}</title></rect>"
        )
    if (value := _finite(baseline)) is not None:
        body.append(_guide(y(value), f"baseline {value:.4g}", _BASELINE, "6 3", "baseline"))
    for name, raw in thresholds:
        if (value := _finite(raw)) is not None:
            body.append(_guide(y(value), f"{name} {value:.4g}", _THRESHOLD, "2 3", "threshold"))
    for index, line in enumerate(lines):
        colour = PALETTE[index % len(PALETTE)]
        placed = [None if v is None else (x(i), y(v)) for i, v in enumerate(line.values)]
        dash = ' stroke-dasharray="5 4"' if line.dashed else ""
        body.append(
            f'<path d="{_path(placed)}" fill="none" stroke="{colour}" stroke-width="2"{dash} '
            f'class="series" data-series="{escape(line.name)}"/>'
        )
        for i, point in enumerate(placed):
            if point is not None:
                body.append(
                    f'<circle cx="{point[0]:.1f}" cy="{point[1]:.1f}" r="2.5" fill="{colour}" '
                    f'data-value="{line.values[i]!r}"/>'
                )
    if points:
        for index in sorted({0, points - 1}):
            anchor = "start" if index == 0 else "end"
            body.append(
                f'<text x="{x(index):.1f}" y="{HEIGHT - 12}" text-anchor="{anchor}" '
                f'font-size="11" fill="{_AXIS}">{escape(x_labels[index])}</text>'
            )
    body.append(_legend([(line.name, PALETTE[i % len(PALETTE)]) for i, line in enumerate(lines)]))
    figure = _Figure(title, _describe_lines(lines, baseline, thresholds, spans, unit), ["window"])
    figure.columns += [line.name for line in lines]
    for i, label in enumerate(x_labels):
        figure.rows.append([label, *(line.values[i] for line in lines)])
    return _wrap(figure, _svg(WIDTH, HEIGHT, figure, body), "chart line-chart")


def _guide(y: float, label: str, colour: str, dash: str, css: str) -> str:
    return (
        f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" '
        f'stroke-dasharray="{dash}" class="{css}"/><text x="{WIDTH - _RIGHT}" y="{y - 4:.1f}" '
        f'text-anchor="end" font-size="11" fill="{colour}">{escape(label)}</text>'
    )


def _legend(entries: list[tuple[str, str]]) -> str:
    parts, x = [], _LEFT
    for name, colour in entries:
        parts.append(
            f'<rect x="{x}" y="2" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="11" font-size="11" fill="{_AXIS}">{escape(name)}</text>'
        )
        x += 24 + 7 * len(name)
    return "".join(parts)


def _describe_lines(
    lines: Sequence[Line],
    baseline: float | None,
    thresholds: Sequence[tuple[str, float | None]],
    spans: Sequence[Span],
    unit: str,
) -> str:
    said = []
    for line in lines:
        known = [v for v in line.values if v is not None]
        if not known:
            said.append(f"{line.name}: no values")
            continue
        said.append(
            f"{line.name} from {known[0]:.4g} to {known[-1]:.4g}{unit} over {len(line.values)} "
            f"windows (lowest {min(known):.4g}, highest {max(known):.4g})"
        )
    if (value := _finite(baseline)) is not None:
        said.append(f"baseline {value:.4g}")
    said += [f"{name} {v:.4g}" for name, value in thresholds if (v := _finite(value)) is not None]
    said += [f"shaded: {span.label}" for span in spans]
    return "; ".join(said) + "."


def sparkline(name: str, values: Sequence[float | None], *, width: int = 120) -> str:
    """A small line with no axes (the models page), labelled with its last value."""
    known = [(i, v) for i, v in enumerate(_finite(v) for v in values) if v is not None]
    height = 28
    if not known:
        return f'<span class="sparkline muted">{escape(name)}: no windows yet</span>'
    low, high = _bounds([v for _, v in known])
    y = _Scale(low, high, height - 3, 3)
    x = _Scale(0, max(len(values) - 1, 1), 2, width - 2)
    placed = [
        None if (v := _finite(value)) is None else (x(i), y(v)) for i, value in enumerate(values)
    ]
    last = known[-1][1]
    label = (
        f"{name}: latest {last:.4g} over {len(values)} windows "
        f"(lowest {min(v for _, v in known):.4g}, highest {max(v for _, v in known):.4g})"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(label)}" class="sparkline" '
        f'data-last="{last!r}"><path d="{_path(placed)}" fill="none" stroke="{PALETTE[0]}" '
        'stroke-width="1.5"/></svg>'
    )


def bar_chart(
    title: str,
    bars: Sequence[Bar],
    *,
    measure: str,
    line: float | None = None,
    line_label: str = "",
) -> str:
    """Horizontal bars, one per name, with a reference line (a floor or a significance level).

    Marked bars (past the line: drifted) are drawn dark and hatched-free so the mark does not
    rest on colour alone: the table says ``yes`` too.
    """
    bars = [Bar(b.name, _finite(b.value), b.marked, b.note) for b in bars]
    row_height, label_width = 22, 180
    height = _TOP + row_height * max(len(bars), 1) + _BOTTOM
    guide = _finite(line)
    low, high = _bounds(
        [b.value for b in bars] + ([guide] if guide is not None else []), include_zero=True
    )
    low = min(low, 0.0)
    x = _Scale(low, high, label_width, WIDTH - _RIGHT)
    body = []
    for index, bar in enumerate(bars):
        top = _TOP + index * row_height
        body.append(
            f'<text x="{label_width - 6}" y="{top + 15}" text-anchor="end" font-size="12" '
            f'fill="#1d2330">{escape(bar.name[:28])}</text>'
        )
        if bar.value is None:
            body.append(
                f'<text x="{x(0) + 4:.1f}" y="{top + 15}" font-size="11" fill="{_AXIS}">n/a</text>'
            )
            continue
        left, right = sorted((x(0), x(bar.value)))
        colour = PALETTE[1] if bar.marked else "#98a2b3"
        body.append(
            f'<rect x="{left:.1f}" y="{top + 4}" width="{max(right - left, 1):.1f}" height="14" '
            f'fill="{colour}" class="bar{" marked" if bar.marked else ""}" '
            f'data-value="{bar.value!r}"><title>{escape(bar.name)}: {bar.value:.4g}</title></rect>'
        )
    bottom = height - _BOTTOM
    if guide is not None:
        gx = x(guide)
        body.append(
            f'<line x1="{gx:.1f}" x2="{gx:.1f}" y1="{_TOP - 4}" y2="{bottom}" '
            f'stroke="{_THRESHOLD}" stroke-dasharray="4 3" class="threshold"/>'
            f'<text x="{gx:.1f}" y="{bottom + 14}" '
            f'text-anchor="middle" font-size="11" fill="{_THRESHOLD}">'
            f"{escape(line_label)} {guide:.4g}</text>"
        )
    body.append(
        f'<text x="{WIDTH - _RIGHT}" y="{height - 4}" text-anchor="end" font-size="11" '
        f'fill="{_AXIS}">{escape(measure)}</text>'
    )
    marked = [b.name for b in bars if b.marked]
    description = (
        f"{len(bars)} bars of {measure}"
        + (f"; line at {line_label} {guide:.4g}" if guide is not None else "")
        + (
            f"; past it: {', '.join(marked)}"
            if marked
            else "; none past it"
            if guide is not None
            else ""
        )
        + "."
    )
    figure = _Figure(title, description, ["name", measure, "past the line", "note"])
    figure.rows = [[b.name, b.value, "yes" if b.marked else "no", b.note] for b in bars]
    return _wrap(figure, _svg(WIDTH, height, figure, body), "chart bar-chart")


def distribution_chart(
    title: str,
    edges: Sequence[float],
    reference: Sequence[float],
    current: Sequence[float],
) -> str:
    """Reference against current distribution: share of rows per bin, two bars per bin."""
    bins = min(len(reference), len(current), max(len(edges) - 1, 0))
    ref = [_finite(v) or 0.0 for v in reference[:bins]]
    cur = [_finite(v) or 0.0 for v in current[:bins]]
    top = max([*ref, *cur, 0.01]) * 1.1
    y = _Scale(0.0, top, HEIGHT - _BOTTOM, _TOP)
    slot = (WIDTH - _LEFT - _RIGHT) / max(bins, 1)
    body = _y_axis(y, WIDTH)
    for index in range(bins):
        left = _LEFT + index * slot
        for offset, (value, colour, name) in enumerate(
            ((ref[index], "#98a2b3", "reference"), (cur[index], PALETTE[0], "current"))
        ):
            body.append(
                f'<rect x="{left + 1 + offset * slot / 2:.1f}" y="{y(value):.1f}" '
                f'width="{max(slot / 2 - 2, 1):.1f}" height="{y(0) - y(value):.1f}" '
                f'fill="{colour}" class="bin {name}" data-value="{value!r}"/>'
            )
    if bins:
        for index, anchor in ((0, "start"), (bins, "end")):
            body.append(
                f'<text x="{_LEFT + index * slot:.1f}" y="{HEIGHT - 12}" text-anchor="{anchor}" '
                f'font-size="11" fill="{_AXIS}">{edges[index]:.4g}</text>'
            )
    body.append(_legend([("reference", "#98a2b3"), ("current", PALETTE[0])]))
    moved = sum(abs(a - b) for a, b in zip(ref, cur, strict=True)) / 2
    figure = _Figure(
        title,
        f"share of rows in {bins} bins from {edges[0]:.4g} to {edges[bins]:.4g}; "
        f"{moved:.1%} of the mass moved between bins."
        if bins
        else "no bins.",
        ["bin", "reference share", "current share"],
    )
    figure.rows = [[f"{edges[i]:.4g} to {edges[i + 1]:.4g}", ref[i], cur[i]] for i in range(bins)]
    return _wrap(figure, _svg(WIDTH, HEIGHT, figure, body), "chart distribution-chart")


def interval_chart(
    title: str,
    *,
    metric: str,
    champion: float | None,
    challenger: float | None,
    difference: float | None,
    low: float | None,
    high: float | None,
    margin: float | None,
    decision: str,
) -> str:
    """Champion against challenger: both values, and the interval of their difference against
    zero and the non-inferiority margin, with the decision in words."""
    champion, challenger = _finite(champion), _finite(challenger)
    difference, low, high, margin = map(_finite, (difference, low, high, margin))
    height = 150
    body: list[str] = []
    values = _Scale(*_bounds([champion, challenger]), _LEFT + 90, WIDTH - _RIGHT)
    for row, (name, value, colour) in enumerate(
        (("champion", champion, "#475467"), ("challenger", challenger, PALETTE[0]))
    ):
        cy = 22 + row * 24
        body.append(
            f'<text x="{_LEFT + 84}" y="{cy + 4}" text-anchor="end" font-size="12" '
            f'fill="#1d2330">{name}</text>'
        )
        if value is not None:
            body.append(
                f'<circle cx="{values(value):.1f}" cy="{cy}" r="5" fill="{colour}" '
                f'class="{name}" data-value="{value!r}"/><text x="{values(value) + 8:.1f}" '
                f'y="{cy + 4}" font-size="11" fill="{_AXIS}">{value:.4g}</text>'
            )
    shown = [difference, low, high, 0.0, -margin if margin is not None else None]
    diff = _Scale(*_bounds(shown), _LEFT + 90, WIDTH - _RIGHT)
    cy = 100
    body.append(
        f'<text x="{_LEFT + 84}" y="{cy + 4}" text-anchor="end" font-size="12" '
        f'fill="#1d2330">difference</text>'
    )
    zero = diff(0.0)
    body.append(
        f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{cy - 16}" y2="{cy + 16}" stroke="{_AXIS}"/>'
        f'<text x="{zero:.1f}" y="{cy + 30}" text-anchor="middle" font-size="11" '
        f'fill="{_AXIS}">0</text>'
    )
    if margin is not None:
        mx = diff(-margin)
        body.append(
            f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{cy - 16}" y2="{cy + 16}" '
            f'stroke="{_THRESHOLD}" stroke-dasharray="4 3" class="threshold"/>'
            f'<text x="{mx:.1f}" y="{cy + 30}" '
            f'text-anchor="middle" font-size="11" fill="{_THRESHOLD}">-margin {-margin:.3g}</text>'
        )
    if low is not None and high is not None:
        body.append(
            f'<line x1="{diff(low):.1f}" x2="{diff(high):.1f}" y1="{cy}" y2="{cy}" '
            f'stroke="{PALETTE[0]}" stroke-width="3" class="interval"/>'
        )
    if difference is not None:
        body.append(
            f'<circle cx="{diff(difference):.1f}" cy="{cy}" r="5" fill="{PALETTE[0]}" '
            f'class="difference" data-value="{difference!r}"/>'
        )
    interval = (
        f"interval {low:.4g} to {high:.4g}"
        if low is not None and high is not None
        else "no interval"
    )
    description = (
        f"{metric}: champion {_fmt(champion)}, challenger {_fmt(challenger)}; difference "
        f"{_fmt(difference)}, {interval}"
        + (f", margin {margin:.4g}" if margin is not None else "")
        + f". Decision: {decision}."
    )
    figure = _Figure(title, description, ["figure", "value"])
    figure.rows = [
        ["champion " + metric, champion],
        ["challenger " + metric, challenger],
        ["difference", difference],
        ["interval low", low],
        ["interval high", high],
        ["margin", margin],
        ["decision", decision],
    ]
    svg = _svg(WIDTH, height, figure, body)
    return (
        f'<figure class="chart interval-chart"><figcaption>{escape(title)} — '
        f"<strong>{escape(decision)}</strong></figcaption>{svg}{_table(figure)}</figure>"
    )

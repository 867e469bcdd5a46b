"""The console's SVG charts: well-formed, every number in the text alternative, gaps kept as
gaps, labels escaped, the same input giving the same markup."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from services.incident_log.charts import (
    Bar,
    Line,
    Span,
    bar_chart,
    distribution_chart,
    interval_chart,
    line_chart,
    sparkline,
)

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    """The figure as XML (it must be well-formed to parse at all)."""
    return ET.fromstring(markup)


def svg_of(figure: ET.Element) -> ET.Element:
    found = figure.find(f"{SVG}svg")
    assert found is not None
    return found


def table_values(figure: ET.Element) -> list[float | None]:
    """Every exact number of the text alternative's table, row by row."""
    return [
        None if cell.get("data-value") == "" else float(cell.get("data-value", "nan"))
        for cell in figure.iter("td")
        if cell.get("data-value") is not None
    ]


def accessible(figure: ET.Element) -> tuple[str, str]:
    svg = svg_of(figure)
    assert svg.get("role") == "img"
    title_id, desc_id = (svg.get("aria-labelledby") or "").split()
    title = svg.find(f"{SVG}title")
    desc = svg.find(f"{SVG}desc")
    assert title is not None
    assert title.get("id") == title_id
    assert desc is not None
    assert desc.get("id") == desc_id
    return title.text or "", desc.text or ""


def test_line_chart_carries_every_value_baseline_threshold_and_episode() -> None:
    values = [0.97, 0.96, None, 0.81, 0.79]
    figure = parse(
        line_chart(
            "churn v3: recall",
            [Line("recall", values)],
            x_labels=["10:00", "10:05", "10:10", "10:15", "10:20"],
            baseline=0.97,
            thresholds=[("threshold", 0.9)],
            spans=[Span(3, 4, "recall alerting from 10:15")],
        )
    )
    title, desc = accessible(figure)
    assert title == "churn v3: recall"
    assert "from 0.97 to 0.79" in desc
    assert "baseline 0.97" in desc
    assert "threshold 0.9" in desc
    assert "recall alerting from 10:15" in desc
    assert table_values(figure) == values
    svg = svg_of(figure)
    assert [float(c.get("data-value", "")) for c in svg.iter(f"{SVG}circle")] == [
        0.97,
        0.96,
        0.81,
        0.79,
    ]
    assert len([e for e in svg.iter(f"{SVG}rect") if e.get("class") == "episode"]) == 1
    assert {e.get("class") for e in svg.iter(f"{SVG}line")} >= {"baseline", "threshold"}
    path = next(e for e in svg.iter(f"{SVG}path") if e.get("class") == "series")
    # The missing window breaks the line: two separate runs, not a dive to zero.
    assert path.get("d", "").count("M") == 2


def test_a_lower_value_is_drawn_lower() -> None:
    svg = svg_of(parse(line_chart("t", [Line("m", [0.9, 0.5])], x_labels=["a", "b"])))
    high, low = (float(c.get("cy", "")) for c in svg.iter(f"{SVG}circle"))
    assert low > high  # SVG y grows downwards


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_gaps(bad: float) -> None:
    figure = parse(
        line_chart("t", [Line("m", [0.5, bad, 0.6])], x_labels=["a", "b", "c"], baseline=bad)
    )
    assert table_values(figure) == [0.5, None, 0.6]
    assert "baseline" not in accessible(figure)[1]
    assert "nan" not in ET.tostring(svg_of(figure), encoding="unicode").lower()


def test_empty_and_single_point_charts_render() -> None:
    assert table_values(parse(line_chart("t", [Line("m", [])], x_labels=[]))) == []
    assert table_values(parse(line_chart("t", [Line("m", [3.0])], x_labels=["a"]))) == [3.0]
    assert "no values" in accessible(parse(line_chart("t", [Line("m", [None])], x_labels=["a"])))[1]


def test_an_estimate_is_a_second_dashed_series() -> None:
    figure = parse(
        line_chart(
            "t",
            [Line("recall", [0.9, None]), Line("recall (estimated)", [0.9, 0.85], dashed=True)],
            x_labels=["a", "b"],
        )
    )
    paths = [e for e in svg_of(figure).iter(f"{SVG}path") if e.get("class") == "series"]
    assert [p.get("data-series") for p in paths] == ["recall", "recall (estimated)"]
    assert paths[1].get("stroke-dasharray")
    assert not paths[0].get("stroke-dasharray")
    assert table_values(figure) == [0.9, 0.9, None, 0.85]


def test_labels_are_escaped() -> None:
    hostile = '<script>alert(1)</script> & "x"'
    figure = parse(
        bar_chart(hostile, [Bar(hostile, 1.0, True, hostile)], measure=hostile, line=0.5)
    )
    text = ET.tostring(figure, encoding="unicode")
    assert "<script>" not in text
    assert accessible(figure)[0] == hostile


def test_bar_chart_marks_bars_past_the_line() -> None:
    figure = parse(
        bar_chart(
            "drift",
            [Bar("mean radius", 0.42, True), Bar("mean texture", 0.02), Bar("area", None)],
            measure="effect size",
            line=0.1,
            line_label="effect floor",
        )
    )
    assert table_values(figure) == [0.42, 0.02, None]
    desc = accessible(figure)[1]
    assert "effect floor 0.1" in desc
    assert "past it: mean radius" in desc
    bars = [e for e in svg_of(figure).iter(f"{SVG}rect") if "bar" in (e.get("class") or "")]
    assert [(b.get("class"), float(b.get("data-value", ""))) for b in bars] == [
        ("bar marked", 0.42),
        ("bar", 0.02),
    ]
    widths = [float(b.get("width", "")) for b in bars]
    assert widths[0] > widths[1] * 10


def test_distribution_chart_shows_both_shares_per_bin() -> None:
    figure = parse(
        distribution_chart("radius", [0.0, 1.0, 2.0, 3.0], [0.4, 0.3, 0.3], [0.1, 0.2, 0.7])
    )
    assert table_values(figure) == [0.4, 0.1, 0.3, 0.2, 0.3, 0.7]
    assert "40.0% of the mass moved" in accessible(figure)[1]
    bins = [e for e in svg_of(figure).iter(f"{SVG}rect") if "bin" in (e.get("class") or "")]
    assert len(bins) == 6


def test_interval_chart_states_the_decision_and_interval() -> None:
    figure = parse(
        interval_chart(
            "gate",
            metric="recall",
            champion=0.81,
            challenger=0.95,
            difference=0.14,
            low=0.09,
            high=0.19,
            margin=0.02,
            decision="passed the gate",
        )
    )
    desc = accessible(figure)[1]
    assert "interval 0.09 to 0.19" in desc
    assert "Decision: passed the gate" in desc
    assert table_values(figure) == [0.81, 0.95, 0.14, 0.09, 0.19, 0.02]
    svg = svg_of(figure)
    assert len([e for e in svg.iter(f"{SVG}line") if e.get("class") == "interval"]) == 1


def test_interval_chart_without_an_interval() -> None:
    figure = parse(
        interval_chart(
            "live",
            metric="recall",
            champion=0.9,
            challenger=None,
            difference=None,
            low=None,
            high=None,
            margin=None,
            decision="insufficient data",
        )
    )
    assert "no interval" in accessible(figure)[1]


def test_sparkline_is_labelled_with_its_last_value() -> None:
    svg = parse(sparkline("recall of v3", [0.9, None, 0.8]))
    assert svg.get("role") == "img"
    assert svg.get("data-last") == "0.8"
    assert "latest 0.8" in (svg.get("aria-label") or "")
    assert "no windows" in sparkline("recall", [None])


def test_the_same_numbers_give_the_same_markup_and_different_ones_different_ids() -> None:
    first = line_chart("t", [Line("m", [1.0, 2.0])], x_labels=["a", "b"])
    assert first == line_chart("t", [Line("m", [1.0, 2.0])], x_labels=["a", "b"])
    other = line_chart("t", [Line("m", [1.0, 3.0])], x_labels=["a", "b"])
    assert svg_of(parse(first)).get("aria-labelledby") != svg_of(parse(other)).get(
        "aria-labelledby"
    )

"""Chart specs (dashboards.charts) as plain dicts: what each trace carries, and what it must not.

Built from hand-made columns in the shape of ``measures.series.public_columns`` (a suppressed
period has None in every figure), so each test says exactly which periods are hidden, where
the series is re-based and what the target is.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import translation

from dashboards.charts import COMPARISON, funnel_chart, period_label, spc_chart
from dashboards.panels import spec_json
from measures.enums import Direction, Frequency, MeasureKind
from measures.models import Measure
from measures.series import PUBLIC_FIELDS

PERIODS = [f"2024-{m:02d}-01" for m in range(1, 13)]


def _measure(**changes) -> Measure:
    fields = {
        "code": "care-plan",
        "name": "Share with a care plan",
        "kind": MeasureKind.PROPORTION,
        "direction": Direction.UP,
        "frequency": Frequency.MONTH,
        "display_unit": "%",
        "minimum_n": 10,
        "target": None,
    }
    return Measure(**{**fields, **changes})


def _columns(
    values,
    *,
    hidden=(),
    segments=None,
    centre=None,
    limits=True,
    periods=PERIODS,
):
    """Columns as public_columns gives them: a hidden period has None (and [] signals)."""
    count = len(values)
    segments = segments or [0] * count
    centre = centre or [60.0 if s == 0 else 80.0 for s in segments]
    out = {"period": list(periods[:count]), "suppressed": [i in hidden for i in range(count)]}
    for name in PUBLIC_FIELDS:
        out[name] = [None] * count
    for i in range(count):
        if i in hidden:
            out["signals"][i] = []
            continue
        out["value"][i] = values[i]
        out["n"][i] = 40 + i
        out["numerator"][i] = values[i] * (40 + i) / 100
        out["denominator"][i] = 40 + i
        out["centre"][i] = centre[i]
        if limits:
            out["upper"][i] = centre[i] + 20
            out["lower"][i] = centre[i] - 20
            out["upper_2s"][i] = centre[i] + 13
            out["lower_2s"][i] = centre[i] - 13
        out["segment"][i] = segments[i]
        out["signals"][i] = []
        out["point_class"][i] = "common"
    out["colour"] = [None] * count
    return out


def _trace(spec, name):
    found = [t for t in spec["data"] if t["name"] == name]
    assert len(found) == 1, [t["name"] for t in spec["data"]]
    return found[0]


def _value_trace(spec):
    return spec["data"][0]


# --- suppressed periods -----------------------------------------------------------------


def test_a_suppressed_period_is_a_gap_with_a_marker_and_no_number():
    values = [55.5, 61.25, 58.0, 62.0, 59.5, 60.5, 57.0, 63.0, 61.0, 58.5, 60.0, 62.5]
    columns = _columns(values, hidden={3, 4, 9})

    spec = spc_chart(measure=_measure(), grain=Frequency.MONTH, columns=columns)

    trace = _value_trace(spec)
    assert trace["x"] == PERIODS
    assert [i for i, y in enumerate(trace["y"]) if y is None] == [3, 4, 9]
    assert [i for i, n in enumerate(trace["customdata"]) if n is None] == [3, 4, 9]
    assert trace["connectgaps"] is False  # the gap is drawn as a gap
    for line in ("Centre line (mean)", "Process limits", "2σ lines"):
        for t in (t for t in spec["data"] if t["name"] == line):
            hidden_x = {PERIODS[i] for i in (3, 4, 9)}
            assert all(y is None for x, y in zip(t["x"], t["y"], strict=True) if x in hidden_x)
    marker = _trace(spec, "Suppressed")
    assert marker["x"] == [PERIODS[3], PERIODS[4], PERIODS[9]]
    assert marker["yaxis"] == "y2" and spec["layout"]["yaxis2"]["range"] == [0, 1]
    assert len(set(marker["y"])) == 1  # its height says nothing
    assert marker["mode"] == "markers"
    assert "customdata" not in marker and "text" not in marker
    template = marker["hovertemplate"]
    assert "fewer than 10 observations" in template
    # No number but N in what the marker says (the period comes from its x).
    assert re.findall(r"\d+", re.sub(r"%\{[^}]*\}", "", template)) == ["10"]
    # Nothing but the marker is on the second axis.
    assert [t["name"] for t in spec["data"] if t.get("yaxis") == "y2"] == ["Suppressed"]


def test_no_marker_when_nothing_is_suppressed():
    spec = spc_chart(measure=_measure(), grain=Frequency.MONTH, columns=_columns([50.0] * 12))

    assert all(t.get("yaxis") != "y2" for t in spec["data"])
    assert None not in _value_trace(spec)["y"]


def test_a_suppressed_figure_in_the_columns_would_show():
    """The chart draws what the columns hold: blanking is public_columns' job (and the
    suppression tests check that the pages only ever pass those)."""
    columns = _columns([50.0] * 12, hidden={5})
    columns["value"][5] = 12.5

    spec = spc_chart(measure=_measure(), grain=Frequency.MONTH, columns=columns)

    assert _value_trace(spec)["y"][5] == 12.5


# --- re-basing ------------------------------------------------------------------------------


def test_re_basing_breaks_the_centre_line_and_the_limits():
    values = [58.0, 61.0, 60.0, 59.0, 62.0, 60.0, 79.0, 81.0, 80.0, 78.0, 82.0, 80.0]
    columns = _columns(values, segments=[0] * 6 + [1] * 6)

    spec = spc_chart(
        measure=_measure(kind=MeasureKind.MEAN), grain=Frequency.MONTH, columns=columns
    )

    centre = _trace(spec, "Centre line (mean)")
    breaks = [i for i, y in enumerate(centre["y"]) if y is None]
    assert len(breaks) == 1
    i = breaks[0]
    # The None sits at the first period of the new segment, between the two levels.
    assert centre["x"][i] == PERIODS[6]
    assert set(centre["y"][:i]) == {60.0}
    assert set(centre["y"][i + 1 :]) == {80.0}
    assert centre["connectgaps"] is False
    for limit in [t for t in spec["data"] if t["name"] == "Process limits"]:
        assert sum(y is None for y in limit["y"]) == 1
    # The points themselves are one unbroken line.
    assert None not in _value_trace(spec)["y"]


def test_one_segment_has_no_break():
    spec = spc_chart(
        measure=_measure(kind=MeasureKind.MEAN),
        grain=Frequency.MONTH,
        columns=_columns([60.0 + i % 3 for i in range(12)]),
    )

    assert None not in _trace(spec, "Centre line (mean)")["y"]


def test_a_suppressed_period_at_a_re_basing_keeps_one_break_per_change():
    values = [58.0, 61.0, 60.0, 59.0, 62.0, 60.0, 79.0, 81.0, 80.0, 78.0, 82.0, 80.0]
    columns = _columns(values, segments=[0] * 6 + [1] * 6, hidden={6})

    spec = spc_chart(
        measure=_measure(kind=MeasureKind.MEAN), grain=Frequency.MONTH, columns=columns
    )

    centre = _trace(spec, "Centre line (mean)")
    levels = [y for y in centre["y"] if y is not None]
    assert levels[0] == 60.0 and levels[-1] == 80.0
    # Never a line from one level straight to the other.
    pairs = zip(centre["y"], centre["y"][1:], strict=False)
    assert not any(a is not None and b is not None and a != b for a, b in pairs)


# --- target, comparison, run chart, annotations ----------------------------------------------


@pytest.mark.parametrize("target", [None, Decimal("90.0000"), Decimal("0")])
def test_the_target_line_is_there_exactly_when_there_is_a_target(target):
    spec = spc_chart(
        measure=_measure(target=target), grain=Frequency.MONTH, columns=_columns([70.0] * 12)
    )

    targets = [t for t in spec["data"] if t["name"].startswith("Target")]
    if target is None:
        assert targets == []
    else:
        [line] = targets
        assert line["y"] == [float(target)] * 2
        assert line["x"] == [PERIODS[0], PERIODS[-1]]
        assert line["name"] == f"Target: {float(target):.1f} %"


def test_the_comparison_is_drawn_only_when_asked():
    columns = _columns([70.0] * 12)
    plain = spc_chart(measure=_measure(), grain=Frequency.MONTH, columns=columns)
    assert not any(t.get("line", {}).get("color") == COMPARISON for t in plain["data"])
    assert len(plain["data"]) == 6  # values, centre, 2 limits, 2 2σ lines

    department = _columns([65.0 + i for i in range(12)], hidden={2})
    compared = spc_chart(
        measure=_measure(),
        grain=Frequency.MONTH,
        columns=columns,
        comparison=department,
        comparison_name="Department",
    )

    line = _trace(compared, "Department")
    assert line["line"]["color"] == COMPARISON
    assert line["x"] == department["period"]
    assert line["y"] == [None if i == 2 else 65.0 + i for i in range(12)]
    assert len(compared["data"]) == 7


def test_too_few_points_for_limits_draws_the_run_chart_median():
    columns = _columns([60.0, 62.0, 58.0, 61.0, 59.0], limits=False)

    spec = spc_chart(
        measure=_measure(),
        grain=Frequency.MONTH,
        columns=columns,
        run_chart={"centre": 60.0, "signal": False},
    )

    names = [t["name"] for t in spec["data"]]
    assert "Median (run chart)" in names and "Process limits" not in names
    assert _trace(spec, "Median (run chart)")["y"] == [60.0, 60.0]


def test_annotations_are_vertical_lines_with_their_label():
    notes = [
        {"date": "2024-05-01", "label": "PDSA: Care plan at the first round", "kind": "pdsa"},
        {"date": "2024-09-01", "label": "Re-based", "kind": "rebase"},
    ]

    spec = spc_chart(
        measure=_measure(), grain=Frequency.MONTH, columns=_columns([70.0] * 12), annotations=notes
    )

    shapes = spec["layout"]["shapes"]
    assert [(s["x0"], s["x1"], s["yref"]) for s in shapes] == [
        ("2024-05-01", "2024-05-01", "paper"),
        ("2024-09-01", "2024-09-01", "paper"),
    ]
    assert [a["text"] for a in spec["layout"]["annotations"]] == [n["label"] for n in notes]


@pytest.mark.parametrize(("language", "separators"), [("sv", ", "), ("en", ".,")])
def test_numbers_are_formatted_for_the_language(language, separators):
    with translation.override(language):
        spec = spc_chart(measure=_measure(), grain=Frequency.MONTH, columns=_columns([70.0] * 12))
        label = period_label("2024-03-01", Frequency.MONTH)
        week = period_label("2024-03-11", Frequency.WEEK)
        quarter = period_label("2024-04-01", Frequency.QUARTER)

    assert spec["layout"]["separators"] == separators
    if language == "sv":
        assert label.lower() == "mars 2024" and "11" in week and "2" in quarter
    else:
        assert (label, week, quarter) == ("March 2024", "week 11, 2024", "Q2 2024")


def test_values_are_rounded_for_a_smaller_page():
    columns = _columns([100 / 3] * 12)

    spec = spc_chart(measure=_measure(), grain=Frequency.MONTH, columns=columns)

    assert _value_trace(spec)["y"][0] == 33.3333


# --- JSON inside <script> ---------------------------------------------------------------------


HOSTILE_NAME = '</script><script>alert("x")</script> & <!-- Ångest'


def test_spec_json_cannot_end_its_script_element():
    spec = spc_chart(
        measure=_measure(name=HOSTILE_NAME),
        grain=Frequency.MONTH,
        columns=_columns([70.0] * 12, hidden={4}),
        comparison=_columns([65.0] * 12),
        comparison_name=HOSTILE_NAME,
        annotations=[{"date": "2024-05-01", "label": HOSTILE_NAME, "kind": "pdsa"}],
    )

    text = spec_json(spec)

    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == json.loads(json.dumps(spec))
    assert HOSTILE_NAME in json.loads(text)["layout"]["annotations"][0]["text"]


@pytest.mark.django_db
def test_a_hostile_measure_name_on_the_page_stays_inside_its_script(client, dash):
    """On a unit's page (specs in the linked JSON) and on the measure's page (its one spec in
    the page): the name never ends a script element and the spec is whole."""
    import html

    measure = dash.measures["careplan"]
    measure.name = HOSTILE_NAME
    measure.target = 80
    measure.save()
    client.force_login(dash.people["clinician"])

    content = client.get(reverse("dashboards:unit", args=[dash.b1.code])).content.decode()

    assert '<script>alert("x")' not in content
    [url] = re.findall(r'data-charts="([^"]+)"', content)
    specs = client.get(html.unescape(url)).content.decode()
    assert "<" not in specs and ">" not in specs
    assert json.loads(specs)["spec-m-care-plan"]["data"]  # the whole spec, not cut short
    # The name is on the page, escaped, in the heading.
    assert (
        "&lt;/script&gt;&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;!-- Ångest"
        in content
    )

    page = client.get(reverse("dashboards:measure", args=[measure.code])).content.decode()

    assert '<script>alert("x")' not in page
    script = page.split('<script type="application/json" id="spec-overview">', 1)[1]
    body = script.split("</script>", 1)[0]
    assert "<" not in body
    json.loads(body)  # the whole spec, not cut short by the name


# --- funnel plots ----------------------------------------------------------------------------


def _funnel(outside, names=("A", "B", "C")):
    curve = [10.0, 20.0, 40.0, 80.0]
    return funnel_chart(
        measure=_measure(),
        names=list(names),
        values=[50.0, 62.5, 90.0],
        denominators=[20.0, 40.0, 80.0],
        theta=65.0,
        limits={
            "95": ([40.0, 45.0, 50.0, 55.0], [90.0, 85.0, 80.0, 75.0]),
            "99.8": ([30.0, 38.0, 45.0, 52.0], [99.0, 92.0, 86.0, 79.0]),
        },
        curve_n=curve,
        outside=list(outside),
    )


def test_funnel_places_each_unit_at_its_denominator_and_value():
    spec = _funnel([0, 0, 1])

    [units] = [t for t in spec["data"] if t["mode"] == "markers"]
    assert units["x"] == [20.0, 40.0, 80.0] and units["y"] == [50.0, 62.5, 90.0]
    assert units["text"] == ["A: 50.0 % (n = 20)", "B: 62.5 % (n = 40)", "C: 90.0 % (n = 80)"]
    # An outlier is told by shape and colour (not by colour alone).
    assert units["marker"]["symbol"] == ["circle", "circle", "diamond"]
    assert units["marker"]["color"][2] != units["marker"]["color"][0]
    pooled = _trace(spec, "Pooled value: 65.0 %")
    assert pooled["y"] == [65.0, 65.0] and pooled["x"] == [10.0, 80.0]


def test_funnel_draws_both_limit_pairs_with_one_legend_entry_each():
    spec = _funnel([0, 0, 0])

    for name, (lower, upper) in (
        ("95 % limits", ([40.0, 45.0, 50.0, 55.0], [90.0, 85.0, 80.0, 75.0])),
        ("99.8 % limits", ([30.0, 38.0, 45.0, 52.0], [99.0, 92.0, 86.0, 79.0])),
    ):
        lines = [t for t in spec["data"] if t["name"] == name]
        assert [t["y"] for t in lines] == [upper, lower]
        assert [t["showlegend"] for t in lines] == [True, False]
        assert all(t["x"] == [10.0, 20.0, 40.0, 80.0] for t in lines)
    assert json.loads(spec_json(spec)) == json.loads(json.dumps(spec))


def test_funnel_spec_is_safe_with_a_hostile_unit_name():
    text = spec_json(_funnel([0, 0, 0], names=(HOSTILE_NAME, "B", "C")))

    assert "<" not in text and ">" not in text
    assert json.loads(text)["data"][0]["text"][0].startswith(HOSTILE_NAME)

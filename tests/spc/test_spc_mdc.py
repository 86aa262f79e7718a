"""measures.spc against the Making Data Count (MDC) Single Chart Tool v5.0 checklist.

The datasets below are those of ``mdc-v5-test-data.csv`` (NHS England Making Data Count team,
via NHSDigital/fdp-react-design-system, MIT licence, Crown Copyright; see
``../shared/spc-reference/``), embedded so that the tests do not depend on a file outside the
repository; :func:`test_embedded_data_matches_reference_csv` checks the copy when the reference
CSV is available. Colours: g grey (common cause), b blue (improvement), o orange (concern),
p purple (special cause, direction "neither"). Unless said otherwise the checklist's settings
are: high is good, shift and trend of 6, no recalculation, no baseline.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from measures.spc import (
    AssuranceIcon,
    PointClass,
    Signal,
    VariationIcon,
    analyse,
)

REFERENCE_CSV = Path("/work/shared/spc-reference/mdc-v5-test-data.csv")
CLASS_CODE = {
    PointClass.COMMON: "g",
    PointClass.IMPROVEMENT: "b",
    PointClass.CONCERN: "o",
    PointClass.NEITHER: "p",
}

RECALC = "16 24 22 19 19 18 24 25 18 17 16 25 15 23 19 35 32 35 31 27 33 28 38 35 30 28 29 27 24 23"
SPECIAL = "8 27 32 26 20 21 23 21 23 22 26 23 20 20 29 28 22 23 25 26 28 29 26 24 36 29 35 22 30 18"
VARIATION = "16 20 22 18 21 18 26 28 24 26 19 18 25 32 43 28 22"
CONFLICT = "43 41 37 36 31 23 15 13 15 18 23 27 31 36 27 19 17 27 15 22"


@dataclass(frozen=True)
class Case:
    name: str  # the CSV's Metric
    values: str
    colours: str
    direction: str = "up"
    rebase_at: tuple[int, ...] = ()  # 0-based index of the first point of a new segment
    baseline_points: int | None = None

    @property
    def y(self) -> list[float]:
        return [float(v) for v in self.values.split()]


CASES = [
    # Number of points: 12 points -> no limits, no icons; everything grey.
    Case("Number of points - 12", "30 31 25 35 34 15 21 23 30 26 26 22", "g" * 12),
    # Number of points: 13 points -> limits and icons shown; all common cause.
    Case("Number of points - 13", "30 31 25 35 34 15 21 23 30 26 26 22 25", "g" * 13),
    # Process limits: mean 23.20, limits 8.76 / 37.64 from 2.66 x mean moving range 5.43.
    Case("Process limits - 15", "20 24 20 26 22 16 18 16 31 28 34 26 30 19 18", "g" * 15),
    # Process limits: 10 points, mean 22.10 only.
    Case("Process limits - 10", "20 24 20 26 22 16 18 16 31 28", "g" * 10),
    # Colours by direction: astronomical low p1, shift below p5-p10, shift above p17-p22,
    # two-of-three above p25 and p27. High is good: blue/orange.
    Case("Special cause - High is good", SPECIAL, "ogggooooooggggggbbbbbbggbgbggg"),
    # Same data, low is good: blue and orange swap.
    Case("Special cause - Low is good", SPECIAL, "bgggbbbbbbggggggooooooggogoggg", "down"),
    # Same data, direction neither: purple for every special cause.
    Case("Special cause - Neither", SPECIAL, "pgggppppppggggggppppppggpgpggg", "neither"),
    # Astronomical point rule at the ends of the chart (p1 above, p15 below the limits).
    Case(
        "Special cause - single point - ends",
        "45 29 20 22 25 20 27 24 22 23 20 26 20 15 5",
        "bgggggggggggggo",
    ),
    # Astronomical point rule in the middle (p4, p5 above; p10 below).
    Case(
        "Special cause - single point - middle",
        "29 32 35 45 43 23 18 20 16 7 28 26 22 19 20",
        "gggbbggggoggggg",
    ),
    # Shift rule (6 on one side) at the ends: p1-p6 above, p14-p20 below.
    Case(
        "Special cause - shift - ends",
        "31 35 34 29 29 32 26 26 32 35 30 18 31 25 27 22 18 25 25 17",
        "bbbbbbgggggggooooooo",
    ),
    # Shift rule in the middle: p2-p8 below, p12-p17 above.
    Case(
        "Special cause - shift - middle",
        "31 22 19 21 18 18 22 22 29 25 23 26 31 26 28 29 32 24 31 22",
        "gooooooogggbbbbbbggg",
    ),
    # Trend rule (6 increasing / decreasing), crossing the mean: p1-p6 up, p14-p20 down.
    Case(
        "Special cause - trend - no pauses",
        "11 14 18 20 22 23 18 21 17 23 26 20 16 25 23 22 19 16 15 12",
        "bbbbbbgggggggooooooo",
    ),
    # Trend rule: a tie (25, 25 and 18, 18) is a pause that breaks the trend -> all grey.
    Case(
        "Special cause - trend - pauses",
        "23 30 28 25 25 20 18 24 16 13 14 18 18 24 26 29 19 20 28 16",
        "g" * 20,
    ),
    # Two-of-three beyond 2 sigma on one side: p1-p3, p3+p5 (p4 not beyond), p21+p22 below.
    Case(
        "Special cause - two-sigma - 1",
        "42 40 39 26 39 24 22 29 32 22 20 23 25 26 22 24 27 7 19 24 7 7 32",
        "bbbgbgggggggggggggggoog",
    ),
    # Two-of-three: p22 (2) is beyond 3 sigma -> astronomical, and does not count for
    # two-of-three, so p21 (7) alone stays grey.
    Case(
        "Special cause - two-sigma - 2",
        "42 40 39 26 39 24 22 29 32 22 20 23 25 26 22 24 27 7 19 24 7 2 32",
        "bbbgbggggggggggggggggog",
    ),
    # Two-of-three: all 3 points must be on the same side of the mean; p4 = 24 and p20 = 26
    # change side, so only p1-p3 fire.
    Case(
        "Special cause - two-sigma - 3",
        "42 40 39 24 39 24 22 29 32 22 20 23 25 26 22 24 27 7 19 26 7 7 32",
        "bbbgggggggggggggggggggg",
    ),
    # Conflict, high is good: improvement wins over concern. p1-p2 astronomical high,
    # p3-p4 two-of-three high, p8-p14 increasing trend (blue over the shift below, p6-p11);
    # only p5-p7 orange (decreasing trend + shift). The CSV has p15 blue, but the checklist's
    # text ("p8 to p14 are part of an increasing trend") and the rules leave p15 (27, after the
    # 36 peak; above the mean but not beyond 2 sigma, no run of 6) grey: corrected here, see
    # CONFLICT_P15_CSV_COLOUR and test_conflict_point_15_follows_the_checklist_text.
    Case("Special cause conflict - High is good", CONFLICT, "bbbbooobbbbbbbgggggg"),
    # Conflict, low is good: p1-p8 decreasing trend blue, p6-p11 shift below blue (over the
    # increasing trend p8-p14), so only p12-p14 orange.
    Case("Special cause conflict - Low is good", CONFLICT, "bbbbbbbbbbbooogggggg", "down"),
    # Recalculations: left chart without recalculation (one set of limits).
    Case("Recalculations", RECALC, "o" * 15 + "b" * 13 + "gg"),
    # Recalculations: recalculated from p16 (index 15): each part has its own limits;
    # p25-p30 are a shift below the second mean.
    Case("Recalculations - Recalculated", RECALC, "g" * 24 + "o" * 6, rebase_at=(15,)),
    # Baselines: left chart without baseline (as "Recalculations").
    Case("Baselines", RECALC, "o" * 15 + "b" * 13 + "gg"),
    # Baselines: baseline p1-p15, limits extended to p16-p30, which all sit above (shift).
    Case("Baselines - Recalculated", RECALC, "g" * 15 + "b" * 15, baseline_points=15),
    # Shift crossing a recalculation at p16: p14-p15 below the first mean and p16-p19 below
    # the second make a run of 6.
    Case(
        "Special cause crossing recalculations - shift",
        "28 23 26 21 23 25 24 29 30 27 25 30 27 24 19 22 28 28 29 33 28 30 31 30 26 27 34 30 32 35",
        "g" * 13 + "o" * 6 + "g" * 11,
        rebase_at=(15,),
    ),
    # Trend crossing a recalculation at p16: p15-p20 increasing.
    Case(
        "Special cause crossing recalculations - trend",
        "28 23 26 21 23 25 24 29 30 27 25 30 27 26 19 22 26 28 29 33 28 30 31 30 26 27 34 30 32 35",
        "g" * 14 + "b" * 6 + "g" * 10,
        rebase_at=(15,),
    ),
    # Two-of-three crossing a recalculation at p16: p15 beyond the first part's lower 2 sigma
    # line, p16 beyond the second part's, p14-p16 all below their own means.
    Case(
        "Special cause crossing recalculations - two-sigma",
        "28 23 26 21 23 25 24 29 30 27 25 30 27 24 19 22 32 28 29 33 28 30 31 30 26 27 34 30 32 35",
        "g" * 14 + "oo" + "g" * 14,
        rebase_at=(15,),
    ),
    # Assurance icon datasets (icons in test_assurance_icons): colours, high is good.
    Case("Summary icons - assurance - high is good", RECALC, "o" * 15 + "b" * 13 + "gg"),
    # ... and low is good.
    Case("Summary icons - assurance - low is good", RECALC, "b" * 15 + "o" * 13 + "gg", "down"),
    # Variation icon, high is good, last point astronomical high -> improvement (high).
    Case(
        "Summary icons - variation - High is good", VARIATION + " 45", "oooooo" + "g" * 8 + "bggb"
    ),
    # ... low is good -> concern (high).
    Case(
        "Summary icons - variation - Low is good",
        VARIATION + " 45",
        "bbbbbb" + "g" * 8 + "oggo",
        "down",
    ),
    # Variation icon, last point common cause. The CSV splits this dataset: its 14/01/2023
    # point (32, grey) is filed under the misspelt metric "... High is good2"; merged here.
    Case(
        "Summary icons - variation - High is good 2", VARIATION + " 25", "oooooo" + "g" * 8 + "bggg"
    ),
    # Variation icon, last point astronomical low: concern (low) when high is good ...
    Case(
        "Summary icons - variation - High is good 3", VARIATION + " 5", "oooooo" + "g" * 8 + "bggo"
    ),
    # ... and improvement (low) when low is good.
    Case(
        "Summary icons - variation - Low is good 3",
        VARIATION + " 5",
        "bbbbbb" + "g" * 8 + "oggb",
        "down",
    ),
    # Direction neither: purple; last point high -> neither (high) icon.
    Case(
        "Summary icons - variation - Neither",
        VARIATION + " 45",
        "pppppp" + "g" * 8 + "pggp",
        "neither",
    ),
    # Too few points (10): no limits, no icons.
    Case("Summary icons - variation - Too few points", "16 20 22 18 21 18 26 28 24 26", "g" * 10),
    # Direction neither, last point common cause.
    Case(
        "Summary icons - variation - Neither2",
        VARIATION + " 25",
        "pppppp" + "g" * 8 + "pggg",
        "neither",
    ),
]

# The colour the reference CSV gives p15 of "Special cause conflict - High is good" (see above).
CONFLICT_P15_CSV_COLOUR = "b"


def run(case: Case, **kwargs: object):
    return analyse(
        case.y,
        direction=case.direction,
        rebase_at=case.rebase_at,
        baseline_points=case.baseline_points,
        **kwargs,
    )


def codes(result) -> str:
    return "".join(CLASS_CODE[c] for c in result.point_class)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_point_colour_matches_mdc(case: Case) -> None:
    assert len(case.values.split()) == len(case.colours)
    assert codes(run(case)) == case.colours


def test_conflict_point_15_follows_the_checklist_text() -> None:
    # The checklist: p1-p2 astronomical, p3-p4 above 2 sigma, p8-p14 increasing trend,
    # "so only p5 to p7 are shown in orange". p15 (27) has no rule: it is grey, not the CSV's
    # blue. Show that no rule fires there, rather than only asserting the colour.
    case = next(c for c in CASES if c.name == "Special cause conflict - High is good")
    result = run(case)
    assert result.signals[14] == frozenset()
    assert result.point_class[14] is PointClass.COMMON
    assert CONFLICT_P15_CSV_COLOUR == "b"  # the transcription we deliberately override
    # the conflicts the checklist names resolve to improvement
    for i in (0, 1, 2, 3, 7, 8, 9, 10):
        assert result.point_class[i] is PointClass.IMPROVEMENT
    assert Signal.TREND_LOW in result.signals[0]
    assert Signal.TREND_HIGH in result.signals[7] and Signal.TREND_LOW in result.signals[7]
    assert Signal.SHIFT_LOW in result.signals[8]


def _read_reference() -> dict[str, list[tuple[str, str, str]]]:
    out: dict[str, list[tuple[str, str, str]]] = {}
    with REFERENCE_CSV.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            colour = {"grey": "g", "blue": "b", "orange": "o", "purple": "p"}[row["Colour"]]
            out.setdefault(row["Metric"], []).append((row["Date"], row["Value"], colour))
    return out


@pytest.mark.skipif(not REFERENCE_CSV.exists(), reason="reference CSV not available")
def test_embedded_data_matches_reference_csv() -> None:
    ref = _read_reference()
    # the misspelt single-point metric belongs to "... High is good 2" (date 14/01/2023)
    stray = ref.pop("Summary icons - variation - High is good2")
    merged = ref["Summary icons - variation - High is good 2"] + stray
    ref["Summary icons - variation - High is good 2"] = sorted(
        merged, key=lambda r: tuple(reversed(r[0].split("/")))
    )
    assert set(ref) == {c.name for c in CASES}
    for case in CASES:
        rows = ref[case.name]
        assert " ".join(r[1] for r in rows) == case.values, case.name
        csv_colours = "".join(r[2] for r in rows)
        if case.name == "Special cause conflict - High is good":
            csv_colours = csv_colours[:14] + "g" + csv_colours[15:]
            assert rows[14][2] == CONFLICT_P15_CSV_COLOUR
        assert csv_colours == case.colours, case.name


# ---------------------------------------------------------------------------------------------
# Number of points and process limits
# ---------------------------------------------------------------------------------------------


def test_twelve_points_show_no_limits_or_icons_but_the_mean() -> None:
    result = analyse([30, 31, 25, 35, 34, 15, 21, 23, 30, 26, 26, 22], direction="up", target=25)
    assert not result.limits_shown.any()
    assert np.isnan(result.upper).all() and np.isnan(result.lower).all()
    assert np.allclose(result.centre, 26.5)
    assert result.variation_icon is None and result.assurance_icon is None
    assert result.run_chart is not None  # run-chart rules instead


def test_thirteen_points_show_limits_and_icons() -> None:
    result = analyse(
        [30, 31, 25, 35, 34, 15, 21, 23, 30, 26, 26, 22, 25], direction="up", target=25
    )
    assert result.limits_shown.all()
    assert result.variation_icon is VariationIcon.COMMON_CAUSE
    assert result.assurance_icon is AssuranceIcon.HIT_AND_MISS


def test_min_points_is_configurable() -> None:
    values = [30, 31, 25, 35, 34, 15, 21, 23, 30, 26, 26, 22, 25, 27]
    assert analyse(values, min_points=15).variation_icon is None
    assert not analyse(values, min_points=15).limits_shown.any()
    assert analyse(values, min_points=14).limits_shown.all()


def test_process_limits_example() -> None:
    # Checklist "Process limits": 14 moving ranges, mean 5.43, sigma 4.81 (5.43 / 1.128),
    # three sigma 14.44, mean 23.20, limits 8.76 and 37.64.
    result = analyse([20, 24, 20, 26, 22, 16, 18, 16, 31, 28, 34, 26, 30, 19, 18])
    seg = result.segments[0]
    assert round(seg.mr_bar, 2) == 5.43
    assert round(seg.mr_bar / 1.128, 2) == 4.81
    assert round(2.66 * seg.mr_bar, 2) == 14.44
    assert round(result.centre[0], 2) == 23.20
    assert round(result.upper[0], 2) == 37.64
    assert round(result.lower[0], 2) == 8.76
    # 2 sigma lines at mean +/- 1.7733 x mR-bar
    assert result.upper_2s[0] == pytest.approx(23.2 + 2 * 2.66 / 3 * seg.mr_bar)
    # 10 points: mean 22.10 and nothing else
    short = analyse([20, 24, 20, 26, 22, 16, 18, 16, 31, 28])
    assert round(short.centre[0], 2) == 22.10
    assert np.isnan(short.upper).all()


def test_recalculation_gives_each_part_its_own_limits() -> None:
    # Checklist "Recalculations": mean and limits of each part computed separately.
    y = [float(v) for v in RECALC.split()]
    result = analyse(y, rebase_at=(15,), direction="up")
    assert result.segment.tolist() == [0] * 15 + [1] * 15
    first, second = result.segments
    assert first.centre == pytest.approx(sum(y[:15]) / 15)
    assert second.centre == pytest.approx(sum(y[15:]) / 15)
    mr2 = np.abs(np.diff(y[15:])).mean()  # the moving range does not cross the recalculation
    assert result.upper[20] == pytest.approx(second.centre + 2.66 * mr2)


def test_baseline_limits_are_extended_forward() -> None:
    # Checklist "Baselines": limits from the baseline only, extended to the later points.
    y = [float(v) for v in RECALC.split()]
    result = analyse(y, baseline_points=15, direction="up")
    mr = np.abs(np.diff(y[:15])).mean()
    assert np.allclose(result.centre, sum(y[:15]) / 15)
    assert np.allclose(result.upper, sum(y[:15]) / 15 + 2.66 * mr)
    assert result.segments[0].n_calc == 15


def test_recalculation_by_date() -> None:
    y = [float(v) for v in RECALC.split()]
    dates = [f"2023-01-{d:02d}" for d in range(1, 31)]
    by_date = analyse(y, dates=dates, rebase_at=[np.datetime64("2023-01-16")], direction="up")
    assert codes(by_date) == "g" * 24 + "o" * 6


def test_rules_do_not_cross_without_the_crossing_points() -> None:
    # Sanity check for "crossing recalculations - shift": the run of 6 needs both parts.
    case = next(c for c in CASES if c.name == "Special cause crossing recalculations - shift")
    result = run(case)
    assert result.segment[13] == 0 and result.segment[18] == 1
    assert all(Signal.SHIFT_LOW in s for s in result.signals[13:19])


# ---------------------------------------------------------------------------------------------
# Icons
# ---------------------------------------------------------------------------------------------

# Checklist "Summary icons -- assurance": process limits 13.33 / 37.00 (one part); target 40
# above the limits, 30 within, 10 below.
ASSURANCE = [
    ("up", None, None),
    ("up", 40, AssuranceIcon.CONSISTENT_FAIL),
    ("up", 30, AssuranceIcon.HIT_AND_MISS),
    ("up", 10, AssuranceIcon.CONSISTENT_PASS),
    ("down", None, None),
    ("down", 40, AssuranceIcon.CONSISTENT_PASS),
    ("down", 30, AssuranceIcon.HIT_AND_MISS),
    ("down", 10, AssuranceIcon.CONSISTENT_FAIL),
    ("neither", 40, None),  # a target makes no sense with direction neither
    ("neither", 30, None),
    ("neither", 10, None),
]


@pytest.mark.parametrize(("direction", "target", "expected"), ASSURANCE)
def test_assurance_icons(direction: str, target: float | None, expected) -> None:
    y = [float(v) for v in RECALC.split()]
    result = analyse(y, direction=direction, target=target)
    assert round(result.lower[-1], 2) == 13.33 and round(result.upper[-1], 2) == 37.00
    assert result.assurance_icon is expected
    assert result.target == target


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        # latest limits 20.45 / 40.21: target 40 is inside them now (it was above 37.00)
        (40, AssuranceIcon.HIT_AND_MISS),
        (30, AssuranceIcon.HIT_AND_MISS),
        (10, AssuranceIcon.CONSISTENT_PASS),
        (45, AssuranceIcon.CONSISTENT_FAIL),
    ],
)
def test_assurance_uses_the_latest_limits_after_recalculation(target: float, expected) -> None:
    # Checklist: "If a recalculation is added, the latest process limits are used." (The
    # checklist's figure does not state its target, so every case is checked.)
    y = [float(v) for v in RECALC.split()]
    result = analyse(y, direction="up", target=target, rebase_at=(15,))
    assert round(result.lower[-1], 2) == 20.45 and round(result.upper[-1], 2) == 40.21
    assert result.assurance_icon is expected


def test_assurance_needs_enough_points() -> None:
    y = [float(v) for v in RECALC.split()][:12]
    assert analyse(y, direction="up", target=40).assurance_icon is None


VARIATION_ICONS = [
    ("up", 45, VariationIcon.IMPROVEMENT_HIGH),
    ("up", 25, VariationIcon.COMMON_CAUSE),
    ("up", 5, VariationIcon.CONCERN_LOW),
    ("down", 45, VariationIcon.CONCERN_HIGH),
    ("down", 25, VariationIcon.COMMON_CAUSE),
    ("down", 5, VariationIcon.IMPROVEMENT_LOW),
    ("neither", 45, VariationIcon.NEITHER_HIGH),
    ("neither", 25, VariationIcon.COMMON_CAUSE),
    ("neither", 5, VariationIcon.NEITHER_LOW),
]


@pytest.mark.parametrize(("direction", "last", "expected"), VARIATION_ICONS)
def test_variation_icons(direction: str, last: float, expected: VariationIcon) -> None:
    # Checklist "Summary icons -- variation": 17 points and a last point of 45, 25 or 5.
    y = [float(v) for v in VARIATION.split()] + [last]
    result = analyse(y, direction=direction)
    assert result.variation_icon is expected


@pytest.mark.parametrize(
    "options", [{}, {"baseline_points": 13}, {"rebase_at": (4,)}, {"rebase_at": (2, 5)}]
)
def test_variation_icon_follows_the_last_point_whatever_the_segments(options) -> None:
    # "As the last point is used for determining the variation icon, it does not matter where
    # a recalculation has been added or a baseline has been set": the icon is the last point's
    # class (the settings may change that class through the limits, not the rule for the icon).
    y = [float(v) for v in VARIATION.split()] + [45.0]
    result = analyse(y, direction="up", **options)
    expected = {
        PointClass.COMMON: VariationIcon.COMMON_CAUSE,
        PointClass.IMPROVEMENT: VariationIcon.IMPROVEMENT_HIGH,
        PointClass.CONCERN: VariationIcon.CONCERN_LOW,
    }[result.point_class[-1]]
    assert result.variation_icon is expected


def test_variation_icon_needs_enough_points() -> None:
    assert analyse([16, 20, 22, 18, 21, 18, 26, 28, 24, 26], direction="up").variation_icon is None


def test_colours_are_the_mdc_hex_codes() -> None:
    case = next(c for c in CASES if c.name == "Special cause - Neither")
    colours = run(case).colours
    assert colours[0] == "#490092" and colours[1] == "#A6A6A6"
    up = run(next(c for c in CASES if c.name == "Special cause - High is good")).colours
    assert up[0] == "#E46C0A" and up[16] == "#00B0F0"
    assert not math.isnan(run(case).centre[0])

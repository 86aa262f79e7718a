"""The packed column form of series points and period sums, and the helpers around it."""

from datetime import date, timedelta

import numpy as np
import pytest

from measures.aggregation.cells import _later_month_days, _sort_order
from measures.packing import (
    POINT_COLUMNS,
    UNIT_SUMS_COLUMNS,
    blob_of,
    encode_columns,
    pack_columns,
    points_as_lists,
    unpack_columns,
)


def _points(count: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    values = rng.normal(10, 3, count)
    values[::4] = np.nan
    return {
        "period": np.arange(count) * 7 + 19000,
        "rows": rng.integers(0, 50, count),
        "n": rng.integers(0, 50, count).astype(float),
        "numerator": rng.normal(100, 10, count),
        "denominator": rng.integers(1, 50, count).astype(float),
        "suppressed": rng.random(count) < 0.2,
        "value": values,
        "centre": np.full(count, 10.0),
        "upper": np.full(count, 19.0),
        "lower": np.full(count, 1.0),
        "upper_2s": np.full(count, 16.0),
        "lower_2s": np.full(count, 4.0),
        "segment": np.repeat([0, 1], [count // 2, count - count // 2]),
        "signals": rng.integers(0, 256, count),
        "point_class": rng.integers(-1, 4, count),
    }


def test_a_blob_gives_back_every_column_exactly():
    points = _points(37, np.random.default_rng(1))
    columns = unpack_columns(pack_columns(points))
    for name, dtype in POINT_COLUMNS:
        np.testing.assert_array_equal(columns[name], np.asarray(points[name]).astype(dtype))


def test_blobs_cut_from_encoded_columns_equal_blobs_packed_one_by_one():
    points = _points(50, np.random.default_rng(2))
    encoded = encode_columns(points)
    for start, stop in ((0, 20), (20, 20), (20, 50)):
        part = {name: values[start:stop] for name, values in points.items()}
        assert blob_of(encoded, start, stop) == pack_columns(part)


def test_unit_sums_layout_round_trips():
    sums = {
        "unit_id": np.array([3, 7]),
        "rows": np.array([5, 0]),
        "n": np.array([5.0, 0.0]),
        "numerator": np.array([12.5, 0.0]),
        "denominator": np.array([5.0, 1.0]),
    }
    columns = unpack_columns(pack_columns(sums, UNIT_SUMS_COLUMNS), UNIT_SUMS_COLUMNS)
    assert columns["unit_id"].tolist() == [3, 7]
    assert columns["numerator"].tolist() == [12.5, 0.0]


def test_readers_get_dates_none_for_nan_and_names_for_codes():
    points = _points(3, np.random.default_rng(3))
    points["period"] = np.array([19723, 19730, 19737])  # 2024-01-01 and the next Mondays
    points["value"] = np.array([1.5, np.nan, 2.0])
    points["signals"] = np.array([0, 0b101, 0])
    points["point_class"] = np.array([0, 2, -1])
    lists = points_as_lists(pack_columns(points), ("a", "b", "c"), ("common", "x", "concern"))
    assert lists["period"] == ["2024-01-01", "2024-01-08", "2024-01-15"]
    assert lists["value"] == [1.5, None, 2.0]
    assert lists["signals"] == [[], ["a", "c"], []]
    assert lists["point_class"] == ["common", "concern", None]


def test_an_empty_blob_is_no_points_and_a_foreign_one_is_refused():
    assert all(len(values) == 0 for values in unpack_columns(b"").values())
    with pytest.raises(ValueError, match="not a series blob"):
        unpack_columns(b"JSON" + bytes(20))
    with pytest.raises(ValueError, match="column n has"):
        pack_columns({**_points(3, np.random.default_rng(4)), "n": np.zeros(2)})


@pytest.mark.parametrize("seed", range(5))
def test_packed_key_sort_orders_as_lexsort(seed):
    rng = np.random.default_rng(seed)
    size = 2000
    keys = (
        rng.integers(1, 40, size),
        rng.integers(0, 3, size),
        rng.integers(1, 3000, size),
        rng.integers(0, 3, size),
        rng.integers(-20000, 30000, size),  # days since 1970, before it too
    )
    expected = np.lexsort(tuple(reversed(keys)))
    np.testing.assert_array_equal(_sort_order(*keys), expected)
    # Keys too wide to pack into 63 bits fall back to lexsort.
    wide = (rng.integers(0, 2**40, size), rng.integers(0, 2**40, size))
    np.testing.assert_array_equal(_sort_order(*wide), np.lexsort(tuple(reversed(wide))))


def test_later_month_days_are_the_days_after_a_month_starts_within_a_week():
    first, last = date(2023, 12, 1), date(2025, 2, 28)
    expected, day = [], first
    while day <= last:
        monday = day - timedelta(days=day.weekday())
        if monday.month != day.month:
            expected.append(day.isoformat())
        day += timedelta(days=1)
    assert _later_month_days(first, last) == expected
    assert "2024-09-01" in expected  # a Sunday whose week began in August
    assert "2024-07-01" not in expected  # a Monday starts its own week

"""Compact binary form of a series' points and of a period's unit sums (pure: numpy only).

A full run writes ~6,500 series of ~100 points each. As JSON that was ~85 MB of text to
encode in Python and parse into ``jsonb`` on the server, which took longer than the SQL
aggregation itself (DESIGN.md §7). Stored instead as fixed-width little-endian columns they are
one ``tobytes`` per column to write and one ``frombuffer`` per column to read; readers get the
same column-wise dict as before through :func:`points_as_lists`.

Layout of a series blob: ``b"LHSP"``, a format byte, the point count (uint32), then each column
of :data:`POINT_COLUMNS` in order, ``count`` values of its dtype each. Adding a column means a
new format byte, so old rows stay readable until the next full run rewrites them.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

#: Column name → dtype, in blob order. ``period``: days since 1970-01-01 (the period's first
#: day); ``signals``: bit j = ``list(spc.Signal)[j]``; ``point_class``: index in
#: ``list(spc.PointClass)``, -1 for a missing point; NaN = not shown.
POINT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("period", "<i4"),
    ("rows", "<i8"),
    ("n", "<f8"),
    ("numerator", "<f8"),
    ("denominator", "<f8"),
    ("suppressed", "?"),
    ("value", "<f8"),
    ("centre", "<f8"),
    ("upper", "<f8"),
    ("lower", "<f8"),
    ("upper_2s", "<f8"),
    ("lower_2s", "<f8"),
    ("segment", "<i2"),
    ("signals", "u1"),
    ("point_class", "i1"),
)
POINT_BYTES = sum(np.dtype(dtype).itemsize for _name, dtype in POINT_COLUMNS)
_MAGIC = b"LHSP"
_FORMAT = 1
_HEADER = struct.Struct("<4sBI")

#: Unit sums of one (measure, grain, period): one entry per unit with data.
UNIT_SUMS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("unit_id", "<i8"),
    ("rows", "<i8"),
    ("n", "<f8"),
    ("numerator", "<f8"),
    ("denominator", "<f8"),
)
UNIT_SUMS_BYTES = sum(np.dtype(dtype).itemsize for _name, dtype in UNIT_SUMS_COLUMNS)

_EPOCH = np.datetime64("1970-01-01", "D")


def pack_columns(columns: Mapping[str, np.ndarray], layout=POINT_COLUMNS) -> bytes:
    """One blob from equally long arrays (cast to the layout's dtypes)."""
    count = len(columns[layout[0][0]])
    parts = [_HEADER.pack(_MAGIC, _FORMAT, count)]
    for name, dtype in layout:
        array = np.asarray(columns[name])
        if len(array) != count:
            raise ValueError(f"column {name} has {len(array)} values, expected {count}")
        parts.append(array.astype(dtype, copy=False).tobytes())
    return b"".join(parts)


def encode_columns(
    columns: Mapping[str, np.ndarray], layout=POINT_COLUMNS
) -> list[tuple[bytes, int]]:
    """Each column of many blobs at once, as (bytes, item size): cut them with :func:`blob_of`.

    Converting a column once and slicing the bytes per series is far cheaper than a numpy
    conversion per series and column.
    """
    return [
        (np.asarray(columns[name]).astype(dtype, copy=False).tobytes(), np.dtype(dtype).itemsize)
        for name, dtype in layout
    ]


def blob_of(encoded: list[tuple[bytes, int]], start: int, stop: int) -> bytes:
    """The blob of rows ``start:stop`` of columns encoded by :func:`encode_columns`."""
    return b"".join(
        [_HEADER.pack(_MAGIC, _FORMAT, stop - start)]
        + [data[start * size : stop * size] for data, size in encoded]
    )


def unpack_columns(blob: bytes | memoryview | None, layout=POINT_COLUMNS) -> dict[str, np.ndarray]:
    """The arrays of a blob (read-only views into it); empty arrays for no blob."""
    if not blob:
        return {name: np.empty(0, dtype=dtype) for name, dtype in layout}
    buffer = memoryview(blob)
    magic, version, count = _HEADER.unpack_from(buffer)
    if magic != _MAGIC or version != _FORMAT:
        raise ValueError(f"not a series blob of format {_FORMAT}")
    out: dict[str, np.ndarray] = {}
    offset = _HEADER.size
    for name, dtype in layout:
        out[name] = np.frombuffer(buffer, dtype=dtype, count=count, offset=offset)
        offset += out[name].nbytes
    return out


def periods_to_days(periods: np.ndarray) -> np.ndarray:
    return (periods.astype("datetime64[D]") - _EPOCH).astype("int64")


def days_to_periods(days: np.ndarray) -> np.ndarray:
    return _EPOCH + days.astype("int64").astype("timedelta64[D]")


def _floats(values: np.ndarray) -> list[float | None]:
    missing = np.isnan(values)
    if not missing.any():
        return values.tolist()
    out = values.astype(object)
    out[missing] = None
    return out.tolist()


def points_as_lists(
    blob: bytes | memoryview | None, signal_names: tuple[str, ...], class_names: tuple[str, ...]
) -> dict[str, list[Any]]:
    """The JSON-ready column-wise dict readers use: ISO dates, None for NaN, names for codes."""
    columns = unpack_columns(blob)
    out: dict[str, list[Any]] = {}
    for name, array in columns.items():
        if name == "period":
            out[name] = np.datetime_as_string(days_to_periods(array)).tolist()
        elif name == "signals":
            out[name] = [
                [signal_names[j] for j in range(len(signal_names)) if bits >> j & 1] if bits else []
                for bits in array.tolist()
            ]
        elif name == "point_class":
            out[name] = [class_names[c] if c >= 0 else None for c in array.tolist()]
        elif array.dtype.kind == "f":
            out[name] = _floats(array)
        else:
            out[name] = array.tolist()
    # Signal names sorted alphabetically per point, as the JSON form had them.
    out["signals"] = [sorted(names) for names in out["signals"]]
    return out

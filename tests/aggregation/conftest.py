"""Fixtures for the aggregation engine: observations written straight to the table."""

from __future__ import annotations

import itertools
from datetime import date

import pytest

from measures.aggregation import MeasureConfig
from measures.enums import ImportSource, ImportStatus
from measures.models import ImportBatch, Observation, Series

_hash = itertools.count(1)

#: A weekly proportion for the engine tests that build their input by hand.
MEASURE = MeasureConfig(
    id=7,
    code="p",
    kind="proportion",
    direction="up",
    frequency="week",
    scope="division",
    department_id=None,
    unit_id=None,
    minimum_n=5,
    target=None,
    rate_per=None,
    baseline_points=None,
    laney=False,
)


class Rows:
    """Adds observations to one batch, as the importer would store them."""

    def __init__(self, user):
        self.batch = ImportBatch.objects.create(
            uploaded_by=user,
            source=ImportSource.COMMAND,
            original_name="test.csv",
            checksum="-",
            status=ImportStatus.SUCCEEDED,
        )
        self.pending: list[Observation] = []

    def value(self, measure, unit, day: date, value: float, times: int = 1) -> Rows:
        """Patient-level rows (value; a proportion's 0/1, a count's events, a score)."""
        for _ in range(times):
            self.pending.append(
                Observation(
                    measure=measure,
                    unit=unit,
                    date=day,
                    row_hash=next(_hash),
                    value=value,
                    batch=self.batch,
                )
            )
        return self

    def aggregate(self, measure, unit, day: date, numerator: float, denominator=None) -> Rows:
        """One pre-aggregated row for a period (row_hash 0, as the importer stores it)."""
        self.pending.append(
            Observation(
                measure=measure,
                unit=unit,
                date=day,
                row_hash=0,
                numerator=numerator,
                denominator=denominator,
                batch=self.batch,
            )
        )
        return self

    def save(self) -> ImportBatch:
        Observation.objects.bulk_create(self.pending)
        self.pending = []
        return self.batch


@pytest.fixture
def rows(org):
    """A new batch of rows per call: ``rows().value(...).save()``."""
    return lambda: Rows(org.people["support"])


def series_of(measure, level: str, node, grain: str) -> Series:
    return Series.objects.get(measure=measure, node_key=f"{level}:{node.pk}", grain=grain)


def point(series: Series, period: str) -> dict:
    """One period of a stored series, every field (including what is suppressed)."""
    points = series.points
    i = points["period"].index(period)
    return {name: values[i] for name, values in points.items()}


@pytest.fixture
def eager_celery():
    """Tasks run in this process when enqueued (unit tests only; e2e uses a real worker)."""
    from lhs.celery import app

    before = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield app
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


@pytest.fixture(autouse=True)
def _plain_static(settings):
    """Pages render without a collectstatic manifest."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }

"""Incremental refresh after an import, tasks, the admin action and the command."""

from datetime import date, timedelta
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from measures.aggregation import series_recompute, series_refresh_units, touched_pairs
from measures.enums import ImportSource, ImportStatus
from measures.models import Series
from measures.services import import_batch_create, import_batch_process
from measures.tasks import series_recompute_all_task

from .conftest import point, series_of

pytestmark = pytest.mark.django_db

MONDAY = date(2024, 1, 1)


def _history(org, rows, weeks=20):
    honos, careplan = org.measures["honos"], org.measures["careplan"]
    batch = rows()
    for week in range(weeks):
        day = MONDAY + timedelta(weeks=week)
        for unit in (org.a1, org.a2, org.b1):
            batch.value(honos, unit, day, 10 + week % 4, times=6)
            batch.value(careplan, unit, day, week % 2, times=6)
    batch.save()
    series_recompute()
    return {s.pk: s.computed_at for s in Series.objects.all()}


def _import(org, text: str):
    upload = SimpleUploadedFile("week.csv", text.encode(), content_type="text/csv")
    batch = import_batch_create(
        user=org.people["support"], upload=upload, source=ImportSource.COMMAND, enqueue=False
    )
    return import_batch_process(batch_id=batch.pk)


def test_an_import_refreshes_exactly_the_series_it_touched(
    org, rows, eager_celery, django_capture_on_commit_callbacks
):
    before = _history(org, rows)
    honos = org.measures["honos"]
    new_week = (MONDAY + timedelta(weeks=20)).isoformat()
    lines = "".join(f"honos-total,AFF-01,{new_week},30,P{i}\n" for i in range(6))
    with django_capture_on_commit_callbacks(execute=True):
        batch = _import(org, "measure_code,unit_code,date,value,subject_key\n" + lines)
    assert batch.status == ImportStatus.SUCCEEDED
    assert touched_pairs(batch.pk) == {honos.pk: [org.a1.pk]}
    after = {s.pk: s for s in Series.objects.select_related("measure")}
    changed = {
        (s.measure.code, s.node_key, s.grain)
        for pk, s in after.items()
        if s.computed_at != before[pk]
    }
    assert changed == {
        ("honos-total", key, grain)
        for key in (
            f"unit:{org.a1.pk}",
            f"department:{org.dept_a.pk}",
            f"division:{org.division.pk}",
        )
        for grain in ("week", "month", "quarter")
    }
    assert set(after) == set(before)  # same rows, none added or lost
    weekly = series_of(honos, "unit", org.a1, "week")
    assert point(weekly, new_week)["value"] == 30
    division = point(series_of(honos, "division", org.division, "week"), new_week)
    assert division["value"] == 30 and division["n"] == 6


def test_incremental_equals_full_recomputation(org, rows):
    _history(org, rows)
    honos = org.measures["honos"]
    rows().value(honos, org.a2, MONDAY + timedelta(weeks=3), 45, times=9).value(
        honos, org.a2, MONDAY + timedelta(weeks=25), 1, times=2
    ).save()
    series_refresh_units(measure_id=honos.pk, unit_ids=[org.a2.pk])
    incremental = {
        (s.node_key, s.grain): (s.points, s.variation_icon, s.observation_count)
        for s in Series.objects.filter(measure=honos)
    }
    series_recompute(measure_ids=[honos.pk])
    full = {
        (s.node_key, s.grain): (s.points, s.variation_icon, s.observation_count)
        for s in Series.objects.filter(measure=honos)
    }
    assert incremental == full


def test_a_rejected_or_empty_import_enqueues_nothing(
    org, rows, eager_celery, django_capture_on_commit_callbacks
):
    before = _history(org, rows)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        batch = _import(
            org, "measure_code,unit_code,date,value\nhonos-total,AFF-01,2024-01-02,99\n"
        )
    assert batch.status == ImportStatus.REJECTED
    assert callbacks == []
    assert {s.pk: s.computed_at for s in Series.objects.all()} == before


def test_refresh_of_a_unit_whose_rows_are_gone_deletes_its_series(org, rows):
    honos = org.measures["honos"]
    batch = rows().value(honos, org.b1, MONDAY, 10, times=6).save()
    rows().value(honos, org.a1, MONDAY, 10, times=6).save()
    series_recompute()
    batch.observations.all().delete()
    series_refresh_units(measure_id=honos.pk, unit_ids=[org.b1.pk])
    keys = set(Series.objects.filter(measure=honos).values_list("node_key", flat=True))
    assert keys == {
        f"unit:{org.a1.pk}",
        f"department:{org.dept_a.pk}",
        f"division:{org.division.pk}",
    }


def test_the_nightly_task_recomputes_every_active_measure(org, rows, eager_celery, settings):
    settings.LHS_AGGREGATION_CHUNK_MEASURES = 2
    honos, careplan = org.measures["honos"], org.measures["careplan"]
    rows().value(honos, org.a1, MONDAY, 10, times=6).value(
        careplan, org.b1, MONDAY, 1, times=6
    ).save()
    assert series_recompute_all_task.delay().get() == 3  # 5 measures, 2 per chunk
    assert set(Series.objects.values_list("measure__code", flat=True)) == {
        "honos-total",
        "care-plan",
    }


def test_admin_action_recomputes_the_selected_measures(
    org, rows, client, eager_celery, django_capture_on_commit_callbacks
):
    honos, careplan = org.measures["honos"], org.measures["careplan"]
    rows().value(honos, org.a1, MONDAY, 10, times=6).value(
        careplan, org.b1, MONDAY, 1, times=6
    ).save()
    client.force_login(org.people["admin"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:measures_measure_changelist"),
            {"action": "recompute_series", "_selected_action": [honos.pk]},
            follow=True,
        )
    assert response.status_code == 200
    assert "queued" in response.content.decode()
    assert set(Series.objects.values_list("measure__code", flat=True)) == {"honos-total"}


def test_admin_action_is_for_admins_only(org, client):
    client.force_login(org.people["clinician"])
    response = client.post(
        reverse("admin:measures_measure_changelist"),
        {"action": "recompute_series", "_selected_action": [org.measures["honos"].pk]},
    )
    assert response.status_code == 302  # to the admin log-in
    assert not Series.objects.exists()


def test_command_recomputes_measures_and_units(org, rows):
    honos, careplan = org.measures["honos"], org.measures["careplan"]
    rows().value(honos, org.a1, MONDAY, 10, times=6).value(
        honos, org.b1, MONDAY, 10, times=6
    ).value(careplan, org.b1, MONDAY, 1, times=6).save()
    out = StringIO()
    call_command("aggregate", "--measure", "honos-total", stdout=out)
    assert "from 12 observations" in out.getvalue()
    assert set(Series.objects.values_list("measure__code", flat=True)) == {"honos-total"}
    Series.objects.all().delete()
    call_command("aggregate", "--unit", "psy-01", stdout=StringIO())  # codes: any case
    keys = set(Series.objects.values_list("measure__code", "node_key"))
    assert ("honos-total", f"unit:{org.b1.pk}") in keys
    assert ("care-plan", f"unit:{org.b1.pk}") in keys
    assert ("honos-total", f"unit:{org.a1.pk}") not in keys
    with pytest.raises(CommandError, match="nope"):
        call_command("aggregate", "--measure", "nope")
    with pytest.raises(CommandError, match="X-99"):
        call_command("aggregate", "--unit", "X-99")


def test_reverting_a_batch_refreshes_the_series_it_had_touched(
    org, rows, eager_celery, django_capture_on_commit_callbacks
):
    from measures.services import import_batch_revert

    _history(org, rows)
    honos = org.measures["honos"]
    new_week = (MONDAY + timedelta(weeks=20)).isoformat()
    lines = "".join(f"honos-total,AFF-01,{new_week},30,P{i}\n" for i in range(6))
    with django_capture_on_commit_callbacks(execute=True):
        batch = _import(org, "measure_code,unit_code,date,value,subject_key\n" + lines)
    assert new_week in series_of(honos, "division", org.division, "week").points["period"]
    with django_capture_on_commit_callbacks(execute=True):
        import_batch_revert(batch=batch, user=org.people["support"])
    division = series_of(honos, "division", org.division, "week")
    assert new_week not in division.points["period"]
    assert division.points["period"][-1] == (MONDAY + timedelta(weeks=19)).isoformat()
    # The unit's weekly series is back to its 20 weeks, as a full run would leave it.
    weekly = series_of(honos, "unit", org.a1, "week").points
    series_recompute(measure_ids=[honos.pk], force=True)
    assert series_of(honos, "unit", org.a1, "week").points == weekly

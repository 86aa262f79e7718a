"""The chart events the dashboards read (``unit_events``): PDSA cycles and local adoptions."""

from __future__ import annotations

from datetime import date

from initiatives.models import Activity
from initiatives.selectors import UnitEvent, unit_events
from initiatives.services import initiative_transition, pdsa_cycle_create

from .conftest import log


def _cycle(wf, idea, unit, start, measure=None, person="dept_chair"):
    return pdsa_cycle_create(
        user=wf.people[person],
        initiative=idea,
        unit=unit,
        measure=measure,
        plan="Plan",
        start_date=start,
    )


def test_pdsa_cycles_of_the_units_and_measures_asked_for(wf, django_assert_num_queries):
    honos, careplan = wf.measures["honos"], wf.measures["careplan"]
    idea = log(wf, "unit", title="Morning meeting")
    _cycle(wf, idea, wf.a1, date(2024, 5, 6), honos)
    _cycle(wf, idea, wf.a1, date(2024, 2, 5), None)  # every chart of a1
    _cycle(wf, idea, wf.a1, date(2024, 3, 4), careplan)  # not asked for
    _cycle(wf, idea, wf.a2, date(2024, 1, 8), honos)  # another unit
    with django_assert_num_queries(1):
        events = unit_events([wf.a1.pk], [honos.pk, wf.measures["incidents"].pk])
    assert events == [
        UnitEvent(wf.a1.pk, None, date(2024, 2, 5), "PDSA: Morning meeting", "pdsa"),
        UnitEvent(wf.a1.pk, honos.pk, date(2024, 5, 6), "PDSA: Morning meeting", "pdsa"),
    ]
    both = unit_events([wf.a1.pk, wf.a2.pk], [honos.pk])
    assert [(e.unit_id, e.date) for e in both] == [
        (wf.a2.pk, date(2024, 1, 8)),
        (wf.a1.pk, date(2024, 2, 5)),
        (wf.a1.pk, date(2024, 5, 6)),
    ]
    assert unit_events([], [honos.pk]) == [] and unit_events([wf.a1.pk], []) == []


def test_a_local_adoption_marks_the_forums_units_on_the_linked_measures(wf):
    honos, careplan, coercion = (wf.measures[k] for k in ("honos", "careplan", "coercion"))
    # A forum of two units; the adoption shows on both, for the linked measures only.
    forum = wf.forums["unit"]
    forum.units.add(wf.a2)
    linked = log(wf, "unit", title="Care plans", measures=[careplan, honos], origin_unit=wf.a1)
    unlinked = log(wf, "unit", title="Quiet room", origin_unit=wf.a1)
    for idea in (linked, unlinked):
        initiative_transition(initiative=idea, user=wf.people["chair"], transition="start_testing")
        activity = initiative_transition(
            initiative=idea, user=wf.people["chair"], transition="adopt_locally", comment="Yes."
        )
        Activity.objects.filter(pk=activity.pk).update(
            at=activity.at.replace(year=2024, month=6, day=3)
        )
    events = unit_events([wf.a2.pk], [careplan.pk, coercion.pk])
    assert events == [
        UnitEvent(wf.a2.pk, careplan.pk, date(2024, 6, 3), "Adopted: Care plans", "adoption"),
        UnitEvent(wf.a2.pk, None, date(2024, 6, 3), "Adopted: Quiet room", "adoption"),
    ]
    assert unit_events([wf.b1.pk], [careplan.pk]) == []


def test_the_dashboards_annotations_read_them(wf):
    from dashboards.annotations import unit_annotations

    honos, careplan = wf.measures["honos"], wf.measures["careplan"]
    idea = log(wf, "unit", title="Walks")
    _cycle(wf, idea, wf.a1, date(2024, 5, 6), honos)
    _cycle(wf, idea, wf.a1, date(2024, 6, 3))
    annotations = unit_annotations(wf.a1.pk, [honos, careplan])
    assert [a["date"] for a in annotations[honos.pk]] == ["2024-05-06", "2024-06-03"]
    assert annotations[careplan.pk] == [
        {"date": "2024-06-03", "label": "PDSA: Walks", "kind": "pdsa"}
    ]

"""The demo division: structure, people, data through the import path, determinism, reset."""

import re
from datetime import date, timedelta
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.db.models import Avg, Count, Max, Min, Sum
from django.test import RequestFactory

from demo.division import (
    DIVISION_CODE,
    INTERVENTIONS,
    MEASURES,
    PASSWORD,
    DemoError,
    demo_data,
    demo_end_date,
    demo_interventions,
    demo_load,
    demo_loaded_end,
)
from forums.enums import ForumKind, MembershipRole
from forums.models import Forum, Membership
from forums.rules import is_board_member, is_support_staff
from measures.enums import ImportSource, ImportStatus, MeasureKind, Scope
from measures.importing import scan_personal_numbers
from measures.models import ImportBatch, Measure, Observation, Series
from measures.rules import uploadable_units
from measures.spc import COLOURS, PointClass
from units.enums import UnitKind
from units.models import Affiliation, Department, Unit

from .conftest import page_specs

#: A fixed Sunday, so the tests do not depend on today's date.
END = date(2025, 6, 1)
#: 90 weeks at 15 % of the volume: ~25,000 rows, every intervention inside the window.
SMALL = {"weeks": 90, "scale": 0.15}


@pytest.fixture
def demo(db):
    return demo_load(end=END, **SMALL)


def _aggregates() -> dict:
    """Per measure: rows, value sums and spans, numerator and denominator sums, subjects.

    Sums are rounded: the database may add the same floats in another order.
    """
    rows = (
        Observation.objects.values("measure__code")
        .annotate(
            n=Count("pk"),
            value=Sum("value"),
            numerator=Sum("numerator"),
            denominator=Sum("denominator"),
            first=Min("date"),
            last=Max("date"),
            subjects=Count("subject_key", distinct=True),
        )
        .order_by("measure__code")
    )
    return {
        row.pop("measure__code"): {
            name: round(value, 6) if isinstance(value, float) else value
            for name, value in row.items()
        }
        for row in rows
    }


def _counts() -> dict[str, int]:
    return {
        "observations": Observation.objects.count(),
        "batches": ImportBatch.objects.count(),
        "users": get_user_model().objects.count(),
        "units": Unit.objects.count(),
        "forums": Forum.objects.count(),
        "memberships": Membership.objects.count(),
        "affiliations": Affiliation.objects.count(),
        "measures": Measure.objects.count(),
    }


def test_organisation(demo):
    departments = Department.objects.filter(division__code=DIVISION_CODE)
    assert departments.count() == 5
    assert "Ätstörningar" in {d.name for d in departments}
    units = Unit.objects.filter(department__division__code=DIVISION_CODE)
    assert units.count() >= 20
    assert {UnitKind.IN_PATIENT, UnitKind.OUT_PATIENT} <= set(units.values_list("kind", flat=True))
    assert all(d.units.count() >= 3 for d in departments)
    assert units.filter(name__regex="[åäöÅÄÖ]").count() >= 5
    assert demo.created and demo.units == units.count()


def test_measures_cover_every_kind_and_scope(demo):
    measures = Measure.objects.all()
    assert measures.count() >= 12
    assert set(measures.values_list("kind", flat=True)) == set(MeasureKind.values)
    assert set(measures.values_list("scope", flat=True)) == set(Scope.values)
    assert measures.filter(scope=Scope.UNIT).count() >= 2
    assert measures.filter(scope=Scope.DEPARTMENT).count() >= 2
    for measure in measures:
        measure.full_clean()
        assert len(measure.recording_handbook.split("\n\n")) >= 2, measure.code
        assert measure.description and measure.computation and measure.data_source
        assert measure.owner is not None
        assert measure.observations.exists(), measure.code
    rate = measures.get(code="coercion-rate")
    assert rate.rate_per == 1000 and rate.direction == "down"
    assert measures.get(code="care-plan").target == 90


def test_forums(demo):
    forums = Forum.objects.filter(division__code=DIVISION_CODE)
    units = Unit.objects.filter(department__division__code=DIVISION_CODE)
    unit_forums = forums.filter(kind=ForumKind.UNIT_FORUM)
    # Every unit has its data-analysis forum (a few share one).
    assert set(units.values_list("pk", flat=True)) == set(
        unit_forums.values_list("units", flat=True)
    )
    assert unit_forums.filter(units__isnull=False).distinct().count() < units.count()
    groups = forums.filter(kind=ForumKind.DEPARTMENT_GROUP)
    assert set(groups.values_list("department__code", flat=True)) == set(
        Department.objects.values_list("code", flat=True)
    )
    assert forums.filter(kind=ForumKind.SUPPORT_UNIT).count() == 1
    assert forums.filter(kind=ForumKind.DIVISION_BOARD).count() == 1
    roles = set(Membership.objects.values_list("role", flat=True))
    assert roles == set(MembershipRole.values)
    # Every forum but the unit forums of units without a local champion has a chair.
    for forum in forums.exclude(kind=ForumKind.UNIT_FORUM):
        assert forum.memberships.filter(role=MembershipRole.CHAIR).count() == 1, forum


def test_one_account_per_role(demo):
    users = {u.username: u for u in get_user_model().objects.all()}
    clinician, chair, deptchair = users["clinician"], users["chair"], users["deptchair"]
    support, board, admin = users["support"], users["board"], users["admin"]
    ward = Unit.objects.get(code="AFF-AVD1")

    assert list(clinician.units.all()) == [ward]
    assert not clinician.memberships.filter(role=MembershipRole.CHAIR).exists()
    assert not uploadable_units(clinician).exists()

    chaired = chair.memberships.get(role=MembershipRole.CHAIR).forum
    assert chaired.kind == ForumKind.UNIT_FORUM and list(chaired.units.all()) == [ward]
    assert chair.affiliations.get(unit=ward).is_first_line_manager
    assert list(uploadable_units(chair)) == [ward]

    group = deptchair.memberships.get(role=MembershipRole.CHAIR).forum
    assert group.kind == ForumKind.DEPARTMENT_GROUP and group.department == ward.department
    assert set(uploadable_units(deptchair)) == set(ward.department.units.all())

    assert is_support_staff(support) and not support.is_superuser
    assert is_board_member(board) and not is_support_staff(board)
    assert not board.memberships.filter(role=MembershipRole.CHAIR).exists()
    assert admin.is_superuser and admin.is_staff
    assert not any(u.is_staff for name, u in users.items() if name != "admin")

    assert {login.username for login in demo.logins} == {
        "clinician",
        "chair",
        "deptchair",
        "support",
        "board",
        "admin",
    }
    # django-axes checks every log-in against its throttle: it needs the request.
    login = RequestFactory().post("/accounts/login/")
    assert authenticate(login, username="clinician", password=PASSWORD) == clinician
    # And a handful of extra staff in the units.
    extra = Affiliation.objects.exclude(user__username__in=[x.username for x in demo.logins])
    assert extra.values("user").distinct().count() >= 4


def test_data_comes_through_the_import_path(demo):
    batches = ImportBatch.objects.order_by("pk")
    assert list(batches.values_list("pk", flat=True)) == demo.batches
    assert {b.status for b in batches} == {ImportStatus.SUCCEEDED}
    assert {b.source for b in batches} == {ImportSource.COMMAND}
    assert {b.uploaded_by.username for b in batches} == {"admin"}
    assert {b.shape for b in batches} == {"patient", "aggregate"}
    assert sum(b.rows_new for b in batches) == Observation.objects.count() == demo.observations
    assert 15_000 < demo.observations < 40_000
    # Nothing after the end, and the data spans the weeks asked for.
    span = Observation.objects.aggregate(first=Min("date"), last=Max("date"))
    assert span["last"] <= END
    assert span["first"] == END - timedelta(weeks=SMALL["weeks"], days=-1)
    assert demo_loaded_end() == END


def test_rows_are_valid_for_their_measure(demo):
    rates = Observation.objects.filter(measure__kind=MeasureKind.RATE)
    assert not rates.filter(value__isnull=False).exists()
    assert not rates.filter(denominator__lte=0).exists()
    weekly = rates.filter(measure__frequency="week").values_list("date", flat=True)
    monthly = rates.filter(measure__frequency="month").values_list("date", flat=True)
    assert weekly and all(day.weekday() == 0 for day in weekly)
    assert monthly and all(day.day == 1 for day in monthly)
    proportions = Observation.objects.filter(measure__kind=MeasureKind.PROPORTION)
    assert set(proportions.values_list("value", flat=True).distinct()) == {0.0, 1.0}
    for measure in Measure.objects.filter(kind=MeasureKind.MEAN):
        span = measure.observations.aggregate(low=Min("value"), high=Max("value"))
        assert measure.value_min <= span["low"] <= span["high"] <= measure.value_max
    # Local and department measures only have data from their own units.
    for measure in Measure.objects.exclude(scope=Scope.DIVISION):
        units = Unit.objects.filter(observations__measure=measure).distinct()
        owner = measure.owner_node
        expected = [owner] if measure.scope == Scope.UNIT else list(owner.units.all())
        assert set(units) <= set(expected), measure.code


def test_subject_keys_are_stored_only_as_hmacs(demo):
    keys = Observation.objects.exclude(subject_key=None).values_list("subject_key", flat=True)
    assert keys.count() > 10_000
    assert all(re.fullmatch("[0-9a-f]{32}", key) for key in keys.iterator())
    # Count measures (incidents, meetings) are not about one patient: no key at all.
    assert not Observation.objects.filter(
        measure__kind=MeasureKind.COUNT, subject_key__isnull=False
    ).exists()


def test_step_change_after_each_intervention(demo):
    interventions = demo_interventions(END)
    assert len(interventions) >= 3
    assert len({intervention.unit for intervention, _starts in interventions}) >= 3
    for intervention, starts in interventions:
        assert starts.weekday() == 0 and starts > END - timedelta(weeks=SMALL["weeks"])
        rows = Observation.objects.filter(
            measure__code=intervention.measure, unit__code=intervention.unit
        )
        before, after = rows.filter(date__lt=starts), rows.filter(date__gte=starts)
        if rows.first().measure.kind == MeasureKind.RATE:
            b, a = (q.aggregate(n=Sum("numerator"), d=Sum("denominator")) for q in (before, after))
            per = rows.first().measure.rate_per
            level_before, level_after = b["n"] / b["d"] * per, a["n"] / a["d"] * per
        else:
            level_before = before.aggregate(m=Avg("value"))["m"]
            level_after = after.aggregate(m=Avg("value"))["m"]
        change = intervention.after - intervention.before
        # At least half the designed step, in the designed direction.
        assert (level_after - level_before) / change > 0.5, intervention
    care_plan = next(i for i in INTERVENTIONS if i.measure == "care-plan")
    rows = Observation.objects.filter(measure__code="care-plan", unit__code=care_plan.unit)
    starts = care_plan.starts(END)
    before = rows.filter(date__lt=starts).aggregate(m=Avg("value"))["m"]
    after = rows.filter(date__gte=starts).aggregate(m=Avg("value"))["m"]
    assert after - before > 0.15


def test_deterministic_for_an_end_date(demo):
    first = _aggregates()
    again = demo_load(end=END, reset=True, **SMALL)
    assert again.created and again.batches != demo.batches
    assert _aggregates() == first
    assert ImportBatch.objects.count() == 2  # the reset removed the first load's batches


def test_idempotent(demo):
    counts, aggregates = _counts(), _aggregates()
    again = demo_load(end=END, **SMALL)
    assert not again.created and again.observations == 0
    assert again.end == END
    assert _counts() == counts
    assert _aggregates() == aggregates


def test_reset_with_another_end_moves_the_data(demo):
    later = END + timedelta(weeks=4)
    summary = demo_load(end=later, reset=True, **SMALL)
    assert summary.created
    assert Observation.objects.aggregate(last=Max("date"))["last"] <= later
    assert demo_loaded_end() == later
    assert Unit.objects.filter(department__division__code=DIVISION_CODE).count() == summary.units


def test_refuses_a_taken_code(db):
    Measure.objects.create(
        code="care-plan", name="Someone else's", kind="proportion", direction="up", scope="division"
    )
    with pytest.raises(DemoError, match="care-plan"):
        demo_load(end=END, **SMALL)
    assert not Unit.objects.exists()


def test_refuses_an_end_that_is_no_past_sunday(db):
    with pytest.raises(DemoError, match="Sunday"):
        demo_load(end=END + timedelta(days=1), **SMALL)
    with pytest.raises(DemoError, match="future"):
        demo_load(end=demo_end_date() + timedelta(weeks=2), **SMALL)
    assert not Unit.objects.exists()


def test_end_date_is_the_last_complete_week():
    assert demo_end_date(date(2025, 6, 2)) == date(2025, 6, 1)  # Monday → yesterday
    assert demo_end_date(date(2025, 6, 1)) == date(2025, 5, 25)  # Sunday → the week before
    assert demo_end_date(date(2025, 6, 5)) == date(2025, 6, 1)


def test_demo_data_is_pure_and_repeatable(tmp_path):
    one, two = demo_data(end=END, weeks=8), demo_data(end=END, weeks=8)
    assert one.patient.equals(two.patient) and one.aggregate.equals(two.aggregate)
    assert one.rows > 5_000
    assert one.patient["subject_key"].str.fullmatch(r"(P\d{6})?").all()
    codes = set(one.patient["measure_code"]) | set(one.aggregate["measure_code"])
    assert codes == {m.code for m in MEASURES}
    path = tmp_path / "rows.csv"
    one.patient.to_csv(path, index=False)

    class Layout:  # what the scanner needs of a file's layout
        separator = ","
        header = list(one.patient.columns)

    assert scan_personal_numbers(path, Layout()) == []


def test_command(db):
    out = StringIO()
    call_command("load_demo", end=END, weeks=4, stdout=out)
    assert "Demo division loaded" in out.getvalue()
    assert f"Demo log-ins (password: {PASSWORD})" in out.getvalue()
    assert "deptchair" in out.getvalue()
    rows = Observation.objects.count()

    out = StringIO()
    call_command("load_demo", stdout=out)
    assert "exists" in out.getvalue() and "Demo log-ins" in out.getvalue()
    assert Observation.objects.count() == rows


def test_reset_keeps_what_is_not_the_demo(db):
    other = Measure.objects.create(
        code="other-measure",
        name="Not the demo's",
        kind="count",
        direction="down",
        scope="division",
    )
    demo_load(end=END, reset=True, weeks=2, scale=0.1)  # no demo yet: nothing to delete
    demo_load(end=END, reset=True, weeks=2, scale=0.1)
    assert Measure.objects.filter(pk=other.pk).exists()
    assert Measure.objects.count() == len(MEASURES) + 1
    assert get_user_model().objects.filter(username="admin").count() == 1


def test_the_demo_comes_with_its_series_computed(demo):
    from measures.models import Measure, Series

    # Every demo measure has its series at its own frequency, at its owner's level at least.
    for measure in Measure.objects.all():
        assert Series.objects.filter(measure=measure, grain=measure.frequency).exists(), measure
    assert Series.objects.filter(level="division", measure__code="care-plan").exists()
    assert Series.objects.filter(level="unit", unit__code="AFF-AVD1").exists()


# --- the story the dashboards tell (issue 8) -------------------------------------------------


@pytest.fixture
def full_demo(db):
    """The demo as `make run` loads it (all weeks, full volume): what people are shown."""
    return demo_load(end=END)


def _unit_series(measure_code: str, unit_code: str, grain: str | None = None):
    measure = Measure.objects.get(code=measure_code)
    return Series.objects.get(
        measure=measure, unit__code=unit_code, level="unit", grain=grain or measure.frequency
    )


def test_story_a_step_change_after_each_dated_intervention(full_demo):
    """At the grain the dashboard opens with, each intervention's unit shows special causes of
    improvement after its date and (almost) none before: a step the chart makes visible."""
    interventions = demo_interventions(END)
    assert len({i.unit for i, _starts in interventions}) >= 3
    for intervention, starts in interventions:
        points = _unit_series(intervention.measure, intervention.unit).points
        classes = list(zip(points["period"], points["point_class"], strict=True))
        before = [c for p, c in classes if p < starts.isoformat() and c is not None]
        after = [c for p, c in classes if p >= starts.isoformat() and c is not None]
        assert len(before) >= 12 and len(after) >= 12, intervention
        assert before.count("improvement") <= 0.05 * len(before), (intervention, before)
        assert after.count("improvement") >= 0.25 * len(after), (intervention, after)
        # The improvement shows soon after the change, not only at the end.
        first = next(p for p, c in classes if p >= starts.isoformat() and c == "improvement")
        assert date.fromisoformat(first) - starts <= timedelta(weeks=12), (intervention, first)


def test_story_the_step_is_drawn_on_the_units_dashboard(client, full_demo):
    client.force_login(get_user_model().objects.get(username="clinician"))
    care_plan = next(i for i in INTERVENTIONS if i.measure == "care-plan")
    starts = care_plan.starts(END).isoformat()

    # The demo clinician lands on their ward, where the care-plan story happened.
    landing = client.get("/")
    assert landing.status_code == 302
    assert landing.url == f"/units/{care_plan.unit}/"
    spec = page_specs(client.get(landing.url).content, client)["spec-m-care-plan"]

    values = spec["data"][0]
    colours = values["marker"]["color"]
    assert isinstance(colours, list)
    blue = COLOURS[PointClass.IMPROVEMENT]
    after = [
        c for x, y, c in zip(values["x"], values["y"], colours, strict=True) if x >= starts and y
    ]
    before = [
        c for x, y, c in zip(values["x"], values["y"], colours, strict=True) if x < starts and y
    ]
    assert after.count(blue) > len(after) / 2
    assert before.count(blue) == 0


def test_story_a_unit_consistently_failing_its_target(full_demo):
    """The assurance icon says a target will not be met unless the process changes, at the
    grain the measure is shown in (so the unit's dashboard opens with it)."""
    failing = [
        s
        for s in Series.objects.filter(
            level="unit", assurance_icon="consistent_fail"
        ).select_related("measure", "unit")
        if s.grain == s.measure.frequency
    ]
    assert failing
    for series in failing:
        # Limits are in display units, as the target (a proportion's in %).
        target = float(series.measure.target)
        points = series.points
        last = max(i for i, u in enumerate(points["upper"]) if u is not None)
        # Both process limits on the wrong side of the target.
        if series.measure.direction == "up":
            assert points["upper"][last] < target, series
        else:
            assert points["lower"][last] > target, series


def test_story_a_local_measure_only_one_unit_has(client, full_demo):
    local = Measure.objects.filter(scope=Scope.UNIT)
    assert local.exists()
    client.force_login(get_user_model().objects.get(username="clinician"))
    for measure in local:
        units = set(
            Series.objects.filter(measure=measure, level="unit").values_list(
                "unit__code", flat=True
            )
        )
        assert units == {measure.unit.code}
        own = client.get(f"/units/{measure.unit.code}/").content.decode()
        assert f'id="m-{measure.code}"' in own and "local measure" in own
        neighbour = measure.unit.department.units.exclude(pk=measure.unit_id).first()
        other = client.get(f"/units/{neighbour.code}/").content.decode()
        assert f'id="m-{measure.code}"' not in other


def test_story_suppressed_small_periods_on_a_dashboard(client, full_demo):
    """Small periods are suppressed in the demo and shown as such, never as a number."""
    suppressed = [
        s
        for s in Series.objects.filter(level="unit").select_related("measure", "unit")
        if s.grain == s.measure.frequency and any(s.points["suppressed"])
    ]
    assert len(suppressed) >= 5
    # Most periods are still shown: the demo's units are not too small to have a chart.
    shown = [s for s in suppressed if sum(s.points["suppressed"]) < len(s.points["period"]) / 2]
    assert len(shown) >= 3
    series = shown[0]
    client.force_login(get_user_model().objects.get(username="clinician"))
    content = client.get(f"/units/{series.unit.code}/").content.decode()
    section = content.split(f'id="m-{series.measure.code}"', 1)[1].split("</section>", 1)[0]
    assert "period suppressed" in section or "periods suppressed" in section

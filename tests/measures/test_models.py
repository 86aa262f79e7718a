"""Measure definitions: validation rules and the history of changes (measures/models.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from measures.enums import Direction, Frequency, ImportStatus, MeasureKind, Scope
from measures.models import ImportBatch, Measure
from tests.factories import MeasureFactory

pytestmark = pytest.mark.django_db


def errors_of(measure: Measure) -> dict[str, list[str]]:
    try:
        measure.clean()
    except ValidationError as exc:
        return exc.message_dict
    return {}


def build(**fields) -> Measure:
    defaults = {
        "code": "new-measure",
        "name": "New measure",
        "kind": MeasureKind.MEAN,
        "direction": Direction.DOWN,
        "frequency": Frequency.MONTH,
        "scope": Scope.DIVISION,
        "face": "accountability",
    }
    return Measure(**{**defaults, **fields})


# --- Measure.clean -----------------------------------------------------------------------------


def test_a_plain_division_measure_is_valid(org):
    assert errors_of(build()) == {}


@pytest.mark.parametrize("target", ["0", "55.5", "100"])
def test_proportion_target_within_0_to_100(org, target):
    measure = build(kind=MeasureKind.PROPORTION, direction=Direction.UP, target=Decimal(target))

    assert errors_of(measure) == {}


@pytest.mark.parametrize("target", ["-0.1", "100.01", "150"])
def test_proportion_target_outside_0_to_100(org, target):
    measure = build(kind=MeasureKind.PROPORTION, direction=Direction.UP, target=Decimal(target))

    assert errors_of(measure) == {
        "target": ["A proportion's target is a percentage and must lie in 0–100 %."]
    }


def test_a_mean_target_above_100_is_fine(org):
    assert errors_of(build(kind=MeasureKind.MEAN, target=Decimal("120"))) == {}


@pytest.mark.parametrize("kind", [MeasureKind.COUNT, MeasureKind.RATE])
def test_count_and_rate_targets_are_not_negative(org, kind):
    measure = build(kind=kind, target=Decimal("-1"), rate_per=1000 if kind == "rate" else None)

    assert errors_of(measure) == {"target": ["A count or rate cannot have a negative target."]}


def test_unit_scoped_measure_must_name_its_unit(org):
    assert errors_of(build(scope=Scope.UNIT)) == {
        "unit": ["A unit-scoped (local) measure must name its unit."]
    }
    assert errors_of(build(scope=Scope.UNIT, unit=org.a1)) == {}


def test_unit_scoped_measure_is_not_owned_by_a_department(org):
    errors = errors_of(build(scope=Scope.UNIT, unit=org.a1, department=org.dept_a))

    assert errors == {
        "department": ["A unit-scoped measure is owned by its unit, not a department."]
    }


def test_department_scoped_measure_must_name_its_department(org):
    assert errors_of(build(scope=Scope.DEPARTMENT)) == {
        "department": ["A department-scoped measure must name its department."]
    }
    assert errors_of(build(scope=Scope.DEPARTMENT, department=org.dept_b)) == {}


def test_department_scoped_measure_is_not_owned_by_a_unit(org):
    errors = errors_of(build(scope=Scope.DEPARTMENT, department=org.dept_a, unit=org.a1))

    assert errors == {
        "unit": ["A department-scoped measure is owned by its department, not a unit."]
    }


@pytest.mark.parametrize("owner", ["unit", "department"])
def test_division_measure_names_no_owner_node(org, owner):
    node = {"unit": org.a1, "department": org.dept_a}[owner]

    assert errors_of(build(scope=Scope.DIVISION, **{owner: node})) == {
        "scope": ["A division-wide measure names neither a department nor a unit."]
    }


def test_rate_needs_rate_per(org):
    assert errors_of(build(kind=MeasureKind.RATE)) == {
        "rate_per": ["A rate needs its exposure base, e.g. 1000 for per 1,000 bed days."]
    }
    assert errors_of(build(kind=MeasureKind.RATE, rate_per=1000)) == {}


@pytest.mark.parametrize("kind", [MeasureKind.MEAN, MeasureKind.COUNT, MeasureKind.PROPORTION])
def test_only_a_rate_has_rate_per(org, kind):
    assert errors_of(build(kind=kind, rate_per=100)) == {
        "rate_per": ["Only a rate has an exposure base."]
    }


def test_a_target_needs_a_direction(org):
    assert errors_of(build(direction=Direction.NEITHER, target=Decimal("3"))) == {
        "target": ["A target needs an improvement direction (up or down)."]
    }
    assert errors_of(build(direction=Direction.NEITHER)) == {}


def test_value_range_must_be_ordered(org):
    assert errors_of(build(value_min=10, value_max=5)) == {
        "value_max": ["The highest valid value is below the lowest."]
    }
    assert errors_of(build(value_min=5, value_max=5)) == {}


def test_a_proportion_takes_no_value_range(org):
    measure = build(kind=MeasureKind.PROPORTION, direction=Direction.UP, value_max=1)

    assert errors_of(measure) == {
        "value_min": ["A proportion's rows are 0 or 1; it takes no value range."]
    }


def test_every_problem_is_reported_at_once(org):
    measure = build(
        kind=MeasureKind.PROPORTION,
        direction=Direction.NEITHER,
        target=Decimal("150"),
        rate_per=10,
        scope=Scope.UNIT,
    )

    assert set(errors_of(measure)) == {"target", "rate_per", "unit"}
    assert len(errors_of(measure)["target"]) == 2


def test_full_clean_also_checks_the_database_constraint(org):
    measure = build(scope=Scope.UNIT)

    with pytest.raises(ValidationError) as info:
        measure.full_clean()

    assert "unit" in info.value.message_dict


def test_database_refuses_a_unit_measure_without_its_unit(org):
    with pytest.raises(IntegrityError), transaction.atomic():
        build(scope=Scope.UNIT).save()


# --- immutability once data exists -------------------------------------------------------------


@pytest.fixture
def with_data(org, run_import):
    batch = run_import(org.people["chair"], "patient_level.csv")
    assert batch.status == ImportStatus.SUCCEEDED
    return org.measures["honos"]


def test_code_and_kind_change_freely_before_data(org):
    measure = org.measures["honos"]
    measure.code = "honos-renamed"
    measure.kind = MeasureKind.COUNT
    measure.value_min = measure.value_max = None

    assert errors_of(measure) == {}


def test_code_is_immutable_once_data_exists(with_data):
    with_data.code = "honos-renamed"

    assert errors_of(with_data) == {
        "code": ["The code cannot change once data has been imported for it."]
    }


def test_kind_is_immutable_once_data_exists(with_data):
    with_data.kind = MeasureKind.COUNT
    with_data.value_min = with_data.value_max = None

    assert errors_of(with_data) == {
        "kind": ["The kind cannot change once data has been imported for it."]
    }


def test_other_fields_change_once_data_exists(with_data):
    with_data.name = "HoNOS, total score"
    with_data.target = Decimal("10")

    assert errors_of(with_data) == {}


def test_has_data(org, with_data):
    assert with_data.has_data()
    assert not org.measures["coercion"].has_data()
    assert not build().has_data()


def test_a_measure_with_data_cannot_be_deleted(with_data):
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        with_data.delete()


def test_deleting_a_batch_deletes_its_rows(org, with_data):
    batch = ImportBatch.objects.get()

    batch.delete()

    assert not with_data.has_data()


# --- history ------------------------------------------------------------------------------------


def test_history_records_who_changed_what(org):
    measure = MeasureFactory(code="bed-days", target=None)
    admin = org.people["admin"]

    measure.target = Decimal("12.5")
    measure._history_user = admin
    measure.save()

    created, changed = measure.history.order_by("history_date")
    assert created.history_type == "+"
    assert changed.history_type == "~"
    assert changed.history_user == admin
    delta = changed.diff_against(created)
    assert [(c.field, c.old, c.new) for c in delta.changes] == [("target", None, Decimal("12.5"))]


def test_history_keeps_every_version(org):
    measure = org.measures["careplan"]
    for target in ("80", "85", "90"):
        measure.target = Decimal(target)
        measure.save()

    assert [h.target for h in measure.history.order_by("history_date")] == [
        None,
        Decimal("80"),
        Decimal("85"),
        Decimal("90"),
    ]

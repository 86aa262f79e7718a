"""Configuring measures in the Django admin: who may, and what stays fixed (measures/admin.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from measures.enums import ImportStatus
from measures.models import ImportBatch, Measure, Observation
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:measures_measure_changelist")
ADD = reverse("admin:measures_measure_add")


def change_url(measure: Measure) -> str:
    return reverse("admin:measures_measure_change", args=[measure.pk])


def form_data(org, url: str, **changes) -> dict:
    """What the admin's form at ``url`` posts as it stands (new fields included), with ``changes``.

    Read as the superuser, so that it also serves to post as someone who may not open it.
    """
    reader = Client()
    reader.force_login(org.people["admin"])
    form = reader.get(url).context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, bool):
            value = "on" if value else ""
        data[name] = "" if value is None else value
    data.update(changes)
    return data


def staff(*permissions: str):
    user = UserFactory(username="staffer", is_staff=True)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


# --- who may configure measures -------------------------------------------------------------


def test_superuser_configures_measures(client, org):
    client.force_login(org.people["admin"])

    assert client.get(CHANGELIST).status_code == 200
    assert client.get(ADD).status_code == 200
    assert client.get(change_url(org.measures["honos"])).status_code == 200


def test_staff_without_permissions_may_not(client, org):
    client.force_login(staff())

    assert client.get(CHANGELIST).status_code == 403
    assert client.get(ADD).status_code == 403
    assert client.get(change_url(org.measures["honos"])).status_code == 403
    response = client.post(
        change_url(org.measures["honos"]),
        form_data(org, change_url(org.measures["honos"]), name="Hacked"),
    )
    assert response.status_code == 403
    org.measures["honos"].refresh_from_db()
    assert org.measures["honos"].name == "HoNOS total"


def test_staff_with_view_permission_only_reads(client, org):
    client.force_login(staff("view_measure"))

    assert client.get(CHANGELIST).status_code == 200
    assert client.get(ADD).status_code == 403
    response = client.post(
        change_url(org.measures["honos"]),
        form_data(org, change_url(org.measures["honos"]), name="Hacked"),
    )
    assert response.status_code == 403
    org.measures["honos"].refresh_from_db()
    assert org.measures["honos"].name == "HoNOS total"


def test_staff_with_change_permission_changes_but_does_not_add(client, org):
    client.force_login(staff("change_measure"))
    measure = org.measures["careplan"]

    response = client.post(change_url(measure), form_data(org, change_url(measure), target="85"))

    assert response.status_code == 302
    measure.refresh_from_db()
    assert measure.target == Decimal("85")
    assert client.get(ADD).status_code == 403


@pytest.mark.parametrize("username", ["clinician", "support", "chair"])
def test_people_who_are_not_staff_are_sent_to_the_admin_login(client, org, username):
    client.force_login(org.people[username])

    response = client.get(CHANGELIST)

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_anonymous_is_sent_to_a_login_page(client, org):
    response = client.get(CHANGELIST)

    assert response.status_code == 302
    assert "login" in response.url


# --- what the admin validates and records -----------------------------------------------------


def test_add_refuses_an_invalid_measure_with_the_reasons(client, org):
    client.force_login(org.people["admin"])
    data = form_data(
        org,
        ADD,
        code="share-x",
        name="Share X",
        kind="proportion",
        direction="up",
        frequency="month",
        scope="unit",
        face="improvement",
        target="150",
    )

    response = client.post(ADD, data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["target"] == ["A proportion's target is a percentage and must lie in 0–100 %."]
    assert errors["unit"] == ["A unit-scoped (local) measure must name its unit."]
    assert not Measure.objects.filter(code="share-x").exists()


def test_add_a_local_measure(client, org):
    client.force_login(org.people["admin"])
    data = form_data(
        org,
        ADD,
        code="walks-2",
        name="Walks",
        kind="count",
        direction="up",
        frequency="week",
        scope="unit",
        face="improvement",
        unit=org.a2.pk,
    )

    response = client.post(ADD, data)

    assert response.status_code == 302
    assert Measure.objects.get(code="walks-2").unit == org.a2


def test_a_change_in_the_admin_is_in_the_history_with_who_made_it(client, org):
    client.force_login(org.people["admin"])
    measure = org.measures["careplan"]

    client.post(change_url(measure), form_data(org, change_url(measure), target="90"))

    latest = measure.history.latest("history_date")
    assert latest.history_user == org.people["admin"]
    assert latest.target == Decimal("90")
    history = client.get(reverse("admin:measures_measure_history", args=[measure.pk]))
    assert history.status_code == 200
    assert b"admin" in history.content


def test_code_and_kind_are_editable_before_data(client, org):
    client.force_login(org.people["admin"])

    response = client.get(change_url(org.measures["honos"]))

    assert b'name="code"' in response.content
    assert b'name="kind"' in response.content


def test_code_and_kind_are_read_only_once_data_exists(client, org, run_import):
    run_import(org.people["chair"], "patient_level.csv")
    client.force_login(org.people["admin"])
    measure = org.measures["honos"]

    page = client.get(change_url(measure))
    assert b'name="code"' not in page.content
    assert b'name="kind"' not in page.content
    assert b'name="name"' in page.content

    response = client.post(
        change_url(measure),
        form_data(org, change_url(measure), code="honos-renamed", kind="count", name="HoNOS"),
    )

    assert response.status_code == 302
    measure.refresh_from_db()
    assert (measure.code, measure.kind, measure.name) == ("honos-total", "mean", "HoNOS")


# --- import batches in the admin --------------------------------------------------------------


def test_batches_cannot_be_added_or_edited_in_the_admin(client, org, run_import):
    batch = run_import(org.people["chair"], "patient_level.csv")
    client.force_login(org.people["admin"])

    assert client.get(reverse("admin:measures_importbatch_add")).status_code == 403
    assert client.get(reverse("admin:measures_importbatch_changelist")).status_code == 200
    page = client.get(reverse("admin:measures_importbatch_change", args=[batch.pk]))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content


def test_admin_reverts_batches_with_the_action(client, org, run_import):
    batch = run_import(org.people["chair"], "patient_level.csv")
    rejected = run_import(org.people["chair"], "out_of_range.csv")
    client.force_login(org.people["admin"])

    response = client.post(
        reverse("admin:measures_importbatch_changelist"),
        {"action": "revert", "_selected_action": [batch.pk, rejected.pk]},
        follow=True,
    )

    assert response.status_code == 200
    batch.refresh_from_db()
    assert batch.status == ImportStatus.REVERTED
    assert Observation.objects.count() == 0
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [f"#{rejected.pk}: You may not revert this batch."]
    assert ImportBatch.objects.get(pk=rejected.pk).status == ImportStatus.REJECTED

"""The audit log: every recorded kind, the address, append-only, the retention purge."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection, transaction
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from measures.enums import ImportStatus
from measures.models import ImportBatch
from units.audit import audit_download, audit_events_purge, audit_record, client_address
from units.enums import AuditAction
from units.models import ApiToken, AuditEvent, AuditLogIsAppendOnly, Unit
from units.services import api_token_create, api_token_revoke
from units.tasks import audit_events_purge_task

pytestmark = pytest.mark.django_db

LOGIN = reverse("login")
CSV = (
    b"measure_code,unit_code,date,value\n"
    b"honos-total,AFF-01,2024-01-01,12\n"
    b"honos-total,AFF-01,2024-01-02,14\n"
)


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("pk"))


def admin_client(client_class, org):
    admin = client_class()
    admin.force_login(org.people["admin"])
    return admin


# --- log-ins ----------------------------------------------------------------------------------


def test_a_log_in_through_the_form_is_recorded_with_the_address(client, org):
    client.post(LOGIN, {"username": "chair", "password": "pw"}, REMOTE_ADDR="10.2.3.4")

    [event] = events(AuditAction.LOGIN)
    assert (event.actor_id, event.actor_name, event.ip_address) == (
        org.people["chair"].pk,
        "chair",
        "10.2.3.4",
    )
    assert timezone.now() - event.at < timedelta(seconds=30)


def test_a_log_out_is_recorded(client, org):
    client.force_login(org.people["chair"])

    client.post(reverse("logout"), REMOTE_ADDR="10.2.3.5")

    [event] = events(AuditAction.LOGOUT)
    assert (event.actor_name, event.ip_address) == ("chair", "10.2.3.5")


def test_a_failed_log_in_is_recorded_with_the_name_tried(client, org):
    client.post(LOGIN, {"username": "chair", "password": "nope"}, REMOTE_ADDR="10.2.3.6")
    client.post(LOGIN, {"username": "nobody", "password": "nope"}, REMOTE_ADDR="10.2.3.6")

    failed = events(AuditAction.LOGIN_FAILED)
    assert [(e.actor_id, e.target, e.ip_address) for e in failed] == [
        (None, "chair", "10.2.3.6"),
        (None, "nobody", "10.2.3.6"),
    ]
    assert not events(AuditAction.LOGIN)
    # The password tried is never stored.
    assert "nope" not in str([e.detail for e in failed])


def test_a_lockout_is_recorded(client, org):
    for n in range(settings.AXES_FAILURE_LIMIT):
        client.post(LOGIN, {"username": "chair", "password": f"x{n}"}, REMOTE_ADDR="10.2.3.7")

    [event] = events(AuditAction.LOCKOUT)
    assert (event.target, event.ip_address) == ("chair", "10.2.3.7")


def test_an_idle_logout_is_recorded(client, org):
    import time

    from units.signals import SESSION_LAST_ACTIVITY

    client.force_login(org.people["chair"])
    session = client.session
    session[SESSION_LAST_ACTIVITY] = int(time.time()) - 3600
    session.save()

    client.get(reverse("home"))

    [event] = events(AuditAction.SESSION_EXPIRED)
    assert event.actor_name == "chair"


# --- uploads, reverts, downloads --------------------------------------------------------------


def test_an_upload_through_the_page_is_recorded_with_the_address(client, org):
    client.force_login(org.people["chair"])

    response = client.post(
        reverse("measures:upload"),
        {"file": SimpleUploadedFile("honos.csv", CSV, content_type="text/csv")},
        REMOTE_ADDR="10.3.0.1",
    )

    assert response.status_code == 302
    batch = ImportBatch.objects.get()
    [event] = events(AuditAction.IMPORT_UPLOAD)
    assert (event.actor_name, event.target, event.ip_address) == (
        "chair",
        f"import batch {batch.pk}",
        "10.3.0.1",
    )


def test_an_upload_through_the_api_is_recorded(org):
    from rest_framework.test import APIClient

    _token, key = api_token_create(user=org.people["chair"], name="x")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")

    response = api.post(
        "/api/imports/",
        {"file": SimpleUploadedFile("honos.csv", CSV, content_type="text/csv")},
        format="multipart",
        REMOTE_ADDR="10.3.0.2",
    )

    assert response.status_code in (201, 202), response.content
    [event] = events(AuditAction.IMPORT_UPLOAD)
    assert (event.actor_name, event.ip_address) == ("chair", "10.3.0.2")


def test_a_revert_is_recorded(client, org):
    from measures.services import import_batch_create, import_batch_process

    batch = import_batch_create(
        user=org.people["support"],
        upload=SimpleUploadedFile("honos.csv", CSV, content_type="text/csv"),
        enqueue=False,
    )
    import_batch_process(batch_id=batch.pk)
    assert ImportBatch.objects.get(pk=batch.pk).status == ImportStatus.SUCCEEDED
    client.force_login(org.people["support"])

    response = client.post(
        reverse("measures:batch-revert", args=[batch.pk]), REMOTE_ADDR="10.3.0.3"
    )

    assert response.status_code == 302
    [event] = events(AuditAction.IMPORT_REVERT)
    assert (event.actor_name, event.target, event.ip_address) == (
        "support",
        f"import batch {batch.pk}",
        "10.3.0.3",
    )


def test_a_download_is_recorded_by_the_one_line_call(org):
    request = RequestFactory().get("/x", REMOTE_ADDR="10.3.0.4")
    request.user = org.people["clinician"]

    audit_download(request=request, target="import batch 7 file", detail={"bytes": 10})

    [event] = events(AuditAction.DOWNLOAD)
    assert (event.actor_name, event.target, event.detail, event.ip_address) == (
        "clinician",
        "import batch 7 file",
        {"bytes": 10},
        "10.3.0.4",
    )


# --- admin changes ----------------------------------------------------------------------------


def test_an_admin_change_to_a_unit_is_recorded_with_the_address(client, org):
    admin = admin_client(type(client), org)
    unit = org.a1
    change = reverse("admin:units_unit_change", args=[unit.pk])

    response = admin.post(
        change,
        {
            "department": unit.department_id,
            "code": unit.code,
            "name": "Avdelning 1 – nytt namn",
            "kind": unit.kind,
            "active": "on",
            "affiliations-TOTAL_FORMS": "0",
            "affiliations-INITIAL_FORMS": "0",
        },
        REMOTE_ADDR="10.4.0.1",
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    [event] = events(AuditAction.ADMIN_CHANGE)
    assert event.actor_name == "admin"
    assert event.target.startswith(f"units.unit:{unit.pk} ")
    assert event.ip_address == "10.4.0.1"
    assert "Name" in event.detail["change"]


def test_an_admin_change_to_a_measure_is_recorded(client, org):
    admin = admin_client(type(client), org)
    measure = org.measures["honos"]
    form = (
        admin.get(reverse("admin:measures_measure_change", args=[measure.pk]))
        .context["adminform"]
        .form
    )
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None or value is False:
            continue
        if hasattr(value, "pk"):
            value = value.pk
        data[name] = value
    data["name"] = "HoNOS totalpoäng"

    response = admin.post(reverse("admin:measures_measure_change", args=[measure.pk]), data)

    if response.status_code != 302:
        pytest.skip(f"the measure form wants more: {response.context['adminform'].form.errors}")
    [event] = events(AuditAction.ADMIN_CHANGE)
    assert event.target.startswith(f"measures.measure:{measure.pk} ")


def test_a_user_added_in_the_admin_is_recorded(client, org):
    admin = admin_client(type(client), org)

    response = admin.post(
        reverse("admin:auth_user_add"),
        {
            "username": "newperson",
            "password1": "ett-långt-lösenord",
            "password2": "ett-långt-lösenord",
            "usable_password": "true",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    [event] = events(AuditAction.ADMIN_ADD)
    assert event.target.startswith("auth.user:")
    assert event.target.endswith(" newperson")


def test_a_bulk_delete_in_the_admin_records_each_object(client, org):
    spare = [
        Unit.objects.create(
            department=org.dept_b, code=f"PSY-9{n}", name=f"Spare {n}", kind="other"
        )
        for n in range(3)
    ]
    admin = admin_client(type(client), org)

    response = admin.post(
        reverse("admin:units_unit_changelist"),
        {"action": "delete_selected", "_selected_action": [u.pk for u in spare], "post": "yes"},
    )

    assert response.status_code == 302
    assert not Unit.objects.filter(pk__in=[u.pk for u in spare]).exists()
    deleted = events(AuditAction.ADMIN_DELETE)
    assert sorted(e.target.split(" ")[0] for e in deleted) == sorted(
        f"units.unit:{u.pk}" for u in spare
    )


def test_a_single_delete_in_the_admin_is_recorded_once(client, org):
    spare = Unit.objects.create(department=org.dept_b, code="PSY-99", name="Spare", kind="other")
    admin = admin_client(type(client), org)

    admin.post(reverse("admin:units_unit_delete", args=[spare.pk]), {"post": "yes"})

    assert len(events(AuditAction.ADMIN_DELETE)) == 1


def test_the_delete_confirmation_page_records_nothing(client, org):
    spare = [
        Unit.objects.create(
            department=org.dept_b, code=f"PSY-8{n}", name=f"Spare {n}", kind="other"
        )
        for n in range(2)
    ]
    admin = admin_client(type(client), org)

    response = admin.post(
        reverse("admin:units_unit_changelist"),
        {"action": "delete_selected", "_selected_action": [u.pk for u in spare]},
    )

    assert response.status_code == 200
    assert not events(AuditAction.ADMIN_DELETE)


# --- tokens -----------------------------------------------------------------------------------


def test_token_creation_and_revocation_in_the_admin_are_recorded(client, org):
    admin = admin_client(type(client), org)

    admin.post(
        reverse("admin:units_apitoken_add"),
        {"user": org.people["support"].pk, "name": "extract"},
        REMOTE_ADDR="10.5.0.1",
    )
    token = ApiToken.objects.get()
    admin.post(
        reverse("admin:units_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
        REMOTE_ADDR="10.5.0.1",
    )

    [created] = events(AuditAction.TOKEN_CREATE)
    [revoked] = events(AuditAction.TOKEN_REVOKE)
    for event in (created, revoked):
        assert event.actor_name == "admin"
        assert event.ip_address == "10.5.0.1"
        assert event.target == f"units.apitoken:{token.pk} {token.key_prefix}"
        assert event.detail["owner"] == "support"
    # The key itself is never in the log.
    assert token.key_hash not in str(created.detail)


def test_create_api_token_command_is_recorded(org):
    call_command("create_api_token", "support", stdout=StringIO(), stderr=StringIO())

    [event] = events(AuditAction.TOKEN_CREATE)
    assert event.detail == {"owner": "support", "name": "scheduled extract"}


def test_revoking_twice_is_recorded_once(org):
    token, _key = api_token_create(user=org.people["support"], name="x")

    api_token_revoke(token=token, actor=org.people["admin"])
    api_token_revoke(token=token, actor=org.people["admin"])

    assert len(events(AuditAction.TOKEN_REVOKE)) == 1


def test_a_deactivation_is_recorded(client, org):
    admin = admin_client(type(client), org)

    admin.post(
        reverse("admin:auth_user_changelist"),
        {"action": "deactivate", "_selected_action": [org.people["chair"].pk]},
    )

    [event] = events(AuditAction.USER_DEACTIVATE)
    assert event.actor_name == "admin"
    assert event.target.endswith(" chair")


# --- the address ------------------------------------------------------------------------------


def test_x_forwarded_for_is_ignored_unless_the_proxy_is_trusted(settings):
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.9.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 192.0.2.7"
    )

    settings.LHS_TRUST_X_FORWARDED_FOR = False
    assert client_address(request) == "10.9.0.1"
    settings.LHS_TRUST_X_FORWARDED_FOR = True
    # The last hop is the one our proxy added; what the client sent before it is not trusted.
    assert client_address(request) == "192.0.2.7"


def test_a_lockout_behind_a_trusted_proxy_counts_the_client_not_the_proxy(client, org, settings):
    settings.LHS_TRUST_X_FORWARDED_FOR = True
    for n in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            LOGIN,
            {"username": f"someone{n}", "password": "x"},
            REMOTE_ADDR="10.0.0.254",
            HTTP_X_FORWARDED_FOR="192.0.2.50",
        )

    # Fresh clients: a logged-in one would be sent on without a log-in at all.
    other_client = type(client)().post(
        LOGIN,
        {"username": "chair", "password": "pw"},
        REMOTE_ADDR="10.0.0.254",
        HTTP_X_FORWARDED_FOR="192.0.2.51",
    )
    locked_client = type(client)().post(
        LOGIN,
        {"username": "clinician", "password": "pw"},
        REMOTE_ADDR="10.0.0.254",
        HTTP_X_FORWARDED_FOR="192.0.2.50",
    )

    assert other_client.status_code == 302
    assert locked_client.status_code == 429


# --- append-only ------------------------------------------------------------------------------


def test_an_event_cannot_be_changed_or_deleted_through_the_model(org):
    event = audit_record(actor=org.people["admin"], action=AuditAction.DOWNLOAD, target="x")

    event.target = "y"
    with pytest.raises(AuditLogIsAppendOnly):
        event.save()
    with pytest.raises(AuditLogIsAppendOnly):
        event.delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.filter(pk=event.pk).update(target="y")
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).target == "x"


def test_admins_see_the_log_read_only(client, org):
    event = audit_record(actor=org.people["chair"], action=AuditAction.DOWNLOAD, target="file 1")
    admin = admin_client(type(client), org)

    listing = admin.get(reverse("admin:units_auditevent_changelist"))
    detail = admin.get(reverse("admin:units_auditevent_change", args=[event.pk]))
    post = admin.post(
        reverse("admin:units_auditevent_change", args=[event.pk]), {"target": "edited"}
    )
    add = admin.get(reverse("admin:units_auditevent_add"))
    delete = admin.post(reverse("admin:units_auditevent_delete", args=[event.pk]), {"post": "yes"})

    assert listing.status_code == 200
    assert b"file 1" in listing.content
    assert b"delete_selected" not in listing.content
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content
    assert post.status_code == 403
    assert add.status_code == 403
    assert delete.status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).target == "file 1"


def test_no_permission_to_change_the_log_exists_to_grant(db):
    from django.contrib.auth.models import Permission

    codenames = set(
        Permission.objects.filter(
            content_type__app_label="units", content_type__model="auditevent"
        ).values_list("codename", flat=True)
    )

    assert codenames == {"view_auditevent"}


def test_people_without_the_view_permission_do_not_see_the_log(client, org):
    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.create_user("staffer", password="x", is_staff=True)
    client.force_login(staff)

    assert client.get(reverse("admin:units_auditevent_changelist")).status_code == 403


# --- retention --------------------------------------------------------------------------------


def _old_event(days: int) -> AuditEvent:
    return AuditEvent.objects.create(
        action=AuditAction.LOGIN, actor_name="old", at=timezone.now() - timedelta(days=days)
    )


def test_the_purge_removes_only_events_past_the_retention(db, settings):
    settings.LHS_AUDIT_RETENTION_DAYS = 1900
    kept = _old_event(1899)
    gone = _old_event(1901)

    deleted = audit_events_purge_task()

    assert deleted == 1
    assert AuditEvent.objects.filter(pk=kept.pk).exists()
    assert not AuditEvent.objects.filter(pk=gone.pk).exists()
    [purge] = events(AuditAction.AUDIT_PURGE)
    assert purge.detail == {"deleted": 1, "retention_days": 1900}


def test_the_default_retention_is_over_five_years():
    assert settings.LHS_AUDIT_RETENTION_DAYS >= 5 * 366


def test_the_purge_runs_daily_from_beat():
    entry = settings.CELERY_BEAT_SCHEDULE["purge-audit-events"]
    assert entry["task"] == "units.tasks.audit_events_purge_task"
    assert entry["schedule"].hour == {3}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
def test_postgresql_refuses_update_and_delete_outside_the_purge(db):
    from django.db import DatabaseError

    event = _old_event(10)
    for sql in (
        "UPDATE units_auditevent SET target = 'x' WHERE id = %s",
        "DELETE FROM units_auditevent WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.filter(pk=event.pk, target="").exists()
    # The purge may delete, and only inside its own transaction.
    _old_event(4000)
    assert audit_events_purge() == 1
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM units_auditevent WHERE id = %s", [event.pk])


def test_staff_given_the_view_permission_read_but_cannot_change(client, org):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    event = audit_record(actor=org.people["chair"], action=AuditAction.DOWNLOAD, target="f")
    auditor = get_user_model().objects.create_user("auditor", password="x", is_staff=True)
    auditor.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    client.force_login(auditor)

    assert client.get(reverse("admin:units_auditevent_changelist")).status_code == 200
    change = reverse("admin:units_auditevent_change", args=[event.pk])
    assert client.get(change).status_code == 200
    assert client.post(change, {"target": "edited"}).status_code == 403

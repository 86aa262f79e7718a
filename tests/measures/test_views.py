"""Pages for the measure catalogue and data import (measures/views.py), per role."""

from __future__ import annotations

import pytest
from django.urls import reverse

from measures.enums import ImportSource, ImportStatus
from measures.models import ImportBatch, Observation
from measures.services import import_batch_create

from .conftest import as_upload

pytestmark = pytest.mark.django_db

UPLOADERS = ["chair", "dept_chair", "support", "admin"]
NOT_UPLOADERS = ["clinician", "board", "outsider"]


@pytest.fixture
def batch(org, run_import):
    """A batch the unit chair imported."""
    return run_import(org.people["chair"], "patient_level.csv")


def login(client, user):
    client.force_login(user)
    return client


# --- anonymous: every page sends to the login page ------------------------------------------


@pytest.mark.parametrize(
    ("method", "name", "kwargs"),
    [
        ("get", "home", {}),
        ("get", "measures:catalogue", {}),
        ("get", "dashboards:measure", {"code": "honos-total"}),
        ("get", "measures:batch-list", {}),
        ("get", "measures:upload", {}),
        ("post", "measures:upload", {}),
        ("get", "measures:batch-detail", {"pk": 1}),
        ("get", "measures:batch-progress", {"pk": 1}),
        ("post", "measures:batch-revert", {"pk": 1}),
    ],
)
def test_anonymous_is_sent_to_the_login_page(client, org, method, name, kwargs):
    url = reverse(name, kwargs=kwargs)

    response = getattr(client, method)(url)

    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={url}"


def test_anonymous_htmx_request_is_not_answered_with_data(client, org, batch):
    url = reverse("measures:batch-progress", kwargs={"pk": batch.pk})

    response = client.get(
        url, headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/measures/"}
    )

    # HTMX is told to load the log-in page as a whole page, not swap it into the fragment.
    assert response.status_code == 200
    assert response.content == b""
    assert response["HX-Redirect"] == f"{reverse('login')}?next=%2Fmeasures%2F"


def test_login_page_is_open(client, db):
    response = client.get(reverse("login"))

    assert response.status_code == 200
    assert b'name="password"' in response.content


def test_logging_in_leads_home(client, org):
    response = client.post(reverse("login"), {"username": "clinician", "password": "pw"})

    assert response.status_code == 302
    assert response.url == reverse("home")


# --- catalogue and home ---------------------------------------------------------------------


@pytest.mark.parametrize("username", ["clinician", "board", "outsider", "support", "admin"])
def test_everyone_logged_in_reads_the_catalogue(client, org, username):
    login(client, org.people[username])

    response = client.get(reverse("measures:catalogue"))

    assert response.status_code == 200
    for measure in org.measures.values():
        assert measure.code.encode() in response.content


def test_measure_detail(client, org):
    login(client, org.people["clinician"])

    response = client.get(reverse("dashboards:measure", kwargs={"code": "coercion"}))

    assert response.status_code == 200
    assert b"Coercive measures per 1,000 bed days" in response.content
    assert b"per 1000" in response.content


def test_measure_detail_names_the_contact_person(client, org):
    measure = org.measures["honos"]
    measure.owner = org.people["support"]
    measure.owner.first_name, measure.owner.last_name = "Åsa", "Öberg"
    measure.owner.save()
    measure.save()
    login(client, org.people["clinician"])

    response = client.get(reverse("dashboards:measure", kwargs={"code": "honos-total"}))

    assert "Åsa Öberg" in response.content.decode()


def test_unknown_measure_is_404(client, org):
    login(client, org.people["clinician"])

    assert client.get(reverse("dashboards:measure", kwargs={"code": "nope"})).status_code == 404


def test_home_lists_the_users_units_with_swedish_names(client, org):
    login(client, org.people["clinician"])

    # Home sends the clinician to their unit's dashboard; the chooser lists every unit.
    assert client.get(reverse("home")).url == reverse("dashboards:unit", args=["AFF-01"])
    response = client.get(reverse("home") + "?choose=1")

    assert response.status_code == 200
    assert "Avdelning 1 – Ångest" in response.content.decode()
    assert "Öppenvård Ätstörning" in response.content.decode()


@pytest.mark.parametrize(
    ("username", "shown"),
    [("chair", True), ("support", True), ("clinician", False), ("board", False)],
)
def test_import_link_only_for_uploaders(client, org, username, shown):
    login(client, org.people[username])

    response = client.get(reverse("home") + "?choose=1")

    assert response.status_code == 200
    assert (reverse("measures:upload").encode() in response.content) is shown


# --- upload page ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "units"),
    [
        ("chair", ["AFF-01"]),
        ("dept_chair", ["AFF-01", "AFF-02"]),
        ("support", ["AFF-01", "AFF-02", "PSY-01"]),
        ("admin", ["AFF-01", "AFF-02", "PSY-01"]),
    ],
)
def test_upload_page_lists_the_units_one_may_import_for(client, org, username, units):
    login(client, org.people[username])

    response = client.get(reverse("measures:upload"))

    assert response.status_code == 200
    assert list(response.context["units"].values_list("code", flat=True)) == units
    assert b'enctype="multipart/form-data"' in response.content


@pytest.mark.parametrize("username", NOT_UPLOADERS)
def test_upload_page_is_forbidden_without_upload_rights(client, org, username):
    login(client, org.people[username])

    assert client.get(reverse("measures:upload")).status_code == 403
    response = client.post(reverse("measures:upload"), {"file": as_upload("patient_level.csv")})
    assert response.status_code == 403
    assert ImportBatch.objects.count() == 0


def test_a_member_who_does_not_chair_may_not_upload(client, org):
    # The clinician sits on the unit forum, but not as chair.
    login(client, org.people["clinician"])

    assert client.get(reverse("measures:upload")).status_code == 403


@pytest.mark.parametrize("username", UPLOADERS)
def test_upload_creates_a_queued_batch_and_shows_it(
    client, org, username, django_capture_on_commit_callbacks
):
    login(client, org.people[username])

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("measures:upload"), {"file": as_upload("patient_level.csv")})

    batch = ImportBatch.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("measures:batch-detail", kwargs={"pk": batch.pk})
    assert batch.uploaded_by == org.people[username]
    assert batch.source == ImportSource.UPLOAD
    assert batch.status == ImportStatus.QUEUED
    assert len(callbacks) == 1  # the import is queued once the batch is committed


def test_upload_is_imported_in_the_background(
    client, org, celery_eager, django_capture_on_commit_callbacks
):
    login(client, org.people["chair"])

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("measures:upload"), {"file": as_upload("patient_level.csv")}, follow=True
        )

    assert response.status_code == 200
    batch = ImportBatch.objects.get()
    assert batch.status == ImportStatus.SUCCEEDED
    assert Observation.objects.count() == 9


def test_upload_keeps_the_uploaders_language_for_the_report(client, org):
    login(client, org.people["chair"])

    client.post(
        reverse("measures:upload"),
        {"file": as_upload("patient_level.csv")},
        headers={"accept-language": "sv"},
    )

    assert ImportBatch.objects.get().language == "sv"


def test_upload_without_a_file_shows_the_form_again(client, org):
    login(client, org.people["chair"])

    response = client.post(reverse("measures:upload"), {})

    assert response.status_code == 200
    assert response.context["form"].errors == {"file": ["This field is required."]}
    assert ImportBatch.objects.count() == 0


def test_an_empty_file_is_refused_on_the_page(client, org):
    login(client, org.people["chair"])

    response = client.post(reverse("measures:upload"), {"file": as_upload("empty.csv")})

    assert response.status_code == 200
    assert ImportBatch.objects.count() == 0
    assert "file" in response.context["form"].errors


def test_too_large_file_is_refused_on_the_page(client, org, settings):
    settings.LHS_IMPORT_MAX_BYTES = 50
    login(client, org.people["chair"])

    response = client.post(reverse("measures:upload"), {"file": as_upload("patient_level.csv")})

    assert response.status_code == 200
    assert "largest accepted" in response.content.decode()
    assert ImportBatch.objects.count() == 0


def test_repeated_upload_post_makes_a_duplicate_batch_that_adds_nothing(
    client, org, celery_eager, django_capture_on_commit_callbacks
):
    login(client, org.people["chair"])

    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            client.post(reverse("measures:upload"), {"file": as_upload("patient_level.csv")})

    first, second = ImportBatch.objects.order_by("pk")
    assert (first.rows_new, second.rows_new, second.rows_existing) == (9, 0, 9)
    assert second.duplicate_of == first
    assert Observation.objects.count() == 9


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_upload_answers_only_get_and_post(client, org, method):
    login(client, org.people["chair"])

    assert getattr(client, method)(reverse("measures:upload")).status_code == 405


def test_upload_page_needs_the_csrf_token(org):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(org.people["chair"])

    response = client.post(reverse("measures:upload"), {"file": as_upload("patient_level.csv")})

    assert response.status_code == 403
    assert ImportBatch.objects.count() == 0


# --- batch list and detail ----------------------------------------------------------------------


def test_batch_list_shows_only_ones_own_batches(client, org, batch, run_import, other_chair):
    others = run_import(other_chair, "swedish_headers.csv")  # AFF-01: rejected, still listed
    login(client, org.people["chair"])

    response = client.get(reverse("measures:batch-list"))

    assert response.status_code == 200
    assert [b.pk for b in response.context["batches"]] == [batch.pk]
    assert others.pk != batch.pk


@pytest.mark.parametrize("username", ["support", "admin"])
def test_support_and_admins_list_every_batch(client, org, batch, run_import, other_chair, username):
    other = run_import(other_chair, "swedish_headers.csv")
    login(client, org.people[username])

    response = client.get(reverse("measures:batch-list"))

    assert {b.pk for b in response.context["batches"]} == {batch.pk, other.pk}


@pytest.mark.parametrize("username", ["clinician", "board", "outsider"])
def test_batch_list_is_empty_for_others(client, org, batch, username):
    login(client, org.people[username])

    response = client.get(reverse("measures:batch-list"))

    assert response.status_code == 200
    assert list(response.context["batches"]) == []


@pytest.mark.parametrize(
    ("username", "status"),
    [
        ("chair", 200),
        ("support", 200),
        ("admin", 200),
        ("other_chair", 404),
        ("dept_chair", 404),
        ("clinician", 404),
        ("board", 404),
        ("outsider", 404),
    ],
)
def test_batch_detail_permissions(client, org, batch, other_chair, username, status):
    user = other_chair if username == "other_chair" else org.people[username]
    login(client, user)

    response = client.get(reverse("measures:batch-detail", kwargs={"pk": batch.pk}))

    assert response.status_code == status
    progress = client.get(reverse("measures:batch-progress", kwargs={"pk": batch.pk}))
    assert progress.status_code == status


def test_batch_detail_shows_the_counts(client, org, batch):
    login(client, org.people["chair"])

    response = client.get(reverse("measures:batch-detail", kwargs={"pk": batch.pk}))
    html = response.content.decode()

    assert '<dd id="rows-total">9</dd>' in html
    assert '<dd id="rows-new">9</dd>' in html
    assert "9 new rows imported; 0 were already present." in html
    assert 'id="error-report"' not in html
    assert "hx-get" not in html  # finished: nothing to poll
    assert response.context["can_revert"] is False  # the chair does not revert


def test_rejected_batch_shows_every_problem(client, org, run_import):
    batch = run_import(org.people["support"], "many_problems.csv")
    login(client, org.people["support"])

    response = client.get(reverse("measures:batch-detail", kwargs={"pk": batch.pk}))
    html = response.content.decode()

    assert response.status_code == 200
    assert 'id="error-report"' in html
    assert "8 problems" in html
    assert html.count('<tr><td class="num">') == 8
    assert "Unknown measure &#x27;nope&#x27;." in html
    assert "Unknown unit &#x27;NOPE-1&#x27;." in html
    assert "outside the valid range of honos-total (0 to 48)" in html
    assert "nothing was imported" in html
    assert response.context["can_revert"] is False


def test_personnummer_is_not_shown_on_the_page(client, org, run_import):
    batch = run_import(org.people["support"], "personnummer.csv")
    login(client, org.people["support"])

    html = client.get(reverse("measures:batch-detail", kwargs={"pk": batch.pk})).content.decode()

    assert "personal identity number" in html
    assert "19121212-1212" not in html
    assert "1212121212" not in html


def test_batch_detail_of_a_missing_batch_is_404(client, org):
    login(client, org.people["support"])

    assert client.get(reverse("measures:batch-detail", kwargs={"pk": 999})).status_code == 404


# --- progress fragment ------------------------------------------------------------------------


@pytest.fixture
def queued(org):
    return import_batch_create(
        user=org.people["chair"], upload=as_upload("patient_level.csv"), enqueue=False
    )


def test_progress_fragment_keeps_polling_while_queued(client, org, queued):
    login(client, org.people["chair"])
    url = reverse("measures:batch-progress", kwargs={"pk": queued.pk})

    response = client.get(url, headers={"HX-Request": "true"})

    assert response.status_code == 200
    html = response.content.decode()
    assert f'hx-get="{url}"' in html
    assert "Queued" in html


def test_progress_fragment_while_running(client, org, queued):
    ImportBatch.objects.filter(pk=queued.pk).update(status=ImportStatus.RUNNING)
    login(client, org.people["chair"])

    response = client.get(
        reverse("measures:batch-progress", kwargs={"pk": queued.pk}),
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 200
    assert "rows checked" in response.content.decode()


def test_progress_fragment_says_stop_when_finished(client, org, batch):
    login(client, org.people["chair"])

    response = client.get(
        reverse("measures:batch-progress", kwargs={"pk": batch.pk}),
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 286
    assert response["HX-Refresh"] == "true"


def test_progress_fragment_without_htmx_is_plain(client, org, batch):
    login(client, org.people["chair"])

    response = client.get(reverse("measures:batch-progress", kwargs={"pk": batch.pk}))

    assert response.status_code == 200
    assert "Imported" in response.content.decode()
    assert "hx-get" not in response.content.decode()


# --- revert ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["support", "admin"])
def test_support_reverts_from_the_page(client, org, batch, username):
    login(client, org.people[username])
    detail = client.get(reverse("measures:batch-detail", kwargs={"pk": batch.pk}))
    assert detail.context["can_revert"] is True

    response = client.post(reverse("measures:batch-revert", kwargs={"pk": batch.pk}), follow=True)

    assert response.redirect_chain == [
        (reverse("measures:batch-detail", kwargs={"pk": batch.pk}), 302)
    ]
    assert "9 rows removed." in response.content.decode()
    batch.refresh_from_db()
    assert batch.status == ImportStatus.REVERTED
    assert Observation.objects.count() == 0


def test_revert_by_get_is_not_allowed(client, org, batch):
    login(client, org.people["support"])

    response = client.get(reverse("measures:batch-revert", kwargs={"pk": batch.pk}))

    assert response.status_code == 405
    assert Observation.objects.count() == 9


def test_repeated_revert_post_changes_nothing_more(client, org, batch, run_import):
    login(client, org.people["support"])
    url = reverse("measures:batch-revert", kwargs={"pk": batch.pk})
    client.post(url)
    # The same rows, imported afresh by another batch, must survive a second click.
    again = run_import(org.people["chair"], "patient_level.csv")
    assert again.rows_new == 9

    response = client.post(url)

    assert response.status_code == 403
    batch.refresh_from_db()
    assert batch.status == ImportStatus.REVERTED
    assert Observation.objects.count() == 9


def test_the_uploader_may_not_revert(client, org, batch):
    login(client, org.people["chair"])

    response = client.post(reverse("measures:batch-revert", kwargs={"pk": batch.pk}))

    assert response.status_code == 403
    assert Observation.objects.count() == 9


@pytest.mark.parametrize("username", ["dept_chair", "clinician", "board", "outsider"])
def test_others_cannot_even_see_the_batch_to_revert(client, org, batch, username):
    login(client, org.people[username])

    response = client.post(reverse("measures:batch-revert", kwargs={"pk": batch.pk}))

    assert response.status_code == 404
    assert Observation.objects.count() == 9


def test_a_rejected_batch_cannot_be_reverted(client, org, run_import):
    batch = run_import(org.people["chair"], "out_of_range.csv")
    login(client, org.people["support"])

    response = client.post(reverse("measures:batch-revert", kwargs={"pk": batch.pk}))

    assert response.status_code == 403
    batch.refresh_from_db()
    assert batch.status == ImportStatus.REJECTED


def test_measure_page_shows_who_changed_the_definition(client, org):
    from measures.models import Measure
    from measures.selectors import measure_history

    measure = org.measures["careplan"]
    admin = org.people["admin"]
    measure.target = 90
    measure._history_user = admin
    measure.save()
    client.force_login(org.people["clinician"])

    response = client.get(f"/measures/{measure.code}/")

    assert response.status_code == 200
    # The page is cached whole, so its context holds the history as a callable (not run on a
    # cached request): what it renders is checked below, what it lists here.
    history = measure_history(measure)
    assert history[0]["who"] == admin
    assert [f["field"] for f in history[0]["fields"]] == [
        Measure._meta.get_field("target").verbose_name
    ]
    assert history[0]["fields"][0]["new"] == 90
    assert history[-1]["created"] is True
    page = response.content.decode()
    assert "admin" in page
    assert f"{Measure._meta.get_field('target').verbose_name}: <del>" in page

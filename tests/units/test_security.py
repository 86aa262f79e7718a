"""Log-in throttling, passwords, idle sessions, deactivation, no-store, environment booleans."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from lhs.middleware import PrivateNoStoreMiddleware
from units.models import ApiToken
from units.services import api_token_create, user_deactivate, user_sessions_end
from units.signals import SESSION_LAST_ACTIVITY

pytestmark = pytest.mark.django_db

LOGIN = reverse("login")
# The chooser: a page every logged-in person gets as 200 (``/`` itself now redirects to the
# person's dashboard), so a 302 from it means the session was refused.
HOME = reverse("home") + "?choose=1"
PASSWORD = "pw"  # tests/factories.py


def log_in(client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


# --- log-in throttling (django-axes) ----------------------------------------------------------


def test_thirty_wrong_passwords_are_not_all_answered_normally(client, org):
    answers = [log_in(client, "chair", f"wrong-{n}").status_code for n in range(30)]

    # The form answers 200 with an error until the limit, then the lock-out page.
    assert answers[: settings.AXES_FAILURE_LIMIT - 1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)
    assert answers[settings.AXES_FAILURE_LIMIT :] == [429] * (30 - settings.AXES_FAILURE_LIMIT)


def test_the_right_password_during_a_lockout_is_refused(client, org):
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "chair", f"wrong-{n}")

    response = log_in(client, "chair", PASSWORD)

    assert response.status_code == 429
    assert not logged_in(client)
    assert b"Too many failed log-ins" in response.content
    assert b"locked for 15 minutes" in response.content


def test_a_lockout_is_per_account_from_any_address(client, org):
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "chair", f"wrong-{n}", address=f"10.0.0.{n + 1}")

    assert log_in(client, "chair", PASSWORD, address="10.0.9.9").status_code == 429
    # Another account from another address is not affected.
    assert log_in(client, "clinician", PASSWORD, address="10.0.9.8").status_code == 302


def test_a_lockout_is_per_address_across_accounts(client, org):
    names = ["clinician", "support", "board", "outsider", "dept_chair"]
    for name in names[: settings.AXES_FAILURE_LIMIT]:
        log_in(client, name, "wrong", address="10.1.1.1")

    assert log_in(client, "chair", PASSWORD, address="10.1.1.1").status_code == 429
    assert not logged_in(client)
    # The same account from another address still logs in.
    assert log_in(client, "chair", PASSWORD, address="10.1.1.2").status_code == 302


def test_fewer_failures_than_the_limit_do_not_lock(client, org):
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, "chair", f"wrong-{n}")

    assert log_in(client, "chair", PASSWORD).status_code == 302
    assert logged_in(client)


def test_the_lockout_page_speaks_swedish(client, org):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "sv"
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "chair", f"wrong-{n}")

    response = log_in(client, "chair", PASSWORD)

    assert response.status_code == 429
    assert b'lang="sv"' in response.content
    catalog = settings.BASE_DIR / "locale" / "sv" / "LC_MESSAGES" / "django.mo"
    swedish = "För många misslyckade inloggningar".encode()
    if catalog.exists() and swedish in catalog.read_bytes():
        assert swedish in response.content


def test_an_admin_unlocks_an_account_in_the_admin(client, org):
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "chair", f"wrong-{n}")
    assert log_in(client, "chair", PASSWORD).status_code == 429
    admin = type(client)()
    admin.force_login(org.people["admin"])
    attempts = list(AccessAttempt.objects.filter(username="chair").values_list("pk", flat=True))
    assert attempts

    response = admin.post(
        reverse("admin:axes_accessattempt_changelist"),
        {"action": "delete_selected", "_selected_action": attempts, "post": "yes"},
    )

    assert response.status_code == 302
    assert not AccessAttempt.objects.filter(username="chair").exists()
    assert log_in(client, "chair", PASSWORD).status_code == 302
    assert logged_in(client)


def test_axes_reset_username_unlocks_an_account(client, org):
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "chair", f"wrong-{n}")
    assert log_in(client, "chair", PASSWORD).status_code == 429

    call_command("axes_reset_username", "chair", stdout=open(os.devnull, "w"))  # noqa: SIM115

    assert log_in(client, "chair", PASSWORD).status_code == 302


def test_the_lockout_expires_after_the_cool_off(client, org, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "chair", f"wrong-{n}")
    assert log_in(client, "chair", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(seconds=5))

    assert log_in(client, "chair", PASSWORD).status_code == 302


def test_the_demo_password_still_logs_in(client, db):
    from demo.division import PASSWORD as DEMO_PASSWORD

    assert DEMO_PASSWORD == "demo-psykiatri"
    get_user_model().objects.create_user("demo-person", password=DEMO_PASSWORD)

    assert log_in(client, "demo-person", DEMO_PASSWORD).status_code == 302
    # And it passes the password rules, so it is a password the rules would let one choose.
    validate_password(DEMO_PASSWORD)


# --- passwords --------------------------------------------------------------------------------


@pytest.mark.parametrize("password", ["Emma2026", "short-pass1", "password1234", "123456789012"])
def test_weak_passwords_are_refused(password, db):
    with pytest.raises(ValidationError):
        validate_password(password)


def test_the_admin_password_form_refuses_emma2026_and_takes_a_long_one(org):
    user = org.people["clinician"]

    weak = AdminPasswordChangeForm(user, {"password1": "Emma2026", "password2": "Emma2026"})
    strong = AdminPasswordChangeForm(
        user, {"password1": "grön-tallrik-vid-sjön", "password2": "grön-tallrik-vid-sjön"}
    )

    assert not weak.is_valid()
    assert any("at least 12 characters" in e for e in weak.errors["password2"])
    assert strong.is_valid(), strong.errors


# --- sessions: idle timeout and absolute age --------------------------------------------------


def _idle_for(client, seconds: int) -> None:
    session = client.session
    session[SESSION_LAST_ACTIVITY] = int(time.time()) - seconds
    session.save()


def test_a_session_idle_for_longer_than_the_limit_is_logged_out(client, org):
    client.force_login(org.people["clinician"])
    _idle_for(client, 31 * 60)

    response = client.get(HOME, follow=True)

    assert response.redirect_chain[-1][0].startswith(LOGIN)
    assert not logged_in(client)
    assert "You were logged out after 30 minutes without activity." in [
        str(m) for m in response.context["messages"]
    ]


def test_a_session_used_within_the_limit_stays(client, org):
    client.force_login(org.people["clinician"])
    _idle_for(client, 29 * 60)

    response = client.get(HOME)

    assert response.status_code == 200
    # The activity was written: the clock starts again.
    assert int(time.time()) - client.session[SESSION_LAST_ACTIVITY] < 5


def test_the_idle_limit_comes_from_the_setting(client, org, settings):
    settings.LHS_SESSION_IDLE_MINUTES = 5
    client.force_login(org.people["clinician"])
    _idle_for(client, 6 * 60)

    assert client.get(HOME).status_code == 302
    assert not logged_in(client)


def test_activity_is_written_at_most_once_a_minute(client, org):
    client.force_login(org.people["clinician"])
    _idle_for(client, 20)
    before = client.session[SESSION_LAST_ACTIVITY]

    client.get(HOME)

    assert client.session[SESSION_LAST_ACTIVITY] == before


def test_an_htmx_request_on_an_idle_session_is_sent_to_the_login_page(client, org):
    client.force_login(org.people["clinician"])
    _idle_for(client, 31 * 60)

    response = client.get(
        reverse("measures:catalogue"),
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/measures/"},
    )

    assert response.status_code == 200
    assert response["HX-Redirect"].startswith(LOGIN)
    assert response.content == b""


def test_the_session_age_is_absolute_from_log_in(client, org):
    log_in(client, "clinician", PASSWORD)
    key = client.session.session_key
    expires = Session.objects.get(session_key=key).expire_date
    assert abs((expires - timezone.now()) - timedelta(hours=12)) < timedelta(seconds=30)

    # Later activity saves the session: its expiry must not move on.
    _idle_for(client, 5 * 60)
    client.get(HOME)

    assert Session.objects.get(session_key=key).expire_date == expires


def test_a_session_older_than_the_absolute_age_is_logged_out(client, org):
    client.force_login(org.people["clinician"])
    session = client.session
    session["lhs_login_at"] = int(time.time()) - settings.SESSION_COOKIE_AGE - 60
    session.save()

    assert client.get(HOME).status_code == 302
    assert not logged_in(client)


# --- deactivation -----------------------------------------------------------------------------


def test_django_refuses_an_inactive_users_session_on_the_next_request(client, org):
    client.force_login(org.people["clinician"])
    get_user_model().objects.filter(pk=org.people["clinician"].pk).update(is_active=False)

    response = client.get(HOME)

    assert response.status_code == 302
    assert response.url.startswith(LOGIN)


def test_bearer_tokens_of_an_inactive_user_are_refused(org):
    _token, key = api_token_create(user=org.people["support"], name="x")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/measures/").status_code == 200
    get_user_model().objects.filter(pk=org.people["support"].pk).update(is_active=False)

    assert api.get("/api/measures/").status_code == 401


def test_deactivating_in_the_admin_ends_sessions_and_tokens_at_once(client, org):
    person = org.people["support"]
    client.force_login(person)
    old_key = client.session.session_key
    token, key = api_token_create(user=person, name="extract")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    admin = type(client)()
    admin.force_login(org.people["admin"])

    response = admin.post(
        reverse("admin:auth_user_changelist"),
        {"action": "deactivate", "_selected_action": [person.pk]},
    )

    assert response.status_code == 302
    person.refresh_from_db()
    assert not person.is_active
    assert not Session.objects.filter(session_key=old_key).exists()
    token.refresh_from_db()
    assert token.revoked_at is not None
    # The very next requests with the old cookie and the old token are refused.
    assert client.get(HOME).status_code == 302
    assert api.get("/api/measures/").status_code == 401
    # Reactivating does not bring the old token back.
    get_user_model().objects.filter(pk=person.pk).update(is_active=True)
    assert not ApiToken.objects.usable().filter(pk=token.pk).exists()
    # The admin who did it still has their session.
    assert admin.get(reverse("admin:index")).status_code == 200


def test_ending_a_persons_sessions_ends_the_cached_copy_too(client, org):
    """Sessions are read from the cache first: ending them must not leave a copy there that
    keeps an active person logged in."""
    person = org.people["chair"]
    client.force_login(person)
    assert client.get(HOME).status_code == 200  # the session is now in the cache too
    other = type(client)()
    other.force_login(org.people["clinician"])

    assert user_sessions_end(user=person) == 1

    assert client.get(HOME).status_code == 302
    assert other.get(HOME).status_code == 200


def test_unticking_active_on_the_user_form_ends_the_sessions(client, org):
    person = org.people["chair"]
    client.force_login(person)
    old_key = client.session.session_key
    admin = type(client)()
    admin.force_login(org.people["admin"])
    change = reverse("admin:auth_user_change", args=[person.pk])
    form = admin.get(change).context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and name not in {"password", "groups", "user_permissions"}
    }
    data.update(
        {
            "is_active": "",
            "date_joined_0": person.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": person.date_joined.strftime("%H:%M:%S"),
        }
    )
    data.pop("date_joined", None)
    data.pop("last_login", None)

    response = admin.post(change, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert not Session.objects.filter(session_key=old_key).exists()
    assert client.get(HOME).status_code == 302


def test_deactivation_leaves_other_peoples_sessions(client, org):
    client.force_login(org.people["chair"])
    other = type(client)()
    other.force_login(org.people["clinician"])

    user_deactivate(user=org.people["chair"], actor=org.people["admin"])

    assert other.get(HOME).status_code == 200
    assert client.get(HOME).status_code == 302


# --- Cache-Control ----------------------------------------------------------------------------


def test_a_page_for_a_logged_in_user_is_not_stored(client, org):
    client.force_login(org.people["clinician"])

    response = client.get(reverse("measures:catalogue"))

    assert response.status_code == 200
    assert response["Cache-Control"] == "private, no-store"


def test_an_api_answer_to_a_token_is_not_stored(org):
    _token, key = api_token_create(user=org.people["support"], name="x")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")

    response = api.get("/api/measures/")

    assert response.status_code == 200
    assert response["Cache-Control"] == "private, no-store"


def test_an_api_answer_to_a_session_is_not_stored(client, org):
    client.force_login(org.people["support"])

    response = client.get("/api/measures/")

    assert response.status_code == 200
    assert response["Cache-Control"] == "private, no-store"


def test_an_answer_to_an_anonymous_visitor_is_not_marked(db):
    from django.contrib.auth.models import AnonymousUser

    request = RequestFactory().get("/")
    request.user = AnonymousUser()

    response = PrivateNoStoreMiddleware(lambda request: HttpResponse("x"))(request)

    assert not response.has_header("Cache-Control")


def test_static_files_are_not_marked(client, org):
    client.force_login(org.people["clinician"])

    response = client.get("/static/css/lhs.css")

    if response.status_code == 200:
        assert "no-store" not in response.get("Cache-Control", "")


def test_a_views_own_cache_control_is_kept(org):
    def view(request):
        response = HttpResponse("x")
        response["Cache-Control"] = "max-age=60"
        return response

    request = RequestFactory().get("/")
    request.user = org.people["clinician"]

    response = PrivateNoStoreMiddleware(view)(request)

    assert response["Cache-Control"] == "max-age=60"


# --- environment booleans ---------------------------------------------------------------------


def _settings_in_subprocess(**env) -> dict:
    code = (
        "import json, lhs.settings as s; "
        "print(json.dumps([s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.DEBUG]))"
    )
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "LHS_LOGIN"))
    }
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    redirect, secure_cookies, debug = json.loads(result.stdout.strip().splitlines()[-1])
    return {"redirect": redirect, "secure_cookies": secure_cookies, "debug": debug}


def test_an_empty_boolean_variable_means_the_default_not_off():
    got = _settings_in_subprocess(DJANGO_SECURE_SSL_REDIRECT="", DJANGO_SECURE_COOKIES=" ")

    assert got == {"redirect": True, "secure_cookies": True, "debug": False}


def test_a_boolean_variable_can_still_turn_the_redirect_off():
    assert _settings_in_subprocess(DJANGO_SECURE_SSL_REDIRECT="0")["redirect"] is False
    assert _settings_in_subprocess(DJANGO_SECURE_SSL_REDIRECT="false")["redirect"] is False
    assert _settings_in_subprocess(DJANGO_SECURE_SSL_REDIRECT="1")["redirect"] is True


def test_a_boolean_variable_that_is_no_boolean_is_an_error():
    with pytest.raises(subprocess.CalledProcessError) as error:
        _settings_in_subprocess(DJANGO_SECURE_SSL_REDIRECT="maybe")

    assert "DJANGO_SECURE_SSL_REDIRECT='maybe' is not a boolean" in error.value.stderr


def test_the_admin_log_in_page_is_throttled_too(client, org):
    admin_login = reverse("admin:login")
    for n in range(settings.AXES_FAILURE_LIMIT):
        client.post(admin_login, {"username": "admin", "password": f"x{n}"})

    response = client.post(admin_login, {"username": "admin", "password": PASSWORD})

    assert response.status_code == 429
    assert not logged_in(client)

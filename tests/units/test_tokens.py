"""API tokens: stored hashed, shown once, revocable (units/models.py, services.py, command)."""

from __future__ import annotations

import hashlib
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from units.models import ApiToken
from units.services import api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db


def authenticates(key: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client.get("/api/measures/").status_code == 200


def stored_values(token: ApiToken) -> list[str]:
    """Every text the database holds for a token."""
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    return [str(value) for value in row.values()]


def test_create_returns_the_key_once_and_stores_only_its_hash(org):
    token, key = api_token_create(user=org.people["support"], name="nightly extract")

    assert key.startswith("lhs_")
    assert len(key) > 40
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert token.key_prefix == key[:8]
    assert key not in stored_values(token)
    assert not any(key[8:] in value for value in stored_values(token))
    assert str(token) == f"nightly extract ({key[:8]}…)"


def test_every_key_is_new(org):
    keys = {api_token_create(user=org.people["support"], name="x")[1] for _ in range(5)}

    assert len(keys) == 5


def test_hash_key():
    assert ApiToken.hash_key("lhs_abc") == hashlib.sha256(b"lhs_abc").hexdigest()


def test_revoke(org):
    token, key = api_token_create(user=org.people["support"], name="x")
    assert authenticates(key)
    assert not token.is_revoked

    api_token_revoke(token=token)

    token.refresh_from_db()
    assert token.is_revoked
    assert not authenticates(key)
    assert not ApiToken.objects.usable().filter(pk=token.pk).exists()


def test_revoking_twice_keeps_the_first_time(org):
    token, _key = api_token_create(user=org.people["support"], name="x")
    api_token_revoke(token=token)
    token.refresh_from_db()
    first = token.revoked_at

    api_token_revoke(token=token)

    token.refresh_from_db()
    assert token.revoked_at == first


def test_usable_excludes_tokens_of_inactive_users(org):
    token, key = api_token_create(user=org.people["support"], name="x")
    org.people["support"].is_active = False
    org.people["support"].save()

    assert not ApiToken.objects.usable().filter(pk=token.pk).exists()
    assert not authenticates(key)


def test_a_token_revoked_in_the_past_counts_as_revoked(org):
    token, _key = api_token_create(user=org.people["support"], name="x")
    token.revoked_at = timezone.now() - timezone.timedelta(seconds=1)

    assert token.is_revoked


# --- manage.py create_api_token -------------------------------------------------------------------


def test_command_prints_a_token_that_authenticates(org):
    out, err = StringIO(), StringIO()

    call_command(
        "create_api_token", "support", "--name", "registry extract", stdout=out, stderr=err
    )

    key = out.getvalue().strip()
    token = ApiToken.objects.get()
    assert token.user == org.people["support"]
    assert token.name == "registry extract"
    assert token.key_hash == ApiToken.hash_key(key)
    assert key not in stored_values(token)
    assert "not shown again" in err.getvalue()
    assert key not in err.getvalue()  # the key goes to stdout only, for piping
    assert authenticates(key)


def test_command_default_name(org):
    call_command("create_api_token", "chair", stdout=StringIO(), stderr=StringIO())

    assert ApiToken.objects.get().name == "scheduled extract"


def test_command_refuses_unknown_and_inactive_users(org):
    org.people["board"].is_active = False
    org.people["board"].save()

    with pytest.raises(CommandError, match="No user called 'nobody'"):
        call_command("create_api_token", "nobody", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="not active"):
        call_command("create_api_token", "board", stdout=StringIO(), stderr=StringIO())
    assert ApiToken.objects.count() == 0


def test_a_token_acts_with_its_owners_rights_only(org):
    out = StringIO()
    call_command("create_api_token", "clinician", stdout=out, stderr=StringIO())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {out.getvalue().strip()}")

    assert client.get("/api/imports/").status_code == 200
    assert client.post("/api/imports/", {}, format="multipart").status_code == 403

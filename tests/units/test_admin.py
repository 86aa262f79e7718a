"""API tokens in the admin: created with the key shown once, revoked by an action."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from units.models import ApiToken
from units.services import api_token_create

pytestmark = pytest.mark.django_db

ADD = reverse("admin:units_apitoken_add")
CHANGELIST = reverse("admin:units_apitoken_changelist")


def test_admin_creates_a_token_and_sees_the_key_once(client, org):
    client.force_login(org.people["admin"])

    response = client.post(ADD, {"user": org.people["support"].pk, "name": "extract"}, follow=True)

    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    shown = [m for m in messages if m.startswith("Token created. Copy it now")]
    assert len(shown) == 1
    key = re.search(r"(lhs_\S+)$", shown[0]).group(1)
    token = ApiToken.objects.get()
    assert token.user == org.people["support"]
    assert token.key_hash == ApiToken.hash_key(key)
    assert token.key_prefix == key[:8]
    # Shown once: the token's page does not show it again.
    page = client.get(reverse("admin:units_apitoken_change", args=[token.pk]))
    assert key.encode() not in page.content
    assert token.key_prefix.encode() in page.content


def test_the_owner_of_an_existing_token_is_read_only(client, org):
    token, _key = api_token_create(user=org.people["support"], name="x")
    client.force_login(org.people["admin"])

    client.post(
        reverse("admin:units_apitoken_change", args=[token.pk]),
        {"user": org.people["clinician"].pk, "name": "renamed"},
    )

    token.refresh_from_db()
    assert (token.user, token.name) == (org.people["support"], "renamed")


def test_admin_revokes_tokens(client, org):
    token, _key = api_token_create(user=org.people["support"], name="x")
    other, _ = api_token_create(user=org.people["chair"], name="y")
    client.force_login(org.people["admin"])

    response = client.post(
        CHANGELIST, {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )

    assert response.status_code == 200
    token.refresh_from_db()
    other.refresh_from_db()
    assert token.is_revoked
    assert not other.is_revoked


def test_staff_without_permission_cannot_see_tokens(client, org):
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="staffer", is_staff=True))

    assert client.get(CHANGELIST).status_code == 403
    assert client.get(ADD).status_code == 403

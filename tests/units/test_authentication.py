"""`Authorization: Bearer <token>` (units/authentication.py) on a bare request."""

from __future__ import annotations

import pytest
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from units.authentication import BearerTokenAuthentication
from units.services import api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db


def authenticate(header: str | bytes | None):
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    request = Request(APIRequestFactory().get("/api/measures/", **extra))
    return BearerTokenAuthentication().authenticate(request)


def test_a_valid_token_gives_its_user_and_token(org):
    token, key = api_token_create(user=org.people["chair"], name="x")

    user, auth = authenticate(f"Bearer {key}")

    assert user == org.people["chair"]
    assert auth == token


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwdw==", "Token abc"])
def test_other_schemes_are_left_to_other_authenticators(org, header):
    assert authenticate(header) is None


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer", "Malformed Authorization header."),
        ("Bearer a b", "Malformed Authorization header."),
        ("Bearer lhs_nope", "Invalid or revoked token."),
        (b"Bearer \xff\xfe", "Malformed token."),
    ],
)
def test_malformed_or_unknown_tokens_fail(org, header, message):
    with pytest.raises(AuthenticationFailed) as info:
        authenticate(header)

    assert str(info.value.detail) == message


def test_a_revoked_token_fails(org):
    token, key = api_token_create(user=org.people["chair"], name="x")
    api_token_revoke(token=token)

    with pytest.raises(AuthenticationFailed, match="Invalid or revoked token"):
        authenticate(f"Bearer {key}")


def test_the_challenge_names_the_scheme():
    request = Request(APIRequestFactory().get("/"))

    assert BearerTokenAuthentication().authenticate_header(request) == "Bearer"

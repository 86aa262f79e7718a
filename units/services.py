"""Writes for the organisation and its people."""

from importlib import import_module

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone

from .audit import audit_record
from .enums import AuditAction
from .models import ApiToken


@transaction.atomic
def api_token_create(
    *, user: AbstractBaseUser, name: str, actor: AbstractBaseUser | None = None
) -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns the token and its key, which is never shown again."""
    key = ApiToken.new_key()
    token = ApiToken.objects.create(
        user=user,
        name=name,
        key_prefix=key[: len(ApiToken.PREFIX) + 4],
        key_hash=ApiToken.hash_key(key),
    )
    audit_record(
        actor=actor,
        action=AuditAction.TOKEN_CREATE,
        target=_token_target(token),
        detail={"owner": user.get_username(), "name": name},
    )
    return token, key


def api_token_revoke(*, token: ApiToken, actor: AbstractBaseUser | None = None) -> None:
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if revoked:
        audit_record(
            actor=actor,
            action=AuditAction.TOKEN_REVOKE,
            target=_token_target(token),
            detail={"owner": token.user.get_username()},
        )


def _token_target(token: ApiToken) -> str:
    return f"units.apitoken:{token.pk} {token.key_prefix}"


def user_sessions_end(*, user: AbstractBaseUser) -> int:
    """Delete every stored session of ``user``; returns how many.

    Sessions are stored signed and keyed by a random key, not by user, so each live one is
    decoded: fine for a hospital's few thousand sessions and an action an admin takes rarely.
    Each is ended through the session store, which also drops the copy the cache holds (a
    row deleted alone would still be read from there).
    """
    store = import_module(settings.SESSION_ENGINE).SessionStore
    keys = [
        session.session_key
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk)
    ]
    for key in keys:
        store(session_key=key).delete()
    return len(keys)


@transaction.atomic
def user_deactivate(*, user: AbstractBaseUser, actor: AbstractBaseUser | None = None) -> None:
    """Disable ``user`` and end their access at once: sessions deleted, tokens revoked.

    Django already refuses an inactive user's session (ModelBackend.get_user) and the bearer
    authentication refuses their tokens (ApiToken.objects.usable()); this removes them too,
    so that reactivating the account does not bring old sessions and tokens back.
    """
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    user.is_active = False
    sessions = user_sessions_end(user=user)
    tokens = 0
    for token in ApiToken.objects.filter(user=user, revoked_at__isnull=True):
        api_token_revoke(token=token, actor=actor)
        tokens += 1
    audit_record(
        actor=actor,
        action=AuditAction.USER_DEACTIVATE,
        target=f"auth.user:{user.pk} {user.get_username()}",
        detail={"sessions_ended": sessions, "tokens_revoked": tokens},
    )

"""The audit log: who did what, when and from which address.

``audit_record`` is the one way in. Services that are not handed the request (an upload, a
revert) still get the address: ``lhs.middleware.AuditContextMiddleware`` keeps the current
request in a context variable for the length of the request.
"""

import ipaddress
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone

from .enums import AuditAction
from .models import AuditEvent

current_request: ContextVar[HttpRequest | None] = ContextVar("lhs_current_request", default=None)


def client_address(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or the proxy's X-Forwarded-For when trusted.

    Only with ``LHS_TRUST_X_FORWARDED_FOR`` is the header read, and then its last entry: the
    one our own proxy appended (entries before it are whatever the client sent).
    """
    address = request.META.get("REMOTE_ADDR", "")
    if settings.LHS_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            address = hops[-1]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _actor_of(request: HttpRequest | None):
    user = getattr(request, "user", None) if request is not None else None
    return user if user is not None and user.is_authenticated else None


def audit_record(
    *,
    actor=None,
    action: AuditAction | str,
    target: str = "",
    detail: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    actor_name: str = "",
) -> AuditEvent:
    """Append one event. ``actor`` defaults to the request's user; ``request`` to the current one.

    ``actor_name`` names an actor that is not a user (a failed log-in's user name).
    """
    request = request if request is not None else current_request.get()
    if actor is None:
        actor = _actor_of(request)
    return AuditEvent.objects.create(
        actor_id=actor.pk if actor is not None else None,
        actor_name=(actor.get_username() if actor is not None else actor_name)[:150],
        action=action,
        target=str(target)[:255],
        detail=detail or {},
        ip_address=client_address(request) if request is not None else None,
    )


def audit_download(*, request: HttpRequest, target: str, detail: dict | None = None) -> None:
    """One line for every view that hands out a stored file or an export."""
    audit_record(action=AuditAction.DOWNLOAD, target=target, detail=detail, request=request)


def audit_events_purge(*, now=None) -> int:
    """Delete events older than ``LHS_AUDIT_RETENTION_DAYS``; returns how many went.

    On PostgreSQL a trigger refuses every UPDATE and DELETE on the table unless this
    transaction has set ``lhs.audit_purge``.
    """
    cutoff = (now or timezone.now()) - timedelta(days=settings.LHS_AUDIT_RETENTION_DAYS)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lhs.audit_purge', 'on', true)")
        deleted = AuditEvent.objects.filter(at__lt=cutoff)._purge()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lhs.audit_purge', 'off', true)")
        audit_record(
            action=AuditAction.AUDIT_PURGE,
            target=f"before {cutoff.isoformat()}",
            detail={"deleted": deleted, "retention_days": settings.LHS_AUDIT_RETENTION_DAYS},
        )
    return deleted

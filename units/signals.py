"""Receivers for events that only Django and django-axes announce: log-ins and admin changes.

They do nothing but record (and fix a log-in's absolute session expiry): no business flow.
"""

from datetime import timedelta

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone

from .audit import audit_record
from .enums import AuditAction

SESSION_LOGIN_AT = "lhs_login_at"
SESSION_LAST_ACTIVITY = "lhs_last_activity"

ADMIN_ACTIONS = {
    ADDITION: AuditAction.ADMIN_ADD,
    CHANGE: AuditAction.ADMIN_CHANGE,
    DELETION: AuditAction.ADMIN_DELETE,
}


@receiver(user_logged_in, dispatch_uid="lhs_audit_login")
def _logged_in(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        now = timezone.now()
        # A fixed date, not an age: Django would otherwise slide the expiry on every save
        # of the session (and the idle timeout saves it once a minute).
        request.session.set_expiry(now + timedelta(seconds=settings.SESSION_COOKIE_AGE))
        request.session[SESSION_LOGIN_AT] = int(now.timestamp())
        request.session[SESSION_LAST_ACTIVITY] = int(now.timestamp())
    audit_record(actor=user, action=AuditAction.LOGIN, request=request)


@receiver(user_logged_out, dispatch_uid="lhs_audit_logout")
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit_record(actor=user, action=AuditAction.LOGOUT, request=request)


@receiver(user_login_failed, dispatch_uid="lhs_audit_login_failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))
    audit_record(
        action=AuditAction.LOGIN_FAILED,
        actor_name=username,
        target=username,
        request=request,
    )


@receiver(user_locked_out, dispatch_uid="lhs_audit_lockout")
def _locked_out(sender, request, username, ip_address, **kwargs):
    audit_record(
        action=AuditAction.LOCKOUT,
        actor_name=username or "",
        target=username or "",
        detail={"ip_address": ip_address},
        request=request,
    )


@receiver(post_save, sender=LogEntry, dispatch_uid="lhs_audit_admin_log_entry")
def _admin_logged(sender, instance: LogEntry, created, **kwargs):
    """Mirror each admin log entry; bulk deletions bypass this (see units.admin)."""
    if created:
        audit_admin_entry(instance)


def audit_admin_entry(entry: LogEntry) -> None:
    content_type = entry.content_type
    label = f"{content_type.app_label}.{content_type.model}" if content_type else "?"
    audit_record(
        actor=entry.user,
        action=ADMIN_ACTIONS.get(entry.action_flag, AuditAction.ADMIN_CHANGE),
        target=f"{label}:{entry.object_id} {entry.object_repr}",
        detail={"change": entry.change_message},
    )

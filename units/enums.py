from django.db import models
from django.utils.translation import gettext_lazy as _


class UnitKind(models.TextChoices):
    IN_PATIENT = "inpatient", _("In-patient")
    OUT_PATIENT = "outpatient", _("Out-patient")
    OTHER = "other", _("Other")


class AuditAction(models.TextChoices):
    LOGIN = "login", _("Logged in")
    LOGOUT = "logout", _("Logged out")
    LOGIN_FAILED = "login_failed", _("Failed log-in")
    LOCKOUT = "lockout", _("Locked out")
    SESSION_EXPIRED = "session_expired", _("Logged out for inactivity")
    IMPORT_UPLOAD = "import_upload", _("Uploaded an import")
    IMPORT_REVERT = "import_revert", _("Reverted an import")
    DOWNLOAD = "download", _("Downloaded")
    ADMIN_ADD = "admin_add", _("Added in the admin")
    ADMIN_CHANGE = "admin_change", _("Changed in the admin")
    ADMIN_DELETE = "admin_delete", _("Deleted in the admin")
    TOKEN_CREATE = "token_create", _("Created an API token")
    TOKEN_REVOKE = "token_revoke", _("Revoked an API token")
    USER_DEACTIVATE = "user_deactivate", _("Deactivated a user")
    AUDIT_PURGE = "audit_purge", _("Purged old audit events")

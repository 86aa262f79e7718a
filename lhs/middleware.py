"""A health check that answers before host validation, HTTPS redirects and log-in.

Load balancers and container health checks call it by IP over plain HTTP.
"""

from django.core.cache import cache
from django.db import connection
from django.http import HttpResponse

from .workers import MISSING_SECONDS, seconds_since_seen


class HealthCheckMiddleware:
    """``/healthz``: 200 while the database answers (what a load balancer needs), 503 if not.

    The body tells the rest of the truth, one line each, for people and monitoring: the
    cache and broker (Redis in production) and when a background worker was last seen. The
    first line is ``ok`` when all are well and ``degraded`` when imports would wait.
    """

    path = "/healthz"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path != self.path:
            return self.get_response(request)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception:  # any database failure means "not healthy"
            return HttpResponse("database unavailable", status=503, content_type="text/plain")
        checks = {"database": "ok", "cache": _cache_state(), "broker": _broker_state()}
        since = seconds_since_seen()
        checks["worker"] = (
            "not seen"
            if since is None
            else (
                f"seen {since:.0f} s ago"
                if since <= MISSING_SECONDS
                else f"missing for {since:.0f} s"
            )
        )
        healthy = (
            checks["cache"] == "ok"
            and checks["broker"] == "ok"
            and since is not None
            and since <= MISSING_SECONDS
        )
        lines = ["ok" if healthy else "degraded", *(f"{k}: {v}" for k, v in checks.items())]
        response = HttpResponse("\n".join(lines) + "\n", content_type="text/plain")
        response["Cache-Control"] = "no-store"
        return response


def _cache_state() -> str:
    try:
        cache.set("lhs:healthz", 1, timeout=10)
        return "ok" if cache.get("lhs:healthz") == 1 else "not storing"
    except Exception as exc:
        return f"unavailable ({type(exc).__name__})"


def _broker_state() -> str:
    from .celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:
        return f"unavailable ({type(exc).__name__})"


class AuditContextMiddleware:
    """Keep the current request in a context variable for the audit log.

    Services that are not handed the request (an upload, a revert, the admin's log entries)
    still record who acted and from which address.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from units.audit import current_request

        token = current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            current_request.reset(token)


class IdleSessionTimeoutMiddleware:
    """Log out a session idle for longer than LHS_SESSION_IDLE_MINUTES.

    The last activity is written to the session at most once a minute (each write is a
    database UPDATE). The absolute limit is the session's fixed expiry set at log-in
    (units.signals). An HTMX request is answered with HX-Redirect to the log-in page, so the
    whole page goes there instead of a fragment swapping the log-in form into a table.
    Must come after AuthenticationMiddleware and MessageMiddleware.
    """

    write_every = 60

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        import time

        from django.conf import settings
        from django.contrib import messages
        from django.contrib.auth import logout
        from django.utils.translation import gettext as _

        from units.audit import audit_record
        from units.enums import AuditAction
        from units.signals import SESSION_LAST_ACTIVITY, SESSION_LOGIN_AT

        session = getattr(request, "session", None)
        if session is not None and request.user.is_authenticated:
            now = int(time.time())
            idle_minutes = settings.LHS_SESSION_IDLE_MINUTES
            last = session.get(SESSION_LAST_ACTIVITY)
            login_at = session.setdefault(SESSION_LOGIN_AT, now)
            if now - int(login_at) > settings.SESSION_COOKIE_AGE:
                # A session from before the fixed expiry was set at log-in could slide.
                logout(request)
                messages.info(request, _("Your session has ended; please log in again."))
            elif last is not None and now - int(last) > idle_minutes * 60:
                audit_record(
                    actor=request.user,
                    action=AuditAction.SESSION_EXPIRED,
                    detail={"idle_minutes": idle_minutes},
                    request=request,
                )
                logout(request)
                messages.info(
                    request,
                    _("You were logged out after %(minutes)s minutes without activity.")
                    % {"minutes": idle_minutes},
                )
            elif last is None or now - int(last) >= self.write_every:
                session[SESSION_LAST_ACTIVITY] = now
        response = self.get_response(request)
        return self._htmx_login_redirect(request, response)

    @staticmethod
    def _htmx_login_redirect(request, response):
        from urllib.parse import urlencode, urlsplit

        from django.conf import settings
        from django.contrib.auth import REDIRECT_FIELD_NAME
        from django.http import HttpResponse
        from django.shortcuts import resolve_url

        if request.headers.get("HX-Request") != "true" or response.status_code not in (301, 302):
            return response
        login_url = resolve_url(settings.LOGIN_URL)
        if not response.get("Location", "").startswith(login_url):
            return response
        # Back to the page the fragment was on (not the fragment) after logging in again.
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        if current.path:
            page = current.path + (f"?{current.query}" if current.query else "")
            login_url = f"{login_url}?{urlencode({REDIRECT_FIELD_NAME: page})}"
        redirect = HttpResponse()
        redirect["HX-Redirect"] = login_url
        return redirect


class PrivateNoStoreMiddleware:
    """`Cache-Control: private, no-store` on every answer to a logged-in user.

    Pages, fragments and API answers carry data that must not stay in a shared or a browser
    cache. A view that sets its own Cache-Control keeps it. Static files never get here:
    WhiteNoise answers them earlier. Runs after the view, so a bearer-token user that DRF
    authenticated (it sets the user on the underlying request) counts too.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not response.has_header("Cache-Control"):
            response["Cache-Control"] = "private, no-store"
        return response

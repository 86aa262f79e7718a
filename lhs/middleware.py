"""A health check that answers before host validation, HTTPS redirects and log-in.

Load balancers and container health checks call it by IP over plain HTTP.
"""

from django.db import connection
from django.http import HttpResponse


class HealthCheckMiddleware:
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
        return HttpResponse("ok", content_type="text/plain")

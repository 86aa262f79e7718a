"""What every API view shares: service refusals mapped to HTTP statuses.

The services refuse with Django's ``ValidationError`` and a code (``initiatives/services.py``
documents them). DRF would answer such an error with a 500, so the exception handler maps
it: ``not_permitted`` → 403, ``stale`` and ``conflict`` → 409, ``not_found`` → 404, any other
code → 400. The body is ``{"detail": …, "code": …}``, and for errors tied to fields also
``{"errors": {field: [messages]}}``, in the reader's language.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

STATUS_BY_CODE = {
    "not_permitted": status.HTTP_403_FORBIDDEN,
    "stale": status.HTTP_409_CONFLICT,
    "conflict": status.HTTP_409_CONFLICT,
    "not_found": status.HTTP_404_NOT_FOUND,
}


def _codes(error: DjangoValidationError) -> list[str]:
    return (
        [e.code or "invalid" for e in error.error_list]
        if not hasattr(error, "error_dict")
        else [e.code or "invalid" for errors in error.error_dict.values() for e in errors]
    )


def service_error_status(error: DjangoValidationError) -> int:
    """The HTTP status for a service's refusal: the most specific of its codes."""
    codes = _codes(error)
    for code in ("not_permitted", "not_found", "stale", "conflict"):
        if code in codes:
            return STATUS_BY_CODE[code]
    return status.HTTP_400_BAD_REQUEST


def service_error_response(error: DjangoValidationError) -> Response:
    codes = _codes(error)
    body: dict[str, object] = {"detail": " ".join(error.messages), "code": codes[0]}
    if hasattr(error, "error_dict"):
        body["errors"] = {
            field: [str(message) for e in errors for message in e.messages]
            for field, errors in error.error_dict.items()
        }
    return Response(body, status=service_error_status(error))


def exception_handler(exc, context):
    """DRF's handler, plus the services' refusals (never a 500 for a refused step)."""
    if isinstance(exc, DjangoValidationError):
        return service_error_response(exc)
    return drf_exception_handler(exc, context)

"""One upload limit for both ways in (the upload page and the API), kept in the cache."""

from __future__ import annotations

import logging

from rest_framework.throttling import UserRateThrottle

logger = logging.getLogger(__name__)


class ImportUploadThrottle(UserRateThrottle):
    """At most ``DEFAULT_THROTTLE_RATES["imports"]`` uploads per person, page and API together.

    DRF's throttle works on a plain Django request too (it reads ``request.user`` and
    ``META``), so the page calls it as the API does. The count lives in the cache: with the
    cache away an upload is let through rather than refused, since the upload itself needs
    only the database (and a refusal would lose a file that we could have kept).
    """

    scope = "imports"

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception:
            logger.warning("Upload limit not checked: the cache is unavailable")
            return True


def upload_allowed(request) -> tuple[bool, float | None]:
    """Whether this person may upload now, and if not, how many seconds until they may."""
    throttle = ImportUploadThrottle()
    if throttle.allow_request(request, None):
        return True, None
    return False, throttle.wait()

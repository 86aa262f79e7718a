"""What the base layout needs on every page that django-rules cannot answer in the template.

Where a person sits (the navigation's badges) the template asks the rules itself
(``{% test_rule "forums.sits_on_board" user %}``), so a fragment that never renders the
navigation asks nothing.
"""

from django.utils.functional import SimpleLazyObject

from initiatives.notifications import unread_count
from measures.rules import can_upload

from .workers import workers_missing


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    # Lazy: pages that never render the navigation (fragments, API) pay nothing.
    return {
        "nav_can_upload": SimpleLazyObject(lambda: can_upload(user)),
        # The navigation's count of unread notifications (a query only where it is shown).
        "nav_unread_notifications": _LazyCount(lambda: unread_count(user)),
        # Read by the import pages and the admin only: imports wait while no worker is alive.
        "workers_missing": _LazyBool(workers_missing),
    }


class _LazyBool:
    """A truth value computed once, when a template first asks (SimpleLazyObject cannot
    proxy ``bool``)."""

    def __init__(self, compute):
        self._compute, self._value = compute, None

    def __bool__(self) -> bool:
        if self._value is None:
            self._value = bool(self._compute())
        return self._value


class _LazyCount(_LazyBool):
    """A number computed once, when a template first shows or tests it."""

    def __bool__(self) -> bool:
        return bool(int(self))

    def __int__(self) -> int:
        if self._value is None:
            self._value = int(self._compute())
        return self._value

    def __str__(self) -> str:
        return str(int(self))

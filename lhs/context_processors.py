"""What the base layout needs on every page: the user's roles, for navigation."""

from django.utils.functional import SimpleLazyObject

from forums.selectors import roles_for_user
from measures.rules import can_upload

from .workers import workers_missing


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    # Lazy: pages that never render the navigation (fragments, API) pay nothing.
    return {
        "user_roles": SimpleLazyObject(lambda: roles_for_user(user)),
        "nav_can_upload": SimpleLazyObject(lambda: can_upload(user)),
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

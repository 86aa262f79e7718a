"""What the base layout needs on every page: the user's roles, for navigation."""

from django.utils.functional import SimpleLazyObject

from forums.selectors import roles_for_user
from measures.rules import can_upload


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    # Lazy: pages that never render the navigation (fragments, API) pay nothing.
    return {
        "user_roles": SimpleLazyObject(lambda: roles_for_user(user)),
        "nav_can_upload": SimpleLazyObject(lambda: can_upload(user)),
    }

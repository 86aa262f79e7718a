"""Pages of one's notifications: the list (unread first), marking read, e-mail settings.

Only one's own notices exist here (``notifications.visible_notifications``): another
person's is a 404. Marking read answers an HTMX request with the changed fragment and the
navigation's new count (out of band); a plain form post is redirected back to the list.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from forums.models import Membership

from .forms_notifications import NotificationSettingsForm
from .models import NotificationPreference
from .notifications import (
    notification_comment,
    notification_language_remember,
    notification_mark_read,
    notification_preferences_update,
    notification_text,
    notifications_for_page,
    notifications_mark_all_read,
    unread_count,
)

PAGE_SIZE = 30


def _items(notifications) -> list[dict]:
    return [
        {
            "notification": n,
            "text": notification_text(n),
            "comment": notification_comment(n),
        }
        for n in notifications
    ]


def _list_context(request) -> dict:
    page = Paginator(notifications_for_page(request.user), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    unread = unread_count(request.user)
    return {
        "page": page,
        "items": _items(page),
        "unread": unread,
        # The navigation shows the count this page counted (no second query).
        "nav_unread_notifications": unread,
    }


@require_GET
def notifications(request):
    notification_language_remember(user=request.user, language=get_language())
    return render(request, "initiatives/notifications/list.html", _list_context(request))


@require_POST
def notification_read(request, pk: int):
    try:
        notification = notification_mark_read(user=request.user, notification_id=pk)
    except ValidationError as exc:
        raise Http404(_("No such notification.")) from exc
    if request.htmx:
        context = {
            "item": _items([notification])[0],
            "nav_unread_notifications": unread_count(request.user),
            "oob": True,
        }
        return render(request, "initiatives/notifications/_item_read.html", context)
    return redirect("initiatives:notifications")


@require_POST
def notifications_read_all(request):
    marked = notifications_mark_all_read(user=request.user)
    if request.htmx:
        context = {**_list_context(request), "oob": True}
        return render(request, "initiatives/notifications/_list.html", context)
    if marked:
        messages.success(request, _("All notifications are marked read."))
    return redirect("initiatives:notifications")


@require_http_methods(["GET", "POST"])
def notification_settings(request):
    memberships = list(
        Membership.objects.filter(user=request.user)
        .select_related("forum")
        .order_by("forum__kind", "forum__name")
    )
    preference = NotificationPreference.objects.filter(user=request.user).first()
    initial = {
        "email_frequency": preference.email_frequency if preference else "daily",
        "language": (preference.language if preference else "") or get_language(),
    }
    form = NotificationSettingsForm(
        request.POST if request.method == "POST" else None,
        memberships=memberships,
        initial=initial,
    )
    status = 200
    if form.is_bound:
        if form.is_valid():
            try:
                notification_preferences_update(
                    user=request.user,
                    frequencies=form.frequencies(),
                    language=form.cleaned_data["language"],
                    email_frequency=form.cleaned_data["email_frequency"],
                )
            except ValidationError as error:
                form.add_error(None, error)
                status = 400
            else:
                messages.success(request, _("Your e-mail settings are saved."))
                return redirect("initiatives:notification-settings")
        else:
            status = 400
    return render(request, "initiatives/notifications/settings.html", {"form": form}, status=status)

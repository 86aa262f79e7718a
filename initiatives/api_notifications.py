"""REST API for one's own notifications: list and read them, mark one or all read.

Only one's own: another person's notice is a 404 (``notifications.visible_notifications``).
The message comes in the reader's language (``Accept-Language`` or the session's).
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from measures.api import Pagination, error_responses

from .models import Notification
from .notifications import (
    notification_comment,
    notification_mark_read,
    notification_text,
    notifications_for_page,
    notifications_mark_all_read,
)


class NotificationSerializer(serializers.ModelSerializer):
    message = serializers.SerializerMethodField(
        help_text=_("What happened, in the reader's language.")
    )
    comment = serializers.SerializerMethodField(
        help_text=_("What the decider or the support unit wrote (as written); may be empty.")
    )
    read = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = [
            "id",
            "kind",
            "message",
            "comment",
            "forum",
            "initiative",
            "url",
            "created_at",
            "read",
            "read_at",
            "emailed_at",
        ]
        read_only_fields = fields

    def get_message(self, notification: Notification) -> str:
        return notification_text(notification)

    def get_comment(self, notification: Notification) -> str:
        return notification_comment(notification)

    def get_read(self, notification: Notification) -> bool:
        return notification.read_at is not None


_MARKED = inline_serializer(
    "NotificationsMarked",
    {"marked": serializers.IntegerField(help_text=_("How many were unread until now."))},
)


@extend_schema_view(
    list=extend_schema(
        summary=_("My notifications, unread first"),
        responses={200: NotificationSerializer(many=True), **error_responses(401, 404)},
    ),
    retrieve=extend_schema(
        responses={200: NotificationSerializer, **error_responses(401, 404)},
    ),
)
class NotificationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """One's own notifications (in-app notices about the workflow)."""

    serializer_class = NotificationSerializer
    pagination_class = Pagination

    def get_queryset(self):
        return notifications_for_page(self.request.user)

    @extend_schema(
        request=None,
        summary=_("Mark one notification read (again: no change)"),
        responses={200: NotificationSerializer, **error_responses(401, 403, 404)},
    )
    @action(detail=True, methods=["post"])
    def read(self, request, pk=None):
        mine = self.get_object()  # another's, or no such id: 404
        notification = notification_mark_read(user=request.user, notification_id=mine.pk)
        return Response(self.get_serializer(notification).data)

    @extend_schema(
        request=None,
        summary=_("Mark all my notifications read"),
        responses={200: _MARKED, **error_responses(401, 403)},
    )
    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request):
        return Response({"marked": notifications_mark_all_read(user=request.user)})

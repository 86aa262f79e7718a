"""REST API for support requests and attachments: as thin as the pages, with their rules.

- ``/api/support-requests/``: the requests on initiatives one may see (``?initiative=``,
  ``?state=``; ``?queue=open|mine|taken|done``: the support unit's queue, for its members);
  create one (``initiative``, ``kind``, ``description``); ``POST …/{id}/take/``,
  ``…/release/``, ``…/done/`` (with ``answer``), each with the ``version`` one read (409 if
  it has changed: someone else took it, and the answer says who);
- ``/api/attachments/``: files on initiatives one may see (``?initiative=``); upload one
  (multipart: ``initiative``, ``file``), its metadata, ``GET …/{id}/download/`` (the file,
  with the page's headers; audited), ``DELETE …/{id}/``.

A service's refusal is answered by ``lhs.api``'s handler: not_permitted 403, stale and
conflict 409, not_found 404, any other code 400 (with the field it names).
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, parsers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from measures.api import Pagination, UploadField, error_responses
from units.audit import audit_download

from .attachments import TYPES, attachment_add, attachment_delete, attachment_response
from .attachments import visible_attachments as _visible_attachments
from .enums import SupportKind, SupportState
from .models import Attachment, SupportRequest
from .rules import visible_initiatives
from .support import (
    MAX_TEXT,
    QUEUE_VIEWS,
    support_queue,
    support_request_create,
    support_request_done,
    support_request_release,
    support_request_take,
    visible_support_requests,
)

_READ = (401, 403, 404)
_ACT = (400, 401, 403, 404, 409)


def _name(user) -> str | None:
    return user.get_username() if user is not None else None


def _initiative_or_404(user, pk: int):
    return get_object_or_404(visible_initiatives(user).select_related("forum"), pk=pk)


# --- support requests -----------------------------------------------------------------------


class SupportRequestSerializer(serializers.ModelSerializer):
    initiative_title = serializers.CharField(source="initiative.title", read_only=True)
    support_forum_name = serializers.CharField(source="support_forum.name", read_only=True)
    requested_by = serializers.SerializerMethodField()
    taken_by = serializers.SerializerMethodField()
    version = serializers.IntegerField(
        read_only=True,
        help_text=_("Counts its changes: send it with take, release or done (409 if it moved)."),
    )

    class Meta:
        model = SupportRequest
        fields = [
            "id",
            "initiative",
            "initiative_title",
            "support_forum",
            "support_forum_name",
            "kind",
            "description",
            "state",
            "version",
            "requested_by",
            "requested_at",
            "taken_by",
            "taken_at",
            "answer",
            "done_at",
        ]
        read_only_fields = fields

    def get_requested_by(self, obj: SupportRequest) -> str:
        return obj.requested_by.get_username()

    def get_taken_by(self, obj: SupportRequest) -> str | None:
        """The user name of the support-unit member who took it; null while nobody has."""
        return _name(obj.taken_by)


def _initiative_field():
    return serializers.IntegerField(
        min_value=1,
        max_value=2**31 - 1,
        help_text=_("The initiative's id (404 if there is none you may see)."),
    )


def _text_field(help_text):
    """Text that must say something: not empty, not only spaces (or NULs)."""
    return serializers.CharField(
        max_length=MAX_TEXT,
        trim_whitespace=False,
        validators=[RegexValidator(r"[^\s\x00]", _("Write something."))],
        help_text=help_text,
    )


class SupportRequestCreateSerializer(serializers.Serializer):
    initiative = _initiative_field()
    kind = serializers.ChoiceField(choices=SupportKind.choices)
    description = _text_field(_("What is needed."))


class VersionSerializer(serializers.Serializer):
    version = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=0,
        max_value=2**31 - 1,
        help_text=_("The version you read; 409 if it has changed since."),
    )


class AnswerSerializer(VersionSerializer):
    answer = _text_field(_("What was done, or where to find it."))


class AttachmentFilterSerializer(serializers.Serializer):
    initiative = serializers.IntegerField(
        required=False, min_value=1, max_value=2**31 - 1, help_text=_("An initiative's id.")
    )


class SupportFilterSerializer(AttachmentFilterSerializer):
    state = serializers.ChoiceField(choices=SupportState.choices, required=False)
    queue = serializers.ChoiceField(
        choices=[(q, q) for q in QUEUE_VIEWS],
        required=False,
        help_text=_(
            "The support unit's queue, for its members: open (oldest first), mine (taken by "
            "me), taken, done (the latest first). Empty for anyone else."
        ),
    )


def _filters(view, serializer_class) -> dict:
    # No id or code holds a NUL: drop it rather than send it to the database.
    params = {k: v.replace("\x00", "") for k, v in view.request.query_params.items()}
    filters = serializer_class(data=params)
    filters.is_valid(raise_exception=True)
    return filters.validated_data


@extend_schema_view(
    list=extend_schema(
        summary=_("Support requests on the initiatives you may see"),
        parameters=[SupportFilterSerializer],
        responses={200: SupportRequestSerializer(many=True), **error_responses(400, *_READ)},
    ),
    retrieve=extend_schema(
        summary=_("One support request"),
        responses={200: SupportRequestSerializer, **error_responses(*_READ)},
    ),
    create=extend_schema(
        summary=_("Ask the support unit for help on an initiative"),
        request=SupportRequestCreateSerializer,
        responses={201: SupportRequestSerializer, **error_responses(400, 401, 403, 404, 409)},
    ),
)
class SupportRequestViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Support requests: seen by whoever may see the initiative; asked by the members of the
    forum it sits in and by the person who logged it; taken, released and answered by the
    support unit (its taker or the unit's chair answers)."""

    serializer_class = SupportRequestSerializer
    pagination_class = Pagination
    parser_classes = [parsers.JSONParser]

    def get_queryset(self):
        user = self.request.user
        if self.action != "list":
            return visible_support_requests(user)
        data = _filters(self, SupportFilterSerializer)
        if "queue" in data:
            found = support_queue(user=user, show=data["queue"]).filter(
                initiative__in=visible_initiatives(user)
            )
        else:
            found = visible_support_requests(user)
        if "initiative" in data:
            found = found.filter(initiative_id=data["initiative"])
        if "state" in data:
            found = found.filter(state=data["state"])
        return found

    def create(self, request, *args, **kwargs):
        incoming = SupportRequestCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        created = support_request_create(
            user=request.user,
            initiative=_initiative_or_404(request.user, data["initiative"]),
            kind=data["kind"],
            description=data["description"],
        )
        body = SupportRequestSerializer(self.get_queryset().get(pk=created.pk)).data
        return Response(body, status=status.HTTP_201_CREATED)

    def _act(self, request, call, body_serializer=VersionSerializer) -> Response:
        support_request = self.get_object()
        incoming = body_serializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = dict(incoming.validated_data)
        version = data.pop("version", None)
        if version is not None:
            support_request.version = version
        call(support_request, **data)
        return Response(
            SupportRequestSerializer(self.get_queryset().get(pk=support_request.pk)).data
        )

    @extend_schema(
        summary=_("Take an open request (support-unit members)"),
        request=VersionSerializer,
        responses={200: SupportRequestSerializer, **error_responses(*_ACT)},
    )
    @action(detail=True, methods=["post"])
    def take(self, request, pk=None):
        return self._act(request, lambda sr: support_request_take(user=request.user, request=sr))

    @extend_schema(
        summary=_("Give a taken request back to the queue (its taker or the unit's chair)"),
        request=VersionSerializer,
        responses={200: SupportRequestSerializer, **error_responses(*_ACT)},
    )
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        return self._act(request, lambda sr: support_request_release(user=request.user, request=sr))

    @extend_schema(
        summary=_("Answer a taken request and close it (its taker or the unit's chair)"),
        request=AnswerSerializer,
        responses={200: SupportRequestSerializer, **error_responses(*_ACT)},
    )
    @action(detail=True, methods=["post"])
    def done(self, request, pk=None):
        return self._act(
            request,
            lambda sr, answer: support_request_done(user=request.user, request=sr, answer=answer),
            AnswerSerializer,
        )


# --- attachments ----------------------------------------------------------------------------


class AttachmentSerializer(serializers.ModelSerializer):
    uploaded_by = serializers.SerializerMethodField()
    content_type = serializers.ChoiceField(
        choices=[(t.content_type, t.content_type) for t in TYPES],
        read_only=True,
        help_text=_("From the contents, never from the uploader."),
    )
    download = serializers.SerializerMethodField(help_text=_("Where to fetch the file."))

    class Meta:
        model = Attachment
        fields = [
            "id",
            "initiative",
            "original_name",
            "content_type",
            "size",
            "sha256",
            "uploaded_by",
            "uploaded_at",
            "download",
        ]
        read_only_fields = fields

    def get_uploaded_by(self, obj: Attachment) -> str:
        return obj.uploaded_by.get_username()

    def get_download(self, obj: Attachment) -> str:
        return reverse("attachment-download", args=[obj.pk])


class AttachmentUploadSerializer(serializers.Serializer):
    initiative = _initiative_field()
    file = UploadField(
        help_text=_(
            "PDF, PNG, JPEG, GIF, .docx, .xlsx, .pptx, .odt, .ods, .odp, UTF-8 text or CSV; "
            "the contents and the extension must agree."
        )
    )


_DOWNLOAD_TYPES = sorted({t.content_type for t in TYPES} | {"application/octet-stream"})


@extend_schema_view(
    list=extend_schema(
        summary=_("Files on the initiatives you may see"),
        parameters=[AttachmentFilterSerializer],
        responses={200: AttachmentSerializer(many=True), **error_responses(400, *_READ)},
    ),
    retrieve=extend_schema(
        summary=_("One file's details"),
        responses={200: AttachmentSerializer, **error_responses(*_READ)},
    ),
    destroy=extend_schema(
        summary=_("Delete a file (its uploader, or the chair or secretary of the forum)"),
        responses={204: OpenApiResponse(description=_("Deleted.")), **error_responses(*_READ)},
    ),
)
class AttachmentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Files attached to initiatives: the same checks as the page's upload (size, type by
    contents and extension, no zip bombs, a clean name); downloads as attachments."""

    serializer_class = AttachmentSerializer
    pagination_class = Pagination
    parser_classes = [parsers.MultiPartParser, parsers.FormParser]

    def get_queryset(self):
        found = _visible_attachments(self.request.user)
        if self.action == "list":
            initiative = _filters(self, AttachmentFilterSerializer).get("initiative")
            if initiative is not None:
                found = found.filter(initiative_id=initiative)
        return found

    def get_object(self):
        attachment = super().get_object()
        if not self.request.user.has_perm("initiatives.view_attachment", attachment):
            raise NotFound
        return attachment

    @extend_schema(
        summary=_("Attach a file to an initiative"),
        request={"multipart/form-data": AttachmentUploadSerializer},
        responses={201: AttachmentSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    def create(self, request, *args, **kwargs):
        incoming = AttachmentUploadSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        attachment = attachment_add(
            user=request.user,
            initiative=_initiative_or_404(request.user, incoming.validated_data["initiative"]),
            upload=incoming.validated_data["file"],
        )
        body = AttachmentSerializer(self.get_queryset().get(pk=attachment.pk)).data
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        attachment_delete(user=self.request.user, attachment=instance)

    def perform_content_negotiation(self, request, force=False):
        # The file is not rendered by DRF: whatever the client accepts, the download answers
        # with its own type (and errors with JSON).
        return super().perform_content_negotiation(
            request, force=force or self.action == "download"
        )

    @extend_schema(
        summary=_("The file itself, as a download"),
        responses={
            **{(200, content_type): OpenApiTypes.BINARY for content_type in _DOWNLOAD_TYPES},
            **error_responses(*_READ),
        },
    )
    @action(detail=True, methods=["get"], url_path="download", url_name="download")
    def download(self, request, pk=None):
        attachment = self.get_object()
        try:
            response = attachment_response(attachment)
        except FileNotFoundError as exc:
            raise Http404 from exc
        audit_download(
            request=request,
            target=f"attachment {attachment.pk} of initiative {attachment.initiative_id}",
            detail={"name": attachment.original_name, "sha256": attachment.sha256, "via": "api"},
        )
        return response

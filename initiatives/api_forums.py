"""REST API for forums, meetings and agenda items: thin over the same services as the pages.

Every logged-in user lists and reads the forums with their members; meetings and their
agenda items only where ``forums.rules.forums_with_readable_meetings`` allows (otherwise
404). Writes go through ``forums.services`` and ``initiatives.agenda``; their refusals map to
403 / 404 / 409 / 400 (``lhs/api.py``). A meeting's update carries the ``version`` it read.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from forums.enums import ForumKind, MembershipRole
from forums.models import Forum, Meeting, Membership
from forums.services import meeting_create, meeting_delete, meeting_update
from measures.api import Pagination, error_responses
from measures.models import Measure

from . import agenda
from .api import PKRef
from .models import Activity, AgendaItem, Initiative
from .selectors_forums import forums_listed, meetings_for_api, visible_meetings

_INT_MAX = 2**31 - 1
_READ = (401, 403, 404)
_WRITE = (400, 401, 403, 404, 409)


class _PatchWithRequiredSchema(AutoSchema):
    """drf-spectacular makes every field of a PATCH body optional; a meeting's PATCH needs the
    ``version`` read, so its body is described as its serializer says."""

    def _get_request_for_media_type(self, serializer, direction="request"):
        if self.method != "PATCH":
            return super()._get_request_for_media_type(serializer, direction)
        self.method = "PUT"
        try:
            return super()._get_request_for_media_type(serializer, direction)
        finally:
            self.method = "PATCH"


class _DateTimeField(serializers.DateTimeField):
    """A date and time that cannot overflow while converted to the server's time zone."""

    def to_internal_value(self, value):
        try:
            return super().to_internal_value(value)
        except (OverflowError, ValueError) as exc:
            raise serializers.ValidationError(_("Not a valid date and time.")) from exc


# --------------------------------------------------------------------------------------------
# Forums
# --------------------------------------------------------------------------------------------


class MemberSerializer(serializers.ModelSerializer):
    user = serializers.IntegerField(source="user_id", read_only=True)
    username = serializers.CharField(source="user.get_username", read_only=True)
    name = serializers.SerializerMethodField()
    role = serializers.ChoiceField(choices=MembershipRole.choices, read_only=True)

    class Meta:
        model = Membership
        fields = ["user", "username", "name", "role"]
        read_only_fields = fields

    def get_name(self, membership) -> str:
        return membership.user.get_full_name() or membership.user.get_username()


class ForumSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=ForumKind.choices, read_only=True)
    division = serializers.CharField(source="division.code", read_only=True)
    department = serializers.CharField(
        source="department.code", default=None, read_only=True, allow_null=True
    )
    units = serializers.SerializerMethodField(help_text=_("Codes of the units it serves."))
    member_count = serializers.IntegerField(read_only=True)
    open_initiatives = serializers.IntegerField(source="open_count", read_only=True)
    next_meeting = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = Forum
        fields = [
            "id",
            "name",
            "kind",
            "division",
            "department",
            "units",
            "member_count",
            "open_initiatives",
            "next_meeting",
        ]
        read_only_fields = fields

    def get_units(self, forum) -> list[str]:
        return [unit.code for unit in forum.units.all()]


class ForumDetailSerializer(ForumSerializer):
    members = MemberSerializer(source="memberships", many=True, read_only=True)

    class Meta(ForumSerializer.Meta):
        fields = [*ForumSerializer.Meta.fields, "members"]
        read_only_fields = fields


@extend_schema_view(
    list=extend_schema(responses={200: ForumSerializer(many=True), **error_responses(*_READ)}),
    retrieve=extend_schema(responses={200: ForumDetailSerializer, **error_responses(*_READ)}),
)
class ForumViewSet(viewsets.ReadOnlyModelViewSet):
    """The forums of the four kinds; the division works openly, so everyone reads them."""

    pagination_class = Pagination

    def get_serializer_class(self):
        return ForumDetailSerializer if self.action == "retrieve" else ForumSerializer

    def get_queryset(self):
        queryset = forums_listed().prefetch_related("units")
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("memberships__user")
        return queryset


# --------------------------------------------------------------------------------------------
# Meetings
# --------------------------------------------------------------------------------------------


class AgendaItemSerializer(serializers.ModelSerializer):
    reason = serializers.CharField(
        read_only=True, help_text=_("Why it was proposed (a code; empty for one added by hand).")
    )
    digest = serializers.SerializerMethodField(
        help_text=_("Send it back with an edit: a save over text changed meanwhile is a 409.")
    )

    class Meta:
        model = AgendaItem
        fields = [
            "id",
            "meeting",
            "position",
            "title",
            "reason",
            "initiative",
            "measure",
            "notes",
            "digest",
        ]
        read_only_fields = fields

    def get_digest(self, item) -> str:
        return agenda.item_digest(item)


class DecisionSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(
        source="actor.get_username", default=None, read_only=True, allow_null=True
    )

    class Meta:
        model = Activity
        fields = [
            "id",
            "initiative",
            "transition",
            "from_state",
            "to_state",
            "from_forum",
            "to_forum",
            "actor",
            "at",
            "comment",
        ]
        read_only_fields = fields


class MeetingSerializer(serializers.ModelSerializer):
    present = serializers.SerializerMethodField(help_text=_("Ids of the members present."))
    created_by = serializers.CharField(source="created_by.get_username", read_only=True)
    agenda = AgendaItemSerializer(source="agenda_items", many=True, read_only=True)
    decisions = DecisionSerializer(many=True, read_only=True)

    class Meta:
        model = Meeting
        fields = [
            "id",
            "forum",
            "starts_at",
            "location",
            "present",
            "minutes",
            "version",
            "created_by",
            "created_at",
            "updated_at",
            "agenda",
            "decisions",
        ]
        read_only_fields = fields

    def get_present(self, meeting) -> list[int]:
        return sorted(user.pk for user in meeting.present.all())


class MeetingCreateSerializer(serializers.Serializer):
    forum = PKRef(queryset=Forum.objects.all())
    starts_at = _DateTimeField()
    location = serializers.CharField(max_length=200, required=False, allow_blank=True)
    present = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=_INT_MAX),
        required=False,
        max_length=500,
        help_text=_("Ids of the forum's members who were there."),
    )
    minutes = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)


class MeetingUpdateSerializer(serializers.Serializer):
    version = serializers.IntegerField(
        min_value=0,
        max_value=_INT_MAX,
        help_text=_("The version you read; a save over a newer one is refused with 409."),
    )
    starts_at = _DateTimeField(required=False)
    location = serializers.CharField(max_length=200, required=False, allow_blank=True)
    present = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=_INT_MAX),
        required=False,
        max_length=500,
    )
    minutes = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)


class ProposalSerializer(serializers.Serializer):
    key = serializers.CharField(help_text=_("Send it to add this proposal."))
    reason = serializers.ChoiceField(choices=list(agenda.REASONS))
    reason_label = serializers.CharField()
    title = serializers.CharField()
    detail = serializers.CharField()
    initiative = serializers.IntegerField(source="initiative.pk", allow_null=True, default=None)
    measure = serializers.IntegerField(source="measure.pk", allow_null=True, default=None)


class ProposalAddSerializer(serializers.Serializer):
    keys = serializers.ListField(
        child=serializers.CharField(max_length=40),
        required=False,
        max_length=500,
        help_text=_("Keys of the proposals to add; leave out to add them all."),
    )


_FORUM_FILTER = OpenApiParameter(
    "forum", OpenApiTypes.INT, description=_("Only the meetings of this forum.")
)


@extend_schema_view(
    list=extend_schema(
        parameters=[_FORUM_FILTER],
        responses={200: MeetingSerializer(many=True), **error_responses(*_READ)},
    ),
    retrieve=extend_schema(responses={200: MeetingSerializer, **error_responses(*_READ)}),
    create=extend_schema(
        request=MeetingCreateSerializer,
        responses={201: MeetingSerializer, **error_responses(*_WRITE)},
    ),
    partial_update=extend_schema(
        request=MeetingUpdateSerializer,
        responses={200: MeetingSerializer, **error_responses(*_WRITE)},
    ),
    destroy=extend_schema(responses={204: None, **error_responses(*_WRITE)}),
)
class MeetingViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Forum meetings: the forum's members (and the forums above it) read them; its chair and
    secretary plan and record them. Updates are PATCH with the ``version`` read."""

    serializer_class = MeetingSerializer
    pagination_class = Pagination
    schema = _PatchWithRequiredSchema()
    parser_classes = [JSONParser]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        queryset = meetings_for_api(self.request.user)
        forum = self.request.query_params.get("forum")
        if forum is not None and self.action == "list":
            try:
                value = int(forum)
            except ValueError as exc:
                raise NotFound(_("No such forum.")) from exc
            if not 1 <= value <= _INT_MAX:
                raise NotFound(_("No such forum."))
            queryset = queryset.filter(forum_id=value)
        return queryset

    def _answer(self, meeting, code=status.HTTP_200_OK):
        fresh = self.get_queryset().get(pk=meeting.pk)
        return Response(MeetingSerializer(fresh, context=self.get_serializer_context()).data, code)

    def create(self, request, *args, **kwargs):
        form = MeetingCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        meeting = meeting_create(
            user=request.user,
            forum=data["forum"],
            starts_at=data["starts_at"],
            location=data.get("location", ""),
            present=data.get("present", ()),
            minutes=data.get("minutes", ""),
        )
        return self._answer(meeting, status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        meeting = self.get_object()
        form = MeetingUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        meeting_update(
            user=request.user,
            meeting=meeting,
            version=data["version"],
            starts_at=data.get("starts_at"),
            location=data.get("location"),
            present=data.get("present"),
            minutes=data.get("minutes"),
        )
        return self._answer(meeting)

    def destroy(self, request, *args, **kwargs):
        meeting_delete(user=request.user, meeting=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: ProposalSerializer(many=True), **error_responses(*_READ)})
    @action(detail=True, methods=["get"], pagination_class=None)
    def proposals(self, request, pk=None):
        """What waits for the forum and is not on the agenda yet (for its chair and secretary;
        others get an empty list)."""
        meeting = self.get_object()
        if not request.user.has_perm("forums.record_meeting", meeting):
            return Response([])
        return Response(ProposalSerializer(agenda.agenda_propose(meeting), many=True).data)

    @extend_schema(
        request=ProposalAddSerializer,
        responses={201: AgendaItemSerializer(many=True), **error_responses(*_WRITE)},
    )
    @proposals.mapping.post
    def add_proposals(self, request, pk=None):
        """Add the proposals (all, or those named): what is on the agenda already is not
        added again."""
        meeting = self.get_object()
        form = ProposalAddSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        keys = form.validated_data.get("keys")
        added = agenda.agenda_proposals_add(user=request.user, meeting=meeting, keys=keys)
        return Response(AgendaItemSerializer(added, many=True).data, status.HTTP_201_CREATED)


# --------------------------------------------------------------------------------------------
# Agenda items
# --------------------------------------------------------------------------------------------


class AgendaItemCreateSerializer(serializers.Serializer):
    meeting = serializers.IntegerField(min_value=1, max_value=_INT_MAX)
    title = serializers.CharField(max_length=300, required=False, allow_blank=True)
    initiative = PKRef(queryset=Initiative.objects.all(), required=False, allow_null=True)
    measure = PKRef(queryset=Measure.objects.all(), required=False, allow_null=True)
    notes = serializers.CharField(required=False, allow_blank=True)


class AgendaItemUpdateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=300, required=False)
    notes = serializers.CharField(required=False, allow_blank=True)
    digest = serializers.CharField(
        max_length=32,
        required=False,
        help_text=_("The digest you read; a save over text changed meanwhile is a 409."),
    )


class AgendaMoveSerializer(serializers.Serializer):
    direction = serializers.ChoiceField(choices=["up", "down"], required=False)
    position = serializers.IntegerField(min_value=1, max_value=_INT_MAX, required=False)

    def validate(self, attrs):
        if "direction" not in attrs and "position" not in attrs:
            raise serializers.ValidationError(_("Give a direction or a position."))
        return attrs


_MEETING_FILTER = OpenApiParameter(
    "meeting", OpenApiTypes.INT, description=_("Only the items of this meeting.")
)


@extend_schema_view(
    list=extend_schema(
        parameters=[_MEETING_FILTER],
        responses={200: AgendaItemSerializer(many=True), **error_responses(*_READ)},
    ),
    retrieve=extend_schema(responses={200: AgendaItemSerializer, **error_responses(*_READ)}),
    create=extend_schema(
        request=AgendaItemCreateSerializer,
        responses={201: AgendaItemSerializer, **error_responses(*_WRITE)},
    ),
    partial_update=extend_schema(
        request=AgendaItemUpdateSerializer,
        responses={200: AgendaItemSerializer, **error_responses(*_WRITE)},
    ),
    destroy=extend_schema(responses={204: None, **error_responses(*_WRITE)}),
)
class AgendaItemViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Agenda items of the meetings one may read, in order; the chair and secretary add,
    edit, move and remove them."""

    serializer_class = AgendaItemSerializer
    pagination_class = Pagination
    parser_classes = [JSONParser]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        queryset = (
            AgendaItem.objects.filter(meeting__in=visible_meetings(self.request.user))
            .select_related("meeting", "meeting__forum")
            .order_by("meeting_id", "position", "pk")
        )
        meeting = self.request.query_params.get("meeting")
        if meeting is not None and self.action == "list":
            try:
                value = int(meeting)
            except ValueError as exc:
                raise NotFound(_("No such meeting.")) from exc
            if not 1 <= value <= _INT_MAX:
                raise NotFound(_("No such meeting."))
            queryset = queryset.filter(meeting_id=value)
        return queryset

    def create(self, request, *args, **kwargs):
        form = AgendaItemCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        meeting = visible_meetings(request.user).filter(pk=data["meeting"]).first()
        if meeting is None:
            raise NotFound(_("No such meeting that you may see."))
        item = agenda.agenda_item_add(
            user=request.user,
            meeting=meeting,
            title=data.get("title", ""),
            initiative=data.get("initiative"),
            measure=data.get("measure"),
            notes=data.get("notes", ""),
        )
        return Response(AgendaItemSerializer(item).data, status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        item = self.get_object()
        form = AgendaItemUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        agenda.agenda_item_update(
            user=request.user,
            item=item,
            title=data.get("title"),
            notes=data.get("notes"),
            digest=data.get("digest"),
        )
        return Response(AgendaItemSerializer(item).data)

    def destroy(self, request, *args, **kwargs):
        agenda.agenda_item_delete(user=request.user, item=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=AgendaMoveSerializer,
        responses={200: AgendaItemSerializer(many=True), **error_responses(*_WRITE)},
    )
    @action(detail=True, methods=["post"])
    def move(self, request, pk=None):
        """Move the item up, down or to a position; answers the meeting's agenda in order."""
        item = self.get_object()
        form = AgendaMoveSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        agenda.agenda_item_move(
            user=request.user,
            item=item,
            direction=form.validated_data.get("direction"),
            position=form.validated_data.get("position"),
        )
        items = AgendaItem.objects.filter(meeting_id=item.meeting_id).order_by("position", "pk")
        return Response(AgendaItemSerializer(items, many=True).data)

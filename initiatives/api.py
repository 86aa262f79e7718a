"""REST API for initiatives, their steps and history, PDSA cycles and the workflow's table.

Thin, as the pages are: the same rules (``rules.visible_initiatives``: what one may not see is
a 404), the same filters (``forms.InitiativeFilterForm``) and the same services; a service's
refusal is answered by ``lhs.api``'s handler (not_permitted 403, stale 409, other 400).
Units and measures are named by their codes, forums and meetings by their ids.
"""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from forums.models import Forum, Meeting
from measures.api import Pagination, error_responses
from measures.models import Measure
from units.models import Unit

from . import workflow
from .enums import Effort, InitiativeKind, OriginKind, State
from .forms import SORT_KEYS, InitiativeFilterForm
from .models import Activity, Initiative, PDSACycle
from .rules import visible_initiatives
from .selectors import initiative_search, initiative_timeline, move_candidates
from .services import initiative_create, initiative_move, initiative_update, pdsa_cycle_create
from .workflow import Move

_READ = (401, 403, 404)
#: Ids in paths, filters and bodies: what the database's integer holds.
MAX_ID = 2**31 - 1
_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}


class _NotFoundOnMissing:
    """A reference to something that does not exist is a 404 (the request was well formed:
    there is no such forum, unit or measure), not a 400."""

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as error:
            if any(getattr(e, "code", "") == "does_not_exist" for e in error.detail):
                raise NotFound(error.detail[0]) from error
            raise


class PKRef(_NotFoundOnMissing, serializers.PrimaryKeyRelatedField):
    def __init__(self, **kwargs):
        kwargs.setdefault("pk_field", serializers.IntegerField(min_value=1, max_value=MAX_ID))
        super().__init__(**kwargs)


class CodeRef(_NotFoundOnMissing, serializers.SlugRelatedField):
    pass


# -- serializers ------------------------------------------------------------------------------


class ForumRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Forum
        fields = ["id", "name", "kind"]
        read_only_fields = fields


class InitiativeSerializer(serializers.ModelSerializer):
    forum = ForumRefSerializer(read_only=True)
    origin_unit = serializers.SlugRelatedField(slug_field="code", read_only=True)
    department = serializers.SlugRelatedField(slug_field="code", read_only=True)
    measures = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)
    created_by = serializers.CharField(source="created_by.get_username", read_only=True)
    version = serializers.IntegerField(
        read_only=True,
        help_text=_(
            "Counts its steps: send it with a step or an edit to be told (409) if it moved."
        ),
    )

    class Meta:
        model = Initiative
        fields = [
            "id",
            "title",
            "description",
            "kind",
            "origin_kind",
            "origin_unit",
            "origin_reference",
            "forum",
            "department",
            "state",
            "version",
            "measures",
            "expected_benefit",
            "effort",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class InitiativeCreateSerializer(serializers.Serializer):
    """Logging an initiative (``initiative_create``): who may log where is the service's rule."""

    forum = PKRef(queryset=Forum.objects.all(), help_text=_("The forum to log it in."))
    title = serializers.CharField(max_length=200, min_length=1)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    kind = serializers.ChoiceField(choices=InitiativeKind.choices)
    origin_kind = serializers.ChoiceField(choices=OriginKind.choices)
    origin_unit = CodeRef(
        slug_field="code",
        queryset=Unit.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text=_("The unit's code, for an origin in one of our units."),
    )
    origin_reference = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default=""
    )
    measures = CodeRef(
        slug_field="code", queryset=Measure.objects.all(), many=True, required=False, default=list
    )
    expected_benefit = serializers.CharField(required=False, allow_blank=True, default="")
    effort = serializers.ChoiceField(
        choices=Effort.choices, required=False, allow_blank=True, default=""
    )


class InitiativeUpdateSerializer(serializers.Serializer):
    """What may change while it is open; every field is optional (the rest stays)."""

    title = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    expected_benefit = serializers.CharField(required=False, allow_blank=True)
    effort = serializers.ChoiceField(choices=Effort.choices, required=False, allow_blank=True)
    measures = CodeRef(slug_field="code", queryset=Measure.objects.all(), many=True, required=False)
    version = serializers.IntegerField(
        required=False, min_value=0, help_text=_("The version you read; 409 if it has moved.")
    )


class StepSerializer(serializers.Serializer):
    """A step the caller may take now, from the workflow's table."""

    name = serializers.CharField()
    label = serializers.CharField()
    to_state = serializers.ChoiceField(choices=State.choices)
    needs_comment = serializers.BooleanField()
    needs_target_forum = serializers.BooleanField(
        help_text=_("Name ``target_forum``: one of ``target_forums``.")
    )
    target_forums = ForumRefSerializer(many=True)
    via = serializers.CharField(
        allow_blank=True,
        help_text=_("Not empty: the step is taken only through that service's own endpoint."),
    )


class TransitionRequestSerializer(serializers.Serializer):
    to_state = serializers.ChoiceField(
        choices=State.choices, help_text=_("The state to move it to, by the table's one step.")
    )
    comment = serializers.CharField(required=False, allow_blank=True, default="")
    target_forum = PKRef(
        queryset=Forum.objects.all(), required=False, allow_null=True, default=None
    )
    meeting = PKRef(
        queryset=Meeting.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text=_("The meeting of the current forum the decision was taken in."),
    )
    version = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=0,
        help_text=_("The version you read; 409 if it has moved since."),
    )


class ActivitySerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()
    label = serializers.SerializerMethodField()

    class Meta:
        model = Activity
        fields = [
            "id",
            "transition",
            "label",
            "actor",
            "at",
            "from_state",
            "to_state",
            "from_forum",
            "to_forum",
            "comment",
            "meeting",
        ]
        read_only_fields = fields

    def get_actor(self, activity: Activity) -> str | None:
        """The person's user name; null for a step the system took."""
        return activity.actor.get_username() if activity.actor_id else None

    def get_label(self, activity: Activity) -> str:
        if activity.transition == workflow.LOG_NAME:
            return str(_("Logged"))
        step = workflow.BY_NAME.get(activity.transition)
        return str(step.label) if step else activity.transition


class PDSACycleSerializer(serializers.ModelSerializer):
    initiative = PKRef(queryset=Initiative.objects.none())
    unit = CodeRef(slug_field="code", queryset=Unit.objects.all())
    measure = CodeRef(
        slug_field="code",
        queryset=Measure.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text=_("The measure it watches; null: every chart of the unit."),
    )
    created_by = serializers.CharField(source="created_by.get_username", read_only=True)

    class Meta:
        model = PDSACycle
        fields = [
            "id",
            "initiative",
            "unit",
            "measure",
            "plan",
            "do",
            "study",
            "act",
            "start_date",
            "end_date",
            "created_by",
            "created_at",
        ]
        read_only_fields = ["id", "created_by", "created_at"]
        extra_kwargs = {
            "do": {"required": False, "default": ""},
            "study": {"required": False, "default": ""},
            "act": {"required": False, "default": ""},
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["initiative"].queryset = visible_initiatives(request.user)


class WorkflowStepSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    sources = serializers.ListField(child=serializers.ChoiceField(choices=State.choices))
    target = serializers.ChoiceField(choices=State.choices)
    at = serializers.ListField(child=serializers.CharField(), help_text=_("Kinds of forum."))
    actors = serializers.ListField(child=serializers.CharField())
    needs_comment = serializers.BooleanField()
    move = serializers.ChoiceField(choices=[(m.value, m.value) for m in Move])
    via = serializers.CharField(allow_blank=True)
    guards = serializers.ListField(
        child=serializers.CharField(),
        default=list,
        help_text=_("Conditions on the initiative's own data the step needs besides."),
    )


# -- views -------------------------------------------------------------------------------------

_FILTERS = [
    OpenApiParameter("q", str, description=_("Words in the title, description or reference.")),
    OpenApiParameter("forum", _ID, description=_("The forum it sits in.")),
    OpenApiParameter("state", str, enum=[s.value for s in State]),
    OpenApiParameter("kind", str, enum=[k.value for k in InitiativeKind]),
    OpenApiParameter("origin", str, enum=[o.value for o in OriginKind]),
    OpenApiParameter("department", _ID, description=_("Its department's id.")),
    OpenApiParameter("mine", bool, description=_("Logged by me, or sitting in a forum I sit in.")),
    OpenApiParameter(
        "sort", str, enum=sorted(SORT_KEYS), description=_("``-`` first: descending.")
    ),
]


class ApiFilterForm(InitiativeFilterForm):
    """The list page's filters, with a forum or department named by an id that may match
    nothing (an empty list, as any other filter that matches nothing)."""

    # ``initiative_search`` filters by the id as by the forum itself.
    forum = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    department = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    mine = forms.TypedChoiceField(
        required=False,
        choices=[("true", "true"), ("false", "false")],
        coerce=lambda value: value == "true",
        empty_value=False,
    )

    def clean(self):
        # A filter given empty is not one of its values (the schema's enums and integers).
        for name in self.fields:
            if name != "q" and name in self.data and self.data.get(name) == "":
                self.add_error(name, _("Leave the filter out rather than give it empty."))
        return super().clean()


def _steps(user, initiative: Initiative) -> list[dict]:
    steps = []
    for step in workflow.transitions_for(user, initiative):
        candidates = move_candidates(step, initiative) if step.move != Move.STAY else []
        steps.append(
            {
                "name": step.name,
                "label": str(step.label),
                "to_state": step.target,
                "needs_comment": step.needs_comment,
                "needs_target_forum": step.move == Move.UNIT_FORUM or len(candidates) > 1,
                "target_forums": candidates,
                "via": step.via,
            }
        )
    return steps


@extend_schema_view(
    list=extend_schema(
        summary=_("Initiatives, filtered as on the list page"),
        parameters=_FILTERS,
        responses={200: InitiativeSerializer(many=True), **error_responses(400, *_READ)},
    ),
    retrieve=extend_schema(
        summary=_("One initiative"),
        responses={200: InitiativeSerializer, **error_responses(*_READ)},
    ),
)
class InitiativeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Initiatives: every active member of staff reads them; logging, changing and moving
    them follow the same rules as the pages."""

    serializer_class = InitiativeSerializer
    pagination_class = Pagination
    parser_classes = [JSONParser]
    lookup_value_regex = "[0-9]{1,9}"  # a longer number is no id of ours: 404
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        initiatives = visible_initiatives(self.request.user)
        if self.action == "list":
            form = ApiFilterForm(self.request.query_params)
            if not form.is_valid():
                raise ValidationError(form.errors.get_json_data())
            return initiative_search(
                initiatives, user=self.request.user, **form.search_arguments()
            ).prefetch_related("measures")
        return initiatives.select_related(
            "forum", "department", "origin_unit", "created_by"
        ).prefetch_related("measures")

    @extend_schema(
        summary=_("Log an initiative"),
        request=InitiativeCreateSerializer,
        # 404: the forum, unit or a measure named does not exist.
        responses={201: InitiativeSerializer, **error_responses(400, 401, 403, 404)},
    )
    def create(self, request):
        incoming = InitiativeCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        initiative = initiative_create(user=request.user, **incoming.validated_data)
        body = InitiativeSerializer(self.get_queryset().get(pk=initiative.pk)).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary=_("Change what an open initiative says"),
        request=InitiativeUpdateSerializer,
        responses={200: InitiativeSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    def partial_update(self, request, pk=None):
        initiative = self.get_object()
        incoming = InitiativeUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        initiative_update(
            initiative=initiative,
            user=request.user,
            title=data.get("title", initiative.title),
            description=data.get("description", initiative.description),
            expected_benefit=data.get("expected_benefit", initiative.expected_benefit),
            effort=data.get("effort", initiative.effort),
            measures=data.get("measures"),
            version=data.get("version"),
        )
        return Response(InitiativeSerializer(self.get_queryset().get(pk=initiative.pk)).data)

    @extend_schema(
        methods=["GET"],
        summary=_("The steps you may take on it now"),
        responses={200: StepSerializer(many=True), **error_responses(*_READ)},
    )
    @extend_schema(
        methods=["POST"],
        summary=_("Take a step: move it to a state"),
        request=TransitionRequestSerializer,
        responses={201: ActivitySerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def transitions(self, request, pk=None):
        initiative = self.get_object()
        if request.method == "GET":
            return Response(StepSerializer(_steps(request.user, initiative), many=True).data)
        incoming = TransitionRequestSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        activity = initiative_move(
            initiative=initiative, user=request.user, **incoming.validated_data
        )
        return Response(ActivitySerializer(activity).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary=_("Its history, oldest first"),
        responses={200: ActivitySerializer(many=True), **error_responses(*_READ)},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def activities(self, request, pk=None):
        initiative = self.get_object()
        return Response(ActivitySerializer(initiative_timeline(initiative), many=True).data)


@extend_schema_view(
    list=extend_schema(
        summary=_("PDSA cycles"),
        parameters=[
            OpenApiParameter("unit", str, description=_("A unit's code.")),
            OpenApiParameter("initiative", _ID, description=_("An initiative's id.")),
        ],
        responses={200: PDSACycleSerializer(many=True), **error_responses(400, *_READ)},
    ),
    retrieve=extend_schema(responses={200: PDSACycleSerializer, **error_responses(*_READ)}),
    create=extend_schema(
        summary=_("Record a PDSA cycle"),
        responses={201: PDSACycleSerializer, **error_responses(400, 401, 403, 404)},
    ),
)
class PDSACycleViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """PDSA cycles units run on initiatives: read by whoever may see the initiative; recorded
    by those who run cycles in the unit (``rules.pdsa_units``)."""

    serializer_class = PDSACycleSerializer
    pagination_class = Pagination
    parser_classes = [JSONParser]
    lookup_value_regex = "[0-9]{1,9}"

    def get_queryset(self):
        cycles = PDSACycle.objects.filter(
            initiative__in=visible_initiatives(self.request.user)
        ).select_related("unit", "measure", "created_by")
        if self.action == "list":
            unit = self.request.query_params.get("unit")
            initiative = self.request.query_params.get("initiative")
            if unit:
                cycles = cycles.filter(unit__code=unit)
            if initiative is not None:
                if not initiative.isdigit() or not 1 <= int(initiative) <= MAX_ID:
                    raise ValidationError({"initiative": [_("An initiative's id is a number.")]})
                cycles = cycles.filter(initiative_id=int(initiative))
        return cycles.order_by("start_date", "pk")

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = pdsa_cycle_create(user=self.request.user, **data)


@extend_schema_view(
    list=extend_schema(
        summary=_("The workflow's table: every step, from where to where, by whom"),
        responses={200: WorkflowStepSerializer(many=True), **error_responses(401, 403)},
    )
)
class WorkflowViewSet(viewsets.ViewSet):
    """The workflow as data (the same table the pages and the service read)."""

    def list(self, request):
        return Response(WorkflowStepSerializer(workflow.describe(), many=True).data)

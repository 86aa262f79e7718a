"""REST API for prioritisation: criteria, one's own scores, a forum's ranking.

The same rules as the pages (``rules.py``, section "Prioritisation"): every logged-in member
of staff reads the criteria and rankings of department groups and the division board; the
forum's chair writes its criteria; a member writes only their own scores, through
``prioritisation.score_set`` (an upsert: sending the same scores twice leaves one row per
criterion). Nobody reads another member's scores. Refusals map to 400 / 403 / 404 / 409
(``lhs/api.py``).
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, parsers, serializers, status, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.response import Response

from forums.enums import ForumKind
from forums.models import Forum
from measures.api import Pagination, error_responses

from .enums import State
from .models import Criterion, Score
from .prioritisation import (
    HIGHEST,
    LOWEST,
    TIE_BREAKS,
    TIE_RULE,
    criteria_ensure_defaults,
    criterion_create,
    criterion_deactivate,
    criterion_reactivate,
    criterion_update,
    ranking,
    score_set,
)
from .rules import PRIORITISING_FORUMS, visible_initiatives

_INT_MAX = 2**31 - 1
_READ = (401, 403, 404)
_LIST = (400, 401, 403, 404)
_WRITE = (400, 401, 403, 404, 409)


def _number(value) -> float | None:
    return None if value is None else round(float(value), 4)


def _id_param(request, name: str) -> int | None:
    """An id given as a query parameter (400 if it is not one)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdecimal() or not 1 <= int(raw) <= _INT_MAX:
        raise DRFValidationError({name: [_("A whole number from 1.")]})
    return int(raw)


_ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": _INT_MAX}
_FORUM_PARAM = OpenApiParameter(
    "forum",
    _ID_SCHEMA,
    description=_("Only this forum's (a department group or the division board)."),
)
_INITIATIVE_PARAM = OpenApiParameter(
    "initiative", _ID_SCHEMA, description=_("Only this initiative's.")
)


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": 100,
        "pattern": r"^[^\u0000]*\S[^\u0000]*$",
    }
)
class _NameField(serializers.CharField):
    """A criterion's name: not blank (the service trims it)."""


@extend_schema_field({"type": "string", "maxLength": 300, "pattern": r"^[^\u0000]*$"})
class _TextField(serializers.CharField):
    """Free text (no NUL characters: the database refuses them)."""


@extend_schema_field({"type": "string", "pattern": r"^[0-9]{1,3}(\.[0-9]{1,2})?$"})
class _WeightField(serializers.DecimalField):
    """A weight 0–999.99 with at most two decimals, as a string ("1", "1.5")."""


def _prioritising_forum(pk: int) -> Forum:
    forum = Forum.objects.filter(pk=pk, kind__in=PRIORITISING_FORUMS).first()
    if forum is None:
        raise NotFound(_("No such forum that prioritises."))
    return forum


# --------------------------------------------------------------------------------------------
# Criteria
# --------------------------------------------------------------------------------------------


class CriterionSerializer(serializers.ModelSerializer):
    forum = serializers.IntegerField(
        source="forum_id",
        min_value=1,
        max_value=_INT_MAX,
        help_text=_("A department coordinating group or the division board."),
    )
    name = _NameField(max_length=100)
    description = _TextField(max_length=300, required=False, allow_blank=True)
    weight = _WeightField(
        max_digits=5,
        decimal_places=2,
        min_value=0,
        required=False,
        help_text=_("How much it counts against the others (0 or more; default 1)."),
    )
    higher_is_better = serializers.BooleanField(
        required=False,
        help_text=_("False for a cost such as effort: it is counted as 6 minus the score."),
    )
    active = serializers.BooleanField(
        required=False,
        help_text=_("False: switched off, its scores kept but left out of the ranking."),
    )

    class Meta:
        model = Criterion
        fields = [
            "id",
            "forum",
            "name",
            "description",
            "weight",
            "higher_is_better",
            "position",
            "active",
        ]
        read_only_fields = ["id", "position"]
        # The service checks names (unique whatever the case) and speaks the forum's language.
        validators = []


class CriterionUpdateSerializer(CriterionSerializer):
    forum = serializers.IntegerField(source="forum_id", read_only=True)
    name = _NameField(max_length=100, required=False)


@extend_schema_view(
    list=extend_schema(
        parameters=[_FORUM_PARAM],
        description=_(
            "The criteria of the forums that prioritise, in each forum's order. Asking for a "
            "forum that has none yet gives it the five stated ones."
        ),
        responses={200: CriterionSerializer(many=True), **error_responses(*_LIST)},
    ),
    retrieve=extend_schema(responses={200: CriterionSerializer, **error_responses(*_READ)}),
    create=extend_schema(
        description=_("Add a criterion (the forum's chair)."),
        responses={201: CriterionSerializer, **error_responses(*_WRITE)},
    ),
    update=extend_schema(
        request=CriterionUpdateSerializer,
        description=_(
            "Rename, reweigh or switch a criterion off or on (the forum's chair); what is "
            "left out stays as it is."
        ),
        responses={200: CriterionSerializer, **error_responses(*_WRITE)},
    ),
    partial_update=extend_schema(
        request=CriterionUpdateSerializer,
        description=_("Rename, reweigh or switch a criterion off or on (the forum's chair)."),
        responses={200: CriterionSerializer, **error_responses(*_WRITE)},
    ),
)
class CriterionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """A prioritising forum's criteria; its chair writes them. They are never deleted: a
    criterion is switched off (``active: false``) and its scores are kept."""

    pagination_class = Pagination

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return CriterionUpdateSerializer
        return CriterionSerializer

    def get_queryset(self):
        queryset = Criterion.objects.filter(forum__kind__in=PRIORITISING_FORUMS).order_by(
            "forum_id", "position", "pk"
        )
        if self.action == "list":
            forum_id = _id_param(self.request, "forum")
            if forum_id is not None:
                forum = Forum.objects.filter(pk=forum_id, kind__in=PRIORITISING_FORUMS).first()
                if forum is not None:
                    criteria_ensure_defaults(forum)
                queryset = queryset.filter(forum_id=forum_id)
        return queryset

    def create(self, request, *args, **kwargs):
        serializer = CriterionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        criterion = criterion_create(
            user=request.user,
            forum=_prioritising_forum(data["forum_id"]),
            name=data["name"],
            description=data.get("description", ""),
            weight=data.get("weight", 1),
            higher_is_better=data.get("higher_is_better", True),
        )
        if data.get("active") is False:
            criterion = criterion_deactivate(user=request.user, criterion=criterion)
        return Response(CriterionSerializer(criterion).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        criterion = self.get_object()
        partial = kwargs.get("partial", False)
        serializer = CriterionUpdateSerializer(criterion, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        criterion = criterion_update(
            user=request.user,
            criterion=criterion,
            name=data.get("name"),
            description=data.get("description"),
            weight=data.get("weight"),
            higher_is_better=data.get("higher_is_better"),
        )
        if data.get("active") is False:
            criterion = criterion_deactivate(user=request.user, criterion=criterion)
        elif data.get("active") is True:
            criterion = criterion_reactivate(user=request.user, criterion=criterion)
        return Response(CriterionSerializer(criterion).data)


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------


class ScoreSerializer(serializers.ModelSerializer):
    forum = serializers.IntegerField(source="criterion.forum_id", read_only=True)
    value = serializers.IntegerField(min_value=LOWEST, max_value=HIGHEST)

    class Meta:
        model = Score
        fields = ["id", "initiative", "criterion", "forum", "value", "updated_at"]
        read_only_fields = ["id", "initiative", "criterion", "forum", "updated_at"]


@extend_schema_field(
    {"type": "integer", "minimum": LOWEST, "maximum": HIGHEST, "nullable": True},
)
class ScoreValueField(serializers.Field):
    """A score 1–5, or null to take one back: checked by the service, which names the
    criterion of a wrong one."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


@extend_schema_field(
    {
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"pattern": "^[1-9][0-9]{0,8}$"},
        "additionalProperties": {
            "type": "integer",
            "minimum": LOWEST,
            "maximum": HIGHEST,
            "nullable": True,
        },
    }
)
class _ScoresField(serializers.DictField):
    """Criterion id → score."""


class ScoreSetSerializer(serializers.Serializer):
    initiative = serializers.IntegerField(min_value=1, max_value=_INT_MAX)
    forum = serializers.IntegerField(
        min_value=1,
        max_value=_INT_MAX,
        help_text=_("The forum whose criteria these are (a criterion of another is a 404)."),
    )
    scores = _ScoresField(
        child=ScoreValueField(allow_null=True),
        allow_empty=False,
        help_text=_("Criterion id → score 1–5, or null to take a score back."),
    )


class ScoreSetResultSerializer(serializers.Serializer):
    initiative = serializers.IntegerField()
    forum = serializers.IntegerField()
    scores = ScoreSerializer(many=True, help_text=_("Your scores of it in that forum now."))


@extend_schema_view(
    list=extend_schema(
        parameters=[_FORUM_PARAM, _INITIATIVE_PARAM],
        description=_("Your own scores (nobody reads another member's)."),
        responses={200: ScoreSerializer(many=True), **error_responses(*_LIST)},
    ),
    retrieve=extend_schema(responses={200: ScoreSerializer, **error_responses(*_READ)}),
    create=extend_schema(
        request=ScoreSetSerializer,
        description=_(
            "Score an initiative on several criteria of one forum at once (a member of the "
            "forum, while it scores the initiative). Sending it again changes the scores, "
            "never adds rows."
        ),
        responses={200: ScoreSetResultSerializer, **error_responses(*_WRITE)},
    ),
    update=extend_schema(responses={200: ScoreSerializer, **error_responses(*_WRITE)}),
    partial_update=extend_schema(responses={200: ScoreSerializer, **error_responses(*_WRITE)}),
    destroy=extend_schema(responses={204: None, **error_responses(*_WRITE)}),
)
class ScoreViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your scores of initiatives, per criterion."""

    serializer_class = ScoreSerializer
    pagination_class = Pagination
    # A body of criterion ids and scores is JSON (a form cannot carry the mapping).
    parser_classes = [parsers.JSONParser]

    def get_queryset(self):
        queryset = (
            Score.objects.filter(member=self.request.user)
            .select_related("criterion")
            .order_by("initiative_id", "criterion__forum_id", "criterion__position", "pk")
        )
        if self.action == "list":
            forum_id = _id_param(self.request, "forum")
            initiative_id = _id_param(self.request, "initiative")
            if forum_id is not None:
                queryset = queryset.filter(criterion__forum_id=forum_id)
            if initiative_id is not None:
                queryset = queryset.filter(initiative_id=initiative_id)
        return queryset

    def create(self, request, *args, **kwargs):
        body = ScoreSetSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        initiative = visible_initiatives(request.user).filter(pk=data["initiative"]).first()
        if initiative is None:
            raise NotFound(_("No such initiative."))
        forum = _prioritising_forum(data["forum"])
        score_set(user=request.user, initiative=initiative, scores=data["scores"], forum=forum)
        mine = self.get_queryset().filter(initiative=initiative, criterion__forum=forum)
        return Response(
            {
                "initiative": initiative.pk,
                "forum": forum.pk,
                "scores": ScoreSerializer(mine, many=True).data,
            }
        )

    def update(self, request, *args, **kwargs):
        score = self.get_object()
        serializer = ScoreSerializer(score, data=request.data, partial=kwargs.get("partial"))
        serializer.is_valid(raise_exception=True)
        if "value" in serializer.validated_data:
            score_set(
                user=request.user,
                initiative=score.initiative,
                scores={score.criterion_id: serializer.validated_data["value"]},
            )
        score.refresh_from_db()
        return Response(ScoreSerializer(score).data)

    def destroy(self, request, *args, **kwargs):
        score = self.get_object()
        score_set(user=request.user, initiative=score.initiative, scores={score.criterion_id: None})
        return Response(status=status.HTTP_204_NO_CONTENT)


# --------------------------------------------------------------------------------------------
# Rankings
# --------------------------------------------------------------------------------------------


class RankingRowSerializer(serializers.Serializer):
    initiative = serializers.IntegerField(source="pk")
    title = serializers.CharField()
    state = serializers.ChoiceField(choices=State.choices)
    forum = serializers.IntegerField(source="forum_id", help_text=_("Where it sits now."))
    rank = serializers.IntegerField(allow_null=True, help_text=_("Null: nobody has scored it."))
    mean = serializers.FloatField(allow_null=True)
    median = serializers.FloatField(allow_null=True)
    scorers = serializers.IntegerField(help_text=_("Members who scored it."))
    my_score = serializers.FloatField(allow_null=True, help_text=_("Your own weighted score."))
    tied = serializers.BooleanField(help_text=_("Shares its mean with a neighbour on the list."))
    tie_break = serializers.ChoiceField(
        choices=[("", "")] + [(key, str(label)) for key, label in TIE_BREAKS.items()],
        allow_blank=True,
        help_text=_("What ordered it against the initiative it is tied with."),
    )
    criterion_means = serializers.DictField(
        child=serializers.FloatField(),
        help_text=_("Criterion id → the members' mean score on it (as given, not inverted)."),
    )

    def to_representation(self, row):
        return {
            "initiative": row.pk,
            "title": row.title,
            "state": row.state,
            "forum": row.forum_id,
            "rank": row.rank,
            "mean": _number(row.mean),
            "median": _number(row.median),
            "scorers": row.scorers,
            "my_score": _number(row.mine),
            "tied": row.tied,
            "tie_break": row.tie_break,
            "criterion_means": {str(k): _number(v) for k, v in row.criterion_means.items()},
        }


class RankingSerializer(serializers.Serializer):
    forum = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=ForumKind.choices)
    tie_rule = serializers.CharField(help_text=_("How ties on the mean are broken."))
    criteria = CriterionSerializer(many=True)
    rows = RankingRowSerializer(
        many=True, help_text=_("Ranked initiatives first, then those nobody has scored.")
    )


class RankedForumSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=ForumKind.choices, read_only=True)

    class Meta:
        model = Forum
        fields = ["id", "name", "kind"]
        read_only_fields = fields


@extend_schema_view(
    list=extend_schema(
        description=_("The forums that prioritise (each has a ranking)."),
        responses={200: RankedForumSerializer(many=True), **error_responses(401, 403)},
    ),
    retrieve=extend_schema(
        description=_(
            "A forum's ranked list: each member's weighted mean over the criteria they scored "
            "(a criterion where less is better counted as 6 minus the score), then the mean "
            "and median over the members; ties as ``tie_rule`` says."
        ),
        responses={200: RankingSerializer, **error_responses(*_READ)},
    ),
)
class RankingViewSet(viewsets.GenericViewSet):
    """Rankings of the department groups and the division board, by forum id."""

    pagination_class = None
    serializer_class = RankingSerializer

    def get_queryset(self):
        return Forum.objects.filter(kind__in=PRIORITISING_FORUMS).order_by("kind", "name", "pk")

    def list(self, request):
        return Response(RankedForumSerializer(self.get_queryset(), many=True).data)

    def retrieve(self, request, pk=None):
        forum = self.get_object()
        board = ranking(forum, user=request.user)
        return Response(
            {
                "forum": forum.pk,
                "name": forum.name,
                "kind": forum.kind,
                "tie_rule": str(TIE_RULE),
                "criteria": CriterionSerializer(board.criteria, many=True).data,
                "rows": RankingRowSerializer(board.rows, many=True).data,
            }
        )

"""REST API for scale-up: plans (made through the service), units' adoptions (updated through
the service), and the effect evaluation (read only).

Thin, as the pages are: the same rules (``rules.visible_initiatives``: what one may not see is
a 404), the same services; a refusal is answered by ``lhs.api``'s handler (not_permitted 403,
stale 409, other 400). Units and measures are named by their codes, initiatives, forums and
meetings by their ids. The effect evaluation publishes only shown periods' figures.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from forums.models import Meeting
from measures.api import Pagination, error_responses
from units.models import Unit

from .api import MAX_ID, CodeRef, PKRef
from .effects import effect_evaluation
from .enums import AdoptionState
from .models import Adoption, Initiative, ScaleUpPlan
from .rules import visible_initiatives
from .scale_up import adoption_update, scale_up_plan_create
from .selectors_scale_up import initiative_adoptions, visible_adoptions

_READ = (401, 403, 404)


# -- serializers ------------------------------------------------------------------------------


class AdoptionSerializer(serializers.ModelSerializer):
    unit = serializers.SlugRelatedField(slug_field="code", read_only=True)
    unit_name = serializers.CharField(source="unit.name", read_only=True)
    department = serializers.CharField(source="unit.department.code", read_only=True)
    adaptation = serializers.CharField(
        read_only=True,
        help_text=_("How the unit adapted it to its own context (declined: why it declined)."),
    )
    version = serializers.IntegerField(
        read_only=True,
        help_text=_("Counts its updates: send it with an update to be told (409) if it changed."),
    )
    updated_by = serializers.CharField(source="updated_by.get_username", read_only=True)

    class Meta:
        model = Adoption
        fields = [
            "id",
            "initiative",
            "unit",
            "unit_name",
            "department",
            "state",
            "adaptation",
            "due_date",
            "adopted_on",
            "version",
            "updated_by",
            "updated_at",
        ]
        read_only_fields = fields


class AdoptionUpdateSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=AdoptionState.choices)
    adaptation = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text=_("Needed to adopt (how the unit adapted it) and to decline (why)."),
    )
    adopted_on = serializers.DateField(
        required=False,
        allow_null=True,
        default=None,
        help_text=_("Needed to adopt; not later than today."),
    )
    version = serializers.IntegerField(
        required=False, min_value=0, help_text=_("The version you read (409 if it changed).")
    )


class ScaleUpPlanSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.get_username", read_only=True)
    adoptions = serializers.SerializerMethodField()

    class Meta:
        model = ScaleUpPlan
        fields = ["id", "initiative", "scope", "deadline", "created_by", "created_at", "adoptions"]
        read_only_fields = fields

    @extend_schema_field(AdoptionSerializer(many=True))
    def get_adoptions(self, plan: ScaleUpPlan) -> list[dict]:
        return AdoptionSerializer(initiative_adoptions(plan.initiative), many=True).data


class ScaleUpPlanCreateSerializer(serializers.Serializer):
    # A reference to nothing (no such initiative, unit or meeting one may see) is a 404.
    initiative = PKRef(queryset=Initiative.objects.none())
    scope = serializers.CharField(help_text=_("What is to spread, and where."))
    deadline = serializers.DateField(help_text=_("Not in the past."))
    units = CodeRef(
        slug_field="code",
        many=True,
        queryset=Unit.objects.all(),
        help_text=_("The codes of the units that are to adopt it (active, of the division)."),
    )
    comment = serializers.CharField(required=False, allow_blank=True, default="")
    meeting = PKRef(queryset=Meeting.objects.all(), required=False, allow_null=True, default=None)
    version = serializers.IntegerField(
        required=False, min_value=0, help_text=_("The initiative's version you read.")
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if user is not None:
            self.fields["initiative"].queryset = visible_initiatives(user).select_related("forum")


class SideSerializer(serializers.Serializer):
    mean = serializers.FloatField(
        allow_null=True, help_text=_("Mean of the shown periods; null with fewer than three.")
    )
    periods = serializers.IntegerField(help_text=_("Shown periods (suppressed ones left out)."))


class SignalsSerializer(serializers.Serializer):
    improvement = serializers.IntegerField()
    concern = serializers.IntegerField()
    neither = serializers.IntegerField()
    rules = serializers.ListField(child=serializers.CharField())


class ComparisonSerializer(serializers.Serializer):
    before = serializers.FloatField(allow_null=True)
    after = serializers.FloatField(allow_null=True)
    change = serializers.FloatField(allow_null=True)
    units = serializers.IntegerField(help_text=_("Non-adopting units with enough shown periods."))


class UnitEffectSerializer(serializers.Serializer):
    unit = serializers.CharField(source="unit.code")
    unit_name = serializers.CharField(source="unit.name")
    adopted_on = serializers.DateField()
    has_series = serializers.SerializerMethodField()
    before = SideSerializer(source="effect.before", allow_null=True, default=None)
    after = SideSerializer(source="effect.after", allow_null=True, default=None)
    change = serializers.FloatField(source="effect.change", allow_null=True, default=None)
    verdict = serializers.CharField(
        source="effect.verdict",
        allow_null=True,
        default=None,
        help_text=_("better / worse / same by the measure's direction; null without one."),
    )
    signals_after = SignalsSerializer(source="effect.signals", allow_null=True, default=None)
    comparison = ComparisonSerializer(source="effect.comparison", allow_null=True, default=None)
    difference = serializers.FloatField(source="effect.difference", allow_null=True, default=None)

    def get_has_series(self, row) -> bool:
        return row.effect is not None


class OverallSerializer(serializers.Serializer):
    change = serializers.FloatField(allow_null=True)
    comparison_change = serializers.FloatField(allow_null=True)
    difference = serializers.FloatField(allow_null=True)
    units = serializers.IntegerField()


class MeasureEffectSerializer(serializers.Serializer):
    measure = serializers.CharField(source="measure.code")
    measure_name = serializers.CharField(source="measure.name")
    frequency = serializers.CharField(source="measure.frequency")
    direction = serializers.CharField(source="measure.direction")
    compared_with = serializers.ChoiceField(
        choices=["plan", "division"],
        help_text=_(
            "plan: the plan's units that did not adopt; division: the division's other units."
        ),
    )
    units = UnitEffectSerializer(source="rows", many=True)
    overall = OverallSerializer()


class EffectsSerializer(serializers.Serializer):
    initiative = serializers.IntegerField()
    measures = MeasureEffectSerializer(many=True)


# -- viewsets -------------------------------------------------------------------------------


def _by_initiative(queryset, given: str):
    """The ``initiative`` filter: an integer (the schema says so; anything else is a 400).
    An id no initiative can have matches nothing."""
    try:
        pk = int(given)
    except ValueError:
        raise serializers.ValidationError(
            {"initiative": [_("An initiative's id is a number.")]}
        ) from None
    return queryset.filter(initiative_id=pk) if 0 < pk <= MAX_ID else queryset.none()


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("initiative", int, description=_("An initiative's id."))],
        responses={200: ScaleUpPlanSerializer(many=True), **error_responses(400, *_READ)},
    ),
    retrieve=extend_schema(responses={200: ScaleUpPlanSerializer, **error_responses(*_READ)}),
)
class ScaleUpPlanViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Scale-up plans: making one takes the initiative from approved to scaling up, with a
    planned adoption for each target unit (the board's chair or secretary)."""

    serializer_class = ScaleUpPlanSerializer
    pagination_class = Pagination
    parser_classes = [JSONParser]

    def get_queryset(self):
        plans = ScaleUpPlan.objects.filter(
            initiative__in=visible_initiatives(self.request.user)
        ).select_related("initiative", "created_by")
        initiative = self.request.query_params.get("initiative")
        if initiative is not None:
            plans = _by_initiative(plans, initiative)
        return plans.order_by("-created_at", "-pk")

    @extend_schema(
        request=ScaleUpPlanCreateSerializer,
        responses={201: ScaleUpPlanSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    def create(self, request, *args, **kwargs):
        given = ScaleUpPlanCreateSerializer(data=request.data, user=request.user)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        plan = scale_up_plan_create(
            user=request.user,
            initiative=data["initiative"],
            scope=data["scope"],
            deadline=data["deadline"],
            units=data["units"],
            comment=data["comment"],
            meeting=data["meeting"],
            version=data.get("version"),
        )
        return Response(ScaleUpPlanSerializer(plan).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("initiative", int, description=_("An initiative's id.")),
            OpenApiParameter("unit", str, description=_("A unit's code.")),
            OpenApiParameter("state", str, enum=[s.value for s in AdoptionState]),
        ],
        responses={200: AdoptionSerializer(many=True), **error_responses(400, *_READ)},
    ),
    retrieve=extend_schema(responses={200: AdoptionSerializer, **error_responses(*_READ)}),
)
class AdoptionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Units' adoptions of spreading initiatives: state, how the unit adapted it, due date."""

    serializer_class = AdoptionSerializer
    pagination_class = Pagination
    parser_classes = [JSONParser]
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self):
        adoptions = visible_adoptions(self.request.user)
        params = self.request.query_params
        if "initiative" in params:
            adoptions = _by_initiative(adoptions, params["initiative"])
        if "unit" in params:
            adoptions = adoptions.filter(unit__code__iexact=params["unit"])
        if "state" in params:
            if params["state"] not in AdoptionState.values:
                raise serializers.ValidationError(
                    {
                        "state": [
                            _("Not a state of an adoption: %(states)s.")
                            % {"states": ", ".join(AdoptionState.values)}
                        ]
                    }
                )
            adoptions = adoptions.filter(state=params["state"])
        return adoptions

    @extend_schema(
        request=AdoptionUpdateSerializer,
        responses={200: AdoptionSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    def partial_update(self, request, *args, **kwargs):
        adoption = self.get_object()
        given = AdoptionUpdateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        adoption_update(
            user=request.user,
            adoption=adoption,
            state=data["state"],
            adaptation=data["adaptation"],
            adopted_on=data["adopted_on"],
            version=data.get("version"),
        )
        return Response(AdoptionSerializer(adoption).data)


class EffectViewSet(viewsets.ViewSet):
    """The effect evaluation of an initiative's spread (by the initiative's id), read only:
    for each linked measure and adopting unit, before and after the adoption, special-cause
    points after it, and the non-adopters over the same periods."""

    @extend_schema(responses={200: EffectsSerializer, **error_responses(*_READ)})
    def retrieve(self, request, pk=None):
        initiative = get_object_or_404(
            visible_initiatives(request.user).select_related("forum"),
            pk=pk if str(pk).isdigit() else 0,
        )
        adoptions = initiative_adoptions(initiative)
        data = {
            "initiative": initiative.pk,
            "measures": effect_evaluation(initiative, adoptions=adoptions),
        }
        return Response(EffectsSerializer(data).data)

"""REST API for measures and imports: serializers and viewsets, kept thin."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, parsers, serializers, status, viewsets
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from .enums import Frequency, ImportSource, RowShape, SeriesLevel
from .models import ImportBatch, Measure, Series
from .problems import (
    batch_message,
    rendered_errors,
    rendered_summary,
    with_duplicate_visibility,
)
from .rules import can_upload, visible_batches
from .series import node_code, node_name, public_points, published_totals, series_list
from .services import import_batch_create, import_batch_progress
from .throttling import ImportUploadThrottle


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


_ERRORS = {
    400: OpenApiResponse(
        OpenApiTypes.OBJECT,
        description=_("Invalid input: each field named with its messages."),
    ),
    401: OpenApiResponse(
        ErrorSerializer,
        description=_("Not logged in, or the token is unknown, expired, revoked or malformed."),
    ),
    403: OpenApiResponse(
        ErrorSerializer,
        description=_("Not allowed (for a session: also a missing CSRF token)."),
    ),
    404: OpenApiResponse(
        ErrorSerializer,
        description=_("No such object that you may see, or no such page of a list."),
    ),
    409: OpenApiResponse(
        ErrorSerializer,
        description=_(
            "Someone else changed it meanwhile (the version you read is not the current one): "
            "read it again and retry."
        ),
    ),
    429: OpenApiResponse(
        ErrorSerializer,
        description=_("Too many uploads (one limit with the upload page); see Retry-After."),
    ),
    503: OpenApiResponse(
        ErrorSerializer,
        description=_(
            "The upload could not be queued (the broker or the cache is away); "
            "try again after the seconds in Retry-After."
        ),
    ),
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """The schema's error answers an operation can give (schemathesis checks each one)."""
    return {code: _ERRORS[code] for code in codes}


_READ_ERRORS = (401, 403, 404)


class Pagination(PageNumberPagination):
    """DRF's page numbers, but a blank ``page`` is refused (404) as every other non-number is,
    instead of read as page 1: the schema says an integer."""

    def get_page_number(self, request, paginator):
        number = request.query_params.get(self.page_query_param)
        if number is not None and not number.strip():
            raise NotFound(self.invalid_page_message)
        return super().get_page_number(request, paginator)


class RowErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text=_("Row in the file; the header is row 1."))
    column = serializers.CharField(allow_blank=True)
    value = serializers.CharField(allow_blank=True)
    code = serializers.CharField(
        allow_blank=True, help_text=_("What is wrong, as a stable code (empty on old batches).")
    )
    message = serializers.CharField(help_text=_("What is wrong, in the reader's language."))


class ProblemSummarySerializer(serializers.Serializer):
    code = serializers.CharField()
    count = serializers.IntegerField(help_text=_("Rows with this problem."))
    rows = serializers.ListField(child=serializers.IntegerField(), help_text=_("The first rows."))
    column = serializers.CharField(allow_blank=True)
    message = serializers.CharField(
        help_text=_("The first such problem, in the reader's language.")
    )


class ImportBatchSerializer(serializers.ModelSerializer):
    errors = serializers.SerializerMethodField()
    problem_summary = serializers.SerializerMethodField()
    message = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    uploaded_by = serializers.CharField(source="uploaded_by.get_username", read_only=True)
    # Blank until the worker has read the header: the enum must say so.
    shape = serializers.ChoiceField(choices=RowShape.choices, allow_blank=True, read_only=True)

    class Meta:
        model = ImportBatch
        fields = [
            "id",
            "status",
            "source",
            "original_name",
            "size_bytes",
            "checksum",
            "shape",
            "rows_total",
            "rows_new",
            "rows_existing",
            "error_count",
            "errors",
            "problem_summary",
            "message",
            "duplicate_of",
            "uploaded_by",
            "created_at",
            "started_at",
            "finished_at",
            "progress",
        ]
        read_only_fields = fields

    @extend_schema(
        responses=inline_serializer(
            "ImportProgress",
            {
                "status": serializers.CharField(),
                "rows_done": serializers.IntegerField(),
                "rows_estimated": serializers.IntegerField(),
                "percent": serializers.IntegerField(),
            },
        )
    )
    def get_progress(self, batch) -> dict:
        return import_batch_progress(batch)

    @extend_schema_field(RowErrorSerializer(many=True))
    def get_errors(self, batch) -> list[dict]:
        return rendered_errors(batch.errors)

    @extend_schema_field(ProblemSummarySerializer(many=True))
    def get_problem_summary(self, batch) -> list[dict]:
        return rendered_summary(batch.problem_summary)

    def get_message(self, batch) -> str:
        request = self.context.get("request")
        return batch_message(batch, reader=getattr(request, "user", None))


@extend_schema_field({"type": "string", "format": "binary", "minLength": 1})
class UploadField(serializers.FileField):
    """A file part, not empty: drf-spectacular would describe a plain FileField as a URI
    string (and an empty file is refused)."""


class ImportUploadSerializer(serializers.Serializer):
    file = UploadField(
        help_text=_("CSV file: patient-level or pre-aggregated rows (see the README).")
    )


@extend_schema_view(
    list=extend_schema(
        responses={200: ImportBatchSerializer(many=True), **error_responses(*_READ_ERRORS)}
    ),
    retrieve=extend_schema(
        responses={200: ImportBatchSerializer, **error_responses(*_READ_ERRORS)}
    ),
)
class ImportBatchViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """Import batches: upload a CSV file, then follow its progress and read its report."""

    serializer_class = ImportBatchSerializer
    pagination_class = Pagination
    parser_classes = [parsers.MultiPartParser, parsers.FormParser]

    def get_throttles(self):
        # Uploads only (one limit with the upload page): clients poll progress every second.
        return [ImportUploadThrottle()] if self.action == "create" else []

    def get_queryset(self):
        return with_duplicate_visibility(visible_batches(self.request.user), self.request.user)

    @extend_schema(
        request={"multipart/form-data": ImportUploadSerializer},
        responses={201: ImportBatchSerializer, **error_responses(400, 401, 403, 429, 503)},
    )
    def create(self, request, *args, **kwargs):
        if not can_upload(request.user):
            raise PermissionDenied(_("You may not import data for any unit."))
        upload = ImportUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        try:
            batch = import_batch_create(
                user=request.user,
                upload=upload.validated_data["file"],
                source=ImportSource.API,
                language=get_language() or "en",
            )
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"file": exc.messages}) from exc
        return Response(
            ImportBatchSerializer(batch, context=self.get_serializer_context()).data,
            status=status.HTTP_201_CREATED,
        )


class MeasureSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(
        source="owner.get_username", default=None, read_only=True, allow_null=True
    )
    department = serializers.CharField(
        source="department.code", default=None, read_only=True, allow_null=True
    )
    unit = serializers.CharField(source="unit.code", default=None, read_only=True, allow_null=True)

    class Meta:
        model = Measure
        fields = [
            "id",
            "code",
            "name",
            "description",
            "computation",
            "kind",
            "direction",
            "display_unit",
            "rate_per",
            "target",
            "frequency",
            "scope",
            "department",
            "unit",
            "face",
            "instrument",
            "data_source",
            "value_min",
            "value_max",
            "minimum_n",
            "recording_handbook",
            "owner",
            "active",
        ]


@extend_schema_view(
    list=extend_schema(
        responses={200: MeasureSerializer(many=True), **error_responses(*_READ_ERRORS)}
    ),
    retrieve=extend_schema(responses={200: MeasureSerializer, **error_responses(*_READ_ERRORS)}),
)
class MeasureViewSet(viewsets.ReadOnlyModelViewSet):
    """The measure catalogue: every logged-in user may read it."""

    serializer_class = MeasureSerializer
    pagination_class = Pagination
    lookup_field = "code"

    def get_queryset(self):
        return Measure.objects.select_related("owner", "department", "unit").order_by("code")


class SeriesPointSerializer(serializers.Serializer):
    """One period. A suppressed period carries only ``period_start`` and ``suppressed``."""

    period_start = serializers.DateField(help_text=_("First day of the period (weeks: Monday)."))
    suppressed = serializers.BooleanField(
        help_text=_("Too few observations to show: every figure of the period is withheld.")
    )
    n = serializers.FloatField(
        required=False,
        help_text=_("Observations (patient-level rows, or the people or events behind rows)."),
    )
    numerator = serializers.FloatField(required=False)
    denominator = serializers.FloatField(required=False)
    value = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text=_("In display units: a proportion in %, a rate per its exposure base."),
    )
    centre = serializers.FloatField(required=False, allow_null=True)
    upper = serializers.FloatField(required=False, allow_null=True, help_text=_("3σ limit."))
    lower = serializers.FloatField(required=False, allow_null=True, help_text=_("3σ limit."))
    upper_2s = serializers.FloatField(required=False, allow_null=True)
    lower_2s = serializers.FloatField(required=False, allow_null=True)
    segment = serializers.IntegerField(required=False, help_text=_("Re-basing segment."))
    signals = serializers.ListField(child=serializers.CharField(), required=False)
    point_class = serializers.CharField(required=False, allow_null=True)
    colour = serializers.CharField(required=False, allow_null=True)


class SeriesSerializer(serializers.ModelSerializer):
    measure = serializers.CharField(source="measure.code", read_only=True)
    node = serializers.SerializerMethodField(help_text=_("Code of the unit or department."))
    node_name = serializers.SerializerMethodField()
    kind = serializers.CharField(source="measure.kind", read_only=True)
    direction = serializers.CharField(source="measure.direction", read_only=True)
    display_unit = serializers.CharField(source="measure.display_unit", read_only=True)
    target = serializers.DecimalField(
        source="measure.target", max_digits=12, decimal_places=4, read_only=True
    )
    observation_count = serializers.SerializerMethodField(
        help_text=_(
            "Observations behind the shown periods in the answer; suppressed periods count "
            "nothing (a total that counted them would give their n away)."
        )
    )
    points = serializers.SerializerMethodField()

    class Meta:
        model = Series
        fields = [
            "id",
            "measure",
            "kind",
            "direction",
            "display_unit",
            "target",
            "level",
            "node",
            "node_name",
            "grain",
            "chart",
            "variation_icon",
            "assurance_icon",
            "run_chart",
            "computed_at",
            "observation_count",
            "points",
        ]
        read_only_fields = fields

    def get_node(self, series) -> str:
        return node_code(series)

    def get_node_name(self, series) -> str:
        return node_name(series)

    def get_observation_count(self, series) -> int:
        period = self.context.get("period", {})
        return published_totals(series, **period).observations

    @extend_schema_field(SeriesPointSerializer(many=True))
    def get_points(self, series) -> list[dict]:
        period = self.context.get("period", {})
        return public_points(series, **period)


class SeriesFilterSerializer(serializers.Serializer):
    # Blank: no filter (as an absent parameter).
    measure = serializers.CharField(required=False, allow_blank=True)
    level = serializers.ChoiceField(choices=SeriesLevel.choices, required=False)
    unit = serializers.CharField(required=False, allow_blank=True)
    department = serializers.CharField(required=False, allow_blank=True)
    division = serializers.CharField(required=False, allow_blank=True)
    grain = serializers.ChoiceField(choices=Frequency.choices, required=False)
    period_from = serializers.DateField(required=False)
    period_to = serializers.DateField(required=False)


_SERIES_FILTERS = [
    OpenApiParameter(
        "measure", OpenApiTypes.STR, description=_("Measure code; several separated by commas.")
    ),
    OpenApiParameter("level", OpenApiTypes.STR, enum=SeriesLevel.values),
    OpenApiParameter("unit", OpenApiTypes.STR, description=_("Unit code.")),
    OpenApiParameter("department", OpenApiTypes.STR, description=_("Department code.")),
    OpenApiParameter("division", OpenApiTypes.STR, description=_("Division code.")),
    OpenApiParameter("grain", OpenApiTypes.STR, enum=Frequency.values),
    OpenApiParameter(
        "from",
        OpenApiTypes.DATE,
        description=_("Only periods starting on or after this date."),
    ),
    OpenApiParameter(
        "to", OpenApiTypes.DATE, description=_("Only periods starting on or before this date.")
    ),
]


@extend_schema_view(
    list=extend_schema(
        parameters=_SERIES_FILTERS,
        responses={200: SeriesSerializer(many=True), **error_responses(400, *_READ_ERRORS)},
    ),
    retrieve=extend_schema(
        parameters=_SERIES_FILTERS[-2:],
        responses={200: SeriesSerializer, **error_responses(400, *_READ_ERRORS)},
    ),
)
class SeriesViewSet(viewsets.ReadOnlyModelViewSet):
    """Aggregated series with their SPC statistics: every logged-in user may read them.

    Only aggregates leave the server; periods with too few observations are suppressed.
    """

    serializer_class = SeriesSerializer
    pagination_class = Pagination

    def _filters(self) -> dict:
        # No code holds a NUL: drop it rather than answer 400 (schemathesis: a valid string)
        # or send it to PostgreSQL, which refuses NUL in a text parameter.
        params = {
            ("period_from" if k == "from" else "period_to" if k == "to" else k): v.replace(
                "\x00", ""
            )
            for k, v in self.request.query_params.items()
        }
        checked = SeriesFilterSerializer(data=params)
        checked.is_valid(raise_exception=True)
        return checked.validated_data

    def get_queryset(self):
        filters = self._filters()
        codes = [c.strip() for c in filters.get("measure", "").split(",") if c.strip()]
        return series_list(
            measure_codes=codes,
            level=filters.get("level"),
            unit_code=filters.get("unit"),
            department_code=filters.get("department"),
            division_code=filters.get("division"),
            grain=filters.get("grain"),
        )

    def get_serializer_context(self):
        context = super().get_serializer_context()
        filters = self._filters() if getattr(self, "request", None) else {}
        context["period"] = {
            "period_from": filters.get("period_from"),
            "period_to": filters.get("period_to"),
        }
        return context

"""REST API for measures and imports: serializers and viewsets, kept thin."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, parsers, serializers, status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from .enums import ImportSource
from .models import ImportBatch, Measure
from .rules import can_upload, visible_batches
from .services import import_batch_create, import_batch_progress


class RowErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text=_("Row in the file; the header is row 1."))
    column = serializers.CharField()
    value = serializers.CharField(allow_blank=True)
    message = serializers.CharField()


class ImportBatchSerializer(serializers.ModelSerializer):
    errors = RowErrorSerializer(many=True, read_only=True)
    progress = serializers.SerializerMethodField()
    uploaded_by = serializers.CharField(source="uploaded_by.get_username", read_only=True)

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


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text=_("CSV file: patient-level or pre-aggregated rows (see the README).")
    )


class ImportBatchViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """Import batches: upload a CSV file, then follow its progress and read its report."""

    serializer_class = ImportBatchSerializer
    parser_classes = [parsers.MultiPartParser, parsers.FormParser]

    def get_queryset(self):
        return visible_batches(self.request.user)

    @extend_schema(
        request={"multipart/form-data": ImportUploadSerializer},
        responses={201: ImportBatchSerializer},
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
        return Response(ImportBatchSerializer(batch).data, status=status.HTTP_201_CREATED)


class MeasureSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.get_username", default=None, read_only=True)
    department = serializers.CharField(source="department.code", default=None, read_only=True)
    unit = serializers.CharField(source="unit.code", default=None, read_only=True)

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


class MeasureViewSet(viewsets.ReadOnlyModelViewSet):
    """The measure catalogue: every logged-in user may read it."""

    serializer_class = MeasureSerializer
    lookup_field = "code"

    def get_queryset(self):
        return Measure.objects.select_related("owner", "department", "unit").order_by("code")

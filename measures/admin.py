from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from simple_history.admin import SimpleHistoryAdmin

from .models import ImportBatch, Measure, Series
from .series import published_totals
from .services import import_batch_revert
from .tasks import series_refresh_task


@admin.register(Measure)
class MeasureAdmin(SimpleHistoryAdmin):
    list_display = ["name", "code", "kind", "direction", "frequency", "scope", "target", "active"]
    list_filter = ["kind", "scope", "face", "frequency", "active"]
    search_fields = ["name", "code", "instrument"]
    autocomplete_fields = ["owner"]
    history_list_display = ["target", "active"]
    fieldsets = [
        (None, {"fields": ["code", "name", "description", "computation", "active"]}),
        (
            _("Statistics"),
            {
                "fields": [
                    "kind",
                    "direction",
                    "display_unit",
                    "rate_per",
                    "target",
                    "frequency",
                    "value_min",
                    "value_max",
                    "minimum_n",
                    "baseline_points",
                    "laney",
                ]
            },
        ),
        (_("Ownership"), {"fields": ["scope", "department", "unit", "owner", "face"]}),
        (_("Data"), {"fields": ["instrument", "data_source", "recording_handbook"]}),
    ]

    actions = ["recompute_series"]

    @admin.action(description=_("Recompute series (aggregation and SPC)"))
    def recompute_series(self, request, queryset):
        ids = sorted(queryset.values_list("pk", flat=True))
        # Queued, not run in the request: a full recomputation scans every observation.
        transaction.on_commit(lambda: series_refresh_task.delay(measure_ids=ids, force=True))
        self.message_user(
            request,
            ngettext(
                "Recomputation of %(count)d measure's series queued.",
                "Recomputation of %(count)d measures' series queued.",
                len(ids),
            )
            % {"count": len(ids)},
            messages.SUCCESS,
        )

    def get_readonly_fields(self, request, obj=None):
        # Imported rows refer to the code in files and the kind decides their meaning.
        if obj is not None and obj.has_data():
            return ["code", "kind"]
        return []


@admin.register(ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "original_name",
        "uploaded_by",
        "source",
        "status",
        "rows_total",
        "rows_new",
        "error_count",
        "created_at",
    ]
    list_filter = ["status", "source"]
    search_fields = ["original_name", "checksum", "uploaded_by__username"]
    actions = ["revert"]

    def has_add_permission(self, request):
        return False  # imports come through the upload page, the API or the command

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Revert selected batches (remove their rows)"))
    def revert(self, request, queryset):
        for batch in queryset:
            try:
                import_batch_revert(batch=batch, user=request.user)
            except ValidationError as exc:
                self.message_user(request, f"#{batch.pk}: {exc.messages[0]}", messages.ERROR)


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin):
    """Read-only: series are written by the aggregation jobs alone."""

    list_display = [
        "measure",
        "level",
        "node_key",
        "grain",
        "published_observations",
        "computed_at",
    ]
    list_filter = ["level", "grain"]
    search_fields = ["measure__code", "node_key"]
    list_select_related = ["measure"]
    # ``data`` holds suppressed figures, and ``observation_count`` counts their rows too (a
    # suppressed n is that count less the shown ones): the admin shows published totals only.
    exclude = ["data", "observation_count"]
    readonly_fields = ["published_observations"]

    @admin.display(description=_("observations (shown periods)"))
    def published_observations(self, series) -> int:
        return published_totals(series).observations

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

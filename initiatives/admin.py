from django.contrib import admin

from .models import Activity, Initiative, PDSACycle


class ActivityInline(admin.TabularInline):
    """The history, read only: it is written by ``initiative_transition`` alone."""

    model = Activity
    extra = 0
    can_delete = False
    fields = ["at", "actor", "transition", "from_state", "to_state", "to_forum", "comment"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class PDSACycleInline(admin.StackedInline):
    model = PDSACycle
    extra = 0
    autocomplete_fields = ["created_by"]


@admin.register(Initiative)
class InitiativeAdmin(admin.ModelAdmin):
    list_display = ["title", "kind", "origin_kind", "state", "forum", "updated_at"]
    list_filter = ["state", "kind", "origin_kind", "forum__kind"]
    search_fields = ["title", "description", "origin_reference"]
    autocomplete_fields = ["created_by", "measures"]
    # State and forum move only through the workflow (initiatives.services), never by hand.
    readonly_fields = ["state", "forum", "version", "created_at", "updated_at"]
    inlines = [PDSACycleInline, ActivityInline]


@admin.register(PDSACycle)
class PDSACycleAdmin(admin.ModelAdmin):
    list_display = ["initiative", "unit", "measure", "start_date", "end_date"]
    list_filter = ["unit__department"]
    search_fields = ["initiative__title", "plan"]
    autocomplete_fields = ["initiative", "created_by"]
    date_hierarchy = "start_date"

from django.contrib import admin

from .models import Forum, Membership


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Forum)
class ForumAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "department"]
    list_filter = ["kind"]
    search_fields = ["name"]
    filter_horizontal = ["units"]
    inlines = [MembershipInline]

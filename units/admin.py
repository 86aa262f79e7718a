from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from .models import Affiliation, ApiToken, Department, Division, Unit
from .services import api_token_create, api_token_revoke


@admin.register(Division)
class DivisionAdmin(admin.ModelAdmin):
    list_display = ["name", "code"]


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "division"]
    search_fields = ["name", "code"]


class AffiliationInline(admin.TabularInline):
    model = Affiliation
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Unit)
class UnitAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "department", "kind", "active"]
    list_filter = ["department", "kind", "active"]
    search_fields = ["name", "code"]
    inlines = [AffiliationInline]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "key_prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username"]
    fields = ["user", "name", "key_prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["key_prefix", "created_at", "last_used_at", "revoked_at"]
    autocomplete_fields = ["user"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        # A token's owner never changes: a new owner gets a new token.
        return [*self.readonly_fields, "user"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        token, key = api_token_create(user=obj.user, name=obj.name)
        obj.pk = token.pk
        obj.key_prefix = token.key_prefix
        obj.key_hash = token.key_hash
        self.message_user(
            request,
            _("Token created. Copy it now, it is not shown again: %(key)s") % {"key": key},
            messages.WARNING,
        )

    @admin.action(description=_("Revoke selected tokens"))
    def revoke(self, request, queryset):
        for token in queryset:
            api_token_revoke(token=token)
        self.message_user(request, _("Tokens revoked."))

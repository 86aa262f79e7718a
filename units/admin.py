from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.admin.options import get_content_type_for_model
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils.translation import gettext_lazy as _

from .models import Affiliation, ApiToken, AuditEvent, Department, Division, Unit
from .services import api_token_create, api_token_revoke, user_deactivate
from .signals import audit_admin_entry


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
        token, key = api_token_create(user=obj.user, name=obj.name, actor=request.user)
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
            api_token_revoke(token=token, actor=request.user)
        self.message_user(request, _("Tokens revoked."))


@admin.action(permissions=["delete"], description=django_delete_selected.short_description)
def delete_selected(modeladmin, request, queryset):
    """Django's bulk delete, audited: its log entries are bulk-created, without post_save.

    A single object's entry is saved one by one and reaches the audit log through the
    LogEntry receiver, so only deletions of two or more are recorded here.
    """
    confirmed = bool(request.POST.get("post"))
    objects = list(queryset) if confirmed else []
    response = django_delete_selected(modeladmin, request, queryset)
    if len(objects) > 1:
        model = modeladmin.model
        remaining = set(
            model._default_manager.filter(pk__in=[o.pk for o in objects]).values_list(
                "pk", flat=True
            )
        )
        for obj in objects:
            if obj.pk not in remaining:
                audit_admin_entry(
                    LogEntry(
                        user=request.user,
                        content_type=get_content_type_for_model(obj),
                        object_id=str(obj.pk),
                        object_repr=str(obj)[:200],
                        action_flag=DELETION,
                    )
                )
    return response


admin.site.disable_action("delete_selected")
admin.site.add_action(delete_selected, "delete_selected")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only for everyone, superusers included: the log is append-only."""

    list_display = ["at", "actor_name", "action", "target", "ip_address"]
    list_filter = ["action", "at"]
    search_fields = ["actor_name", "target", "ip_address"]
    date_hierarchy = "at"
    readonly_fields = [
        "at",
        "actor_id",
        "actor_name",
        "action",
        "target",
        "detail",
        "ip_address",
    ]
    actions = None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Deactivating someone here ends their sessions and tokens at once."""

    actions = ["deactivate"]

    def save_model(self, request, obj, form, change):
        was_active = change and type(obj).objects.filter(pk=obj.pk, is_active=True).exists()
        super().save_model(request, obj, form, change)
        if was_active and not obj.is_active:
            user_deactivate(user=obj, actor=request.user)

    @admin.action(permissions=["change"], description=_("Deactivate selected users"))
    def deactivate(self, request, queryset):
        for user in queryset.filter(is_active=True):
            user_deactivate(user=user, actor=request.user)
        self.message_user(request, _("Users deactivated; their sessions and tokens ended."))

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from accounts.models import ApiKey, Membership, Organization, Project, Scope
from accounts.services import api_key_issue, api_key_set_active, api_keys_forget

admin.site.site_header = "Event Analytics administration"
admin.site.site_title = "Event Analytics"


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices, widget=forms.CheckboxSelectMultiple, initial=[Scope.INGEST, Scope.READ]
    )

    class Meta:
        model = ApiKey
        fields = ["project", "name", "scopes", "rate_limit", "ingest_rate_limit", "expires_at", "is_active"]


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ["name", "prefix", "scopes", "is_active", "expires_at", "last_used_at"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True


class ProjectInline(admin.TabularInline):
    model = Project
    fields = ["name", "slug", "timezone"]
    prepopulated_fields = {"slug": ["name"]}
    extra = 0
    show_change_link = True


class MembershipInline(admin.TabularInline):
    model = Membership
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]
    autocomplete_fields = ["user"]
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [ProjectInline, MembershipInline]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "slug", "timezone", "created_at"]
    fields = ["organization", "name", "slug", "timezone", "allowed_origins"]
    list_filter = ["organization", "timezone"]
    search_fields = ["name", "slug", "organization__name"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [ApiKeyInline]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        api_keys_forget(keys=obj.api_keys.all())  # cached keys carry their project


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["name", "prefix", "scope_list", "project", "last_used_at", "is_active", "expires_at"]
    list_filter = ["is_active", "project__organization", "project"]
    search_fields = ["name", "prefix", "project__name", "project__organization__name"]
    readonly_fields = ["prefix", "last_used_at", "created_at"]
    list_select_related = ["project", "project__organization"]
    actions = ["revoke", "activate"]

    @admin.display(description="scopes")
    def scope_list(self, obj):
        return ", ".join(obj.scopes)

    def get_fields(self, request, obj=None):
        fields = ["project", "name", "scopes", "rate_limit", "ingest_rate_limit", "expires_at", "is_active"]
        return fields if obj is None else ["prefix", *fields, "last_used_at", "created_at"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            api_keys_forget(keys=[obj])
        else:
            # Kept on the request only, to be shown once by response_add; never stored.
            request._api_key_plaintext = api_key_issue(api_key=obj)

    def response_add(self, request, obj, post_url_continue=None):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "api_key": obj,
            "plaintext": request._api_key_plaintext,
            "title": "API key created",
        }
        return TemplateResponse(request, "admin/accounts/apikey/created.html", context)

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for api_key in queryset:
            api_key_set_active(api_key=api_key, is_active=False)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)

    @admin.action(description="Activate selected keys")
    def activate(self, request, queryset):
        for api_key in queryset:
            api_key_set_active(api_key=api_key, is_active=True)
        self.message_user(request, f"Activated {queryset.count()} key(s).", messages.SUCCESS)

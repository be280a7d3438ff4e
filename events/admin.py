from django.contrib import admin, messages
from django.db import DatabaseError

from events.models import DeadLetter
from events.services import dead_letter_retry


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    """Events the database refused for their content. Retry one after a fix (it is stored,
    or it stays here with the new error); delete it to drop it for good."""

    list_display = ["id", "project", "short_error", "attempts", "created_at", "last_tried_at"]
    list_filter = ["project"]
    search_fields = ["error", "payload"]
    readonly_fields = ["project", "payload", "error", "attempts", "created_at", "last_tried_at"]
    fields = readonly_fields
    actions = ["retry"]  # and the built-in "delete selected"

    def has_add_permission(self, request):
        return False  # dead letters come from the worker only

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="error")
    def short_error(self, obj: DeadLetter) -> str:
        return obj.error if len(obj.error) <= 120 else obj.error[:119] + "…"

    @admin.action(description="Retry storing the selected events")
    def retry(self, request, queryset):
        stored = refused = 0
        for letter in queryset:
            try:
                if dead_letter_retry(dead_letter=letter):
                    stored += 1
                else:
                    refused += 1
            except DatabaseError as exc:
                self.message_user(request, f"The database is unavailable ({type(exc).__name__}).", messages.ERROR)
                return
        if stored:
            self.message_user(request, f"{stored} stored (or found already stored) and removed.", messages.SUCCESS)
        if refused:
            self.message_user(request, f"{refused} refused again; see their errors.", messages.WARNING)

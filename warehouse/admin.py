from django.contrib import admin

from warehouse.models import MirrorFile


@admin.register(MirrorFile)
class MirrorFileAdmin(admin.ModelAdmin):
    """The column store's catalog, read-only: which Parquet files hold a project's events
    (live, or retired by compaction and waiting for the sweep). `rebuild_mirror` remakes it."""

    list_display = ["path", "project", "day", "rows", "bytes", "created_at", "retired_at"]
    list_filter = ["project", ("retired_at", admin.EmptyFieldListFilter)]
    date_hierarchy = "day"
    ordering = ["project", "-day", "id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the export, compaction and sweep own these rows

from django.contrib import admin

from warehouse.models import MirrorFile, MirrorSpan


class ReadOnly(admin.ModelAdmin):
    """The catalog is written by the export, compaction, merges and sweep only."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the export, compaction, merges and sweep own these rows


@admin.register(MirrorFile)
class MirrorFileAdmin(ReadOnly):
    """The column store's catalog, read-only: which Parquet files hold a project's events
    (live, or retired by compaction and waiting for the sweep). `rebuild_mirror` remakes it."""

    list_display = ["path", "project", "day", "rows", "bytes", "rollup", "created_at", "retired_at"]
    list_filter = ["project", ("retired_at", admin.EmptyFieldListFilter)]
    date_hierarchy = "day"
    ordering = ["project", "-day", "id"]


@admin.register(MirrorSpan)
class MirrorSpanAdmin(ReadOnly):
    """The months' spans of users (warehouse.spans), read-only."""

    list_display = ["path", "project", "month", "rows", "bytes", "created_at", "retired_at"]
    list_filter = ["project", ("retired_at", admin.EmptyFieldListFilter)]
    ordering = ["project", "-month", "id"]

"""The column store's catalog (DuckLake's idea: metadata in SQL, data in Parquet).

`MirrorFile` lists the Parquet files of the mirror; a file is live until compaction retires
it (a retired file stays on disk for a grace period, for readers that listed it before).
`Pending` is the transactional outbox: a row per stored event not yet in a live file,
written in the transaction that stores the event. An export writes the events' file and, in
one transaction, adds it to the catalog and deletes their outbox rows, so every stored event
is in exactly one of the two at any snapshot.
"""

from django.db import models

from accounts.models import Project


class MirrorFile(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()  # the UTC day of every event in the file
    path = models.CharField(max_length=300, unique=True)  # relative to ANALYTICS_DIR
    rows = models.PositiveBigIntegerField()
    bytes = models.PositiveBigIntegerField()  # the file's and its rollup's
    rollup = models.BooleanField(default=False)  # has a rollup beside it (warehouse.rollup)
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "retired_at", "day"], name="mirrorfile_live")]
        verbose_name = "mirror file"

    def __str__(self) -> str:
        return self.path


class MirrorSpan(models.Model):
    """A UTC month's users, merged from its files' rollups (warehouse.spans): per user and
    per (event name, user), the bits of the days they were active. `files` names the files
    it was merged from, per day ({"2024-03-10": [ids], ...}); a reader uses it for a day only
    while all of that day's are live, with the day's other live files read as usual."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    month = models.DateField()  # the month's first day
    path = models.CharField(max_length=300, unique=True)  # relative to ANALYTICS_DIR
    files = models.JSONField()
    rows = models.PositiveBigIntegerField()
    bytes = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "retired_at", "month"], name="mirrorspan_live")]
        verbose_name = "mirror span"

    def __str__(self) -> str:
        return self.path


class Pending(models.Model):
    """An event (events_event.id) stored but not yet in the mirror."""

    event_id = models.BigIntegerField(primary_key=True)
    project_id = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["project_id", "event_id"], name="pending_project")]

    def __str__(self) -> str:
        return f"event {self.event_id} of project {self.project_id}"

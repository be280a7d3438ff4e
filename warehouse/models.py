"""The column store's catalog (DuckLake's idea: metadata in SQL, data in Parquet).

`MirrorFile` lists the Parquet files of the mirror; a file is live until compaction retires
it (a retired file stays on disk for a grace period, for readers that listed it before).
`Outbox` is the transactional outbox: a row per write of events (the ids of the events it
stored that are not yet in a live file), added in the transaction that stores them. An
export writes the events' files and, in one transaction, adds them to the catalog and takes
their ids out of the outbox, so every stored event is in exactly one of the two at any
snapshot.
"""

import json

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


class IdsField(models.Field):
    """A list of ids: bigint[] on PostgreSQL, a JSON array in text elsewhere (SQLite reads it
    with json_each; warehouse.snapshot.outbox_events_sql)."""

    def db_type(self, connection):
        return "bigint[]" if connection.vendor == "postgresql" else "text"

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None:
            return None
        if connection.vendor == "postgresql":  # an array literal: psycopg's list dumper is Python's
            return "{" + ",".join(map(str, map(int, value))) + "}"
        return json.dumps(list(value))

    def from_db_value(self, value, expression, connection):
        return json.loads(value) if isinstance(value, str) else value


class Outbox(models.Model):
    """Events (events_event ids) stored by one write and not yet in the mirror. A row per
    write, not per event: the outbox costs the database a row, its index entries and its
    deletion per batch of events (bench/README.md, "An outbox row per write")."""

    project_id = models.BigIntegerField()
    event_ids = IdsField()
    events = models.PositiveIntegerField()  # len(event_ids)

    class Meta:
        indexes = [models.Index(fields=["project_id", "id"], name="outbox_project")]
        verbose_name_plural = "outbox"

    def __str__(self) -> str:
        return f"{self.events} events of project {self.project_id}"

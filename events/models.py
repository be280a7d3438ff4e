from django.db import models

from accounts.models import Project


class Event(models.Model):
    """One stored event. `event_id` is the dedup key (the client's `eventId`, or a hash of
    the event's content); the unique (project, event_id) constraint is what guarantees that
    an event is stored once, whatever happened to the fast path in Redis."""

    # No foreign key in the database: its check, a lookup of the project per inserted row, was
    # a quarter of PostgreSQL's time per stored event. What it guaranteed, that no event
    # outlives its project, is the project row's lock (events.store): every write holds it
    # shared, a deletion holds it exclusively before it deletes the events.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    event_id = models.CharField(max_length=128)
    user_id = models.CharField(max_length=255)
    event_name = models.CharField(max_length=200)
    timestamp = models.DateTimeField()
    properties = models.JSONField(default=dict)
    session_id = models.CharField(max_length=255, null=True, blank=True)
    page_url = models.TextField(null=True, blank=True)
    user_agent = models.TextField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "event_id"], name="event_unique_event_id")]
        # A user's journey is the one scan left here (analytics read the column store).
        indexes = [models.Index(fields=["project", "user_id", "timestamp"], name="event_project_user_time")]

    def __str__(self) -> str:
        return f"{self.event_name} by {self.user_id} at {self.timestamp:%Y-%m-%d %H:%M:%S}"


class DeadLetter(models.Model):
    """An accepted event the database refused for its content (text it cannot store, a
    malformed row), set aside by the worker so that it never holds back the others. Kept with
    the error until someone retries it (after a fix) or deletes it, from the admin."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    # The job row as the worker received it, as ASCII JSON (escapes such as \ud800 kept), or
    # the raw buffer item when it could not even be read (then there is no project).
    payload = models.TextField()
    error = models.TextField()
    # sha256 of project and payload: a retried job sets the same event aside only once.
    digest = models.CharField(max_length=64, unique=True, editable=False)
    attempts = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    last_tried_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "dead letter"

    def __str__(self) -> str:
        return f"dead letter {self.pk} of project {self.project_id}"


class DirectWrite(models.Model):
    """When events of a project were last written straight to the database because Redis was
    unreachable. Those events have no dedup claim in Redis, so for a claim's lifetime after
    this, events claimed as new are also looked up in the events table (events.dedup)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="+")
    written_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"direct write of project {self.project_id} at {self.written_at}"

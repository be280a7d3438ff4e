import re
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone name (e.g. Europe/Paris).")


ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?$|^https?://\[[0-9a-f:.]+\](:[0-9]{1,5})?$")


def origins_list(value: str) -> list[str]:
    """The origins of an `allowed_origins` text: one per line, case and a final / ignored."""
    return [line.strip().lower().rstrip("/") for line in value.splitlines() if line.strip()]


def validate_origins(value: str) -> None:
    bad = [origin for origin in origins_list(value) if not ORIGIN.match(origin)]
    if bad:
        raise ValidationError(
            f"Not an origin (scheme://host[:port], one per line): {', '.join(bad[:5])}. Example: https://shop.example.com"
        )


class Scope(models.TextChoices):
    INGEST = "ingest", "ingest (send events)"
    READ = "read", "read (analytics, funnels)"
    ADMIN = "admin", "admin (write funnels, manage keys)"


class Organization(models.Model):
    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Project(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    allowed_origins = models.TextField(
        blank=True,
        default="",
        validators=[validate_origins],
        help_text="Web pages allowed to send events from a browser, one origin per line "
        "(https://shop.example.com). Empty: any.",
    )
    # bumped per batch of stored events without Redis (analytics_platform.data_version)
    data_version = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="project_unique_name_per_org"),
        ]

    def __str__(self) -> str:
        return f"{self.organization.name} / {self.name}"

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def origin_allowed(self, origin: str) -> bool:
        allowed = origins_list(self.allowed_origins)
        return not allowed or origin.strip().lower().rstrip("/") in allowed


class Membership(models.Model):
    """A person's place in an organization: they see its projects' pages (viewer), and
    manage its projects' settings and keys there (admin). Superusers see every project."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "viewer"
        ADMIN = "admin", "admin"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="membership_unique")]
        ordering = ["organization__name", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.organization}"


class ApiKey(models.Model):
    """A project's API key. Only `prefix` (for lookup and display) and a SHA-256 of the whole
    key are stored; the plaintext exists once, in the answer to its creation."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, db_index=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    rate_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Read and admin requests per rate-limit window; empty = the server default.",
    )
    ingest_rate_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Event posts per second (bursts of twice that); empty = INGEST_RATE_LIMIT_PER_SECOND.",
    )
    is_active = models.BooleanField(default=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def clean(self) -> None:
        unknown = set(self.scopes or []) - set(Scope.values)
        if unknown or not self.scopes:
            raise ValidationError({"scopes": f"Choose one or more of {', '.join(Scope.values)}."})

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return self.is_active and not self.is_expired

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

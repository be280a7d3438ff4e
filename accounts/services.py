from datetime import datetime, timedelta

import structlog
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.keys import generate_key, hash_key, is_well_formed, key_prefix
from accounts.models import ApiKey, Organization, Project, Scope, validate_timezone
from accounts.selectors import api_key_cache_key, api_key_cache_put, ingest_entry_key
from analytics_platform.errors import InvalidInput
from analytics_platform.redis import redis_client

LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_RATE_LIMIT = 2_147_483_647  # what the column holds
logger = structlog.get_logger(__name__)


def _unique_slug(model, base: str) -> str:
    base = slugify(base)[:90] or "item"
    slug, n = base, 2
    while model.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def scopes_parse(value: str | list[str]) -> list[str]:
    """Turns `ingest,read` or a list into a clean list of scopes; InvalidInput if unknown."""
    items = value.split(",") if isinstance(value, str) else list(value)
    scopes = [s.strip() for s in items if s and s.strip()]
    unknown = sorted(set(scopes) - set(Scope.values))
    if not scopes or unknown:
        raise InvalidInput(
            f"Scopes must be one or more of {', '.join(Scope.values)}.", details={"scopes": unknown or scopes}
        )
    return [s for s in Scope.values if s in scopes]


@transaction.atomic
def organization_get_or_create(*, name: str) -> Organization:
    org = Organization.objects.filter(name=name).first()
    if org is None:
        org = Organization.objects.create(name=name, slug=_unique_slug(Organization, name))
    return org


@transaction.atomic
def project_get_or_create(*, organization: Organization, name: str, timezone_name: str | None = None) -> Project:
    """Gets the organization's project by name or creates it. A given `timezone_name` is
    validated (InvalidInput) and set on the project, new or existing."""
    if timezone_name is not None:
        try:
            validate_timezone(timezone_name)
        except Exception as exc:
            raise InvalidInput(str(exc.messages[0]), details={"timezone": timezone_name}) from None
    project = Project.objects.filter(organization=organization, name=name).first()
    if project is None:
        project = Project.objects.create(
            organization=organization,
            name=name,
            slug=_unique_slug(Project, name),
            timezone=timezone_name or "UTC",
        )
    elif timezone_name is not None and project.timezone != timezone_name:
        project.timezone = timezone_name
        project.save(update_fields=["timezone"])
        api_keys_forget(keys=project.api_keys.all())
    return project


def api_keys_forget(*, keys) -> None:
    """Drops cached copies of these keys and their ingest entries, so a change applies to
    the next request."""
    keys = list(keys)
    try:
        cache.delete_many([api_key_cache_key(key.key_hash) for key in keys])
        client = redis_client()
        if client is not None and keys:
            client.delete(*[ingest_entry_key(key.key_hash) for key in keys])
    except Exception as exc:  # entries expire within AUTH_CACHE_SECONDS anyway
        logger.warning("api_key_cache_forget_failed", error=type(exc).__name__)


def api_key_create(
    *,
    project: Project,
    name: str,
    scopes: list[str],
    rate_limit: int | None = None,
    ingest_rate_limit: int | None = None,
    expires_at: datetime | None = None,
    plaintext: str | None = None,
) -> tuple[ApiKey, str]:
    """Creates a key and returns it with its plaintext, which is not stored anywhere.
    `plaintext` lets operators install a known key (the demo key); otherwise one is generated."""
    scopes = scopes_parse(scopes)
    for field, value in (("rateLimit", rate_limit), ("ingestRateLimit", ingest_rate_limit)):
        if value is not None and not 1 <= value <= MAX_RATE_LIMIT:
            raise InvalidInput(
                f"The rate limit must be a whole number from 1 to {MAX_RATE_LIMIT}.", details={field: value}
            )
    api_key = ApiKey(
        project=project,
        name=name,
        scopes=scopes,
        rate_limit=rate_limit,
        ingest_rate_limit=ingest_rate_limit,
        expires_at=expires_at,
    )
    plaintext = api_key_issue(api_key=api_key, plaintext=plaintext)
    return api_key, plaintext


def api_key_issue(*, api_key: ApiKey, plaintext: str | None = None) -> str:
    """Gives an unsaved, validated key its secret, saves it, and returns the plaintext."""
    plaintext = plaintext or generate_key()
    if not is_well_formed(plaintext):
        raise InvalidInput("A key must be 16 to 128 printable characters.")
    api_key.prefix = key_prefix(plaintext)
    api_key.key_hash = hash_key(plaintext)
    api_key.save()
    return plaintext


def api_key_set_active(*, api_key: ApiKey, is_active: bool) -> ApiKey:
    api_key.is_active = is_active
    api_key.save(update_fields=["is_active"])
    api_keys_forget(keys=[api_key])
    return api_key


def api_key_touch(*, api_key: ApiKey, now: datetime | None = None) -> None:
    """Records use, writing at most once a minute per key to keep the hot path read-only.
    Best effort: with the database down, events still go to the queue."""
    now = now or timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        try:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        except DatabaseError as exc:
            logger.warning("api_key_touch_failed", api_key_id=api_key.pk, error=type(exc).__name__)
        api_key.last_used_at = now
        api_key_cache_put(api_key)  # the cached copy carries the new time


def project_timezone_set(*, project: Project, timezone_name: str) -> Project:
    """Sets the project's timezone (an IANA name, else InvalidInput); cached keys carry
    their project, so they are forgotten."""
    try:
        validate_timezone(timezone_name)
    except ValidationError as exc:
        raise InvalidInput(exc.messages[0], details={"timezone": timezone_name[:100]}) from None
    project.timezone = timezone_name
    project.save(update_fields=["timezone"])
    api_keys_forget(keys=project.api_keys.all())
    return project

"""Per-event validation and normalization of what clients send to POST /api/v1/events.

Each event is checked on its own: a bad one is reported by index and the others go on.
A valid event becomes an `EventRow`, already in storage form (UTC timestamp, canonical JSON
properties, its dedup id), so the worker can write it without looking at it again.

The dedup id is the client's `eventId`, else `h:` + a hash of (userId, eventName, timestamp
in UTC milliseconds, properties as canonical JSON with sorted keys): the same instant written
two ways is one event. An event without a timestamp is stamped on receipt and gets a random
id (`r:`), so two such posts are two events.
"""

import hashlib
import ipaddress
import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MAX_PROPERTIES_BYTES = 32 * 1024
FUTURE_TOLERANCE = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_EPOCH_MS = 253402300799999  # 9999-12-31T23:59:59.999Z

# The order of a job row (EventRow.as_job_row), as the store writes it.
COLUMNS = [
    "event_id",
    "user_id",
    "event_name",
    "timestamp",
    "properties",
    "session_id",
    "page_url",
    "user_agent",
    "ip_address",
    "received_at",
]

# field name → (required, max length)
STRING_FIELDS = {
    "userId": (True, 255),
    "eventName": (True, 200),
    "eventId": (False, 128),
    "sessionId": (False, 255),
    "pageUrl": (False, 8192),
    "userAgent": (False, 2048),
}
# A NUL escape in JSON text: `\u0000` preceded by an even number of backslashes.
NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
# What PostgreSQL cannot store in text or jsonb: NUL, and lone UTF-16 surrogates (JSON's
# `\ud800` escapes are legal JSON but no Unicode text). Property keys and nested values
# are covered too: the check runs on the whole canonical JSON.
NUL_CHARACTER = "must not contain NUL characters"
LONE_SURROGATE = "must be valid Unicode (contains a lone surrogate such as \\ud800)"


def storable_text_problem(value: str) -> str | None:
    """Why the database could not store this string, or None."""
    if "\x00" in value:
        return NUL_CHARACTER
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return LONE_SURROGATE
    return None


@dataclass(slots=True)
class EventRow:
    event_id: str
    user_id: str
    event_name: str
    timestamp: datetime
    properties_json: str
    session_id: str | None
    page_url: str | None
    user_agent: str | None
    ip_address: str | None
    received_at: datetime

    def as_job_row(self) -> list:
        """A JSON-ready list in COLUMNS order."""
        return [
            self.event_id,
            self.user_id,
            self.event_name,
            self.timestamp.isoformat(),
            self.properties_json,
            self.session_id,
            self.page_url,
            self.user_agent,
            self.ip_address,
            self.received_at.isoformat(),
        ]


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def parse_timestamp(value, *, now: datetime) -> datetime:
    """ISO-8601 (naive = UTC) or epoch milliseconds → aware UTC datetime; ValueError if not."""
    if isinstance(value, bool):
        raise ValueError("must be an ISO-8601 string or epoch milliseconds")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value <= MAX_EPOCH_MS:
            raise ValueError("epoch milliseconds out of range")
        parsed = EPOCH + timedelta(milliseconds=value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("must be an ISO-8601 datetime (e.g. 2024-01-31T10:00:00Z) or epoch milliseconds") from None
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    else:
        raise ValueError("must be an ISO-8601 string or epoch milliseconds")
    if parsed < EPOCH:
        raise ValueError("is before 1970")
    if parsed > now + FUTURE_TOLERANCE:
        raise ValueError("is more than 1 hour in the future")
    return parsed


def epoch_ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def _header_text(value: str | None) -> str | None:
    """A request header as storable text (headers arrive as Latin-1: only NUL can hurt)."""
    return (value.replace("\x00", "") or None) if value else None


def validate_event(
    raw, *, received_at: datetime, client_ip: str | None, user_agent: str | None, skew: timedelta = timedelta(0)
):
    """Returns (EventRow, None) for a valid event, or (None, {field: [reasons]}). `skew`
    (received - the client's sentAt) corrects the client's timestamp for its clock; the
    dedup hash keeps the timestamp as sent, so a retry with a new sentAt is the same event."""
    if not isinstance(raw, dict):
        return None, {"event": ["must be a JSON object"]}
    errors: dict[str, list[str]] = {}
    strings: dict[str, str | None] = {}
    for field, (required, max_length) in STRING_FIELDS.items():
        value = raw.get(field)
        if value is None:
            if required:
                errors[field] = ["is required"]
            strings[field] = None
        elif not isinstance(value, str):
            errors[field] = ["must be a string"]
        elif len(value) > max_length or (required and not value):
            errors[field] = [f"must be 1 to {max_length} characters"]
        elif (reason := storable_text_problem(value)) is not None:
            errors[field] = [reason]
        else:
            strings[field] = value or None  # an empty optional string is no value

    timestamp = sent_timestamp = received_at
    if raw.get("timestamp") is not None:
        try:
            sent_timestamp = parse_timestamp(raw["timestamp"], now=received_at - skew)
            timestamp = sent_timestamp + skew
            if timestamp < EPOCH:
                raise ValueError("is before 1970 once corrected by sentAt")
        except ValueError as exc:
            errors["timestamp"] = [str(exc)]

    properties_json = "{}"
    properties = raw.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            errors["properties"] = ["must be a JSON object"]
        else:
            try:
                properties_json = canonical_json(properties)
            except ValueError:
                errors["properties"] = ["contains a number JSON cannot represent (NaN or Infinity)"]
            else:
                try:
                    size = len(properties_json.encode("utf-8"))
                except UnicodeEncodeError:
                    errors["properties"] = [LONE_SURROGATE]
                else:
                    if size > MAX_PROPERTIES_BYTES:
                        errors["properties"] = ["must be at most 32 KB as compact JSON"]
                    elif "\\u0000" in properties_json and NUL_ESCAPE.search(properties_json):
                        errors["properties"] = [NUL_CHARACTER]

    ip = client_ip
    if raw.get("ipAddress") is not None:
        try:
            if not isinstance(raw["ipAddress"], str):
                raise ValueError
            ip = str(ipaddress.ip_address(raw["ipAddress"]))
        except ValueError:
            errors["ipAddress"] = ["must be an IPv4 or IPv6 address"]

    if errors:
        return None, errors

    event_id = strings["eventId"]
    if event_id is None:
        if raw.get("timestamp") is None:
            event_id = "r:" + uuid.uuid4().hex
        else:
            content = json.dumps(
                [strings["userId"], strings["eventName"], epoch_ms(sent_timestamp)], ensure_ascii=False
            )
            event_id = "h:" + hashlib.sha256((content + properties_json).encode("utf-8")).hexdigest()[:40]
    return (
        EventRow(
            event_id=event_id,
            user_id=strings["userId"],
            event_name=strings["eventName"],
            timestamp=timestamp,
            properties_json=properties_json,
            session_id=strings["sessionId"],
            page_url=strings["pageUrl"],
            user_agent=strings["userAgent"] if strings["userAgent"] is not None else _header_text(user_agent),
            ip_address=ip,
            received_at=received_at,
        ),
        None,
    )

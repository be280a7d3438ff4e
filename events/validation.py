"""Per-event validation and normalization of what clients send to POST /api/v1/events.

Each event is checked on its own: a bad one is reported by index and the others go on.
A valid event becomes an `EventRow`, already in storage form (UTC timestamp, canonical JSON
properties, its dedup id), so the worker can write it without looking at it again.

One set of rules, two readers. `parse_body` decodes a request's bytes with msgspec: the
array's items stay raw, and each is decoded into `EventFields`, a struct made from the same
field table (`STRING_FIELDS`) that the hand-written `validate_event` checks. An item the
struct takes is valid by type and length, and only the value rules that no type expresses
(timestamp range, storable text, the properties limit, the address) are left, in `_finish`,
which both readers share. An item the struct refuses goes to `validate_event`, whose job is
then to say every reason; a body msgspec cannot read at all (a lone surrogate, NaN, a number
past a double: JSON that Python still reads) is read by Python's json and checked item by
item the same way, so such values are that event's rejection, as API.md says, not the
body's. Both the hot path (events.hot) and the Django view call `parse_body`.

The dedup id is the client's `eventId`, else `h:` + a hash of (userId, eventName, timestamp
in UTC milliseconds, properties as canonical JSON with sorted keys): the same instant written
two ways is one event. An event without a timestamp is stamped on receipt and gets a random
id (`r:`, then 80 random bits drawn once per process and a counter of the process's ids),
so two such posts are two events; such an id is `minted`: it cannot be a repeat, so it has
nothing to claim in Redis (events.dedup).
"""

import hashlib
import ipaddress
import itertools
import json
import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec

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
    minted: bool = False  # the id is random, made here: no earlier event can have it

    def as_job_row(self, received_at_text: str | None = None) -> list:
        """A JSON-ready list in COLUMNS order (`received_at_text`: received_at's isoformat,
        when the caller has it already: a batch shares one)."""
        received_text = received_at_text or self.received_at.isoformat()
        return [
            self.event_id,
            self.user_id,
            self.event_name,
            received_text if self.timestamp is self.received_at else self.timestamp.isoformat(),  # stamped on receipt
            self.properties_json,
            self.session_id,
            self.page_url,
            self.user_agent,
            self.ip_address,
            received_text,
        ]


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


_sorted_encoder = msgspec.json.Encoder(order="sorted")
# Where msgspec and Python's json write the same float differently: an exponent (Python
# `1e+16`, msgspec `1e16`) or a small number in full (msgspec `0.00001`, Python `1e-05`).
# A match (a string like "3e5" matches too) sends the value to canonical_json instead.
_FLOAT_SPELLING = re.compile(rb"\d[eE]|0\.0000")


def canonical_json_fast(value: dict) -> str:
    """canonical_json, character for character (the stored text and the dedup hash depend
    on it), for values decoded by msgspec (no NaN, infinities or lone surrogates)."""
    encoded = _sorted_encoder.encode(value)
    if _FLOAT_SPELLING.search(encoded):
        return canonical_json(value)
    return encoded.decode("utf-8")


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


_text_encoder = msgspec.json.Encoder()


def _hashed_content(user_id: str, event_name: str, sent: datetime) -> bytes:
    """`json.dumps([user_id, event_name, epoch ms], ensure_ascii=False)` as UTF-8 (msgspec
    escapes strings as Python's json does), the first part of what the dedup id hashes."""
    return b"".join(
        (b"[", _text_encoder.encode(user_id), b", ", _text_encoder.encode(event_name), b", ", b"%d]" % epoch_ms(sent))
    )


def _string_type(required: bool, max_length: int):
    text = Annotated[str, msgspec.Meta(min_length=1 if required else 0, max_length=max_length)]
    return text if required else text | None


# The struct msgspec decodes a valid event into: STRING_FIELDS' types and lengths, the rest
# as JSON types. Unknown fields are ignored, as validate_event ignores them.
EventFields = msgspec.defstruct(
    "EventFields",
    [
        *[
            (name, _string_type(required, max_length))
            for name, (required, max_length) in STRING_FIELDS.items()
            if required
        ],
        *[
            (name, _string_type(required, max_length), None)
            for name, (required, max_length) in STRING_FIELDS.items()
            if not required
        ],
        ("timestamp", str | int | float | None, None),
        ("properties", dict | None, None),
        ("ipAddress", str | None, None),
    ],
)
_event_decoder = msgspec.json.Decoder(EventFields)
_items_decoder = msgspec.json.Decoder(list[msgspec.Raw])


class Envelope(msgspec.Struct):
    batch: list[msgspec.Raw] | None = None
    sentAt: str | int | float | None = None


_envelope_decoder = msgspec.json.Decoder(Envelope)


class BodyError(ValueError):
    """The body is not JSON (the message says why, as Python's json says it)."""


class EnvelopeError(ValueError):
    """A {"batch", "sentAt"} body whose batch is not an array or whose sentAt is no
    timestamp; args: (message, details)."""


def parse_body(raw: bytes, *, received_at: datetime) -> tuple[list, timedelta, datetime | None]:
    """The items of a request body (an event object, an array of them, or {"batch": [...],
    "sentAt": ...}) for `validate_item`, the client's clock skew (received - sentAt, zero
    without sentAt), and sentAt itself. Raises BodyError (not JSON) and EnvelopeError."""
    try:
        items, sent_at = _parse_fast(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        items, sent_at = _parse_python(raw)
    if sent_at is None:
        return items, timedelta(0), None
    try:
        sent = parse_timestamp(sent_at, now=datetime.max.replace(tzinfo=UTC) - timedelta(days=1))
    except ValueError as exc:
        raise EnvelopeError(f"sentAt {exc}.", {"sentAt": str(sent_at)[:100]}) from None
    return items, received_at - sent, sent


def _parse_fast(raw: bytes) -> tuple[list, object]:
    head = raw.lstrip()[:1]
    if head == b"[":
        return _items_decoder.decode(raw), None
    if head == b"{":
        envelope = _envelope_decoder.decode(raw)
        if envelope.batch is not None:
            return envelope.batch, envelope.sentAt
        if b'"batch"' in raw:  # {"batch": null, ...}: let the Python reader name the problem
            raise msgspec.ValidationError
        return [msgspec.Raw(raw)], None  # the envelope's decoding read it all: it is JSON
    return [msgspec.json.decode(raw)], None  # a JSON scalar: validate_event says no


def _parse_python(raw: bytes) -> tuple[list, object]:
    try:
        payload = json.loads(raw)
    except RecursionError:
        raise BodyError("JSON parse error - the document is nested too deeply.") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise BodyError(f"JSON parse error - {exc}") from None
    if not isinstance(payload, dict) or "batch" not in payload:
        return (payload if isinstance(payload, list) else [payload]), None
    batch = payload["batch"]
    if not isinstance(batch, list):
        raise EnvelopeError("batch must be an array of events.", {"batch": type(batch).__name__})
    return batch, payload.get("sentAt")


def validate_item(item, **context) -> tuple["EventRow | None", dict | None]:
    """validate_event for one item of parse_body: raw JSON (msgspec.Raw) or a Python value."""
    if not isinstance(item, msgspec.Raw):
        return validate_event(item, **context)
    try:
        fields = _event_decoder.decode(item)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        try:
            value = json.loads(bytes(item))
        except RecursionError:
            return None, {"event": ["is nested too deeply"]}
        return validate_event(value, **context)
    strings = {name: getattr(fields, name) for name in STRING_FIELDS}
    errors = {}
    for name, value in strings.items():
        if value is not None and (reason := storable_text_problem(value)) is not None:
            errors[name] = [reason]
        elif value == "":
            strings[name] = None  # an empty optional string is no value
    properties = fields.properties
    properties_json = "{}" if not properties else canonical_json_fast(properties)
    return _finish(strings, errors, fields.timestamp, properties_json, fields.ipAddress, **context)


def validate_event(
    raw, *, received_at: datetime, client_ip: str | None, user_agent: str | None, skew: timedelta = timedelta(0)
):
    """Returns (EventRow, None) for a valid event, or (None, {field: [reasons]}). `skew`
    (received - the client's sentAt) corrects the client's timestamp for its clock; the
    dedup hash keeps the timestamp as sent, so a retry with a new sentAt is the same event."""
    context = {"received_at": received_at, "client_ip": client_ip, "user_agent": user_agent, "skew": skew}
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
    return _finish(strings, errors, raw.get("timestamp"), properties_json, raw.get("ipAddress"), **context)


def _mint_reseed() -> None:
    """A new prefix and count for minted ids: at import, and in a forked child (which would
    otherwise mint its parent's ids). A syscall per process, not per event (os.urandom per
    event was a tenth of a web process's time under batches)."""
    global _minted_prefix, _minted_count
    _minted_prefix, _minted_count = os.urandom(10).hex(), itertools.count()


_mint_reseed()
os.register_at_fork(after_in_child=_mint_reseed)


def _finish(strings, errors, sent, properties_json, ip_given, *, received_at, client_ip, user_agent, skew):
    """The rules both readers share, on values of the right types: the timestamp, the
    properties' text, the address; then the row and its dedup id."""
    timestamp = sent_timestamp = received_at
    if sent is not None:
        try:
            sent_timestamp = parse_timestamp(sent, now=received_at - skew)
            timestamp = sent_timestamp + skew
            if timestamp < EPOCH:
                raise ValueError("is before 1970 once corrected by sentAt")
        except ValueError as exc:
            errors["timestamp"] = [str(exc)]

    if "properties" not in errors and properties_json != "{}":
        if not properties_json.isascii():
            try:
                size = len(properties_json.encode("utf-8"))
            except UnicodeEncodeError:
                errors["properties"] = [LONE_SURROGATE]
                size = 0
        else:
            size = len(properties_json)
        if size > MAX_PROPERTIES_BYTES:
            errors["properties"] = ["must be at most 32 KB as compact JSON"]
        elif "\\u0000" in properties_json and NUL_ESCAPE.search(properties_json):
            errors["properties"] = [NUL_CHARACTER]

    ip = client_ip
    if ip_given is not None:
        try:
            if not isinstance(ip_given, str):
                raise ValueError
            ip = str(ipaddress.ip_address(ip_given))
        except ValueError:
            errors["ipAddress"] = ["must be an IPv4 or IPv6 address"]

    if errors:
        return None, errors

    event_id, minted = strings["eventId"], False
    if event_id is None:
        if sent is None:
            event_id, minted = f"r:{_minted_prefix}{next(_minted_count):012x}", True
        else:
            event_id = (
                "h:"
                + hashlib.sha256(
                    _hashed_content(strings["userId"], strings["eventName"], sent_timestamp)
                    + properties_json.encode("utf-8")
                ).hexdigest()[:40]
            )
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
            minted=minted,
        ),
        None,
    )

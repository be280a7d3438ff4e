"""Spike for issue 12 (a measurement, not used by the app): decoding and validating a
1,000-event body with the hand-written checks in events.validation, against msgspec and
pydantic-core doing the type and length checks.

    pip install msgspec==0.22.0 pydantic-core==2.50.4 orjson==3.13.0   # not in requirements.txt
    .venv/bin/python bench/spikes/validation.py

Every variant keeps per-event errors (a bad event must not reject its batch): the libraries
decode the array into raw items first and validate each item on its own. What the libraries
do not check (timestamps in range, storable text, the 32 KB properties limit, the dedup hash)
stays Python in every variant. Medians of 30 runs; CPU time of this process.
"""

import hashlib
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import msgspec
import orjson
import pydantic_core
from pydantic_core import core_schema as cs

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analytics_platform.settings")
from events.validation import canonical_json, parse_timestamp, validate_event  # noqa: E402

RUNS = 30
NOW = datetime.now(UTC)


def body(n: int = 1000) -> bytes:
    events = [
        {
            "userId": f"user_{i % 300:07d}",
            "eventName": ["page_view", "add_to_cart", "purchase"][i % 3],
            "timestamp": "2026-12-01T10:00:00.123Z",
            "properties": {"path": f"/products/{i}", "price": i * 1.5, "tags": ["a", "b"], "nested": {"x": i}},
            "sessionId": f"s-{i // 10}",
            "pageUrl": f"https://shop.example.com/products/{i}",
        }
        for i in range(n)
    ]
    return json.dumps(events).encode()


def rest(user: str, name: str, timestamp, properties: dict, encode) -> str:
    """What stays Python whatever checks the types: timestamp, canonical properties, hash."""
    moment = parse_timestamp(timestamp, now=NOW)
    properties_json = encode(properties)
    content = json.dumps([user, name, int(moment.timestamp() * 1000)])
    return "h:" + hashlib.sha256((content + properties_json).encode()).hexdigest()[:40]


def hand_written(raw: bytes) -> int:
    ok = 0
    for item in json.loads(raw):
        row, errors = validate_event(item, received_at=NOW, client_ip=None, user_agent=None)
        ok += row is not None
    return ok


class Event(msgspec.Struct):
    userId: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    eventName: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    timestamp: str | int | float | None = None
    properties: dict = {}
    sessionId: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    pageUrl: Annotated[str, msgspec.Meta(max_length=8192)] | None = None
    eventId: Annotated[str, msgspec.Meta(max_length=128)] | None = None


_items = msgspec.json.Decoder(list[msgspec.Raw])
_event = msgspec.json.Decoder(Event)
_sorted = msgspec.json.Encoder(order="sorted")


def with_msgspec(raw: bytes) -> int:
    ok = 0
    for item in _items.decode(raw):
        try:
            e = _event.decode(item)
        except msgspec.ValidationError:
            continue
        rest(e.userId, e.eventName, e.timestamp, e.properties, lambda p: _sorted.encode(p).decode())
        ok += 1
    return ok


_schema = cs.typed_dict_schema(
    {
        "userId": cs.typed_dict_field(cs.str_schema(min_length=1, max_length=255)),
        "eventName": cs.typed_dict_field(cs.str_schema(min_length=1, max_length=200)),
        "timestamp": cs.typed_dict_field(
            cs.nullable_schema(cs.union_schema([cs.str_schema(), cs.float_schema()])), required=False
        ),
        "properties": cs.typed_dict_field(cs.dict_schema(cs.str_schema(), cs.any_schema()), required=False),
        "sessionId": cs.typed_dict_field(cs.nullable_schema(cs.str_schema(max_length=255)), required=False),
        "pageUrl": cs.typed_dict_field(cs.nullable_schema(cs.str_schema(max_length=8192)), required=False),
        "eventId": cs.typed_dict_field(cs.nullable_schema(cs.str_schema(max_length=128)), required=False),
    }
)
_validator = pydantic_core.SchemaValidator(_schema)


def with_pydantic_core(raw: bytes) -> int:
    ok = 0
    for item in orjson.loads(raw):
        try:
            e = _validator.validate_python(item, strict=True)
        except pydantic_core.ValidationError:
            continue
        encode = lambda p: orjson.dumps(p, option=orjson.OPT_SORT_KEYS).decode()  # noqa: E731
        rest(e["userId"], e["eventName"], e.get("timestamp"), e.get("properties") or {}, encode)
        ok += 1
    return ok


def floor(raw: bytes) -> int:
    """orjson and the Python rest with no type checks at all: the floor of any variant."""
    encode = lambda p: orjson.dumps(p, option=orjson.OPT_SORT_KEYS).decode()  # noqa: E731
    for e in orjson.loads(raw):
        rest(e["userId"], e["eventName"], e.get("timestamp"), e.get("properties") or {}, encode)
    return 1000


def only_decode(raw: bytes, loads) -> int:
    return len(loads(raw))


def measure(name: str, function, raw: bytes) -> float:
    times = []
    for _ in range(RUNS):
        start = time.process_time()
        assert function(raw) == 1000, name
        times.append(time.process_time() - start)
    median = statistics.median(times) * 1000
    print(f"{name:<48} {median:7.2f} ms CPU per 1,000 events")
    return median


def main() -> None:
    raw = body()
    print(
        f"body: {len(raw):,} bytes, python {sys.version.split()[0]}, msgspec {msgspec.__version__}, "
        f"pydantic-core {pydantic_core.__version__}, orjson {orjson.__version__}"
    )
    measure("json.loads only", lambda r: only_decode(r, json.loads), raw)
    measure("orjson.loads only", lambda r: only_decode(r, orjson.loads), raw)
    measure("orjson + the Python rest, no checks (floor)", floor, raw)
    base = measure("hand-written (json + events.validation)", hand_written, raw)
    for name, function in (
        ("msgspec (Raw items, Struct per event)", with_msgspec),
        ("pydantic-core (orjson, SchemaValidator)", with_pydantic_core),
    ):
        took = measure(name, function, raw)
        print(f"{'':<48} {base / took:7.2f}x the hand-written")
    assert canonical_json({"b": 1, "a": [1.5]}) == _sorted.encode({"b": 1, "a": [1.5]}).decode()


if __name__ == "__main__":
    main()

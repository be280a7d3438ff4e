"""The two readers of events.validation agree: every item the msgspec struct takes gives
the row the hand-written checks give for the same JSON, character for character (the stored
properties text and the dedup id depend on it), and every item either refuses gets the same
reasons. Random events, with the values at and past each limit and floats of every
magnitude."""

import json
import math
import random
import struct
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from events.validation import STRING_FIELDS, EventFields, parse_body, validate_event, validate_item

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CONTEXT = {"received_at": NOW, "client_ip": "10.0.0.1", "user_agent": "agent", "skew": timedelta(seconds=-3)}


def random_float(rng: random.Random) -> float:
    while True:
        value = rng.choice(
            [
                struct.unpack("d", rng.randbytes(8))[0],
                rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30),
                rng.randint(-1000, 1000) / 8,
            ]
        )
        if math.isfinite(value):
            return value


def random_text(rng: random.Random, length: int) -> str:
    alphabet = 'ab e1\n\t"\\/é😀\u2028\x00\x1f'
    return "".join(rng.choice(alphabet) for _ in range(length))


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return random_float(rng)
    if kind == 1:
        return rng.choice([0, -1, 2**53 + 1, 2**63, -(2**63) - 1, 10**25])
    if kind == 2:
        return random_text(rng, rng.randint(0, 6))
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return rng.choice(["3e5", "0.00001", "x"])
    if kind == 5:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {random_text(rng, rng.randint(0, 4)): random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def random_string_field(rng: random.Random, max_length: int):
    return rng.choice(
        [
            "u" * rng.choice([0, 1, max_length, max_length + 1]),
            "é" * max_length,
            random_text(rng, 5),
            None,
            7,
            ["x"],
        ]
    )


def random_event(rng: random.Random):
    if rng.random() < 0.03:
        return rng.choice([[1], "event", 5, None])
    event = {}
    for name, (_required, max_length) in STRING_FIELDS.items():
        if rng.random() < 0.7:
            event[name] = random_string_field(rng, max_length) if rng.random() < 0.3 else f"{name}-{rng.randrange(9)}"
    if rng.random() < 0.8:
        event["timestamp"] = rng.choice(
            [
                "2026-05-31T10:00:00.123Z",
                "2026-05-31T10:00:00+05:45",
                "2026-05-31 10:00",
                1780000000000,
                1780000000000.5,
                -1,
                True,
                "2099-01-01T00:00:00Z",
                "yesterday",
                None,
            ]
        )
    if rng.random() < 0.8:
        event["properties"] = (
            {random_text(rng, 3): random_value(rng) for _ in range(rng.randint(0, 5))}
            if rng.random() < 0.9
            else rng.choice([None, [], "p", {"big": "x" * 33000}])
        )
    if rng.random() < 0.2:
        event["ipAddress"] = rng.choice(["192.0.2.1", "2001:db8::1", "::ffff:1.2.3.4", "999.1.1.1", 5, ""])
    if rng.random() < 0.1:
        event["unknownField"] = random_value(rng)
    return event


def struct_takes(text: bytes) -> bool:
    try:
        msgspec.json.decode(text, type=EventFields)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return False
    return True


def comparable(result):
    row, errors = result
    if row is None:
        return None, {name: sorted(reasons) for name, reasons in errors.items()}
    fields = {name: getattr(row, name) for name in row.__slots__}
    if fields["event_id"].startswith("r:"):
        fields["event_id"] = "random"
    return fields, None


@pytest.mark.parametrize("seed", range(8))
def test_the_struct_and_the_hand_written_checks_agree(seed):
    rng = random.Random(seed)
    fast = valid = 0
    for _ in range(1500):
        event = random_event(rng)
        text = json.dumps(event, ensure_ascii=rng.random() < 0.5).encode()
        expected = comparable(validate_event(json.loads(text), **CONTEXT))
        assert comparable(validate_item(msgspec.Raw(text), **CONTEXT)) == expected, text[:300]
        [item], _, _ = parse_body(b"[" + text + b"]", received_at=NOW)
        assert comparable(validate_item(item, **CONTEXT)) == expected, text[:300]
        valid += expected[0] is not None
        fast += expected[0] is not None and isinstance(item, msgspec.Raw) and struct_takes(text)
    assert valid > 50 and fast > valid / 2  # the msgspec reader took most of the valid ones


def test_floats_keep_pythons_spelling_in_the_stored_properties():
    rng = random.Random(1)
    values = [random_float(rng) for _ in range(1500)] + [1e16, 1e-5, 1e22, 5e-324, -0.0, 0.0001, 123e-7]
    event = {"userId": "u", "eventName": "e", "timestamp": 1780000000000, "properties": {"v": values}}
    row, _ = validate_item(msgspec.Raw(json.dumps(event).encode()), **CONTEXT)
    assert row.properties_json == json.dumps({"v": values}, separators=(",", ":"))


@pytest.mark.parametrize(
    "body",
    [
        rb'[{"userId": "u", "eventName": "\ud800"}, {"userId": "u", "eventName": "ok"}]',
        b'[{"userId": "u", "eventName": "e", "properties": {"n": NaN}}, {"userId": "u", "eventName": "ok"}]',
        b'[{"userId": "u", "eventName": "e", "properties": {"n": 1e400}}, {"userId": "u", "eventName": "ok"}]',
    ],
)
def test_json_that_msgspec_refuses_is_that_events_rejection_not_the_bodys(body):
    items, _, _ = parse_body(body, received_at=NOW)
    (bad, bad_errors), (good, good_errors) = [validate_item(item, **CONTEXT) for item in items]
    assert bad is None and bad_errors and good is not None and good_errors is None

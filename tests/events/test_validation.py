import os
from datetime import UTC, datetime, timedelta

import pytest

from events.validation import MAX_PROPERTIES_BYTES, validate_event

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def check(raw, **kwargs):
    return validate_event(raw, received_at=NOW, client_ip=kwargs.get("ip", "10.0.0.1"), user_agent=kwargs.get("ua"))


def errors_of(raw) -> dict:
    row, errors = check(raw)
    assert row is None
    return errors


def row_of(raw, **kwargs):
    row, errors = check(raw, **kwargs)
    assert errors is None, errors
    return row


BASE = {"userId": "u1", "eventName": "page_view"}


@pytest.mark.parametrize(
    "raw,field",
    [
        ({"eventName": "x"}, "userId"),
        ({"userId": "u"}, "eventName"),
        ({"userId": "", "eventName": "x"}, "userId"),
        ({"userId": 12, "eventName": "x"}, "userId"),
        ({"userId": "u" * 256, "eventName": "x"}, "userId"),
        ({"userId": "u", "eventName": "e" * 201}, "eventName"),
        ({"userId": "u\x00", "eventName": "x"}, "userId"),
        ({**BASE, "eventId": "e" * 129}, "eventId"),
        ({**BASE, "sessionId": 5}, "sessionId"),
        ({**BASE, "pageUrl": ["x"]}, "pageUrl"),
        ({**BASE, "ipAddress": "999.1.1.1"}, "ipAddress"),
        ({**BASE, "ipAddress": 1234}, "ipAddress"),
        ({**BASE, "properties": [1, 2]}, "properties"),
        ({**BASE, "properties": "a=b"}, "properties"),
        ({**BASE, "properties": {"n": float("nan")}}, "properties"),
        ({**BASE, "properties": {"n": float("inf")}}, "properties"),
        ({**BASE, "properties": {"deep": {"s": "a\x00b"}}}, "properties"),
        ({**BASE, "properties": {"k\x00": 1}}, "properties"),
        ({"userId": "u\ud800", "eventName": "x"}, "userId"),
        ({"userId": "u", "eventName": "\udfff"}, "eventName"),
        ({**BASE, "eventId": "id\ud83d"}, "eventId"),
        ({**BASE, "sessionId": "s\x00"}, "sessionId"),
        ({**BASE, "sessionId": "s\udc00"}, "sessionId"),
        ({**BASE, "pageUrl": "/p\ud800"}, "pageUrl"),
        ({**BASE, "userAgent": "ua\x00"}, "userAgent"),
        ({**BASE, "userAgent": "ua\ud800"}, "userAgent"),
        ({**BASE, "properties": {"k\ud800": 1}}, "properties"),
        ({**BASE, "properties": {"deep": [{"s": "\udbff"}]}}, "properties"),
        ({**BASE, "properties": {"deep": {"list": ["ok", "a\x00"]}}}, "properties"),
        ({**BASE, "timestamp": "yesterday"}, "timestamp"),
        ({**BASE, "timestamp": True}, "timestamp"),
        ({**BASE, "timestamp": "1969-12-31T23:59:59Z"}, "timestamp"),
        ({**BASE, "timestamp": -1}, "timestamp"),
        ({**BASE, "timestamp": (NOW + timedelta(hours=1, seconds=1)).isoformat()}, "timestamp"),
        ({**BASE, "timestamp": 10**20}, "timestamp"),
        ({**BASE, "timestamp": {"t": 1}}, "timestamp"),
    ],
)
def test_each_bad_field_is_named(raw, field):
    assert list(errors_of(raw)) == [field]


def test_not_an_object():
    assert errors_of(["u", "e"]) == {"event": ["must be a JSON object"]}
    assert errors_of(None) == {"event": ["must be a JSON object"]}


def test_several_errors_at_once():
    assert set(errors_of({"userId": 1, "timestamp": "x", "properties": 3})) == {
        "userId",
        "eventName",
        "timestamp",
        "properties",
    }


@pytest.mark.parametrize(
    "value,expected",
    [
        ("2024-01-31T10:00:00Z", datetime(2024, 1, 31, 10, tzinfo=UTC)),
        ("2024-01-31T10:00:00", datetime(2024, 1, 31, 10, tzinfo=UTC)),
        ("2024-01-31T15:30:00+05:30", datetime(2024, 1, 31, 10, tzinfo=UTC)),
        ("2024-01-31T05:00:00.250-05:00", datetime(2024, 1, 31, 10, 0, 0, 250000, tzinfo=UTC)),
        (1706695200000, datetime(2024, 1, 31, 10, tzinfo=UTC)),
        (1706695200000.5, datetime(2024, 1, 31, 10, 0, 0, 500, tzinfo=UTC)),
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
        ((NOW + timedelta(minutes=59)).isoformat(), NOW + timedelta(minutes=59)),
    ],
)
def test_timestamp_forms(value, expected):
    assert row_of({**BASE, "timestamp": value}).timestamp == expected


def test_missing_timestamp_is_the_time_received_and_each_gets_its_own_id():
    first, second = row_of(BASE), row_of(BASE)
    assert first.timestamp == NOW
    assert first.event_id != second.event_id


def test_a_forked_process_mints_ids_of_its_own():
    """Minted ids are a per-process random prefix and a count: a child forked after the
    parent minted some must not mint the parent's next ones."""
    row_of(BASE)
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        try:
            os.write(writer, row_of(BASE).event_id.encode())
        finally:
            os._exit(0)
    os.close(writer)
    os.waitpid(child, 0)
    theirs, mine = os.read(reader, 100).decode(), row_of(BASE).event_id
    os.close(reader)
    assert theirs.startswith("r:") and mine.startswith("r:") and len(theirs) == len(mine) == 34
    assert theirs[2:22] != mine[2:22]  # the prefixes differ
    assert len({row_of(BASE).event_id for _ in range(1000)}) == 1000


def test_same_instant_written_two_ways_is_one_event():
    a = row_of({**BASE, "timestamp": "2024-01-31T15:30:00+05:30", "properties": {"a": 1, "b": [1, 2]}})
    b = row_of({**BASE, "timestamp": 1706695200000, "properties": {"b": [1, 2], "a": 1}})
    assert a.event_id == b.event_id and a.event_id.startswith("h:")
    c = row_of({**BASE, "timestamp": 1706695200001, "properties": {"a": 1, "b": [1, 2]}})
    assert c.event_id != a.event_id


def test_event_id_wins_and_defaults_apply():
    row = row_of({**BASE, "eventId": "abc", "properties": None, "sessionId": ""}, ua="curl/8")
    assert row.event_id == "abc" and row.properties_json == "{}" and row.session_id is None
    assert row.ip_address == "10.0.0.1"
    assert row_of({**BASE, "ipAddress": "2001:db8::1", "userAgent": "mine"}).ip_address == "2001:db8::1"
    row, _ = check({**BASE}, ua="curl/8")
    assert row.user_agent == "curl/8"


def test_properties_limit_is_32kb_of_compact_json():
    overhead = len('{"p":""}')
    exact = {"p": "x" * (MAX_PROPERTIES_BYTES - overhead)}
    assert row_of({**BASE, "properties": exact})
    over = {"p": "x" * (MAX_PROPERTIES_BYTES - overhead + 1)}
    assert list(errors_of({**BASE, "properties": over})) == ["properties"]
    multibyte = {"p": "é" * ((MAX_PROPERTIES_BYTES - overhead) // 2 + 1)}  # 2 bytes each in UTF-8
    assert list(errors_of({**BASE, "properties": multibyte})) == ["properties"]


def test_strings_are_kept_verbatim():
    nasty = "'; DROP TABLE events_event; -- <script>alert(1)</script>"
    row = row_of({"userId": nasty, "eventName": nasty, "properties": {nasty: nasty, "literal": "\\u0000"}})
    assert row.user_id == nasty and row.event_name == nasty
    assert nasty in row.properties_json and "\\\\u0000" in row.properties_json


def test_the_reasons_name_the_problem():
    assert errors_of({"userId": "u\ud800", "eventName": "n\x00"}) == {
        "userId": ["must be valid Unicode (contains a lone surrogate such as \\ud800)"],
        "eventName": ["must not contain NUL characters"],
    }
    assert errors_of({**BASE, "properties": {"k": "\ud800"}}) == {
        "properties": ["must be valid Unicode (contains a lone surrogate such as \\ud800)"]
    }


def test_surrogate_pairs_and_other_unicode_are_fine():
    row = row_of({"userId": "\U0001f600 ü", "eventName": "日本", "properties": {"e": "\U0001f680"}})
    assert row.user_id == "\U0001f600 ü" and "\U0001f680" in row.properties_json


def test_a_nul_in_the_user_agent_header_is_dropped():
    assert check(BASE, ua="curl\x00/8")[0].user_agent == "curl/8"
    assert check(BASE, ua="\x00")[0].user_agent is None

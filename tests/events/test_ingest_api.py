import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from analytics_platform.data_version import project_data_version
from events.models import Event
from tests.helpers import assert_error, event, stored

pytestmark = pytest.mark.django_db


def test_single_event_is_accepted_and_stored(post_events, project, jobs):
    response = post_events(event(properties={"plan": "pro", "n": 3}, sessionId="s1", pageUrl="/home"))
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    jobs()
    (row,) = stored(project)
    assert (row.user_id, row.event_name, row.session_id, row.page_url) == ("u1", "page_view", "s1", "/home")
    assert row.timestamp == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert row.properties == {"plan": "pro", "n": 3}
    assert row.ip_address == "127.0.0.1" and row.event_id.startswith("h:")


def test_batch_reports_rejections_by_index_and_keeps_the_rest(post_events, project, jobs):
    batch = [event("a"), {"userId": "b"}, "not an event", event("c", ts="soon"), event("d", name="x" * 201), event("e")]
    response = post_events(batch)
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 2 and body["duplicates"] == 0
    assert [r["index"] for r in body["rejected"]] == [1, 2, 3, 4]
    assert body["rejected"][0]["errors"] == {"eventName": ["is required"]}
    assert list(body["rejected"][1]["errors"]) == ["event"]
    assert list(body["rejected"][2]["errors"]) == ["timestamp"]
    jobs()
    assert [e.user_id for e in stored(project)] == ["a", "e"]


def test_strings_the_database_cannot_store_are_rejected_per_event(post_events, project, jobs):
    # JSON text as a client sends it: \\ud800 is a legal escape that is no Unicode text.
    body = (
        b'[{"userId": "a", "eventName": "\\ud800"},'
        b' {"userId": "b", "eventName": "ok", "properties": {"\\udfff": 1}},'
        b' {"userId": "c", "eventName": "ok", "properties": {"x": [{"y": "\\ud83d"}]}},'
        b' {"userId": "d\\u0000", "eventName": "ok"},'
        b' {"userId": "e", "eventName": "ok", "properties": {"k\\u0000": 1}},'
        b' {"userId": "f", "eventName": "ok", "properties": {"smile": "\\ud83d\\ude00"}}]'
    )
    response = post_events(body)
    assert response.status_code == 202, response.content
    result = response.json()
    assert result["accepted"] == 1
    assert [(r["index"], list(r["errors"])) for r in result["rejected"]] == [
        (0, ["eventName"]),
        (1, ["properties"]),
        (2, ["properties"]),
        (3, ["userId"]),
        (4, ["properties"]),
    ]
    jobs()
    (row,) = stored(project)
    assert row.user_id == "f" and row.properties == {"smile": "\U0001f600"}


def test_every_event_rejected_is_400_with_the_same_body(post_events, project, jobs):
    response = post_events([{"userId": 1}, {"eventName": "x"}])
    assert response.status_code == 400
    body = response.json()
    assert body["accepted"] == 0 and body["duplicates"] == 0 and len(body["rejected"]) == 2
    assert body["error"]["code"] == "all_events_rejected"
    single = post_events({"userId": "u"})
    assert single.status_code == 400 and single.json()["rejected"][0]["index"] == 0
    jobs()
    assert stored(project) == []


def test_a_large_batch_is_stored_whole(post_events, project, jobs):
    batch = [event(f"u{i}", ts=1704103200000 + i, properties={"i": i}) for i in range(1000)]
    assert post_events(batch).json()["accepted"] == 1000
    jobs()
    rows = stored(project)
    assert len(rows) == 1000 and [r.properties["i"] for r in rows] == list(range(1000))


@override_settings(EVENT_BATCH_SIZE=5)
def test_more_than_the_batch_size_is_413_and_nothing_is_stored(post_events, project, jobs):
    assert post_events([event(f"u{i}") for i in range(5)]).status_code == 202
    error = assert_error(post_events([event(f"v{i}") for i in range(6)]), 413, "payload_too_large")
    assert error["details"] == {"maxEvents": 5, "events": 6}
    jobs()
    assert {e.user_id for e in stored(project)} == {f"u{i}" for i in range(5)}


def test_bodies_over_5mb_are_413(post_events, project):
    big = json.dumps([event(properties={"pad": "x" * 30000})] * 200).encode()
    assert len(big) > 5 * 1024 * 1024
    assert_error(post_events(big), 413, "payload_too_large")
    assert Event.objects.count() == 0


def test_gzip_body(post_events, project, jobs):
    response = post_events([event("g1"), event("g2")], compress=True)
    assert response.status_code == 202 and response.json()["accepted"] == 2
    jobs()
    assert {e.user_id for e in stored(project)} == {"g1", "g2"}


def test_gzip_bomb_is_refused_without_inflating_it(post_events, project):
    import gzip

    bomb = gzip.compress(b"[" + b" " * (200 * 1024 * 1024) + b"]", compresslevel=9)
    assert len(bomb) < 1024 * 1024
    assert_error(post_events(bomb, HTTP_CONTENT_ENCODING="gzip"), 413, "payload_too_large")


@pytest.mark.parametrize("body", [b"\x1f\x8b\x08garbage", b"plain text, not gzip"])
def test_bad_gzip_is_400(post_events, body):
    assert_error(post_events(body, HTTP_CONTENT_ENCODING="gzip"), 400)


def test_unknown_content_encoding_is_415(post_events):
    assert_error(post_events([event()], HTTP_CONTENT_ENCODING="br"), 415, "unsupported_media_type")


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data", "text/html"])
def test_non_json_is_415(post_events, content_type, project):
    assert_error(post_events([event()], content_type=content_type), 415, "unsupported_media_type")


def test_a_beacon_text_plain_json_body_with_the_key_in_the_query_is_stored(client, ingest_key, project, jobs):
    """What navigator.sendBeacon sends: text/plain (no CORS preflight), no headers of its own."""
    body = json.dumps({"batch": [event("beacon")], "sentAt": datetime.now(UTC).isoformat()})
    url = f"/api/v1/events?apiKey={ingest_key}"
    response = client.generic("POST", url, body, content_type="text/plain;charset=UTF-8")
    assert response.status_code == 202 and response.json()["accepted"] == 1
    jobs()
    assert Event.objects.filter(project=project, user_id="beacon").count() == 1
    assert_error(client.generic("POST", url, "not json", content_type="text/plain"), 400)
    assert_error(client.generic("POST", "/api/v1/events?apiKey=wrong", body, content_type="text/plain"), 401)


def test_only_ingestion_takes_the_key_in_the_query(client, make_key, project):
    key = make_key(project, scopes=["read"])
    assert_error(client.get(f"/api/v1/events/summary?apiKey={key}"), 401)
    assert Event.objects.count() == 0


@pytest.mark.parametrize("body", [b"", b"[", b'{"userId": "u"', b"\xff\xfe\x00", b"[" * 100000, b"nope"])
def test_malformed_bodies_are_400(post_events, body):
    assert_error(post_events(body), 400)


def test_empty_batch_is_400(post_events):
    assert_error(post_events([]), 400, "invalid_input")


def test_non_finite_numbers_reject_only_that_event(post_events, project, jobs):
    body = b'[{"userId": "a", "eventName": "x", "properties": {"v": NaN}},' + json.dumps(event("b")).encode() + b"]"
    response = post_events(body)
    assert response.status_code == 202
    assert response.json()["rejected"][0]["index"] == 0
    body = b'[{"userId": "a", "eventName": "x", "properties": {"v": 1e999}}]'
    assert post_events(body).status_code == 400


def test_sql_and_script_text_is_stored_verbatim(post_events, project, jobs):
    nasty = "'); DROP TABLE events_event; --<script>alert(1)</script>"
    post_events(event(nasty, name=nasty, properties={nasty: nasty}))
    jobs()
    (row,) = stored(project)
    assert row.user_id == nasty and row.event_name == nasty and row.properties == {nasty: nasty}


def test_read_only_key_cannot_ingest(project, make_key, client_for):
    client = client_for(make_key(project, scopes=["read"]))
    assert_error(client.post("/api/v1/events", event(), format="json"), 403, "forbidden")
    assert Event.objects.count() == 0


def test_ip_and_user_agent_default_to_the_request(post_events, project, jobs):
    post_events([event("a"), event("b", ipAddress="203.0.113.9", userAgent="app/1")], HTTP_USER_AGENT="curl/8")
    post_events(event("c"), HTTP_X_FORWARDED_FOR="198.51.100.1", REMOTE_ADDR="10.1.2.3")
    jobs()
    rows = {e.user_id: e for e in stored(project)}
    assert (rows["a"].ip_address, rows["a"].user_agent) == ("127.0.0.1", "curl/8")
    assert (rows["b"].ip_address, rows["b"].user_agent) == ("203.0.113.9", "app/1")
    assert rows["c"].ip_address == "10.1.2.3"  # X-Forwarded-For from an untrusted peer is ignored


@override_settings(TRUSTED_PROXIES=["10.0.0.0/8"])
def test_forwarded_for_is_believed_only_from_a_trusted_proxy(post_events, project, jobs):
    post_events(event("a"), HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.1, 10.0.0.7", REMOTE_ADDR="10.1.2.3")
    post_events(event("b"), HTTP_X_FORWARDED_FOR="198.51.100.1", REMOTE_ADDR="192.0.2.50")
    jobs()
    rows = {e.user_id: e for e in stored(project)}
    assert rows["a"].ip_address == "198.51.100.1" and rows["b"].ip_address == "192.0.2.50"


def test_duplicates_in_a_batch_across_batches_and_on_retry(post_events, project, jobs):
    first = post_events([event("a"), event("a"), event("b", eventId="e-1"), event("c", eventId="e-1")])
    assert first.json() == {"accepted": 2, "duplicates": 2, "rejected": []}
    second = post_events([event("a", ts="2024-01-01T15:30:00+05:30"), event("z", eventId="e-1"), event("new")])
    assert second.json() == {"accepted": 1, "duplicates": 2, "rejected": []}
    jobs()
    retry = post_events([event("a"), event("b", eventId="e-1"), event("new")])
    assert retry.json() == {"accepted": 0, "duplicates": 3, "rejected": []}
    jobs()
    rows = stored(project)
    assert sorted(e.user_id for e in rows) == ["a", "b", "new"]  # e-1 kept its first content


def test_events_without_timestamp_are_never_merged(post_events, project, jobs):
    for _ in range(3):
        assert post_events({"userId": "u", "eventName": "tick"}).json()["accepted"] == 1
    jobs()
    assert len(stored(project)) == 3


def test_projects_do_not_share_dedup(post_events, other_project, make_key, client_for, project, jobs):
    post_events(event(eventId="same"))
    other = client_for(make_key(other_project, scopes=["ingest"]))
    assert other.post("/api/v1/events", event(eventId="same"), format="json").json()["accepted"] == 1
    jobs()
    assert Event.objects.filter(event_id="same").count() == 2


def test_storing_bumps_the_data_version_and_a_refusal_does_not(post_events, project, jobs):
    before = project_data_version(project_id=project.id)
    post_events([{"userId": 1}])
    jobs()
    assert project_data_version(project_id=project.id) == before
    post_events([event("a"), event("b")])
    jobs()
    after = project_data_version(project_id=project.id)
    assert after > before
    post_events([event("a")])  # only a duplicate
    jobs()
    assert project_data_version(project_id=project.id) == after


def test_without_redis_events_another_process_stores_reach_cached_answers_at_once(
    project, make_key, client_for, settings
):
    """The embedded default: `manage.py seed` runs in a process with a cache of its own."""
    from events.services import events_persist
    from events.validation import validate_event

    if settings.REDIS_URL:
        pytest.skip("with Redis the data version lives in the cache every process shares")
    client = client_for(make_key(project, scopes=["read"]))
    url = "/api/v1/events/summary?startDate=2024-01-01&endDate=2024-01-02"
    assert client.get(url).json()["totalEvents"] == 0  # computed and cached here
    row, _ = validate_event(
        {"userId": "u", "eventName": "x", "timestamp": "2024-01-01T10:00:00Z"},
        received_at=datetime.now(UTC),
        client_ip=None,
        user_agent=None,
    )
    other_process = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "other"}}
    with override_settings(CACHES=other_process):
        events_persist(project_id=project.id, rows=[row.as_job_row()], publish=False)
    assert client.get(url).json()["totalEvents"] == 1


def test_a_retried_batch_counts_nothing_twice_whatever_came_between(post_events, project, jobs):
    """`accepted` counts new events only: a retried batch after many others (more than a
    local-memory cache holds) is all duplicates."""
    first = [event(f"u{i}", ts=1704103200000 + i) for i in range(496)]
    assert post_events(first).json()["accepted"] == 496
    for n in range(3):
        others = [event(f"o{n}-{i}", ts=1704103200000 + i) for i in range(400)]
        assert post_events(others).json()["accepted"] == 400
    jobs()
    again = post_events(first).json()
    assert (again["accepted"], again["duplicates"]) == (0, 496)
    mixed = post_events([*first[:10], event("new-one")]).json()
    assert (mixed["accepted"], mixed["duplicates"]) == (1, 10)
    jobs()
    assert Event.objects.filter(project=project).count() == 496 + 1200 + 1


def test_sent_at_corrects_each_timestamp_by_the_clients_clock_skew(post_events, project, jobs):
    """A device whose clock is 2 h behind sends sentAt 2 h early: its events move 2 h later,
    timestamp + (received - sentAt); events without a timestamp keep the time received."""
    received = datetime.now(UTC)
    sent_at = (received - timedelta(hours=2)).isoformat()
    body = {"batch": [event("a", ts="2024-01-01T10:00:00Z"), {"userId": "b", "eventName": "tick"}], "sentAt": sent_at}
    response = post_events(body)
    answered = datetime.now(UTC)
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    jobs()
    by_user = {row.user_id: row.timestamp for row in stored(project)}
    # the server's receive time lies between `received` and `answered`
    assert (
        datetime(2024, 1, 1, 12, tzinfo=UTC)
        <= by_user["a"]
        <= datetime(2024, 1, 1, 12, tzinfo=UTC) + (answered - received)
    )
    assert received <= by_user["b"] <= answered


def test_a_retry_with_a_new_sent_at_is_the_same_event(post_events, project, jobs):
    now = datetime.now(UTC)
    first = post_events({"batch": [event("a")], "sentAt": (now - timedelta(minutes=5)).isoformat()})
    retry = post_events({"batch": [event("a")], "sentAt": now.isoformat()})
    assert first.json()["accepted"] == 1 and retry.json() == {"accepted": 0, "duplicates": 1, "rejected": []}
    jobs()
    assert len(stored(project)) == 1


def test_a_batch_without_sent_at_is_stored_as_sent(post_events, project, jobs):
    assert post_events({"batch": [event("a")]}).json()["accepted"] == 1
    jobs()
    assert stored(project)[0].timestamp == datetime(2024, 1, 1, 10, tzinfo=UTC)


def test_a_clock_far_ahead_makes_its_events_too_early_not_future(post_events, project, jobs):
    """A clock a day ahead: its 'now' events are corrected to now, not refused as future."""
    ahead = datetime.now(UTC) + timedelta(days=1)
    body = {"batch": [event("a", ts=ahead.isoformat())], "sentAt": ahead.isoformat()}
    assert post_events(body).json()["accepted"] == 1
    jobs()
    assert abs(stored(project)[0].timestamp - datetime.now(UTC)) < timedelta(minutes=5)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"batch": {"userId": "a"}, "sentAt": "2024-01-01T00:00:00Z"}, "batch"),
        ({"batch": [{"userId": "a", "eventName": "x"}], "sentAt": "yesterday"}, "sentAt"),
        ({"batch": [{"userId": "a", "eventName": "x"}], "sentAt": True}, "sentAt"),
        ({"batch": [{"userId": "a", "eventName": "x"}], "sentAt": "1969-12-31T00:00:00Z"}, "sentAt"),
    ],
)
def test_a_bad_batch_or_sent_at_is_400_and_stores_nothing(post_events, project, jobs, body, field):
    error = assert_error(post_events(body), 400, "invalid_input")
    assert field in error["details"]
    jobs()
    assert stored(project) == []


def test_a_sent_at_batch_over_the_batch_size_is_413(post_events):
    with override_settings(EVENT_BATCH_SIZE=2):
        response = post_events({"batch": [event(str(i)) for i in range(3)], "sentAt": "2024-01-01T00:00:00Z"})
    assert_error(response, 413)

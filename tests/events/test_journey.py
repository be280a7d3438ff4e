import random
from datetime import UTC, datetime, timedelta

import pytest

from analytics_platform.queries import cursor_encode
from events.queries import JourneyQuery
from tests import reference
from tests.helpers import assert_error, store_events

pytestmark = pytest.mark.django_db


def run(project, user, **params):
    return JourneyQuery(project=project, params={"userId": user, **params}).run()


def test_journey_pages_through_every_event_in_order_with_sessions(project, make_key, client_for):
    rng = random.Random(5)
    moment = datetime(2024, 5, 1, 8, tzinfo=UTC)
    mine = []
    for i in range(230):
        moment += timedelta(minutes=rng.choice([0, 0, 1, 5, 29, 30, 31, 45, 600]))  # equal timestamps too
        session = rng.choice([None, None, "s1", "s2"])
        mine.append(("alice", rng.choice(["page_view", "click"]), moment, {"i": i}, session))
    others = [("bob", "page_view", datetime(2024, 5, 2, tzinfo=UTC))]
    store_events(project, mine + others)
    client = client_for(make_key(project, scopes=["read"]))

    pages, cursor = [], None
    while True:
        url = "/api/v1/users/alice/journey?startDate=2024-04-01&endDate=2024-06-30&limit=70"
        body = client.get(url + (f"&cursor={cursor}" if cursor else "")).json()
        pages.append(body)
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert [len(p["events"]) for p in pages] == [70, 70, 70, 20]
    got = [e["properties"]["i"] for p in pages for e in p["events"]]
    assert got == list(range(230))  # time order, ties by insertion, nothing skipped or repeated
    first = pages[0]
    assert first["userId"] == "alice" and first["totalEvents"] == 230
    assert first["firstSeen"] == reference.iso(mine[0][2]) and first["lastSeen"] == reference.iso(mine[-1][2])
    assert first["events"][0]["eventId"] and first["events"][0]["userId"] == "alice"
    assert first["sessions"] == reference.sessions([(m, s) for _, _, m, _, s in mine])
    assert sum(s["eventCount"] for s in first["sessions"]) == 230


def test_range_limits_events_but_first_and_last_seen_are_all_history(project):
    store_events(
        project,
        [
            ("u", "a", datetime(2024, 1, 1, tzinfo=UTC)),
            ("u", "b", datetime(2024, 2, 1, 10, tzinfo=UTC)),
            ("u", "c", datetime(2024, 3, 1, tzinfo=UTC)),
        ],
    )
    body = run(project, "u", startDate="2024-02-01", endDate="2024-02-01")
    assert body["totalEvents"] == 1 and [e["eventName"] for e in body["events"]] == ["b"]
    assert body["firstSeen"] == "2024-01-01T00:00:00Z" and body["lastSeen"] == "2024-03-01T00:00:00Z"
    empty = run(project, "u", startDate="2023-01-01", endDate="2023-01-02")
    assert empty["events"] == [] and empty["sessions"] == [] and empty["totalEvents"] == 0


def test_limits(project, make_key, client_for):
    store_events(project, [("u", "e", datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=i)) for i in range(1005)])
    client = client_for(make_key(project, scopes=["read"]))
    body = client.get("/api/v1/users/u/journey?startDate=2024-01-01&endDate=2024-01-01&limit=5000").json()
    assert len(body["events"]) == 1000 and body["nextCursor"]
    assert len(client.get("/api/v1/users/u/journey?startDate=2024-01-01&endDate=2024-01-01").json()["events"]) == 100
    for bad in ["0", "-3", "many"]:
        assert_error(client.get(f"/api/v1/users/u/journey?limit={bad}"), 400, "invalid_input")
    assert_error(client.get("/api/v1/users/u/journey?cursor=%%%garbage"), 400, "invalid_input")
    crafted_cursors = [
        "0001-01-01T00:00:00+14:00|1",
        "9999-12-31T23:59:59-14:00|1",
        "2024-01-01T00:00:00+00:00|99999999999999999999",
        "2024-01-01T00:00:00|1",
    ]
    for crafted in crafted_cursors:
        assert_error(client.get(f"/api/v1/users/u/journey?cursor={cursor_encode(crafted)}"), 400, "invalid_input")


def test_unknown_user_is_404_and_other_projects_users_are_unknown(project, other_project, make_key, client_for):
    store_events(project, [("known", "e", datetime(2024, 1, 1, tzinfo=UTC))])
    mine = client_for(make_key(project, scopes=["read"]))
    assert mine.get("/api/v1/users/known/journey?startDate=2023-01-01").status_code == 200
    assert_error(mine.get("/api/v1/users/stranger/journey"), 404, "not_found")
    theirs = client_for(make_key(other_project, scopes=["read"]))
    assert_error(theirs.get("/api/v1/users/known/journey"), 404, "not_found")


def test_user_ids_with_odd_characters(project, make_key, client_for):
    store_events(project, [("a/b c@d.e", "e", datetime(2024, 1, 1, tzinfo=UTC))])
    client = client_for(make_key(project, scopes=["read"]))
    body = client.get("/api/v1/users/a%2Fb%20c@d.e/journey?startDate=2024-01-01").json()
    assert body["userId"] == "a/b c@d.e" and body["totalEvents"] == 1


def test_journey_needs_read_scope(project, make_key, client_for):
    store_events(project, [("u", "e", datetime(2024, 1, 1, tzinfo=UTC))])
    assert_error(client_for(make_key(project, scopes=["ingest"])).get("/api/v1/users/u/journey"), 403, "forbidden")

import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from accounts.services import project_get_or_create
from events.services import events_persist
from events.validation import validate_event
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db

NAMES = ["page_view", "signup", "add_to_cart", "purchase", "login"]


def seed_random(project, rng: random.Random, n=600) -> list[dict]:
    """Random events around both 2024 US DST changes and ordinary days, stored directly."""
    anchors = [
        datetime(2024, 3, 10, 6, tzinfo=UTC),
        datetime(2024, 11, 3, 5, tzinfo=UTC),
        datetime(2024, 6, 1, tzinfo=UTC),
    ]
    events, rows = [], []
    for _ in range(n):
        ts = rng.choice(anchors) + timedelta(seconds=rng.randint(-3 * 86400, 3 * 86400))
        raw = {"userId": f"u{rng.randint(1, 40)}", "eventName": rng.choice(NAMES), "timestamp": ts.isoformat()}
        row, errors = validate_event(raw, received_at=datetime(2025, 1, 1, tzinfo=UTC), client_ip=None, user_agent=None)
        assert errors is None
        rows.append(row.as_job_row())
        events.append({"user": raw["userId"], "name": raw["eventName"], "ts": ts})
    events_persist(project_id=project.id, rows=rows, publish=False)
    return events


def reference(events, tz: ZoneInfo, first_day: date, last_day: date) -> dict:
    """Brute force: the events whose local calendar date lies in [first_day, last_day]."""
    inside = [e for e in events if first_day <= e["ts"].astimezone(tz).date() <= last_day]
    counts, users = Counter(e["name"] for e in inside), defaultdict(set)
    for e in inside:
        users[e["name"]].add(e["user"])
    top = sorted(counts, key=lambda name: (-counts[name], name))[:10]
    return {
        "totalEvents": len(inside),
        "uniqueUsers": len({e["user"] for e in inside}),
        "firstEventAt": min(e["ts"] for e in inside).isoformat().replace("+00:00", "Z") if inside else None,
        "lastEventAt": max(e["ts"] for e in inside).isoformat().replace("+00:00", "Z") if inside else None,
        "topEvents": [{"eventName": n, "count": counts[n], "uniqueUsers": len(users[n])} for n in top],
    }


@pytest.mark.parametrize("tz_name", ["UTC", "Asia/Kolkata", "America/New_York", "Asia/Kathmandu"])
def test_summary_matches_brute_force_in_each_timezone(project, make_key, client_for, tz_name, mirror):
    project = project_get_or_create(organization=project.organization, name=project.name, timezone_name=tz_name)
    rng = random.Random(tz_name)
    events = seed_random(project, rng)
    mirror.ready(project)
    client = client_for(make_key(project, scopes=["read"]))
    tz = ZoneInfo(tz_name)
    ranges = [
        (date(2024, 3, 9), date(2024, 3, 10)),
        (date(2024, 3, 10), date(2024, 3, 10)),
        (date(2024, 11, 3), date(2024, 11, 3)),
        (date(2024, 11, 1), date(2024, 11, 5)),
        (date(2024, 5, 29), date(2024, 6, 3)),
        (date(2024, 1, 1), date(2024, 12, 31)),
        (date(2023, 1, 1), date(2023, 1, 2)),
    ]
    for first_day, last_day in ranges:
        response = client.get(f"/api/v1/events/summary?startDate={first_day}&endDate={last_day}")
        assert response.status_code == 200
        assert response.json() == reference(events, tz, first_day, last_day), (first_day, last_day)


def test_summary_datetime_bounds_are_inclusive_and_local(project, make_key, client_for, mirror):
    project = project_get_or_create(organization=project.organization, name=project.name, timezone_name="Asia/Kolkata")
    rows = []
    for ts in ["2024-06-01T04:30:00Z", "2024-06-01T05:30:00Z", "2024-06-01T06:30:00Z"]:
        row, _ = validate_event(
            {"userId": "u", "eventName": "x", "timestamp": ts},
            received_at=datetime.now(UTC),
            client_ip=None,
            user_agent=None,
        )
        rows.append(row.as_job_row())
    events_persist(project_id=project.id, rows=rows)
    mirror.ready(project)
    client = client_for(make_key(project, scopes=["read"]))
    # 10:00 and 11:00 local (+05:30) are 04:30Z and 05:30Z; both bounds inclusive.
    body = client.get("/api/v1/events/summary?startDate=2024-06-01T10:00:00&endDate=2024-06-01T11:00:00").json()
    assert body["totalEvents"] == 2 and body["lastEventAt"] == "2024-06-01T05:30:00Z"
    body = client.get("/api/v1/events/summary?startDate=2024-06-01T05:30:00Z&endDate=2024-06-01T05:30:00Z").json()
    assert body["totalEvents"] == 1


def test_summary_default_range_is_the_last_30_days(project, make_key, client_for, post_events):
    now = datetime.now(UTC)
    post_events(
        [
            {"userId": "a", "eventName": "x", "timestamp": (now - timedelta(days=2)).isoformat()},
            {"userId": "b", "eventName": "x", "timestamp": (now - timedelta(days=40)).isoformat()},
        ]
    )
    from tests.helpers import run_jobs

    run_jobs()
    body = client_for(make_key(project, scopes=["read"])).get("/api/v1/events/summary").json()
    assert body["totalEvents"] == 1 and body["uniqueUsers"] == 1


@pytest.mark.parametrize(
    "query",
    [
        "startDate=yesterday",
        "endDate=2024-13-01",
        "startDate=2024-02-02&endDate=2024-02-01",
        "startDate=2024-01-01T25:00",
    ],
)
def test_summary_bad_dates_are_400(project, make_key, client_for, query):
    error = assert_error(client_for(make_key(project, scopes=["read"])).get(f"/api/v1/events/summary?{query}"), 400)
    assert error["code"] == "invalid_input"


def test_summary_needs_read_scope(project, make_key, client_for):
    assert_error(client_for(make_key(project, scopes=["ingest"])).get("/api/v1/events/summary"), 403)

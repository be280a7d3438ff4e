import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from accounts.services import project_get_or_create
from analytics_platform.dates import parse_range
from retention.queries import RetentionQuery
from tests import reference
from tests.helpers import assert_error, store_events

pytestmark = pytest.mark.django_db

NAMES = ["signup", "login", "purchase"]


def generated(rng: random.Random) -> list[tuple]:
    events = []
    for u in range(40):
        moment = datetime(2024, 2, 20, tzinfo=UTC) + timedelta(hours=rng.randint(0, 24 * 60))
        for _ in range(rng.randint(1, 12)):
            events.append((f"u{u}", rng.choice(NAMES), moment))
            moment += timedelta(hours=rng.expovariate(1 / 60))
    # users with no cohort event, and returns exactly on period boundaries
    events.append(("nobody", "login", datetime(2024, 3, 5, tzinfo=UTC)))
    events.append(("edge", "signup", datetime(2024, 3, 9, 23, 59, 59, tzinfo=UTC)))
    events.append(("edge", "login", datetime(2024, 3, 10, 5, tzinfo=UTC)))
    events.append(("edge", "login", datetime(2024, 3, 11, 4, tzinfo=UTC)))
    return events


def run(project, now=None, **params):
    return RetentionQuery(project=project, params=params, now=now or datetime(2030, 1, 1, tzinfo=UTC)).run()


@pytest.mark.parametrize("tz_name", ["UTC", "Asia/Kolkata", "America/New_York"])
@pytest.mark.parametrize(
    "params",
    [
        {"period": "day", "periods": 7, "startDate": "2024-03-01", "endDate": "2024-03-14"},
        {"period": "day", "periods": 10, "type": "recurring", "startDate": "2024-03-05", "endDate": "2024-03-12"},
        {"period": "week", "periods": 4, "startDate": "2024-02-26", "endDate": "2024-03-31", "cohort": "signup"},
        {
            "period": "week",
            "periods": 3,
            "type": "recurring",
            "cohort": "signup",
            "returnEvent": "purchase",
            "startDate": "2024-03-01",
            "endDate": "2024-03-31",
        },
        {"period": "month", "periods": 2, "startDate": "2024-02-01", "endDate": "2024-04-30", "cumulative": "true"},
        {
            "period": "day",
            "periods": 5,
            "cohort": "signup",
            "returnEvent": "login",
            "cumulative": "true",
            "startDate": "2024-03-08",
            "endDate": "2024-03-12",
        },
        {"period": "day", "periods": 3, "cohort": "purchase", "startDate": "2025-01-01", "endDate": "2025-01-03"},
    ],
)
def test_retention_matches_the_brute_force_reference(project, tz_name, params, mirror):
    tz = ZoneInfo(tz_name)
    project = project_get_or_create(organization=project.organization, name=project.name, timezone_name=tz_name)
    events = generated(random.Random(f"{tz_name}{sorted(params.items())}"))
    store_events(project, events)
    mirror.ready(project)
    runner = RetentionQuery(project=project, params=params, now=datetime(2030, 1, 1, tzinfo=UTC))
    got = runner.calculate()
    start, end = parse_range(params["startDate"], params["endDate"], tz)
    rows, average = reference.retention(
        events,
        tz,
        period=params["period"],
        periods=params["periods"],
        kind=params.get("type", "first_time"),
        cumulative=params.get("cumulative") == "true",
        start=start,
        end=end,
        now=datetime(2030, 1, 1, tzinfo=UTC),
        cohort=params.get("cohort"),
        returns=params.get("returnEvent"),
    )
    assert got["cohorts"] == rows
    assert got["average"] == average
    assert got["period"] == params["period"] and got["type"] == params.get("type", "first_time")


def test_unfinished_periods_are_null_and_left_out_of_the_average(project):
    now = datetime(2024, 3, 6, 12, tzinfo=UTC)
    store_events(
        project,
        [
            ("a", "signup", datetime(2024, 3, 1, 9, tzinfo=UTC)),
            ("a", "login", datetime(2024, 3, 2, 9, tzinfo=UTC)),
            ("b", "signup", datetime(2024, 3, 5, 9, tzinfo=UTC)),
            ("b", "login", datetime(2024, 3, 6, 9, tzinfo=UTC)),
        ],
    )
    got = run(project, now=now, cohort="signup", period="day", periods=3, startDate="2024-03-01", endDate="2024-03-06")
    by_day = {row["cohortStart"]: row for row in got["cohorts"]}
    assert by_day["2024-03-01"]["retained"] == [1, 1, 0, 0]
    assert by_day["2024-03-05"]["retained"] == [1, None, None, None]  # March 6 is still running
    assert by_day["2024-03-05"]["rates"] == [1.0, None, None, None]
    assert by_day["2024-03-06"]["retained"] == [0, None, None, None] and by_day["2024-03-06"]["rates"][0] == 0.0
    assert by_day["2024-03-02"]["rates"] == [0.0, 0.0, 0.0, 0.0]  # an empty cohort
    assert got["average"] == [1.0, 1.0, 0.0, 0.0]  # only the cohorts whose period k finished


def test_returns_in_period_zero_only_and_first_time_over_all_history(project):
    store_events(
        project,
        [
            ("old", "signup", datetime(2023, 12, 1, tzinfo=UTC)),
            ("old", "signup", datetime(2024, 1, 2, tzinfo=UTC)),
            ("new", "signup", datetime(2024, 1, 2, 8, tzinfo=UTC)),
            ("new", "login", datetime(2024, 1, 2, 9, tzinfo=UTC)),
        ],
    )
    first = run(project, cohort="signup", periods=2, startDate="2024-01-01", endDate="2024-01-03")
    assert [row["size"] for row in first["cohorts"]] == [0, 1, 0]  # "old" signed up before the range
    assert first["cohorts"][1]["retained"] == [1, 0, 0]  # the login was in period 0
    recurring = run(project, cohort="signup", periods=2, type="recurring", startDate="2024-01-01", endDate="2024-01-03")
    assert [row["size"] for row in recurring["cohorts"]] == [0, 2, 0]


def test_seed_days_alias(project, make_key, client_for):
    client = client_for(make_key(project, scopes=["read"]))
    body = client.get("/api/v1/retention?cohort=signup&days=7&startDate=2024-01-01&endDate=2024-01-31").json()
    assert body["period"] == "day" and body["periods"] == 7 and len(body["cohorts"]) == 31
    assert all(len(row["retained"]) == 8 for row in body["cohorts"])


@pytest.mark.parametrize(
    "query",
    [
        "period=hour",
        "period=year",
        "periods=-1",
        "periods=abc",
        "periods=401",
        "type=sometimes",
        "cumulative=maybe",
        "startDate=2024-02-01&endDate=2024-01-01",
        "cohort=" + "x" * 201,
    ],
)
def test_bad_parameters_are_400(project, make_key, client_for, query):
    client = client_for(make_key(project, scopes=["read"]))
    assert_error(client.get(f"/api/v1/retention?{query}"), 400, "invalid_input")


def test_retention_needs_read_scope(project, make_key, client_for):
    assert_error(client_for(make_key(project, scopes=["ingest"])).get("/api/v1/retention"), 403)

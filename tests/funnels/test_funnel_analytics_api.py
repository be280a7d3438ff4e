"""GET /funnels/{id}/analytics (with breakdown) and /analytics/users over HTTP, checked
against the brute-force reference in project timezones east and west of UTC, across DST,
reading the events in each of the mirror's three states (tail, half files, compacted files)."""

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from accounts.services import project_get_or_create
from funnels.models import Funnel
from tests import reference
from tests.helpers import assert_error, store_events

pytestmark = pytest.mark.django_db

STEPS = [
    {"eventName": "view"},
    {"eventName": "cart", "filters": {"price": {"op": "gte", "value": 10}}},
    {"eventName": "buy", "timeWindow": 6 * 3600},
]
PLANS = [f"plan{i}" for i in range(13)]
# the runner's three formulations: ordered without timeWindows, with one, strict
VARIANTS = {
    "next-event": ([{**step, "timeWindow": None} for step in STEPS], "ordered"),
    "time-window": (STEPS, "ordered"),
    "strict": (STEPS, "strict"),
}


def generated(rng, first_day: datetime):
    """~60 users over four days around `first_day`; the step-1 events carry a plan."""
    events = []
    for u in range(60):
        user = f"user{u:02d}"
        plan = PLANS[min(u % 17, len(PLANS) - 1)]
        for _ in range(rng.randint(1, 10)):
            moment = first_day.astimezone(UTC) + timedelta(minutes=30 * rng.randint(-48, 4 * 48))
            name = rng.choice(["view", "view", "cart", "buy", "other"])
            properties = {"plan": plan} if name == "view" else {"price": rng.choice([5, 10, 20.5, "10"])}
            events.append({"user": user, "name": name, "ts": moment, "properties": properties})
    return events


def funnel_for(project, steps=STEPS, **fields) -> Funnel:
    return Funnel.objects.create(project=project, name="Shop", steps=steps, conversion_window=86400, **fields)


def _store(project, events):
    store_events(project, [(e["user"], e["name"], e["ts"], e["properties"]) for e in events])


def _same_steps(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w)


@pytest.mark.parametrize(
    "tz_name,days", [("America/New_York", ("2024-03-09", "2024-03-11")), ("Asia/Kolkata", ("2024-11-02", "2024-11-03"))]
)
@pytest.mark.parametrize("order", ["ordered", "strict"])
def test_analytics_matches_the_reference_in_the_project_timezone(project, api, mirror, tz_name, days, order):
    tz = ZoneInfo(tz_name)
    project = project_get_or_create(organization=project.organization, name=project.name, timezone_name=tz_name)
    first = datetime.fromisoformat(days[0]).replace(tzinfo=tz)
    last = datetime.fromisoformat(days[1]).replace(tzinfo=tz) + timedelta(days=1)
    events = generated(random.Random(tz_name + order), first)
    _store(project, events)
    mirror.ready(project)
    funnel = funnel_for(project, order=order)
    response = api.get(f"/api/v1/funnels/{funnel.id}/analytics", {"startDate": days[0], "endDate": days[1]})
    assert response.status_code == 200, response.json()
    body = response.json()
    expected = reference.funnel(events, STEPS, window=86400, order=order, start=first, end=last)
    assert body["funnelId"] == funnel.id and body["name"] == "Shop"
    assert datetime.fromisoformat(body["startDate"]) == first and datetime.fromisoformat(body["endDate"]) == last
    assert set(body["steps"][0]) == {
        "step",
        "eventName",
        "users",
        "conversionRate",
        "stepConversionRate",
        "dropOff",
        "avgTimeToConvertSeconds",
        "medianTimeToConvertSeconds",
    }
    _same_steps(body["steps"], expected["steps"])
    assert body["overallConversionRate"] == pytest.approx(expected["overallConversionRate"])
    assert body["steps"][0]["users"] > 0 and "breakdown" not in body


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_breakdown_by_a_step_one_property_top_ten_and_other(project, api, mirror, variant):
    steps, order = VARIANTS[variant]
    first = datetime(2024, 5, 1, tzinfo=UTC)
    events = generated(random.Random(7), first)
    _store(project, events)
    mirror.ready(project)
    funnel = funnel_for(project, steps, order=order)
    body = api.get(
        f"/api/v1/funnels/{funnel.id}/analytics",
        {"startDate": "2024-05-01", "endDate": "2024-05-03", "breakdown": "plan"},
    ).json()
    start, end = first, first + timedelta(days=3)
    expected = reference.funnel(events, steps, window=86400, order=order, start=start, end=end)
    plan_of = {e["user"]: e["properties"]["plan"] for e in events if e["name"] == "view"}
    entrants: dict[str, list[str]] = {}
    for user in expected["best"]:
        entrants.setdefault(plan_of[user], []).append(user)
    ranked = sorted(entrants, key=lambda plan: (-len(entrants[plan]), plan))
    assert [group["value"] for group in body["breakdown"]] == [*ranked[:10], "Other"]
    for group in body["breakdown"]:
        users = entrants[group["value"]] if group["value"] != "Other" else [u for p in ranked[10:] for u in entrants[p]]
        mine = [e for e in events if e["user"] in users]
        want = reference.funnel(mine, steps, window=86400, order=order, start=start, end=end)
        _same_steps(group["steps"], want["steps"])
    assert sum(group["steps"][0]["users"] for group in body["breakdown"]) == body["steps"][0]["users"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_users_who_converted_or_dropped_paged_by_cursor(project, api, mirror, variant):
    steps, order = VARIANTS[variant]
    first = datetime(2024, 5, 1, tzinfo=UTC)
    events = generated(random.Random(11), first)
    _store(project, events)
    mirror.ready(project)
    funnel = funnel_for(project, steps, order=order)
    start, end = first, first + timedelta(days=2)
    best = reference.funnel(events, steps, window=86400, order=order, start=start, end=end)["best"]
    url = f"/api/v1/funnels/{funnel.id}/analytics/users"
    for status, wanted in (("converted", lambda n: n >= 2), ("dropped", lambda n: n == 2)):
        seen, cursor = [], None
        while True:
            params = {"step": 2, "status": status, "limit": 3, "startDate": "2024-05-01", "endDate": "2024-05-02"}
            page = api.get(url, {**params, **({"cursor": cursor} if cursor else {})}).json()
            assert len(page["users"]) <= 3
            seen += page["users"]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        expected = sorted(user for user, times in best.items() if wanted(len(times)))
        assert [u["userId"] for u in seen] == expected and expected
        for row in seen:
            assert row["reachedStep"] == len(best[row["userId"]])
            assert datetime.fromisoformat(row["enteredAt"]) == best[row["userId"]][0]


def test_results_follow_new_events_despite_the_cache(project, api):
    funnel = funnel_for(project)
    url = f"/api/v1/funnels/{funnel.id}/analytics?startDate=2024-05-01&endDate=2024-05-01"
    store_events(project, [("u", "view", datetime(2024, 5, 1, 9, tzinfo=UTC), {})])
    assert [s["users"] for s in api.get(url).json()["steps"]] == [1, 0, 0]
    store_events(project, [("u", "cart", datetime(2024, 5, 1, 10, tzinfo=UTC), {"price": 10})])
    assert [s["users"] for s in api.get(url).json()["steps"]] == [1, 1, 0]
    assert api.get(url).json()["steps"][1]["medianTimeToConvertSeconds"] == 3600.0


def test_bad_requests_are_4xx_in_the_error_shape(project, other_project, api, make_key, client_for):
    funnel = funnel_for(project)
    theirs = funnel_for(other_project)
    base = f"/api/v1/funnels/{funnel.id}/analytics"
    assert_error(api.get(f"/api/v1/funnels/{theirs.id}/analytics"), 404, "not_found")
    assert_error(api.get("/api/v1/funnels/999999/analytics/users?step=1"), 404, "not_found")
    assert_error(api.get("/api/v1/funnels/abc/analytics"), 404, "not_found")
    assert_error(api.get(base, {"startDate": "2024-13-01"}), 400, "invalid_input")
    assert_error(api.get(base, {"breakdown": "p" * 201}), 400, "invalid_input")
    for params in (
        {},
        {"step": 0},
        {"step": 4},
        {"step": "x"},
        {"step": 1, "status": "maybe"},
        {"step": 1, "limit": 0},
    ):
        assert_error(api.get(base + "/users", params), 400, "invalid_input")
    assert_error(api.get(base + "/users", {"step": 1, "cursor": "%%%"}), 400, "invalid_input")
    ingest_only = client_for(make_key(project, scopes=["ingest"]))
    assert_error(ingest_only.get(base), 403, "forbidden")
    assert client_for(make_key(project, scopes=["read"])).get(base).status_code == 200


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_breakdown_values_keep_their_json_type_ties_by_json_text_absent_last(project, api, mirror, variant):
    """Groups are the JSON values of the property (10 and "10" apart), ranked by entrants,
    ties by their JSON text with the users who lack it last."""
    counts = [(True, 3), (10, 3), ("10", 3), ("absent", 3), (2.5, 2), ("a", 2), ([1], 1), ({"k": 1}, 1)]
    events, at = [], datetime(2024, 5, 1, 9, tzinfo=UTC)
    for group, (value, count) in enumerate(counts):
        for i in range(count):
            user = f"g{group}-{i}"
            events.append(
                {"user": user, "name": "view", "ts": at, "properties": {} if value == "absent" else {"plan": value}}
            )
            if i == 0:  # one of each group goes on to step 2
                events.append(
                    {"user": user, "name": "cart", "ts": at + timedelta(minutes=1), "properties": {"price": 10}}
                )
    _store(project, events)
    mirror.ready(project)
    steps, order = VARIANTS[variant]
    funnel = funnel_for(project, steps, order=order)
    body = api.get(
        f"/api/v1/funnels/{funnel.id}/analytics",
        {"startDate": "2024-05-01", "endDate": "2024-05-01", "breakdown": "plan"},
    ).json()
    assert [group["value"] for group in body["breakdown"]] == ["10", 10, True, None, "a", 2.5, [1], {"k": 1}]
    assert [type(group["value"]) for group in body["breakdown"][:3]] == [str, int, bool]
    assert [[s["users"] for s in group["steps"]] for group in body["breakdown"]] == [
        [3, 1, 0],
        [3, 1, 0],
        [3, 1, 0],
        [3, 1, 0],
        [2, 1, 0],
        [2, 1, 0],
        [1, 1, 0],
        [1, 1, 0],
    ]
    assert body["steps"][0]["users"] == 18 and body["steps"][1]["users"] == 8

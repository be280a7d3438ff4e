import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command

from accounts.models import Project
from accounts.services import organization_get_or_create, project_get_or_create
from events.models import UserDay, UserDayEvent
from events.queries import MetricsQuery
from events.rollups import rollups_rebuild, rollups_valid
from tests import reference
from tests.helpers import store_events

pytestmark = pytest.mark.django_db


def expected_rollups(events, tz):
    per_day, per_event = Counter(), Counter()
    for user, name, moment in events:
        day = moment.astimezone(tz).date()
        per_day[(day, user)] += 1
        per_event[(name, day, user)] += 1
    return per_day, per_event


def stored_rollups(project):
    per_day = Counter({(r.day, r.user_id): r.events for r in UserDay.objects.filter(project=project)})
    per_event = Counter(
        {(r.event_name, r.day, r.user_id): r.events for r in UserDayEvent.objects.filter(project=project)}
    )
    return per_day, per_event


def test_the_worker_keeps_the_rollups_exact_through_duplicates_and_batches(make_key, client_for, jobs):
    project = project_get_or_create(
        organization=organization_get_or_create(name="Roll"), name="Up", timezone_name="America/New_York"
    )
    assert rollups_valid(project.id)  # a new project's (empty) rollups are valid from the start
    client = client_for(make_key(project, scopes=["ingest"]))
    rng = random.Random(3)
    sent = []
    for _ in range(12):
        batch = []
        for _ in range(rng.randint(1, 60)):
            moment = datetime(2024, 11, 2, tzinfo=UTC) + timedelta(minutes=rng.randint(0, 3 * 24 * 60))
            batch.append(
                {"userId": f"u{rng.randint(1, 9)}", "eventName": rng.choice("ab"), "timestamp": moment.isoformat()}
            )
        batch += rng.sample(sent, min(len(sent), 5))  # replays: stored once, counted once
        client.post("/api/v1/events", batch, format="json")
        sent += batch
    jobs()
    unique = {(e["userId"], e["eventName"], datetime.fromisoformat(e["timestamp"])) for e in sent}
    expected = expected_rollups(unique, ZoneInfo("America/New_York"))
    assert stored_rollups(project) == expected
    rollups_rebuild(project_id=project.id)
    assert stored_rollups(project) == expected


def test_a_timezone_change_falls_back_to_events_until_the_rebuild(project, jobs):
    events = [("u1", "x", datetime(2024, 3, 10, 3, 30, tzinfo=UTC)), ("u2", "x", datetime(2024, 3, 10, 23, tzinfo=UTC))]
    store_events(project, events)
    params = {"interval": "day", "startDate": "2024-03-09", "endDate": "2024-03-11"}
    utc = MetricsQuery(project=project, params=params)
    assert utc.calculate()["buckets"][1]["count"] == 2 and utc.source.table == "events_userday"

    project_get_or_create(organization=project.organization, name=project.name, timezone_name="America/New_York")
    project = Project.objects.get(pk=project.pk)
    assert not rollups_valid(project.id)
    stale = MetricsQuery(project=project, params=params)
    tz = ZoneInfo("America/New_York")
    lo, hi = datetime(2024, 3, 9, tzinfo=tz), datetime(2024, 3, 12, tzinfo=tz)
    assert stale.calculate()["buckets"] == reference.metrics(events, tz, "day", lo, hi)
    assert stale.source.table == "events_event"  # and a rebuild was queued
    jobs()
    assert rollups_valid(project.id)
    fresh = MetricsQuery(project=project, params=params)
    assert fresh.calculate()["buckets"] == reference.metrics(events, tz, "day", lo, hi)
    assert fresh.source.table == "events_userday"


def test_rebuild_command(project):
    store_events(project, [("u", "x", datetime(2024, 1, 1, tzinfo=UTC))])
    Project.objects.filter(pk=project.pk).update(rollup_timezone="")
    UserDay.objects.all().delete()
    out = StringIO()
    call_command("rebuild_rollups", "--stale-only", stdout=out)
    assert "Rebuilt" in out.getvalue() and rollups_valid(project.id) and UserDay.objects.count() == 1

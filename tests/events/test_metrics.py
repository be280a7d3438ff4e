import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pytest

from accounts.services import project_get_or_create
from analytics_platform.dates import parse_range
from events.queries import MetricsQuery
from tests import reference
from tests.helpers import assert_error, store_events

pytestmark = pytest.mark.django_db

ZONES = ["UTC", "Asia/Kolkata", "America/New_York", "Asia/Kathmandu"]  # Kathmandu: +05:45
NAMES = ["page_view", "signup", "purchase"]


def generated(rng: random.Random, tz: ZoneInfo) -> list[tuple]:
    """Random events around both 2024 US DST changes, plus events exactly on local bucket
    boundaries (midnights, Mondays, month starts, the repeated and skipped hours)."""
    events = []
    for anchor in (datetime(2024, 3, 10, 7, tzinfo=UTC), datetime(2024, 11, 3, 6, tzinfo=UTC)):
        for _ in range(250):
            moment = anchor + timedelta(seconds=rng.randint(-5 * 86400, 5 * 86400))
            events.append((f"u{rng.randint(1, 30)}", rng.choice(NAMES), moment))
    for local in [
        "2024-03-10T00:00:00",
        "2024-03-11T00:00:00",
        "2024-03-10T03:00:00",
        "2024-11-03T01:00:00",
        "2024-11-04T00:00:00",
        "2024-11-01T00:00:00",
        "2024-03-01T00:00:00",
        "2024-11-03T00:00:00",
    ]:
        moment = datetime.fromisoformat(local).replace(tzinfo=tz)
        events.append(("edge", "page_view", moment.astimezone(UTC)))
    events.append(("edge", "page_view", datetime(2024, 11, 3, 1, 30, tzinfo=tz, fold=1).astimezone(UTC)))
    return events


def run(project, **params):
    return MetricsQuery(project=project, params=params).run()


@pytest.mark.parametrize("tz_name", ZONES)
@pytest.mark.parametrize(
    "interval,start,end",
    [
        ("day", "2024-03-05", "2024-03-15"),
        ("day", "2024-10-29", "2024-11-08"),
        ("hour", "2024-03-09", "2024-03-11"),
        ("hour", "2024-11-02", "2024-11-04"),
        ("week", "2024-03-01", "2024-03-20"),
        ("week", "2024-10-27", "2024-11-10"),
        ("month", "2024-02-15", "2024-11-30"),
        ("day", "2024-03-10T01:30:00", "2024-03-12T12:00:00"),
        ("hour", "2024-03-10T01:37:12", "2024-03-10T09:02:00"),
        ("hour", "2024-06-01", "2024-06-01"),
    ],
)
def test_metrics_match_the_brute_force_reference(project, tz_name, interval, start, end, mirror):
    tz = ZoneInfo(tz_name)
    project = project_get_or_create(organization=project.organization, name=project.name, timezone_name=tz_name)
    events = generated(random.Random(f"{tz_name}{interval}{start}"), tz)
    store_events(project, events)
    mirror.ready(project)
    lo, hi = parse_range(start, end, tz)
    for event in (None, "purchase"):
        params = {"interval": interval, "startDate": start, "endDate": end, **({"event": event} if event else {})}
        runner = MetricsQuery(project=project, params=params)
        got = runner.calculate()
        assert got["timezone"] == tz_name and got["interval"] == interval and got["event"] == event
        assert got["buckets"] == reference.metrics(events, tz, interval, lo, hi, event)


def test_dst_days_have_23_and_25_hourly_buckets(project):
    project = project_get_or_create(
        organization=project.organization, name=project.name, timezone_name="America/New_York"
    )
    spring = run(project, interval="hour", startDate="2024-03-10", endDate="2024-03-10")["buckets"]
    fall = run(project, interval="hour", startDate="2024-11-03", endDate="2024-11-03")["buckets"]
    assert len(spring) == 23 and len(fall) == 25
    assert spring[2]["start"] == "2024-03-10T03:00:00-04:00"
    assert [b["start"] for b in fall[1:3]] == ["2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-05:00"]


def test_half_hour_zone_hours_start_at_local_00(project):
    project = project_get_or_create(organization=project.organization, name=project.name, timezone_name="Asia/Kolkata")
    buckets = run(project, interval="hourly", startDate="2024-06-01", endDate="2024-06-01")["buckets"]
    assert len(buckets) == 24 and buckets[0]["start"] == "2024-06-01T00:00:00+05:30"
    assert all(b["start"][14:19] == "00:00" for b in buckets)


def test_aliases_defaults_and_empty_buckets(project):
    store_events(project, [("a", "x", datetime(2024, 1, 2, 12, tzinfo=UTC))])
    daily = run(project, interval="daily", startDate="2024-01-01", endDate="2024-01-03")
    assert daily["interval"] == "day" and daily["event"] is None
    assert [(b["start"], b["count"]) for b in daily["buckets"]] == [
        ("2024-01-01T00:00:00+00:00", 0),
        ("2024-01-02T00:00:00+00:00", 1),
        ("2024-01-03T00:00:00+00:00", 0),
    ]
    default = MetricsQuery(project=project, params={}, now=datetime(2024, 1, 10, 8, tzinfo=UTC)).run()
    assert len(default["buckets"]) == 30 and default["buckets"][-1]["start"] == "2024-01-10T00:00:00+00:00"
    assert sum(b["count"] for b in default["buckets"]) == 1


@pytest.mark.parametrize(
    "query",
    [
        "interval=fortnight",
        "startDate=2024-02-01&endDate=2024-01-01",
        "startDate=nope",
        "interval=hour&startDate=2023-01-01&endDate=2024-06-01",
        "interval=day&startDate=1900-01-01&endDate=2024-01-01",
        "event=" + "x" * 201,
    ],
)
def test_bad_parameters_are_400(project, make_key, client_for, query):
    client = client_for(make_key(project, scopes=["read"]))
    assert_error(client.get(f"/api/v1/metrics?{query}"), 400, "invalid_input")


def test_over_http_with_the_seed_aliases_and_cached(project, make_key, client_for, post_events, jobs):
    post_events([{"userId": "a", "eventName": "page_view", "timestamp": "2024-01-01T10:00:00Z"}])
    jobs()
    client = client_for(make_key(project, scopes=["read"]))
    url = "/api/v1/metrics?event=page_view&interval=daily&startDate=2024-01-01&endDate=2024-01-31"
    response = client.get(url)
    assert b'"count":1,' in response.content  # an integer, not 1.0
    first = response.json()
    assert len(first["buckets"]) == 31 and first["buckets"][0]["count"] == 1 and first["buckets"][0]["uniqueUsers"] == 1
    assert client.get(url).json() == first
    post_events([{"userId": "b", "eventName": "page_view", "timestamp": "2024-01-01T11:00:00Z"}])
    jobs()
    assert client.get(url).json()["buckets"][0]["count"] == 2  # new data, new data version, fresh answer


def test_each_computation_is_logged_with_runner_duration_and_rows(project, caplog):
    import logging

    store_events(project, [("a", "x", datetime(2024, 1, 2, 12, tzinfo=UTC))])
    with caplog.at_level(logging.INFO, logger="analytics_platform.queries"):
        run(project, interval="day", startDate="2024-01-01", endDate="2024-01-03")
        run(project, interval="day", startDate="2024-01-01", endDate="2024-01-03")
    lines = [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "query"]
    assert [line["cached"] for line in lines] == [False, True]
    assert lines[0]["runner"] == "metrics" and lines[0]["rows"] == 1 and lines[0]["duration_ms"] >= 0


def _export_and_compact(project) -> None:
    from warehouse.compact import partition_compact
    from warehouse.export import mirror_export_all
    from warehouse.models import MirrorFile

    mirror_export_all(project_id=project.id)
    for day in set(MirrorFile.objects.filter(project=project, retired_at__isnull=True).values_list("day", flat=True)):
        partition_compact(project_id=project.id, day=day)


@pytest.mark.parametrize("interval", ["day", "hour"])
def test_bucket_edges_off_the_rollups_slots_are_counted_from_the_events(project, interval, mirror):
    """Monrovia's offset was -00:44:30 until 1972: its midnights and hours fall inside the
    rollups' 15-minute slots, so those days are counted from their events."""
    tz = ZoneInfo("Africa/Monrovia")
    project = project_get_or_create(organization=project.organization, name=project.name, timezone_name=tz.key)
    rng = random.Random(interval)
    anchor = datetime(1971, 6, 3, tzinfo=UTC)
    events = [
        (f"u{rng.randint(1, 20)}", rng.choice(NAMES), anchor + timedelta(seconds=rng.randint(-2 * 86400, 2 * 86400)))
        for _ in range(300)
    ]
    events += [("edge", "page_view", datetime(1971, 6, 2, hour, tzinfo=tz).astimezone(UTC)) for hour in (0, 5, 23)]
    store_events(project, events)
    mirror.ready(project)
    for start, end in [("1971-06-01", "1971-06-04"), ("1971-06-02", "1971-06-02")]:
        lo, hi = parse_range(start, end, tz)
        for event in (None, "purchase"):
            got = run(project, interval=interval, startDate=start, endDate=end, **({"event": event} if event else {}))
            expected = reference.metrics(events, tz, interval, lo, hi, event, step=timedelta(seconds=30))
            assert got["buckets"] == expected, (start, end, event)


def test_whole_days_are_counted_from_the_rollups_alone(project, settings):
    """With the events' files gone from disk and only their rollups left, whole local days
    (east of UTC, across a DST change) are still answered, and rightly; a range whose edge
    falls inside a slot needs the events and cannot be."""
    tz = ZoneInfo("Europe/Berlin")
    project = project_get_or_create(organization=project.organization, name=project.name, timezone_name=tz.key)
    events = generated(random.Random("rollups"), tz)
    store_events(project, events)
    _export_and_compact(project)
    from warehouse.models import MirrorFile

    for f in MirrorFile.objects.filter(project=project, retired_at__isnull=True):
        (settings.ANALYTICS_DIR / f.path).unlink()
    for interval, start, end in [("day", "2024-03-05", "2024-03-15"), ("hour", "2024-10-26", "2024-10-28")]:
        lo, hi = parse_range(start, end, tz)
        assert run(project, interval=interval, startDate=start, endDate=end)["buckets"] == reference.metrics(
            events, tz, interval, lo, hi
        )
    with pytest.raises(duckdb.IOException, match="No files found"):
        MetricsQuery(project=project, params={"startDate": "2024-03-05T10:07:00", "endDate": "2024-03-06"}).calculate()


def test_files_written_before_rollups_existed_are_counted_from_their_events(project, settings):
    tz = ZoneInfo("America/New_York")
    project = project_get_or_create(organization=project.organization, name=project.name, timezone_name=tz.key)
    events = generated(random.Random("no rollups"), tz)
    store_events(project, events)
    _export_and_compact(project)
    from warehouse.models import MirrorFile

    live = MirrorFile.objects.filter(project=project, retired_at__isnull=True).order_by("day")
    for f in list(live)[::2]:  # every other day as an older version wrote it
        (settings.ANALYTICS_DIR / f.path.replace(".parquet", ".rollup.parquet")).unlink()
        MirrorFile.objects.filter(pk=f.pk).update(rollup=False)
    for interval, start, end in [("day", "2024-03-05", "2024-03-15"), ("week", "2024-10-27", "2024-11-10")]:
        lo, hi = parse_range(start, end, tz)
        for event in (None, "signup"):
            got = run(project, interval=interval, startDate=start, endDate=end, **({"event": event} if event else {}))
            assert got["buckets"] == reference.metrics(events, tz, interval, lo, hi, event)

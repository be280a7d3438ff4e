"""Exactness: a snapshot reader counts every stored event exactly once (COUNT(*) and
COUNT(DISTINCT id) over snap.events(), each row's fields checked against the events table)
whether the events are in the outbox tail, in files, in compacted files, late (old
timestamps landing in old partitions), in files a compaction retired after the reader
listed them, or in a rebuilt mirror."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from events.models import Event
from tests.warehouse.helpers import DAY_ONE, assert_exact, mirror_state, spread, store
from warehouse.compact import mirror_sweep, partition_compact
from warehouse.export import mirror_export, mirror_export_all
from warehouse.models import MirrorFile
from warehouse.rebuild import mirror_rebuild
from warehouse.snapshot import snapshot

pytestmark = pytest.mark.usefixtures("no_auto_export")
DAYS = {"2024-03-10", "2024-03-11", "2024-03-12"}


def count_read(snap, start=None, end=None) -> tuple[int, int]:
    return snap.fetch(f"SELECT COUNT(*), COUNT(DISTINCT id) FROM {snap.events(start, end)} e")[0]


def stored_between(project, start, end) -> int:
    events = Event.objects.filter(project=project)
    if start is not None:
        events = events.filter(timestamp__gte=start)
    if end is not None:
        events = events.filter(timestamp__lt=end)
    return events.count()


def test_events_in_the_tail_only_are_read_once(project):
    store(project.id, spread(60, 3), tag="a")
    state = mirror_state(project.id)
    assert_exact(state, stored=60)
    assert state["pending"] == 60 and state["live"] == {}


def test_events_half_in_files_half_in_the_tail_are_read_once(project):
    store(project.id, spread(60, 3), tag="a")
    assert mirror_export(project_id=project.id, limit=25) == (25, {datetime(2024, 3, d).date() for d in (10, 11, 12)})
    state = mirror_state(project.id)
    assert_exact(state, stored=60)
    assert state["pending"] == 35 and sum(state["live"].values()) == 25


def test_events_in_files_are_read_once_and_each_file_holds_one_utc_day(project):
    store(project.id, spread(60, 3), tag="a")
    assert mirror_export_all(project_id=project.id)[0] == 60
    state = mirror_state(project.id)
    assert_exact(state, stored=60)
    assert state["pending"] == 0 and state["live_days"] == dict.fromkeys(DAYS, 1)


def test_compacted_files_are_read_once(project):
    store(project.id, spread(90, 3), tag="a")
    for _ in range(3):
        mirror_export(project_id=project.id, limit=30)
    assert mirror_state(project.id)["live_days"] == dict.fromkeys(DAYS, 3)
    for day in sorted(DAYS):
        assert partition_compact(project_id=project.id, day=datetime.fromisoformat(day).date()) == 3
    state = mirror_state(project.id)
    assert_exact(state, stored=90)
    assert state["live_days"] == dict.fromkeys(DAYS, 1) and len(state["retired"]) == 9


def test_late_events_land_in_their_old_partitions_and_are_read_once_in_any_range(project):
    store(project.id, spread(60, 3), tag="on-time")
    mirror_export_all(project_id=project.id)
    old = datetime(2024, 1, 5, tzinfo=UTC)
    late = [
        ("late1", "signup", old + timedelta(hours=3), {}),
        ("late2", "signup", old + timedelta(hours=23, minutes=59, seconds=59, microseconds=999_999), {}),
        ("late3", "purchase", old + timedelta(days=1), {}),  # midnight: the next day's partition
        ("late4", "purchase", DAY_ONE + timedelta(hours=1), {}),  # a partition that has a file
        ("late5", "page_view", datetime.fromisoformat("2024-03-10T23:30:00-05:00"), {}),  # 04:30 UTC on the 11th
    ]
    store(project.id, late, tag="late")
    ranges = [(old, old + timedelta(days=1)), (old, old + timedelta(days=2)), (DAY_ONE, DAY_ONE + timedelta(days=1))]
    ranges += [(DAY_ONE + timedelta(days=1), None), (None, old + timedelta(days=1)), (None, None)]

    def check_ranges():
        with snapshot(project.id) as snap:
            for start, end in ranges:
                expected = stored_between(project, start, end)
                assert count_read(snap, start, end) == (expected, expected), (start, end)

    assert_exact(mirror_state(project.id), stored=65)  # the late ones in the tail
    check_ranges()
    mirror_export_all(project_id=project.id)
    state = mirror_state(project.id)
    assert_exact(state, stored=65)
    assert state["live_days"] == {"2024-01-05": 1, "2024-01-06": 1, "2024-03-10": 2, "2024-03-11": 2, "2024-03-12": 1}
    check_ranges()
    for day in ("2024-03-10", "2024-03-11"):
        partition_compact(project_id=project.id, day=datetime.fromisoformat(day).date())
    assert_exact(mirror_state(project.id), stored=65)
    check_ranges()


def test_a_reader_that_listed_files_before_a_compaction_reads_them_after_it(project, settings):
    store(project.id, spread(90, 3), tag="a")
    for _ in range(3):
        mirror_export(project_id=project.id, limit=30)
    store(project.id, spread(12, 3, user_prefix="tail"), tag="tail")  # and a tail
    day = DAY_ONE.date()
    with snapshot(project.id) as before:
        listed = {f.path for f in before.files}
        assert partition_compact(project_id=project.id, day=day) == 3
        mirror_export_all(project_id=project.id)  # the tail moves to files too
        assert mirror_sweep() == 0  # within the grace period: the retired files stay
        assert count_read(before) == (102, 102)
        assert count_read(before, DAY_ONE, DAY_ONE + timedelta(days=1)) == (34, 34)
        with snapshot(project.id) as after:
            assert {f.path for f in after.files}.isdisjoint(listed - set(mirror_state(project.id)["live"]))
            assert count_read(after) == (102, 102)
    settings.ANALYTICS_GRACE_SECONDS = 0
    assert mirror_sweep() == 3  # the grace period over: the retired files go, the live stay
    state = mirror_state(project.id)
    assert_exact(state, stored=102)
    assert state["retired"] == [] and state["on_disk"] == sorted(state["live"])


def test_rebuild_mirror_rewrites_every_day_into_one_file_and_keeps_the_tail_exact(project, other_project):
    store(project.id, spread(90, 3), tag="a")
    store(other_project.id, spread(10, 2), tag="other")
    mirror_export_all(project_id=other_project.id)
    other_before = mirror_state(other_project.id)
    for _ in range(2):
        mirror_export(project_id=project.id, limit=30)
    output = io.StringIO()
    call_command("rebuild_mirror", project=project.id, stdout=output)
    assert output.getvalue() == f"{project}: 90 events mirrored\n"
    state = mirror_state(project.id)
    assert_exact(state, stored=90)
    assert state["pending"] == 0 and state["live_days"] == dict.fromkeys(DAYS, 1)
    # Retired: the six old files, then per day the rebuilt file and the exported tail's, merged.
    assert len(state["retired"]) == 6 + 3 * 2
    assert mirror_state(other_project.id) == other_before


def test_a_rebuild_repairs_a_lost_file_and_a_doubled_one(project):
    store(project.id, spread(90, 3), tag="a")
    for _ in range(3):
        mirror_export(project_id=project.id, limit=30)
    lost, doubled = MirrorFile.objects.filter(project=project).order_by("id")[:2]
    (lost_path := project_path(lost)).unlink()
    copy = doubled.path.replace(".parquet", "-copy.parquet")
    project_path(doubled).with_name(copy.rsplit("/", 1)[1]).write_bytes(project_path(doubled).read_bytes())
    MirrorFile.objects.create(project=project, day=doubled.day, path=copy, rows=doubled.rows, bytes=doubled.bytes)
    broken = mirror_state(project.id)
    assert "read_error" in broken and broken["live_missing_on_disk"] == [lost.path]
    assert not lost_path.exists()
    lost.delete()  # the reader sees a catalog without the lost file: 30 - 10 read, 10 twice
    broken = mirror_state(project.id)
    assert (broken["missing"], broken["doubled"]) == (lost.rows, doubled.rows)

    assert mirror_rebuild(project_id=project.id) == 90
    state = mirror_state(project.id)
    assert_exact(state, stored=90)
    assert state["live_days"] == dict.fromkeys(DAYS, 1)


def project_path(mirror_file):
    return settings.ANALYTICS_DIR / mirror_file.path


def test_rebuild_mirror_of_an_unknown_project_is_refused_and_changes_nothing(project):
    store(project.id, spread(10, 2), tag="a")
    mirror_export(project_id=project.id, limit=5)
    before = mirror_state(project.id)
    with pytest.raises(CommandError, match="No project with id"):
        call_command("rebuild_mirror", project=project.id + 1000)
    assert mirror_state(project.id) == before


def summary_of_stored(project, start, end) -> dict:
    """Brute force over the events table: totals and unique users, overall and per name."""
    events = list(Event.objects.filter(project=project, timestamp__gte=start, timestamp__lt=end))
    names = sorted({e.event_name for e in events})
    return {
        "totalEvents": len(events),
        "uniqueUsers": len({e.user_id for e in events}),
        "users": {name: len({e.user_id for e in events if e.event_name == name}) for name in names},
    }


def summary_read(project) -> dict:
    from events.queries import SummaryQuery

    body = SummaryQuery(project=project, params={"startDate": "2024-03-01", "endDate": "2024-03-31"}).calculate()
    users = {top["eventName"]: top["uniqueUsers"] for top in body["topEvents"]}
    return {"totalEvents": body["totalEvents"], "uniqueUsers": body["uniqueUsers"], "users": users}


def test_a_months_span_counts_users_exactly_through_late_events_and_compactions(project):
    from warehouse.models import MirrorSpan
    from warehouse.spans import spans_merge

    march = (datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC))
    store(project.id, spread(90, 3), tag="a")
    mirror_export_all(project_id=project.id)
    assert spans_merge(project_id=project.id, today=datetime(2024, 4, 1).date()) == 1
    assert summary_read(project) == summary_of_stored(project, *march)
    # late events for a served day, from new users: a file the span does not list
    store(project.id, spread(12, 2, user_prefix="late"), tag="late")
    mirror_export_all(project_id=project.id)
    assert summary_read(project) == summary_of_stored(project, *march)
    # the day's files merged: the span no longer serves it (its files are retired)
    assert partition_compact(project_id=project.id, day=DAY_ONE.date()) == 2
    assert summary_read(project) == summary_of_stored(project, *march)
    assert spans_merge(project_id=project.id, today=datetime(2024, 4, 1).date()) == 1
    assert spans_merge(project_id=project.id, today=datetime(2024, 4, 1).date()) == 0  # nothing left to merge
    assert summary_read(project) == summary_of_stored(project, *march)
    assert MirrorSpan.objects.filter(project=project, retired_at__isnull=True).count() == 1
    state = mirror_state(project.id)
    assert_exact(state, stored=102)
    assert len(state["spans"]) == 2  # the old one retired, kept for the grace period

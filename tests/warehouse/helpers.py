"""What the warehouse tests build and check, the same in the test process and in the
driver's subprocesses (tests/warehouse/driver.py).

`mirror_state(project_id)` compares what a snapshot reader reads with the events table, id
by id and field by field, and describes the catalog and the files on disk; `assert_exact`
holds the guarantee: every stored event read exactly once, every live file on disk with the
rows the catalog says, each in its UTC day's partition.
"""

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from django.conf import settings

DAY_ONE = datetime(2024, 3, 10, tzinfo=UTC)


def spread(count: int, days: int, *, start: datetime = DAY_ONE, user_prefix: str = "u") -> list[tuple]:
    """`count` events, interleaved over `days` UTC days from `start` (event i on day i % days,
    so consecutive ids fall on different days), times spread over each day."""
    names = ("signup", "page_view", "purchase")
    return [
        (
            f"{user_prefix}{i % 7}",
            names[i % 3],
            start + timedelta(days=i % days, seconds=(i * 977) % 86_400, microseconds=i),
            {"i": i},
        )
        for i in range(count)
    ]


def store(project_id: int, events: list[tuple], *, tag: str) -> None:
    """Stores (user, name, aware datetime, properties) events through events_persist, as the
    worker does, with event ids unique to `tag`."""
    from events.services import events_persist
    from events.validation import validate_event

    rows = []
    for i, (user, name, moment, properties) in enumerate(events):
        raw = {
            "userId": user,
            "eventName": name,
            "timestamp": moment.isoformat(),
            "eventId": f"{tag}-{i}",
            "properties": properties,
        }
        row, errors = validate_event(raw, received_at=datetime(2030, 1, 1, tzinfo=UTC), client_ip=None, user_agent=None)
        assert errors is None, errors
        rows.append(row.as_job_row())
    for start in range(0, len(rows), 1000):
        events_persist(project_id=project_id, rows=rows[start : start + 1000], publish=False)


def _utc(moment) -> str:
    return moment.astimezone(UTC).isoformat()


ROLLUP = ".rollup.parquet"  # the name warehouse.rollup gives a file's rollup


def mirror_state(project_id: int) -> dict:
    """The project's events as a snapshot reads them, against the events table; its catalog
    and files. JSON-serializable."""
    from events.models import Event
    from warehouse.engine import engine_cursor
    from warehouse.export import outbox_events
    from warehouse.models import MirrorFile, MirrorSpan
    from warehouse.snapshot import snapshot

    stored = {
        event.id: (event.event_id, event.user_id, event.event_name, _utc(event.timestamp), event.properties)
        for event in Event.objects.filter(project_id=project_id)
    }
    root = settings.ANALYTICS_DIR
    project_dir = root / str(project_id)
    files = sorted(str(path.relative_to(root)) for path in project_dir.rglob("*") if path.is_file())
    spans_on_disk = [path for path in files if path.startswith(f"{project_id}/spans/")]
    # the data files (a rollup goes with its file)
    on_disk = [path for path in files if ROLLUP not in path and path not in spans_on_disk]
    rollups_on_disk = set(files) - set(on_disk) - set(spans_on_disk)
    live = list(MirrorFile.objects.filter(project_id=project_id, retired_at__isnull=True).order_by("path"))
    retired = sorted(
        MirrorFile.objects.filter(project_id=project_id, retired_at__isnull=False).values_list("path", flat=True)
    )
    missing_files = [f.path for f in live if not (root / f.path).is_file()]
    file_rows_differ, rollup_differs, misfiled = [], [], 0
    engine = engine_cursor()
    try:
        for f in live:
            if f.path in missing_files:
                continue
            quoted = str(root / f.path).replace("'", "''")
            wrong_day = f"COUNT(*) FILTER (WHERE timezone('UTC', \"timestamp\")::DATE <> DATE '{f.day}')"
            rows, wrong = engine.execute(f"SELECT COUNT(*), {wrong_day} FROM read_parquet('{quoted}')").fetchone()
            if rows != f.rows:
                file_rows_differ.append(f.path)
            misfiled += wrong
            if not _rollup_agrees(engine, f, rows, rollups_on_disk):
                rollup_differs.append(f.path)
    finally:
        engine.close()

    state = {
        "stored": len(stored),
        "pending": outbox_events(project_id),
        "live": {f.path: f.rows for f in live},
        "live_days": dict(Counter(str(f.day) for f in live)),
        "retired": retired,
        "spans": sorted(MirrorSpan.objects.filter(project_id=project_id).values_list("path", flat=True)),
        "live_spans": MirrorSpan.objects.filter(project_id=project_id, retired_at__isnull=True).count(),
        "span_differs": _spans_differ(project_id),
        "on_disk": on_disk,
        "spans_on_disk": spans_on_disk,
        "live_missing_on_disk": missing_files,
        "file_rows_differ": file_rows_differ,
        "rollup_differs": rollup_differs,
        "misfiled": misfiled,
    }
    try:
        with snapshot(project_id) as snap:
            read = snap.fetch(f"SELECT id, event_id, user_id, event_name, ts, properties FROM {snap.events()} e")
    except Exception as exc:  # noqa: BLE001 - reported, and assert_exact fails on it
        return {**state, "read_error": f"{type(exc).__name__}: {exc}"}
    times = Counter(row[0] for row in read)
    as_read = {row[0]: (row[1], row[2], row[3], _utc(row[4]), json.loads(row[5])) for row in read}
    return {
        **state,
        "read": len(read),
        "distinct": len(times),
        "missing": len(stored.keys() - times.keys()),
        "extra": len(times.keys() - stored.keys()),
        "doubled": sum(1 for n in times.values() if n > 1),
        "mismatched": sum(1 for pk, fields in as_read.items() if pk in stored and stored[pk] != fields),
    }


def _rollup_agrees(engine, f, rows: int, rollups_on_disk: set) -> bool:
    """The file's rollup is there, and counts its events and users: per slot and per user,
    the events add up to the file's rows, and there is one any-event row per distinct user."""
    rollup = f.path.removesuffix(".parquet") + ROLLUP
    if not f.rollup or rollup not in rollups_on_disk:
        return False
    data = str(settings.ANALYTICS_DIR / f.path).replace("'", "''")
    quoted = str(settings.ANALYTICS_DIR / rollup).replace("'", "''")
    in_slots, in_users, users = engine.execute(
        "SELECT SUM(n) FILTER (WHERE kind = 0), SUM(n) FILTER (WHERE kind = 1), COUNT(*) FILTER (WHERE kind = 1) "
        f"FROM read_parquet('{quoted}')"
    ).fetchone()
    distinct = engine.execute(f"SELECT COUNT(DISTINCT user_id) FROM read_parquet('{data}')").fetchone()[0]
    return in_slots == in_users == rows and users == distinct


def _spans_differ(project_id: int) -> list[str]:
    """Live spans whose users differ, on a day they list, from the users of the events in the
    files they list for it (per user, and per event name and user)."""
    from warehouse.engine import engine_cursor
    from warehouse.models import MirrorFile, MirrorSpan

    differ = []
    engine = engine_cursor()
    try:
        for span in MirrorSpan.objects.filter(project_id=project_id, retired_at__isnull=True):
            quoted = str(settings.ANALYTICS_DIR / span.path).replace("'", "''")
            for day, ids in span.files.items():
                bit = 1 << (date.fromisoformat(day) - span.month).days
                paths = [
                    str(settings.ANALYTICS_DIR / p)
                    for p in MirrorFile.objects.filter(pk__in=ids).values_list("path", flat=True)
                ]
                listed = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
                from_span = engine.execute(
                    f"SELECT kind, COALESCE(event_name, ''), user_id FROM read_parquet('{quoted}') "
                    f"WHERE days & {bit} <> 0"
                ).fetchall()
                from_events = engine.execute(
                    f"SELECT DISTINCT 1, '', user_id FROM read_parquet([{listed}]) "
                    f"UNION ALL SELECT DISTINCT 2, event_name, user_id FROM read_parquet([{listed}])"
                ).fetchall()
                if sorted(from_span) != sorted(from_events):
                    differ.append(f"{span.path} {day}")
    finally:
        engine.close()
    return differ


def assert_exact(state: dict, stored: int | None = None) -> None:
    """Every stored event read once, with its fields; the catalog's live files whole."""
    assert "read_error" not in state, state
    if stored is not None:
        assert state["stored"] == stored, state
    assert state["read"] == state["distinct"] == state["stored"], state
    assert (state["missing"], state["extra"], state["doubled"], state["mismatched"]) == (0, 0, 0, 0), state
    assert state["live_missing_on_disk"] == [] and state["file_rows_differ"] == [] and state["misfiled"] == 0, state
    assert state["rollup_differs"] == [] and state["span_differs"] == [], state
    assert sum(state["live"].values()) + state["pending"] == state["stored"], state


def orphans(state: dict) -> list[str]:
    """Files on disk that no catalog row names."""
    on_disk = set(state["on_disk"]) | set(state["spans_on_disk"])
    return sorted(on_disk - set(state["live"]) - set(state["retired"]) - set(state["spans"]))


def states(results: list[tuple[str, object]]) -> list[dict]:
    """The mirror states a driver process reported (tests/warehouse/driver.py), in order."""
    return [result for operation, result in results if operation == "state"]

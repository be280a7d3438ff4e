"""Reading a project's events for analytics: the live Parquet files and the outbox tail,
taken in one database snapshot.

The file list and the tail (events stored but not yet exported, read from the events table
through the outbox) come from one statement, hence one database snapshot, and an export
moves events from the outbox to a file in one transaction, so every stored event is read
exactly once: in a file or in the tail, never both, never neither, whatever exports or
compactions commit meanwhile. Retired files stay on disk for a grace period, so a
snapshot's files are still there while it reads them.

    with snapshot(project_id, start, end) as snap:
        rows = snap.fetch(f"SELECT COUNT(*) FROM {snap.events(start, end)} e")

The snapshot's own bounds (optional) limit the tail it reads from the database to the span
the query needs (a tail can be long while exports are behind); `events(start, end)` must
lie inside them. It is a relation of the project's events with start <= ts < end (either
bound optional), with columns id, event_id, user_id, event_name, ts (TIMESTAMPTZ, UTC),
properties (JSON text), session_id, page_url; the files are pruned by their UTC day.
"""

import json
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
from django.db import connection

from warehouse.engine import engine_cursor
from warehouse.files import COLUMNS, sql_path, sql_paths
from warehouse.rollup import ANY_EVENT, EACH_EVENT, SLOTTED, WHOLE_DAY, pieces, rollup_path

SELECT = 'id, event_id, user_id, event_name, "timestamp" AS ts, properties, session_id, page_url'


def event_columns_sql() -> str:
    """The events table's columns `e.*` in COLUMNS order (properties as JSON text). From
    PostgreSQL the timestamp comes as microseconds since the epoch: Django's loader of
    timestamptz values is Python's, and was three fifths of an export's time."""
    if connection.vendor == "postgresql":
        timestamp, properties = '(EXTRACT(EPOCH FROM e."timestamp") * 1000000)::bigint', "e.properties::text"
    else:
        timestamp, properties = "e.timestamp", "e.properties"
    return f"e.id, e.event_id, e.user_id, e.event_name, {timestamp}, {properties}, e.session_id, e.page_url"


def outbox_events_sql() -> str:
    """FROM the outbox's rows `p`, each joined with its events `e` (a row's ids unnested)."""
    if connection.vendor == "postgresql":
        ids = "CROSS JOIN LATERAL unnest(p.event_ids) AS u(id) JOIN events_event e ON e.id = u.id"
    else:
        ids = "JOIN json_each(p.event_ids) AS u JOIN events_event e ON e.id = u.value"
    return f"warehouse_outbox p {ids}"


def event_rows_sql(where: str) -> str:
    """Selects the outboxed events' rows in COLUMNS order for `where` over events `e` and
    outbox rows `p`."""
    return f"SELECT {event_columns_sql()} FROM {outbox_events_sql()} WHERE {where}"


def rows_table(rows: list[tuple]) -> pa.Table:
    """Event rows in COLUMNS order as an Arrow table."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(COLUMNS)
    if connection.vendor == "postgresql":  # microseconds since the epoch (event_columns_sql)
        columns[4] = pa.array(columns[4], type=pa.int64()).cast(TIME)
    else:  # SQLite hands back naive UTC datetimes
        columns[4] = [_aware(value) for value in columns[4]]
    types = [pa.int64(), pa.string(), pa.string(), pa.string(), TIME, pa.string(), pa.string(), pa.string()]
    return pa.table(
        {name: pa.array(values, type=kind) for name, values, kind in zip(COLUMNS, columns, types, strict=True)}
    )


TIME = pa.timestamp("us", tz="UTC")


def _aware(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class LiveFile:
    id: int
    day: date
    path: str
    rollup: bool


@dataclass(frozen=True)
class LiveSpan:
    month: date
    path: str
    files: dict  # "YYYY-MM-DD" -> ids of the files it merged (warehouse.spans)


class Snapshot:
    def __init__(self, cursor, files: list[LiveFile], spans: list[LiveSpan], tail: pa.Table, limits: tuple):
        self.spans = spans
        self.cursor = cursor
        self.files = files
        self.limits = limits
        cursor.register("tail", tail)

    def events(self, start: datetime | None = None, end: datetime | None = None) -> str:
        self._check_limits(start, end)
        first = start.astimezone(UTC).date() if start is not None else date.min
        last = (end - timedelta(microseconds=1)).astimezone(UTC).date() if end is not None else date.max
        return self._events(start, end, [f for f in self.files if first <= f.day <= last])

    def _check_limits(self, start, end) -> None:
        low, high = self.limits
        if (low is not None and (start is None or start < low)) or (high is not None and (end is None or end > high)):
            raise ValueError(f"({start}, {end}) reaches outside the snapshot's limits {self.limits}")

    def _events(self, start, end, files: list[LiveFile]) -> str:
        where = []
        if start is not None:
            where.append(f"ts >= {_literal(start)}")
        if end is not None:
            where.append(f"ts < {_literal(end)}")
        condition = f" WHERE {' AND '.join(where)}" if where else ""
        parts = [f"SELECT {SELECT} FROM tail"]
        if files:
            parts.insert(0, f"SELECT {SELECT} FROM read_parquet({sql_paths(f.path for f in files)})")
        return "(SELECT * FROM (" + " UNION ALL ".join(parts) + f"){condition})"

    def bucketed(self, bounds: list[datetime], start: datetime, end: datetime, name: str = "b") -> "Bucketed":
        """The events with start <= ts < end in the buckets [bounds[i], bounds[i + 1]) (which
        cover that span), counted from the rollups where they can be and from the events
        elsewhere (see Bucketed). `name` tells apart two of them in one statement."""
        self._check_limits(start, end)
        first, last = start.astimezone(UTC).date(), (end - timedelta(microseconds=1)).astimezone(UTC).date()
        files = [f for f in self.files if first <= f.day <= last]
        rolled_days = {f.day for f in files} - {f.day for f in files if not f.rollup}
        table, unaligned = pieces(bounds, rolled_days, start, end)
        rolled_days -= unaligned
        self.register_buckets(f"{name}_buckets", bounds)
        self.cursor.register(f"{name}_pieces", table)
        rolled = [f for f in files if f.day in rolled_days]
        span_pieces, by_span, span_paths = self._spans_serving(table, rolled)
        self.cursor.register(f"{name}_span_pieces", span_pieces)
        raw = self._events(start, end, [f for f in files if f.day not in rolled_days])
        return Bucketed(
            name,
            raw,
            sql_paths(rollup_path(f.path) for f in rolled) if rolled else None,
            sql_paths(rollup_path(f.path) for f in rolled if f.id not in by_span)
            if len(by_span) < len(rolled)
            else None,
            span_paths,
        )

    def _spans_serving(self, day_pieces: pa.Table, rolled: list[LiveFile]) -> tuple[pa.Table, dict, list]:
        """Where a month's span counts a day's users: the span serves the day (warehouse.spans)
        and the day lies whole in a bucket with another such day. Returns the table (s, idx,
        days) of the bits of each span's days per bucket, the files whose users the spans
        count instead (id -> span path), and the spans' paths (s numbers them)."""
        whole = {}
        for day, idx, lo, hi in zip(
            *(day_pieces.column(c).to_pylist() for c in ("day", "idx", "lo", "hi")), strict=True
        ):
            whole[day] = idx if (lo, hi) == WHOLE_DAY and day not in whole else None
        live: dict[date, set] = {}
        for f in rolled:
            live.setdefault(f.day, set()).add(f.id)
        groups: dict[tuple[int, int], list] = {}
        for number, span in enumerate(self.spans):
            for day in _served_days(span.files, live):
                if whole.get(day) is not None:
                    groups.setdefault((number, whole[day]), []).append(day)
        used, by_span, rows = {}, {}, {"s": [], "idx": [], "days": []}
        for (number, idx), days in groups.items():
            span = self.spans[number]
            if len(days) < 2:  # a bucket's one day: its rollups are as few rows
                continue
            rows["s"].append(used.setdefault(span.path, len(used)))
            rows["idx"].append(idx)
            rows["days"].append(sum(1 << (day - span.month).days for day in days))
            by_span.update({pk: span.path for day in days for pk in span.files[day.isoformat()]})
        table = pa.table(
            {
                "s": pa.array(rows["s"], pa.int32()),
                "idx": pa.array(rows["idx"], pa.int32()),
                "days": pa.array(rows["days"], pa.uint32()),
            }
        )
        return table, by_span, list(used)

    def register_buckets(self, name: str, bounds: list[datetime]) -> None:
        """A table `name` (idx, lo) of the buckets [bounds[i], bounds[i + 1]), to match events
        to with `ASOF JOIN name b ON e.ts >= b.lo` (events already bounded by bounds[-1])."""
        starts = bounds[:-1]
        table = pa.table({"idx": pa.array(range(len(starts)), pa.int32()), "lo": pa.array(starts, TIME)})
        self.cursor.register(name, table)

    @staticmethod
    def literal(moment: datetime) -> str:
        return _literal(moment)

    def fetch(self, sql: str, params=None) -> list[tuple]:
        return self.cursor.execute(sql, params or []).fetchall()


@dataclass(frozen=True)
class Bucketed:
    """Relations over numbered buckets (Snapshot.bucketed), each summing to what the bucket's
    events would give: `counts()` rows (idx, event_name, n, first_ts, last_ts), n events with
    first and last timestamps; `users(each)` rows (idx, event_name, user_id), a user active in
    the bucket (repeated: count them DISTINCT), with event_name NULL for any event, or with
    `each` per event name."""

    name: str
    raw: str
    rollups: str | None  # the rolled files' rollups: counts
    user_rollups: str | None  # those whose users no span counts
    spans: list[str]  # paths of the spans used, relative to ANALYTICS_DIR

    def counts(self) -> str:
        parts = [
            "SELECT b.idx, e.event_name, 1 AS n, e.ts AS first_ts, e.ts AS last_ts "
            f"FROM {self.raw} e ASOF JOIN {self.name}_buckets b ON e.ts >= b.lo"
        ]
        if self.rollups:
            parts.append(
                f"SELECT p.idx, r.event_name, r.n, r.first_ts, r.last_ts FROM {self._rolled(SLOTTED, self.rollups)}"
            )
        return "(" + " UNION ALL ".join(parts) + ")"

    def users(self, each: bool = False) -> str:
        name = "e.event_name" if each else "NULL::VARCHAR"
        kind = EACH_EVENT if each else ANY_EVENT
        parts = [
            f"SELECT b.idx, {name} AS event_name, e.user_id FROM {self.raw} e "
            f"ASOF JOIN {self.name}_buckets b ON e.ts >= b.lo"
        ]
        name = "r.event_name" if each else "NULL::VARCHAR"
        if self.user_rollups:
            parts.append(f"SELECT p.idx, {name}, r.user_id FROM {self._rolled(kind, self.user_rollups)}")
        for s, path in enumerate(self.spans):
            parts.append(
                f"SELECT p.idx, {name}, r.user_id FROM (SELECT * FROM read_parquet({sql_path(path)}) r "
                f"WHERE r.kind = {kind}) r "
                f"JOIN {self.name}_span_pieces p ON p.s = {s} AND (r.days & p.days) <> 0"
            )
        return "(" + " UNION ALL ".join(parts) + ")"

    def _rolled(self, kind: int, rollups: str) -> str:
        return (
            f"(SELECT * FROM read_parquet({rollups}) r WHERE r.kind = {kind}) r "
            f"JOIN {self.name}_pieces p ON r.day = p.day AND ((r.lo & p.lo) <> 0 OR (r.hi & p.hi) <> 0)"
        )


def _served_days(span_files: dict, live: dict) -> set:
    """The days a span serves: those whose files, as the span lists them, are all among the
    live ones (`live`: day -> ids of its live files)."""
    return {
        date.fromisoformat(day)
        for day, ids in span_files.items()
        if set(ids) <= live.get(date.fromisoformat(day), set())
    }


def _literal(moment: datetime) -> str:
    return f"TIMESTAMPTZ '{moment.astimezone(UTC).isoformat()}'"


@contextmanager
def snapshot(project_id: int, start: datetime | None = None, end: datetime | None = None):
    files, spans, tail = _read_catalog_and_tail(project_id, start, end)
    cursor = engine_cursor()
    try:
        yield Snapshot(cursor, files, spans, tail, (start, end))
    finally:
        cursor.close()


def _read_catalog_and_tail(project_id: int, start, end) -> tuple[list[LiveFile], list[LiveSpan], pa.Table]:
    """The live files and the tail in one statement, hence one snapshot, on both databases
    (a statement sees one snapshot in PostgreSQL, a read in SQLite's WAL mode too) and with
    no transaction: on SQLite a transaction would take the write lock, and readers would
    queue behind ingestion and exports. The catalog's rows ride in the tail's columns (kind
    1, a file: id in `id`, path in `properties`, day in `session_id`, whether it has a
    rollup in `page_url`; kind 2, a span: path, month, its files as JSON in `page_url`);
    the tail's SELECT comes first so that SQLite types the timestamp column by its
    declaration."""
    where, params = "p.project_id = %s", [project_id]
    if start is not None:
        where, params = f"{where} AND e.timestamp >= %s", [*params, connection.ops.adapt_datetimefield_value(start)]
    if end is not None:
        where, params = f"{where} AND e.timestamp < %s", [*params, connection.ops.adapt_datetimefield_value(end)]
    span_files = "s.files::text" if connection.vendor == "postgresql" else "s.files"
    catalog = (
        "SELECT 1, f.id, NULL, NULL, NULL, NULL, f.path, CAST(f.day AS text), "
        "CASE WHEN f.rollup THEN 'rollup' END FROM warehouse_mirrorfile f "
        "WHERE f.project_id = %s AND f.retired_at IS NULL "
        f"UNION ALL SELECT 2, s.id, NULL, NULL, NULL, NULL, s.path, CAST(s.month AS text), {span_files} "
        "FROM warehouse_mirrorspan s WHERE s.project_id = %s AND s.retired_at IS NULL"
    )
    sql = f"SELECT 0, {event_columns_sql()} FROM {outbox_events_sql()} WHERE {where} UNION ALL {catalog}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, project_id, project_id])
        rows = cursor.fetchall()
    files = [LiveFile(row[1], _as_date(row[7]), row[6], row[8] is not None) for row in rows if row[0] == 1]
    spans = [LiveSpan(_as_date(row[7]), row[6], json.loads(row[8])) for row in rows if row[0] == 2]
    return files, spans, rows_table([row[1:] for row in rows if row[0] == 0])


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)

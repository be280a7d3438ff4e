"""Rollups: a small pre-aggregated companion written beside every file of the mirror, from
the same rows, so counts and unique users need not scan every event.

A file's events all fall on one UTC day, cut into 96 slots of 15 minutes (every time zone's
offset, DST included, is a whole number of 15 minutes since 1972, so local midnights and
hours fall on slot edges; a bucket edge that does not is detected and its day read from the
events instead). A rollup holds rows of three kinds, with `lo`/`hi` the bits of slots 0-63
and 64-95:

- SLOTTED, per (event name, slot): n events, their first and last timestamp, the slot's bit;
- ANY_EVENT, per user: the bits of the slots the user was active in (n: their events);
- EACH_EVENT, per (event name, user): the same for that event.

A query over buckets [bounds[i], bounds[i+1]) cuts each UTC day into the pieces each
bucket covers (`pieces`): a rollup row belongs to bucket i when its bits meet piece i's.
Counts are then sums over slot rows, unique users COUNT(DISTINCT user_id) over user rows
(a user in two files of one day, or in two days of one bucket, counts once).
"""

from bisect import bisect_right
from datetime import UTC, date, datetime, time, timedelta

import pyarrow as pa

SLOT = timedelta(minutes=15)
SLOTS = 96
DAY = timedelta(days=1)
SUFFIX = ".rollup.parquet"
# Its rows' kinds, in the order they are written (small row groups, so a query reading one
# kind skips the others by the row groups' statistics).
SLOTTED, ANY_EVENT, EACH_EVENT = 0, 1, 2
PARQUET = "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 16384)"
WHOLE_DAY = (2**64 - 1, 2**32 - 1)  # (lo, hi) of all 96 slots


def rollup_path(relative: str) -> str:
    """The rollup's path beside its file's (relative to ANALYTICS_DIR)."""
    return relative.removesuffix(".parquet") + SUFFIX


def rollup_select(select_sql: str, day: date) -> str:
    """The rollup of `select_sql`'s rows (the mirror's columns; all on UTC day `day`)."""
    midnight = datetime.combine(day, time(), tzinfo=UTC).isoformat()
    since = f"epoch_us(\"timestamp\") - epoch_us(TIMESTAMPTZ '{midnight}')"
    slotted = (
        f'SELECT event_name, user_id, "timestamp" AS ts, '
        f"CAST(({since}) // {int(SLOT.total_seconds() * 1_000_000)} AS INTEGER) AS slot FROM ({select_sql})"
    )
    bits = (
        "CASE WHEN slot < 64 THEN 1::UBIGINT << slot::UBIGINT ELSE 0::UBIGINT END AS lo, "
        "CASE WHEN slot >= 64 THEN 1::UBIGINT << (slot - 64)::UBIGINT ELSE 0::UBIGINT END AS hi"
    )
    kind = f"CASE WHEN GROUPING(event_name) = 1 THEN {ANY_EVENT} ELSE {EACH_EVENT} END::UTINYINT"
    return (
        f"WITH s AS (SELECT *, {bits} FROM ({slotted})) "
        f"SELECT {SLOTTED}::UTINYINT AS kind, DATE '{day.isoformat()}' AS day, event_name, NULL::VARCHAR AS user_id, "
        "ANY_VALUE(lo) AS lo, ANY_VALUE(hi) AS hi, COUNT(*) AS n, MIN(ts) AS first_ts, MAX(ts) AS last_ts "
        "FROM s GROUP BY event_name, slot "
        f"UNION ALL SELECT {kind}, DATE '{day.isoformat()}', event_name, user_id, BIT_OR(lo), BIT_OR(hi), COUNT(*), "
        "NULL::TIMESTAMPTZ, NULL::TIMESTAMPTZ FROM s GROUP BY GROUPING SETS ((user_id, event_name), (user_id)) "
        "ORDER BY kind, event_name, user_id"
    )


def pieces(bounds: list[datetime], days, start: datetime, end: datetime) -> tuple[pa.Table, set]:
    """The pieces of `days` (UTC days) that the buckets cover inside [start, end): a table
    (day, idx, lo, hi), and the days that cannot be cut on slot edges (to be read from their
    events)."""
    # compared as instants, not as wall times; buckets clipped to [start, end)
    bounds = [min(max(moment, start), end).astimezone(UTC) for moment in bounds]
    rows: dict[str, list] = {"day": [], "idx": [], "lo": [], "hi": []}
    unaligned = set()
    for day in sorted(days):
        start = datetime.combine(day, time(), tzinfo=UTC)
        cut = _cut(bounds, start)
        if cut is None:
            unaligned.add(day)
            continue
        for idx, first, last in cut:
            lo, hi = _bits(first, last)
            rows["day"].append(day)
            rows["idx"].append(idx)
            rows["lo"].append(lo)
            rows["hi"].append(hi)
    table = pa.table(
        {
            "day": pa.array(rows["day"], pa.date32()),
            "idx": pa.array(rows["idx"], pa.int32()),
            "lo": pa.array(rows["lo"], pa.uint64()),
            "hi": pa.array(rows["hi"], pa.uint64()),
        }
    )
    return table, unaligned


def _cut(bounds: list[datetime], start: datetime) -> list[tuple[int, int, int]] | None:
    """(bucket, first slot, last slot + 1) for each bucket meeting the day at `start`; None if
    a bucket edge inside the day is not a slot edge."""
    end = start + DAY
    cut = []
    i = max(bisect_right(bounds, start) - 1, 0)
    while i < len(bounds) - 1 and bounds[i] < end:
        low, high = max(bounds[i], start), min(bounds[i + 1], end)
        if low < high:
            first, last = _slot(low - start), _slot(high - start)
            if first is None or last is None:
                return None
            cut.append((i, first, last))
        i += 1
    return cut


def _slot(offset: timedelta) -> int | None:
    slots, rest = divmod(offset, SLOT)
    return None if rest else slots


def _bits(first: int, last: int) -> tuple[int, int]:
    mask = (1 << last) - (1 << first)
    return mask & (2**64 - 1), mask >> 64

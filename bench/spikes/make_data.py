"""Writes the spike's Parquet mirror from the project's own seed generator.

Run with the scratch venv (not the project venv; the project has no pyarrow/duckdb):

    python3 -m venv /tmp/spike && /tmp/spike/bin/pip install duckdb chdb pyarrow psutil
    /tmp/spike/bin/python bench/spikes/make_data.py --events 1000000 --out /tmp/mirror/1m

events/seeding.py imports django.db only for tables_analyze(); a stub module stands in for it so
the generator runs as is. Layout: <out>/project=1/day=YYYY-MM-DD/part-0.parquet (zstd), columns
id, event_id, user_id, event_name, timestamp (TIMESTAMPTZ UTC, µs), properties (JSON text),
session_id, page_url. `now` is fixed (2026-12-01T00:00Z) so every run yields the same data.
"""

import argparse
import shutil
import sys
import tempfile
import time
import types
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def load_generator():
    if "django.db" not in sys.modules:
        django = types.ModuleType("django")
        db = types.ModuleType("django.db")
        db.connection = None
        db.models = types.SimpleNamespace(Model=object)
        django.db = db
        sys.modules["django"], sys.modules["django.db"] = django, db
    sys.path.insert(0, str(ROOT))
    from events import seeding

    return seeding


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--chunk", type=int, default=500_000)
    args = parser.parse_args()
    seeding = load_generator()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="spike-raw-"))
    schema = pa.schema(
        [
            (name, pa.string())
            for name in ("event_id", "user_id", "event_name", "ts", "properties", "session_id", "page_url")
        ]
    )
    rows = seeding.generate_rows(events=args.events, users=args.events // 20, days=60, seed=1, now=NOW)
    for n, chunk in enumerate(seeding.chunked(rows, args.chunk)):
        cols = list(zip(*chunk, strict=True))
        table = pa.table([list(cols[i]) for i in range(7)], schema=schema)
        pq.write_table(table, tmp / f"raw-{n:05d}.parquet", compression="zstd")
    generated = time.monotonic() - started
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = true")
    (out / "project=1").mkdir(parents=True)
    con.execute(
        f"""
        COPY (
            SELECT row_number() OVER () AS id, event_id, user_id, event_name,
                   CAST(ts AS TIMESTAMPTZ) AS timestamp, properties, session_id, page_url,
                   strftime(CAST(ts AS TIMESTAMPTZ), '%Y-%m-%d') AS day
            FROM read_parquet('{tmp}/raw-*.parquet', filename = false)
            ORDER BY day, timestamp, id
        ) TO '{out}/project=1' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (day),
                                FILENAME_PATTERN 'part-{{i}}', OVERWRITE_OR_IGNORE true)
        """
    )
    shutil.rmtree(tmp)
    size = sum(p.stat().st_size for p in out.rglob("*.parquet"))
    files = len(list(out.rglob("*.parquet")))
    print(
        f"events={args.events} files={files} bytes={size} bytes_per_event={size / args.events:.1f} "
        f"generate_s={generated:.1f} total_s={time.monotonic() - started:.1f}"
    )


if __name__ == "__main__":
    main()

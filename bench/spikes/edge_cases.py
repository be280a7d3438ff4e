"""Crafted cases where windowFunnel and our funnel rules could part ways (issue 11 spike).

    /tmp/spike/bin/python bench/spikes/edge_cases.py

Writes a tiny mirror under $TMPDIR/spike-edge (same layout as make_data.py) and prints, per user,
the step reached by tests/reference.py (the judge), by the DuckDB SQL and by chDB windowFunnel.
"""

import json
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import engines  # noqa: E402

from tests import reference  # noqa: E402

T0 = datetime(2026, 11, 10, 12, tzinfo=UTC)
W = timedelta(seconds=engines.WINDOW)
S = timedelta(seconds=1)
LATE = datetime(2026, 11, 30, 23, tzinfo=UTC)  # step 1 an hour before the range ends
CASES = {
    # name: [(event_name, offset)], stored in this order
    "tie_after": [("page_view", 0 * S), ("add_to_cart", 0 * S)],  # same ts, stored after: counts
    "tie_before": [("add_to_cart", 0 * S), ("page_view", 0 * S)],  # same ts, stored before: not ours
    "window_edge": [("page_view", 0 * S), ("add_to_cart", W)],  # exactly t1 + window: inclusive
    "window_past": [("page_view", 0 * S), ("add_to_cart", W + S)],
    "after_range_end": [("page_view", LATE - T0), ("add_to_cart", LATE - T0 + 2 * 86400 * S)],
    "step1_before_range": [("page_view", -20 * 86400 * S), ("add_to_cart", -20 * 86400 * S + 5 * S)],
    "earliest_of_equals": [
        ("page_view", 0 * S),
        ("add_to_cart", 3000 * S),
        ("page_view", 4000 * S),
        ("add_to_cart", 4010 * S),
    ],
    "later_attempt_further": [
        ("page_view", 0 * S),
        ("add_to_cart", 10 * S),
        ("page_view", 9 * 86400 * S),
        ("add_to_cart", 9 * 86400 * S + 10 * S),
        ("checkout_start", 9 * 86400 * S + 20 * S),
    ],
    "out_of_order": [("add_to_cart", 0 * S), ("page_view", 10 * S), ("checkout_start", 20 * S)],
}


def main() -> None:
    root = Path(tempfile.gettempdir()) / "spike-edge"
    shutil.rmtree(root, ignore_errors=True)
    rows, events, i = [], [], 0
    for user, evs in CASES.items():
        for name, offset in evs:
            i += 1
            ts = T0 + offset
            rows.append((i, f"e{i}", user, name, ts, "{}", "s", "/"))
            events.append({"user": user, "name": name, "ts": ts, "properties": {}})
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE TABLE t (id BIGINT, event_id VARCHAR, user_id VARCHAR, event_name VARCHAR, timestamp TIMESTAMPTZ,"
        " properties VARCHAR, session_id VARCHAR, page_url VARCHAR)"
    )
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    (root / "project=1").mkdir(parents=True)
    con.execute(
        f"COPY (SELECT *, strftime(timestamp, '%Y-%m-%d') AS day FROM t ORDER BY id) TO '{root}/project=1'"
        " (FORMAT parquet, PARTITION_BY (day), FILENAME_PATTERN 'part-{i}')"
    )
    ref = reference.funnel(
        events,
        [{"eventName": s} for s in engines.STEPS],
        window=engines.WINDOW,
        order="ordered",
        start=datetime.fromisoformat(engines.START + "+00:00"),
        end=datetime.fromisoformat(engines.END + "+00:00"),
    )["best"]
    winners = engines.duck_sql(str(root)).split("SELECT GROUPING")[0]
    winners += " SELECT user_id, level, [g2, g3, g4] FROM winners ORDER BY user_id"
    duck = {u: (lvl, g) for u, lvl, g in con.execute(winners).fetchall()}
    sess = engines.chdb_connect()
    sql = engines.chdb_sql(str(root)).replace("SELECT level, count() AS users FROM (", "SELECT user_id, level FROM (")
    sql = sql.replace("GROUP BY level ORDER BY level", "ORDER BY user_id")
    ch = {u: lvl for u, lvl in json.loads(sess.query(sql, "JSONCompact").bytes())["data"]}
    print(f"{'case':24} {'reference':>9} {'duckdb':>6} {'chdb':>4}  reference gaps / duckdb gaps (s)")
    for user in CASES:
        r = ref.get(user)
        rl = len(r) if r else 0
        rg = [(b - a).total_seconds() for a, b in zip(r, r[1:], strict=False)] if r else []
        dl, dg = duck.get(user, (0, []))
        dg = [g for g in dg if g is not None]
        mark = "" if rl == dl == ch.get(user, 0) and rg == dg else "  <-- differs"
        print(f"{user:24} {rl:>9} {dl:>6} {ch.get(user, 0):>4}  {rg} / {dg}{mark}")


if __name__ == "__main__":
    main()

"""Issue 11 spike: our funnel in DuckDB (hand-written SQL) and in chDB (`windowFunnel`), both
reading the same Parquet mirror (bench/spikes/make_data.py).

Run with the scratch venv, never the project venv (neither engine is in requirements.txt):

    python3 -m venv /tmp/spike && /tmp/spike/bin/pip install duckdb chdb pyarrow psutil
    /tmp/spike/bin/python bench/spikes/make_data.py --events 1000000 --out /tmp/mirror/1m
    /tmp/spike/bin/python bench/spikes/engines.py check --data /tmp/mirror/1m --users 500
    /tmp/spike/bin/python bench/spikes/engines.py bench --data /tmp/mirror/1m
    /tmp/spike/bin/python bench/spikes/engines.py concurrency --data /tmp/mirror/1m

The question: page_view → add_to_cart → checkout_start → purchase, ordered, 7-day conversion
window, step 1 inside the last 30 UTC days of the data (2026-11-01 .. 2026-11-30), per-step
users, avg and median seconds from the previous step over each user's winning attempt.

DuckDB: every step-1 event is an attempt; an ASOF join finds the earliest step-2 event after it
(in (timestamp, id) order, so an event fills at most one step and equal timestamps keep storage
order, as tests/reference.py does), then the earliest step-3 after that, and so on; a step past
t1 + window does not count. Greedy "earliest next" is exactly our rule in ordered mode without
per-step timeWindows. Per user the furthest attempt wins, the earliest among equals.
chDB: windowFunnel(window)(µs timestamp, conditions...) per user (counts only, no timings);
"chdb-sql" is the DuckDB SQL's ASOF chain written for ClickHouse (the full answer).
"""

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STEPS = ["page_view", "add_to_cart", "checkout_start", "purchase"]
WINDOW = 604800
START = "2026-11-01 00:00:00"
END = "2026-12-01 00:00:00"  # exclusive: range = 2026-11-01 .. 2026-11-30 UTC
END_PLUS_WINDOW = "2026-12-08 00:00:00"
THREADS = 2
MEMORY = "4GB"


def glob(data: str) -> str:
    return f"{data}/project=1/**/*.parquet"


# ---------------------------------------------------------------- DuckDB


def duck_connect():
    import duckdb

    con = duckdb.connect(config={"threads": THREADS, "memory_limit": MEMORY})
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    return con


def duck_sql(data: str, users: list[str] | None = None, breakdown: str | None = None) -> str:
    only = ""
    if users is not None:
        only = "AND user_id IN (" + ",".join(f"'{u}'" for u in users) + ")"
    names = ",".join(f"'{s}'" for s in STEPS)
    # k orders events as the reference does: timestamp, then storage order (id)
    chain, level, gaps = [], ["1"], []
    prev = "a1"
    for n in range(2, len(STEPS) + 1):
        chain.append(f"""
        a{n} AS (
            SELECT a.*, CASE WHEN s.ts <= a.t1 + INTERVAL {WINDOW} SECOND THEN s.ts END AS t{n},
                   CASE WHEN s.ts <= a.t1 + INTERVAL {WINDOW} SECOND THEN s.k END AS k{n}
            FROM {prev} a ASOF LEFT JOIN (SELECT user_id, ts, k FROM ev WHERE event_name = '{STEPS[n - 1]}') s
              ON a.user_id = s.user_id AND s.k > a.k{n - 1}
        )""")
        prev = f"a{n}"
        level.append(f"(t{n} IS NOT NULL)::INT")
        gaps.append(f"(epoch_us(t{n}) - epoch_us(t{n - 1})) / 1e6 AS g{n}")
    bcol = f", json_extract_string(p1, '$.{breakdown}') AS b" if breakdown else ", NULL AS b"
    aggs = ["count(*) AS u1"]
    for n in range(2, len(STEPS) + 1):
        aggs += [
            f"count(*) FILTER (WHERE level >= {n}) AS u{n}",
            f"avg(g{n}) FILTER (WHERE level >= {n}) AS avg{n}",
            f"median(g{n}) FILTER (WHERE level >= {n}) AS med{n}",
        ]
    return f"""
    WITH ev AS (
        SELECT user_id, event_name, timestamp AS ts, properties,
               epoch_us(timestamp)::HUGEINT * 100000000 + id AS k
        FROM read_parquet('{glob(data)}', hive_partitioning = true)
        WHERE day BETWEEN DATE '{START[:10]}' AND DATE '{END_PLUS_WINDOW[:10]}'
          AND timestamp >= TIMESTAMPTZ '{START}+00'
          AND timestamp <= TIMESTAMPTZ '{END}+00' + INTERVAL {WINDOW} SECOND
          AND event_name IN ({names}) {only}
    ),
    a1 AS (
        SELECT user_id, ts AS t1, k AS k1, properties AS p1 FROM ev
        WHERE event_name = '{STEPS[0]}' AND ts < TIMESTAMPTZ '{END}+00'
    ),{",".join(chain)},
    winners AS (
        SELECT *, {" + ".join(level)} AS level, {", ".join(gaps)}
        FROM {prev}
        QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY {" + ".join(level)} DESC, k1) = 1
    )
    SELECT GROUPING(b) AS overall, b, {", ".join(aggs)}
    FROM (SELECT * {bcol} FROM winners)
    GROUP BY GROUPING SETS ((), (b))
    ORDER BY overall DESC, u1 DESC, b
    """


def duck_answer(con, data: str, users=None, breakdown=None) -> dict:
    rows = con.execute(duck_sql(data, users, breakdown)).fetchall()
    cols = [d[0] for d in con.description]

    def shape(row):
        r = dict(zip(cols, row, strict=True))
        steps = [{"step": 1, "users": r["u1"], "avg": None, "median": None}]
        for n in range(2, len(STEPS) + 1):
            avg = r[f"avg{n}"] if r[f"avg{n}"] is None else round(r[f"avg{n}"], 6)  # sum order varies by thread
            steps.append({"step": n, "users": r[f"u{n}"], "avg": avg, "median": r[f"med{n}"]})
        return r["b"], steps

    # GROUPING(b) = 1 on the grand total (the () set), 0 on each breakdown value
    overall = shape(next(r for r in rows if r[0] == 1))[1]
    # with no breakdown, GROUPING SETS (b) is a single NULL group: identical to the total
    out = {"steps": overall}
    if breakdown:
        out["breakdown"] = [{"value": b, "steps": s} for b, s in (shape(r) for r in rows if r[0] == 0)]
    return out


# ---------------------------------------------------------------- chDB


def chdb_connect():
    from chdb import session

    return session.Session()


def chdb_sql(data: str) -> str:
    conds = [f"event_name = '{STEPS[0]}' AND timestamp < toDateTime64('{END}', 6, 'UTC')"]
    conds += [f"event_name = '{s}'" for s in STEPS[1:]]
    names = ",".join(f"'{s}'" for s in STEPS)
    return f"""
    SELECT level, count() AS users FROM (
        SELECT user_id,
               windowFunnel({WINDOW * 1_000_000})(
                   toUInt64(toUnixTimestamp64Micro(timestamp)), {", ".join(conds)}
               ) AS level
        FROM file('{glob(data)}', Parquet)
        WHERE timestamp >= toDateTime64('{START}', 6, 'UTC')
          AND timestamp <= toDateTime64('{END_PLUS_WINDOW}', 6, 'UTC')
          AND event_name IN ({names})
        GROUP BY user_id
    ) WHERE level > 0 GROUP BY level ORDER BY level
    SETTINGS max_threads = {THREADS}, max_memory_usage = 4000000000
    """


def chdb_answer(sess, data: str) -> dict:
    result = sess.query(chdb_sql(data), "JSONCompact")
    levels = {int(lvl): int(n) for lvl, n in json.loads(result.bytes())["data"]}
    users = [sum(n for lvl, n in levels.items() if lvl >= k) for k in range(1, len(STEPS) + 1)]
    return {"steps": [{"step": k + 1, "users": users[k]} for k in range(len(STEPS))]}


def chdb_full_sql(data: str) -> str:
    """The DuckDB SQL's rules in ClickHouse: the same ASOF chain (join_use_nulls, so a missed
    step is NULL), argMin over (-level, k1) for the winner; quantileExactInclusive(0.5) is the
    median that averages the two middle values (medianExact does not)."""
    names = ",".join(f"'{s}'" for s in STEPS)
    steps, prev = [], "a1"
    for n in range(2, len(STEPS) + 1):
        inside = f"s.ts <= a.t1 + INTERVAL {WINDOW} SECOND"
        steps.append(f"""
        a{n} AS (
            SELECT a.*, if({inside}, s.ts, NULL) AS t{n}, if({inside}, s.k, NULL) AS k{n}
            FROM {prev} AS a ASOF LEFT JOIN (SELECT user_id, ts, k FROM ev WHERE event_name = '{STEPS[n - 1]}') AS s
              ON a.user_id = s.user_id AND s.k > a.k{n - 1}
        )""")
        prev = f"a{n}"
    level = " + ".join(["1"] + [f"(t{n} IS NOT NULL)" for n in range(2, len(STEPS) + 1)])
    times = ", ".join(f"t{n}" for n in range(1, len(STEPS) + 1))
    aggs = ["count() AS u1"]
    for n in range(2, len(STEPS) + 1):
        later, earlier = f"assumeNotNull(best.{n})", f"assumeNotNull(best.{n - 1})"
        gap = f"(toUnixTimestamp64Micro({later}) - toUnixTimestamp64Micro({earlier})) / 1e6"
        aggs += [
            f"countIf(level >= {n}) AS u{n}",
            f"avgIf({gap}, level >= {n}) AS avg{n}",
            f"quantileExactInclusiveIf(0.5)({gap}, level >= {n}) AS med{n}",
        ]
    return f"""
    WITH ev AS (
        SELECT user_id, event_name, timestamp AS ts,
               toInt128(toUnixTimestamp64Micro(timestamp)) * 100000000 + id AS k
        FROM file('{glob(data)}', Parquet)
        WHERE timestamp >= toDateTime64('{START}', 6, 'UTC')
          AND timestamp <= toDateTime64('{END_PLUS_WINDOW}', 6, 'UTC')
          AND event_name IN ({names})
    ),
    a1 AS (
        SELECT user_id, ts AS t1, k AS k1 FROM ev
        WHERE event_name = '{STEPS[0]}' AND ts < toDateTime64('{END}', 6, 'UTC')
    ),{",".join(steps)},
    w AS (
        SELECT user_id, argMin(tuple({times}), tuple(-lvl, k1)) AS best, max(lvl) AS level
        FROM (SELECT *, {level} AS lvl FROM {prev}) GROUP BY user_id
    )
    SELECT {", ".join(aggs)} FROM w
    SETTINGS max_threads = {THREADS}, max_memory_usage = 4000000000, join_use_nulls = 1
    """


def chdb_full_answer(sess, data: str) -> dict:
    result = json.loads(sess.query(chdb_full_sql(data), "JSONCompact").bytes())
    cols = [c["name"] for c in result["meta"]]
    r = dict(zip(cols, result["data"][0], strict=True))
    steps = [{"step": 1, "users": int(r["u1"]), "avg": None, "median": None}]
    for n in range(2, len(STEPS) + 1):
        reached = int(r[f"u{n}"])
        avg = round(r[f"avg{n}"], 6) if reached else None
        steps.append({"step": n, "users": reached, "avg": avg, "median": float(r[f"med{n}"]) if reached else None})
    return {"steps": steps}


# ---------------------------------------------------------------- one process


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cmd_once(args) -> None:
    """One fresh process: connect, then the query `repeat` times; the first run is cold."""
    times, answer = [], None
    t0 = time.perf_counter()
    if args.engine == "duckdb":
        con = duck_connect()
        for _ in range(args.repeat):
            t = time.perf_counter()
            answer = duck_answer(con, args.data, breakdown=args.breakdown)
            times.append((time.perf_counter() - t) * 1000)
    else:
        sess = chdb_connect()
        run = chdb_answer if args.engine == "chdb" else chdb_full_answer
        for _ in range(args.repeat):
            t = time.perf_counter()
            answer = run(sess, args.data)
            times.append((time.perf_counter() - t) * 1000)
    connect_and_first = (time.perf_counter() - t0) * 1000 - sum(times[1:])
    print(
        json.dumps(
            {"times_ms": times, "connect_and_first_ms": connect_and_first, "rss_mb": peak_rss_mb(), "answer": answer}
        )
    )


def run_once(engine: str, data: str, repeat: int, breakdown: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "once", "--engine", engine, "--data", data, "--repeat", str(repeat)]
    if breakdown:
        cmd += ["--breakdown", breakdown]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def counts(answer: dict) -> list[int]:
    return [s["users"] for s in answer["steps"]]


def cmd_bench(args) -> None:
    rows = {}
    for engine in args.engines.split(","):
        runs = [run_once(engine, args.data, 4, args.breakdown if engine == "duckdb" else None) for _ in range(3)]
        cold = statistics.median(r["connect_and_first_ms"] for r in runs)
        warm = statistics.median(t for r in runs for t in r["times_ms"][1:])
        rows[engine] = {
            "cold_ms": round(cold),
            "warm_ms": round(warm),
            "peak_rss_mb": round(max(r["rss_mb"] for r in runs)),
            "counts": counts(runs[0]["answer"]),
            "stable": all(counts(r["answer"]) == counts(runs[0]["answer"]) for r in runs),
            "answer": runs[0]["answer"],
        }
    if "duckdb" in rows and "chdb" in rows:
        rows["counts_equal"] = rows["duckdb"]["counts"] == rows["chdb"]["counts"]
    if "duckdb" in rows and "chdb-sql" in rows:
        rows["full_answers_equal"] = rows["duckdb"]["answer"] == rows["chdb-sql"]["answer"]
    print(json.dumps(rows, indent=1))


# ---------------------------------------------------------------- the reference check


def cmd_check(args) -> None:
    sys.path.insert(0, str(ROOT))
    from tests import reference

    con = duck_connect()
    everyone = [
        u
        for (u,) in con.execute(f"SELECT DISTINCT user_id FROM read_parquet('{glob(args.data)}') ORDER BY 1").fetchall()
    ]
    sample = sorted(random.Random(args.seed).sample(everyone, min(args.users, len(everyone))))
    rows = con.execute(
        f"""SELECT user_id, event_name, timestamp, properties FROM read_parquet('{glob(args.data)}')
            WHERE user_id IN ({",".join(f"'{u}'" for u in sample)}) ORDER BY id"""
    ).fetchall()
    events = [{"user": u, "name": n, "ts": ts.astimezone(UTC), "properties": json.loads(p)} for u, n, ts, p in rows]
    t = time.perf_counter()
    ref = reference.funnel(
        events,
        [{"eventName": s} for s in STEPS],
        window=WINDOW,
        order="ordered",
        start=datetime.fromisoformat(START + "+00:00"),
        end=datetime.fromisoformat(END + "+00:00"),
    )
    ref_ms = (time.perf_counter() - t) * 1000
    duck = duck_answer(con, args.data, users=sample)
    ok = True
    for r, d in zip(ref["steps"], duck["steps"], strict=True):
        same = r["users"] == d["users"]
        if r["avgTimeToConvertSeconds"] is not None or d["avg"] is not None:
            same = same and abs(r["avgTimeToConvertSeconds"] - d["avg"]) < 1e-6
            same = same and abs(r["medianTimeToConvertSeconds"] - d["median"]) < 1e-6
        ok = ok and same
        print(
            f"step {r['step']}: reference users={r['users']} avg={r['avgTimeToConvertSeconds']} "
            f"median={r['medianTimeToConvertSeconds']} | duckdb users={d['users']} avg={d['avg']} "
            f"median={d['median']} {'OK' if same else 'DIFF'}"
        )
    sess = chdb_connect()
    sess.query("CREATE TEMPORARY TABLE sample (u String) ENGINE = Memory")
    sess.query("INSERT INTO sample VALUES " + ",".join(f"('{u}')" for u in sample))
    sql = chdb_sql(args.data).replace("GROUP BY user_id", "AND user_id IN (SELECT u FROM sample) GROUP BY user_id", 1)
    levels = {int(lvl): int(n) for lvl, n in json.loads(sess.query(sql, "JSONCompact").bytes())["data"]}
    ch = [sum(n for lvl, n in levels.items() if lvl >= k) for k in range(1, len(STEPS) + 1)]
    print(f"chdb windowFunnel users per step: {ch} (reference {[s['users'] for s in ref['steps']]})")
    print(
        f"sample: {len(sample)} users, {len(events)} events; reference took {ref_ms:.0f} ms; "
        f"duckdb {'EQUAL' if ok else 'DIFFERENT'}; chdb counts "
        f"{'EQUAL' if ch == [s['users'] for s in ref['steps']] else 'DIFFERENT'}"
    )


# ---------------------------------------------------------------- many processes


def cmd_concurrency(args) -> None:
    results = {}
    for engine in ("duckdb", "chdb"):
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "once", "--engine", engine, "--data", args.data, "--repeat", "3"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        outs = [p.communicate() for p in procs]
        answers = [json.loads(o) for o, _ in outs if o.strip()]
        errors = sum(1 for p in procs if p.returncode)
        results[f"{engine}: 4 at once"] = {
            "errors": errors,
            "answers_equal": len({json.dumps(a["answer"], sort_keys=True) for a in answers}) == 1,
            "ms": [round(t) for a in answers for t in a["times_ms"]],
        }
    for atomic in (False, True):
        for engine in ("duckdb", "chdb"):
            results[f"{engine}: readers while a writer adds a file ({'tmp + rename' if atomic else 'in place'})"] = (
                readers_vs_writer(engine, args.data, atomic)
            )
    print(json.dumps(results, indent=1))


WRITER = """
import os, sys, duckdb
path, atomic = sys.argv[1], sys.argv[2] == '1'
os.makedirs(os.path.dirname(path), exist_ok=True)
target = path + '.tmp' if atomic else path
con = duckdb.connect(config={'threads': 1})
con.execute('SET enable_progress_bar = false')
con.execute("SET TimeZone = 'UTC'")
con.execute(f'''COPY (SELECT 20000000 + i AS id, 'noise:' || i AS event_id, 'user_' || (i % 50000) AS user_id,
  'spike_noise' AS event_name, TIMESTAMPTZ '2026-12-02 00:00:00+00' + to_microseconds(i) AS timestamp,
  md5(i::VARCHAR) AS properties, md5((i * 7)::VARCHAR) AS session_id, '/noise' AS page_url
  FROM range(3000000) t(i)) TO '{target}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 100000)''')
if atomic:
    os.rename(target, path)
"""

READER = """
import json, sys, time
sys.path.insert(0, sys.argv[3])
import engines
engine, data, until = sys.argv[1], sys.argv[2], float(sys.argv[4])
answers, errors = set(), []
conn = engines.duck_connect() if engine == 'duckdb' else engines.chdb_connect()
runs = 0
while time.time() < until:
    try:
        a = engines.duck_answer(conn, data) if engine == 'duckdb' else engines.chdb_answer(conn, data)
        answers.add(json.dumps(engines.counts(a)))
    except Exception as e:
        errors.append(str(e).splitlines()[0][:160])
    runs += 1
print(json.dumps({'runs': runs, 'answers': sorted(answers), 'errors': errors[:3], 'n_errors': len(errors)}))
"""


def readers_vs_writer(engine: str, data: str, atomic: bool) -> dict:
    new = Path(data) / "project=1" / "day=2026-12-02" / "part-0.parquet"
    for p in (new, Path(str(new) + ".tmp")):
        p.unlink(missing_ok=True)
    t = time.perf_counter()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(new), "1" if atomic else "0"])
    until = time.time() + 20  # the writer takes ~8 s alone: readers see it partial, then whole
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, engine, data, str(Path(__file__).parent), str(until)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    writer.wait()
    write_s = time.perf_counter() - t
    outs = [json.loads(r.communicate()[0]) for r in readers]
    new.unlink(missing_ok=True)
    new.parent.rmdir()
    return {
        "writer_s": round(write_s, 1),
        "reader_runs": sum(o["runs"] for o in outs),
        "reader_errors": sum(o["n_errors"] for o in outs),
        "distinct_answers": sorted({a for o in outs for a in o["answers"]}),
        "error_samples": sorted({e for o in outs for e in o["errors"]})[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("once")
    p.add_argument("--engine", choices=["duckdb", "chdb", "chdb-sql"], required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--breakdown")
    p = sub.add_parser("bench")
    p.add_argument("--data", required=True)
    p.add_argument("--engines", default="duckdb,chdb,chdb-sql")
    p.add_argument("--breakdown")
    p = sub.add_parser("check")
    p.add_argument("--data", required=True)
    p.add_argument("--users", type=int, default=500)
    p.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("concurrency")
    p.add_argument("--data", required=True)
    args = parser.parse_args()
    os.environ.setdefault("TZ", "UTC")
    {"once": cmd_once, "bench": cmd_bench, "check": cmd_check, "concurrency": cmd_concurrency}[args.cmd](args)


if __name__ == "__main__":
    main()

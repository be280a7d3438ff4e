"""Where an ingested event's CPU goes (a report, not a test): `python bench/cpu.py`.

ingest.py's stack (uvicorn web processes, `rqworker`s with their drainers, PostgreSQL,
Redis); one wrk run each of single-event posts (32 connections) and 1,000-event batches (4),
BENCH_SECONDS each, counted until every answered event is stored. Around each run it reads
every process's CPU time from /proc/<pid>/stat and sums it per role: the web processes and
the workers (with their children), PostgreSQL's processes, Redis's; then divides by the
events stored. That says which part of the stack a change must make cheaper (bench/README,
"Workers and PostgreSQL, per event"). PostgreSQL and Redis are the machine's own servers,
so anything else using them counts too: run it on a quiet machine.
"""

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest  # noqa: E402  (the same stack, database and wrk scripts)

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_by_role(web: int, workers: list[int]) -> dict[str, float]:
    """CPU seconds used so far by each role's processes."""
    web_tree, worker_tree = ingest.tree([web]), ingest.tree(workers)
    seconds = {"web": 0.0, "worker": 0.0, "postgres": 0.0, "redis": 0.0}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat.split("(", 1)[1].rsplit(")", 1)[0]
        fields = stat.rsplit(")", 1)[1].split()
        pid, used = int(entry), (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
        if pid in web_tree:
            seconds["web"] += used
        elif pid in worker_tree:
            seconds["worker"] += used
        elif name.startswith("postgres"):
            seconds["postgres"] += used
        elif name.startswith("redis"):
            seconds["redis"] += used
    return seconds


def measured(stack, name: str, script: str, per_request: int, key: str) -> dict:
    roots = (stack.web.pid, [worker.pid for worker in stack.workers])
    before = cpu_by_role(*roots)
    run = ingest.wrk_throughput(name, script, per_request, key)
    after = cpu_by_role(*roots)
    per_event = {role: round((after[role] - before[role]) / run["events"] * 1e6, 1) for role in after}
    return {"run": run, "cpu_us_per_event": per_event}


def main():
    key = ingest.prepare()
    stack = ingest.Stack()
    try:
        ingest.run_client(
            ["wrk", "-t1", "-c4", "-d2s", "-s", str(ingest.write_lua("warm", ingest.WRK_SINGLE))]
            + [
                "-H",
                f"X-API-Key: {key}",
                "-H",
                "Content-Type: application/json",
                f"http://{ingest.HOST}:{ingest.PORT}/",
            ]
        )
        singles = measured(stack, "singles", ingest.WRK_SINGLE, 1, key)
        batches = measured(stack, "batches", ingest.WRK_BATCH, 1000, key)
    finally:
        stack.stop()
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()},
        "config": {"web_workers": ingest.WEB_WORKERS, "rq_workers": ingest.RQ_WORKERS, "seconds": ingest.SECONDS},
        "singles": singles,
        "batches": batches,
    }
    out = ingest.ROOT / "bench" / "results" / f"cpu-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nCPU per stored event, µs ({os.cpu_count()} CPUs; {ingest.SECONDS} s of wrk each)")
    print(f"{'':24}{'web':>8}{'worker':>8}{'postgres':>10}{'redis':>8}{'stored/s':>10}")
    for label, result in (("singles, 32 connections", singles), ("batches of 1,000, 4", batches)):
        cpu = result["cpu_us_per_event"]
        print(
            f"{label:24}{cpu['web']:>8}{cpu['worker']:>8}{cpu['postgres']:>10}{cpu['redis']:>8}"
            f"{result['run']['stored_events_per_s']:>10}"
        )
    print(f"written to {out.relative_to(ingest.ROOT)}")


if __name__ == "__main__":
    main()

"""Funnel analysis (API.md, "Funnels": the semantics list there is the spec).

Per user, only the funnel's events in the span that can matter, [start, end + window], are
read (strict funnels read all of the user's events there, since any event can break them),
ordered by (timestamp, id): events with equal timestamps are taken in the order they were
stored, and one event fills at most one step. Every step-1 event inside the range opens an
attempt; the user counts at the furthest step any attempt reaches, and the earliest such
attempt, with the earliest step times among its paths, is the one reported.

How, in one SQL statement (funnels/sql.py), with window functions over each user's rows:

1. A match flag per step (event name and property filters, evaluated in SQL).
2. Backwards dynamic programming, one level per step: for each row that can fill step k and
   each target step K >= k, `b[K][k]` = the earliest time at which steps k..K can be
   completed starting from this row = min of `b[K][k+1]` over the rows that may fill step
   k+1 next (later in (t, id) order; within the step's `timeWindow`; in strict order only at
   the same timestamp or the user's next one). An attempt starting at s reaches K iff
   b[K][1](s) <= s + conversionWindow: the window bounds the completion time, and everything
   in between lies between the start and the completion.
   Ordered funnels run levels n-1..2 on the "skeleton" only (the rows that can fill steps
   2..n, typically a small share), then sort the step-1 rows of the range together with the
   step-2 rows for the single level-1 pass; strict funnels need every event of the user
   (any of them breaks an attempt), so all levels run over all of them.
3. Per user: the earliest start reaching each K (a `min` of the packed (time, id, breakdown
   value)); the furthest K with a start wins, with its earliest start.
4. The reported path of that attempt: each step takes the first row after the previous step
   that satisfies the step's constraints and from which the furthest step can still be
   completed in time (b[K][k] <= start + window). These "candidate" rows are few (winning
   users, inside their winning window, feasible), so this last greedy walk is done here.

Complexity, with S step-1 rows, R skeleton rows (A = all of the user's events in the span for
strict funnels) and n steps: ordered, a sort of R plus n-2 linear window passes over R, then
one sort of S + R and one linear pass (`ROWS UNBOUNDED PRECEDING` running minimums); strict,
a sort of A and n linear passes over A. A step with a `timeWindow` makes its pass
O(rows x rows within that window). O(n^2) columns per row. On PostgreSQL the users are
split by hash into FUNNEL_PARALLELISM parts run on as many connections at once. At 10M events
(S = 4.8M, R = 0.9M, 2 cores) this is ~12 s cold: see bench/README.md for the profile.
"""

import json
import statistics
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection

from analytics_platform.buckets import local_iso
from analytics_platform.dates import iso_utc, parse_range
from analytics_platform.errors import InvalidInput
from analytics_platform.queries import QueryRunner, cursor_decode, cursor_encode, whole_param
from funnels.selectors import funnel_get
from funnels.sql import EPOCH, US, funnel_sql

TOP_BREAKDOWN = 10
OTHER = "Other"
USERS_LIMIT, USERS_MAX_LIMIT = 100, 1000
STATUSES = ("converted", "dropped")


@dataclass(frozen=True)
class FunnelParams:
    funnel_id: int
    name: str
    steps: list
    window: int
    order: str
    start: datetime
    end: datetime
    breakdown: str | None = None


@dataclass
class Outcome:
    """One user's best attempt: step times in microseconds (times[0] = entry)."""

    times: list[int]
    value: object = None  # the breakdown property on the step-1 event (JSON text, None if absent)

    @property
    def reached(self) -> int:
        return len(self.times)


@dataclass
class _Row:
    t: int
    id: int
    gi: int
    matches: list[int]  # m2..mn
    completes: list  # c2..cn


def _funnel_params(runner, raw, *, breakdown=None) -> FunnelParams:
    funnel = funnel_get(project=runner.project, funnel_id=raw["funnelId"])
    start, end = parse_range(raw.get("startDate"), raw.get("endDate"), runner.tz, now=runner.now)
    return FunnelParams(
        funnel_id=funnel.id,
        name=funnel.name,
        steps=funnel.steps,
        window=funnel.conversion_window,
        order=funnel.order,
        start=start,
        end=end,
        breakdown=breakdown,
    )


def _parallelism() -> int:
    """PostgreSQL runs each part of the statement in one process: split the users into
    FUNNEL_PARALLELISM parts (a power of two) on as many connections. Inside a transaction
    (tests) the other connections would not see its rows: one part."""
    wanted = settings.FUNNEL_PARALLELISM
    if connection.vendor != "postgresql" or connection.in_atomic_block or wanted < 2:
        return 1
    return 1 << (wanted.bit_length() - 1)


def _fetch(statement) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(statement.sql, statement.params)
        return cursor.fetchall()


def _fetch_in_thread(statement) -> list[tuple]:
    try:
        return _fetch(statement)
    finally:
        connection.close()  # this thread's connection, back to the pool


def outcomes(*, project_id: int, p: FunnelParams) -> dict[str, Outcome]:
    """Every entering user's best attempt (see the module docstring)."""
    steps, n = p.steps, len(p.steps)
    strict = p.order == "strict"
    parts = _parallelism()
    statements = [
        funnel_sql(
            project_id=project_id,
            steps=steps,
            window=p.window,
            strict=strict,
            start=p.start,
            end=p.end,
            breakdown=p.breakdown,
            part=(index, parts) if parts > 1 else None,
        )
        for index in range(parts)
    ]
    if parts == 1:
        rows = _fetch(statements[0])
    else:  # users split by hash, each part on its own connection (the parts share no user)
        with ThreadPoolExecutor(parts) as pool:
            rows = [row for part_rows in pool.map(_fetch_in_thread, statements) for row in part_rows]
    winners: dict[str, tuple[int, int, int, object]] = {}
    candidates: dict[str, list[_Row]] = defaultdict(list)
    for u, rn, reached, win, is_cand, t, pk, gi, *rest in rows:
        if rn == 1 and win:
            winners[u] = (int(reached), int(win[:20]), int(win[20:40]), win[40:] or None)
        if is_cand:
            candidates[u].append(_Row(int(t), int(pk), int(gi), list(rest[: n - 1]), list(rest[n - 1 :])))
    result = {}
    window = p.window * US
    for user, (reached, start_t, start_id, value) in winners.items():
        times = [start_t]
        if reached >= 2:
            mine = sorted(candidates[user], key=lambda r: (r.t, r.id))
            # the start row is a candidate only in strict funnels (which need its timestamp rank)
            prev = next((r for r in mine if r.id == start_id), None) or _Row(start_t, start_id, 0, [], [])
            deadline = start_t + window
            for k in range(2, reached + 1):
                gap = steps[k - 1].get("timeWindow")
                prev = next(
                    r
                    for r in mine
                    if (r.t, r.id) > (prev.t, prev.id)
                    and r.matches[k - 2]
                    and r.completes[k - 2] is not None
                    and r.completes[k - 2] <= deadline
                    and (gap is None or r.t - prev.t <= gap * US)
                    and (not strict or r.gi in (prev.gi, prev.gi + 1))
                )
                times.append(prev.t)
        result[user] = Outcome(times, value)
    return result


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def step_table(steps: list[dict], results) -> list[dict]:
    """The API's per-step figures from users' outcomes."""
    results = list(results)
    users = [sum(1 for o in results if o.reached >= k) for k in range(1, len(steps) + 1)]
    table = []
    for k, step in enumerate(steps):
        gaps = [(o.times[k] - o.times[k - 1]) / US for o in results if o.reached > k] if k else []
        previous = users[k - 1] if k else users[0]
        table.append(
            {
                "step": k + 1,
                "eventName": step["eventName"],
                "users": users[k],
                "conversionRate": users[k] / users[0] if users[0] else 0.0,
                "stepConversionRate": users[k] / previous if previous else 0.0,
                "dropOff": users[k - 1] - users[k] if k else 0,
                "avgTimeToConvertSeconds": sum(gaps) / len(gaps) if gaps else None,
                "medianTimeToConvertSeconds": _median(gaps),
            }
        )
    return table


def _overall(table: list[dict]) -> float:
    return table[-1]["users"] / table[0]["users"] if table[0]["users"] else 0.0


class FunnelQuery(QueryRunner):
    """GET /funnels/{id}/analytics[?breakdown=property]."""

    name = "funnel"

    def parse(self, raw) -> FunnelParams:
        breakdown = raw.get("breakdown") or None
        if breakdown is not None and len(breakdown) > 200:
            raise InvalidInput("breakdown must be at most 200 characters.", details={"breakdown": breakdown[:50]})
        return _funnel_params(self, raw, breakdown=breakdown)

    def calculate(self) -> dict:
        p = self.params
        results = outcomes(project_id=self.project.id, p=p)
        self.rows = len(results)
        table = step_table(p.steps, results.values())
        body = {
            "funnelId": p.funnel_id,
            "name": p.name,
            "startDate": local_iso(p.start, self.tz),
            "endDate": local_iso(p.end, self.tz),
            "order": p.order,
            "conversionWindow": p.window,
            "steps": table,
            "overallConversionRate": _overall(table),
        }
        if p.breakdown is not None:
            body["breakdown"] = _breakdown(p.steps, results.values())
        return body


def _breakdown(steps, results) -> list[dict]:
    groups: dict[str | None, list[Outcome]] = defaultdict(list)
    for outcome in results:
        groups[outcome.value].append(outcome)
    ranked = sorted(groups, key=lambda v: (-len(groups[v]), v is None, v or ""))
    out = []
    for value in ranked[:TOP_BREAKDOWN]:
        table = step_table(steps, groups[value])
        out.append(
            {
                "value": None if value is None else json.loads(value),
                "steps": table,
                "overallConversionRate": _overall(table),
            }
        )
    rest = [o for value in ranked[TOP_BREAKDOWN:] for o in groups[value]]
    if rest:
        table = step_table(steps, rest)
        out.append({"value": OTHER, "steps": table, "overallConversionRate": _overall(table)})
    return out


@dataclass(frozen=True)
class FunnelUsersParams:
    funnel: FunnelParams
    step: int
    status: str
    limit: int
    after: str | None


def _decode_user_cursor(raw: str) -> str:
    text = cursor_decode(raw)
    if not text.startswith("u:"):
        raise InvalidInput("cursor is not one this API returned.", details={"cursor": raw[:100]})
    return text[2:]


class FunnelUsersQuery(QueryRunner):
    """GET /funnels/{id}/analytics/users?step=N&status=converted|dropped: who reached step N
    (converted) or reached it and went no further (dropped), by userId, cursor-paginated.
    The per-user outcomes are cached once per funnel and range, so paging is cheap."""

    name = "funnel-users"

    def parse(self, raw) -> FunnelUsersParams:
        funnel = _funnel_params(self, raw)
        step = whole_param(raw.get("step"), "step", low=1, high=len(funnel.steps))
        status = (raw.get("status") or "converted").strip().lower()
        if status not in STATUSES:
            raise InvalidInput("status must be converted or dropped.", details={"status": raw.get("status")})
        limit = min(whole_param(raw.get("limit") or USERS_LIMIT, "limit", low=1), USERS_MAX_LIMIT)
        cursor = raw.get("cursor")
        return FunnelUsersParams(funnel, step, status, limit, _decode_user_cursor(cursor) if cursor else None)

    def _entrants(self) -> list[tuple[str, int, int]]:
        """(userId, reached step, entry time µs), sorted by userId; cached apart from the page."""

        def compute():
            results = outcomes(project_id=self.project.id, p=self.params.funnel)
            return sorted((user, o.reached, o.times[0]) for user, o in results.items())

        return self.cached(self.params.funnel, compute)

    def calculate(self) -> dict:
        p = self.params
        entrants = self._entrants()
        self.rows = len(entrants)
        wanted = (lambda r: r >= p.step) if p.status == "converted" else (lambda r: r == p.step)
        page, more = [], False
        for user, reached, entered in entrants:
            if p.after is not None and user <= p.after or not wanted(reached):
                continue
            if len(page) == p.limit:
                more = True
                break
            page.append(
                {"userId": user, "reachedStep": reached, "enteredAt": iso_utc(EPOCH + timedelta(microseconds=entered))}
            )
        return {
            "funnelId": p.funnel.funnel_id,
            "step": p.step,
            "status": p.status,
            "users": page,
            "nextCursor": cursor_encode(f"u:{page[-1]['userId']}") if more else None,
        }

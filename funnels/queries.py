"""Funnel analysis (API.md, "Funnels": the semantics list there is the spec).

Per user, only the funnel's events in the span that can matter, [start, end + window], are
read (strict funnels read all of the user's events there, since any event can break them),
ordered by (timestamp, id): events with equal timestamps are taken in the order they were
stored, and one event fills at most one step. Every step-1 event inside the range opens an
attempt; the user counts at the furthest step any attempt reaches, and the earliest such
attempt, with the earliest step times among its paths, is the one reported.

How, in one DuckDB statement over one snapshot of the mirror (funnels/sql.py), the same in
both deployment modes:

1. A match flag per step (event name, and property filters on the JSON text).
2. For each row that can fill step k and each target step K >= k, `b[K][k]` = the earliest
   time at which steps k..K can be completed starting from this row = min of `b[K][k+1]`
   over the rows that may fill step k+1 next (later in (t, id) order; within the step's
   `timeWindow`; in strict order only at the same timestamp or the user's next one). An
   attempt starting at s reaches K iff b[K][1](s) <= s + conversionWindow: the window
   bounds the completion time, and everything in between lies between the start and the
   completion. Levels n..2 run on the "skeleton" only (the rows that can fill steps 2..n,
   typically a small share); the many starts then take level 1 from the step-2 rows.
   - Ordered funnels without `timeWindow`s (the common case): the minimum is always the
     first matching row after this one, so every level is an ASOF join on (t, id) to the
     next step's rows, and each attempt's completion times are its path (each step takes
     the next matching event).
   - Otherwise the skeleton levels are window functions over each user's rows (frames of
     `timeWindow` µs; strict funnels first rank the distinct timestamps of all of the
     user's events). Level 1 is still one ASOF join of the starts to the first step-2 row
     after each, with minimums precomputed on the step-2 rows, unless step 2 itself has a
     `timeWindow` (then one window pass over the starts and the step-2 rows).
3. Per user: the furthest attempt, the earliest among equals (a `min` over (-reached, t, id)).
4. The reported path of that attempt, where step 2 did not give it: each step takes the first
   row after the previous step that satisfies the step's constraints and from which the
   furthest step can still be completed in time (b[K][k] <= start + window), one join per
   step against the winners' rows inside their winning window.
5. The step figures (users per step; sum and median of the time from the previous step),
   per breakdown group too, are aggregated in the same statement; the breakdown value is
   read from the winning step-1 events only.

Users are keyed by a 64-bit hash of user_id; a hash shared by two user_ids is detected and
the statement reruns keyed by user_id (funnels.sql.HASHED_KEY). Cost, with S step-1 rows
and R skeleton rows: sorts of R (one per level) and one ASOF join of S to R, a hash
aggregate of S; strict funnels also sort all of their users' events in the span once; a
`timeWindow` on step 2 makes level 1 a window pass over S + R instead. Memory is the
engine's (ANALYTICS_MEMORY_LIMIT, spilling beyond it). At 10M events (S = 3.5M, R = 0.6M,
2 cores): bench/README.md (issue 11).
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from analytics_platform.buckets import local_iso
from analytics_platform.dates import iso_utc, parse_range
from analytics_platform.errors import InvalidInput
from analytics_platform.queries import QueryRunner, cursor_decode, cursor_encode, whole_param
from funnels.selectors import funnel_get
from funnels.sql import (
    EPOCH,
    EXACT_KEY,
    HASHED_KEY,
    TOP_BREAKDOWN,
    US,
    FunnelSpec,
    Relations,
    outcomes_statement,
    table_statement,
)
from warehouse.snapshot import snapshot

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
    """One user's best attempt: step times in µs since the epoch (times[0] = entry)."""

    times: list[int]
    value: str | None = None  # the breakdown property on the step-1 event (JSON text, None if absent)

    @property
    def reached(self) -> int:
        return len(self.times)


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


def _fetch(project_id: int, p: FunnelParams, statement) -> list[tuple]:
    """Runs `statement(funnel, relations, key=...)` over one snapshot of the project's events
    in [start, end + window]; rows start with `collided` (see funnels.sql.HASHED_KEY)."""
    funnel = FunnelSpec(p.steps, p.window, p.order == "strict", p.start, p.end, p.breakdown)
    span_end = p.end + timedelta(seconds=p.window, microseconds=1)  # the window is inclusive
    with snapshot(project_id, p.start, span_end) as snap:
        relations = Relations(span=snap.events(p.start, span_end), entries=snap.events(p.start, p.end))
        for key in (HASHED_KEY, EXACT_KEY):
            built = statement(funnel, relations, key=key)
            rows = snap.fetch(built.sql, built.params)
            if not any(row[0] for row in rows):
                break
    return rows


def outcomes(*, project_id: int, p: FunnelParams) -> dict[str, Outcome]:
    """Every entering user's best attempt (see the module docstring)."""
    rows = _fetch(project_id, p, outcomes_statement)
    return {user: Outcome(list(times[:reached]), value) for _, user, reached, value, *times in rows}


def _step_table(steps: list[dict], figures) -> list[dict]:
    """The API's per-step figures from a row of table_statement (after collided, grp, value):
    users1, then per step k >= 2 users{k}, the sum and the median (µs) of the time from
    step k-1."""
    users = [figures[0], *(figures[1 + 3 * (k - 2)] for k in range(2, len(steps) + 1))]
    table = []
    for k, step in enumerate(steps):
        total, median = (figures[2 + 3 * (k - 1)], figures[3 + 3 * (k - 1)]) if k else (None, None)
        previous = users[k - 1] if k else users[0]
        reached = k and users[k]
        table.append(
            {
                "step": k + 1,
                "eventName": step["eventName"],
                "users": users[k],
                "conversionRate": users[k] / users[0] if users[0] else 0.0,
                "stepConversionRate": users[k] / previous if previous else 0.0,
                "dropOff": users[k - 1] - users[k] if k else 0,
                "avgTimeToConvertSeconds": int(total) / (users[k] * US) if reached else None,
                "medianTimeToConvertSeconds": median / US if reached else None,
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
        rows = _fetch(self.project.id, p, table_statement)
        self.rows = len(rows)
        (_, _, _, *figures), *groups = rows  # all entrants first, then each breakdown group
        table = _step_table(p.steps, figures)
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
            body["breakdown"] = [_group(p.steps, *row) for row in groups]
        return body


def _group(steps, _collided, grp, value, *figures) -> dict:
    """A breakdown group: a value of the property (JSON text, None if absent), or the rest."""
    table = _step_table(steps, figures)
    if grp > TOP_BREAKDOWN:
        shown = OTHER
    else:
        shown = None if value is None else json.loads(value)
    return {"value": shown, "steps": table, "overallConversionRate": _overall(table)}


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

"""Cohort retention (API.md, "Retention").

Calendar periods (day, week, month) in the project's timezone. A user joins the cohort of
the period of their cohort event: `first_time`, their first-ever one (over all history,
which must itself fall inside the range); `recurring`, every period in which they did it
inside the range. Period 0 is the cohort; period k counts the cohort's users with at least
one return event in period k (returns are counted after the range's end too), or, with
`cumulative`, the users whose last return is in period k or later. A period that has not
finished is null. Everything is computed in one statement in the column store, events
counted per numbered period from the mirror's rollups where they can be (Snapshot.bucketed);
Python only lays out the grid.
"""

from dataclasses import dataclass
from datetime import datetime

from analytics_platform.buckets import bucket_bounds, next_bucket, parse_interval
from analytics_platform.dates import parse_range
from analytics_platform.errors import InvalidInput
from analytics_platform.queries import QueryRunner, event_name_param, whole_param
from warehouse.snapshot import snapshot

MAX_PERIODS = 400
TYPES = ("first_time", "recurring")
TRUE, FALSE = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class RetentionParams:
    cohort: str | None
    return_event: str | None
    period: str
    periods: int
    type: str
    cumulative: bool
    start: datetime
    end: datetime


class RetentionQuery(QueryRunner):
    name = "retention"

    def parse(self, raw) -> RetentionParams:
        start, end = parse_range(raw.get("startDate"), raw.get("endDate"), self.tz, now=self.now)
        if raw.get("days") and not raw.get("periods") and not raw.get("period"):  # the seed's `days=7`
            period, periods = "day", whole_param(raw["days"], "days", low=0, high=MAX_PERIODS)
        else:
            period = parse_interval(raw.get("period"), name="period", allowed=("day", "week", "month"))
            periods = whole_param(raw.get("periods", 7), "periods", low=0, high=MAX_PERIODS)
        kind = (raw.get("type") or "first_time").strip().lower()
        if kind not in TYPES:
            raise InvalidInput("type must be first_time or recurring.", details={"type": raw.get("type")})
        cumulative = (raw.get("cumulative") or "").strip().lower()
        if cumulative not in TRUE | FALSE:
            raise InvalidInput("cumulative must be true or false.", details={"cumulative": raw.get("cumulative")})
        return RetentionParams(
            cohort=event_name_param(raw.get("cohort"), "cohort"),
            return_event=event_name_param(raw.get("returnEvent"), "returnEvent"),
            period=period,
            periods=periods,
            type=kind,
            cumulative=cumulative in TRUE,
            start=start,
            end=end,
        )

    def calculate(self) -> dict:
        p = self.params
        cohort_bounds = bucket_bounds(p.period, p.start, p.end, self.tz)
        cohorts = len(cohort_bounds) - 1
        bounds = list(cohort_bounds)
        for _ in range(p.periods):
            bounds.append(next_bucket(bounds[-1], p.period, self.tz))
        sizes, counts = self._count(bounds, cohorts)

        rows = []
        for c in range(cohorts):
            size = sizes.get(c, 0)
            retained: list[int | None] = [size]
            for k in range(1, p.periods + 1):
                finished = bounds[c + k + 1] <= self.now
                retained.append(counts.get((c, k), 0) if finished else None)
            rates = [None if n is None else (n / size if size else 0.0) for n in retained]
            rows.append(
                {
                    "cohortStart": cohort_bounds[c].astimezone(self.tz).date().isoformat(),
                    "size": size,
                    "retained": retained,
                    "rates": rates,
                }
            )
        return {
            "cohortEvent": p.cohort,
            "returnEvent": p.return_event,
            "period": p.period,
            "periods": p.periods,
            "type": p.type,
            "cumulative": p.cumulative,
            "cohorts": rows,
            "average": _average(rows, p.periods),
        }

    def _count(self, bounds: list[datetime], cohorts: int) -> tuple[dict, dict]:
        p = self.params
        with snapshot(self.project.id, None, bounds[-1]) as snap:
            snap.register_buckets("periods", bounds)
            cohort_filter = "WHERE event_name = ?" if p.cohort is not None else ""
            cohort_params = [p.cohort] if p.cohort is not None else []
            if p.type == "first_time":
                # users whose first-ever cohort event is inside the range, in its period
                firsts = (
                    f"SELECT user_id, MIN(ts) AS ts FROM {snap.events(None, p.end)} e {cohort_filter} "
                    f"GROUP BY user_id HAVING MIN(ts) >= {snap.literal(p.start)}"
                )
                cohort_sql = (
                    f"cohort AS (SELECT f.user_id, b.idx AS cidx FROM ({firsts}) f ASOF JOIN periods b ON f.ts >= b.lo)"
                )
            else:
                cohorts_data = snap.bucketed(bounds, p.start, p.end, name="cohorts")
                cohort_sql = (
                    "cohort AS (SELECT DISTINCT user_id, idx AS cidx "
                    f"FROM {cohorts_data.users(each=p.cohort is not None)} e {cohort_filter})"
                )
            returns_data = snap.bucketed(bounds, bounds[1], bounds[-1], name="returns")
            return_filter = "AND e.event_name = ?" if p.return_event is not None else ""
            returns_users = returns_data.users(each=p.return_event is not None)
            returns_sql = (
                f"returns AS (SELECT DISTINCT e.user_id, e.idx AS ridx FROM {returns_users} e "
                f"WHERE e.user_id IN (SELECT user_id FROM cohort) {return_filter})"
            )
            pairs = (
                "SELECT c.user_id, c.cidx, r.ridx - c.cidx AS k FROM cohort c "
                "JOIN returns r ON r.user_id = c.user_id AND r.ridx > c.cidx AND r.ridx <= c.cidx + ?"
            )
            if p.cumulative:  # a user counts in every period up to their last return
                counted = f"SELECT cidx, MAX(k) AS k FROM ({pairs}) pairs GROUP BY user_id, cidx"
            else:
                counted = f"SELECT cidx, k FROM ({pairs}) pairs"
            rows = snap.fetch(
                f"WITH {cohort_sql}, {returns_sql} "
                "SELECT cidx, -1 AS k, COUNT(*) FROM cohort GROUP BY cidx "
                f"UNION ALL SELECT cidx, k, COUNT(*) FROM ({counted}) counted GROUP BY cidx, k",
                [*cohort_params, *([p.return_event] if p.return_event is not None else []), p.periods],
            )
        self.rows = len(rows)
        sizes = {cidx: n for cidx, k, n in rows if k == -1}
        counts = {(cidx, k): n for cidx, k, n in rows if k != -1}
        if p.cumulative:
            for c in range(cohorts):
                running = 0
                for k in range(p.periods, 0, -1):
                    running += counts.get((c, k), 0)
                    counts[(c, k)] = running
        return sizes, counts


def _average(rows: list[dict], periods: int) -> list[float | None]:
    average = []
    for k in range(periods + 1):
        finished = [row for row in rows if row["retained"][k] is not None]
        total = sum(row["size"] for row in finished)
        average.append(sum(row["retained"][k] for row in finished) / total if total else None)
    return average
